//! The one denoising objective, whose settings are the l-DAE paper's axes (Tables 1-3): every
//! row of its deconstruction ladder, DDPM / DiT at one end and l-DAE at the other, is a value of
//! these settings, not a code path of its own.
//!
//! For clean images `x0` and a tokenizer `E` / `D` (encode / decode, `[B, L, d]` latents):
//! 1. **Noise.** In the latent (`noise_space = latent`): `z0 = E(x0)` (a sample for a VAE),
//!    `z_t = gamma_t z0 + sigma_t eps`, `eps ~ N(0, I)` of `[B, L, d]`. In pixels: `x_t =
//!    gamma_t x0 + sigma_t eps` on the image's patches.
//! 2. **What the network sees** (`input`): the latent `z_t` as tokens, or the image, patchified
//!    (`D(z_t)`: the inverse tokenizer on the input, l-DAE's `x_t`; or the pixel-noised `x_t`).
//! 3. **What it predicts** (`target`): `eps`, `z0` (x0) or `v = gamma_t eps - sigma_t z0` in the
//!    latent; the latent decoded to image space, `D(z0)`; or the original image `x0`.
//! 4. **Loss.** Latent targets: the mean squared error over every element (DDPM's `L_simple`).
//!    Image targets: the squared error summed over a patch's pixels and averaged over patches,
//!    with the residual weight `w` of the PCA-residual loss (l-DAE §4.4): for an orthonormal
//!    basis `Q` of the tokenizer's patch subspace, `sum_i w_i r_i^2 = w |e|^2 + (1 - w) |Q^T e|^2`.
//!    Each image is weighted by `lambda_t` (uniform, `gamma_t^2`, `1 / (1 + sigma_t^2)`, or
//!    Min-SNR-`k` on the clean-data error, converted to the target's error).
//!
//! Noise drawn in pixels (the pixel tokenizer, or `noise_space = pixels`) is laid out as images,
//! `[B, C, H, W]`; noise drawn in a latent as tokens, `[B, L, d]`. Runs written before this
//! objective therefore draw the very same numbers.

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::noise::{ErrorOn, LossWeight, NoiseTables};
use super::vp::Prediction;
use crate::nn::patchify;
use crate::tokenizer::Tokenizer;

/// Where the clean latent `z0` of a batch comes from.
#[derive(Debug, Clone)]
pub enum Latent {
    /// Encode the images: a stochastic tokenizer's posterior sample with this noise
    /// (`[B, L, d]`), else (or with none) its deterministic latent.
    Encode(Option<Tensor<3>>),
    /// Given: a latent cache's sample, `[B, L, d]`.
    Given(Tensor<3>),
}

/// Where the noise is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseSpace {
    /// To the tokenizer's latent (DDM, l-DAE).
    Latent,
    /// To the pixels (a classical DAE).
    Pixels,
}

/// What the network reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputSpace {
    /// The noisy latent tokens.
    Latent,
    /// The noisy image (through the inverse tokenizer when the noise is in the latent).
    Image,
}

/// What the network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The noise `eps` in the latent.
    Eps,
    /// The clean latent `z0`.
    X0,
    /// `v = gamma_t eps - sigma_t z0` in the latent.
    V,
    /// The clean latent decoded to image space, `D(z0)`.
    DecodedX0,
    /// The original image `x0` (with the residual weight, l-DAE).
    Image,
}

impl Target {
    /// The sampler's prediction kind of a latent target.
    pub fn prediction(self) -> Option<Prediction> {
        match self {
            Target::Eps => Some(Prediction::Eps),
            Target::X0 => Some(Prediction::X0),
            Target::V => Some(Prediction::V),
            Target::DecodedX0 | Target::Image => None,
        }
    }

    /// Whether the target lives in image space (`p p C` per token) rather than the latent.
    pub fn in_image_space(self) -> bool {
        matches!(self, Target::DecodedX0 | Target::Image)
    }

    /// The name used in configs and tables.
    pub fn label(self) -> &'static str {
        match self {
            Target::Eps => "eps",
            Target::X0 => "x0",
            Target::V => "v",
            Target::DecodedX0 => "decoded-x0",
            Target::Image => "image",
        }
    }
}

/// The objective's settings, with its noise tables.
#[derive(Debug, Clone, PartialEq)]
pub struct DenoiseObjective {
    pub tables: NoiseTables,
    pub noise_space: NoiseSpace,
    pub input: InputSpace,
    pub target: Target,
    /// `w` for the residual coordinates of an image target (`None`: plain squared error).
    pub residual_weight: Option<f64>,
    pub loss_weight: LossWeight,
}

/// Whether noise for `tokenizer` in `space` is drawn as images (`[B, C, H, W]`) rather than as
/// latent tokens.
pub fn noise_is_pixels(space: NoiseSpace, pixel_tokenizer: bool) -> bool {
    space == NoiseSpace::Pixels || pixel_tokenizer
}

