//! The typed configuration of a pretraining run: model, tokenizer/objective, optimisation and
//! data. A preset fills it, flags and TOML files override it, [`RunConfig::validate`] checks
//! every field before any library code runs, and the resolved config is saved in the run folder
//! and in every checkpoint.

pub mod denoise;
pub mod legacy;
pub mod mar;

use serde::{Deserialize, Serialize};

pub use crate::field_diff::{FieldChange, changed_fields, refuse_changes_on_resume};
pub use denoise::DenoiseConfig;
pub use legacy::{DdpmConfig, LdaeConfig, LegacyRunConfig, PcaLatentConfig};
pub use mar::{MarLoss, MarSection, MarVariant};

use crate::data::transform::Augment;
use crate::error::{Error, Result};
use crate::models::VitConfig;
use crate::optim::decay::DecayExempt;
use crate::settings::check;

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
    /// The warm-up in steps, when positive, instead of `warmup_frac` of the total: a run trained
    /// on past its first total (`train --resume --steps`) keeps the warm-up it had.
    #[serde(default, skip_serializing_if = "crate::settings::is_default")]
    pub warmup_steps: usize,
    /// The learning rate at the end of the cosine, as a fraction of the peak.
    pub min_lr_frac: f64,
    pub weight_decay: f64,
    /// The parameters weight decay skips: `none` (every parameter decays) or
    /// `norms-biases-head` (1-D tensors and MAR's Diffusion Loss head, LTH14/mar's groups).
    #[serde(default, skip_serializing_if = "crate::settings::is_default")]
    pub decay_exempt: DecayExempt,
    pub beta1: f64,
    pub beta2: f64,
    /// AdamW epsilon (PyTorch's default 1e-8; burn's default differs).
    pub adam_eps: f64,
    /// Clip the global gradient norm (all parameters together, as PyTorch's
    /// `clip_grad_norm_`) to this value (0 = off).
    pub grad_clip: f64,
    /// EMA decay of the weights (warmed up as `min(decay, (1 + s) / (10 + s))` unless
    /// `ema_warmup` is off).
    pub ema_decay: f64,
    /// Warm the EMA decay up (on: every run made before this setting); off: the constant
    /// decay from the first step, as LTH14/mar's EMA.
    #[serde(default = "crate::settings::yes", skip_serializing_if = "crate::settings::is_true")]
    pub ema_warmup: bool,
    pub augment: Augment,
    /// Encode the training set through the tokenizer once (`RUN/latents-train.safetensors`:
    /// each image's posterior mean and standard deviation in token space, as LTH14/mar's
    /// `main_cache.py`) and train from it, sampling the posterior at each step as the uncached
    /// run does; needs `augment = none`.
    #[serde(default, skip_serializing_if = "crate::settings::is_default")]
    pub cache_latents: bool,
    pub seed: u64,
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// Append a metrics line every this many steps.
    pub log_every: usize,
}

impl TrainConfig {
    /// The warm-up steps of a run of `total` steps: `warmup_steps` when set, else
    /// `warmup_frac` of the total.
    pub fn warmup(&self, total: usize) -> usize {
        if self.warmup_steps > 0 { self.warmup_steps } else { (self.warmup_frac * total as f64).round() as usize }
    }

    /// This schedule trained on to `total` steps: the warm-up kept at its length in steps.
    /// Only a schedule constant after its warm-up (`min_lr_frac = 1`) extends to the longer
    /// run; a cosine's every step depends on the total, so it is an error naming the field.
    pub fn extended_to(&self, total: usize) -> Result<TrainConfig> {
        if total < self.steps {
            return Err(Error::config(
                "train.steps",
                format!("a resumed run may train on to more steps, not fewer (saved {}, asked {total})", self.steps),
            ));
        }
        if total > self.steps && self.min_lr_frac != 1.0 {
            return Err(Error::config(
                "train.min_lr_frac",
                format!(
                    "{}: the learning rate decays over the run's {} steps (cosine to this fraction), so training it on to \
                     {total} would not be the longer run; only a run whose rate is constant after warm-up (1.0) extends",
                    self.min_lr_frac, self.steps
                ),
            ));
        }
        if total == self.steps {
            return Ok(self.clone());
        }
        // A warm-up that rounded to no step stays none (`warmup_frac` of the longer total might not).
        let warmup = self.warmup(self.steps);
        let warmup_frac = if warmup == 0 { 0.0 } else { self.warmup_frac };
        Ok(TrainConfig { steps: total, warmup_steps: warmup, warmup_frac, ..self.clone() })
    }
}

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The preset this config started from.
    pub preset: String,
    /// Data set spec (`fashion-mnist`, `mnist`, `cifar10:DIR`, `folder:DIR`, ...).
    pub data: crate::data::DataSource,
    /// Use only the first `train_limit` training images (0 = all).
    pub train_limit: usize,
    /// Resize the data set's images to `model.image` on load (bilinear); without it a size
    /// mismatch is an error. The pixel-tokenizer rows of the ladder use it to keep the
    /// sequence length fixed while the patch grows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resize: bool,
    pub model: VitConfig,
    /// The denoising objective.
    pub denoise: DenoiseConfig,
    /// Present for a MAR run (masked autoregressive generation with the Diffusion Loss on the
    /// tokens of `denoise.tokenizer`); see [`MarSection`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mar: Option<MarSection>,
    /// Present for a fine-tuning run: the encoder of a pretrained run trained end to end with a
    /// classification head; see [`FinetuneSection`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finetune: Option<FinetuneSection>,
    pub train: TrainConfig,
}

