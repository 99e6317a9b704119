//! The l-DAE paper's deconstruction ladder (Tables 1-3) on Fashion-MNIST, as presets: each rung
//! is the rung it names as its parent plus the one change the paper's row names, and declares
//! the config keys that change (a test checks that nothing else does).
//!
//! Scale: the backbone of `ldae-fmnist` (width 192, 8 blocks with the first 4 as the encoder,
//! 3 heads, conditioning at a quarter of the width, 16 tokens of 7x7 patches) and its
//! optimisation (batch 256, base lr 1.5e-3, 5% warm-up, cosine, EMA 0.999); `ddmlab
//! deconstruct` sets the same number of steps for every rung of a table. Tokenizers are scaled
//! to unit latent variance throughout, as latent diffusion scales its VAE latent, so that the
//! variance-preserving schedules of the first rungs see unit-variance data and only the paper's
//! named changes move along the ladder.
//!
//! - **Table 1** (generation-oriented -> self-supervised), from a class-conditional DiT in the
//!   patch-PCA latent (d = 8, DDPM linear betas, eps): remove class conditioning; replace the
//!   noise schedule by `gamma_t^2` linear from 1 to 0. The same rows on the paper's tokenizer,
//!   latent diffusion's conv KL-VAE (`kl-fmnist`: 32 x 32 images, stride 4, tokens of 2 x 2
//!   latent cells, so the same 16 tokens with d = 8), with its two extra rows: remove the
//!   tokenizer's perceptual loss, then its adversarial loss (a plain VAE).
//! - **Table 2** (tokenizer x latent dimension), each from Table 1's last rung: patch PCA at
//!   d = 2, 4, 8, 16, 32 (of D = 49); patch AE and VAE at d = 4, 8, 16; pixels at patch 2, 4, 7
//!   (d = D = 4, 16, 49), with images resized to 4p x 4p so that there are always 16 tokens
//!   (the paper's Fig. 5); the plain conv VAE at d = 4, 8, 16 (1, 2, 4 latent channels).
//! - **Table 3** (toward a classical DAE), from patch PCA d = 8: predict clean data
//!   (`lambda_t = gamma_t^2`); remove input scaling (`gamma_t = 1`, `sigma_t` linear to
//!   `sqrt 2`, `lambda_t = 1/(1+sigma_t^2)`); operate in image space (inverse PCA on the input);
//!   inverse PCA on the output too (predict `D(z0)`); predict the original image with the
//!   residual weight 0.1 (l-DAE); a single noise level `sqrt(1/3)`. Beside them: the noise
//!   target kept after removing input scaling (our reading of the table's eps footnote), and the
//!   same network as a pixel-space DAE (claim (h)).

use super::parts::{ddpm, train, vit};
use crate::config::RunConfig;
use crate::data::ImageShape;
use crate::diffusion::LossWeight;
use crate::diffusion::NoiseSchedule;
use crate::diffusion::denoise::{InputSpace, Target};
use crate::tokenizer::{LatentScale, TokenizerSpec};

/// Which of the paper's tables a rung belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    One,
    Two,
    Three,
}

impl Table {
    /// `1`, `2`, `3`.
    pub fn number(self) -> usize {
        match self {
            Table::One => 1,
            Table::Two => 2,
            Table::Three => 3,
        }
    }
}

/// One rung of the ladder.
pub struct Rung {
    pub name: &'static str,
    pub about: &'static str,
    pub table: Table,
    /// The rung this one changes (`None` for the baseline).
    pub parent: Option<&'static str>,
    /// The config keys (dotted TOML paths) that differ from the parent.
    pub changes: Vec<&'static str>,
    pub config: RunConfig,
}

const PATCH: usize = 7;
const BASE_D: usize = 8;
const SAMPLES: usize = 100_000;

fn pca(latent_dim: usize) -> TokenizerSpec {
    TokenizerSpec::Pca { patch: PATCH, latent_dim, samples: SAMPLES, scale: LatentScale::Unit, seed: 0 }
}

