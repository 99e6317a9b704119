//! A tokenizer as a run's config names it (`[denoise.tokenizer]`, `kind = ...`).

use serde::{Deserialize, Serialize};

use crate::data::ImageShape;
use crate::error::{Error, Result};

/// How the latent is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatentScale {
    /// As the tokenizer produces it (l-DAE's PCA coordinates, raw pixels).
    None,
    /// Multiplied by `1 / std` of the training latents (latent diffusion's scale factor), so
    /// that noise schedules made for unit-variance data apply.
    Unit,
}

/// Which tokenizer and how it is fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TokenizerSpec {
    /// Patch-wise PCA keeping `latent_dim` components, fitted on `samples` patches.
    Pca { patch: usize, latent_dim: usize, samples: usize, scale: LatentScale, seed: u64 },
    /// A linear patch autoencoder trained by reconstruction (MSE) for `steps` Adam steps on
    /// `samples` patches.
    PatchAe { patch: usize, latent_dim: usize, samples: usize, steps: usize, scale: LatentScale, seed: u64 },
    /// The same with a Gaussian posterior, a reparameterised sample and a KL term weighted
    /// `kl_weight` against the summed squared reconstruction error.
    PatchVae {
        patch: usize,
        latent_dim: usize,
        samples: usize,
        steps: usize,
        kl_weight: f64,
        scale: LatentScale,
        seed: u64,
    },
    /// The identity on `p x p` patches: `d = p p C`.
    Pixels { patch: usize, scale: LatentScale },
}

impl TokenizerSpec {
    /// The patch side `p`.
    pub fn patch(&self) -> usize {
        match *self {
            TokenizerSpec::Pca { patch, .. }
            | TokenizerSpec::PatchAe { patch, .. }
            | TokenizerSpec::PatchVae { patch, .. }
            | TokenizerSpec::Pixels { patch, .. } => patch,
        }
    }

    /// The latent dimension `d` for images with `channels` channels.
    pub fn latent_dim(&self, channels: usize) -> usize {
        match *self {
            TokenizerSpec::Pca { latent_dim, .. }
            | TokenizerSpec::PatchAe { latent_dim, .. }
            | TokenizerSpec::PatchVae { latent_dim, .. } => latent_dim,
            TokenizerSpec::Pixels { patch, .. } => patch * patch * channels,
        }
    }

    /// How the latent is scaled.
    pub fn scale(&self) -> LatentScale {
        match *self {
            TokenizerSpec::Pca { scale, .. }
            | TokenizerSpec::PatchAe { scale, .. }
            | TokenizerSpec::PatchVae { scale, .. }
            | TokenizerSpec::Pixels { scale, .. } => scale,
        }
    }

    /// `pca`, `patch-ae`, `patch-vae`, `pixels`.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenizerSpec::Pca { .. } => "pca",
            TokenizerSpec::PatchAe { .. } => "patch-ae",
            TokenizerSpec::PatchVae { .. } => "patch-vae",
            TokenizerSpec::Pixels { .. } => "pixels",
        }
    }

    /// A short label for tables: `PCA d=8`, `pixels p=4 (d=16)`.
    pub fn label(&self, channels: usize) -> String {
        match self {
            TokenizerSpec::Pca { latent_dim, .. } => format!("patch PCA d={latent_dim}"),
            TokenizerSpec::PatchAe { latent_dim, .. } => format!("patch AE d={latent_dim}"),
            TokenizerSpec::PatchVae { latent_dim, .. } => format!("patch VAE d={latent_dim}"),
            TokenizerSpec::Pixels { patch, .. } => format!("pixels p={patch} (d={})", self.latent_dim(channels)),
        }
    }

    /// The file a run folder keeps the fitted tokenizer in (`pca.safetensors` as every run
    /// written before the tokenizer trait).
    pub fn file_name(&self) -> &'static str {
        match self {
            TokenizerSpec::Pca { .. } => "pca.safetensors",
            TokenizerSpec::PatchAe { .. } => "patch-ae.safetensors",
            TokenizerSpec::PatchVae { .. } => "patch-vae.safetensors",
            TokenizerSpec::Pixels { .. } => "pixels.safetensors",
        }
    }

    /// What identifies a fitted tokenizer, so that runs naming the same one share it: the
    /// spec, less what does not change the fit (PCA's kept dimension: the whole basis is
    /// stored).
    pub fn fit_key(&self, data: &str, image: ImageShape) -> String {
        let spec = match self {
            TokenizerSpec::Pca { patch, samples, seed, .. } => format!("pca-p{patch}-n{samples}-s{seed}"),
            TokenizerSpec::PatchAe { patch, latent_dim, samples, steps, scale, seed } => {
                format!("patch-ae-p{patch}-d{latent_dim}-n{samples}-k{steps}-{scale:?}-s{seed}")
            }
            TokenizerSpec::PatchVae { patch, latent_dim, samples, steps, kl_weight, scale, seed } => {
                format!("patch-vae-p{patch}-d{latent_dim}-n{samples}-k{steps}-kl{kl_weight}-{scale:?}-s{seed}")
            }
            TokenizerSpec::Pixels { patch, .. } => format!("pixels-p{patch}"),
        };
        let data: String = data.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        format!("{data}-{}x{}x{}-{spec}", image.channels, image.height, image.width).to_lowercase()
    }

    /// Check the spec for images of `image`; errors name `field.<key>`.
    pub fn validate(&self, image: ImageShape, field: &str) -> Result<()> {
        let ImageShape { channels, height, width } = image;
        let p = self.patch();
        if p == 0 || height % p != 0 || width % p != 0 {
            return Err(Error::config(
                format!("{field}.patch"),
                format!("{p} must divide the image size {height}x{width}"),
            ));
        }
        let dim = p * p * channels;
        let d = self.latent_dim(channels);
        if !(1..=dim).contains(&d) {
            return Err(Error::config(
                format!("{field}.latent_dim"),
                format!("{d} must be in 1..={dim} (patch * patch * channels)"),
            ));
        }
        match *self {
            TokenizerSpec::Pca { samples, .. } if samples < 2 => {
                Err(Error::config(format!("{field}.samples"), "must be at least 2"))
            }
            TokenizerSpec::PatchAe { samples, steps, .. } | TokenizerSpec::PatchVae { samples, steps, .. }
                if samples < 2 || steps == 0 =>
            {
                Err(Error::config(
                    format!("{field}.{}", if samples < 2 { "samples" } else { "steps" }),
                    "samples must be at least 2 and steps positive",
                ))
            }
            TokenizerSpec::PatchVae { kl_weight, .. } if !(kl_weight.is_finite() && kl_weight >= 0.0) => {
                Err(Error::config(format!("{field}.kl_weight"), format!("{kl_weight} must be a non-negative number")))
            }
            _ => Ok(()),
        }
    }
}
