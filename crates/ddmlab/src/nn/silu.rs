//! SiLU, `x sigmoid(x)`, with a fast path on the CPU.
//!
//! Profiled (BENCHMARKS.md, MAR training step): burn's SiLU is a sigmoid (libm's `expf`, one
//! thread) and a product, each with its own backward; in MAR's Diffusion Loss head (SiLU inside
//! every residual MLP, over 4 noisy copies of every masked token) `expf` and burn's unary maps
//! were ~8% of the step. On the `flex` device [`silu`] evaluates `s = sigmoid(x)`, the value
//! `x s` and the derivative `s (1 + x (1 - s))` in one vectorised pass on every worker thread,
//! with the polynomial exp of [`crate::nn::gelu::exp_fast`] ([`crate::nn::elementwise`]: under
//! autodiff the op is `y = x d + c` with constant `d` and `c`). Other devices run burn's SiLU.

use burn::tensor::{Tensor, activation};

use super::elementwise;
use super::gelu::exp_fast;

/// `(silu(x), silu'(x))`.
#[inline(always)]
fn silu_and_slope(x: f32) -> (f32, f32) {
    let s = 1.0 / (1.0 + exp_fast(-x));
    (x * s, s * (1.0 + x * (1.0 - s)))
}

/// SiLU of a tensor: the fast path on `flex` (with or without autodiff), burn's SiLU elsewhere.
///
/// # Shapes
/// - `x`: any; returns the same shape
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    elementwise::apply(x, silu_and_slope, activation::silu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    use crate::nn::elementwise::tests::max_diff;

    /// `n x n` values evenly from -30 to 30.
    fn ramp(n: usize, device: &Device) -> Tensor<2> {
        crate::nn::elementwise::tests::ramp(n, 30.0, device)
    }

    #[test]
    fn fast_silu_and_its_gradient_match_burns() {
        let ad = Device::flex().autodiff();
        let weights = ramp(200, &Device::flex()).cos(); // an arbitrary upstream gradient
        let run = |fast: bool| {
            let x = ramp(200, &ad).require_grad();
            let y = if fast { silu(x.clone()) } else { activation::silu(x.clone()) };
            let value = y.clone().inner();
            let grads = (y * Tensor::from_inner(weights.clone())).sum().backward();
            (value, x.grad(&grads).expect("x has a gradient"))
        };
        let ((y0, g0), (y1, g1)) = (run(false), run(true));
        let (dv, dg) = (max_diff(y0, y1), max_diff(g0, g1));
        assert!(dv < 2e-6 && dg < 2e-6, "value differs by {dv:e}, gradient by {dg:e}");
        // and without autodiff
        let x = ramp(200, &Device::flex());
        let dv = max_diff(activation::silu(x.clone()), silu(x));
        assert!(dv < 2e-6, "inference value differs by {dv:e}");
    }
}