/// A fine-tuning run's own settings (MAE's `main_finetune.py` in parentheses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneSection {
    /// The pretrained run whose encoder is fine-tuned (recorded; its weights are copied in at
    /// the first step).
    pub from: String,
    /// Start from the pretrained EMA weights (`pretrained`) or from a fresh initialisation of
    /// the same network (`random`: Table 4's "random init" row).
    pub init: FinetuneInit,
    /// Label smoothing of the cross-entropy (0.1).
    pub label_smoothing: f64,
    /// Layer-wise learning-rate decay: block `i` of `n` encoder blocks trains at
    /// `lr * layer_decay^(n + 1 - (i + 1))` (0.75).
    pub layer_decay: f64,
    /// Classes of the head (the data set's).
    pub classes: usize,
}

/// Where a fine-tuning run's encoder starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinetuneInit {
    Pretrained,
    Random,
}

/// The top-level keys of a [`RunConfig`] in TOML, and the two objective sections of configs
/// written before `[denoise]`.
const TOP_LEVEL_KEYS: [&str; 11] =
    ["preset", "data", "train_limit", "resize", "model", "denoise", "mar", "finetune", "train", "ldae", "ddpm"];

impl RunConfig {
    /// The network's configuration: the model section with its token input and output widths
    /// set by the objective (`model.image` is the data's shape, `model.patch` the token grid's).
    pub fn network(&self) -> VitConfig {
        let c = self.model.image.channels;
        VitConfig { in_dim: Some(self.denoise.in_dim(c)), out_dim: Some(self.denoise.out_dim(c)), ..self.model.clone() }
    }

    /// The MAR network of a run with a `[mar]` section.
    pub fn mar_network(&self) -> Option<crate::models::mar::MarConfig> {
        let token_dim = self.denoise.tokenizer.latent_dim(self.model.image.channels);
        self.mar.as_ref().map(|m| m.network(&self.model, token_dim))
    }

