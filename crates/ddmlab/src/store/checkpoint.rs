//! Checkpoint folders: one folder per saved step, written atomically, whatever kind of run
//! (a denoiser, a conv tokenizer, its perceptual classifier) saves into them.
//!
//! ```text
//! RUN/checkpoints/step-000500/   the stage's files (weights, optimizer, config.toml) + state.json
//! RUN/checkpoints/latest         "step-000500"
//! ```
//! A checkpoint folder is written under a temporary name and renamed into place; `latest` is
//! replaced atomically afterwards. A run killed at any moment leaves `latest` naming a complete
//! checkpoint (or no checkpoint at all). Every checkpoint carries the one [`CheckpointState`].

use std::path::{Path, PathBuf};

use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::stored_config::StoredConfig;
use crate::atomic::write_atomic;
use crate::error::{Error, IoContext, Result};

/// The scalar state of a run at a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Steps completed.
    pub step: usize,
    /// The stage's total steps (a schedule depends on it). Tokenizer checkpoints written before
    /// the state was shared lack it: read as 0, and the resuming stage sets it from its config.
    #[serde(default)]
    pub total_steps: usize,
    /// Wall-clock training seconds so far (for throughput and ETA across resumes).
    pub elapsed_s: f64,
}

/// The run folder of checkpoint folder `ckpt` (`RUN/checkpoints/step-N` -> `RUN`).
pub fn run_of(ckpt: &Path) -> PathBuf {
    ckpt.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default()
}

/// The folder holding a run's checkpoints.
pub fn checkpoints_dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

fn name_of(step: usize) -> String {
    format!("step-{step:06}")
}

/// Write checkpoint `state.step` of `run` holding `files` (name, bytes) and `state.json`: under
/// a temporary name, each file synced, renamed into place, then `latest` pointed at it.
pub fn save(run: &Path, state: &CheckpointState, files: &[(&str, &[u8])]) -> Result<PathBuf> {
    let name = name_of(state.step);
    let state = serde_json::to_string_pretty(state).expect("serialises");
    let dir = checkpoints_dir(run);
    std::fs::create_dir_all(&dir).at(&dir)?;
    let final_dir = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).at(&tmp)?;
    }
    std::fs::create_dir(&tmp).at(&tmp)?;
    let state_file = ("state.json", state.as_bytes());
    for (file, bytes) in files.iter().chain(std::iter::once(&state_file)) {
        let path = tmp.join(file);
        std::fs::write(&path, bytes).at(&path)?;
        std::fs::File::open(&path).and_then(|f| f.sync_all()).at(&path)?;
    }
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).at(&final_dir)?;
    }
    std::fs::rename(&tmp, &final_dir).at(&final_dir)?;
    write_atomic(&dir.join("latest"), name.as_bytes())?;
    Ok(final_dir)
}

/// The folder `latest` names, if any.
pub fn latest(run: &Path) -> Result<Option<PathBuf>> {
    let pointer = checkpoints_dir(run).join("latest");
    if !pointer.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&pointer).at(&pointer)?;
    let dir = checkpoints_dir(run).join(name.trim());
    if !dir.is_dir() {
        return Err(Error::format(&pointer, format!("names {}, which does not exist", dir.display())));
    }
    Ok(Some(dir))
}

/// Every complete checkpoint folder of a run, by step.
pub fn list(run: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let dir = checkpoints_dir(run);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out: Vec<(usize, PathBuf)> = std::fs::read_dir(&dir)
        .at(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let step = p.file_name()?.to_str()?.strip_prefix("step-")?.parse().ok()?;
            p.join("state.json").exists().then_some((step, p))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Which checkpoints of a run to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoints {
    Latest,
    All,
    Steps(Vec<usize>),
}

impl std::str::FromStr for Checkpoints {
    type Err = Error;

    /// `latest`, `all`, or comma-separated step numbers.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "latest" => Ok(Checkpoints::Latest),
            "all" => Ok(Checkpoints::All),
            list => Ok(Checkpoints::Steps(
                list.split(',')
                    .map(|v| {
                        v.trim().parse().map_err(|_| {
                            Error::config("checkpoint", format!("`{v}`: expected latest, all or step numbers"))
                        })
                    })
                    .collect::<Result<_>>()?,
            )),
        }
    }
}

