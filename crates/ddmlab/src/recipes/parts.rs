//! The building blocks every recipe starts from: l-DAE's and DDPM's objectives, the ViT with
//! l-DAE's conditioning, the optimisation defaults.

use crate::config::{DenoiseConfig, TrainConfig};
use crate::data::ImageShape;
use crate::data::transform::Augment;
use crate::diffusion::denoise::{InputSpace, NoiseSpace, Target};
use crate::diffusion::{LossWeight, NoiseSchedule};
use crate::models::VitConfig;
use crate::tokenizer::{LatentScale, TokenizerSpec};

/// l-DAE (paper §4.4): patch PCA keeping `d` of `p p C` (unscaled), noise in the latent with
/// `sigma_t` linear in `[0, sqrt 2]`, the image as input, the original image as target with
/// residual weight 0.1, `lambda_t = 1 / (1 + sigma_t^2)`.
pub fn ldae(patch: usize, latent_dim: usize, samples: usize) -> DenoiseConfig {
    DenoiseConfig {
        timesteps: 1000,
        noise_space: NoiseSpace::Latent,
        input: InputSpace::Image,
        target: Target::Image,
        residual_weight: Some(0.1),
        loss_weight: LossWeight::InvOnePlusSigma2,
        class_dropout: 0.0,
        probe_t: 10,
        tokenizer: TokenizerSpec::Pca { patch, latent_dim, samples, scale: LatentScale::None, seed: 0 },
        noise: NoiseSchedule::ldae(),
    }
}

/// DDPM as DiT trains it on `tokenizer`'s latent: linear betas over T = 1000, eps prediction,
/// uniform weight, 10% label dropout.
pub fn ddpm(tokenizer: TokenizerSpec) -> DenoiseConfig {
    DenoiseConfig {
        timesteps: 1000,
        noise_space: NoiseSpace::Latent,
        input: InputSpace::Latent,
        target: Target::Eps,
        residual_weight: None,
        loss_weight: LossWeight::Uniform,
        class_dropout: 0.1,
        probe_t: 10,
        tokenizer,
        noise: NoiseSchedule::ddpm(),
    }
}

/// AdamW (0.9, 0.95) without weight decay, linear warm-up then cosine to 0, EMA 0.9999.
pub fn train(batch_size: usize, blr: f64, epochs: f64, warmup_frac: f64) -> TrainConfig {
    TrainConfig {
        batch_size,
        blr,
        steps: 0,
        epochs,
        time_budget_min: 0.0,
        warmup_frac,
        warmup_steps: 0,
        min_lr_frac: 0.0,
        weight_decay: 0.0,
        decay_exempt: crate::optim::decay::DecayExempt::None,
        beta1: 0.9,
        beta2: 0.95,
        adam_eps: 1e-8,
        grad_clip: 0.0,
        ema_decay: 0.9999,
        ema_warmup: true,
        augment: Augment::None,
        cache_latents: false,
        seed: 0,
        checkpoint_every: 500,
        log_every: 10,
    }
}

/// A ViT with l-DAE's conditioning (a quarter of the width) and the first half of the blocks as
/// the encoder.
pub fn vit(image: ImageShape, patch: usize, width: usize, depth: usize, heads: usize) -> VitConfig {
    VitConfig {
        image,
        patch,
        width,
        depth,
        encoder_depth: depth / 2,
        heads,
        mlp_ratio: 4.0,
        cond_width: width / 4,
        freq_dim: 256,
        num_classes: 0,
        gelu: crate::nn::gelu::GeluKind::Erf,
        in_dim: None,
        out_dim: None,
        long_skip: false,
        conv_head: 0,
    }
}
