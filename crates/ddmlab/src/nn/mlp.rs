//! The transformer MLP: Linear -> GELU -> Linear.
//!
//! GELU is the exact (erf) form of ViT/MAE, not the tanh approximation DiT uses (the two differ
//! by less than 1e-3); `nn::gelu` evaluates it, and its gradient, with a vectorised,
//! multi-threaded kernel on the CPU.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use super::gelu::gelu;
use super::init::xavier_linear;
use super::linear::linear_tokens;

/// Two linear layers with a GELU between them.
#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp {
    /// `width -> hidden -> width`.
    pub fn new(width: usize, hidden: usize, device: &Device) -> Self {
        Mlp { fc1: xavier_linear(width, hidden, device), fc2: xavier_linear(hidden, width, device) }
    }

    /// # Shapes
    /// - `x`: `[B, L, W]`; returns `[B, L, W]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        linear_tokens(&self.fc2, gelu(linear_tokens(&self.fc1, x)))
    }
}
