//! Transformer building blocks shared by every model: attention, adaLN modulation, the
//! embeddings (patch, timestep, fixed 2-D positions), the DiT block and the plain pre-LN ViT block.
//!
//! Modules take a `&Device` at construction and never choose one themselves.

pub mod adaln;
pub mod attention;
pub mod block;
pub mod elementwise;
pub mod embed;
pub mod fused;
pub mod gelu;
pub mod grads;
pub mod init;
pub mod leaky_relu;
pub mod linear;
pub mod mlp;
pub mod patchify;
pub mod silu;
pub(crate) mod simd;
pub mod vit_block;

pub use adaln::{layer_norm, modulate};
pub use attention::Attention;
pub use block::{DitBlock, FinalLayer};
pub use embed::{LabelEmbedder, PatchEmbed, TimestepEmbedder, sincos_pos_embed_2d};
pub use linear::linear_tokens;
pub use mlp::Mlp;
pub use patchify::{patchify, unpatchify};
pub use vit_block::VitBlock;
