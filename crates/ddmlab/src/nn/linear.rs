//! Linear layers over token sequences.

use burn::nn::Linear;
use burn::tensor::Tensor;

/// Apply `layer` to every token of `x` as one `[B * L, W]` matrix product.
///
/// burn treats a `[B, L, W] x [W, O]` product as a batched matmul with a broadcast weight, whose
/// backward forms a `[B, W, O]` weight gradient and then sums it over `B` (measured: most of the
/// copies in a training step). Flattening the tokens first makes the weight gradient a single
/// `[W, B * L] x [B * L, O]` product.
///
/// # Shapes
/// - `x`: `[B, L, W]`; returns `[B, L, O]`
pub fn linear_tokens(layer: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [b, l, w] = x.dims();
    let y = layer.forward(x.reshape([b * l, w])); // [B L, O]
    let o = y.dims()[1];
    y.reshape([b, l, o])
}
