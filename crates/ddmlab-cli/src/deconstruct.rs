//! `ddmlab deconstruct`: flags -> `DeconstructOptions` -> the library's study runner.

use anyhow::{Result, bail};
use ddmlab::data::fetch::inception_path;
use ddmlab::deconstruct::{DeconstructOptions, deconstruct};
use ddmlab::study::Study;

use crate::args::DeconstructArgs;
use crate::progress::Bar;
use crate::setup;

pub fn run(args: DeconstructArgs) -> Result<()> {
    let study = Study::load(&args.study)?;
    if args.show {
        print!("{}", study.to_toml());
        println!("\n# hash: {}", study.hash()?);
        if study.runner == "ladder" {
            let plan = study.plan()?;
            println!("# {} runs, in this order:", plan.len());
            for r in &plan {
                println!("#   {} steps  {}  seed {}", r.budget, r.arm, r.seed);
            }
        }
        return Ok(());
    }
    if study.runner != "ladder" {
        bail!(
            "study `{}` is declared only (runner `{}`): its arms' commands make its runs; `deconstruct` runs ladder studies",
            study.name,
            study.runner
        );
    }
    if let Some(m) = args.stop_after
        && !(m.is_finite() && m > 0.0)
    {
        bail!("invalid value for --stop-after: {m}, expected a positive number of minutes");
    }
    let path = args.weights.clone().unwrap_or_else(|| inception_path(&args.common.data_dir));
    let inception = path.exists().then_some(path);
    let device = setup::device(&args.common.device)?;
    let opts = DeconstructOptions {
        study,
        out: args.out.clone(),
        data_root: args.common.data_dir.clone(),
        inception,
        stop_after_minutes: args.stop_after,
        report_only: args.report_only,
    };
    deconstruct(&opts, &device, &mut Bar::new())?;
    println!(
        "written: {0}/report.md (verdicts per budget, tables, sweeps, provenance), {0}/budget-*/",
        args.out.display()
    );
    Ok(())
}
