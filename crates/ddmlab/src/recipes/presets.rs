//! The one preset registry: every named configuration lives here.
//!
//! - `ldae-tiny`: a few-hundred-thousand-parameter model on Fashion-MNIST that trains in about
//!   a minute on 2 cores; the tests use it.
//! - `ldae-fmnist`: the Fashion-MNIST default (patch 7, d = 8, width 192, 8 blocks), chosen by
//!   the measured sweep in RESULTS.md (`bench/sweep_fmnist.sh`): at equal wall-clock budgets,
//!   patch 7 (16 tokens) trains 3.5x more steps than patch 4 (49 tokens) and its average-pooled
//!   probe led by 9 points at 7 minutes and 6 points at 15; d in {2, 4, 8} at patch 4 moved
//!   the probe by less than 0.5. The patch-4, d = 4 recipe of the PyTorch parity run is
//!   `bench/fmnist-60min.toml`.
//! - `ldae-b`, `ldae-l`: the paper's ImageNet-256 settings with DiT-B and DiT-L backbones
//!   (patch 16, d = 32, batch 2048, base lr 1e-4, 400 epochs with 100 warm-up, no weight decay).
//!   The encoder is the first half of the blocks (DiT-L: 12 of 24, "ViT-1/2L").
//! - `dit-tiny`: a class-conditional DiT on Fashion-MNIST small enough for the tests.
//! - `dit-fmnist`: the class-conditional Fashion-MNIST generator (pixel space, patch 4: 49
//!   tokens, width 128, 8 blocks with U-ViT's long skips, v prediction on the cosine schedule,
//!   10% label dropout for guidance; AdamW at batch 64 and lr 8e-3 (RESULTS.md's recipe sweep),
//!   2% warm-up, cosine to 10%, EMA 0.999). Width 128 rather than 192 halves the cost of
//!   training and of the thousands of sampling passes FID needs on a CPU. `dit-fmnist-eps` is
//!   DiT's own objective (eps, linear betas, no long skips) at batch 256 and lr 5e-4: the sweep's
//!   base, and the model a DiT-layout checkpoint imports into.
//! - `dit-fmnist-pca`: the same DiT in the patch-PCA latent space (patch 4, d = 8 of 16: a
//!   7 x 7 x 8 latent scaled to unit variance, one token per latent cell), decoded by inverse PCA.
//! - `dit-fmnist-kl`: the same DiT in the latent of the conv KL-VAE `kl-fmnist` (trained by the
//!   run first, in `RUN/conv-vae/`): images resized to 32 x 32, an 8 x 8 x 2 latent scaled to
//!   unit variance, one token per latent cell (64 tokens of d = 2), decoded by the VAE decoder.
//! - `mar-tiny`: a MAR small enough for the tests, on 4 x 4 pixel patches.
//! - `mar-fmnist`: MAR with the Diffusion Loss (Li et al. 2024) on the same 64 KL-VAE tokens:
//!   an MAE-style encoder / decoder of 4 + 4 pre-LN blocks (width 128), 16 class tokens, a
//!   3 x 256 Diffusion Loss head; MAR's AdamW recipe (weight decay 0.02, warm-up then constant,
//!   global-norm clip 3) at batch 64 and lr 5e-4 (the best of a measured sweep). 20 epochs;
//!   about 65 img/s on 2 cores (the head's 4 noisy copies per masked token are two thirds of
//!   the step), so `--time-budget 55` is the under-an-hour run (3,447 steps measured).
//! - `mar-fmnist-ar-random`, `mar-fmnist-ar-raster`, `mar-fmnist-l2`: the same with causal
//!   attention in random or raster order, or an L2 regression head (MAR's Tables 1 and 2).
//! - `mar-fmnist-ce`, `mar-fmnist-vq`: the same latent quantised by a 256-code k-means
//!   codebook, modelled by cross-entropy over the codes or by the Diffusion Loss (Table 2).
//! - `mar-b`, `mar-l`, `mar-h`: MAR's three ImageNet 256 sizes with their Diffusion Loss heads and recipe,
//!   on 256 KL-f8 tokens of 16 (2 x 2 latent cells).
//! - `mae-fmnist`: MAE on the ladder's backbone and budget (l-DAE's Table 4 baseline).
//! - `ladder-*`: the l-DAE paper's deconstruction ladder (Tables 1-3) on Fashion-MNIST, each
//!   row the row before plus the change the paper names; see `ladder`.
//! - `dit-s`, `dit-b`, `dit-l`, `dit-xl`: DiT's four sizes (Peebles & Xie, Table 1: 12 x 384,
//!   12 x 768, 24 x 1024, 28 x 1152) with DiT's recipe (AdamW lr 1e-4 at batch 256, no weight
//!   decay, no warm-up, EMA 0.9999, T = 1000 linear betas, eps prediction, label dropout 0.1)
//!   on ImageNet 256 in pixel space with patch 16, which gives the 256 tokens of DiT-*/2 on
//!   the 32 x 32 VAE latent. DiT's conditioning is as wide as the tokens. DiT also learns the
//!   reverse-process variance (a second output head trained with the variational bound); ddmlab
//!   keeps the fixed posterior variance of DDPM's `L_simple`.
//!
//! Conv tokenizers (`ddmlab tokenizer train --preset ...`, [`tokenizer_preset`]):
//! - `kl-tiny`: a KL autoencoder on 16 x 16 Fashion-MNIST small enough for the tests.
//! - `kl-fmnist`: latent diffusion's KL autoencoder scaled to Fashion-MNIST: images resized to
//!   32 x 32 so that a stride-4 encoder gives an 8 x 8 latent whose 2 x 2 cells make the same
//!   16 tokens as patch-7 PCA (with 2 channels, d = 8 per token, PCA's default); widths
//!   16 / 32 / 64, one residual block per level, mid attention; L1 + KL 1e-6 + perceptual
//!   (a classifier trained on the labels) + PatchGAN (hinge, adaptive weight 0.5, on from half
//!   way); Adam (0.5, 0.9) at latent diffusion's 4.5e-6 x batch.
//! - `kl-f8`: latent diffusion's KL-f8 (the tokenizer of DiT and of the l-DAE paper's Table 1)
//!   on ImageNet 256: widths 128 x (1, 2, 4, 4), 2 residual blocks, 4 latent channels,
//!   disc from step 50001, batch 12 (its recipe's per-GPU batch on one device).

