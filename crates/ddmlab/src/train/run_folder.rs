//! The files of a run folder, named in one place, and the loaders every command shares: the
//! run's config, its data splits (resized when the config says so), its fitted tokenizer, and
//! the weights of a checkpoint (EMA or raw).
//!
//! ```text
//! RUN/config.toml            the resolved config
//! RUN/<tokenizer file>       the fitted tokenizer (pca.safetensors, patch-ae.safetensors, ...)
//! RUN/tokenizer-fit.json     what fitting it measured
//! RUN/conv-vae/              a conv VAE tokenizer's own training run (see `tokenizer_run`)
//! RUN/metrics.jsonl          one line per `log_every` steps
//! RUN/loss.png               the loss curve
//! RUN/checkpoints/           see `checkpoint`
//! ```

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::checkpoint;
use super::observer::Observer;
use super::tokenizer_run::{TokenizerTrainOptions, train_tokenizer};
use crate::config::RunConfig;
use crate::data::{DataSource, ImageSet, ImageShape, Split};
use crate::error::{Error, IoContext, Result};
use crate::models::DenoisingVit;
use crate::tokenizer::conv_vae::FittedConvVae;
use crate::tokenizer::{FitReport, FittedTokenizer, LatentScale, TokenizerSpec};

/// `RUN/config.toml`.
pub fn config_path(run: &Path) -> PathBuf {
    run.join("config.toml")
}

/// `RUN/metrics.jsonl`.
pub fn metrics_path(run: &Path) -> PathBuf {
    run.join("metrics.jsonl")
}

/// The fitted tokenizer's file of a run.
pub fn tokenizer_path(run: &Path, config: &RunConfig) -> PathBuf {
    run.join(config.denoise.tokenizer.file_name())
}

/// `RUN/tokenizer-fit.json`.
pub fn fit_report_path(run: &Path) -> PathBuf {
    run.join("tokenizer-fit.json")
}

/// The checkpoint file of the EMA weights (`ema = true`) or of the raw trained ones.
pub fn weights_file(ema: bool) -> &'static str {
    if ema { "ema.bpk" } else { "model.bpk" }
}

/// The config a run folder holds.
pub fn read_config(run: &Path) -> Result<RunConfig> {
    let path = config_path(run);
    RunConfig::from_toml(&std::fs::read_to_string(&path).at(&path)?, &path)
}

/// One split of a config's data set, resized when the config asks for it (the train split
/// with `train_limit` applied).
pub fn load_split(config: &RunConfig, data_root: &Path, split: Split) -> Result<ImageSet> {
    load_data_split(&config.data, config.model.image, config.resize, config.train_limit, data_root, split)
}

/// One split of data set `data` at image shape `image` (resized to it when `resize`), the train
/// split cut to its first `train_limit` images (0: all): what every kind of run reads.
pub fn load_data_split(
    data: &str,
    image: ImageShape,
    resize: bool,
    train_limit: usize,
    data_root: &Path,
    split: Split,
) -> Result<ImageSet> {
    let source: DataSource = data.parse()?;
    let set = source.load_as(data_root, split, image, resize)?;
    Ok(if split == Split::Train && train_limit > 0 { set.truncate(train_limit) } else { set })
}

/// The run's fitted tokenizer; a missing or corrupt file is an error naming it.
pub fn load_tokenizer(run: &Path, config: &RunConfig) -> Result<FittedTokenizer> {
    let path = tokenizer_path(run, config);
    if !path.exists() {
        return Err(Error::format(&path, "missing: the run's fitted tokenizer (it is written when training starts)"));
    }
    FittedTokenizer::load(&config.denoise.tokenizer, &path, config.model.image.channels)
}

/// Start run folder `to` with a fitted tokenizer, so that runs on one tokenizer (MAR's
/// variants, a DiT beside a MAR, a DiT on a ladder rung's conv VAE) share one fit. `from` is a
/// run folder, whose config must name the same tokenizer (`TokenizerSpec::same_fit`) on the
/// same data and image size, or a folder without a config that holds the tokenizer file (as
/// `deconstruct` keeps them under `tokenizers/`), checked against what the file records (a
/// conv VAE: its whole training config, data and image size included; patch tokenizers: patch,
/// channels and latent size). A folder that already holds a tokenizer keeps it.
pub fn adopt_tokenizer(from: &Path, to: &Path, config: &RunConfig) -> Result<()> {
    let spec = &config.denoise.tokenizer;
    if config_path(from).exists() {
        let source = read_config(from)?;
        let same = source.denoise.tokenizer.same_fit(spec)
            && source.data == config.data
            && source.model.image == config.model.image
            && source.resize == config.resize;
        if !same {
            return Err(Error::config(
                "--tokenizer-from",
                format!(
                    "{} fits {} on {} at {:?}, this run wants {} on {} at {:?}",
                    from.display(),
                    source.denoise.tokenizer.label(source.model.image.channels),
                    source.data,
                    source.model.image,
                    spec.label(config.model.image.channels),
                    config.data,
                    config.model.image
                ),
            ));
        }
    }
    // The same fit is the same kind of tokenizer, so the file has the name this run's spec gives.
    let (file, target) = (tokenizer_path(from, config), tokenizer_path(to, config));
    if target.exists() {
        return Ok(());
    }
    // Loading checks that the file is whole and holds the tokenizer this run names before it
    // is copied.
    FittedTokenizer::load(spec, &file, config.model.image.channels)?;
    std::fs::create_dir_all(to).at(to)?;
    let report = fit_report_path(from);
    if report.exists() {
        crate::atomic::write_atomic(&fit_report_path(to), &std::fs::read(&report).at(&report)?)?;
    }
    crate::atomic::write_atomic(&target, &std::fs::read(&file).at(&file)?)
}

