//! A run folder's own files and how a training run opens it: the config it continues with, the
//! checkpoint it resumes, and the refusal to train over a folder that holds another run.
//!
//! ```text
//! RUN/config.toml       the resolved config (also in every checkpoint)
//! RUN/metrics.jsonl     one line per `log_every` steps (see `metrics`)
//! RUN/provenance.jsonl  which binary made what (see `provenance`)
//! RUN/checkpoints/      see `checkpoint`
//! ```

use std::path::{Path, PathBuf};

use super::checkpoint;
use super::stored_config::StoredConfig;
use crate::atomic::write_atomic;
use crate::error::{Error, IoContext, Result};

/// `RUN/config.toml`.
pub fn config_path(run: &Path) -> PathBuf {
    run.join("config.toml")
}

/// `RUN/metrics.jsonl`.
pub fn metrics_path(run: &Path) -> PathBuf {
    run.join("metrics.jsonl")
}

/// The config a run folder holds.
pub fn read_config<C: StoredConfig>(run: &Path) -> Result<C> {
    let path = config_path(run);
    C::from_toml(&std::fs::read_to_string(&path).at(&path)?, &path)
}

/// Write `config` as the folder's `config.toml` (creating the folder).
pub fn write_config<C: StoredConfig>(run: &Path, config: &C) -> Result<()> {
    std::fs::create_dir_all(run).at(run)?;
    write_atomic(&config_path(run), config.to_toml().as_bytes())
}

/// Where a training run starts.
#[derive(Debug)]
pub struct Start<C> {
    /// The config the run trains with.
    pub config: C,
    /// The checkpoint it continues, if any.
    pub resume_from: Option<PathBuf>,
}

/// Open `run` for training with `given`. With `resume`: continue from the latest checkpoint
/// with the config it holds, else (a run stopped before its first checkpoint) with the folder's
/// `config.toml`, else start `given`. Without: refuse a folder where the run, or one of its
/// earlier `stages` (run folders of their own, such as the perceptual classifier's), has
/// checkpoints.
pub fn open<C: StoredConfig>(run: &Path, given: C, resume: bool, stages: &[PathBuf]) -> Result<Start<C>> {
    if !resume {
        for dir in std::iter::once(run).chain(stages.iter().map(PathBuf::as_path)) {
            if checkpoint::latest(dir)?.is_some() {
                return Err(Error::config(
                    "out",
                    format!(
                        "{} already holds a run with checkpoints; pass --resume to continue it or choose another \
                         folder",
                        run.display()
                    ),
                ));
            }
        }
        return Ok(Start { config: given, resume_from: None });
    }
    let resume_from = checkpoint::latest(run)?;
    let config = match &resume_from {
        Some(ckpt) => checkpoint::read_meta::<C>(ckpt)?.0,
        None if config_path(run).exists() => read_config(run)?,
        None => given,
    };
    Ok(Start { config, resume_from })
}
