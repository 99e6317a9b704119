//! Tokenizers: how images become sequences of low-dimensional latent tokens `[B, L, d]` and
//! back.
//!
//! l-DAE's finding (paper §4.3, Table 2) is that a *low-dimensional latent* is what makes a
//! denoiser learn good representations, and that which tokenizer makes it matters little.
//! Every tokenizer sits behind the one [`Tokenizer`] trait:
//! - [`pca`]: patch-wise PCA (no gradient training), l-DAE's choice;
//! - [`patch_ae`]: a linear patch-wise autoencoder, or VAE with a KL term and a
//!   reparameterised latent, trained by reconstruction;
//! - [`pixels`]: the identity on patches (`d = p p C`), the "no compression" end of Table 2;
//! - [`conv_vae`]: latent diffusion's conv KL autoencoder (Table 1's tokenizer), trained in its
//!   own stage with reconstruction, KL, perceptual and adversarial losses.
//!
//! A tokenizer is described by a [`TokenizerSpec`] in a run's config, fitted once on the
//! training images into a [`FittedTokenizer`] (host values, saved in the run folder), and
//! bound to a device as a `Box<dyn Tokenizer>`. The latent is multiplied by a scale computed
//! from the data when the spec asks for unit variance, as latent diffusion scales its VAE
//! latent. Non-patch-wise tokenizers (the conv KL autoencoder of Table 1) implement the same
//! trait: `encode` and `decode` take whole images; only [`Tokenizer::residual_basis`] is
//! patch-wise, and a tokenizer without one cannot be used with a residual-weighted loss.

pub mod conv_config;
pub mod conv_vae;
pub mod fit;
pub mod patch_ae;
pub mod pca;
pub mod pixels;
pub mod posterior;
pub mod spec;
pub mod store;

use burn::tensor::Tensor;

pub use fit::{FitReport, FittedTokenizer};
pub use pca::{PatchPca, PcaTensors};
pub use spec::{LatentScale, TokenizerSpec};

use crate::data::ImageShape;

/// A fitted tokenizer on a device.
pub trait Tokenizer: Send + Sync + std::fmt::Debug {
    /// Patch side `p` of the token grid (`L = (H/p)(W/p)`).
    fn patch(&self) -> usize;

    /// Latent dimension per token `d`.
    fn latent_dim(&self) -> usize;

    /// The image shape it encodes.
    fn image(&self) -> ImageShape;

    /// Whether the encoder is stochastic (a VAE): [`Tokenizer::encode_sample`] then differs
    /// from [`Tokenizer::encode`].
    fn stochastic(&self) -> bool {
        false
    }

    /// The deterministic latent (a VAE's posterior mean), scaled.
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]`; returns `[B, L, d]`
    fn encode(&self, x: Tensor<4>) -> Tensor<3>;

    /// A latent sample `mu + std * noise` (scaled); deterministic tokenizers ignore `noise`.
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]`; `noise`: `[B, L, d]`; returns `[B, L, d]`
    fn encode_sample(&self, x: Tensor<4>, noise: Tensor<3>) -> Tensor<3> {
        let _ = noise;
        self.encode(x)
    }

    /// The image of scaled latents.
    ///
    /// # Shapes
    /// - `z`: `[B, L, d]`; returns `[B, C, H, W]`
    fn decode(&self, z: Tensor<3>) -> Tensor<4>;

    /// An orthonormal basis `[p p C, d]` of the patch subspace the decoder spans, for the
    /// residual-weighted loss (`sum_i w_i r_i^2 = w_res |e|^2 + (1 - w_res) |Q^T e|^2`);
    /// `None` when the tokenizer keeps every dimension (pixels) or is not patch-wise.
    fn residual_basis(&self) -> Option<Tensor<2>>;

    /// The latent viewed as an image for samplers: `[B, d, H/p, W/p]` by default; the pixel
    /// tokenizer's is the image itself.
    ///
    /// # Shapes
    /// - `z`: `[B, L, d]`; returns `[B, c, h, w]` of [`Tokenizer::grid_shape`]
    fn tokens_to_grid(&self, z: Tensor<3>) -> Tensor<4> {
        let [b, _, d] = z.dims();
        let ImageShape { height, width, .. } = self.image();
        let (gh, gw) = (height / self.patch(), width / self.patch());
        z.reshape([b, gh, gw, d]).permute([0, 3, 1, 2])
    }

    /// The inverse of [`Tokenizer::tokens_to_grid`].
    ///
    /// # Shapes
    /// - `g`: `[B, c, h, w]`; returns `[B, L, d]`
    fn grid_to_tokens(&self, g: Tensor<4>) -> Tensor<3> {
        let [b, d, gh, gw] = g.dims();
        g.permute([0, 2, 3, 1]).reshape([b, gh * gw, d])
    }

    /// The shape of [`Tokenizer::tokens_to_grid`]'s output per image.
    fn grid_shape(&self) -> ImageShape {
        let ImageShape { height, width, .. } = self.image();
        ImageShape { channels: self.latent_dim(), height: height / self.patch(), width: width / self.patch() }
    }
}
