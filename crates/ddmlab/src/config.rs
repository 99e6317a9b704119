//! The typed configuration of a pretraining run: model, tokenizer/objective, optimisation and
//! data. A preset fills it, flags and TOML files override it, [`RunConfig::validate`] checks
//! every field before any library code runs, and the resolved config is saved in the run folder
//! and in every checkpoint.

use serde::{Deserialize, Serialize};

use crate::data::transform::Augment;
use crate::error::{Error, Result};
use crate::models::VitConfig;

/// Patch-PCA tokenizer and l-DAE objective settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdaeConfig {
    /// Latent dimension per patch `d`.
    pub latent_dim: usize,
    /// Patches sampled to fit the PCA basis.
    pub pca_samples: usize,
    /// Loss weight of the PCA residual coordinates (the paper: 0.1).
    pub residual_weight: f64,
    /// Diffusion steps `T` (1000).
    pub timesteps: usize,
    /// `sigma_max` (the paper: sqrt(2)).
    pub sigma_max: f64,
    /// The timestep at which the probe reads features (the paper: 10).
    pub probe_t: usize,
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub batch_size: usize,
    /// Base learning rate; the actual one is `blr * batch_size / 256`.
    pub blr: f64,
    /// Total optimisation steps. `0` means: derive from `epochs` (or from `time_budget_min`).
    pub steps: usize,
    /// Epochs over the training set (used when `steps` is 0).
    pub epochs: f64,
    /// When positive and `steps` is 0: measure the step time and fit the run into this many
    /// minutes (the schedule is fixed from then on and saved with the run).
    pub time_budget_min: f64,
    /// Linear warm-up length as a fraction of the total steps.
    pub warmup_frac: f64,
    /// The learning rate at the end of the cosine, as a fraction of the peak.
    pub min_lr_frac: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// AdamW epsilon (PyTorch's default 1e-8; burn's default differs).
    pub adam_eps: f64,
    /// Clip the global gradient norm to this value (0 = off).
    pub grad_clip: f64,
    /// EMA decay of the weights (warmed up as `min(decay, (1 + s) / (10 + s))`).
    pub ema_decay: f64,
    pub augment: Augment,
    pub seed: u64,
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// Append a metrics line every this many steps.
    pub log_every: usize,
}

/// Everything that defines a pretraining run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The preset this config started from.
    pub preset: String,
    /// Data set spec (`fashion-mnist`, `mnist`, `cifar10:DIR`, `folder:DIR`, ...).
    pub data: String,
    /// Use only the first `train_limit` training images (0 = all).
    pub train_limit: usize,
    pub model: VitConfig,
    pub ldae: LdaeConfig,
    pub train: TrainConfig,
}

fn check(ok: bool, field: &str, msg: impl Into<String>) -> Result<()> {
    if ok { Ok(()) } else { Err(Error::config(field, msg)) }
}

impl RunConfig {
    /// Check every field; the first bad one is named in the error.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.data.parse::<crate::data::DataSource>()?;
        let l = &self.ldae;
        let dim = self.model.patch * self.model.patch * self.model.image.channels;
        check(
            l.latent_dim >= 1 && l.latent_dim <= dim,
            "ldae.latent_dim",
            format!("{} must be in 1..={dim} (patch * patch * channels)", l.latent_dim),
        )?;
        check(l.pca_samples >= 2, "ldae.pca_samples", "must be at least 2")?;
        check(
            (0.0..=1.0).contains(&l.residual_weight),
            "ldae.residual_weight",
            format!("{} must be in [0, 1]", l.residual_weight),
        )?;
        check(l.timesteps >= 2, "ldae.timesteps", "must be at least 2")?;
        check(l.sigma_max.is_finite() && l.sigma_max > 0.0, "ldae.sigma_max", "must be a positive number")?;
        check(
            l.probe_t < l.timesteps,
            "ldae.probe_t",
            format!("{} must be below ldae.timesteps {}", l.probe_t, l.timesteps),
        )?;
        let t = &self.train;
        check(t.batch_size >= 1, "train.batch_size", "must be positive")?;
        check(t.blr.is_finite() && t.blr > 0.0, "train.blr", format!("{} must be a positive number", t.blr))?;
        check(
            t.steps > 0 || t.epochs > 0.0 || t.time_budget_min > 0.0,
            "train.steps",
            "one of train.steps, train.epochs, train.time_budget_min must be positive",
        )?;
        check(t.epochs.is_finite() && t.epochs >= 0.0, "train.epochs", "must be a non-negative number")?;
        check(
            t.time_budget_min.is_finite() && t.time_budget_min >= 0.0,
            "train.time_budget_min",
            "must be a non-negative number",
        )?;
        check(
            (0.0..1.0).contains(&t.warmup_frac),
            "train.warmup_frac",
            format!("{} must be in [0, 1)", t.warmup_frac),
        )?;
        check((0.0..=1.0).contains(&t.min_lr_frac), "train.min_lr_frac", "must be in [0, 1]")?;
        check(t.weight_decay >= 0.0 && t.weight_decay.is_finite(), "train.weight_decay", "must be non-negative")?;
        check((0.0..1.0).contains(&t.beta1), "train.beta1", "must be in [0, 1)")?;
        check((0.0..1.0).contains(&t.beta2), "train.beta2", "must be in [0, 1)")?;
        check(t.adam_eps > 0.0 && t.adam_eps.is_finite(), "train.adam_eps", "must be positive")?;
        check(t.grad_clip >= 0.0 && t.grad_clip.is_finite(), "train.grad_clip", "must be non-negative (0 = off)")?;
        check((0.0..1.0).contains(&t.ema_decay), "train.ema_decay", format!("{} must be in [0, 1)", t.ema_decay))?;
        check(t.checkpoint_every >= 1, "train.checkpoint_every", "must be positive")?;
        check(t.log_every >= 1, "train.log_every", "must be positive")?;
        if let Augment::RandomResizedCrop { min_scale, .. } = t.augment {
            check(min_scale > 0.0 && min_scale <= 1.0, "train.augment.min_scale", "must be in (0, 1]")?;
        }
        Ok(())
    }

    /// The peak learning rate `blr * batch / 256`.
    pub fn lr(&self) -> f64 {
        self.train.blr * self.train.batch_size as f64 / 256.0
    }

    /// As TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("RunConfig serialises")
    }

    /// Parse TOML text (unknown fields are errors).
    pub fn from_toml(text: &str, origin: &std::path::Path) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::format(origin, format!("invalid config: {}", e.message())))
    }
}
