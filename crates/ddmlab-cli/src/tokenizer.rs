//! `ddmlab tokenizer train|eval`: preset or TOML file -> overrides -> validated
//! `TokenizerRunConfig` -> library.

use anyhow::{Context, Result, bail};
use std::path::Path;

use ddmlab::config::refuse_changes_on_resume;
use ddmlab::data::Split;
use ddmlab::data::fetch::inception_path;
use ddmlab::eval::inception::InceptionV3;
use ddmlab::recipes::tokenizer_preset;
use ddmlab::runs::tokenizer::{
    TokenizerTrainOptions, evaluate, evaluate_reconstruction, format_recon, load_split, recon_table, train_tokenizer,
};
use ddmlab::store::checkpoint;
use ddmlab::tokenizer::conv_config::TokenizerRunConfig;
use ddmlab::tokenizer::{FittedTokenizer, LatentScale, TokenizerSpec};

use crate::args::{TokenizerCommand, TokenizerEvalArgs, TokenizerTrainArgs};
use crate::progress::Bar;
use crate::setup;

pub fn run(command: TokenizerCommand) -> Result<()> {
    match command {
        TokenizerCommand::Train(a) => train(a),
        TokenizerCommand::Eval(a) => eval(a),
        TokenizerCommand::Encode(a) => encode(a),
        TokenizerCommand::Decode(a) => decode(a),
    }
}

/// A generator run's config and its fitted tokenizer on the device of `common`.
fn run_tokenizer(
    run: &Path,
    common: &crate::args::Common,
) -> Result<(ddmlab::config::RunConfig, Box<dyn ddmlab::tokenizer::Tokenizer>, burn::tensor::Device)> {
    let config = ddmlab::store::folder::read_config::<ddmlab::config::RunConfig>(run)?;
    let device = setup::device(&common.device)?;
    let tokenizer = ddmlab::train::run_folder::load_tokenizer(run, &config)?.bind(config.model.image, &device);
    Ok((config, tokenizer, device))
}

fn encode(args: crate::args::TokenizerEncodeArgs) -> Result<()> {
    let split = match args.split.as_str() {
        "train" => Split::Train,
        "test" => Split::Test,
        other => bail!("invalid value for --split: {other}, expected train or test"),
    };
    if args.batch_size == 0 {
        bail!("invalid value for --batch-size: 0, expected at least 1");
    }
    let (config, tokenizer, device) = run_tokenizer(&args.run, &args.common)?;
    let set = ddmlab::train::run_folder::load_split(&config, &args.common.data_dir, split)?;
    let set = match args.limit {
        Some(n) => set.truncate(n),
        None => set,
    };
    let bar = crate::progress::styled(indicatif::ProgressBar::new(set.len() as u64), " images");
    let post = ddmlab::runs::token_cache::encode_set(tokenizer.as_ref(), &set, args.batch_size, &device, &mut |d| {
        bar.set_position(d as u64)
    });
    bar.finish_and_clear();
    ddmlab::runs::token_cache::write_posterior(&args.out, &post)?;
    let [n, l, d] = post.shape;
    println!(
        "{}: the posterior (mean, std) of {n} {} images as {l} tokens of {d}{}",
        args.out.display(),
        args.split,
        if tokenizer.stochastic() { "" } else { " (a deterministic tokenizer: std 0)" }
    );
    Ok(())
}

fn decode(args: crate::args::TokenizerDecodeArgs) -> Result<()> {
    if args.batch_size == 0 {
        bail!("invalid value for --batch-size: 0, expected at least 1");
    }
    let (config, tokenizer, device) = run_tokenizer(&args.run, &args.common)?;
    let len = config.model.tokens();
    let (tokens, n, labels) = ddmlab::runs::token_cache::read_tokens(&args.tokens, (len, tokenizer.latent_dim()))?;
    let bar = crate::progress::styled(indicatif::ProgressBar::new(n as u64), " images");
    let images =
        ddmlab::runs::token_cache::decode_tokens(tokenizer.as_ref(), &tokens, n, args.batch_size, &device, &mut |d| {
            bar.set_position(d as u64)
        })?;
    bar.finish_and_clear();
    let shape = config.model.image;
    let raw = images.iter().map(|img| ddmlab::data::RawImage::from_unit(img, shape)).collect();
    ddmlab::eval::npz::write_samples(&args.npz, &ddmlab::eval::npz::SampleBatch { images: raw, labels })?;
    println!("{}: {n} images decoded from {}", args.npz.display(), args.tokens.display());
    if let Some(grid) = &args.grid {
        let first: Vec<Vec<f32>> = images.into_iter().take(100).collect();
        let rows: Vec<Vec<Vec<f32>>> = first.chunks(10).map(|r| r.to_vec()).collect();
        ddmlab::viz::grid::save_grid(grid, &rows, shape, 2)?;
        println!("{}: the first {} images", grid.display(), first.len());
    }
    Ok(())
}

/// The preset of a tokenizer run when `--preset` is not given.
const DEFAULT_PRESET: &str = "kl-fmnist";

