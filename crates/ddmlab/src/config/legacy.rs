//! The two objective sections written before `[denoise]`: `[ldae]` (l-DAE) and `[ddpm]` (DiT,
//! optionally in a patch-PCA latent with `[ddpm.latent]`). Config files and run folders that
//! hold them keep loading: each becomes the `[denoise]` settings that train the same thing,
//! drawing the same random numbers.

use serde::{Deserialize, Serialize};

use super::denoise::DenoiseConfig;
use super::{RunConfig, TrainConfig};
use crate::diffusion::denoise::{InputSpace, NoiseSpace, Target};
use crate::diffusion::{BetaSchedule, LossWeight, NoiseSchedule, Prediction};
use crate::models::VitConfig;
use crate::tokenizer::{LatentScale, TokenizerSpec};

/// `[ldae]`: patch PCA, latent noise, clean-image target with the residual weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdaeConfig {
    pub latent_dim: usize,
    pub pca_samples: usize,
    pub residual_weight: f64,
    pub timesteps: usize,
    pub sigma_max: f64,
    pub probe_t: usize,
}

/// `[ddpm]`: a variance-preserving schedule, an eps / x0 / v target, label dropout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdpmConfig {
    pub schedule: BetaSchedule,
    pub timesteps: usize,
    pub prediction: Prediction,
    pub class_dropout: f64,
    pub probe_t: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent: Option<PcaLatentConfig>,
}

/// `[ddpm.latent]`: diffusion in the unit-scaled patch-PCA latent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcaLatentConfig {
    pub patch: usize,
    pub latent_dim: usize,
    pub pca_samples: usize,
}

/// A run config with one of the old sections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyRunConfig {
    pub preset: String,
    pub data: crate::data::DataSource,
    pub train_limit: usize,
    pub model: VitConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldae: Option<LdaeConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddpm: Option<DdpmConfig>,
    pub train: TrainConfig,
}

fn target_of(prediction: Prediction) -> Target {
    match prediction {
        Prediction::Eps => Target::Eps,
        Prediction::X0 => Target::X0,
        Prediction::V => Target::V,
    }
}

impl LegacyRunConfig {
    /// The same run in today's terms. A latent-space DDPM's network read a `[d, H/p, W/p]`
    /// latent image with patch 1; as tokens that is the tokenizer's grid, so `model.patch`
    /// becomes the tokenizer's patch (the weights are the same).
    pub fn upgrade(self) -> RunConfig {
        let seed = self.train.seed;
        let mut model = self.model;
        let denoise = match (self.ldae, self.ddpm) {
            (Some(l), _) => DenoiseConfig {
                timesteps: l.timesteps,
                noise_space: NoiseSpace::Latent,
                input: InputSpace::Image,
                target: Target::Image,
                residual_weight: Some(l.residual_weight),
                loss_weight: LossWeight::InvOnePlusSigma2,
                class_dropout: 0.0,
                probe_t: l.probe_t,
                tokenizer: TokenizerSpec::Pca {
                    patch: model.patch,
                    latent_dim: l.latent_dim,
                    samples: l.pca_samples,
                    scale: LatentScale::None,
                    seed,
                },
                noise: NoiseSchedule::LinearSigma { sigma_max: l.sigma_max },
            },
            (None, Some(d)) => {
                let tokenizer = match &d.latent {
                    Some(l) => {
                        model.patch = l.patch;
                        TokenizerSpec::Pca {
                            patch: l.patch,
                            latent_dim: l.latent_dim,
                            samples: l.pca_samples,
                            scale: LatentScale::Unit,
                            seed,
                        }
                    }
                    None => TokenizerSpec::Pixels { patch: model.patch, scale: LatentScale::None },
                };
                DenoiseConfig {
                    timesteps: d.timesteps,
                    noise_space: NoiseSpace::Latent,
                    input: InputSpace::Latent,
                    target: target_of(d.prediction),
                    residual_weight: None,
                    loss_weight: LossWeight::Uniform,
                    // An unconditional model ignored the dropout rate.
                    class_dropout: if model.num_classes > 0 { d.class_dropout } else { 0.0 },
                    probe_t: d.probe_t,
                    tokenizer,
                    noise: NoiseSchedule::from_beta(d.schedule),
                }
            }
            (None, None) => unreachable!("from_toml checks that one section is present"),
        };
        RunConfig {
            preset: self.preset,
            data: self.data,
            train_limit: self.train_limit,
            resize: false,
            model,
            denoise,
            finetune: None,
            mar: None,
            train: self.train,
        }
    }
}

impl LegacyRunConfig {
    /// The config in the old terms, when it is one of the two objectives they could express
    /// (for the PyTorch reference script, which reads `[ldae]` / `[ddpm]`).
    pub fn downgrade(config: &RunConfig) -> Option<Self> {
        let d = &config.denoise;
        let mut model = VitConfig { in_dim: None, out_dim: None, ..config.model.clone() };
        let ldae_shape = d.noise_space == NoiseSpace::Latent
            && d.input == InputSpace::Image
            && d.target == Target::Image
            && d.loss_weight == LossWeight::InvOnePlusSigma2;
        let (ldae, ddpm) = match (&d.tokenizer, d.noise) {
            (
                TokenizerSpec::Pca { latent_dim, samples, scale: LatentScale::None, .. },
                NoiseSchedule::LinearSigma { sigma_max },
            ) if ldae_shape && d.class_dropout == 0.0 => (
                Some(LdaeConfig {
                    latent_dim: *latent_dim,
                    pca_samples: *samples,
                    residual_weight: d.residual_weight.unwrap_or(1.0),
                    timesteps: d.timesteps,
                    sigma_max,
                    probe_t: d.probe_t,
                }),
                None,
            ),
            (tok, noise) if d.is_generator() && d.loss_weight == LossWeight::Uniform => {
                let latent = match tok {
                    TokenizerSpec::Pixels { scale: LatentScale::None, .. } => None,
                    TokenizerSpec::Pca { patch, latent_dim, samples, scale: LatentScale::Unit, .. } => {
                        model.patch = 1;
                        Some(PcaLatentConfig { patch: *patch, latent_dim: *latent_dim, pca_samples: *samples })
                    }
                    _ => return None,
                };
                let ddpm = DdpmConfig {
                    schedule: noise.beta()?,
                    timesteps: d.timesteps,
                    prediction: d.target.prediction()?,
                    class_dropout: d.class_dropout,
                    probe_t: d.probe_t,
                    latent,
                };
                (None, Some(ddpm))
            }
            _ => return None,
        };
        Some(LegacyRunConfig {
            preset: config.preset.clone(),
            data: config.data.clone(),
            train_limit: config.train_limit,
            model,
            ldae,
            ddpm,
            train: config.train.clone(),
        })
    }
}
