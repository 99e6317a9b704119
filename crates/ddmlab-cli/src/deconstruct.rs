//! `ddmlab deconstruct`: flags -> `DeconstructOptions` -> the library's ladder runner.

use anyhow::{Result, bail};
use ddmlab::data::fetch::inception_path;
use ddmlab::deconstruct::{DeconstructOptions, deconstruct};
use ddmlab::eval::ProbeConfig;
use ddmlab::models::ladder::Table;

use crate::args::DeconstructArgs;
use crate::progress::Bar;
use crate::setup;

/// `1,3` / `all` -> tables.
fn tables(spec: &str) -> Result<Vec<Table>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let more: &[Table] = match part {
            "1" => &[Table::One],
            "2" => &[Table::Two],
            "3" => &[Table::Three],
            "all" => &[Table::One, Table::Two, Table::Three],
            other => bail!("invalid value for --table: `{other}`, expected 1, 2, 3 or all"),
        };
        for t in more {
            if !out.contains(t) {
                out.push(*t);
            }
        }
    }
    Ok(out)
}

pub fn run(args: DeconstructArgs) -> Result<()> {
    let tables = tables(&args.table)?;
    if args.steps == 0 || args.seeds.is_empty() || args.probe_epochs == 0 {
        bail!("invalid deconstruct settings: --steps, --seeds and --probe-epochs must be positive / non-empty");
    }
    if let Some(m) = args.stop_after
        && !(m.is_finite() && m > 0.0)
    {
        bail!("invalid value for --stop-after: {m}, expected a positive number of minutes");
    }
    let inception = if args.no_fid {
        None
    } else {
        let path = args.weights.clone().unwrap_or_else(|| inception_path(&args.common.data_dir));
        if !path.exists() {
            bail!("{}: no FID Inception weights; run `ddmlab data fetch inception` or pass --no-fid", path.display());
        }
        Some(path)
    };
    if args.fid_n < 2 {
        bail!("invalid value for --fid-n: {}, expected at least 2", args.fid_n);
    }
    let device = setup::device(&args.common.device)?;
    let opts = DeconstructOptions {
        tables,
        rungs: args.rungs.clone(),
        out: args.out.clone(),
        data_root: args.common.data_dir.clone(),
        steps: args.steps,
        seeds: args.seeds.clone(),
        probe: ProbeConfig {
            epochs: args.probe_epochs,
            warmup_epochs: (args.probe_epochs / 10).max(1).min(args.probe_epochs - 1),
            ..Default::default()
        },
        knn_k: args.knn_k,
        fid_n: args.fid_n,
        inception,
        stop_after_minutes: args.stop_after,
        sweeps: !args.no_sweeps,
        overrides: args.overrides.clone(),
    };
    deconstruct(&opts, &device, &mut Bar::new())?;
    println!(
        "written: {0}/deconstruct.md (tables, ablations, verdicts), {0}/table-*.md|png, {0}/verdicts.md",
        args.out.display()
    );
    Ok(())
}
