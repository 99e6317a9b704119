//! `ddmlab gen-eval`.

use anyhow::{Result, bail};
use ddmlab::data::Split;
use ddmlab::data::fetch::inception_path;
use ddmlab::eval::fid::FidSource;
use ddmlab::eval::gen_eval::{GenEvalOptions, MarSweep, format_table, gen_eval_run};
use ddmlab::eval::row_sampler::SamplerSetting;
use ddmlab::train::run_folder;

use crate::args::GenEvalArgs;
use crate::progress::Bar;
use crate::setup;

pub fn run(args: GenEvalArgs) -> Result<()> {
    let config = run_folder::read_config(&args.run)?;
    let is_mar = config.mar.is_some();
    if !is_mar && (!args.mar_steps.is_empty() || args.temperature != [1.0]) {
        bail!(
            "--mar-steps and --temperature are MAR sampling settings; {} is a {} run (use --sampler, --steps)",
            args.run.display(),
            config.denoise.label(config.model.image.channels)
        );
    }
    let steps = match (args.steps.is_empty(), is_mar) {
        (false, _) => args.steps.clone(),
        (true, false) => vec![50],
        (true, true) => vec![100],
    };
    let mut samplers = Vec::new();
    for sampler in &args.sampler {
        let kind = sampler.kind(0.0);
        for &steps in &steps {
            if steps == 0 {
                bail!("invalid value for --steps: 0, expected at least 1");
            }
            samplers.push(SamplerSetting { kind, steps });
        }
    }
    if args.n < 2 || args.batch_size == 0 {
        bail!("invalid gen-eval settings: --n must be at least 2 and --batch-size positive");
    }
    let weights = args.weights.clone().unwrap_or_else(|| inception_path(&args.common.data_dir));
    if !weights.exists() {
        bail!("{}: no FID Inception weights; run `ddmlab data fetch inception` (or pass --weights)", weights.display());
    }
    let reference: FidSource = args.reference.parse()?;
    let mut references = vec![(reference.clone(), None)];
    if args.full_train {
        let FidSource::DataSet { source, .. } = reference else {
            bail!("--full-train needs --ref to name a data set split (NAME:test), not {}", args.reference);
        };
        references.push((FidSource::DataSet { source, split: Split::Train }, Some(0)));
    }
    let opts = GenEvalOptions {
        data_root: args.common.data_dir.clone(),
        weights,
        checkpoints: args.ckpt.parse()?,
        cfgs: args.cfg.clone(),
        n: args.n,
        references,
        samplers,
        mar: MarSweep { steps: args.mar_steps.clone(), head_steps: steps, temperatures: args.temperature.clone() },
        seed: args.seed,
        chunk: args.batch_size,
        inception_batch: 25,
        ema: !args.no_ema,
        kid: args.kid,
        skip_measured: args.resume,
    };
    let device = setup::device(&args.common.device)?;
    let rows = gen_eval_run(&args.run, &opts, &device, &mut Bar::new())?;
    println!("\n{}", format_table(&rows));
    println!(
        "written: {0}/fid.md, {0}/fid.json, {0}/fid.png (and fid-cfg.png / fid-steps.png / fid-temperature.png)",
        args.run.display()
    );
    Ok(())
}