use crate::config::{DenoiseConfig, MarSection, RunConfig, TrainConfig};
use crate::config::{MarLoss, MarVariant};
use crate::data::ImageShape;
use crate::diffusion::denoise::Target;
use crate::diffusion::{BetaSchedule, NoiseSchedule};
use crate::error::{Error, Result};
use crate::models::VitConfig;
use crate::tokenizer::{LatentScale, TokenizerSpec};

use super::parts::{ddpm, ldae, train, vit};
use super::tokenizers::tokenizer_preset;

/// A named starting configuration and a line describing it.
pub struct Preset {
    pub name: &'static str,
    pub about: &'static str,
    pub config: RunConfig,
}

/// The names of all presets, in registry order.
pub fn preset_names() -> Vec<&'static str> {
    registry().into_iter().map(|p| p.name).collect()
}

/// The preset called `name`.
pub fn preset(name: &str) -> Result<Preset> {
    registry().into_iter().find(|p| p.name == name).ok_or_else(|| {
        Error::config("preset", format!("unknown preset `{name}`, expected one of: {}", preset_names().join(", ")))
    })
}

/// The pixel "tokenizer" at patch `p`, unscaled (a pixel-space DiT).
fn pixels(patch: usize) -> TokenizerSpec {
    TokenizerSpec::Pixels { patch, scale: LatentScale::None }
}

/// A class-conditional DiT: conditioning as wide as the tokens.
fn dit(image: ImageShape, patch: usize, width: usize, depth: usize, heads: usize, classes: usize) -> VitConfig {
    VitConfig { cond_width: width, num_classes: classes, ..vit(image, patch, width, depth, heads) }
}

/// DiT's optimisation: AdamW lr 1e-4 at batch 256 (PyTorch's betas), no weight decay, no
/// warm-up, constant rate, EMA 0.9999.
fn dit_train(epochs: f64) -> TrainConfig {
    TrainConfig { beta2: 0.999, min_lr_frac: 1.0, ..train(256, 1e-4, epochs, 0.0) }
}

/// The Fashion-MNIST DiTs' optimisation: AdamW at `blr` (lr = blr * batch / 256) with 2% warm-up,
/// then cosine to 0.1x, EMA 0.999, 20 epochs unless a budget or a step count is given.
fn fmnist_dit_train(batch_size: usize, blr: f64) -> TrainConfig {
    TrainConfig { ema_decay: 0.999, min_lr_frac: 0.1, ..train(batch_size, blr, 20.0, 0.02) }
}

