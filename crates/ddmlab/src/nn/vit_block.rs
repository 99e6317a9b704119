//! The plain pre-LN transformer block of ViT / MAE / MAR (timm's `Block`):
//! `x += Attn(LN(x))`, `x += MLP(LN(x))`, LayerNorms with affine parameters (eps 1e-6).
//! Beside the DiT block (`block.rs`), which modulates its norms by a condition instead.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};

use super::attention::Attention;
use super::gelu::GeluKind;
use super::mlp::Mlp;

/// One pre-LN block.
#[derive(Module, Debug)]
pub struct VitBlock {
    pub norm1: LayerNorm,
    pub attn: Attention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
}

/// LayerNorm with affine parameters (weight 1, bias 0) and eps 1e-6, as MAE and MAR.
pub fn layer_norm_affine(width: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(width).with_epsilon(1e-6).init(device)
}

impl VitBlock {
    pub fn new(width: usize, heads: usize, mlp_hidden: usize, device: &Device) -> Self {
        VitBlock {
            norm1: layer_norm_affine(width, device),
            attn: Attention::new(width, heads, device),
            norm2: layer_norm_affine(width, device),
            mlp: Mlp::new(width, mlp_hidden, GeluKind::Erf, device),
        }
    }

    /// # Shapes
    /// - `x`: `[B, L, W]`; returns `[B, L, W]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_with(x, false)
    }

    /// The block with causal attention when `causal` (token `i` reads tokens `0..=i`).
    ///
    /// # Shapes
    /// - `x`: `[B, L, W]`; returns `[B, L, W]`
    pub fn forward_with(&self, x: Tensor<3>, causal: bool) -> Tensor<3> {
        let x = x.clone() + self.attn.forward_with(self.norm1.forward(x), causal);
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}
