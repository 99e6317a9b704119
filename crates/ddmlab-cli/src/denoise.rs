//! `ddmlab denoise`.

use anyhow::{Result, anyhow, bail};
use ddmlab::data::Split;
use ddmlab::store::checkpoint;
use ddmlab::train::run_folder;
use ddmlab::train::trainer_state;
use ddmlab::viz::denoise::save_denoise_grid;

use crate::args::DenoiseArgs;
use crate::setup;

pub fn run(args: DenoiseArgs) -> Result<()> {
    let ckpt = checkpoint::latest(&args.run)?
        .ok_or_else(|| anyhow!("{}: no checkpoint; run `ddmlab pretrain` first", args.run.display()))?;
    let (config, state) = trainer_state::read_meta(&ckpt)?;
    if args.n == 0 {
        bail!("invalid value for --n: 0, expected at least 1");
    }
    let device = setup::device(&args.common.device)?;
    let model = run_folder::load_model(&ckpt, &config, true, &device)?;
    let tokenizer = run_folder::load_tokenizer(&args.run, &config)?.bind(config.model.image, &device);
    let test = run_folder::load_split(&config, &args.common.data_dir, Split::Test)?;
    let out = args.out.clone().unwrap_or_else(|| args.run.join("denoise.png"));
    save_denoise_grid(&model, &config, tokenizer.as_ref(), &test, args.n, &args.t, args.seed, &out, &device)?;
    println!("{}: step {} — rows: clean, then (input, x0_hat) for t = {:?}", out.display(), state.step, args.t);
    Ok(())
}
