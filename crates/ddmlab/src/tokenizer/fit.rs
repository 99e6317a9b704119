//! Fitting a tokenizer once, keeping it in a file, and binding it to a device.
//!
//! The fitted values live on the host ([`FittedTokenizer`]); a run folder keeps them in the
//! file its spec names (`pca.safetensors`, `patch-ae.safetensors`, ...), and `bind` puts them on
//! a device behind the [`Tokenizer`] trait. A file that does not match the spec (another kind,
//! patch or latent size) is an error naming it.

use std::path::Path;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::Tokenizer;
use super::conv_vae::FittedConvVae;
use super::patch_ae::{AeTraining, PatchAutoencoder};
use super::pca::{PatchPca, PcaTokenizer, sample_patches};
use super::pixels::PixelTokenizer;
use super::spec::{LatentScale, TokenizerSpec};
use super::store::{self, Named};
use crate::data::{ImageSet, ImageShape};
use crate::error::Result;

/// A fitted tokenizer on the host.
#[derive(Debug, Clone, PartialEq)]
pub enum FittedTokenizer {
    /// The whole PCA basis; the spec's `d` and scale are applied when bound.
    Pca {
        pca: PatchPca,
        latent_dim: usize,
        unit: bool,
    },
    PatchAe(PatchAutoencoder),
    /// The identity, with its scale.
    Pixels {
        patch: usize,
        channels: usize,
        scale: f64,
    },
    /// A trained conv VAE (trained in its own stage: `runs::tokenizer_fit`).
    ConvVae(Box<FittedConvVae>),
}

/// What fitting measured: the held-out reconstruction error (mean squared error per pixel, in
/// `[-1, 1]` units) along the fit, and at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    pub kind: String,
    pub latent_dim: usize,
    /// `(step, error)`; one point for closed-form fits.
    pub curve: Vec<(usize, f64)>,
    pub reconstruction_mse: f64,
    pub seconds: f64,
}

impl FittedTokenizer {
    /// Fit `spec` on the images of `set`.
    pub fn fit(spec: &TokenizerSpec, set: &ImageSet, device: &Device) -> Result<(Self, FitReport)> {
        let started = std::time::Instant::now();
        let channels = set.shape.channels;
        let unit = spec.scale() == LatentScale::Unit;
        let (fitted, curve) = match *spec {
            TokenizerSpec::Pca { patch, latent_dim, samples, seed, .. } => {
                let pca = PatchPca::fit(set, patch, samples, seed)?;
                // The error of keeping d components: the discarded variance per pixel.
                let mse = pca.eigenvalues[latent_dim..].iter().sum::<f64>() / pca.dim() as f64;
                (FittedTokenizer::Pca { pca, latent_dim, unit }, vec![(0, mse)])
            }
            TokenizerSpec::PatchAe { patch, latent_dim, samples, steps, seed, .. }
            | TokenizerSpec::PatchVae { patch, latent_dim, samples, steps, seed, .. } => {
                let kl_weight = match *spec {
                    TokenizerSpec::PatchVae { kl_weight, .. } => kl_weight,
                    _ => 0.0,
                };
                let patches = sample_patches(set, patch, samples, seed)?;
                let how = AeTraining {
                    latent_dim,
                    variational: matches!(spec, TokenizerSpec::PatchVae { .. }),
                    kl_weight,
                    steps,
                    batch_size: 1024,
                    lr: 1e-2,
                    seed,
                };
                let (mut ae, curve) = PatchAutoencoder::train(&patches, patch, channels, &how, device);
                if unit {
                    ae.scale = ae.unit_scale(&patches);
                }
                (FittedTokenizer::PatchAe(ae), curve)
            }
            TokenizerSpec::Pixels { patch, .. } => {
                let scale = if unit { 1.0 / pixel_std(set).max(1e-12) } else { 1.0 };
                (FittedTokenizer::Pixels { patch, channels, scale }, vec![(0, 0.0)])
            }
            TokenizerSpec::ConvVae { .. } => {
                return Err(crate::Error::config(
                    "denoise.tokenizer.kind",
                    "a conv VAE is trained in its own stage (`ddmlab tokenizer train`, or fitted by the run), not here",
                ));
            }
        };
        let report = FitReport {
            kind: spec.kind().into(),
            latent_dim: spec.latent_dim(channels),
            reconstruction_mse: curve.last().map(|c| c.1).unwrap_or(0.0),
            curve,
            seconds: started.elapsed().as_secs_f64(),
        };
        Ok((fitted, report))
    }

