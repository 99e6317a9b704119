//! `ddmlab data fetch`.

use anyhow::Result;
use ddmlab::data::fetch::{Fetched, fetch};

use crate::args::{DataAction, DataArgs};

pub fn run(args: DataArgs) -> Result<()> {
    match args.action {
        DataAction::Fetch { name, dir } => {
            std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            match fetch(&name, &dir)? {
                Fetched::AlreadyPresent(p) => println!("{name}: already present and verified in {}", p.display()),
                Fetched::Downloaded(p) => println!("{name}: downloaded and verified into {}", p.display()),
            }
        }
    }
    Ok(())
}
