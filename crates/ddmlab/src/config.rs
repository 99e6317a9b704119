//! The typed configuration of a pretraining run: model, tokenizer/objective, optimisation and
//! data. A preset fills it, flags and TOML files override it, [`RunConfig::validate`] checks
//! every field before any library code runs, and the resolved config is saved in the run folder
//! and in every checkpoint.

use serde::{Deserialize, Serialize};

use crate::data::transform::Augment;
use crate::diffusion::{BetaSchedule, Prediction};
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

/// DDPM objective settings (DiT): a variance-preserving schedule, the prediction target, and
/// label dropout for classifier-free guidance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdpmConfig {
    /// The beta schedule (`kind = "linear-beta" | "cosine" | "linear-gamma2"`).
    pub schedule: BetaSchedule,
    /// Diffusion steps `T` (1000).
    pub timesteps: usize,
    /// What the network predicts: `eps` (DDPM, DiT), `x0` or `v`.
    pub prediction: Prediction,
    /// Probability that a training label is replaced by the null class, so that one network
    /// learns the conditional and the unconditional model (DiT: 0.1). Class-conditional
    /// models only.
    pub class_dropout: f64,
    /// The timestep at which the probe reads features.
    pub probe_t: usize,
    /// Diffuse in the patch-PCA latent (`[d, H/p, W/p]`, scaled to unit average variance)
    /// instead of pixels; absent: pixel space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent: Option<PcaLatentConfig>,
}

/// The patch-PCA latent a latent-space DDPM runs in (see `tokenizer::LatentCodec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcaLatentConfig {
    /// Patch side `p` of the tokenizer.
    pub patch: usize,
    /// Components kept per patch `d`: the latent's channels.
    pub latent_dim: usize,
    /// Patches sampled to fit the PCA basis.
    pub pca_samples: usize,
}

/// What the network is trained to do. In TOML the variant is the section name: `[ldae]` or
/// `[ddpm]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Objective {
    /// l-DAE: noise in the patch-PCA latent, predict the clean image, weighted residual loss.
    #[serde(rename = "ldae")]
    Ldae(LdaeConfig),
    /// DDPM on a variance-preserving schedule with an eps / x0 / v target and MSE (DiT).
    #[serde(rename = "ddpm")]
    Ddpm(DdpmConfig),
}

impl Objective {
    /// The l-DAE settings, if this is the l-DAE objective.
    pub fn ldae(&self) -> Option<&LdaeConfig> {
        match self {
            Objective::Ldae(l) => Some(l),
            Objective::Ddpm(_) => None,
        }
    }

    /// The DDPM settings, if this is the DDPM objective.
    pub fn ddpm(&self) -> Option<&DdpmConfig> {
        match self {
            Objective::Ddpm(d) => Some(d),
            Objective::Ldae(_) => None,
        }
    }

    /// Diffusion steps `T`.
    pub fn timesteps(&self) -> usize {
        match self {
            Objective::Ldae(l) => l.timesteps,
            Objective::Ddpm(d) => d.timesteps,
        }
    }

    /// The timestep at which the probe reads features.
    pub fn probe_t(&self) -> usize {
        match self {
            Objective::Ldae(l) => l.probe_t,
            Objective::Ddpm(d) => d.probe_t,
        }
    }

    /// A short name for messages (`l-DAE`, `DDPM`).
    pub fn label(&self) -> &'static str {
        match self {
            Objective::Ldae(_) => "l-DAE",
            Objective::Ddpm(_) => "DDPM",
        }
    }
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

/// Everything that defines a training run.
///
/// (Unknown top-level keys are rejected by [`RunConfig::from_toml`]; serde cannot combine
/// `deny_unknown_fields` with the flattened objective.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The preset this config started from.
    pub preset: String,
    /// Data set spec (`fashion-mnist`, `mnist`, `cifar10:DIR`, `folder:DIR`, ...).
    pub data: String,
    /// Use only the first `train_limit` training images (0 = all).
    pub train_limit: usize,
    pub model: VitConfig,
    #[serde(flatten)]
    pub objective: Objective,
    pub train: TrainConfig,
}