/// The config these flags describe, validated.
fn resolve(args: &TokenizerTrainArgs) -> Result<TokenizerRunConfig> {
    let base = match &args.config {
        Some(path) => read_config(path)?,
        None => tokenizer_preset(args.preset.as_deref().unwrap_or(DEFAULT_PRESET))?.config,
    };
    let config = apply_flags(base, args)?;
    if let Some(m) = args.stop_after
        && !(m.is_finite() && m > 0.0)
    {
        bail!("invalid value for --stop-after: {m}, expected a positive number of minutes");
    }
    config.validate()?;
    Ok(config)
}

fn read_config(path: &Path) -> Result<TokenizerRunConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read config", path.display()))?;
    Ok(TokenizerRunConfig::from_toml(&text, path)?)
}

/// `config` with `--set` and `--steps` applied (not validated).
fn apply_flags(mut config: TokenizerRunConfig, args: &TokenizerTrainArgs) -> Result<TokenizerRunConfig> {
    for s in &args.overrides {
        config = config.with_override(s)?;
    }
    if let Some(v) = args.steps {
        config.train.steps = v;
    }
    Ok(config)
}

/// On `--resume`, the run's saved config governs: flags that would change it are an error naming
/// each field. A `--preset` or `--config` given is compared whole; without one, the flags are
/// applied to the saved config. The one change allowed is more `train.steps` (`--steps`): the
/// run trains on to them, returned here.
fn check_resume(args: &TokenizerTrainArgs) -> Result<Option<usize>> {
    let path = args.out.join("config.toml");
    if !args.resume || !path.exists() {
        return Ok(None);
    }
    let saved = read_config(&path)?;
    let base = match (&args.preset, &args.config) {
        (None, None) => saved.clone(),
        (_, Some(file)) => read_config(file)?,
        (Some(name), None) => tokenizer_preset(name)?.config,
    };
    let mut requested = apply_flags(base, args)?;
    let extend_to = (requested.train.steps > saved.train.steps).then_some(requested.train.steps);
    if extend_to.is_some() {
        requested.train.steps = saved.train.steps;
    }
    refuse_changes_on_resume(&args.out, &saved, &requested)?;
    Ok(extend_to)
}

fn train(args: TokenizerTrainArgs) -> Result<()> {
    let extend_to = check_resume(&args)?;
    let config = resolve(&args)?;
    if args.dry_run {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let device = setup::device(&args.common.device)?;
    let weights = args.weights.clone().unwrap_or_else(|| inception_path(&args.common.data_dir));
    if !weights.exists() {
        eprintln!(
            "no Inception weights at {}: checkpoints get PSNR only (`ddmlab data fetch inception` adds rFID)",
            weights.display()
        );
    }
    let opts = TokenizerTrainOptions {
        data_root: args.common.data_dir.clone(),
        resume: args.resume,
        stop_after_minutes: args.stop_after,
        stop_after_steps: None,
        inception: weights.exists().then_some(weights),
        extend_to,
    };
    let summary = train_tokenizer(config, &args.out, &opts, &device, &mut Bar::new())?;
    println!("{}: step {}/{}", summary.run.display(), summary.step, summary.total_steps);
    if let Some(last) = summary.recon.last() {
        println!("{}", format_recon(last));
    }
    Ok(())
}

fn eval(args: TokenizerEvalArgs) -> Result<()> {
    let device = setup::device(&args.common.device)?;
    let ckpt = checkpoint::resolve(Some(&args.run), &args.ckpt)?;
    let (config, state) = checkpoint::read_meta::<TokenizerRunConfig>(&ckpt)?;
    let n = args.n.unwrap_or(config.train.eval_images);
    if n < 2 {
        bail!("invalid value for --n: {n}, expected at least 2 images");
    }
    let ae = checkpoint::load_into(ddmlab::nn::init::exclusive(|| config.model.init(&device)), &ckpt.join("ae.bpk"))?;
    let test = load_split(&config, &args.common.data_dir, Split::Test)?;
    let weights = args.weights.clone().unwrap_or_else(|| inception_path(&args.common.data_dir));
    let inception = if weights.exists() { Some(InceptionV3::load(&weights, &device)?) } else { None };
    let row = evaluate(&args.run, &config, &ae, &test, n, state.step, inception.as_ref(), &device)?;
    println!("conv VAE: {}", format_recon(&row));
    if let Some(d) = args.pca_dim {
        let patch = args.pca_patch.unwrap_or(2 * config.model.stride());
        let spec = TokenizerSpec::Pca { patch, latent_dim: d, samples: 100_000, scale: LatentScale::None, seed: 0 };
        spec.validate(config.model.image, "--pca-dim")?;
        let train = load_split(&config, &args.common.data_dir, Split::Train)?;
        let (pca, _) = FittedTokenizer::fit(&spec, &train, &device)?;
        let pca = pca.bind(config.model.image, &device);
        let name = recon_table(&format!("recon-pca-d{d}"), n, config.train.eval_images);
        let row = evaluate_reconstruction(&args.run, &name, &test, n, state.step, inception.as_ref(), &device, &|x| {
            pca.decode(pca.encode(x))
        })?;
        println!("patch PCA p={patch} d={d}: {}", format_recon(&row));
    }
    Ok(())
}
