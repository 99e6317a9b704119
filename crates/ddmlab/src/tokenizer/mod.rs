//! Tokenizers: how images become low-dimensional per-patch latents and back.
//!
//! l-DAE's finding is that a *low-dimensional latent* is what makes a denoiser learn good
//! representations, and that a linear tokenizer, patch-wise PCA, is enough. [`patchify()`] cuts
//! images into patch vectors; [`pca::PatchPca`] fits and applies the PCA basis.

pub mod latent;
pub mod patchify;
pub mod pca;

pub use latent::LatentCodec;
pub use patchify::{patchify, unpatchify};
pub use pca::{PatchPca, PcaTensors};
