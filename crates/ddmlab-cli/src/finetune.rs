//! `ddmlab finetune`: flags -> `FinetuneOptions` -> the library's fine-tuning run.

use anyhow::{Result, bail};
use ddmlab::config::FinetuneInit;
use ddmlab::runs::finetune::{FinetuneOptions, finetune};

use crate::args::FinetuneArgs;
use crate::progress::Bar;
use crate::setup;

pub fn run(args: FinetuneArgs) -> Result<()> {
    if let Some(m) = args.stop_after
        && !(m.is_finite() && m > 0.0)
    {
        bail!("invalid value for --stop-after: {m}, expected a positive number of minutes");
    }
    let mut overrides = args.overrides.clone();
    if let Some(e) = args.epochs {
        overrides.push(format!("train.epochs={e}"));
    }
    let opts = FinetuneOptions {
        source: args.run.clone().unwrap_or_default(),
        init: if args.random_init { FinetuneInit::Random } else { FinetuneInit::Pretrained },
        data_root: args.common.data_dir.clone(),
        overrides,
        seed: args.seed,
        resume: args.resume,
        stop_after_minutes: args.stop_after,
    };
    let device = setup::device(&args.common.device)?;
    let summary = finetune(&args.out, &opts, &device, &mut Bar::new())?;
    let rows = ddmlab::eval::top1::read_rows(&args.out)?;
    match rows.last() {
        Some(r) => println!(
            "fine-tuned to step {} of {}: test top-1 {:.2}% on {} images ({})",
            summary.step,
            summary.total_steps,
            r.top1,
            r.n,
            ddmlab::eval::top1::rows_path(&args.out).display()
        ),
        None => println!("stopped at step {} of {}; continue with --resume", summary.step, summary.total_steps),
    }
    Ok(())
}
