//! A denoiser trainer's checkpoint (any [`Network`] and [`Objective`]): what it saves into a
//! checkpoint folder (`crate::store::checkpoint`) and how it is rebuilt from one.
//!
//! ```text
//! RUN/checkpoints/step-000500/   model.bpk  ema.bpk  optim.bpk  state.json  config.toml
//! ```

use std::path::{Path, PathBuf};

use burn::tensor::{Bytes, Device};

use super::step::{Network, Objective, Trainer, optimizer_of};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::store::checkpoint::{self, CheckpointState, load_into, read_bytes};

/// The trainer's checkpoint files besides `state.json`: weights, EMA, optimizer, config.
pub fn files<M: Network, O: Objective<M>>(trainer: &Trainer<M, O>) -> Result<Vec<(&'static str, Bytes)>> {
    let rec = |e: burn::store::RecordError| Error::Other(format!("serialising a checkpoint: {e}"));
    Ok(vec![
        ("model.bpk", trainer.model.valid().into_record().into_bytes().map_err(rec)?),
        ("ema.bpk", trainer.ema.clone().into_record().into_bytes().map_err(rec)?),
        ("optim.bpk", trainer.optim.into_bytes().map_err(rec)?),
        ("config.toml", Bytes::from_bytes_vec(trainer.config.to_toml().into_bytes())),
    ])
}

/// Write the trainer's state as checkpoint `state.step` of `run`; returns its folder.
pub fn save<M: Network, O: Objective<M>>(
    run: &Path,
    trainer: &Trainer<M, O>,
    state: &CheckpointState,
) -> Result<PathBuf> {
    let files = files(trainer)?;
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, &b[..])).collect();
    checkpoint::save(run, state, &refs)
}

/// A denoiser checkpoint's config and state.
pub fn read_meta(ckpt: &Path) -> Result<(RunConfig, CheckpointState)> {
    checkpoint::read_meta::<RunConfig>(ckpt)
}

/// Load weights into a freshly built network of `config` on `device` (any [`Network`]; the
/// denoising ViT unless the caller asks for another).
pub fn load_weights<M: Network>(ckpt: &Path, file: &str, config: &RunConfig, device: &Device) -> Result<M> {
    load_into(crate::nn::init::exclusive(|| M::build(config, device)), &ckpt.join(file))
}

/// Rebuild a trainer of any network and objective from a checkpoint; `objective` builds the
/// objective on the autodiff device.
pub fn restore_with<M: Network, O: Objective<M>>(
    ckpt: &Path,
    device: &Device,
    objective: impl FnOnce(&RunConfig, &Device) -> O,
) -> Result<(Trainer<M, O>, CheckpointState)> {
    let (config, state) = read_meta(ckpt)?;
    let ad = device.clone().autodiff();
    let model = load_weights::<M>(ckpt, "model.bpk", &config, &ad)?;
    let ema = load_weights::<M>(ckpt, "ema.bpk", &config, device)?;
    let optim_path = ckpt.join("optim.bpk");
    let optim = optimizer_of(&config)
        .from_bytes(read_bytes(&optim_path)?)
        .map_err(|e| Error::format(&optim_path, format!("invalid optimizer state ({e})")))?;
    let trainer = Trainer {
        objective: objective(&config, &ad),
        model,
        ema,
        optim,
        config,
        device: ad,
        shards: crate::parallel::workers(device),
    };
    Ok((trainer, state))
}