/// The 64 tokens (8 x 8 cells of 2 channels, unit scale) of the conv KL-VAE `kl-fmnist` on
/// 32 x 32 Fashion-MNIST, the latent of `dit-fmnist-kl` and `mar-fmnist`.
fn kl_fmnist_tokens() -> TokenizerSpec {
    TokenizerSpec::ConvVae {
        cells: 1,
        scale: LatentScale::Unit,
        config: Box::new(tokenizer_preset("kl-fmnist").expect("registered").config),
    }
}

/// MAE (He et al. 2022) on the ladder's backbone, for l-DAE's Table 4 comparison at the same
/// budget: the ladder's ViT (width 192, 4 + 4 blocks, 16 tokens of 7 x 7 pixels) and recipe
/// (600 steps at batch 256), unconditional, one buffer (class) token, 75% of the tokens
/// masked, the pixels of the masked patches regressed (normalised per patch, MAE's
/// `norm_pix_loss`) by a one-block head as wide as the decoder. Probed like every ladder rung.
fn mae_fmnist() -> Preset {
    let base = super::ladder::baseline();
    let width = base.model.width;
    Preset {
        name: "mae-fmnist",
        about: "MAE baseline on the ladder's backbone and budget: 16 pixel patches of 7 x 7, 75% masked, per-patch normalised pixel target (l-DAE Table 4)",
        config: RunConfig {
            preset: "mae-fmnist".into(),
            model: VitConfig { num_classes: 0, ..base.model },
            denoise: DenoiseConfig { class_dropout: 0.0, ..ddpm(pixels(base.model.patch)) },
            finetune: None,
            mar: Some(MarSection {
                loss: MarLoss::L2,
                mask_ratio: Some(0.75),
                norm_target: true,
                ..MarSection::paper(1, width, 1)
            }),
            ..base
        },
    }
}

/// `mar-fmnist` and its variants: one backbone, recipe and latent, the order / attention and the
/// head's loss as given.
fn mar_fmnist(name: &'static str, about: &'static str, variant: MarVariant, loss: MarLoss) -> Preset {
    Preset {
        name,
        about,
        config: RunConfig {
            preset: name.into(),
            data: crate::data::DataSource::FashionMnist,
            train_limit: 0,
            resize: true,
            model: dit(ImageShape { channels: 1, height: 32, width: 32 }, 4, 128, 8, 4, 10),
            denoise: ddpm(kl_fmnist_tokens()),
            finetune: None,
            mar: Some(MarSection { variant, loss, ..MarSection::paper(16, 256, 3) }),
            // The paper's base lr (1e-4 per 256 images) is for 400 epochs at batch 2048; a CPU
            // budget of a few epochs takes more, smaller steps: batch 64 at lr 5e-4 (blr 2e-3).
            // Measured (RESULTS "MAR's recipe on Fashion-MNIST", 400 steps each): lr 5e-4 and
            // 1e-3 tie on the Diffusion Loss (0.2271 / 0.2275), 2e-3 / 4e-3 / 8e-3 are worse.
            train: TrainConfig { blr: 2e-3, ..mar_train(64, 20.0) },
        },
    }
}

/// Codes of the k-means codebook of the discrete-token MAR baselines.
const MAR_CODEBOOK: usize = 256;

/// `config` with its tokens quantised to a [`MAR_CODEBOOK`]-code k-means codebook.
fn with_codebook(mut config: RunConfig) -> RunConfig {
    config.mar.as_mut().expect("a MAR config").codebook = MAR_CODEBOOK;
    config
}

/// MAR's optimisation (LTH14/mar): AdamW (0.9, 0.95), weight decay 0.02, lr 1e-4 per 256
/// images, linear warm-up (here 5% of the run) then constant, EMA 0.9999, global-norm clip 3.
fn mar_train(batch_size: usize, epochs: f64) -> TrainConfig {
    TrainConfig { weight_decay: 0.02, min_lr_frac: 1.0, grad_clip: 3.0, ..train(batch_size, 1e-4, epochs, 0.05) }
}

