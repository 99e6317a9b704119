//! One training step of a conv KL tokenizer: the autoencoder on
//! `nll + kl_weight KL + adaptive_weight g_loss`, then the PatchGAN on the hinge loss, as
//! latent diffusion's `LPIPSWithDiscriminator` with its two optimisers; and the checkpoints of
//! that pair.
//!
//! The adaptive weight needs the gradients of the reconstruction and generator losses with
//! respect to the decoder's last conv weight `W`. Both losses read the decoder's output `x_hat`
//! only, so they are differentiated once each with respect to a detached copy of `x_hat` (a
//! cheap backward through the perceptual network and the discriminator), `dL/dW` follows from
//! those by one conv backward on the last layer's input, and the autoencoder's backward runs
//! once on `sum(x_hat * (dnll/dx_hat + w dg/dx_hat)) + kl_weight KL`, which has exactly the
//! gradient of the full loss. The batch is split into data-parallel shards (as the denoiser's
//! step), each image's loss weighted by its share so that the shards sum to the batch mean.
//!
//! One difference from latent diffusion: its reconstruction term is divided by `exp(logvar)`
//! with a learnt scalar `logvar` (initialised at 0, plus `logvar` itself); ddmlab keeps it at 0,
//! where latent diffusion's also starts.

use std::path::Path;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::ae_losses::{adaptive_weight, generator_loss, hinge_d_loss, reconstruction};
use crate::data::loader::{Batch, step_rng};
use crate::error::{Error, Result};
use crate::models::classifier::{Classifier, perceptual_distance};
use crate::models::conv_ae::ConvAutoencoder;
use crate::models::patchgan::PatchGan;
use crate::nn::fused::conv2d::conv2d;
use crate::nn::grads::materialize;
use crate::store::checkpoint::{self, CheckpointState, read_bytes};
use crate::tokenizer::conv_config::TokenizerRunConfig;

/// The RNG purpose of the posterior samples (see [`crate::data::loader::purpose`]).
const POSTERIOR_NOISE: u64 = 7;

/// What one step measured (batch means).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AeStepStats {
    /// Reconstruction error per pixel (L1 or L2, as configured).
    pub rec: f64,
    /// Perceptual distance per image (0 when off).
    pub perceptual: f64,
    /// KL per image.
    pub kl: f64,
    /// Generator loss `-mean D(x_hat)` (0 before the discriminator starts).
    pub g_loss: f64,
    /// The adaptive weight (including `disc_weight`; 0 before the start).
    pub d_weight: f64,
    /// The discriminator's hinge loss (0 before the start).
    pub d_loss: f64,
    pub logits_real: f64,
    pub logits_fake: f64,
    /// The weighted total the autoencoder minimised, per image.
    pub loss: f64,
}

impl AeStepStats {
    /// Add `weight` times every field of `other`.
    pub fn add(&mut self, other: &AeStepStats, weight: f64) {
        for (total, part) in [
            (&mut self.rec, other.rec),
            (&mut self.perceptual, other.perceptual),
            (&mut self.kl, other.kl),
            (&mut self.g_loss, other.g_loss),
            (&mut self.d_weight, other.d_weight),
            (&mut self.d_loss, other.d_loss),
            (&mut self.logits_real, other.logits_real),
            (&mut self.logits_fake, other.logits_fake),
            (&mut self.loss, other.loss),
        ] {
            *total += weight * part;
        }
    }
}

/// The trained pair and their optimisers.
pub struct AeTrainer {
    pub config: TokenizerRunConfig,
    /// The autoencoder (autodiff device).
    pub ae: ConvAutoencoder,
    /// The discriminator when the adversarial loss is on.
    pub disc: Option<PatchGan>,
    /// The frozen perceptual classifier when the perceptual loss is on.
    pub perceptual: Option<Classifier>,
    pub ae_optim: ModuleOptimizer,
    pub disc_optim: ModuleOptimizer,
    /// The autodiff device.
    pub device: Device,
    /// Data-parallel shards per step. The discriminator's BatchNorm sees each shard's own
    /// statistics, so the shard count is part of what a step computes (as the GPU count is under
    /// PyTorch's DDP without SyncBatchNorm).
    pub shards: usize,
}

