//! The objective a run trains, bound to what it needs on the training device (its tokenizer),
//! and the random draws of one batch. The training step is the same for every objective: draw,
//! split into shards, loss, backward; only [`TrainObjective::draw`] and
//! [`TrainObjective::loss`] depend on the settings.

use burn::tensor::{Device, Tensor, TensorData};
use rand::RngExt;
use rand_distr::StandardNormal;

use std::sync::Arc;

use crate::config::RunConfig;
use crate::data::loader::{Batch, purpose, step_rng};
use crate::diffusion::denoise::{DenoiseObjective, Latent};
use crate::models::DenoisingVit;
use crate::tokenizer::posterior::PosteriorTokens;
use crate::tokenizer::{FittedTokenizer, Tokenizer};

/// An objective ready to train.
#[derive(Debug)]
pub struct TrainObjective {
    pub objective: DenoiseObjective,
    /// The run's fitted tokenizer on the training device.
    pub tokenizer: Box<dyn Tokenizer>,
    /// Classes of a class-conditional network (0: unconditional); label `num_classes` is the
    /// null class, drawn with probability `class_dropout`.
    pub num_classes: usize,
    pub class_dropout: f64,
    /// Noise values per image: `L d` (latent) or `C H W` (pixels).
    pub noise_per_image: usize,
    /// Latent values per image, `L d` (a stochastic tokenizer's posterior noise).
    pub latent_per_image: usize,
    /// Whether the noise is laid out as images (see `diffusion::denoise`).
    pub noise_pixels: bool,
    /// The training set's posterior, encoded once (`train.cache_latents`): `z0` is sampled from
    /// it instead of encoding each batch.
    pub cache: Option<Arc<PosteriorTokens>>,
}

/// The random draws of one batch (a pure function of `(seed, step)`).
#[derive(Debug, Clone)]
pub struct Draws {
    /// `t`, `[B]`.
    pub t: Vec<usize>,
    /// The noise, `[B, ...]` row-major (latent: `[B, L, d]`; pixels: `[B, C, H, W]`).
    pub eps: Vec<f32>,
    /// Class labels after dropout (`num_classes` is the null class), `[B]`; `None` for an
    /// unconditional network.
    pub labels: Option<Vec<usize>>,
    /// The posterior noise of a stochastic tokenizer (a VAE's sample), `[B, L, d]`.
    pub tok_noise: Option<Vec<f32>>,
    /// The clean latent `z0` from a latent cache (its sample with `tok_noise`), `[B, L, d]`.
    pub z0: Option<Vec<f32>>,
}

impl Draws {
    /// Images `lo..hi` of the batch.
    pub fn slice(&self, lo: usize, hi: usize) -> Draws {
        let n = self.t.len().max(1);
        let part = |v: &Vec<f32>| {
            let per = v.len() / n;
            v[lo * per..hi * per].to_vec()
        };
        Draws {
            t: self.t[lo..hi].to_vec(),
            eps: part(&self.eps),
            labels: self.labels.as_ref().map(|l| l[lo..hi].to_vec()),
            tok_noise: self.tok_noise.as_ref().map(part),
            z0: self.z0.as_ref().map(part),
        }
    }
}

impl TrainObjective {
    /// Bind the config's objective to `device` with the run's fitted tokenizer.
    pub fn new(config: &RunConfig, tokenizer: &FittedTokenizer, device: &Device) -> Self {
        let d = &config.denoise;
        let tokenizer = tokenizer.bind(config.model.image, device);
        let noise_pixels = d.noise_is_pixels();
        let latent_per_image = config.model.tokens() * tokenizer.latent_dim();
        let noise_per_image = if noise_pixels { config.model.image.numel() } else { latent_per_image };
        TrainObjective {
            objective: d.objective(),
            tokenizer,
            num_classes: config.model.num_classes,
            class_dropout: d.class_dropout,
            noise_per_image,
            latent_per_image,
            noise_pixels,
            cache: None,
        }
    }