    /// Check every field; the first bad one is named in the error.
    pub fn validate(&self) -> Result<()> {
        if let Some(mar) = &self.mar {
            mar.validate(&self.model)?;
        }
        let d = &self.denoise;
        d.validate(self.model.image, self.model.num_classes)?;
        check(
            self.model.patch == d.tokenizer.patch(),
            "model.patch",
            format!(
                "{} must equal denoise.tokenizer.patch {}: one token per tokenizer patch",
                self.model.patch,
                d.tokenizer.patch()
            ),
        )?;
        let c = self.model.image.channels;
        for (field, set, want) in
            [("model.in_dim", self.model.in_dim, d.in_dim(c)), ("model.out_dim", self.model.out_dim, d.out_dim(c))]
        {
            if let Some(v) = set {
                check(
                    v == want,
                    field,
                    format!("{v} disagrees with the objective, which needs {want} (or leave it out)"),
                )?;
            }
        }
        self.network().validate()?;
        if let Some(f) = &self.finetune {
            check(
                (0.0..1.0).contains(&f.label_smoothing),
                "finetune.label_smoothing",
                format!("{} must be in [0, 1)", f.label_smoothing),
            )?;
            check(
                f.layer_decay > 0.0 && f.layer_decay <= 1.0,
                "finetune.layer_decay",
                format!("{} must be in (0, 1] (1: no decay)", f.layer_decay),
            )?;
            check(f.classes >= 2, "finetune.classes", "at least 2")?;
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
        check(
            t.warmup_steps == 0 || t.steps == 0 || t.warmup_steps < t.steps,
            "train.warmup_steps",
            format!(
                "{} must be fewer than train.steps ({}), or 0 (train.warmup_frac of the total)",
                t.warmup_steps, t.steps
            ),
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
        if t.cache_latents {
            check(
                t.augment == Augment::None,
                "train.cache_latents",
                "caches the latents of the stored images: it needs train.augment = none",
            )?;
            check(
                !matches!(d.tokenizer, crate::tokenizer::TokenizerSpec::Pixels { .. })
                    && (self.mar.is_some() || !d.noise_is_pixels()),
                "train.cache_latents",
                "this run encodes nothing per step (pixel tokens or pixel-space noise): there is no latent to cache",
            )?;
        }
        Ok(())
    }

    /// The config with `assignment` (`KEY=VALUE`, `KEY` a dotted path such as `train.blr`,
    /// `VALUE` in TOML syntax; a bare word is a string) applied; not validated.
    pub fn with_override(&self, assignment: &str) -> Result<RunConfig> {
        crate::settings::with_override(self, assignment)
    }

    /// The peak learning rate `blr * batch / 256`.
    pub fn lr(&self) -> f64 {
        self.train.blr * self.train.batch_size as f64 / 256.0
    }

    /// As TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("RunConfig serialises")
    }

    /// Parse TOML text (unknown fields are errors). A config with an `[ldae]` or `[ddpm]`
    /// section (written before `[denoise]`) is read as the equivalent `[denoise]` config.
    pub fn from_toml(text: &str, origin: &std::path::Path) -> Result<Self> {
        let invalid = |msg: String| Error::format(origin, format!("invalid config: {msg}"));
        let table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
        if let Some(key) = table.keys().find(|k| !TOP_LEVEL_KEYS.contains(&k.as_str())) {
            return Err(invalid(format!("unknown field `{key}`, expected one of {}", TOP_LEVEL_KEYS[..9].join(", "))));
        }
        let sections = ["denoise", "ldae", "ddpm"].iter().filter(|k| table.contains_key(**k)).count();
        if sections != 1 {
            return Err(invalid(
                "exactly one objective section is needed: [denoise] (or the older [ldae] / [ddpm])".into(),
            ));
        }
        if table.contains_key("denoise") {
            toml::from_str(text).map_err(|e| invalid(e.message().to_string()))
        } else {
            let legacy: LegacyRunConfig = toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
            Ok(legacy.upgrade())
        }
    }
}

impl crate::store::StoredConfig for RunConfig {
    fn from_toml(text: &str, origin: &std::path::Path) -> Result<Self> {
        RunConfig::from_toml(text, origin)
    }