/// Adam (no weight decay) with the config's betas.
fn adam(config: &TokenizerRunConfig) -> ModuleOptimizer {
    let t = &config.train;
    AdamWConfig::new()
        .with_beta_1(t.beta1 as f32)
        .with_beta_2(t.beta2 as f32)
        .with_epsilon(1e-8)
        .with_weight_decay(0.0)
        .init()
}

/// Phase two of a shard: the autoencoder fork and its gradients, and the discriminator's
/// `(hinge loss, mean real logit, mean fake logit, gradients)` when it trains.
type ShardGrads = (ConvAutoencoder, GradientsParams, Option<(f64, f64, f64, GradientsParams)>);

/// Phase one of a shard: the forward pass and the loss gradients at `x_hat`.
struct ShardForward {
    ae: ConvAutoencoder,
    x: Tensor<4>,
    x_hat: Tensor<4>,
    kl: Tensor<1>,
    /// `d nll / d x_hat` and `d g / d x_hat` (plain device).
    grad_nll: Tensor<4>,
    grad_g: Option<Tensor<4>>,
    /// The same at the last conv's weight.
    w_nll: Tensor<4>,
    w_g: Option<Tensor<4>>,
    stats: AeStepStats,
}

impl AeTrainer {
    /// A fresh trainer: networks initialised from `config.train.seed` on `device` (plain; autodiff
    /// is added here), with the perceptual classifier already trained (when the loss uses one).
    pub fn new(config: TokenizerRunConfig, perceptual: Option<Classifier>, device: &Device) -> Self {
        let ad = device.clone().autodiff();
        let ae = crate::nn::init::seeded(&ad, config.train.seed, |ad| config.model.init(ad));
        let disc = config
            .loss
            .adversarial()
            .then(|| crate::nn::init::seeded(&ad, config.train.seed ^ 0xD15C, |ad| config.discriminator().init(ad)));
        AeTrainer {
            perceptual: perceptual.map(|p| p.to_device(&ad).freeze()),
            ae,
            disc,
            ae_optim: adam(&config),
            disc_optim: adam(&config),
            config,
            device: ad,
            shards: crate::parallel::workers(device),
        }
    }

    /// Whether the adversarial terms are on at (0-based) step `step`.
    pub fn adversarial_at(&self, step: usize) -> bool {
        self.disc.is_some() && step >= self.config.loss.disc_start
    }

