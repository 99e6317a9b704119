//! GroupNorm, optionally followed by SiLU, as one CPU kernel with its own backward.
//!
//! Profiled (BENCHMARKS.md, "Conv KL tokenizer training step"): burn's GroupNorm is composed of
//! reshapes, two mean reductions, a subtraction, a division and the affine, each a separate
//! single-threaded pass with its own autodiff node, and SiLU adds three more; that was 9-14x
//! PyTorch's fused kernel and the largest share of the conv tokenizer's step. On the `flex`
//! device [`group_norm`] instead runs one pass per `(image, group)` block on every worker thread:
//!
//! forward, per block of `m = (C / G) H W` values: `mean`, `var = mean((x - mean)^2)` (two
//! passes, f64 sums), `xhat = (x - mean) / sqrt(var + eps)`, `a = gamma_c xhat + beta_c`, and
//! `y = a` or `y = silu(a) = a sigmoid(a)`;
//!
//! backward, from `dy`: `da = dy` or `dy s (1 + a (1 - s))` with `s = sigmoid(a)`;
//! `dbeta_c = sum da`, `dgamma_c = sum da xhat` (over images and positions); with
//! `g = gamma_c da`, `dx = (g - mean(g) - xhat mean(g xhat)) / sqrt(var + eps)` per block.
//!
//! The kernel is a burn backend extension (`#[backend_extension]`) implemented for `Flex` and for
//! `Autodiff<Flex>`, whose backward node is the formula above; other devices run burn's
//! composition unchanged. Tested against the plain path, values and all three gradients
//! (`tests`, below).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Dispatch, Flex, backend_extension};
use burn::nn::GroupNorm;
use burn::tensor::activation::silu;
use burn::tensor::{DType, Shape, Tensor};
use rayon::prelude::*;

use super::{f32s, sum_by, sum2_by, tensor};
use crate::nn::simd::{has_avx2, with_avx2};

/// The fused GroupNorm (+ SiLU) as a backend operation.
#[backend_extension(Flex, Autodiff)]
pub trait FusedGroupNorm: burn::backend::Backend {
    /// `x`: `[B, C, ...]`, `gamma` and `beta`: `[C]`; returns the shape of `x`.
    fn group_norm_act(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> FloatTensor<Self>;
}

/// Sizes of one call: `n` images of `c` channels of `s` positions, `g` groups.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    s: usize,
    g: usize,
}

impl Dims {
    fn of(shape: &Shape, groups: usize) -> Dims {
        Dims { n: shape[0], c: shape[1], s: shape.num_elements() / (shape[0] * shape[1]).max(1), g: groups }
    }

    /// Values per `(image, group)` block.
    fn block(&self) -> usize {
        self.c / self.g * self.s
    }
}

/// Per-block mean and `1 / sqrt(var + eps)`, kept for the backward pass.
#[derive(Debug, Clone)]
struct Stats {
    mean: Vec<f32>,
    rstd: Vec<f32>,
}

#[inline(always)]
fn sigmoid(a: f32) -> f32 {
    1.0 / (1.0 + crate::nn::gelu::exp_fast(-a))
}

/// One `(image, group)` block forward: writes `y`, returns `(mean, rstd)`. `gamma` and `beta`
/// are the block's channels; `s` positions per channel.
#[inline(always)]
fn forward_block<const ACT: bool>(
    y: &mut [f32],
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    s: usize,
    eps: f64,
) -> (f32, f32) {
    let m = x.len() as f64;
    let mu = (sum_by(x, |v| v) / m) as f32;
    let var = sum_by(x, |v| (v - mu) * (v - mu)) / m;
    let r = (1.0 / (var + eps).sqrt()) as f32;
    for ((y, x), (&w, &b)) in y.chunks_mut(s).zip(x.chunks(s)).zip(gamma.iter().zip(beta)) {
        // a = gamma xhat + beta = x (r gamma) + (beta - mu r gamma)
        let (k, c) = (r * w, b - mu * r * w);
        for (y, &x) in y.iter_mut().zip(x) {
            let a = x * k + c;
            *y = if ACT { a * sigmoid(a) } else { a };
        }
    }
    (mu, r)
}

/// The forward kernel: `(y, stats)`.
fn forward(x: &[f32], gamma: &[f32], beta: &[f32], d: Dims, eps: f64, act: bool) -> (Vec<f32>, Stats) {
    let m = d.block();
    let cg = d.c / d.g;
    let avx2 = has_avx2();
    let mut y = vec![0f32; x.len()];
    let mut mean = vec![0f32; d.n * d.g];
    let mut rstd = vec![0f32; d.n * d.g];
    y.par_chunks_mut(m).zip(x.par_chunks(m)).zip(mean.par_iter_mut().zip(rstd.par_iter_mut())).enumerate().for_each(
        |(block, ((y, x), (mean, rstd)))| {
            let ch = (block % d.g) * cg..(block % d.g + 1) * cg;
            let (gamma, beta) = (&gamma[ch.clone()], &beta[ch]);
            (*mean, *rstd) = with_avx2!(
                avx2,
                if act {
                    forward_block::<true>(y, x, gamma, beta, d.s, eps)
                } else {
                    forward_block::<false>(y, x, gamma, beta, d.s, eps)
                }
            );
        },
    );
    (y, Stats { mean, rstd })
}

