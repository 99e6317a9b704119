//! Multi-head self-attention with a fused QKV projection (as timm's `Attention`, used by DiT
//! and MAE).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};

use super::init::xavier_linear;
use super::linear::linear_tokens;

/// Self-attention over all tokens, or causal (each token attends to itself and the ones before).
#[derive(Module, Debug)]
pub struct Attention {
    pub qkv: Linear,
    pub proj: Linear,
    pub heads: usize,
}

impl Attention {
    /// `width` split over `heads` heads.
    pub fn new(width: usize, heads: usize, device: &Device) -> Self {
        assert!(width.is_multiple_of(heads), "width {width} must be divisible by heads {heads}");
        Attention { qkv: xavier_linear(width, 3 * width, device), proj: xavier_linear(width, width, device), heads }
    }

    /// # Shapes
    /// - `x`: `[B, L, W]`; returns `[B, L, W]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_with(x, false)
    }

    /// Self-attention, causal when `causal` (query `i` reads keys `0..=i`).
    ///
    /// # Shapes
    /// - `x`: `[B, L, W]`; returns `[B, L, W]`
    pub fn forward_with(&self, x: Tensor<3>, causal: bool) -> Tensor<3> {
        let [b, l, w] = x.dims();
        let hd = w / self.heads;
        let qkv = linear_tokens(&self.qkv, x).reshape([b, l, 3, self.heads, hd]).permute([2, 0, 3, 1, 4]); // [3, B, H, L, hd]
        let q = qkv.clone().slice_dim(0, 0..1).squeeze_dim::<4>(0); // [B, H, L, hd]
        let k = qkv.clone().slice_dim(0, 1..2).squeeze_dim::<4>(0);
        let v = qkv.slice_dim(0, 2..3).squeeze_dim::<4>(0);
        let options = AttentionModuleOptions { is_causal: causal, ..Default::default() };
        let out = attention(q, k, v, None, None, options); // [B, H, L, hd]
        linear_tokens(&self.proj, out.swap_dims(1, 2).reshape([b, l, w]))
    }
}
