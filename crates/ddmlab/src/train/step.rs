//! One training step, whatever the network and objective: draw `(t, eps, labels, ...)`, the
//! objective's loss on data-parallel shards, AdamW update, EMA update. Shared by the training
//! loop and `ddmlab bench`.
//!
//! The step knows a network only through [`Network`] (any burn module that a run's config can
//! build) and an objective through [`Objective`] (the draws of a batch and a loss); today's
//! `DenoisingVit` with the denoising objective is one pair, and the default.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};

use super::objective::{Draws, TrainObjective};
use crate::config::RunConfig;
use crate::data::loader::Batch;
use crate::error::{Error, Result};
use crate::models::DenoisingVit;
use crate::optim::clip::clip_global_norm;
use crate::optim::decay::{DecayExempt, decay_weights};
use crate::optim::ema::{ema_decay_at, update_ema};
use crate::optim::layer_decay::{rescale_steps, vit_layer_scale};
use crate::tokenizer::FittedTokenizer;

/// A network the training loop and checkpoints can handle.
pub trait Network: Module + Sync + 'static {
    /// A freshly initialised network of `config` on `device` (random init from the device's RNG).
    fn build(config: &RunConfig, device: &Device) -> Self;
}

impl Network for DenoisingVit {
    fn build(config: &RunConfig, device: &Device) -> Self {
        config.network().init(device)
    }
}

/// What the training step needs of an objective for network `M`.
pub trait Objective<M>: Send + Sync {
    /// The random draws of one batch (noise, timesteps, labels after dropout, masks, ...).
    type Draws: Send + Sync;

    /// The random draws of batch `step` of a run seeded `seed`, for images with class
    /// `labels`: a pure function of `(seed, step)`.
    fn draw(&self, seed: u64, step: usize, labels: &[u32]) -> Self::Draws;

    /// The draws of `batch`: [`Objective::draw`] of its step and labels, unless the objective
    /// reads more of the batch (a latent cache reads its images' data-set indices).
    fn draw_batch(&self, seed: u64, batch: &Batch) -> Self::Draws {
        self.draw(seed, batch.step, &batch.labels)
    }

    /// The draws of images `lo..hi` of a batch (a data-parallel shard).
    fn slice(&self, draws: &Self::Draws, lo: usize, hi: usize) -> Self::Draws;

    /// The mean loss of `model` on clean images `x0` with `draws`.
    ///
    /// # Shapes
    /// - `x0`: `[B, C, H, W]`; `draws`: `B` images; returns `[1]`
    fn loss(&self, model: &M, x0: Tensor<4>, draws: &Self::Draws) -> Tensor<1>;
}

impl Objective<DenoisingVit> for TrainObjective {
    type Draws = Draws;

    fn draw(&self, seed: u64, step: usize, labels: &[u32]) -> Draws {
        TrainObjective::draw(self, seed, step, labels)
    }

    fn draw_batch(&self, seed: u64, batch: &Batch) -> Draws {
        TrainObjective::draw_batch(self, seed, batch)
    }

    fn slice(&self, draws: &Draws, lo: usize, hi: usize) -> Draws {
        draws.slice(lo, hi)
    }

    fn loss(&self, model: &DenoisingVit, x0: Tensor<4>, draws: &Draws) -> Tensor<1> {
        TrainObjective::loss(self, model, x0, draws)
    }
}

/// The state that a training step changes, plus what it needs.
pub struct Trainer<M: Network = DenoisingVit, O: Objective<M> = TrainObjective> {
    pub config: RunConfig,
    /// The objective, bound to the autodiff device.
    pub objective: O,
    /// The trained network (on the autodiff device).
    pub model: M,
    /// The EMA of its weights (on the plain device).
    pub ema: M,
    pub optim: ModuleOptimizer,
    /// The autodiff device.
    pub device: Device,
    /// Data-parallel shards per step (1: the whole batch in one pass).
    pub shards: usize,
}

/// AdamW as the config sets it (burn's defaults differ from PyTorch's: set explicitly).
pub fn optimizer_of(config: &RunConfig) -> ModuleOptimizer {
    let t = &config.train;
    AdamWConfig::new()
        .with_beta_1(t.beta1 as f32)
        .with_beta_2(t.beta2 as f32)
        .with_epsilon(t.adam_eps as f32)
        // With exemptions the decay is applied by `optim::decay` before each step.
        .with_weight_decay(if t.decay_exempt == DecayExempt::None { t.weight_decay as f32 } else { 0.0 })
        .init()
}

/// One optimizer update of `model` with its gradient `grads` at learning rate `lr`, as `t` sets
/// it: global-norm clipping (when `grad_clip > 0`), weight decay by `decay_exempt`'s rule, the
/// AdamW step of `optim` (built by [`optimizer_of`]).
pub fn update<M: Module>(
    model: M,
    optim: &mut ModuleOptimizer,
    mut grads: GradientsParams,
    lr: f64,
    t: &crate::config::TrainConfig,
) -> M {
    if t.grad_clip > 0.0 {
        // Off by default: the norm itself is a reduction over every gradient.
        clip_global_norm(&model, &mut grads, t.grad_clip);
    }
    let grads = crate::nn::grads::contiguous(&model, grads);
    let model = match t.decay_exempt {
        DecayExempt::None => model,
        rule => decay_weights(model, rule, lr * t.weight_decay),
    };
    optim.step(lr, model, grads)
}

