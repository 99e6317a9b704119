//! The objective a run trains, bound to what it needs on the training device, and the random
//! draws of one batch. The training step is the same for every objective: draw, split into
//! shards, loss, backward; only [`TrainObjective::draw`] and [`TrainObjective::loss`] differ.

use burn::tensor::{Device, Tensor};
use rand::RngExt;
use rand_distr::StandardNormal;

use crate::config::{Objective, RunConfig};
use crate::data::loader::{purpose, step_rng};
use crate::diffusion::{DdpmObjective, DdpmTerms, LdaeObjective, LdaeTerms, SigmaSchedule, VpSchedule};
use crate::error::{Error, Result};
use crate::models::DenoisingVit;
use crate::tokenizer::{LatentCodec, PatchPca, PcaTensors};

/// The l-DAE objective a config describes.
pub fn ldae_objective_of(config: &RunConfig) -> Option<LdaeObjective> {
    config.objective.ldae().map(|l| LdaeObjective {
        schedule: SigmaSchedule::linear(l.timesteps, l.sigma_max),
        residual_weight: l.residual_weight,
        patch: config.model.patch,
    })
}

/// The DDPM objective a config describes.
pub fn ddpm_objective_of(config: &RunConfig) -> Option<DdpmObjective> {
    config
        .objective
        .ddpm()
        .map(|d| DdpmObjective { schedule: VpSchedule::new(d.schedule, d.timesteps), prediction: d.prediction })
}

/// The latent codec of a latent-space DDPM run (`None` in pixel space); `pca` is the run's
/// fitted basis.
pub fn latent_codec(config: &RunConfig, pca: Option<&PatchPca>, device: &Device) -> Result<Option<LatentCodec>> {
    match config.objective.ddpm().and_then(|d| d.latent.as_ref()) {
        None => Ok(None),
        Some(l) => {
            let pca = pca.ok_or_else(|| Error::Other("a latent-space DDPM needs the run's PCA basis".into()))?;
            Ok(Some(LatentCodec::new(pca, l.latent_dim, config.model.image, device)))
        }
    }
}

/// An objective ready to train.
pub enum TrainObjective {
    /// l-DAE with its PCA basis on the training device.
    /// `noise_per_image` is `L d`.
    Ldae { objective: LdaeObjective, pca: Box<PcaTensors>, noise_per_image: usize },
    /// DDPM; `num_classes > 0` makes the network class-conditional, with labels dropped to the
    /// null class with probability `class_dropout`. `noise_per_image` is `C H W` of the
    /// network's input: the image, or the patch-PCA latent when `latent` is set.
    Ddpm {
        objective: DdpmObjective,
        num_classes: usize,
        class_dropout: f64,
        noise_per_image: usize,
        latent: Option<Box<LatentCodec>>,
    },
}

/// The random draws of one batch (a pure function of `(seed, step)`).
#[derive(Debug, Clone)]
pub struct Draws {
    /// `t`, `[B]`.
    pub t: Vec<usize>,
    /// The noise, `[B, ...]` row-major (l-DAE: `[B, L, d]`; DDPM: `[B, C, H, W]`).
    pub eps: Vec<f32>,
    /// Class labels after dropout (`num_classes` is the null class), `[B]`; `None` for an
    /// unconditional network.
    pub labels: Option<Vec<usize>>,
}

impl Draws {
    /// Images `lo..hi` of the batch.
    pub fn slice(&self, lo: usize, hi: usize) -> Draws {
        let per = self.eps.len() / self.t.len().max(1);
        Draws {
            t: self.t[lo..hi].to_vec(),
            eps: self.eps[lo * per..hi * per].to_vec(),
            labels: self.labels.as_ref().map(|l| l[lo..hi].to_vec()),
        }
    }
}

impl TrainObjective {
    /// Bind the config's objective to `device`; l-DAE needs the run's fitted PCA.
    pub fn new(config: &RunConfig, pca: Option<&PatchPca>, device: &Device) -> Result<Self> {
        match &config.objective {
            Objective::Ldae(l) => {
                let pca = pca.ok_or_else(|| Error::Other("the l-DAE objective needs the run's PCA basis".into()))?;
                Ok(TrainObjective::Ldae {
                    objective: ldae_objective_of(config).expect("l-DAE config"),
                    pca: Box::new(pca.tensors(l.latent_dim, device)),
                    noise_per_image: config.model.tokens() * l.latent_dim,
                })
            }
            Objective::Ddpm(d) => Ok(TrainObjective::Ddpm {
                objective: ddpm_objective_of(config).expect("DDPM config"),
                num_classes: config.model.num_classes,
                class_dropout: d.class_dropout,
                noise_per_image: config.network().image.numel(),
                latent: latent_codec(config, pca, device)?.map(Box::new),
            }),
        }
    }

