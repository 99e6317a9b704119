//! The DiT block with adaLN-Zero conditioning (DiT §3.2, Fig. 3) and DiT's final layer.
//!
//! The block regresses six vectors from the conditioning `c`: shift, scale and gate for the
//! attention branch and for the MLP branch. The regression layer starts at zero, so each block
//! starts as the identity.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use super::adaln::{layer_norm, modulate};
use super::attention::Attention;
use super::gelu::GeluKind;
use super::init::zero_linear;
use super::linear::linear_tokens;
use super::mlp::Mlp;
use super::silu::silu;

const LN_EPS: f64 = 1e-6;

/// One transformer block conditioned by adaLN-Zero.
#[derive(Module, Debug)]
pub struct DitBlock {
    pub attn: Attention,
    pub mlp: Mlp,
    /// `SiLU(c) -> 6 W` (shift, scale, gate) x (attention, MLP).
    pub ada_ln: Linear,
}

impl DitBlock {
    /// A block of `width` with `heads` heads, MLP hidden `mlp_hidden` with GELU `gelu`,
    /// conditioning `cond`.
    pub fn new(width: usize, heads: usize, mlp_hidden: usize, gelu: GeluKind, cond: usize, device: &Device) -> Self {
        DitBlock {
            attn: Attention::new(width, heads, device),
            mlp: Mlp::new(width, mlp_hidden, gelu, device),
            ada_ln: zero_linear(cond, 6 * width, device),
        }
    }

    /// # Shapes
    /// - `x`: `[B, L, W]`; `c`: `[B, cond]`; returns `[B, L, W]`
    pub fn forward(&self, x: Tensor<3>, c: Tensor<2>) -> Tensor<3> {
        let m = self.ada_ln.forward(silu(c)).chunk(6, 1); // 6 x [B, W]
        let [shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp]: [Tensor<2>; 6] =
            m.try_into().expect("chunk into 6");
        let h = self.attn.forward(modulate(layer_norm(x.clone(), LN_EPS), shift_msa, scale_msa));
        let x = x + h * gate_msa.unsqueeze_dim::<3>(1);
        let h = self.mlp.forward(modulate(layer_norm(x.clone(), LN_EPS), shift_mlp, scale_mlp));
        x + h * gate_mlp.unsqueeze_dim::<3>(1)
    }
}

/// DiT's final layer: adaLN (shift, scale), then a zero-initialised projection to patches.
#[derive(Module, Debug)]
pub struct FinalLayer {
    pub ada_ln: Linear,
    pub proj: Linear,
}

impl FinalLayer {
    /// From `width`-dim tokens to `out`-dim patch vectors.
    pub fn new(width: usize, out: usize, cond: usize, device: &Device) -> Self {
        FinalLayer { ada_ln: zero_linear(cond, 2 * width, device), proj: zero_linear(width, out, device) }
    }

    /// # Shapes
    /// - `x`: `[B, L, W]`; `c`: `[B, cond]`; returns `[B, L, out]`
    pub fn forward(&self, x: Tensor<3>, c: Tensor<2>) -> Tensor<3> {
        let m = self.ada_ln.forward(silu(c)).chunk(2, 1);
        let [shift, scale]: [Tensor<2>; 2] = m.try_into().expect("chunk into 2");
        linear_tokens(&self.proj, modulate(layer_norm(x, LN_EPS), shift, scale))
    }
}
