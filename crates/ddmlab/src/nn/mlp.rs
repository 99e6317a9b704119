//! The transformer MLP: Linear -> GELU (tanh approximation, as DiT) -> Linear.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, activation::gelu_approximate};

use super::init::xavier_linear;

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
        self.fc2.forward(gelu_approximate(self.fc1.forward(x)))
    }
}