/// One `(image, group)` block backward: writes `dx`, `dgamma` and `dbeta` (this image's share,
/// per channel of the block).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_block<const ACT: bool>(
    dx: &mut [f32],
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    beta: &[f32],
    (mu, r): (f32, f32),
    s: usize,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    // Pass 1, per channel: dx holds da; dgamma = sum(da xhat), dbeta = sum(da). The block's
    // sums of g = gamma da and g xhat follow from them: sum(g) = gamma dbeta, sum(g xhat) =
    // gamma dgamma.
    let (mut sum_g, mut sum_gx) = (0f64, 0f64);
    let channels = dx.chunks_mut(s).zip(x.chunks(s)).zip(dy.chunks(s));
    for ((((dx, x), dy), (&w, &b)), (dw, db)) in
        channels.zip(gamma.iter().zip(beta)).zip(dgamma.iter_mut().zip(dbeta.iter_mut()))
    {
        for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
            *dx = if ACT {
                let a = (x - mu) * r * w + b;
                let sig = sigmoid(a);
                dy * sig * (1.0 + a * (1.0 - sig))
            } else {
                dy
            };
        }
        let sw = sum2_by(dx, x, |da, x| da * (x - mu) * r);
        let sb = sum_by(dx, |da| da);
        (*dw, *db) = (sw as f32, sb as f32);
        sum_g += w as f64 * sb;
        sum_gx += w as f64 * sw;
    }
    // Pass 2: dx = (g - mean(g) - xhat mean(g xhat)) r, per channel (g = gamma da).
    let m = x.len() as f64;
    let (mean_g, mean_gx) = ((sum_g / m) as f32, (sum_gx / m) as f32);
    for ((dx, x), &w) in dx.chunks_mut(s).zip(x.chunks(s)).zip(gamma) {
        for (dx, &x) in dx.iter_mut().zip(x) {
            *dx = r * (w * *dx - mean_g - (x - mu) * r * mean_gx);
        }
    }
}

/// The backward kernel: `(dx, dgamma, dbeta)` from `dy`.
#[allow(clippy::too_many_arguments)]
fn backward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    dy: &[f32],
    stats: &Stats,
    d: Dims,
    act: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let m = d.block();
    let cg = d.c / d.g;
    let avx2 = has_avx2();
    let mut dx = vec![0f32; x.len()];
    // Per (image, channel) partial sums of dgamma and dbeta, reduced over images below.
    let mut dgamma_part = vec![0f32; d.n * d.c];
    let mut dbeta_part = vec![0f32; d.n * d.c];
    dx.par_chunks_mut(m)
        .zip(x.par_chunks(m).zip(dy.par_chunks(m)))
        .zip(dgamma_part.par_chunks_mut(cg).zip(dbeta_part.par_chunks_mut(cg)))
        .enumerate()
        .for_each(|(block, ((dx, (x, dy)), (dgamma, dbeta)))| {
            let ch = (block % d.g) * cg..(block % d.g + 1) * cg;
            let (gamma, beta) = (&gamma[ch.clone()], &beta[ch]);
            let st = (stats.mean[block], stats.rstd[block]);
            with_avx2!(
                avx2,
                if act {
                    backward_block::<true>(dx, x, dy, gamma, beta, st, d.s, dgamma, dbeta)
                } else {
                    backward_block::<false>(dx, x, dy, gamma, beta, st, d.s, dgamma, dbeta)
                }
            )
        });
    let reduce = |part: &[f32]| -> Vec<f32> {
        (0..d.c).map(|ch| (0..d.n).map(|i| part[i * d.c + ch] as f64).sum::<f64>() as f32).collect()
    };
    (dx, reduce(&dgamma_part), reduce(&dbeta_part))
}

impl FusedGroupNorm for Flex {
    fn group_norm_act(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> FlexTensor {
        let shape = x.layout().shape().clone();
        let (y, _) = forward(&f32s(&x), &f32s(&gamma), &f32s(&beta), Dims::of(&shape, groups), eps, silu);
        tensor(y, shape)
    }
}

/// The autodiff node: the inputs and the forward's statistics.
#[derive(Debug)]
struct GroupNormBackward;

impl Backward<Flex, 3> for GroupNormBackward {
    type State = (FlexTensor, FlexTensor, FlexTensor, Stats, Dims, bool);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, gamma, beta, stats, dims, act) = ops.state;
        let (dx, dgamma, dbeta) = backward(&f32s(&x), &f32s(&gamma), &f32s(&beta), &f32s(&dy), &stats, dims, act);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(dx, x.layout().shape().clone()));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, tensor(dgamma, gamma.layout().shape().clone()));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, tensor(dbeta, beta.layout().shape().clone()));
        }
    }
}

