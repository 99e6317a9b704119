//! The files of a run folder, named in one place, and the loaders every command shares: the
//! run's config, its data splits (resized when the config says so), its fitted tokenizer, and
//! the weights of a checkpoint (EMA or raw).
//!
//! ```text
//! RUN/config.toml            the resolved config (see `crate::store::folder`)
//! RUN/<tokenizer file>       the fitted tokenizer (pca.safetensors, patch-ae.safetensors, ...)
//! RUN/tokenizer-fit.json     what fitting it measured
//! RUN/conv-vae/              a conv VAE tokenizer's own training run (see `runs::tokenizer`)
//! RUN/metrics.jsonl          one line per `log_every` steps
//! RUN/loss.png               the loss curve
//! RUN/checkpoints/           see `crate::store::checkpoint` and `trainer_state`
//! ```

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::config::RunConfig;
use crate::data::{DataSource, ImageSet, ImageShape, Split};
use crate::error::{Error, IoContext, Result};
use crate::models::DenoisingVit;
use crate::tokenizer::{FitReport, FittedTokenizer};
use crate::train::trainer_state;

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
    crate::store::folder::read_config(run)
}

/// One split of a config's data set, resized when the config asks for it (the train split
/// with `train_limit` applied).
pub fn load_split(config: &RunConfig, data_root: &Path, split: Split) -> Result<ImageSet> {
    load_data_split(&config.data, config.model.image, config.resize, config.train_limit, data_root, split)
}

/// One split of data set `data` at image shape `image` (resized to it when `resize`), the train
/// split cut to its first `train_limit` images (0: all): what every kind of run reads.
pub fn load_data_split(
    data: &DataSource,
    image: ImageShape,
    resize: bool,
    train_limit: usize,
    data_root: &Path,
    split: Split,
) -> Result<ImageSet> {
    let set = data.load_as(data_root, split, image, resize)?;
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
    if crate::store::folder::config_path(from).exists() {
        let source = read_config(from)?;
        let same = source.denoise.tokenizer.same_fit(spec)
            && source.data == config.data
            && source.model.image == config.model.image
            && source.resize == config.resize;
        if !same {
            return Err(Error::config(
                "pretrain.tokenizer_from",
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

/// `RUN/conv-vae/`: where a run trains its conv VAE tokenizer.
pub fn conv_vae_run(run: &Path) -> PathBuf {
    run.join("conv-vae")
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
    trainer_state::load_weights(ckpt, weights_file(ema), config, device)
}
