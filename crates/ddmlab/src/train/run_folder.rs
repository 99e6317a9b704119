//! The files of a run folder, named in one place, and the loaders every command shares: the
//! run's config, its data splits (resized when the config says so), its fitted tokenizer, and
//! the weights of a checkpoint (EMA or raw).
//!
//! ```text
//! RUN/config.toml            the resolved config
//! RUN/<tokenizer file>       the fitted tokenizer (pca.safetensors, patch-ae.safetensors, ...)
//! RUN/tokenizer-fit.json     what fitting it measured
//! RUN/metrics.jsonl          one line per `log_every` steps
//! RUN/loss.png               the loss curve
//! RUN/checkpoints/           see `checkpoint`
//! ```

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::checkpoint;
use super::observer::Observer;
use crate::config::RunConfig;
use crate::data::{DataSource, ImageSet, Split};
use crate::error::{Error, IoContext, Result};
use crate::models::DenoisingVit;
use crate::tokenizer::{FitReport, FittedTokenizer};

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
    let source: DataSource = config.data.parse()?;
    let set = source.load_as(data_root, split, config.model.image, config.resize)?;
    Ok(if split == Split::Train && config.train_limit > 0 { set.truncate(config.train_limit) } else { set })
}

/// The run's fitted tokenizer; a missing or corrupt file is an error naming it.
pub fn load_tokenizer(run: &Path, config: &RunConfig) -> Result<FittedTokenizer> {
    let path = tokenizer_path(run, config);
    if !path.exists() {
        return Err(Error::format(&path, "missing: the run's fitted tokenizer (it is written when training starts)"));
    }
    FittedTokenizer::load(&config.denoise.tokenizer, &path, config.model.image.channels)
}

/// The run's tokenizer: loaded from the run folder, or fitted on `set` and saved there with
/// its fit report.
pub fn load_or_fit_tokenizer(
    run: &Path,
    config: &RunConfig,
    set: &ImageSet,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<FittedTokenizer> {
    if tokenizer_path(run, config).exists() {
        return load_tokenizer(run, config);
    }
    let spec = &config.denoise.tokenizer;
    obs.message(&format!("fitting the tokenizer: {}", spec.label(set.shape.channels)));
    let (fitted, report) = FittedTokenizer::fit(spec, set, device)?;
    fitted.save(&tokenizer_path(run, config))?;
    write_fit_report(run, &report)?;
    obs.message(&format!(
        "tokenizer {}: held-out reconstruction MSE {:.5} per pixel ({:.1} s)",
        spec.label(set.shape.channels),
        report.reconstruction_mse,
        report.seconds
    ));
    Ok(fitted)
}

/// Write `RUN/tokenizer-fit.json`.
pub fn write_fit_report(run: &Path, report: &FitReport) -> Result<()> {
    let json = serde_json::to_string_pretty(report).expect("serialises");
    crate::atomic::write_atomic(&fit_report_path(run), json.as_bytes())
}

/// The EMA (or raw) weights of checkpoint `ckpt` of a run with `config`.
pub fn load_model(ckpt: &Path, config: &RunConfig, ema: bool, device: &Device) -> Result<DenoisingVit> {
    checkpoint::load_weights(ckpt, weights_file(ema), config, device)
}
