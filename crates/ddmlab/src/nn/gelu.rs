//! Exact (erf) GELU, `x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))`, with a fast path on the CPU.
//!
//! Profiled: flex's GELU evaluates libm's scalar `erff` (and `expf` in its backward) on one
//! thread; once training moves pre-activations past `|x| > 1.25` (erf's `erfc2` branch), that
//! was 28% of a Fashion-MNIST training step and 31% of probe-feature extraction. On the `flex`
//! device [`gelu`] instead evaluates the value and the derivative in one pass over row chunks
//! on every worker thread ([`crate::nn::elementwise`]), with polynomial erf and exp that the
//! compiler vectorises (AVX2+FMA when the CPU has them):
//! - inference (no autodiff): `y = gelu(x)`;
//! - training: GELU acts element-wise, so its Jacobian is the diagonal `gelu'(x)`. The kernel
//!   returns `d = gelu'(x)` and `c = gelu(x) - x d` as constants and the op is written
//!   `y = x * d + c`: its value is `gelu(x)` (to 1 ulp) and autodiff's gradient is
//!   `grad * gelu'(x)`, exactly the chain rule. Two cheap element-wise ops replace erf's.
//!
//! Both agree with burn's GELU and its gradient to within 2e-6 (relative above 1; tested): the
//! polynomial erf is accurate to 5e-7 in absolute terms, which is all of `Phi(x)` in the far
//! negative tail, where libm switches to erfc. On other devices
//! burn's fused GELU runs unchanged.

use burn::tensor::{Tensor, activation};

use super::elementwise;

const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// `erf(x)` for f32 by a rational function of `x` on `[-4, 4]` (beyond which erf is +-1 in
/// f32): odd numerator of degree 13, even denominator of degree 8 (Eigen's and XLA's
/// coefficients). Absolute error below 1e-6.
#[inline(always)]
pub fn erf_fast(input: f32) -> f32 {
    let x = input.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    let e = x * p / q;
    // Exactly +-1 beyond the fitted range, so that GELU's tails are exactly 0 and x.
    if input.abs() >= 4.0 { 1f32.copysign(input) } else { e }
}

/// `exp(x)` for f32 (Cephes `expf`): `x = n ln 2 + r`, a degree-7 polynomial in `r`, times
/// `2^n` built in the exponent bits. Relative error below 3e-7 on `[-87, 88]`; inputs are
/// clamped to that range.
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `(gelu(x), gelu'(x))` with `gelu'(x) = Phi(x) + x phi(x)`.
#[inline(always)]
fn gelu_and_slope(x: f32) -> (f32, f32) {
    let cdf = 0.5 * (1.0 + erf_fast(x * std::f32::consts::FRAC_1_SQRT_2));
    let pdf = FRAC_1_SQRT_2PI * exp_fast(-0.5 * x * x);
    (x * cdf, cdf + x * pdf)
}

/// Exact GELU of a tensor: the fast path on `flex` (with or without autodiff; see
/// [`crate::nn::elementwise`]), burn's GELU elsewhere.
///
/// # Shapes
/// - `x`: any; returns the same shape
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    elementwise::apply(x, gelu_and_slope, activation::gelu)
}

/// Which GELU a transformer MLP uses: the exact (erf) form of ViT/MAE, or the tanh
/// approximation of DiT (`nn.GELU(approximate="tanh")`), kept so that imported DiT weights give
/// DiT's outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeluKind {
    #[default]
    Erf,
    Tanh,
}

impl GeluKind {
    /// Whether this is the default (exact) form; configs leave the default unwritten.
    pub fn is_erf(&self) -> bool {
        *self == GeluKind::Erf
    }
}

