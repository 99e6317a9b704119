//! CPU kernels that replace a chain of burn operations by one pass with its own backward, where
//! a profile showed the chain to be the bottleneck (BENCHMARKS.md): GroupNorm (+ SiLU) of the
//! conv tokenizer; 2-D convolution as im2col + GEMM per image (conv tokenizer, PatchGAN,
//! perceptual network). (A fused adaLN LayerNorm + modulation was tried the same way and measured no
//! faster for DiT and l-DAE and slower for MAR's head, so burn's composition stays there.)
//!
//! Each is a burn backend extension (`#[backend_extension(Flex, Autodiff)]`): one trait method,
//! implemented for `Flex` (the forward kernel) and for `Autodiff<Flex>` (the forward kernel plus
//! a backward node with the closed-form gradient). The public function of each file runs the
//! kernel on the CPU and burn's composition on every other device (or dtype), and each file's
//! tests hold the kernel to that composition: values and the gradient of every input.

pub mod conv2d;
pub mod group_norm;

pub use group_norm::group_norm;

use std::borrow::Cow;

use burn::backend::flex::FlexTensor;
use burn::tensor::{Shape, TensorData};

/// The values of an f32 tensor in row-major order (borrowed when contiguous).
fn f32s(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("an f32 tensor").to_vec()),
    }
}

/// A contiguous f32 tensor.
fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `sum f(x)` in f64 from 8 f32 lanes of partial sums: one accumulator would serialise the
/// additions; independent lanes let the compiler vectorise them.
#[inline(always)]
fn sum_by(x: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut lanes = [0f32; 8];
    let body = x.len() / 8 * 8;
    for chunk in x[..body].chunks_exact(8) {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v);
        }
    }
    lanes.iter().map(|&v| v as f64).sum::<f64>() + x[body..].iter().map(|&v| f(v) as f64).sum::<f64>()
}

/// `sum f(a_i, b_i)` in f64 from 8 f32 lanes (as [`sum_by`]).
#[inline(always)]
fn sum2_by(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut lanes = [0f32; 8];
    let body = a.len().min(b.len()) / 8 * 8;
    for (a, b) in a[..body].chunks_exact(8).zip(b[..body].chunks_exact(8)) {
        for ((lane, &a), &b) in lanes.iter_mut().zip(a).zip(b) {
            *lane += f(a, b);
        }
    }
    let tail: f64 = a[body..].iter().zip(&b[body..]).map(|(&a, &b)| f(a, b) as f64).sum();
    lanes.iter().map(|&v| v as f64).sum::<f64>() + tail
}

#[cfg(test)]
pub(crate) fn max_rel(a: burn::tensor::Tensor<1>, b: burn::tensor::Tensor<1>) -> f32 {
    let scale = b.clone().abs().max().into_scalar::<f32>().max(1e-6);
    (a - b).abs().max().into_scalar::<f32>() / scale
}
