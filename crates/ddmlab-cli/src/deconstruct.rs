//! `ddmlab deconstruct`: flags -> `DeconstructOptions` -> the library's study runner.

use anyhow::{Result, bail};
use ddmlab::data::fetch::inception_path;
use ddmlab::deconstruct::{DeconstructOptions, deconstruct, reuse_tokenizer};
use ddmlab::study::{Runner, Study};

use crate::args::DeconstructArgs;
use crate::progress::Bar;
use crate::setup;

pub fn run(args: DeconstructArgs) -> Result<()> {
    let study = Study::load(&args.study)?;
    if args.show {
        print!("{}", study.to_toml());
        println!("\n# hash: {}", study.hash()?);
        if study.runner != Runner::Declared {
            let plan = study.plan()?;
            println!("# {} runs, in this order:", plan.len());
            for r in &plan {
                let steps = if r.config.train.steps == r.budget {
                    String::new()
                } else {
                    format!(" (trains {} steps)", r.config.train.steps)
                };
                println!("#   {} steps  {}  seed {}{steps}", r.budget, r.arm, r.seed);
            }
            println!("# tokenizers fitted once each (OUT/tokenizers/<key>/):");
            for k in study.tokenizer_keys()? {
                println!("#   {k}");
            }
        }
        return Ok(());
    }
    if study.runner == Runner::Declared {
        bail!(
            "study `{}` is declared only (runner `{}`): its arms' commands make its runs; `deconstruct` runs ladder and \
             presets studies",
            study.name,
            study.runner.name()
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
    if !args.reuse_tokenizer.is_empty() {
        // The folder must belong to this study version before anything is copied into it.
        let stamp = ddmlab::study::Stamp { study: study.name.clone(), hash: study.hash()? };
        stamp.check_folder(&args.out)?;
    }
    for dir in &args.reuse_tokenizer {
        let commit = committed_in(dir);
        if reuse_tokenizer(&args.out, &study, dir, &commit)? {
            println!("reused {} (added in commit {commit})", dir.display());
        }
    }
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

/// The last git commit that touched `dir` (`unknown` outside a checkout or for an untracked
/// folder).
fn committed_in(dir: &std::path::Path) -> String {
    std::process::Command::new("git")
        .args(["log", "-1", "--format=%H", "--"])
        .arg(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