    /// The draws of batch `step` of a run seeded `seed`, for images with class `labels`.
    /// `t` is uniform over `0..T`, the noise standard normal; for a class-conditional model
    /// each label is replaced by the null class with probability `class_dropout`, and a VAE's
    /// posterior noise comes from a stream of its own (so the others do not depend on them).
    pub fn draw(&self, seed: u64, step: usize, labels: &[u32]) -> Draws {
        let b = labels.len();
        let mut rng = step_rng(seed, purpose::NOISE, step as u64);
        let t = (0..b).map(|_| rng.random_range(0..self.objective.tables.len())).collect();
        let eps = (0..b * self.noise_per_image).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
        let labels = (self.num_classes > 0).then(|| {
            let mut drop = step_rng(seed, purpose::LABEL_DROP, step as u64);
            labels
                .iter()
                .map(|&y| if drop.random::<f64>() < self.class_dropout { self.num_classes } else { y as usize })
                .collect()
        });
        let tok_noise = self.tokenizer.stochastic().then(|| {
            let mut rng = step_rng(seed, purpose::TOKENIZER, step as u64);
            (0..b * self.latent_per_image).map(|_| rng.sample::<f32, _>(StandardNormal)).collect()
        });
        Draws { t, eps, labels, tok_noise, z0: None }
    }

    /// [`TrainObjective::draw`] for `batch`, with `z0` sampled from the latent cache (when the
    /// run has one) for the batch's images with the same posterior noise.
    pub fn draw_batch(&self, seed: u64, batch: &Batch) -> Draws {
        let mut draws = self.draw(seed, batch.step, &batch.labels);
        if let Some(cache) = &self.cache {
            draws.z0 = Some(cache.sample(&batch.indices, draws.tok_noise.as_deref()));
        }
        draws
    }

    /// The mean loss of the network on clean images `x0` with the draws `draws`.
    ///
    /// # Shapes
    /// - `x0`: `[B, C, H, W]`; `draws`: `B` images; returns `[1]`
    pub fn loss(&self, model: &DenoisingVit, x0: Tensor<4>, draws: &Draws) -> Tensor<1> {
        let device = x0.device();
        let b = draws.t.len();
        let tok = self.tokenizer.as_ref();
        let eps = self.objective.noise_tokens(tok, draws.eps.clone(), b, self.noise_pixels, &device);
        let tokens = |v: &Vec<f32>| {
            let d = tok.latent_dim();
            Tensor::<3>::from_data(TensorData::new(v.clone(), [b, v.len() / (b * d), d]), &device)
        };
        let latent = match &draws.z0 {
            Some(z0) => Latent::Given(tokens(z0)),
            None => Latent::Encode(draws.tok_noise.as_ref().map(tokens)),
        };
        let (input, target) = self.objective.input_and_target(tok, x0, &draws.t, eps, latent);
        let out = model.forward(input, &draws.t, draws.labels.as_deref()); // [B, L, out]
        self.objective.loss(tok, out, target, &draws.t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipes::preset;

    fn fitted(config: &RunConfig) -> FittedTokenizer {
        match config.denoise.tokenizer {
            crate::tokenizer::TokenizerSpec::Pixels { patch, .. } => {
                FittedTokenizer::Pixels { patch, channels: config.model.image.channels, scale: 1.0 }
            }
            _ => unreachable!("pixel presets only"),
        }
    }

    #[test]
    fn label_dropout_replaces_labels_by_the_null_class_at_its_rate() {
        let mut config = preset("dit-tiny").unwrap().config;
        config.denoise.class_dropout = 0.25;
        let objective = TrainObjective::new(&config, &fitted(&config), &Device::flex());
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
        config.denoise.class_dropout = 0.0;
        let objective = TrainObjective::new(&config, &fitted(&config), &Device::flex());
        let draws = objective.draw(0, 0, &[1, 2]);
        assert!(draws.labels.is_none() && draws.tok_noise.is_none());
    }
}