impl DenoiseObjective {
    /// A per-image scalar as a `[B, 1, 1]` tensor.
    fn per_image(&self, t: &[usize], f: impl Fn(usize) -> f64, device: &Device) -> Tensor<3> {
        let values: Vec<f32> = t.iter().map(|&t| f(t) as f32).collect();
        Tensor::from_data(TensorData::new(values, [t.len(), 1, 1]), device)
    }

    /// The noise draws `eps` as tokens: image-laid-out noise (see [`noise_is_pixels`]) is
    /// patchified, latent noise is `[B, L, d]` already.
    ///
    /// # Shapes
    /// - `eps`: `B` images of `C H W` or `L d` values; returns `[B, L, n]`
    pub fn noise_tokens(
        &self,
        tok: &dyn Tokenizer,
        eps: Vec<f32>,
        b: usize,
        pixels: bool,
        device: &Device,
    ) -> Tensor<3> {
        let image = tok.image();
        let p = tok.patch();
        if pixels {
            let x =
                Tensor::<4>::from_data(TensorData::new(eps, [b, image.channels, image.height, image.width]), device);
            patchify(x, p)
        } else {
            let l = (image.height / p) * (image.width / p);
            Tensor::from_data(TensorData::new(eps, [b, l, tok.latent_dim()]), device)
        }
    }

    /// The network's input tokens and the target for clean images `x0` at timesteps `t`,
    /// with noise `eps` (see [`DenoiseObjective::noise_tokens`]) and the clean latent `z0` as
    /// `latent` says (encoded here, or given by a latent cache).
    ///
    /// # Shapes
    /// - `x0`: `[B, C, H, W]`; `t`: `[B]`; `eps`: `[B, L, d]` (latent) or `[B, L, p p C]`
    ///   (pixels); `latent`: `[B, L, d]`
    /// - returns (`[B, L, in]`, `[B, L, out]`): `in`, `out` are `d` or `p p C`
    pub fn input_and_target(
        &self,
        tok: &dyn Tokenizer,
        x0: Tensor<4>,
        t: &[usize],
        eps: Tensor<3>,
        latent: Latent,
    ) -> (Tensor<3>, Tensor<3>) {
        let device = x0.device();
        let p = tok.patch();
        let g = self.per_image(t, |t| self.tables.gamma[t], &device);
        let s = self.per_image(t, |t| self.tables.sigma[t], &device);
        match self.noise_space {
            NoiseSpace::Latent => {
                let z0 = match latent {
                    Latent::Given(z0) => z0,
                    Latent::Encode(Some(noise)) if tok.stochastic() => tok.encode_sample(x0.clone(), noise),
                    Latent::Encode(_) => tok.encode(x0.clone()),
                }; // [B, L, d]
                let z_t = z0.clone() * g.clone() + eps.clone() * s.clone();
                let input = match self.input {
                    InputSpace::Latent => z_t,
                    InputSpace::Image => patchify(tok.decode(z_t), p), // [B, L, p p C]
                };
                let target = match self.target {
                    Target::Eps => eps,
                    Target::X0 => z0,
                    Target::V => eps * g - z0 * s,
                    Target::DecodedX0 => patchify(tok.decode(z0), p),
                    Target::Image => patchify(x0, p),
                };
                (input, target)
            }
            NoiseSpace::Pixels => {
                let x0p = patchify(x0.clone(), p); // [B, L, p p C]
                let x_t = x0p.clone() * g + eps * s;
                let target = match self.target {
                    Target::DecodedX0 => patchify(tok.decode(tok.encode(x0)), p),
                    _ => x0p,
                };
                (x_t, target)
            }
        }
    }

    /// The weighted loss of the network's `output` against `target` (a scalar).
    ///
    /// # Shapes
    /// - `output`, `target`: `[B, L, n]`; `t`: `[B]`; returns `[1]`
    pub fn loss(&self, tok: &dyn Tokenizer, output: Tensor<3>, target: Tensor<3>, t: &[usize]) -> Tensor<1> {
        let device = output.device();
        let on = match self.target {
            Target::Eps => ErrorOn::Eps,
            Target::V => ErrorOn::V,
            Target::X0 | Target::DecodedX0 | Target::Image => ErrorOn::Clean,
        };
        let lambda =
            self.per_image(t, |t| self.loss_weight.at(self.tables.gamma[t], self.tables.sigma[t], on), &device);
        let e = target - output; // [B, L, n]
        if !self.target.in_image_space() {
            return (e.square() * lambda).mean();
        }
        let full = e.clone().square().sum_dim(2); // [B, L, 1]
        let per_patch = match (self.residual_weight, tok.residual_basis()) {
            (Some(w), Some(q)) if self.target == Target::Image => {
                let [b, l, n] = e.dims();
                let d = q.dims()[1];
                let latent = e.reshape([b * l, n]).matmul(q).reshape([b, l, d]).square().sum_dim(2); // [B, L, 1]
                full * w + latent * (1.0 - w)
            }
            _ => full,
        };
        (per_patch * lambda).mean()
    }
}
