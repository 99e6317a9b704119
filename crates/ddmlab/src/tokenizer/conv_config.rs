//! The typed configuration of a conv tokenizer's training run (`ddmlab tokenizer train`): the
//! KL autoencoder, its losses (each one switchable, as Table 1 of the l-DAE paper removes them
//! one at a time), the perceptual classifier, and the optimisation. Saved as `config.toml` in
//! the run folder and in every checkpoint.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::models::conv_ae::ConvAeConfig;
use crate::models::patchgan::PatchGanConfig;

/// The reconstruction term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reconstruction {
    /// `|x - x_hat|` (latent diffusion).
    L1,
    /// `(x - x_hat)^2`.
    L2,
}

/// The autoencoder's losses, in latent diffusion's `LPIPSWithDiscriminator` form:
/// `nll = sum_pixels rec + perceptual_weight * pixels * perceptual`,
/// `loss = nll + kl_weight * KL + adaptive_weight * disc_weight * g_loss` (from `disc_start`),
/// each summed per image and averaged over the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AeLossConfig {
    pub reconstruction: Reconstruction,
    /// Weight of `KL(q(z|x) || N(0, I))` (latent diffusion KL-f8: 1e-6).
    pub kl_weight: f64,
    /// Weight of the perceptual distance (latent diffusion: 1.0); 0 removes it.
    pub perceptual_weight: f64,
    /// Weight of the adversarial term on top of the adaptive weight (latent diffusion: 0.5);
    /// 0 removes the discriminator.
    pub disc_weight: f64,
    /// The step from which the adversarial terms are on (the generator is trained on
    /// reconstruction alone before it).
    pub disc_start: usize,
    /// The PatchGAN's first width and stride-2 layers.
    pub disc_channels: usize,
    pub disc_layers: usize,
}

impl AeLossConfig {
    /// Whether the adversarial terms are part of the loss at all.
    pub fn adversarial(&self) -> bool {
        self.disc_weight > 0.0
    }

    /// Whether the perceptual term is.
    pub fn perceptual(&self) -> bool {
        self.perceptual_weight > 0.0
    }
}

/// The perceptual classifier and how it is trained (before the autoencoder, on the data set's
/// labels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerceptualConfig {
    /// Stage widths (one feature map per stage enters the distance).
    pub widths: Vec<usize>,
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
}

/// Optimisation of the autoencoder and the discriminator (Adam, as latent diffusion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AeTrainConfig {
    pub steps: usize,
    pub batch_size: usize,
    /// Learning rate of both optimisers (latent diffusion: 4.5e-6 x batch size), constant.
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub seed: u64,
    pub log_every: usize,
    /// Checkpoint (and evaluate) every this many steps, and at the end.
    pub checkpoint_every: usize,
    /// Test images reconstructed for PSNR and rFID at each checkpoint.
    pub eval_images: usize,
}

/// Everything that defines a conv tokenizer's training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerRunConfig {
    /// The preset this config started from.
    pub preset: String,
    /// Data set spec, as a pretraining run's.
    pub data: crate::data::DataSource,
    /// Use only the first `train_limit` training images (0 = all).
    pub train_limit: usize,
    /// Resize the data set's images to `model.image` on load.
    pub resize: bool,
    pub model: ConvAeConfig,
    pub loss: AeLossConfig,
    pub perceptual: PerceptualConfig,
    pub train: AeTrainConfig,
}

fn check(ok: bool, field: &str, msg: impl Into<String>) -> Result<()> {
    if ok { Ok(()) } else { Err(Error::config(field, msg)) }
}

impl TokenizerRunConfig {
    /// The discriminator's sizes.
    pub fn discriminator(&self) -> PatchGanConfig {
        PatchGanConfig {
            in_channels: self.model.image.channels,
            channels: self.loss.disc_channels,
            layers: self.loss.disc_layers,
        }
    }

    /// Check every field; the first bad one is named in the error.
    pub fn validate(&self) -> Result<()> {
        self.model.validate("model")?;
        let l = &self.loss;
        for (field, v) in [
            ("loss.kl_weight", l.kl_weight),
            ("loss.perceptual_weight", l.perceptual_weight),
            ("loss.disc_weight", l.disc_weight),
        ] {
            check(v.is_finite() && v >= 0.0, field, format!("{v} must be a non-negative number"))?;
        }
        if l.adversarial() {
            let side = self.model.image.height.min(self.model.image.width);
            self.discriminator().validate(side, "loss")?;
        }
        if l.perceptual() {
            let p = &self.perceptual;
            check(
                !p.widths.is_empty() && !p.widths.contains(&0),
                "perceptual.widths",
                "must be non-empty and positive",
            )?;
            check(p.steps > 0 && p.batch_size > 0, "perceptual.steps", "steps and batch_size must be positive")?;
            check(p.lr.is_finite() && p.lr > 0.0, "perceptual.lr", format!("{} must be positive", p.lr))?;
        }
        let t = &self.train;
        check(t.steps > 0, "train.steps", "must be positive")?;
        check(t.batch_size > 0, "train.batch_size", "must be positive")?;
        check(t.lr.is_finite() && t.lr > 0.0, "train.lr", format!("{} must be positive", t.lr))?;
        for (field, b) in [("train.beta1", t.beta1), ("train.beta2", t.beta2)] {
            check((0.0..1.0).contains(&b), field, format!("{b} must be in [0, 1)"))?;
        }
        check(
            t.log_every > 0 && t.checkpoint_every > 0,
            "train.checkpoint_every",
            "log_every and checkpoint_every must be positive",
        )?;
        check(t.eval_images >= 2, "train.eval_images", "must be at least 2 (rFID needs a covariance)")?;
        Ok(())
    }

    /// `config` with one `KEY=VALUE` override applied.
    pub fn with_override(&self, assignment: &str) -> Result<Self> {
        crate::settings::with_override(self, assignment)
    }

    /// As TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("TokenizerRunConfig serialises")
    }

    /// Parse TOML text (unknown fields are errors naming `origin`), then validate.
    pub fn from_toml(text: &str, origin: &std::path::Path) -> Result<Self> {
        let config: Self = toml::from_str(text)
            .map_err(|e| Error::format(origin, format!("invalid tokenizer config: {}", e.message())))?;
        config.validate()?;
        Ok(config)
    }
}

impl crate::store::StoredConfig for TokenizerRunConfig {
    fn from_toml(text: &str, origin: &std::path::Path) -> Result<Self> {
        TokenizerRunConfig::from_toml(text, origin)
    }

    fn to_toml(&self) -> String {
        TokenizerRunConfig::to_toml(self)
    }
}
