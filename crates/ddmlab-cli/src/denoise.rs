//! `ddmlab denoise`.

use anyhow::{Result, anyhow, bail};
use ddmlab::data::{DataSource, Split};
use ddmlab::tokenizer::PatchPca;
use ddmlab::train::{checkpoint, objective::ldae_objective_of};
use ddmlab::viz::denoise::save_denoise_grid;

use crate::args::DenoiseArgs;
use crate::setup;

pub fn run(args: DenoiseArgs) -> Result<()> {
    let ckpt = checkpoint::latest(&args.run)?
        .ok_or_else(|| anyhow!("{}: no checkpoint; run `ddmlab pretrain` first", args.run.display()))?;
    let (config, state) = checkpoint::read_meta(&ckpt)?;
    let (Some(ldae), Some(objective)) = (config.objective.ldae(), ldae_objective_of(&config)) else {
        bail!(
            "{}: `ddmlab denoise` shows the l-DAE latent noise; this run trains the {} objective (use `ddmlab sample`)",
            args.run.display(),
            config.objective.label()
        );
    };
    if args.n == 0 {
        bail!("invalid value for --n: 0, expected at least 1");
    }
    if let Some(t) = args.t.iter().find(|&&t| t >= ldae.timesteps) {
        bail!("invalid value for --t: {t}, expected below {}", ldae.timesteps);
    }
    let device = setup::device(&args.common.device)?;
    let model = checkpoint::load_weights(&ckpt, "ema.bpk", &config, &device)?;
    let pca = PatchPca::load(&args.run.join("pca.safetensors"))?;
    let source: DataSource = config.data.parse()?;
    let test = source.load(&args.common.data_dir, Split::Test, config.model.image)?;
    let out = args.out.clone().unwrap_or_else(|| args.run.join("denoise.png"));
    save_denoise_grid(&model, &objective, &pca, ldae.latent_dim, &test, args.n, &args.t, args.seed, &out, &device)?;
    println!("{}: step {} — rows: clean, then (x_t, x0_hat) for t = {:?}", out.display(), state.step, args.t);
    Ok(())
}
