//! Element-wise activations on the CPU: value and derivative in one vectorised pass over row
//! chunks on every worker thread, the activation's twin of burn's single-threaded maps.
//!
//! Inference (no autodiff) writes `y = f(x)`. Training uses that an element-wise op's Jacobian
//! is the diagonal `f'(x)`: the kernel returns `d = f'(x)` and `c = f(x) - x d` as constants and
//! the op is written `y = x * d + c`, whose value is `f(x)` (to an ulp) and whose gradient under
//! autodiff is `grad * f'(x)`, exactly the chain rule. Two cheap element-wise ops replace the
//! activation's own forward and backward (libm's `erff` / `expf`, one thread).
//!
//! The activations ([`crate::nn::gelu`], [`crate::nn::silu`]) supply `x -> (f(x), f'(x))`, and
//! [`crate::nn::leaky_relu`] its slope alone ([`apply_homogeneous`]), inlined into the AVX2 + FMA
//! twin of the loops (`nn::simd`).

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::simd::{has_avx2, with_avx2};

/// Values per task of the parallel loops.
const CHUNK: usize = 16 * 1024;

#[inline(always)]
fn values_inline(v: &mut [f32], f: impl Fn(f32) -> (f32, f32)) {
    for x in v.iter_mut() {
        *x = f(*x).0;
    }
}

#[inline(always)]
fn linearised_inline(v: &mut [f32], c: &mut [f32], f: impl Fn(f32) -> (f32, f32)) {
    for (x, c) in v.iter_mut().zip(c.iter_mut()) {
        let (y, d) = f(*x);
        *c = y - *x * d;
        *x = d;
    }
}

/// `f` in place, on all worker threads.
fn values(v: &mut [f32], f: impl Fn(f32) -> (f32, f32) + Copy + Sync) {
    let avx2 = has_avx2();
    v.par_chunks_mut(CHUNK).for_each(|chunk| with_avx2!(avx2, values_inline(chunk, f)));
}

/// Replaces `v` by `f'(v)` and returns `f(v) - v f'(v)`, on all worker threads.
fn linearised(v: &mut [f32], f: impl Fn(f32) -> (f32, f32) + Copy + Sync) -> Vec<f32> {
    let avx2 = has_avx2();
    let mut c = vec![0f32; v.len()];
    v.par_chunks_mut(CHUNK)
        .zip(c.par_chunks_mut(CHUNK))
        .for_each(|(chunk, c)| with_avx2!(avx2, linearised_inline(chunk, c, f)));
    c
}

/// The activation `f` (value and derivative) of a tensor: the fast path on `flex` (with or
/// without autodiff), `plain` (burn's op) on other devices and dtypes.
///
/// # Shapes
/// - `x`: any; returns the same shape
pub fn apply<const D: usize>(
    x: Tensor<D>,
    f: impl Fn(f32) -> (f32, f32) + Copy + Sync,
    plain: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    let device = x.device();
    if !crate::parallel::is_cpu(&device) {
        return plain(x);
    }
    let shape = x.shape();
    let mut v: Vec<f32> = match x.clone().into_data().try_into_vec() {
        Ok(v) => v,
        Err(_) => return plain(x), // not f32: leave it to burn
    };
    if !device.is_autodiff() {
        values(&mut v, f);
        return Tensor::from_data(TensorData::new(v, shape), &device);
    }
    let offset = linearised(&mut v, f);
    let slope = Tensor::<D>::from_data(TensorData::new(v, shape.clone()), &device);
    let offset = Tensor::<D>::from_data(TensorData::new(offset, shape), &device);
    x * slope + offset
}

/// [`apply`] for a positively homogeneous activation (`f(x) = x f'(x)`: ReLU, LeakyReLU), whose
/// offset `c` is zero: under autodiff the op is `y = x d` alone, one element-wise product and
/// its backward.
///
/// # Shapes
/// - `x`: any; returns the same shape
pub fn apply_homogeneous<const D: usize>(
    x: Tensor<D>,
    slope: impl Fn(f32) -> f32 + Copy + Sync,
    plain: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    let device = x.device();
    if !crate::parallel::is_cpu(&device) || !device.is_autodiff() {
        return apply(x, move |v| (v * slope(v), slope(v)), plain);
    }
    let shape = x.shape();
    let mut v: Vec<f32> = match x.clone().into_data().try_into_vec() {
        Ok(v) => v,
        Err(_) => return plain(x),
    };
    let avx2 = has_avx2();
    v.par_chunks_mut(CHUNK).for_each(|chunk| with_avx2!(avx2, slopes_inline(chunk, slope)));
    x * Tensor::<D>::from_data(TensorData::new(v, shape), &device)
}

#[inline(always)]
fn slopes_inline(v: &mut [f32], slope: impl Fn(f32) -> f32) {
    for x in v.iter_mut() {
        *x = slope(*x);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    /// `n x n` values evenly spaced from `-half` to `half`.
    pub(crate) fn ramp(n: usize, half: f32, device: &Device) -> Tensor<2> {
        let values: Vec<f32> =
            (0..n * n).map(|i| (i as f32 - (n * n / 2) as f32) * 2.0 * half / (n * n) as f32).collect();
        Tensor::from_data(TensorData::new(values, [n, n]), device)
    }

    /// The largest `|a - b| / max(1, |a|)`: absolute near zero, relative for large values.
    pub(crate) fn max_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
        let a: Vec<f32> = a.into_data().try_into_vec().unwrap();
        let b: Vec<f32> = b.into_data().try_into_vec().unwrap();
        a.iter().zip(&b).map(|(a, b)| (a - b).abs() / a.abs().max(1.0)).fold(0.0, f32::max)
    }
}