/// The `(step, folder)` of the checkpoints `which` selects in `run`, by step.
pub fn select(run: &Path, which: &Checkpoints) -> Result<Vec<(usize, PathBuf)>> {
    let all = list(run)?;
    if all.is_empty() {
        return Err(Error::format(checkpoints_dir(run), "no checkpoint found; train the run first"));
    }
    match which {
        Checkpoints::Latest => {
            let dir = latest(run)?.ok_or_else(|| Error::format(checkpoints_dir(run), "no `latest` pointer"))?;
            Ok(vec![(read_state::<CheckpointState>(&dir)?.step, dir)])
        }
        Checkpoints::All => Ok(all),
        Checkpoints::Steps(steps) => steps
            .iter()
            .map(|s| {
                all.iter().find(|(k, _)| k == s).cloned().ok_or_else(|| {
                    Error::config("checkpoint", format!("no checkpoint at step {s} in {}", run.display()))
                })
            })
            .collect(),
    }
}

/// The checkpoint folder that `spec` names: `latest` or a step number of run folder `run`, or
/// (without `run`) a checkpoint folder or a run folder (its latest checkpoint).
pub fn resolve(run: Option<&Path>, spec: &str) -> Result<PathBuf> {
    let latest_of = |run: &Path| {
        latest(run)?.ok_or_else(|| {
            Error::format(checkpoints_dir(run), "no checkpoint found; train the run first (`ddmlab train`)")
        })
    };
    match run {
        Some(run) if spec == "latest" => latest_of(run),
        Some(run) => {
            let step: usize = spec
                .parse()
                .map_err(|_| Error::config("checkpoint", format!("`{spec}`: expected latest or a step number")))?;
            list(run)?.into_iter().find(|(s, _)| *s == step).map(|(_, p)| p).ok_or_else(|| {
                Error::config(
                    "checkpoint",
                    format!("no checkpoint at step {step} in {}", checkpoints_dir(run).display()),
                )
            })
        }
        None => {
            let path = Path::new(spec);
            if path.join("state.json").is_file() {
                Ok(path.to_path_buf())
            } else if checkpoints_dir(path).is_dir() {
                latest_of(path)
            } else {
                Err(Error::config(
                    "checkpoint",
                    format!("`{spec}` is neither a checkpoint folder nor a run folder (or pass --run RUN)"),
                ))
            }
        }
    }
}

/// A checkpoint file's bytes.
pub fn read_bytes(path: &Path) -> Result<Bytes> {
    Ok(Bytes::from_bytes_vec(std::fs::read(path).at(path)?))
}

/// A checkpoint's config (its `config.toml`, of any kind of run) and state.
pub fn read_meta<C: StoredConfig>(ckpt: &Path) -> Result<(C, CheckpointState)> {
    let cfg_path = ckpt.join("config.toml");
    let config = C::from_toml(&std::fs::read_to_string(&cfg_path).at(&cfg_path)?, &cfg_path)?;
    Ok((config, read_state(ckpt)?))
}

/// A checkpoint's `state.json`, whatever kind of run wrote it.
pub fn read_state<S: serde::de::DeserializeOwned>(ckpt: &Path) -> Result<S> {
    let path = ckpt.join("state.json");
    serde_json::from_str(&std::fs::read_to_string(&path).at(&path)?)
        .map_err(|e| Error::format(&path, format!("invalid checkpoint state ({e})")))
}

/// Load the weights of burnpack file `path` into `module` (built with the same structure); a
/// missing, corrupt or mismatched file is an error naming it.
pub fn load_into<M: burn::module::Module>(module: M, path: &Path) -> Result<M> {
    let record = burn::store::ModuleRecord::from_bytes(read_bytes(path)?)
        .map_err(|e| Error::format(path, format!("not a burnpack record ({e})")))?;
    module
        .try_load_record(record)
        .map_err(|e| Error::format(path, format!("weights do not match the model in config.toml ({e})")))
}
