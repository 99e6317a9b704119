//! A tokenizer as a run's config names it (`[denoise.tokenizer]`, `kind = ...`).

use serde::{Deserialize, Serialize};

use crate::data::ImageShape;
use crate::error::{Error, Result};
use crate::tokenizer::conv_config::TokenizerRunConfig;

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
    /// A conv KL autoencoder trained by `config` (its own stage, `ddmlab tokenizer train`);
    /// a token is `cells x cells` latent positions (`d = cells^2 z`, patch `stride cells`).
    ConvVae { cells: usize, scale: LatentScale, config: Box<TokenizerRunConfig> },
}

impl TokenizerSpec {
    /// The patch side `p`.
    pub fn patch(&self) -> usize {
        match *self {
            TokenizerSpec::Pca { patch, .. }
            | TokenizerSpec::PatchAe { patch, .. }
            | TokenizerSpec::PatchVae { patch, .. }
            | TokenizerSpec::Pixels { patch, .. } => patch,
            TokenizerSpec::ConvVae { cells, ref config, .. } => config.model.stride() * cells,
        }
    }

    /// The latent dimension `d` for images with `channels` channels.
    pub fn latent_dim(&self, channels: usize) -> usize {
        match *self {
            TokenizerSpec::Pca { latent_dim, .. }
            | TokenizerSpec::PatchAe { latent_dim, .. }
            | TokenizerSpec::PatchVae { latent_dim, .. } => latent_dim,
            TokenizerSpec::Pixels { patch, .. } => patch * patch * channels,
            TokenizerSpec::ConvVae { cells, ref config, .. } => cells * cells * config.model.z_channels,
        }
    }

    /// How the latent is scaled.
    pub fn scale(&self) -> LatentScale {
        match *self {
            TokenizerSpec::Pca { scale, .. }
            | TokenizerSpec::PatchAe { scale, .. }
            | TokenizerSpec::PatchVae { scale, .. }
            | TokenizerSpec::Pixels { scale, .. }
            | TokenizerSpec::ConvVae { scale, .. } => scale,
        }
    }

    /// `pca`, `patch-ae`, `patch-vae`, `pixels`, `conv-vae`.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenizerSpec::Pca { .. } => "pca",
            TokenizerSpec::PatchAe { .. } => "patch-ae",
            TokenizerSpec::PatchVae { .. } => "patch-vae",
            TokenizerSpec::Pixels { .. } => "pixels",
            TokenizerSpec::ConvVae { .. } => "conv-vae",
        }
    }

    /// A short label for tables: `PCA d=8`, `pixels p=4 (d=16)`.
    pub fn label(&self, channels: usize) -> String {
        match self {
            TokenizerSpec::Pca { latent_dim, .. } => format!("patch PCA d={latent_dim}"),
            TokenizerSpec::PatchAe { latent_dim, .. } => format!("patch AE d={latent_dim}"),
            TokenizerSpec::PatchVae { latent_dim, .. } => format!("patch VAE d={latent_dim}"),
            TokenizerSpec::Pixels { patch, .. } => format!("pixels p={patch} (d={})", self.latent_dim(channels)),
            TokenizerSpec::ConvVae { config, .. } => {
                let l = &config.loss;
                let losses = match (l.perceptual(), l.adversarial()) {
                    (true, true) => "",
                    (false, true) => ", no perceptual loss",
                    (true, false) => ", no adversarial loss",
                    (false, false) => ", plain VAE",
                };
                format!("conv VAE d={}{losses}", self.latent_dim(channels))
            }
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
            TokenizerSpec::ConvVae { .. } => "conv-vae.safetensors",
        }
    }

    /// Whether a tokenizer fitted for `self` serves a run that names `other`: the same spec,
    /// or conv VAEs of one training config and latent scale (how many latent cells make a
    /// token is the run's choice, applied when the latent is read; the scale is one number over
    /// the whole latent).
    pub fn same_fit(&self, other: &TokenizerSpec) -> bool {
        match (self, other) {
            (
                TokenizerSpec::ConvVae { scale: a, config: ca, .. },
                TokenizerSpec::ConvVae { scale: b, config: cb, .. },
            ) => a == b && ca == cb,
            _ => self == other,
        }
    }

    /// What identifies a fitted tokenizer, so that runs naming the same one share it: the
    /// spec, less what does not change the fit (PCA's kept dimension: the whole basis is
    /// stored).
    pub fn fit_key(&self, data: &crate::data::DataSource, image: ImageShape) -> String {
        let spec = match self {
            TokenizerSpec::Pca { patch, samples, seed, .. } => format!("pca-p{patch}-n{samples}-s{seed}"),
            TokenizerSpec::PatchAe { patch, latent_dim, samples, steps, scale, seed } => {
                format!("patch-ae-p{patch}-d{latent_dim}-n{samples}-k{steps}-{scale:?}-s{seed}")
            }
            TokenizerSpec::PatchVae { patch, latent_dim, samples, steps, kl_weight, scale, seed } => {
                format!("patch-vae-p{patch}-d{latent_dim}-n{samples}-k{steps}-kl{kl_weight}-{scale:?}-s{seed}")
            }
            TokenizerSpec::Pixels { patch, .. } => format!("pixels-p{patch}"),
            TokenizerSpec::ConvVae { cells, scale, config } => {
                // The training config is long: a digest of it names the trained network.
                let digest: String = {
                    use md5::Digest;
                    md5::Md5::digest(config.to_toml().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
                };
                format!("conv-vae-{}-c{cells}-{scale:?}-{}", config.preset, &digest[..10])
            }
        };
        let data: String = data.to_string().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        format!("{data}-{}x{}x{}-{spec}", image.channels, image.height, image.width).to_lowercase()
    }

    /// Check the spec for images of `image`; errors name `field.<key>`.
    pub fn validate(&self, image: ImageShape, field: &str) -> Result<()> {
        let ImageShape { channels, height, width } = image;
        if let TokenizerSpec::ConvVae { cells, config, .. } = self {
            // The training config's own errors name its fields inside this one.
            config.validate().map_err(|e| match e {
                Error::Config { field: inner, msg } => Error::config(format!("{field}.config.{inner}"), msg),
                other => other,
            })?;
            if config.model.image != image {
                return Err(Error::config(
                    format!("{field}.config.model.image"),
                    format!("{} must be the run's image shape {image}", config.model.image),
                ));
            }
            let latent = config.model.latent_shape();
            let s = config.model.stride();
            if *cells == 0
                || latent.height % cells != 0
                || latent.width % cells != 0
                || latent.height * s != height
                || latent.width * s != width
            {
                return Err(Error::config(
                    format!("{field}.cells"),
                    format!(
                        "{cells} must tile the {}x{} latent, which must cover the {height}x{width} image exactly (stride {s})",
                        latent.height, latent.width
                    ),
                ));
            }
        }
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