    /// Save to `path` (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        match self {
            FittedTokenizer::Pca { pca, .. } => pca.save(path),
            FittedTokenizer::PatchAe(ae) => {
                let (dim, d) = (ae.dim(), ae.latent_dim);
                let mut tensors = vec![
                    Named { name: "enc_w", shape: vec![dim, d], values: &ae.enc_w },
                    Named { name: "enc_b", shape: vec![d], values: &ae.enc_b },
                    Named { name: "dec_w", shape: vec![d, dim], values: &ae.dec_w },
                    Named { name: "dec_b", shape: vec![dim], values: &ae.dec_b },
                ];
                if ae.variational {
                    tensors.push(Named { name: "logvar_w", shape: vec![dim, d], values: &ae.logvar_w });
                    tensors.push(Named { name: "logvar_b", shape: vec![d], values: &ae.logvar_b });
                }
                store::save(
                    path,
                    &tensors,
                    &[
                        ("kind", if ae.variational { "patch-vae" } else { "patch-ae" }.into()),
                        ("patch", ae.patch.to_string()),
                        ("channels", ae.channels.to_string()),
                        ("latent_dim", d.to_string()),
                        ("scale", format!("{:e}", ae.scale)),
                    ],
                )
            }
            FittedTokenizer::ConvVae(vae) => vae.save(path),
            FittedTokenizer::Pixels { patch, channels, scale } => store::save(
                path,
                &[],
                &[
                    ("kind", "pixels".into()),
                    ("patch", patch.to_string()),
                    ("channels", channels.to_string()),
                    ("scale", format!("{scale:e}")),
                ],
            ),
        }
    }

    /// Load the tokenizer `spec` names from `path`, for images with `channels` channels.
    pub fn load(spec: &TokenizerSpec, path: &Path, channels: usize) -> Result<Self> {
        let unit = spec.scale() == LatentScale::Unit;
        let expect = |file: &store::Loaded, key: &str, want: String| -> Result<()> {
            let got = file.text(key)?;
            if got == want {
                Ok(())
            } else {
                Err(file.bad(format!("holds a tokenizer with {key} = {got}, but the config asks for {want}")))
            }
        };
        match *spec {
            TokenizerSpec::Pca { patch, latent_dim, .. } => {
                let pca = PatchPca::load(path)?;
                if pca.patch != patch || pca.channels != channels {
                    return Err(crate::Error::format(
                        path,
                        format!(
                            "holds a PCA of {}x{} patches with {} channels, but the config asks for {patch}x{patch} with {channels}",
                            pca.patch, pca.patch, pca.channels
                        ),
                    ));
                }
                Ok(FittedTokenizer::Pca { pca, latent_dim, unit })
            }
            TokenizerSpec::PatchAe { patch, latent_dim, .. } | TokenizerSpec::PatchVae { patch, latent_dim, .. } => {
                let file = store::Loaded::read(path)?;
                expect(&file, "kind", spec.kind().into())?;
                expect(&file, "patch", patch.to_string())?;
                expect(&file, "channels", channels.to_string())?;
                expect(&file, "latent_dim", latent_dim.to_string())?;
                let (dim, d) = (patch * patch * channels, latent_dim);
                let variational = matches!(spec, TokenizerSpec::PatchVae { .. });
                let scale: f64 = file.number("scale")?;
                if !(scale.is_finite() && scale > 0.0) {
                    return Err(file.bad(format!("metadata `scale` = {scale} must be positive")));
                }
                Ok(FittedTokenizer::PatchAe(PatchAutoencoder {
                    patch,
                    channels,
                    latent_dim: d,
                    variational,
                    enc_w: file.tensor("enc_w", dim * d)?,
                    enc_b: file.tensor("enc_b", d)?,
                    logvar_w: if variational { file.tensor("logvar_w", dim * d)? } else { Vec::new() },
                    logvar_b: if variational { file.tensor("logvar_b", d)? } else { Vec::new() },
                    dec_w: file.tensor("dec_w", d * dim)?,
                    dec_b: file.tensor("dec_b", dim)?,
                    scale,
                }))
            }
            TokenizerSpec::ConvVae { cells, ref config, .. } => {
                let mut vae = FittedConvVae::load(path)?;
                if vae.config != **config {
                    let fields: Vec<String> = crate::field_diff::changed_fields(&vae.config, &**config)
                        .iter()
                        .map(|c| format!("{} = {} there, {} here", c.key, c.saved, c.requested))
                        .collect();
                    return Err(crate::Error::format(
                        path,
                        format!(
                            "holds a conv VAE trained by another config than this run's tokenizer (preset `{}`): {}",
                            config.preset,
                            fields.join("; ")
                        ),
                    ));
                }
                // How many latent cells make a token is the run's choice, not the network's.
                vae.cells = cells;
                // The weights must load into the network the config describes.
                vae.network(&Device::flex(), path)?;
                Ok(FittedTokenizer::ConvVae(Box::new(vae)))
            }
            TokenizerSpec::Pixels { patch, .. } => {
                let file = store::Loaded::read(path)?;
                expect(&file, "kind", "pixels".into())?;
                expect(&file, "patch", patch.to_string())?;
                expect(&file, "channels", channels.to_string())?;
                let scale: f64 = file.number("scale")?;
                if !(scale.is_finite() && scale > 0.0) {
                    return Err(file.bad(format!("metadata `scale` = {scale} must be positive")));
                }
                Ok(FittedTokenizer::Pixels { patch, channels, scale })
            }
        }
    }

    /// On `device`, for images of `image`.
    pub fn bind(&self, image: ImageShape, device: &Device) -> Box<dyn Tokenizer> {
        match self {
            FittedTokenizer::Pca { pca, latent_dim, unit } => {
                Box::new(PcaTokenizer::new(pca, *latent_dim, *unit, image, device))
            }
            FittedTokenizer::PatchAe(ae) => Box::new(ae.bind(image, device)),
            FittedTokenizer::Pixels { patch, scale, .. } => {
                Box::new(PixelTokenizer { patch: *patch, image, scale: *scale })
            }
            FittedTokenizer::ConvVae(vae) => {
                Box::new(vae.bind(device, Path::new("conv-vae.safetensors")).expect("weights checked when loaded"))
            }
        }
    }
}

/// The standard deviation of every pixel value of `set` in `[-1, 1]` units.
fn pixel_std(set: &ImageSet) -> f64 {
    let (mut sum, mut sq) = (0.0f64, 0.0f64);
    for &v in &set.images {
        let x = crate::data::to_unit(v) as f64;
        sum += x;
        sq += x * x;
    }
    let n = set.images.len().max(1) as f64;
    (sq / n - (sum / n).powi(2)).max(0.0).sqrt()
}