impl Trainer {
    /// A fresh trainer of the denoising objective: the network is initialised from
    /// `config.train.seed` on `device` (a plain device; autodiff is added here) with the run's
    /// fitted `tokenizer`.
    pub fn new(config: RunConfig, tokenizer: &FittedTokenizer, device: &Device) -> Result<Self> {
        Ok(Trainer::with_objective(config, device, |config, ad| TrainObjective::new(config, tokenizer, ad)))
    }
}

impl<M: Network, O: Objective<M>> Trainer<M, O> {
    /// A fresh trainer of any network and objective: `objective` builds the objective on the
    /// autodiff device.
    pub fn with_objective(
        config: RunConfig,
        device: &Device,
        objective: impl FnOnce(&RunConfig, &Device) -> O,
    ) -> Self {
        let ad = device.clone().autodiff();
        let model = crate::nn::init::seeded(&ad, config.train.seed, |ad| M::build(&config, ad));
        Trainer {
            objective: objective(&config, &ad),
            ema: model.valid(),
            model,
            optim: optimizer_of(&config),
            config,
            device: ad,
            shards: crate::parallel::workers(device),
        }
    }

    /// The random draws for the batch of step `step`: a pure function of `(seed, step)`.
    pub fn draws(&self, batch: &Batch) -> O::Draws {
        self.objective.draw_batch(self.config.train.seed, batch)
    }

    /// One optimisation step at learning rate `lr`; returns the loss before the update.
    /// A non-finite loss is an error and leaves the weights untouched.
    pub fn step(&mut self, batch: &Batch, lr: f64) -> Result<f64> {
        self.step_measured(batch, lr, false).map(|(loss, _)| loss)
    }

    /// [`Trainer::step`], and with `grad_norm` the global L2 norm of the gradient before any
    /// clipping (one reduction per parameter tensor: measured at logged steps, not every step).
    pub fn step_measured(&mut self, batch: &Batch, lr: f64, grad_norm: bool) -> Result<(f64, Option<f64>)> {
        let (value, grads) = self.gradients(batch);
        if !value.is_finite() {
            return Err(Error::Diverged(format!("loss is {value} at step {}", batch.step + 1)));
        }
        let norm = grad_norm.then(|| crate::optim::clip::global_norm(&self.model, &grads));
        let (config, optim) = (&self.config, &mut self.optim);
        self.model = match config.finetune.as_ref().filter(|f| f.layer_decay < 1.0) {
            // Fine-tuning: each encoder layer's step at its layer-wise decayed rate.
            Some(f) => {
                let depth = config.model.encoder_depth;
                let scale = |path: &[String]| vit_layer_scale(path, depth, f.layer_decay);
                rescale_steps(self.model.clone(), |m| update(m, optim, grads, lr, &config.train), &scale)
            }
            None => update(self.model.clone(), optim, grads, lr, &config.train),
        };
        let t = &self.config.train;
        let decay = if t.ema_warmup { ema_decay_at(t.ema_decay, batch.step) } else { t.ema_decay };
        self.ema = update_ema(self.ema.clone(), &self.model, decay);
        Ok((value, norm))
    }

    /// The batch loss and its gradient with respect to the weights.
    ///
    /// The batch is split into `self.shards` contiguous shards whose forward and backward
    /// passes run concurrently (data parallelism on one device: burn's element-wise kernels
    /// are single-threaded, so this is what keeps every core busy); each shard's mean loss is
    /// weighted by its share of the batch, so the summed loss and gradient are the full
    /// batch's, up to float summation order.
    pub fn gradients(&self, batch: &Batch) -> (f64, GradientsParams) {
        let b = batch.labels.len();
        let draws = self.draws(batch);
        let shards = self.shards.clamp(1, b);
        let bounds: Vec<(usize, usize)> = (0..shards).map(|i| (i * b / shards, (i + 1) * b / shards)).collect();
        let results = crate::parallel::map(&self.device, bounds, |(lo, hi)| self.shard_grads(batch, &draws, lo, hi, b));
        let mut value = 0.0;
        let mut accumulator = GradientsAccumulator::<M>::new();
        for (loss, grads) in results {
            value += loss;
            accumulator.accumulate(&self.model, grads);
        }
        (value, accumulator.grads())
    }

    /// Forward and backward on images `lo..hi` of the batch; the loss is scaled by
    /// `(hi - lo) / total` so that the shards' gradients sum to the full batch's.
    /// Returns the scaled loss and the gradients.
    fn shard_grads(
        &self,
        batch: &Batch,
        draws: &O::Draws,
        lo: usize,
        hi: usize,
        total: usize,
    ) -> (f64, GradientsParams) {
        let image = self.config.model.image;
        let per_image = image.numel();
        let n = hi - lo;
        let x0 = Tensor::<4>::from_data(
            TensorData::new(
                batch.images[lo * per_image..hi * per_image].to_vec(),
                [n, image.channels, image.height, image.width],
            ),
            &self.device,
        );
        let draws = self.objective.slice(draws, lo, hi);
        // A fork has fresh autodiff leaves: the shards' graphs stay separate (burn merges graphs
        // that share a leaf and runs a merged graph's backward under one lock).
        let model = self.model.clone().fork(&self.device);
        let loss = self.objective.loss(&model, x0, &draws) * (n as f64 / total as f64);
        let value = loss.clone().into_scalar::<f32>() as f64;
        if !value.is_finite() {
            return (value, GradientsParams::new());
        }
        (value, GradientsParams::from_grads(loss.backward(), &model))
    }
}