    /// One step on `batch`; a non-finite loss is an error and leaves the weights untouched.
    pub fn step(&mut self, batch: &Batch) -> Result<AeStepStats> {
        let image = self.config.model.image;
        let b = batch.labels.len();
        let latent = self.config.model.latent_shape();
        let mut rng = step_rng(self.config.train.seed, POSTERIOR_NOISE, batch.step as u64);
        let noise: Vec<f32> = (0..b * latent.numel()).map(|_| StandardNormal.sample(&mut rng)).collect();
        let adversarial = self.adversarial_at(batch.step);
        let shards = self.shards.clamp(1, b);
        let bounds: Vec<(usize, usize)> = (0..shards).map(|i| (i * b / shards, (i + 1) * b / shards)).collect();
        let forwards: Vec<ShardForward> = crate::parallel::map(&self.device, bounds, |(lo, hi)| {
            let x = Tensor::<4>::from_data(
                TensorData::new(
                    batch.images[lo * image.numel()..hi * image.numel()].to_vec(),
                    [hi - lo, image.channels, image.height, image.width],
                ),
                &self.device,
            );
            let eps = Tensor::<4>::from_data(
                TensorData::new(
                    noise[lo * latent.numel()..hi * latent.numel()].to_vec(),
                    [hi - lo, latent.channels, latent.height, latent.width],
                ),
                &self.device,
            );
            self.shard_forward(x, eps, (hi - lo) as f64 / b as f64, adversarial)
        });

        let mut stats = AeStepStats::default();
        for f in &forwards {
            stats.add(&f.stats, 1.0);
        }
        let norm = |parts: Vec<Tensor<4>>| -> f64 {
            let sum = parts.into_iter().reduce(|a, b| a + b).expect("a shard");
            sum.square().sum().into_scalar::<f32>().sqrt() as f64
        };
        let d_weight = if adversarial {
            let nll = norm(forwards.iter().map(|f| f.w_nll.clone()).collect());
            let g = norm(forwards.iter().map(|f| f.w_g.clone().expect("adversarial")).collect());
            adaptive_weight(nll, g, self.config.loss.disc_weight)
        } else {
            0.0
        };
        stats.d_weight = d_weight;
        stats.loss += d_weight * stats.g_loss;
        if !stats.loss.is_finite() {
            return Err(Error::Diverged(format!("tokenizer loss is {} at step {}", stats.loss, batch.step + 1)));
        }

        let kl_weight = self.config.loss.kl_weight;
        let results: Vec<ShardGrads> = crate::parallel::map(&self.device, forwards, |f| {
            let mut upstream = f.grad_nll;
            if let Some(g) = f.grad_g {
                upstream = upstream + g * d_weight;
            }
            let surrogate = (f.x_hat.clone() * Tensor::from_inner(upstream)).sum() + f.kl * kl_weight;
            let grads = GradientsParams::from_grads(surrogate.backward(), &f.ae);
            let disc = self.disc.as_ref().filter(|_| adversarial).map(|disc| {
                let disc = disc.clone().fork(&self.device);
                let real = disc.forward(f.x.clone());
                let fake = disc.forward(f.x_hat.clone().detach());
                let share = f.x.dims()[0] as f64 / b as f64;
                let (lr, lf) = (mean_of(&real) * share, mean_of(&fake) * share);
                let d_loss = hinge_d_loss(real, fake) * share;
                let value = d_loss.clone().into_scalar::<f32>() as f64;
                (value, lr, lf, GradientsParams::from_grads(d_loss.backward(), &disc))
            });
            (f.ae, grads, disc)
        });
        let mut ae_acc = GradientsAccumulator::<ConvAutoencoder>::new();
        let mut disc_acc = GradientsAccumulator::<PatchGan>::new();
        for (ae, grads, disc) in results {
            ae_acc.accumulate(&ae, grads);
            if let Some((d_loss, lr, lf, grads)) = disc {
                stats.d_loss += d_loss;
                stats.logits_real += lr;
                stats.logits_fake += lf;
                disc_acc.accumulate(self.disc.as_ref().expect("adversarial"), grads);
            }
        }
        let lr = self.config.train.lr;
        let grads = crate::nn::grads::contiguous(&self.ae, ae_acc.grads());
        self.ae = self.ae_optim.step(lr, self.ae.clone(), grads);
        if adversarial {
            let disc = self.disc.take().expect("adversarial");
            let grads = crate::nn::grads::contiguous(&disc, disc_acc.grads());
            self.disc = Some(self.disc_optim.step(lr, disc, grads));
        }
        Ok(stats)
    }

