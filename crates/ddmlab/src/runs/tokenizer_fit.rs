//! A run's tokenizer, fitted once and kept in its folder: closed-form and patch fits in place,
//! a conv VAE trained in its own stage (`RUN/conv-vae/`, resumable, stopped by the same time
//! limit) and then read like any other.

use std::path::Path;

use burn::tensor::Device;

use super::tokenizer::{TokenizerTrainOptions, train_tokenizer};
use crate::config::RunConfig;
use crate::data::ImageSet;
use crate::error::{Error, IoContext, Result};
use crate::store::checkpoint;
use crate::tokenizer::conv_vae::FittedConvVae;
use crate::tokenizer::{FitReport, FittedTokenizer, LatentScale, TokenizerSpec};
use crate::train::observer::Observer;
use crate::train::run_folder::{conv_vae_run, load_tokenizer, tokenizer_path, write_fit_report};

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
    crate::store::provenance::record(run, &crate::store::provenance::Provenance::now("tokenizer", detail, device))?;
    obs.message(&format!(
        "tokenizer {}: held-out reconstruction MSE {:.5} per pixel ({:.1} s)",
        spec.label(set.shape.channels),
        report.reconstruction_mse,
        report.seconds
    ));
    Ok(Some(fitted))
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
    let state: checkpoint::CheckpointState = checkpoint::read_state(&ckpt)?;
    let report = FitReport {
        kind: spec.kind().into(),
        latent_dim: spec.latent_dim(set.shape.channels),
        reconstruction_mse: curve.last().map(|c| c.1).unwrap_or(f64::NAN),
        curve,
        seconds: state.elapsed_s,
    };
    Ok(Some((FittedTokenizer::ConvVae(Box::new(vae)), report)))
}