impl<C: CheckpointStrategy> FusedGroupNorm for Autodiff<Flex, C> {
    fn group_norm_act(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), gamma.node(), beta.node()];
        let (x, gamma, beta) = (x.into_primitive(), gamma.into_primitive(), beta.into_primitive());
        let shape = x.layout().shape().clone();
        let dims = Dims::of(&shape, groups);
        let (y, stats) = forward(&f32s(&x), &f32s(&gamma), &f32s(&beta), dims, eps, silu);
        match GroupNormBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x, gamma, beta, stats, dims, silu), tensor(y, shape)),
            OpsKind::UnTracked(prep) => prep.finish(tensor(y, shape)),
        }
    }
}

/// `norm(x)`, then SiLU when `act`: the fused kernel on the CPU (f32, affine), burn's GroupNorm
/// and SiLU elsewhere.
///
/// # Shapes
/// - `x`: `[B, C, H, W]`; returns `[B, C, H, W]`
pub fn group_norm(norm: &GroupNorm, x: Tensor<4>, act: bool) -> Tensor<4> {
    let fused = crate::parallel::is_cpu(&x.device()) && x.dtype() == DType::F32 && norm.affine;
    match (fused, &norm.gamma, &norm.beta) {
        (true, Some(gamma), Some(beta)) => {
            let [_, c, _, _] = x.dims();
            assert_eq!(c, norm.num_channels, "group_norm: {c} channels for a GroupNorm of {}", norm.num_channels);
            Tensor::from_dispatch(<Dispatch as FusedGroupNorm>::group_norm_act(
                x.into_dispatch(),
                gamma.val().into_dispatch(),
                beta.val().into_dispatch(),
                norm.num_groups,
                norm.epsilon,
                act,
            ))
        }
        _ => plain(norm, x, act),
    }
}

/// burn's GroupNorm and SiLU: the path of every other device, and the reference of the tests.
pub fn plain(norm: &GroupNorm, x: Tensor<4>, act: bool) -> Tensor<4> {
    let y = norm.forward(x);
    if act { silu(y) } else { y }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::fused::max_rel;
    use burn::module::Param;
    use burn::nn::GroupNormConfig;
    use burn::tensor::{Device, Distribution};

    /// Values and the gradients of x, gamma and beta against burn's composition, for a loss
    /// that weights every output differently (so that a wrong projection or a wrong channel
    /// index in the backward shows).
    fn check(groups: usize, c: usize, act: bool) {
        let device = Device::flex().autodiff();
        let mut norm = GroupNormConfig::new(groups, c).init(&device);
        // Non-trivial affine parameters, so that gamma's and beta's roles are tested.
        norm.gamma = Some(Param::from_tensor(Tensor::random([c], Distribution::Normal(1.0, 0.5), &device)));
        norm.beta = Some(Param::from_tensor(Tensor::random([c], Distribution::Normal(0.0, 0.5), &device)));
        let x = Tensor::<4>::random([3, c, 5, 7], Distribution::Normal(0.7, 2.0), &device);
        let w = Tensor::<4>::random([3, c, 5, 7], Distribution::Normal(0.0, 1.0), &device);

        let run = |fused: bool| {
            let x = x.clone().require_grad();
            let y = if fused { group_norm(&norm, x.clone(), act) } else { plain(&norm, x.clone(), act) };
            let grads = (y.clone() * w.clone()).sum().backward();
            let flat = |t: Tensor<1>| t.inner();
            (
                flat(y.inner().flatten(0, 3)),
                flat(x.grad(&grads).unwrap().flatten(0, 3)),
                norm.gamma.as_ref().unwrap().val().grad(&grads).unwrap(),
                norm.beta.as_ref().unwrap().val().grad(&grads).unwrap(),
            )
        };
        let (y, dx, dg, db) = run(true);
        let (y0, dx0, dg0, db0) = run(false);
        for (name, a, b) in [("y", y, y0), ("dx", dx, dx0), ("dgamma", dg, dg0), ("dbeta", db, db0)] {
            let err = max_rel(a, b);
            assert!(err < 2e-5, "groups {groups}, {c} channels, silu {act}: {name} differs by {err:e} (relative)");
        }
    }

    #[test]
    fn fused_group_norm_matches_burn_values_and_gradients() {
        check(8, 16, true);
        check(8, 16, false);
        check(1, 3, true); // one group: LayerNorm over the whole image
        check(4, 4, false); // one channel per group: InstanceNorm
    }

    #[test]
    fn fused_group_norm_without_autodiff_matches_burn() {
        let device = Device::flex();
        let norm = GroupNormConfig::new(2, 6).init(&device);
        let x = Tensor::<4>::random([2, 6, 4, 4], Distribution::Normal(-1.0, 3.0), &device);
        let a = group_norm(&norm, x.clone(), true).flatten(0, 3);
        let b = plain(&norm, x, true).flatten(0, 3);
        assert!(max_rel(a, b) < 2e-5);
    }
}
