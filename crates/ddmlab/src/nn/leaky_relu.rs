//! LeakyReLU, `max(x, a x)` for `0 < a < 1`, with a fast path on the CPU.
//!
//! Profiled (BENCHMARKS.md, conv tokenizer step): burn's LeakyReLU is a comparison, a product
//! and a `mask_where`, each a pass of its own and each with its own backward; in the PatchGAN
//! discriminator (after every convolution but the last) `mask_where` alone was 2-3% of the step.
//! On the `flex` device [`leaky_relu`] computes the slope (1 or `a`) in one vectorised pass on
//! every worker thread and, under autodiff, is `y = x d` with constant `d`
//! ([`crate::nn::elementwise::apply_homogeneous`]). The slope at 0 is 1, as burn's. Other devices
//! run burn's LeakyReLU.

use burn::tensor::{Tensor, activation};

use super::elementwise;

/// LeakyReLU of a tensor with negative slope `a`: the fast path on `flex` (with or without
/// autodiff), burn's elsewhere.
///
/// # Shapes
/// - `x`: any; returns the same shape
pub fn leaky_relu<const D: usize>(x: Tensor<D>, a: f64) -> Tensor<D> {
    let slope = a as f32;
    elementwise::apply_homogeneous(x, move |v| if v >= 0.0 { 1.0 } else { slope }, |x| activation::leaky_relu(x, a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    use crate::nn::elementwise::tests::{max_diff, ramp};

    #[test]
    fn fast_leaky_relu_and_its_gradient_match_burns() {
        let ad = Device::flex().autodiff();
        let weights = ramp(200, 5.0, &Device::flex()).cos(); // an arbitrary upstream gradient
        let run = |fast: bool| {
            let x = ramp(200, 5.0, &ad).require_grad();
            let y = if fast { leaky_relu(x.clone(), 0.2) } else { activation::leaky_relu(x.clone(), 0.2) };
            let value = y.clone().inner();
            let grads = (y * Tensor::from_inner(weights.clone())).sum().backward();
            (value, x.grad(&grads).expect("x has a gradient"))
        };
        let ((y0, g0), (y1, g1)) = (run(false), run(true));
        let (dv, dg) = (max_diff(y0, y1), max_diff(g0, g1));
        assert!(dv == 0.0 && dg == 0.0, "value differs by {dv:e}, gradient by {dg:e}");
        // (the ramp spans -5..5 and holds 0 itself: both slopes and the kink are compared)
        // and without autodiff
        let x = ramp(200, 5.0, &Device::flex());
        let dv = max_diff(activation::leaky_relu(x.clone(), 0.2), leaky_relu(x, 0.2));
        assert!(dv == 0.0, "inference value differs by {dv:e}");
    }
}
