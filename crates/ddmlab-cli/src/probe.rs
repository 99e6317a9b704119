//! `ddmlab probe`.

use anyhow::{Result, anyhow, bail};
use ddmlab::eval::report::{Checkpoints, ProbeOptions, format_table, probe_run};
use ddmlab::eval::{Pool, ProbeConfig};
use ddmlab::store::checkpoint;
use ddmlab::train::trainer_state;

use crate::args::ProbeArgs;
use crate::progress::Bar;
use crate::setup;

pub fn run(args: ProbeArgs) -> Result<()> {
    let checkpoints: Checkpoints = args.ckpt.parse()?;
    let pools = match args.pool.as_str() {
        "avg" => vec![Pool::Avg],
        "flat" => vec![Pool::Flat],
        "both" => vec![Pool::Avg, Pool::Flat],
        other => bail!("invalid value for --pool: `{other}`, expected avg, flat or both"),
    };
    if args.epochs == 0 || !(args.lr.is_finite() && args.lr > 0.0) {
        bail!("invalid probe settings: --epochs must be positive and --lr a positive number");
    }
    let device = setup::device(&args.common.device)?;
    let opts = ProbeOptions {
        data_root: args.common.data_dir.clone(),
        checkpoints,
        pools,
        probe: ProbeConfig {
            epochs: args.epochs,
            lr: args.lr,
            warmup_epochs: (args.epochs / 10).max(1).min(args.epochs - 1),
            ..Default::default()
        },
        knn_k: args.knn_k,
        knn_flat: args.knn_flat,
        baselines: !args.no_baselines,
        ema: !args.no_ema,
        train_limit: args.train_limit,
        test_limit: args.test_limit,
        batch_size: 500,
        t: args.t,
        encoder_depth: args.encoder_depth,
        noisy: args.noisy,
    };
    let rows = probe_run(&args.run, &opts, &device, &mut Bar::new())?;
    let latest = checkpoint::latest(&args.run)?.ok_or_else(|| anyhow!("no checkpoint"))?;
    let (config, _) = trainer_state::read_meta(&latest)?;
    println!("\n{}", format_table(&rows, &config));
    println!("written: {0}/probe.md, {0}/probe.json, {0}/probe.png", args.run.display());
    Ok(())
}