fn registry() -> Vec<Preset> {
    let fmnist = ImageShape { channels: 1, height: 28, width: 28 };
    let imagenet = ImageShape { channels: 3, height: 256, width: 256 };
    let mut presets = vec![
        Preset {
            name: "ldae-tiny",
            about: "Fashion-MNIST, width 64, 4 blocks, patch 4, d=4: trains in about a minute (tests)",
            config: RunConfig {
                preset: "ldae-tiny".into(),
                data: crate::data::DataSource::FashionMnist,
                train_limit: 0,
                resize: false,
                model: vit(fmnist, 4, 64, 4, 4),
                denoise: ldae(4, 4, 20_000),
                finetune: None,
                mar: None,
                train: TrainConfig {
                    steps: 200,
                    checkpoint_every: 100,
                    ema_decay: 0.999,
                    ..train(128, 1.5e-3, 0.0, 0.05)
                },
            },
        },
        Preset {
            name: "ldae-fmnist",
            about: "Fashion-MNIST default: width 192, 8 blocks (encoder 4), patch 7, d=8 (swept)",
            config: RunConfig {
                preset: "ldae-fmnist".into(),
                data: crate::data::DataSource::FashionMnist,
                train_limit: 0,
                resize: false,
                model: vit(fmnist, 7, 192, 8, 3),
                denoise: ldae(7, 8, 100_000),
                finetune: None,
                mar: None,
                train: TrainConfig { ema_decay: 0.999, ..train(256, 1.5e-3, 20.0, 0.05) },
            },
        },
        Preset {
            name: "ldae-b",
            about: "paper setting, ImageNet 256: DiT-B (12 x 768, encoder 6), patch 16, d=32",
            config: RunConfig {
                preset: "ldae-b".into(),
                data: crate::data::DataSource::Folder("imagenet".into()),
                train_limit: 0,
                resize: false,
                model: vit(imagenet, 16, 768, 12, 12),
                denoise: ldae(16, 32, 1_000_000),
                finetune: None,
                mar: None,
                train: train(2048, 1e-4, 400.0, 0.25),
            },
        },
        Preset {
            name: "ldae-l",
            about: "paper setting, ImageNet 256: DiT-L (24 x 1024, encoder ViT-1/2L = 12), patch 16, d=32",
            config: RunConfig {
                preset: "ldae-l".into(),
                data: crate::data::DataSource::Folder("imagenet".into()),
                train_limit: 0,
                resize: false,
                model: vit(imagenet, 16, 1024, 24, 16),
                denoise: ldae(16, 32, 1_000_000),
                finetune: None,
                mar: None,
                train: train(2048, 1e-4, 400.0, 0.25),
            },
        },
        Preset {
            name: "dit-tiny",
            about: "class-conditional DiT on Fashion-MNIST, width 64, 4 blocks, patch 4 (tests)",
            config: RunConfig {
                preset: "dit-tiny".into(),
                data: crate::data::DataSource::FashionMnist,
                train_limit: 0,
                resize: false,
                model: dit(fmnist, 4, 64, 4, 4, 10),
                denoise: ddpm(pixels(4)),
                finetune: None,
                mar: None,
                train: TrainConfig {
                    steps: 200,
                    checkpoint_every: 100,
                    ema_decay: 0.999,
                    ..train(128, 1e-3, 0.0, 0.05)
                },
            },
        },
        Preset {
            name: "dit-fmnist",
            about: "class-conditional DiT on Fashion-MNIST pixels: width 128, 8 blocks with U-ViT's long skips, patch 4, \
                    v prediction, cosine schedule, batch 64 at lr 8e-3 (RESULTS.md's recipe sweep), CFG dropout 0.1",
            config: RunConfig {
                preset: "dit-fmnist".into(),
                data: crate::data::DataSource::FashionMnist,
                train_limit: 0,
                resize: false,
                model: VitConfig { long_skip: true, ..dit(fmnist, 4, 128, 8, 4, 10) },
                denoise: DenoiseConfig {
                    target: Target::V,
                    noise: NoiseSchedule::from_beta(BetaSchedule::cosine()),
                    ..ddpm(pixels(4))
                },
                finetune: None,
                mar: None,
                // blr 0.032 at batch 64: a peak lr of 8e-3.
                train: fmnist_dit_train(64, 0.032),
            },
        },
        Preset {
            name: "dit-fmnist-eps",
            about: "dit-fmnist with DiT's own objective and the old recipe (eps, linear betas, no long skips, batch 256 at \
                    lr 5e-4): the recipe sweep's base, and the model a DiT-layout checkpoint imports into",
            config: RunConfig {
                preset: "dit-fmnist-eps".into(),
                data: crate::data::DataSource::FashionMnist,
                train_limit: 0,
                resize: false,
                model: dit(fmnist, 4, 128, 8, 4, 10),
                denoise: ddpm(pixels(4)),
                finetune: None,
                mar: None,
                train: fmnist_dit_train(256, 5e-4),
            },
        },
        Preset {
            name: "dit-fmnist-pca",
            about: "class-conditional DiT on the patch-PCA latent of Fashion-MNIST (patch 4, d=8: 7x7 tokens of 8)",
            config: RunConfig {
                preset: "dit-fmnist-pca".into(),
                data: crate::data::DataSource::FashionMnist,
                train_limit: 0,
                resize: false,
                model: dit(fmnist, 4, 128, 8, 4, 10),
                denoise: ddpm(TokenizerSpec::Pca {
                    patch: 4,
                    latent_dim: 8,
                    samples: 100_000,
                    scale: LatentScale::Unit,
                    seed: 0,
                }),
                finetune: None,
                mar: None,
                train: fmnist_dit_train(256, 5e-4),
            },
        },
        Preset {
            name: "dit-fmnist-kl",
            about: "class-conditional DiT on the conv KL-VAE latent (kl-fmnist, trained first): 32x32 images, 8x8x2 latent, 64 tokens",
            config: RunConfig {
                preset: "dit-fmnist-kl".into(),
                data: crate::data::DataSource::FashionMnist,
                train_limit: 0,
                resize: true,
                model: dit(ImageShape { channels: 1, height: 32, width: 32 }, 4, 128, 8, 4, 10),
                denoise: ddpm(kl_fmnist_tokens()),
                finetune: None,
                mar: None,
                train: fmnist_dit_train(256, 5e-4),
            },
        },
        Preset {
            name: "mar-tiny",
            about: "MAR with Diffusion Loss on Fashion-MNIST pixel patches (49 tokens of 16), width 64, 2 + 2 blocks, head 2 x 64 (tests)",
            config: RunConfig {
                preset: "mar-tiny".into(),
                data: crate::data::DataSource::FashionMnist,
                train_limit: 0,
                resize: false,
                model: dit(fmnist, 4, 64, 4, 4, 10),
                denoise: ddpm(pixels(4)),
                finetune: None,
                mar: Some(MarSection::paper(4, 64, 2)),
                train: TrainConfig { steps: 200, checkpoint_every: 100, ema_decay: 0.999, ..mar_train(128, 0.0) },
            },
        },
        mar_fmnist(
            "mar-fmnist",
            "MAR with Diffusion Loss on the conv KL-VAE latent (kl-fmnist, trained first): 64 tokens of 2, width 128, 4 + 4 blocks, head 3 x 256",
            MarVariant::Mar,
            MarLoss::Diffusion,
        ),
        mar_fmnist(
            "mar-fmnist-ar-random",
            "mar-fmnist with causal attention in a random order, one token per step (MAR Table 1: AR, random order)",
            MarVariant::ArRandom,
            MarLoss::Diffusion,
        ),
        mar_fmnist(
            "mar-fmnist-ar-raster",
            "mar-fmnist with causal attention in raster order, one token per step (MAR Table 1: AR, raster)",
            MarVariant::ArRaster,
            MarLoss::Diffusion,
        ),
        mar_fmnist(
            "mar-fmnist-l2",
            "mar-fmnist with an L2 regression head instead of the Diffusion Loss (MAR's baseline)",
            MarVariant::Mar,
            MarLoss::L2,
        ),
        Preset {
            name: "mar-fmnist-ce",
            about: "mar-fmnist on discrete tokens: cross-entropy over a 256-code k-means codebook of the same latent",
            config: with_codebook(mar_fmnist("mar-fmnist-ce", "", MarVariant::Mar, MarLoss::CrossEntropy).config),
        },
        Preset {
            name: "mar-fmnist-vq",
            about: "mar-fmnist with the Diffusion Loss on the 256-code k-means quantised tokens (MAR Table 2's VQ row)",
            config: with_codebook(mar_fmnist("mar-fmnist-vq", "", MarVariant::Mar, MarLoss::Diffusion).config),
        },
        dit_imagenet(
            "dit-s",
            "paper setting, ImageNet 256 class-conditional: DiT-S (12 x 384, 6 heads), patch 16, eps, CFG dropout 0.1",
            384,
            12,
            6,
        ),
        dit_imagenet(
            "dit-b",
            "paper setting, ImageNet 256 class-conditional: DiT-B (12 x 768, 12 heads), patch 16, eps, CFG dropout 0.1",
            768,
            12,
            12,
        ),
        dit_imagenet(
            "dit-l",
            "paper setting, ImageNet 256 class-conditional: DiT-L (24 x 1024, 16 heads), patch 16, eps, CFG dropout 0.1",
            1024,
            24,
            16,
        ),
        dit_imagenet(
            "dit-xl",
            "paper setting, ImageNet 256 class-conditional: DiT-XL (28 x 1152, 16 heads), patch 16, eps, CFG dropout 0.1",
            1152,
            28,
            16,
        ),
    ];
    presets.push(mae_fmnist());
    presets.extend([
        mar_imagenet("mar-b", "paper setting, ImageNet 256: MAR-B (12 + 12 blocks of 768, 12 heads), Diffusion Loss head 6 x 1024, 256 KL-f8 tokens of 16", 768, 12, 12, (6, 1024)),
        mar_imagenet("mar-l", "paper setting, ImageNet 256: MAR-L (16 + 16 blocks of 1024, 16 heads), Diffusion Loss head 8 x 1280, 256 KL-f8 tokens of 16", 1024, 16, 16, (8, 1280)),
        mar_imagenet("mar-h", "paper setting, ImageNet 256: MAR-H (20 + 20 blocks of 1280, 16 heads), Diffusion Loss head 12 x 1536, 256 KL-f8 tokens of 16", 1280, 20, 16, (12, 1536)),
    ]);
    presets.extend(super::ladder::rungs().into_iter().map(|r| Preset {
        name: r.name,
        about: r.about,
        config: r.config,
    }));
    presets
}

