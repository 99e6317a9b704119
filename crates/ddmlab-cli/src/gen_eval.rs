//! `ddmlab gen-eval`.

use anyhow::{Result, bail};
use ddmlab::data::fetch::inception_path;
use ddmlab::diffusion::SamplerKind;
use ddmlab::eval::gen_eval::{GenEvalOptions, format_table, gen_eval_run};

use crate::args::GenEvalArgs;
use crate::progress::Bar;
use crate::setup;

pub fn run(args: GenEvalArgs) -> Result<()> {
    let kind = match args.sampler.as_str() {
        "ddim" => SamplerKind::Ddim { eta: 0.0 },
        "ddpm" => SamplerKind::Ddpm,
        other => bail!("invalid value for --sampler: `{other}`, expected ddim or ddpm"),
    };
    if args.n < 2 || args.batch_size == 0 {
        bail!("invalid gen-eval settings: --n must be at least 2 and --batch-size positive");
    }
    let weights = args.weights.clone().unwrap_or_else(|| inception_path(&args.common.data_dir));
    if !weights.exists() {
        bail!("{}: no FID Inception weights; run `ddmlab data fetch inception` (or pass --weights)", weights.display());
    }
    let opts = GenEvalOptions {
        data_root: args.common.data_dir.clone(),
        weights,
        checkpoints: args.ckpt.parse()?,
        cfgs: args.cfg.clone(),
        n: args.n,
        reference: args.reference.parse()?,
        kind,
        steps: args.steps,
        seed: args.seed,
        chunk: args.batch_size,
        inception_batch: 25,
        ema: !args.no_ema,
        kid: args.kid,
    };
    let device = setup::device(&args.common.device)?;
    let rows = gen_eval_run(&args.run, &opts, &device, &mut Bar::new())?;
    println!("\n{}", format_table(&rows));
    println!("written: {0}/fid.md, {0}/fid.json, {0}/fid.png", args.run.display());
    Ok(())
}