/// The tanh approximation `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, by burn's ops (its
/// gradient by autodiff).
///
/// # Shapes
/// - `x`: any; returns the same shape
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let k = (2.0 / std::f64::consts::PI).sqrt();
    let inner = (x.clone() + x.clone().powi_scalar(3) * 0.044715) * k;
    x.clone() * 0.5 * (activation::tanh(inner) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// erf in f64 by its Taylor series for |x| <= 4 (cancellation error < 1e-10 there) and
    /// +-1 beyond (|erf(x) - sign(x)| < 1.6e-8): a reference independent of the code under test.
    fn erf_reference(x: f64) -> f64 {
        if x.abs() > 4.0 {
            return x.signum();
        }
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn fast_erf_matches_the_series() {
        let worst = (-60_000..=60_000)
            .map(|i| i as f32 * 1e-4)
            .map(|x| (erf_fast(x) as f64 - erf_reference(x as f64)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-6, "largest |erf_fast - erf| = {worst:e}");
    }

    #[test]
    fn fast_exp_matches_f64_exp() {
        let worst = (-8_700..=8_800)
            .map(|i| i as f32 * 1e-2)
            .map(|x| ((exp_fast(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs())
            .fold(0.0, f64::max);
        assert!(worst < 3e-7, "largest relative error {worst:e}");
    }

    /// `n x n` values evenly from -12 to 12.
    fn ramp(n: usize, device: &Device) -> Tensor<2> {
        elementwise::tests::ramp(n, 12.0, device)
    }

    use elementwise::tests::max_diff;

    #[test]
    fn fast_gelu_matches_burns_gelu() {
        let device = Device::flex();
        let x = ramp(200, &device); // -12 .. 12
        let worst = max_diff(activation::gelu(x.clone()), gelu(x));
        assert!(worst < 2e-6, "largest |fast - plain| = {worst:e}");
    }

    #[test]
    fn fast_gelu_gradient_matches_burns_gelu_gradient() {
        let device = Device::flex().autodiff();
        let weights = ramp(200, &Device::flex()).cos(); // an arbitrary upstream gradient
        let grad_of = |fast: bool| {
            let x = ramp(200, &device).require_grad();
            let y = if fast { gelu(x.clone()) } else { activation::gelu(x.clone()) };
            let value = y.clone().inner();
            let loss = (y * Tensor::from_inner(weights.clone())).sum();
            let grads = loss.backward();
            (value, x.grad(&grads).expect("x has a gradient"))
        };
        let (plain_y, plain_g) = grad_of(false);
        let (fast_y, fast_g) = grad_of(true);
        let value_diff = max_diff(plain_y, fast_y);
        let grad_diff = max_diff(plain_g, fast_g);
        assert!(value_diff < 2e-6, "largest value difference {value_diff:e}");
        assert!(grad_diff < 2e-6, "largest gradient difference {grad_diff:e}");
    }

    /// DiT's tanh GELU against its closed form in f64, and against the exact GELU (the two
    /// differ, by up to ~5e-4: a tanh model run with the erf GELU is a different model).
    #[test]
    fn tanh_gelu_matches_its_closed_form() {
        let device = Device::flex();
        let x = ramp(100, &device); // -12 .. 12
        let xs: Vec<f32> = x.clone().into_data().try_into_vec().unwrap();
        let k = (2.0 / std::f64::consts::PI).sqrt();
        let expected: Vec<f32> = xs
            .iter()
            .map(|&v| {
                let v = v as f64;
                (0.5 * v * (1.0 + (k * (v + 0.044715 * v * v * v)).tanh())) as f32
            })
            .collect();
        let expected = Tensor::<2>::from_data(TensorData::new(expected, [100, 100]), &device);
        let worst = max_diff(expected, gelu_tanh(x.clone()));
        assert!(worst < 1e-6, "largest |tanh gelu - closed form| = {worst:e}");
        let gap = max_diff(gelu(x.clone()), gelu_tanh(x));
        assert!(gap > 1e-4 && gap < 1e-3, "tanh vs erf GELU differ by {gap:e}");
    }
}