    /// Forward a shard `x` with posterior noise `eps`; losses weighted by the shard's `share`
    /// of the batch.
    fn shard_forward(&self, x: Tensor<4>, eps: Tensor<4>, share: f64, adversarial: bool) -> ShardForward {
        let n = x.dims()[0] as f64;
        let pixels = self.config.model.image.numel() as f64;
        let loss = &self.config.loss;
        // Fresh autodiff leaves per shard keep the shards' graphs apart.
        let ae = self.ae.clone().fork(&self.device);
        let posterior = ae.encode(x.clone());
        let z = posterior.sample(eps);
        let features = ae.decode_features(z);
        let x_hat = ae.last_layer().forward(features.clone());
        let kl = posterior.kl().sum() * (share / n);
        let kl_value = kl.clone().into_scalar::<f32>() as f64;

        // d nll / d x_hat on a detached leaf.
        let leaf = x_hat.clone().detach().require_grad();
        let rec = reconstruction(x.clone(), leaf.clone(), loss.reconstruction).sum() * (share / n);
        let rec_value = rec.clone().into_scalar::<f32>() as f64;
        let (nll, perceptual_value) = match &self.perceptual {
            Some(net) => {
                let real = net.features(x.clone()).into_iter().map(|f| f.detach()).collect::<Vec<_>>();
                let p = perceptual_distance(&net.features(leaf.clone()), &real).sum() * (share / n);
                let value = p.clone().into_scalar::<f32>() as f64;
                (rec + p * (loss.perceptual_weight * pixels), value)
            }
            None => (rec, 0.0),
        };
        let nll_value = nll.clone().into_scalar::<f32>() as f64;
        // Materialised: see `nn::grads` for the fused-kernel misread this avoids on a GPU.
        let grad_nll = materialize(leaf.grad(&nll.backward()).expect("x_hat leaf has a gradient"));

        let (grad_g, g_value) = match self.disc.as_ref().filter(|_| adversarial) {
            Some(disc) => {
                let disc = disc.clone().fork(&self.device);
                let leaf = x_hat.clone().detach().require_grad();
                let g = generator_loss(disc.forward(leaf.clone())) * share;
                let value = g.clone().into_scalar::<f32>() as f64;
                (Some(materialize(leaf.grad(&g.backward()).expect("x_hat leaf has a gradient"))), value)
            }
            None => (None, 0.0),
        };
        let weight = ae.last_layer().weight.val();
        let w_grad = |upstream: &Tensor<4>| last_layer_grad(&features, &weight, upstream);
        let w_nll = w_grad(&grad_nll);
        let w_g = grad_g.as_ref().map(&w_grad);
        ShardForward {
            ae,
            x,
            x_hat,
            kl,
            grad_nll,
            grad_g,
            w_nll,
            w_g,
            stats: AeStepStats {
                rec: rec_value / pixels,
                perceptual: perceptual_value,
                kl: kl_value,
                g_loss: g_value,
                loss: nll_value + loss.kl_weight * kl_value,
                ..AeStepStats::default()
            },
        }
    }

    /// The checkpoint's files besides `state.json`: the autoencoder, the discriminator (once
    /// it exists), their optimisers, the config.
    pub fn checkpoint_files(&self) -> Result<Vec<(&'static str, Bytes)>> {
        let rec = |e: burn::store::RecordError| Error::Other(format!("serialising tokenizer checkpoint: {e}"));
        let mut files = vec![
            ("ae.bpk", self.ae.valid().into_record().into_bytes().map_err(rec)?),
            ("ae-optim.bpk", self.ae_optim.into_bytes().map_err(rec)?),
            ("config.toml", Bytes::from_bytes_vec(self.config.to_toml().into_bytes())),
        ];
        if let Some(disc) = &self.disc {
            files.push(("disc.bpk", disc.valid().into_record().into_bytes().map_err(rec)?));
            files.push(("disc-optim.bpk", self.disc_optim.into_bytes().map_err(rec)?));
        }
        Ok(files)
    }

    /// Rebuild a trainer from checkpoint folder `ckpt` with the run's `perceptual` classifier;
    /// a missing or corrupt file is an error naming it.
    pub fn restore(ckpt: &Path, perceptual: Option<Classifier>, device: &Device) -> Result<(Self, CheckpointState)> {
        let (config, mut state) = checkpoint::read_meta::<TokenizerRunConfig>(ckpt)?;
        state.total_steps = config.train.steps;
        let mut trainer = AeTrainer::new(config, perceptual, device);
        trainer.ae = checkpoint::load_into(trainer.ae, &ckpt.join("ae.bpk"))?;
        trainer.ae_optim = load_optim(adam(&trainer.config), &ckpt.join("ae-optim.bpk"))?;
        if let Some(disc) = trainer.disc.take() {
            trainer.disc = Some(checkpoint::load_into(disc, &ckpt.join("disc.bpk"))?);
            trainer.disc_optim = load_optim(adam(&trainer.config), &ckpt.join("disc-optim.bpk"))?;
        }
        Ok((trainer, state))
    }
}