/// How a run fits its tokenizer when the run folder has none: the data root (a conv VAE's
/// training reads its own splits) and a time limit (only a conv VAE's training takes long
/// enough to stop and resume).
#[derive(Debug, Clone, Copy)]
pub struct FitOptions<'a> {
    pub data_root: &'a Path,
    pub stop_after_minutes: Option<f64>,
}

/// The run's tokenizer: loaded from the run folder, or fitted on `set` and saved there with
/// its fit report; `None` when a conv VAE's training stopped at the time limit (run again to
/// continue it).
pub fn load_or_fit_tokenizer(
    run: &Path,
    config: &RunConfig,
    set: &ImageSet,
    fit: FitOptions<'_>,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<Option<FittedTokenizer>> {
    if tokenizer_path(run, config).exists() {
        return load_tokenizer(run, config).map(Some);
    }
    let spec = &config.denoise.tokenizer;
    obs.message(&format!("fitting the tokenizer: {}", spec.label(set.shape.channels)));
    let (fitted, report) = match spec {
        TokenizerSpec::ConvVae { .. } => match fit_conv_vae(run, spec, fit, set, device, obs)? {
            Some(done) => done,
            None => return Ok(None),
        },
        _ => FittedTokenizer::fit(spec, set, device)?,
    };
    fitted.save(&tokenizer_path(run, config))?;
    write_fit_report(run, &report)?;
    let detail = format!("tokenizer fit: {}", spec.label(set.shape.channels));
    crate::provenance::record(run, &crate::provenance::Provenance::now("tokenizer", detail, device))?;
    obs.message(&format!(
        "tokenizer {}: held-out reconstruction MSE {:.5} per pixel ({:.1} s)",
        spec.label(set.shape.channels),
        report.reconstruction_mse,
        report.seconds
    ));
    Ok(Some(fitted))
}

/// `RUN/conv-vae/`: where a run trains its conv VAE tokenizer.
pub fn conv_vae_run(run: &Path) -> PathBuf {
    run.join("conv-vae")
}

/// Train the conv VAE of `spec` in `RUN/conv-vae/` (resuming what is there), then compute its
/// latent scale on `set`; `None` when the training stopped at the time limit.
fn fit_conv_vae(
    run: &Path,
    spec: &TokenizerSpec,
    fit: FitOptions<'_>,
    set: &ImageSet,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<Option<(FittedTokenizer, FitReport)>> {
    let TokenizerSpec::ConvVae { cells, scale, config } = spec else { unreachable!("called for conv VAEs") };
    let folder = conv_vae_run(run);
    let inception = crate::data::fetch::inception_path(fit.data_root);
    let opts = TokenizerTrainOptions {
        data_root: fit.data_root.to_path_buf(),
        resume: true,
        stop_after_minutes: fit.stop_after_minutes,
        stop_after_steps: None,
        inception: inception.exists().then_some(inception),
        extend_to: None,
    };
    let summary = train_tokenizer((**config).clone(), &folder, &opts, device, obs)?;
    if summary.step < summary.total_steps {
        return Ok(None);
    }
    let ckpt = checkpoint::latest(&folder)?.ok_or_else(|| Error::format(&folder, "no checkpoint after training"))?;
    let weights = std::fs::read(ckpt.join("ae.bpk")).at(ckpt.join("ae.bpk"))?;
    let mut vae = FittedConvVae { config: (**config).clone(), weights, cells: *cells, scale: 1.0 };
    if *scale == LatentScale::Unit {
        let ae = vae.network(device, &ckpt.join("ae.bpk"))?;
        vae.scale = FittedConvVae::unit_scale(&ae, set, 2000, device);
    }
    let curve: Vec<(usize, f64)> = summary.recon.iter().map(|r| (r.step, r.mse)).collect();
    let state: super::conv_tokenizer::AeState = checkpoint::read_state(&ckpt)?;
    let report = FitReport {
        kind: spec.kind().into(),
        latent_dim: spec.latent_dim(set.shape.channels),
        reconstruction_mse: curve.last().map(|c| c.1).unwrap_or(f64::NAN),
        curve,
        seconds: state.elapsed_s,
    };
    Ok(Some((FittedTokenizer::ConvVae(Box::new(vae)), report)))
}

/// Write `RUN/tokenizer-fit.json`.
pub fn write_fit_report(run: &Path, report: &FitReport) -> Result<()> {
    let json = serde_json::to_string_pretty(report).expect("serialises");
    crate::atomic::write_atomic(&fit_report_path(run), json.as_bytes())
}

/// The EMA (or raw) weights of checkpoint `ckpt` of a run with `config`.
pub fn load_model(ckpt: &Path, config: &RunConfig, ema: bool, device: &Device) -> Result<DenoisingVit> {
    if config.mar.is_some() {
        return Err(Error::format(
            ckpt,
            "is a MAR checkpoint (its config has a [mar] section); this command reads denoising-ViT runs \
             (l-DAE, DiT, ladder rungs); sample MAR runs with `ddmlab sample`",
        ));
    }
    checkpoint::load_weights(ckpt, weights_file(ema), config, device)
}