/// One of DiT's four sizes on ImageNet 256 (pixel space, patch 16: 256 tokens), DiT's recipe
/// (400K steps at batch 256 = 80 epochs of 1.28M images).
fn dit_imagenet(name: &'static str, about: &'static str, width: usize, depth: usize, heads: usize) -> Preset {
    let imagenet = ImageShape { channels: 3, height: 256, width: 256 };
    Preset {
        name,
        about,
        config: RunConfig {
            preset: name.into(),
            data: crate::data::DataSource::Folder("imagenet".into()),
            train_limit: 0,
            resize: false,
            model: dit(imagenet, 16, width, depth, heads, 1000),
            denoise: ddpm(pixels(16)),
            finetune: None,
            mar: None,
            train: dit_train(80.0),
        },
    }
}

/// One of MAR's three sizes on ImageNet 256 (LTH14/mar `mar_base` / `mar_large` / `mar_huge`
/// with their Diffusion Loss heads): `blocks` encoder and `blocks` decoder blocks, 64 class
/// tokens, MAR's recipe at batch 2048 (lr 1e-4 x 2048 / 256, 100 warm-up epochs of 400, then
/// constant). The paper's tokenizer is a KL-16 VAE (16 x 16 tokens of 16 channels); here the
/// KL-f8 VAE (`kl-f8`, trained first) grouped in 2 x 2 cells gives the same 256 tokens of 16,
/// scaled to unit variance from the data.
fn mar_imagenet(
    name: &'static str,
    about: &'static str,
    width: usize,
    blocks: usize,
    heads: usize,
    (head_depth, head_width): (usize, usize),
) -> Preset {
    let imagenet = ImageShape { channels: 3, height: 256, width: 256 };
    Preset {
        name,
        about,
        config: RunConfig {
            preset: name.into(),
            data: crate::data::DataSource::Folder("imagenet".into()),
            train_limit: 0,
            resize: false,
            model: dit(imagenet, 16, width, 2 * blocks, heads, 1000),
            denoise: ddpm(TokenizerSpec::ConvVae {
                cells: 2,
                scale: LatentScale::Unit,
                config: Box::new(tokenizer_preset("kl-f8").expect("registered").config),
            }),
            // The official architecture and optimisation: the head's affine LayerNorm and learned
            // variance, LTH14/mar's weight-decay groups, its EMA without warm-up.
            finetune: None,
            mar: Some(MarSection {
                head_norm_affine: true,
                learn_variance: true,
                ..MarSection::paper(64, head_width, head_depth)
            }),
            train: TrainConfig {
                ema_decay: 0.9999,
                ema_warmup: false,
                warmup_frac: 0.25,
                decay_exempt: crate::optim::decay::DecayExempt::NormsBiasesHead,
                ..mar_train(2048, 400.0)
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::LossWeight;
    use crate::diffusion::denoise::InputSpace;

    #[test]
    fn every_preset_validates_round_trips_and_has_one_name() {
        let mut names = std::collections::BTreeSet::new();
        for p in registry() {
            p.config.validate().unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(p.config.preset, p.name);
            assert!(names.insert(p.name), "{} is registered twice", p.name);
            let back = RunConfig::from_toml(&p.config.to_toml(), std::path::Path::new(p.name)).unwrap();
            assert_eq!(back, p.config, "{}: the saved config reads back as itself", p.name);
        }
    }

    #[test]
    fn fashion_mnist_presets_have_their_documented_settings() {
        use crate::config::{MarLoss, MarVariant};
        let get = |name: &str| preset(name).unwrap().config;
        // ldae-fmnist: patch 7 (16 tokens), d = 8 patch PCA, width 192, 8 blocks, l-DAE's objective.
        let c = get("ldae-fmnist");
        assert_eq!(
            (c.model.patch, c.model.tokens(), c.model.width, c.model.depth, c.model.encoder_depth),
            (7, 16, 192, 8, 4)
        );
        assert!(matches!(c.denoise.tokenizer, TokenizerSpec::Pca { latent_dim: 8, scale: LatentScale::None, .. }));
        assert_eq!(
            (c.denoise.target, c.denoise.input, c.denoise.residual_weight),
            (Target::Image, InputSpace::Image, Some(0.1))
        );
        assert_eq!(c.denoise.loss_weight, LossWeight::InvOnePlusSigma2);
        // dit-fmnist: pixel space, patch 4 (49 tokens), width 128, 8 blocks with long skips, v on
        // the cosine schedule, 10% label dropout, batch 64 at lr 8e-3, 2% warm-up, cosine to 10%,
        // EMA 0.999, class-conditional at the token width; dit-fmnist-eps: DiT's objective.
        let c = get("dit-fmnist");
        assert!(matches!(c.denoise.tokenizer, TokenizerSpec::Pixels { patch: 4, .. }));
        let m = &c.model;
        assert_eq!(
            (m.tokens(), m.width, m.depth, m.cond_width, m.num_classes, m.long_skip),
            (49, 128, 8, 128, 10, true)
        );
        let cosine = NoiseSchedule::from_beta(BetaSchedule::cosine());
        assert_eq!((c.denoise.target, c.denoise.class_dropout, c.denoise.noise), (Target::V, 0.1, cosine));
        let t = &c.train;
        assert_eq!((t.batch_size, t.warmup_frac, t.min_lr_frac, t.ema_decay), (64, 0.02, 0.1, 0.999));
        assert!((c.lr() - 8e-3).abs() < 1e-15, "lr {}", c.lr());
        let e = get("dit-fmnist-eps");
        assert_eq!((e.denoise.target, e.denoise.noise, e.model.long_skip), (Target::Eps, NoiseSchedule::ddpm(), false));
        assert_eq!(e.train.batch_size, 256);
        assert!((e.lr() - 5e-4).abs() < 1e-15, "lr {}", e.lr());
        // dit-fmnist-pca: the same DiT on a 7 x 7 x 8 unit-variance patch-PCA latent.
        let c = get("dit-fmnist-pca");
        assert!(matches!(
            c.denoise.tokenizer,
            TokenizerSpec::Pca { patch: 4, latent_dim: 8, scale: LatentScale::Unit, .. }
        ));
        assert_eq!((c.model.tokens(), c.model.width), (49, 128));
        // dit-fmnist-kl: 64 tokens of d = 2 from kl-fmnist's 8 x 8 x 2 latent on 32 x 32 images.
        let c = get("dit-fmnist-kl");
        assert!(matches!(c.denoise.tokenizer, TokenizerSpec::ConvVae { cells: 1, scale: LatentScale::Unit, .. }));
        assert_eq!((c.model.image.height, c.model.tokens(), c.denoise.tokenizer.latent_dim(1)), (32, 64, 2));
        // mar-fmnist: 4 + 4 blocks of width 128, 16 class tokens, a 3 x 256 Diffusion Loss head,
        // weight decay 0.02, clip 3, batch 64, lr 5e-4, 20 epochs; its baselines change one thing.
        let c = get("mar-fmnist");
        let net = c.mar_network().unwrap();
        assert_eq!(
            (net.enc_depth, net.dec_depth, net.width, net.buffer, net.head_depth, net.head_width),
            (4, 4, 128, 16, 3, 256)
        );
        assert_eq!((net.seq_len, net.token_dim), (64, 2));
        let t = &c.train;
        assert_eq!((t.weight_decay, t.grad_clip, t.batch_size, t.epochs), (0.02, 3.0, 64, 20.0));
        assert!((c.lr() - 5e-4).abs() < 1e-15, "lr {}", c.lr());
        let mar = c.mar.clone().unwrap();
        assert_eq!((mar.variant, mar.loss, mar.codebook), (MarVariant::Mar, MarLoss::Diffusion, 0));
        for (name, variant, loss, codebook) in [
            ("mar-fmnist-ar-random", MarVariant::ArRandom, MarLoss::Diffusion, 0),
            ("mar-fmnist-ar-raster", MarVariant::ArRaster, MarLoss::Diffusion, 0),
            ("mar-fmnist-l2", MarVariant::Mar, MarLoss::L2, 0),
            ("mar-fmnist-ce", MarVariant::Mar, MarLoss::CrossEntropy, 256),
            ("mar-fmnist-vq", MarVariant::Mar, MarLoss::Diffusion, 256),
        ] {
            let b = get(name);
            let m = b.mar.clone().unwrap();
            assert_eq!((m.variant, m.loss, m.codebook), (variant, loss, codebook), "{name}");
            let same = |x: &RunConfig| (x.model.clone(), x.train.clone(), x.denoise.tokenizer.clone());
            assert_eq!(same(&b), same(&c), "{name}: the backbone, recipe and tokens of mar-fmnist");
        }
    }

    #[test]
    fn paper_presets_match_the_paper() {
        let l = preset("ldae-l").unwrap().config;
        assert_eq!((l.model.depth, l.model.width, l.model.encoder_depth), (24, 1024, 12));
        assert_eq!(l.model.cond_width, 256, "conditioning MLP at 1/4 of the width");
        assert_eq!((l.model.patch, l.denoise.tokenizer.latent_dim(3), l.train.batch_size), (16, 32, 2048));
        assert!((l.lr() - 1e-4 * 8.0).abs() < 1e-12);
        assert_eq!(l.train.warmup_frac * l.train.epochs, 100.0, "100 warm-up epochs of 400");
    }

    #[test]
    fn mar_presets_match_the_mar_paper() {
        for (name, width, blocks, heads, head) in
            [("mar-b", 768, 12, 12, (6, 1024)), ("mar-l", 1024, 16, 16, (8, 1280)), ("mar-h", 1280, 20, 16, (12, 1536))]
        {
            let c = preset(name).unwrap().config;
            c.validate().unwrap();
            let net = c.mar_network().unwrap();
            assert_eq!((net.width, net.enc_depth, net.dec_depth, net.heads), (width, blocks, blocks, heads), "{name}");
            assert_eq!((net.head_depth, net.head_width, net.buffer), (head.0, head.1, 64), "{name}");
            assert_eq!((net.seq_len, net.token_dim, net.num_classes), (256, 16, 1000), "{name}: 16 x 16 tokens of 16");
            let mar = c.mar.as_ref().unwrap();
            assert_eq!((mar.min_mask_ratio, mar.diffusion_repeat, c.denoise.class_dropout), (0.7, 4, 0.1), "{name}");
            let t = &c.train;
            assert_eq!((t.batch_size, t.weight_decay, t.grad_clip, t.beta2), (2048, 0.02, 3.0, 0.95), "{name}");
            assert!((c.lr() - 8e-4).abs() < 1e-12 && t.min_lr_frac == 1.0 && t.warmup_frac * t.epochs == 100.0);
        }
    }

    #[test]
    fn dit_presets_match_the_dit_paper() {
        for (name, width, depth, heads) in
            [("dit-s", 384, 12, 6), ("dit-b", 768, 12, 12), ("dit-l", 1024, 24, 16), ("dit-xl", 1152, 28, 16)]
        {
            let c = preset(name).unwrap().config;
            assert_eq!((c.model.width, c.model.depth, c.model.heads), (width, depth, heads), "{name}");
            assert_eq!(c.model.cond_width, width, "{name}: DiT conditions at the token width");
            assert_eq!(c.model.tokens(), 256, "{name}: the token count of DiT-*/2 on 32 x 32 latents");
            let d = &c.denoise;
            assert_eq!((d.timesteps, d.target, d.class_dropout), (1000, Target::Eps, 0.1));
            assert_eq!(d.noise, NoiseSchedule::ddpm());
            assert!((c.lr() - 1e-4).abs() < 1e-15 && c.train.weight_decay == 0.0 && c.train.min_lr_frac == 1.0);
        }
    }
}