    /// The draws of batch `step` of a run seeded `seed`, for images with class `labels`.
    /// `t` is uniform over `0..T`, the noise standard normal; for a class-conditional DDPM
    /// model each label is replaced by the null class with probability `class_dropout` (a
    /// stream of its own, so l-DAE's draws do not depend on it).
    pub fn draw(&self, seed: u64, step: usize, labels: &[u32]) -> Draws {
        let b = labels.len();
        let mut rng = step_rng(seed, purpose::NOISE, step as u64);
        let (timesteps, noise) = match self {
            TrainObjective::Ldae { objective, noise_per_image, .. } => (objective.schedule.len(), *noise_per_image),
            TrainObjective::Ddpm { objective, noise_per_image, .. } => (objective.schedule.len(), *noise_per_image),
        };
        let t = (0..b).map(|_| rng.random_range(0..timesteps)).collect();
        let eps = (0..b * noise).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
        let labels = match self {
            TrainObjective::Ddpm { num_classes, class_dropout, .. } if *num_classes > 0 => {
                let mut drop = step_rng(seed, purpose::LABEL_DROP, step as u64);
                Some(
                    labels
                        .iter()
                        .map(|&y| if drop.random::<f64>() < *class_dropout { *num_classes } else { y as usize })
                        .collect(),
                )
            }
            _ => None,
        };
        Draws { t, eps, labels }
    }

    /// The mean loss of the network on clean images `x0` with the draws `draws` (a latent-space
    /// DDPM encodes `x0` first).
    ///
    /// # Shapes
    /// - `x0`: `[B, C, H, W]`; `draws`: `B` images; returns `[1]`
    pub fn loss(&self, model: &DenoisingVit, x0: Tensor<4>, draws: &Draws) -> Tensor<1> {
        match self {
            TrainObjective::Ldae { objective, pca, .. } => {
                let terms = LdaeTerms { t: draws.t.clone(), eps: draws.eps.clone() };
                let x_t = objective.noisy_input(pca, x0.clone(), &terms);
                let pred = model.forward(x_t, &terms.t);
                objective.loss(pca, x0, pred, &terms.t)
            }
            TrainObjective::Ddpm { objective, latent, .. } => {
                let x0 = match latent {
                    Some(codec) => codec.encode(x0), // [B, d, H/p, W/p]
                    None => x0,
                };
                let terms = DdpmTerms { t: draws.t.clone(), eps: draws.eps.clone() };
                let (x_t, target) = objective.noisy_input_and_target(x0, &terms);
                let out = model.forward_labelled(x_t, &terms.t, draws.labels.as_deref());
                objective.loss(out, target)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::preset;

    #[test]
    fn label_dropout_replaces_labels_by_the_null_class_at_its_rate() {
        let mut config = preset("dit-tiny").unwrap().config;
        if let Objective::Ddpm(d) = &mut config.objective {
            d.class_dropout = 0.25;
        }
        let objective = TrainObjective::new(&config, None, &Device::flex()).unwrap();
        let labels: Vec<u32> = (0..4000).map(|i| (i % 10) as u32).collect();
        let draws = objective.draw(0, 3, &labels);
        let dropped = draws.labels.as_ref().unwrap();
        let nulls = dropped.iter().filter(|&&y| y == 10).count() as f64 / 4000.0;
        assert!((nulls - 0.25).abs() < 0.03, "dropped fraction {nulls}");
        assert!(dropped.iter().zip(&labels).all(|(&d, &y)| d == 10 || d == y as usize));
        assert_eq!(draws.eps.len(), 4000 * 28 * 28);
        assert!(draws.t.iter().all(|&t| t < 1000));
        let again = objective.draw(0, 3, &labels);
        assert_eq!((again.t, again.labels), (draws.t, draws.labels), "a pure function of (seed, step)");
    }

    #[test]
    fn unconditional_objectives_draw_no_labels() {
        let mut config = preset("dit-tiny").unwrap().config;
        config.model.num_classes = 0;
        let objective = TrainObjective::new(&config, None, &Device::flex()).unwrap();
        assert!(objective.draw(0, 0, &[1, 2]).labels.is_none());
        let ldae = preset("ldae-tiny").unwrap().config;
        let err = TrainObjective::new(&ldae, None, &Device::flex()).err().expect("needs a PCA").to_string();
        assert!(err.contains("PCA"), "{err}");
    }
}
