//! The transformer MLP: Linear -> GELU -> Linear.
//!
//! GELU is the exact (erf) form of ViT/MAE by default (`nn::gelu` evaluates it, and its
//! gradient, with a vectorised, multi-threaded kernel on the CPU); DiT's tanh approximation (the
//! two differ by less than 1e-3) is a setting, for DiT weights imported from PyTorch.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use super::gelu::{GeluKind, gelu, gelu_tanh};
use super::init::xavier_linear;
use super::linear::linear_tokens;

/// Two linear layers with a GELU between them.
#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    /// DiT's tanh GELU instead of the exact one.
    pub tanh_gelu: bool,
}

impl Mlp {
    /// `width -> hidden -> width` with GELU `kind`.
    pub fn new(width: usize, hidden: usize, kind: GeluKind, device: &Device) -> Self {
        Mlp {
            fc1: xavier_linear(width, hidden, device),
            fc2: xavier_linear(hidden, width, device),
            tanh_gelu: kind == GeluKind::Tanh,
        }
    }

    /// # Shapes
    /// - `x`: `[B, L, W]`; returns `[B, L, W]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = linear_tokens(&self.fc1, x);
        let h = if self.tanh_gelu { gelu_tanh(h) } else { gelu(h) };
        linear_tokens(&self.fc2, h)
    }
}