fn patch_ae(latent_dim: usize, variational: bool) -> TokenizerSpec {
    if variational {
        TokenizerSpec::PatchVae {
            patch: PATCH,
            latent_dim,
            samples: SAMPLES,
            steps: 3000,
            kl_weight: 1e-3,
            scale: LatentScale::Unit,
            seed: 0,
        }
    } else {
        TokenizerSpec::PatchAe {
            patch: PATCH,
            latent_dim,
            samples: SAMPLES,
            steps: 3000,
            scale: LatentScale::Unit,
            seed: 0,
        }
    }
}

/// Latent diffusion's KL autoencoder on 32 x 32 Fashion-MNIST (`kl-fmnist`) with `z` latent
/// channels, tokens of 2 x 2 latent cells (16 tokens of `d = 4 z`), with or without its
/// perceptual and adversarial losses.
fn conv_vae(z: usize, perceptual: bool, adversarial: bool) -> TokenizerSpec {
    let mut config = super::tokenizers::tokenizer_preset("kl-fmnist").expect("registered").config;
    config.model.z_channels = z;
    if !perceptual {
        config.loss.perceptual_weight = 0.0;
    }
    if !adversarial {
        config.loss.disc_weight = 0.0;
    }
    TokenizerSpec::ConvVae { cells: 2, scale: LatentScale::Unit, config: Box::new(config) }
}

/// The keys that change from the patch-7 PCA tokenizer on 28 x 28 images to a conv VAE on
/// 32 x 32 ones (whose 16 tokens cover 8 x 8 pixels).
const CONV_VAE_CHANGES: [&str; 11] = [
    "resize",
    "model.image.height",
    "model.image.width",
    "model.patch",
    "denoise.tokenizer.kind",
    "denoise.tokenizer.patch",
    "denoise.tokenizer.latent_dim",
    "denoise.tokenizer.samples",
    "denoise.tokenizer.seed",
    "denoise.tokenizer.cells",
    "denoise.tokenizer.config",
];

/// Table 1's second row: no class labels, no label dropout.
fn remove_class_conditioning(c: &mut RunConfig) {
    c.model.num_classes = 0;
    c.denoise.class_dropout = 0.0;
}

const UNCOND_CHANGES: [&str; 2] = ["model.num_classes", "denoise.class_dropout"];

/// Table 1's last row: the linear-`gamma_t^2` schedule replaces DDPM's betas.
const GAMMA2_CHANGES: [&str; 3] = ["denoise.noise.kind", "denoise.noise.start", "denoise.noise.end"];

/// The keys that change from a patch-7 PCA tokenizer to pixels at patch `p`.
fn pixel_changes(p: usize) -> Vec<&'static str> {
    let mut keys = vec![
        "denoise.tokenizer.kind",
        "denoise.tokenizer.latent_dim",
        "denoise.tokenizer.samples",
        "denoise.tokenizer.seed",
    ];
    if p != PATCH {
        keys.extend(["resize", "model.image.height", "model.image.width", "model.patch", "denoise.tokenizer.patch"]);
    }
    keys
}

/// `c` moved onto conv VAE `spec`: images resized to 32 x 32, one token per 8 x 8 pixels.
fn to_conv_vae(c: &mut RunConfig, spec: TokenizerSpec) {
    c.resize = true;
    c.model.image = ImageShape { channels: 1, height: 32, width: 32 };
    c.model.patch = spec.patch();
    c.denoise.tokenizer = spec;
}

/// The class-conditional DiT baseline of Table 1 on the patch-PCA latent.
pub(crate) fn baseline() -> RunConfig {
    let fmnist = ImageShape { channels: 1, height: 28, width: 28 };
    RunConfig {
        preset: "ladder-t1-dit".into(),
        data: crate::data::DataSource::FashionMnist,
        train_limit: 0,
        resize: false,
        model: crate::models::VitConfig { num_classes: 10, ..vit(fmnist, PATCH, 192, 8, 3) },
        denoise: ddpm(pca(BASE_D)),
        finetune: None,
        mar: None,
        train: crate::config::TrainConfig {
            ema_decay: 0.999,
            steps: 600,
            checkpoint_every: 100,
            ..train(256, 1.5e-3, 0.0, 0.05)
        },
    }
}