    fn to_toml(&self) -> String {
        RunConfig::to_toml(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::NoiseSchedule;
    use crate::diffusion::denoise::{InputSpace, NoiseSpace, Target};
    use crate::recipes::preset;
    use crate::tokenizer::{LatentScale, TokenizerSpec};

    #[test]
    fn configs_round_trip_through_toml_with_the_objective_as_a_section() {
        for name in ["ldae-fmnist", "dit-fmnist", "dit-fmnist-pca"] {
            let c = preset(name).unwrap().config;
            let text = c.to_toml();
            assert!(text.contains("[denoise]") && text.contains("[denoise.tokenizer]"), "{name}:\n{text}");
            assert_eq!(RunConfig::from_toml(&text, std::path::Path::new("c.toml")).unwrap(), c, "{name}");
        }
    }

    /// A field the TOML leaves out at its default (`resize = false`, `model.gelu = "erf"`) can
    /// be set; a misspelt one is still named, and a bad value is still refused.
    #[test]
    fn overrides_reach_fields_left_out_at_their_default() {
        let c = preset("dit-tiny").unwrap().config;
        assert!(!c.to_toml().contains("gelu") && !c.to_toml().contains("resize"));
        let tanh = c.with_override("model.gelu=tanh").unwrap();
        assert_eq!(tanh.model.gelu, crate::nn::gelu::GeluKind::Tanh);
        assert!(c.with_override("resize=true").unwrap().resize);
        let err = c.with_override("model.gelx=tanh").unwrap_err().to_string();
        assert!(err.contains("no field `gelx`"), "{err}");
        let err = c.with_override("model.gelu=fast").unwrap_err().to_string();
        assert!(err.contains("fast"), "{err}");
        let err = c.with_override("modle.width=3").unwrap_err().to_string();
        assert!(err.contains("no field `modle`"), "{err}");
        // LTH14/mar's optimisation settings: absent at their defaults (every earlier run's
        // config reads and writes as before), set by name, refused when misspelt.
        assert!(!c.to_toml().contains("decay_exempt") && !c.to_toml().contains("ema_warmup"));
        assert_eq!((c.train.decay_exempt, c.train.ema_warmup), (crate::optim::decay::DecayExempt::None, true));
        let official = c.with_override("train.decay_exempt=norms-biases-head").unwrap();
        let official = official.with_override("train.ema_warmup=false").unwrap();
        assert_eq!(official.train.decay_exempt, crate::optim::decay::DecayExempt::NormsBiasesHead);
        assert!(!official.train.ema_warmup);
        assert_eq!(RunConfig::from_toml(&official.to_toml(), "c.toml".as_ref()).unwrap(), official);
        let err = c.with_override("train.decay_exempt=biases").unwrap_err().to_string();
        assert!(err.contains("biases") && err.contains("norms-biases-head"), "{err}");
    }

    #[test]
    fn unknown_keys_and_missing_or_double_objectives_are_named() {
        let path = std::path::Path::new("c.toml");
        let text = preset("dit-tiny").unwrap().config.to_toml();
        let err = RunConfig::from_toml(&format!("colour = 3\n{text}"), path).unwrap_err().to_string();
        assert!(err.contains("c.toml") && err.contains("unknown field `colour`"), "{err}");
        let err = RunConfig::from_toml(&format!("{text}\n[ldae]\nlatent_dim = 4\n"), path).unwrap_err().to_string();
        assert!(err.contains("exactly one objective"), "{err}");
        let inner = text.replace("target = \"eps\"", "target = \"score\"");
        let err = RunConfig::from_toml(&inner, path).unwrap_err().to_string();
        assert!(err.contains("score"), "{err}");
    }

    #[test]
    fn invalid_combinations_are_one_error_naming_the_field() {
        type Change = Box<dyn Fn(&mut RunConfig)>;
        let cases: Vec<(&str, Change, &str)> = vec![
            ("dit-tiny", Box::new(|c| c.denoise.class_dropout = 1.0), "denoise.class_dropout"),
            (
                "dit-tiny",
                Box::new(|c| c.denoise.noise = NoiseSchedule::LinearBeta { start: 0.02, end: 1e-4 }),
                "denoise.noise",
            ),
            ("dit-tiny", Box::new(|c| c.model.num_classes = 0), "denoise.class_dropout"),
            // A residual weight without a tokenizer that has a residual.
            (
                "dit-tiny",
                Box::new(|c| {
                    c.denoise.target = Target::Image;
                    c.denoise.residual_weight = Some(0.1);
                }),
                "denoise.residual_weight",
            ),
            // A residual weight on a latent target.
            ("ldae-tiny", Box::new(|c| c.denoise.target = Target::X0), "denoise.residual_weight"),
            (
                "ldae-tiny",
                Box::new(|c| {
                    c.denoise.noise_space = NoiseSpace::Pixels;
                    c.denoise.target = Target::Eps;
                    c.denoise.residual_weight = None;
                }),
                "denoise.target",
            ),
            (
                "ldae-tiny",
                Box::new(|c| {
                    c.denoise.noise_space = NoiseSpace::Pixels;
                    c.denoise.input = InputSpace::Latent;
                }),
                "denoise.input",
            ),
            (
                "ldae-tiny",
                Box::new(|c| {
                    c.denoise.tokenizer =
                        TokenizerSpec::Pca { patch: 5, latent_dim: 4, samples: 100, scale: LatentScale::None, seed: 0 }
                }),
                "denoise.tokenizer.patch",
            ),
            (
                "ldae-tiny",
                Box::new(|c| {
                    c.denoise.tokenizer =
                        TokenizerSpec::Pca { patch: 7, latent_dim: 4, samples: 100, scale: LatentScale::None, seed: 0 }
                }),
                "model.patch",
            ),
            ("ldae-tiny", Box::new(|c| c.model.out_dim = Some(3)), "model.out_dim"),
        ];
        for (name, change, field) in cases {
            let mut c = preset(name).unwrap().config;
            change(&mut c);
            let err =
                c.validate().err().unwrap_or_else(|| panic!("{name}: expected an error naming {field}")).to_string();
            assert!(err.contains(&format!("`{field}`")), "{name}, expected {field}: {err}");
        }
    }
}
