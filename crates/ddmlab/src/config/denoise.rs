//! `[denoise]`: the denoising objective as independent settings, one per axis of the l-DAE
//! paper's ladder (see `diffusion::denoise` for the math).

use serde::{Deserialize, Serialize};

use crate::data::ImageShape;
use crate::diffusion::denoise::{DenoiseObjective, InputSpace, NoiseSpace, Target};
use crate::diffusion::{LossWeight, NoiseSchedule};
use crate::error::{Error, Result};
use crate::settings::check;
use crate::tokenizer::TokenizerSpec;

/// The objective a run trains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenoiseConfig {
    /// Diffusion steps `T` (1000).
    pub timesteps: usize,
    /// Where the noise is added: `latent` or `pixels`.
    pub noise_space: NoiseSpace,
    /// What the network reads: `latent` tokens or the `image`.
    pub input: InputSpace,
    /// What it predicts: `eps`, `x0`, `v` (latent), `decoded-x0` or `image`.
    pub target: Target,
    /// Weight of the tokenizer's residual coordinates for an `image` target (l-DAE: 0.1);
    /// absent: the plain squared error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residual_weight: Option<f64>,
    /// `lambda_t`: `uniform`, `gamma2` or `inv-one-plus-sigma2`.
    pub loss_weight: LossWeight,
    /// Probability that a training label becomes the null class (classifier-free guidance;
    /// class-conditional models only, DiT: 0.1).
    pub class_dropout: f64,
    /// The timestep at which the probe reads features (the paper: 10).
    pub probe_t: usize,
    /// The tokenizer (`kind = "pca" | "patch-ae" | "patch-vae" | "pixels"`).
    pub tokenizer: TokenizerSpec,
    /// The noise process (`kind = "linear-beta" | "cosine" | "linear-gamma2" | "linear-sigma" |
    /// "constant"`).
    pub noise: NoiseSchedule,
}

impl DenoiseConfig {
    /// The network's input width per token for images with `channels` channels.
    pub fn in_dim(&self, channels: usize) -> usize {
        match self.input {
            InputSpace::Latent => self.tokenizer.latent_dim(channels),
            InputSpace::Image => self.patch_dim(channels),
        }
    }

    /// The network's output width per token.
    pub fn out_dim(&self, channels: usize) -> usize {
        if self.target.in_image_space() { self.patch_dim(channels) } else { self.tokenizer.latent_dim(channels) }
    }

    fn patch_dim(&self, channels: usize) -> usize {
        let p = self.tokenizer.patch();
        p * p * channels
    }

    /// Whether the model generates: a variance-preserving process in the latent, read and
    /// predicted there (eps / x0 / v), so that DDPM and DDIM sampling apply.
    pub fn is_generator(&self) -> bool {
        self.noise.beta().is_some()
            && self.noise_space == NoiseSpace::Latent
            && self.input == InputSpace::Latent
            && self.target.prediction().is_some()
    }

    /// Whether noise is drawn as images `[B, C, H, W]` (see `diffusion::denoise`).
    pub fn noise_is_pixels(&self) -> bool {
        crate::diffusion::denoise::noise_is_pixels(
            self.noise_space,
            matches!(self.tokenizer, TokenizerSpec::Pixels { .. }),
        )
    }

    /// The math of this objective.
    pub fn objective(&self) -> DenoiseObjective {
        DenoiseObjective {
            tables: self.noise.tables(self.timesteps),
            noise_space: self.noise_space,
            input: self.input,
            target: self.target,
            residual_weight: self.residual_weight,
            loss_weight: self.loss_weight,
        }
    }

    /// A short description for messages and plots: `eps on patch PCA d=8, linear-beta`.
    pub fn label(&self, channels: usize) -> String {
        format!(
            "{} on {}, {}, noise in {}, input {}",
            self.target.label(),
            self.tokenizer.label(channels),
            self.noise.label(),
            match self.noise_space {
                NoiseSpace::Latent => "latent",
                NoiseSpace::Pixels => "pixels",
            },
            match self.input {
                InputSpace::Latent => "latent",
                InputSpace::Image => "image",
            }
        )
    }

    /// Check every setting and every combination, for images of `image` and a model with
    /// `num_classes` classes; errors name the field.
    pub fn validate(&self, image: ImageShape, num_classes: usize) -> Result<()> {
        self.tokenizer.validate(image, "denoise.tokenizer")?;
        check(self.timesteps >= 2, "denoise.timesteps", "must be at least 2")?;
        if let Some(problem) = self.noise.problem() {
            return Err(Error::config("denoise.noise", problem));
        }
        if let Some(problem) = self.loss_weight.problem() {
            return Err(Error::config("denoise.loss_weight", problem));
        }
        check(
            self.probe_t < self.timesteps,
            "denoise.probe_t",
            format!("{} must be below denoise.timesteps {}", self.probe_t, self.timesteps),
        )?;
        check(
            (0.0..1.0).contains(&self.class_dropout),
            "denoise.class_dropout",
            format!("{} must be in [0, 1)", self.class_dropout),
        )?;
        check(
            self.class_dropout == 0.0 || num_classes > 0,
            "denoise.class_dropout",
            format!(
                "{} drops labels, but the model is unconditional (model.num_classes = 0); set it to 0",
                self.class_dropout
            ),
        )?;
        if self.noise_space == NoiseSpace::Pixels {
            check(
                self.input == InputSpace::Image,
                "denoise.input",
                "noise added in pixels is read as an image: set input = \"image\" (or noise_space = \"latent\")",
            )?;
            check(
                self.target.in_image_space(),
                "denoise.target",
                format!(
                    "`{}` is a latent target, but the noise is added in pixels: use \"image\" or \"decoded-x0\"",
                    self.target.label()
                ),
            )?;
        }
        if let Some(w) = self.residual_weight {
            check((0.0..=1.0).contains(&w), "denoise.residual_weight", format!("{w} must be in [0, 1]"))?;
            check(
                self.target == Target::Image,
                "denoise.residual_weight",
                format!("weighs the residual of an `image` target; the target is `{}`", self.target.label()),
            )?;
            check(
                !matches!(self.tokenizer, TokenizerSpec::Pixels { .. }),
                "denoise.residual_weight",
                "needs a tokenizer with a residual (pca, patch-ae, patch-vae); the pixels tokenizer keeps every dimension",
            )?;
        }
        Ok(())
    }
}