/// `dL/dW` of the decoder's last conv (3x3, stride 1, "same" padding) from its input
/// `features` and the loss gradient `upstream` at its output: one conv backward on a detached
/// copy of the weight.
///
/// # Shapes
/// - `features`: `[B, c, H, W]` (autodiff device); `weight`: `[C, c, k, k]`; `upstream`:
///   `[B, C, H, W]` (plain device); returns `[C, c, k, k]` (plain device)
pub fn last_layer_grad(features: &Tensor<4>, weight: &Tensor<4>, upstream: &Tensor<4>) -> Tensor<4> {
    let w = weight.clone().detach().require_grad();
    let p = w.dims()[2] / 2;
    let y = conv2d(features.clone().detach(), w.clone(), None, ConvOptions::new([1, 1], [p, p], [1, 1], 1));
    let s = (y * Tensor::from_inner(upstream.clone())).sum();
    w.grad(&s.backward()).expect("weight leaf has a gradient")
}

fn mean_of(t: &Tensor<4>) -> f64 {
    t.clone().mean().into_scalar::<f32>() as f64
}

fn load_optim(optim: ModuleOptimizer, path: &Path) -> Result<ModuleOptimizer> {
    optim.from_bytes(read_bytes(path)?).map_err(|e| Error::format(path, format!("invalid optimizer state ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;
    use crate::models::conv_ae::ConvAeConfig;
    use crate::tokenizer::conv_config::Reconstruction;
    use burn::tensor::Distribution;

    /// The step's two shortcuts give exactly the full graph's gradients: `dnll/dW` from the
    /// detached output plus one conv backward, and the autoencoder's gradient from the
    /// surrogate `sum(x_hat * dnll/dx_hat)`.
    #[test]
    fn the_detached_output_shortcuts_match_the_full_backward() {
        let ad = Device::flex().autodiff();
        let cfg = ConvAeConfig {
            image: ImageShape { channels: 1, height: 8, width: 8 },
            channels: 4,
            channel_mult: vec![1, 2],
            res_blocks: 1,
            z_channels: 2,
            groups: 2,
        };
        let ae = crate::nn::init::seeded(&ad, 3, |ad| cfg.init(ad));
        let x = Tensor::<4>::random([3, 1, 8, 8], Distribution::Normal(0.0, 1.0), &ad);
        let forward = |ae: &ConvAutoencoder| {
            let features = ae.decode_features(ae.encode(x.clone()).mean);
            let x_hat = ae.last_layer().forward(features.clone());
            (features, x_hat)
        };
        // The full graph.
        let (_, x_hat) = forward(&ae);
        let full = reconstruction(x.clone(), x_hat, Reconstruction::L2).sum().backward();
        let w_full = ae.last_layer().weight.val().grad(&full).unwrap();
        let enc_full = ae.encoder_first_weight().grad(&full).unwrap();
        // The shortcuts.
        let ae2 = ae.clone().fork(&ad);
        let (features, x_hat) = forward(&ae2);
        let leaf = x_hat.clone().detach().require_grad();
        let upstream =
            leaf.grad(&reconstruction(x.clone(), leaf.clone(), Reconstruction::L2).sum().backward()).unwrap();
        let w_short = last_layer_grad(&features, &ae2.last_layer().weight.val(), &upstream);
        let surrogate = (x_hat * Tensor::from_inner(upstream)).sum().backward();
        let enc_short = ae2.encoder_first_weight().grad(&surrogate).unwrap();
        let close = |a: Tensor<4>, b: Tensor<4>, what: &str| {
            let scale = a.clone().abs().max().into_scalar::<f32>().max(1e-6);
            let diff = (a - b).abs().max().into_scalar::<f32>();
            assert!(diff <= 1e-4 * scale, "{what}: max difference {diff} (scale {scale})");
        };
        close(w_full, w_short, "last-layer gradient");
        close(enc_full, enc_short, "encoder gradient through the surrogate");
    }
}