/// The top-level keys of a [`RunConfig`] in TOML.
const TOP_LEVEL_KEYS: [&str; 7] = ["preset", "data", "train_limit", "model", "ldae", "ddpm", "train"];

fn check(ok: bool, field: &str, msg: impl Into<String>) -> Result<()> {
    if ok { Ok(()) } else { Err(Error::config(field, msg)) }
}

impl RunConfig {
    /// The network's configuration: the model section, with the input shape of the latent for
    /// a latent-space DDPM (`model.image` is always the data's image shape).
    pub fn network(&self) -> VitConfig {
        match self.objective.ddpm().and_then(|d| d.latent.as_ref()) {
            Some(l) => VitConfig {
                image: crate::tokenizer::LatentCodec::latent_shape(self.model.image, l.patch, l.latent_dim),
                ..self.model.clone()
            },
            None => self.model.clone(),
        }
    }

    /// The patch PCA this run fits, as `(patch, d, samples)`: l-DAE's tokenizer, or the latent
    /// of a latent-space DDPM.
    pub fn pca_spec(&self) -> Option<(usize, usize, usize)> {
        match &self.objective {
            Objective::Ldae(l) => Some((self.model.patch, l.latent_dim, l.pca_samples)),
            Objective::Ddpm(d) => d.latent.as_ref().map(|l| (l.patch, l.latent_dim, l.pca_samples)),
        }
    }