/// Every rung, parents before children.
pub fn rungs() -> Vec<Rung> {
    let mut out: Vec<Rung> = Vec::new();
    let mut add = |name: &'static str,
                   about: &'static str,
                   table: Table,
                   parent: Option<&'static str>,
                   changes: &[&'static str],
                   change: &dyn Fn(&mut RunConfig)| {
        let mut config = match parent {
            Some(p) => out.iter().find(|r| r.name == p).expect("parents come first").config.clone(),
            None => baseline(),
        };
        change(&mut config);
        config.preset = name.into();
        out.push(Rung { name, about, table, parent, changes: changes.to_vec(), config });
    };
    use Table::*;
    add(
        "ladder-t1-dit",
        "ladder T1: class-conditional DiT on patch PCA d=8 (unit scale), DDPM linear betas, eps",
        One,
        None,
        &[],
        &|_| {},
    );
    add(
        "ladder-t1-uncond",
        "ladder T1: remove class conditioning",
        One,
        Some("ladder-t1-dit"),
        &UNCOND_CHANGES,
        &remove_class_conditioning,
    );
    add(
        "ladder-t1-gamma2",
        "ladder T1: replace the noise schedule (gamma_t^2 linear from 1 to 0)",
        One,
        Some("ladder-t1-uncond"),
        &GAMMA2_CHANGES,
        &|c| c.denoise.noise = NoiseSchedule::LinearGamma2,
    );
    // Table 1 on the paper's tokenizer: the conv VAE with all its losses, then without its
    // perceptual loss, then without its adversarial loss (a plain VAE).
    add(
        "ladder-t1-kl-dit",
        "ladder T1: class-conditional DiT on the conv KL-VAE (L1 + KL + perceptual + PatchGAN), DDPM, eps",
        One,
        Some("ladder-t1-dit"),
        &CONV_VAE_CHANGES,
        &|c| to_conv_vae(c, conv_vae(2, true, true)),
    );
    add(
        "ladder-t1-kl-uncond",
        "ladder T1 (conv VAE): remove class conditioning",
        One,
        Some("ladder-t1-kl-dit"),
        &UNCOND_CHANGES,
        &remove_class_conditioning,
    );
    add(
        "ladder-t1-kl-no-perceptual",
        "ladder T1 (conv VAE): remove the tokenizer's perceptual loss",
        One,
        Some("ladder-t1-kl-uncond"),
        &["denoise.tokenizer.config.loss.perceptual_weight"],
        &|c| c.denoise.tokenizer = conv_vae(2, false, true),
    );
    add(
        "ladder-t1-kl-no-adversarial",
        "ladder T1 (conv VAE): remove the tokenizer's adversarial loss (a plain VAE)",
        One,
        Some("ladder-t1-kl-no-perceptual"),
        &["denoise.tokenizer.config.loss.disc_weight"],
        &|c| c.denoise.tokenizer = conv_vae(2, false, false),
    );
    add(
        "ladder-t1-kl-gamma2",
        "ladder T1 (conv VAE): replace the noise schedule (gamma_t^2 linear from 1 to 0)",
        One,
        Some("ladder-t1-kl-no-adversarial"),
        &GAMMA2_CHANGES,
        &|c| c.denoise.noise = NoiseSchedule::LinearGamma2,
    );
    // Table 2's conv VAE row: the plain conv VAE of Table 1's last rung (d = 8) at d = 4, 16.
    for (name, z) in [("ladder-t2-kl-d4", 1), ("ladder-t2-kl-d16", 4)] {
        add(
            name,
            "ladder T2: the plain conv VAE at another latent size (latent channels)",
            Two,
            Some("ladder-t1-kl-gamma2"),
            &["denoise.tokenizer.config.model.z_channels"],
            &move |c| c.denoise.tokenizer = conv_vae(z, false, false),
        );
    }
    // Table 2: each tokenizer and latent size from Table 1's last rung (its PCA d = 8 row is that
    // rung itself). The paper's d (of D = 768) is matched to ours (of D = 49) by rank.
    for (name, d) in
        [("ladder-t2-pca-d2", 2), ("ladder-t2-pca-d4", 4), ("ladder-t2-pca-d16", 16), ("ladder-t2-pca-d32", 32)]
    {
        add(
            name,
            "ladder T2: patch PCA at another latent size",
            Two,
            Some("ladder-t1-gamma2"),
            &["denoise.tokenizer.latent_dim"],
            &move |c| c.denoise.tokenizer = pca(d),
        );
    }
    for (name, d, variational) in [
        ("ladder-t2-ae-d4", 4, false),
        ("ladder-t2-ae-d8", 8, false),
        ("ladder-t2-ae-d16", 16, false),
        ("ladder-t2-vae-d4", 4, true),
        ("ladder-t2-vae-d8", 8, true),
        ("ladder-t2-vae-d16", 16, true),
    ] {
        let mut changes = vec!["denoise.tokenizer.kind", "denoise.tokenizer.steps"];
        if d != BASE_D {
            changes.push("denoise.tokenizer.latent_dim");
        }
        if variational {
            changes.push("denoise.tokenizer.kl_weight");
        }
        let about = if variational {
            "ladder T2: patch VAE tokenizer (linear, KL 1e-3)"
        } else {
            "ladder T2: patch AE tokenizer (linear)"
        };
        add(name, about, Two, Some("ladder-t1-gamma2"), &changes, &move |c| {
            c.denoise.tokenizer = patch_ae(d, variational)
        });
    }
    for (name, p) in [("ladder-t2-pixels-p2", 2), ("ladder-t2-pixels-p4", 4), ("ladder-t2-pixels-p7", 7)] {
        add(
            name,
            "ladder T2: pixels (no compression, d = p p), images resized to 4p x 4p: 16 tokens",
            Two,
            Some("ladder-t1-gamma2"),
            &pixel_changes(p),
            &move |c| {
                c.resize = p * 4 != 28;
                c.model.image = ImageShape { channels: 1, height: 4 * p, width: 4 * p };
                c.model.patch = p;
                c.denoise.tokenizer = TokenizerSpec::Pixels { patch: p, scale: LatentScale::Unit };
            },
        );
    }
    add(
        "ladder-t3-x0",
        "ladder T3: predict clean data instead of noise (lambda_t = gamma_t^2)",
        Three,
        Some("ladder-t1-gamma2"),
        &["denoise.target", "denoise.loss_weight"],
        &|c| {
            c.denoise.target = Target::X0;
            c.denoise.loss_weight = LossWeight::Gamma2;
        },
    );
    add(
        "ladder-t3-no-scaling",
        "ladder T3: remove input scaling (gamma_t = 1, sigma_t linear to sqrt 2, lambda_t = 1/(1+sigma_t^2))",
        Three,
        Some("ladder-t3-x0"),
        &["denoise.noise.kind", "denoise.noise.sigma_max", "denoise.loss_weight"],
        &|c| {
            c.denoise.noise = NoiseSchedule::ldae();
            c.denoise.loss_weight = LossWeight::InvOnePlusSigma2;
        },
    );
    add(
        "ladder-t3-eps",
        "ladder T3 (footnote): without input scaling, keep predicting the noise",
        Three,
        Some("ladder-t3-no-scaling"),
        &["denoise.target"],
        &|c| c.denoise.target = Target::Eps,
    );
    add(
        "ladder-t3-image-input",
        "ladder T3: operate in image space (inverse PCA on the input)",
        Three,
        Some("ladder-t3-no-scaling"),
        &["denoise.input"],
        &|c| c.denoise.input = InputSpace::Image,
    );
    add(
        "ladder-t3-image-output",
        "ladder T3: inverse PCA on the output too (predict the decoded clean latent)",
        Three,
        Some("ladder-t3-image-input"),
        &["denoise.target"],
        &|c| c.denoise.target = Target::DecodedX0,
    );
    add(
        "ladder-t3-ldae",
        "ladder T3: predict the original image (PCA-residual weight 0.1) = l-DAE",
        Three,
        Some("ladder-t3-image-output"),
        &["denoise.target", "denoise.residual_weight"],
        &|c| {
            c.denoise.target = Target::Image;
            c.denoise.residual_weight = Some(0.1);
        },
    );
    add(
        "ladder-t3-single-level",
        "ladder T3: a single noise level sigma = sqrt(1/3)",
        Three,
        Some("ladder-t3-ldae"),
        &["denoise.noise.kind", "denoise.noise.sigma_max", "denoise.noise.sigma"],
        &|c| c.denoise.noise = NoiseSchedule::Constant { sigma: (1.0f64 / 3.0).sqrt() },
    );
    add(
        "ladder-t3-pixel-dae",
        "ladder T3: the same network as a pixel-space DAE (pixels tokenizer, no residual)",
        Three,
        Some("ladder-t3-ldae"),
        &[&pixel_changes(PATCH)[..], &["denoise.residual_weight"]].concat(),
        &|c| {
            c.denoise.residual_weight = None;
            c.denoise.tokenizer = TokenizerSpec::Pixels { patch: PATCH, scale: LatentScale::Unit };
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every leaf of a TOML tree as `dotted.key = value`.
    fn leaves(prefix: &str, v: &toml::Value, out: &mut std::collections::BTreeMap<String, String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    leaves(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }

    #[test]
    fn each_rung_differs_from_its_parent_only_in_the_keys_it_names() {
        let all = rungs();
        for r in &all {
            r.config.validate().unwrap_or_else(|e| panic!("{}: {e}", r.name));
            let Some(parent) = r.parent else { continue };
            let parent = &all.iter().find(|p| p.name == parent).expect("parent exists").config;
            let (mut a, mut b) = (Default::default(), Default::default());
            leaves("", &toml::Value::try_from(parent).unwrap(), &mut a);
            leaves("", &toml::Value::try_from(&r.config).unwrap(), &mut b);
            let mut changed: Vec<String> = a
                .keys()
                .chain(b.keys())
                .filter(|k| k.as_str() != "preset" && a.get(*k) != b.get(*k))
                .cloned()
                .collect();
            changed.sort();
            changed.dedup();
            // A declared key names a leaf or a whole section (a conv VAE's training config).
            let covers = |d: &str, k: &str| k == d || k.starts_with(&format!("{d}."));
            for k in &changed {
                assert!(r.changes.iter().any(|d| covers(d, k)), "{}: {k} changed but is not declared", r.name);
            }
            for d in &r.changes {
                assert!(changed.iter().any(|k| covers(d, k)), "{}: {d} declared but unchanged", r.name);
            }
        }
    }

    #[test]
    fn the_ladder_ends_at_ldae_and_every_table_shares_one_backbone() {
        let all = rungs();
        let ldae = &all.iter().find(|r| r.name == "ladder-t3-ldae").unwrap().config;
        let d = &ldae.denoise;
        assert_eq!(
            (d.input, d.target, d.residual_weight, d.noise),
            (InputSpace::Image, Target::Image, Some(0.1), NoiseSchedule::ldae())
        );
        assert_eq!(ldae.model.num_classes, 0);
        for r in &all {
            let m = &r.config.model;
            assert_eq!((m.width, m.depth, m.encoder_depth, m.tokens()), (192, 8, 4, 16), "{}", r.name);
        }
    }
}
