//! One l-DAE training step: draw `(t, eps)`, build `x_t`, predict `x0`, weighted PCA loss,
//! AdamW update, EMA update. Shared by the pretraining loop and `ddmlab bench`.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, grad_clipping::GradientClippingConfig};
use burn::tensor::{Device, Tensor, TensorData};
use rand::RngExt;
use rand_distr::StandardNormal;

use super::ema::{ema_decay_at, update_ema};
use crate::config::RunConfig;
use crate::data::loader::{Batch, purpose, step_rng};
use crate::diffusion::{LdaeObjective, LdaeTerms, SigmaSchedule};
use crate::error::{Error, Result};
use crate::models::DenoisingVit;
use crate::tokenizer::{PatchPca, PcaTensors};

/// The state that a training step changes, plus what it needs.
pub struct LdaeTrainer {
    pub config: RunConfig,
    pub objective: LdaeObjective,
    /// The PCA basis on the training device.
    pub pca: PcaTensors,
    /// The trained network (on the autodiff device).
    pub model: DenoisingVit,
    /// The EMA of its weights (on the plain device).
    pub ema: DenoisingVit,
    pub optim: ModuleOptimizer,
    /// The autodiff device.
    pub device: Device,
}

/// The objective a config describes.
pub fn objective_of(config: &RunConfig) -> LdaeObjective {
    LdaeObjective {
        schedule: SigmaSchedule::linear(config.ldae.timesteps, config.ldae.sigma_max),
        residual_weight: config.ldae.residual_weight,
        patch: config.model.patch,
    }
}

/// AdamW as the config sets it (burn's defaults differ from PyTorch's: set explicitly).
pub fn optimizer_of(config: &RunConfig) -> ModuleOptimizer {
    let t = &config.train;
    let mut adam = AdamWConfig::new()
        .with_beta_1(t.beta1 as f32)
        .with_beta_2(t.beta2 as f32)
        .with_epsilon(t.adam_eps as f32)
        .with_weight_decay(t.weight_decay as f32);
    if t.grad_clip > 0.0 {
        adam = adam.with_grad_clipping(Some(GradientClippingConfig::Norm(t.grad_clip as f32)));
    }
    adam.init()
}

impl LdaeTrainer {
    /// A fresh trainer: the network is initialised from `config.train.seed` on `device`
    /// (a plain device; autodiff is added here).
    pub fn new(config: RunConfig, pca: &PatchPca, device: &Device) -> Self {
        let ad = device.clone().autodiff();
        ad.seed(config.train.seed);
        let model = config.model.init(&ad);
        LdaeTrainer {
            objective: objective_of(&config),
            pca: pca.tensors(config.ldae.latent_dim, &ad),
            ema: model.valid(),
            model,
            optim: optimizer_of(&config),
            config,
            device: ad,
        }
    }

    /// The noise draws for the batch of step `step`: a pure function of `(seed, step)`.
    pub fn draw_terms(&self, step: usize, batch: usize) -> LdaeTerms {
        let mut rng = step_rng(self.config.train.seed, purpose::NOISE, step as u64);
        let l = self.config.model.tokens();
        let d = self.config.ldae.latent_dim;
        let t = (0..batch).map(|_| rng.random_range(0..self.objective.schedule.len())).collect();
        let eps = (0..batch * l * d).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
        LdaeTerms { t, eps }
    }

    /// One optimisation step at learning rate `lr`; returns the loss before the update.
    /// A non-finite loss is an error and leaves the weights untouched.
    pub fn step(&mut self, batch: &Batch, lr: f64) -> Result<f64> {
        let image = self.config.model.image;
        let b = batch.labels.len();
        let x0 = Tensor::<4>::from_data(
            TensorData::new(batch.images.clone(), [b, image.channels, image.height, image.width]),
            &self.device,
        );
        let terms = self.draw_terms(batch.step, b);
        let x_t = self.objective.noisy_input(&self.pca, x0.clone(), &terms);
        let pred = self.model.forward(x_t, &terms.t);
        let loss = self.objective.loss(&self.pca, x0, pred, &terms.t);
        let value = loss.clone().into_scalar::<f32>() as f64;
        if !value.is_finite() {
            return Err(Error::Diverged(format!("loss is {value} at step {}", batch.step + 1)));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optim.step(lr, self.model.clone(), grads);
        let decay = ema_decay_at(self.config.train.ema_decay, batch.step);
        self.ema = update_ema(self.ema.clone(), &self.model, decay);
        Ok(value)
    }
}