    /// Check every field; the first bad one is named in the error.
    pub fn validate(&self) -> Result<()> {
        if let Some(l) = self.objective.ddpm().and_then(|d| d.latent.as_ref()) {
            let crate::data::ImageShape { channels, height, width } = self.model.image;
            check(
                l.patch > 0 && height % l.patch == 0 && width % l.patch == 0,
                "ddpm.latent.patch",
                format!("{} must divide the image size {height}x{width}", l.patch),
            )?;
            let dim = l.patch * l.patch * channels;
            check(
                (1..=dim).contains(&l.latent_dim),
                "ddpm.latent.latent_dim",
                format!("{} must be in 1..={dim} (patch * patch * channels)", l.latent_dim),
            )?;
            check(l.pca_samples >= 2, "ddpm.latent.pca_samples", "must be at least 2")?;
        }
        self.network().validate()?;
        self.data.parse::<crate::data::DataSource>()?;
        match &self.objective {
            Objective::Ldae(l) => self.validate_ldae(l)?,
            Objective::Ddpm(d) => self.validate_ddpm(d)?,
        }
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

    fn validate_ldae(&self, l: &LdaeConfig) -> Result<()> {
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
        check(self.model.num_classes == 0, "model.num_classes", "must be 0: the l-DAE network sees no label")
    }

    fn validate_ddpm(&self, d: &DdpmConfig) -> Result<()> {
        check(d.timesteps >= 2, "ddpm.timesteps", "must be at least 2")?;
        check(
            (0.0..1.0).contains(&d.class_dropout),
            "ddpm.class_dropout",
            format!("{} must be in [0, 1)", d.class_dropout),
        )?;
        check(
            d.probe_t < d.timesteps,
            "ddpm.probe_t",
            format!("{} must be below ddpm.timesteps {}", d.probe_t, d.timesteps),
        )?;
        match d.schedule {
            BetaSchedule::LinearBeta { start, end } => check(
                0.0 < start && start <= end && end < 1.0,
                "ddpm.schedule",
                format!("linear-beta needs 0 < start <= end < 1, got start {start}, end {end}"),
            ),
            BetaSchedule::Cosine { s, max_beta } => check(
                s >= 0.0 && 0.0 < max_beta && max_beta < 1.0,
                "ddpm.schedule",
                format!("cosine needs s >= 0 and max_beta in (0, 1), got s {s}, max_beta {max_beta}"),
            ),
            BetaSchedule::LinearGamma2 => Ok(()),
        }
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
        let invalid = |msg: String| Error::format(origin, format!("invalid config: {msg}"));
        let table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
        if let Some(key) = table.keys().find(|k| !TOP_LEVEL_KEYS.contains(&k.as_str())) {
            return Err(invalid(format!("unknown field `{key}`, expected one of {}", TOP_LEVEL_KEYS.join(", "))));
        }
        if table.contains_key("ldae") == table.contains_key("ddpm") {
            return Err(invalid("exactly one objective section is needed: [ldae] or [ddpm]".into()));
        }
        toml::from_str(text).map_err(|e| invalid(e.message().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::preset;

    #[test]
    fn configs_round_trip_through_toml_with_the_objective_as_a_section() {
        for name in ["ldae-fmnist", "dit-fmnist"] {
            let c = preset(name).unwrap().config;
            let text = c.to_toml();
            let section = if name.starts_with("ldae") { "[ldae]" } else { "[ddpm]" };
            assert!(text.contains(section), "{name}:\n{text}");
            assert_eq!(RunConfig::from_toml(&text, std::path::Path::new("c.toml")).unwrap(), c, "{name}");
        }
    }

    #[test]
    fn unknown_keys_and_missing_or_double_objectives_are_named() {
        let path = std::path::Path::new("c.toml");
        let text = preset("dit-tiny").unwrap().config.to_toml();
        let err = RunConfig::from_toml(&format!("colour = 3\n{text}"), path).unwrap_err().to_string();
        assert!(err.contains("c.toml") && err.contains("unknown field `colour`"), "{err}");
        let ldae = preset("ldae-tiny").unwrap().config.to_toml();
        let ldae_section = &ldae[ldae.find("[ldae]").unwrap()..ldae.find("[train]").unwrap()];
        let err = RunConfig::from_toml(&format!("{text}\n{ldae_section}"), path).unwrap_err().to_string();
        assert!(err.contains("exactly one objective"), "{err}");
        let inner = text.replace("prediction = \"eps\"", "prediction = \"score\"");
        let err = RunConfig::from_toml(&inner, path).unwrap_err().to_string();
        assert!(err.contains("score"), "{err}");
    }

    #[test]
    fn ddpm_fields_are_validated_by_name() {
        let mut c = preset("dit-tiny").unwrap().config;
        if let Objective::Ddpm(d) = &mut c.objective {
            d.class_dropout = 1.0;
        }
        assert!(c.validate().unwrap_err().to_string().contains("ddpm.class_dropout"));
        let mut c = preset("dit-tiny").unwrap().config;
        if let Objective::Ddpm(d) = &mut c.objective {
            d.schedule = BetaSchedule::LinearBeta { start: 0.02, end: 1e-4 };
        }
        assert!(c.validate().unwrap_err().to_string().contains("ddpm.schedule"));
        let mut c = preset("ldae-tiny").unwrap().config;
        c.model.num_classes = 10;
        assert!(c.validate().unwrap_err().to_string().contains("model.num_classes"));
        let mut c = preset("dit-tiny").unwrap().config;
        if let Objective::Ddpm(d) = &mut c.objective {
            d.latent = Some(PcaLatentConfig { patch: 5, latent_dim: 8, pca_samples: 100 });
        }
        assert!(c.validate().unwrap_err().to_string().contains("ddpm.latent.patch"));
        // Patch 4 on 28 x 28 gives a 7 x 7 latent grid, which DiT patch 4 does not divide.
        if let Objective::Ddpm(d) = &mut c.objective {
            d.latent = Some(PcaLatentConfig { patch: 4, latent_dim: 8, pca_samples: 100 });
        }
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("model.patch") && err.contains("7x7"), "{err}");
    }
}
