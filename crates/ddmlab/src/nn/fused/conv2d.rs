//! 2-D convolution as im2col + one GEMM per image, forward and backward, on the CPU.
//!
//! Profiled (BENCHMARKS.md, "Conv KL tokenizer training step"): burn-flex runs every 2-D
//! convolution through its 3-D path, whose generic im2col walks one element at a time (17% of the
//! conv tokenizer's step), and burn's backward of a convolution is a transposed convolution for
//! the input and a convolution of permuted tensors for the weight (another 16%). On the `flex`
//! device [`conv2d`] instead runs, for each image (on every worker thread; `groups = 1`):
//!
//! forward: `col = im2col(x)` (`[K, S]`, `K = C_in kh kw` rows of the padded, strided input, each
//! row a run of contiguous copies when the stride is 1; a 1x1 stride-1 convolution reads `x`
//! itself), then `y = W col + b` as one GEMM (`W`: `[C_out, K]`; `y`: `[C_out, S]`, written in
//! place in the NCHW output, the bias as its initial value);
//!
//! backward, from `dy` (`[C_out, S]` per image): `dcol = W^T dy` and `dx = col2im(dcol)` (the
//! adjoint of im2col: the same runs, added back); `dW += dy col^T` (im2col recomputed, as `col^T`,
//! from the image transposed to `[H W, C_in]`, its columns in kernel-tap order) and
//! `db += sum_s dy`, summed over chunks of images whose size depends on the batch alone, in chunk
//! order: the same result run to run and for any thread count.
//!
//! The kernel is a burn backend extension (`#[backend_extension]`) implemented for `Flex` and for
//! `Autodiff<Flex>`; grouped convolutions, other dtypes and other devices run burn's `conv2d`.
//! Tested against it: values and the gradients of input, weight and bias over strides, paddings,
//! dilations, kernel shapes and 1x1 convolutions (`tests`, below).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Dispatch, Flex, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, Tensor};
use rayon::prelude::*;

use super::{f32s, tensor};

/// The im2col convolution as a backend operation.
#[backend_extension(Flex, Autodiff)]
pub trait Im2colConv2d: burn::backend::Backend {
    /// `x`: `[B, C_in, H, W]`, `weight`: `[C_out, C_in, kh, kw]`, `bias`: `[C_out]`; `geometry`:
    /// stride, padding (top, left) and dilation; returns `[B, C_out, OH, OW]`.
    fn im2col_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> FloatTensor<Self>;
}

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Geometry {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    /// Zeros before the first row and column (those after the last follow from the output size).
    pad: [usize; 2],
    dilation: [usize; 2],
    out: [usize; 2],
}

impl Geometry {
    /// Rows of `col`: `C_in kh kw`.
    fn k(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    /// Output positions per channel.
    fn s(&self) -> usize {
        self.out[0] * self.out[1]
    }

    /// Input values per image.
    fn image(&self) -> usize {
        self.c_in * self.h * self.w
    }

    /// A 1x1, stride-1, unpadded convolution: `col` is the image itself.
    fn pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.pad == [0, 0]
    }

    /// The output positions `o` along one axis whose input `o s + k d - p` lies in `0..len`.
    fn valid(len: usize, out: usize, s: usize, offset: isize) -> (usize, usize) {
        // first o with o s + offset >= 0, first o with o s + offset >= len
        let first = |bound: isize| -> usize {
            let need = bound - offset;
            if need <= 0 { 0 } else { ((need as usize).div_ceil(s)).min(out) }
        };
        (first(0), first(len as isize))
    }

    /// Calls `f(row, oy, ox0, ox1, iy, ix0)` for every run of `col` row `row` at output row `oy`
    /// whose inputs lie in the image: `col[row][oy OW + ox]` reads `x[ci][iy][ix0 + (ox - ox0) sw]`
    /// for `ox` in `ox0..ox1`; every other entry of `col` is zero.
    #[inline(always)]
    fn runs(&self, mut f: impl FnMut(usize, usize, usize, usize, usize, usize)) {
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let [dh, dw] = self.dilation;
        let [ph, pw] = self.pad;
        let [oh, ow] = self.out;
        for ci in 0..self.c_in {
            for ki in 0..kh {
                let (oy0, oy1) = Self::valid(self.h, oh, sh, (ki * dh) as isize - ph as isize);
                for kj in 0..kw {
                    let row = (ci * kh + ki) * kw + kj;
                    let off = (kj * dw) as isize - pw as isize;
                    let (ox0, ox1) = Self::valid(self.w, ow, sw, off);
                    if ox0 >= ox1 {
                        continue;
                    }
                    let ix0 = (ox0 as isize * sw as isize + off) as usize;
                    for oy in oy0..oy1 {
                        let iy = oy * sh + ki * dh - ph;
                        f(row, oy, ox0, ox1, ci * self.h * self.w + iy * self.w, ix0);
                    }
                }
            }
        }
    }
}

/// `col` (`[K, S]`, overwritten) from one image `x` (`[C_in, H, W]`).
fn im2col(g: &Geometry, x: &[f32], col: &mut [f32]) {
    col.fill(0.0);
    let (s, ow, sw) = (g.s(), g.out[1], g.stride[1]);
    g.runs(|row, oy, ox0, ox1, base, ix0| {
        let dst = &mut col[row * s + oy * ow + ox0..row * s + oy * ow + ox1];
        let src = &x[base + ix0..];
        if sw == 1 {
            dst.copy_from_slice(&src[..dst.len()]);
        } else {
            for (d, &v) in dst.iter_mut().zip(src.iter().step_by(sw)) {
                *d = v;
            }
        }
    });
}

/// `col^T` (`[S, K]`, overwritten) from one image `x` (`[C_in, H, W]`), its `K` columns in the
/// order `(ki, kj, ci)` (see [`tap_major_to_weight`]): the layout in which the weight gradient's
/// GEMM reads `col` with its rows (`K`) contiguous, 5-10x faster there than `[K, S]` (measured
/// for the tokenizer's shapes: GEMM packs a row-major left operand element by element).
///
/// `x` is first transposed to `[H W, C_in]` (in `xt`, scratch), so that every kernel tap of an
/// output position is one copy of `C_in` contiguous values, and the taps of one kernel row
/// (dilation 1) one copy of `kw C_in`; element by element, the gather was 15% of the conv
/// tokenizer's step.
fn im2col_t(g: &Geometry, x: &[f32], xt: &mut Vec<f32>, colt: &mut [f32]) {
    let (c, plane) = (g.c_in, g.h * g.w);
    xt.resize(plane * c, 0.0);
    for (ci, channel) in x.chunks_exact(plane).enumerate() {
        for (p, &v) in channel.iter().enumerate() {
            xt[p * c + ci] = v;
        }
    }
    let [_, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let [dh, dw] = g.dilation;
    let [ph, pw] = g.pad;
    let (k, ow) = (g.k(), g.out[1]);
    for (p, out) in colt.chunks_mut(k).enumerate() {
        let (oy, ox) = (p / ow, p % ow);
        // the taps kj0..kj1 of this column lie in the image: ox sw + kj dw - pw in 0..W
        let first = |bound: usize| (0..kw).find(|&kj| ox * sw + kj * dw >= pw + bound).unwrap_or(kw);
        let (kj0, kj1) = (first(0), first(g.w));
        for (ki, row) in out.chunks_exact_mut(kw * c).enumerate() {
            let iy = (oy * sh + ki * dh) as isize - ph as isize;
            if !(0..g.h as isize).contains(&iy) || kj0 >= kj1 {
                row.fill(0.0);
                continue;
            }
            row[..kj0 * c].fill(0.0);
            row[kj1 * c..].fill(0.0);
            let at = |kj: usize| (iy as usize * g.w + ox * sw + kj * dw - pw) * c;
            if dw == 1 {
                row[kj0 * c..kj1 * c].copy_from_slice(&xt[at(kj0)..at(kj0) + (kj1 - kj0) * c]);
            } else {
                for kj in kj0..kj1 {
                    row[kj * c..(kj + 1) * c].copy_from_slice(&xt[at(kj)..at(kj) + c]);
                }
            }
        }
    }
}

/// A weight-shaped `[C_out, K]` array from the tap-major order of [`im2col_t`] (`K` as
/// `(ki, kj, ci)`) to the weight's own (`(ci, ki, kj)`).
fn tap_major_to_weight(g: &Geometry, tap_major: &[f32]) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let (c, k) = (g.c_in, g.k());
    let mut w = vec![0f32; tap_major.len()];
    for (w, t) in w.chunks_exact_mut(k).zip(tap_major.chunks_exact(k)) {
        for ci in 0..c {
            for tap in 0..kh * kw {
                w[ci * kh * kw + tap] = t[tap * c + ci];
            }
        }
    }
    w
}

/// The adjoint of [`im2col`]: adds `col` (`[K, S]`) into one image's `dx` (`[C_in, H, W]`).
fn col2im(g: &Geometry, col: &[f32], dx: &mut [f32]) {
    let (s, ow, sw) = (g.s(), g.out[1], g.stride[1]);
    g.runs(|row, oy, ox0, ox1, base, ix0| {
        let src = &col[row * s + oy * ow + ox0..row * s + oy * ow + ox1];
        let dst = &mut dx[base + ix0..];
        if sw == 1 {
            for (d, &v) in dst.iter_mut().zip(src) {
                *d += v;
            }
        } else {
            for (d, &v) in dst.iter_mut().step_by(sw).zip(src) {
                *d += v;
            }
        }
    });
}

/// `dst[m x n] (+)= lhs[m x k] rhs[k x n]`, each matrix given by its row and column strides
/// (elements); `accumulate` adds to `dst` instead of overwriting it.
#[allow(clippy::too_many_arguments)]
fn gemm(
    [m, n, k]: [usize; 3],
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let end = |rs: usize, cs: usize, r: usize, c: usize| (r.max(1) - 1) * rs + (c.max(1) - 1) * cs + 1;
    assert!(dst.len() >= end(dst_rs, dst_cs, m, n), "gemm: dst too short");
    assert!(k == 0 || lhs.len() >= end(lhs_rs, lhs_cs, m, k), "gemm: lhs too short");
    assert!(k == 0 || rhs.len() >= end(rhs_rs, rhs_cs, k, n), "gemm: rhs too short");
    let parallelism = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: the asserts above keep every index the strides reach inside the three slices,
    // and `dst` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Whether each image's GEMMs run on all threads (few images) or one (images in parallel).
fn per_image_parallel(n: usize) -> bool {
    n < rayon::current_num_threads()
}

/// The forward kernel: `y` (`[B, C_out, S]`).
fn forward(g: &Geometry, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let (k, s) = (g.k(), g.s());
    let mut y = vec![0f32; g.n * g.c_out * s];
    let inner = per_image_parallel(g.n);
    let one = |col: &mut Vec<f32>, (b, y): (usize, &mut [f32])| {
        for (row, &v) in y.chunks_mut(s).zip(bias) {
            row.fill(v);
        }
        let x = &x[b * g.image()..(b + 1) * g.image()];
        let col: &[f32] = if g.pointwise() {
            x
        } else {
            col.resize(k * s, 0.0);
            im2col(g, x, col);
            col
        };
        // y^T [S x C_out] += col^T [S x K] W^T [K x C_out]: S is the long, contiguous side.
        gemm([s, g.c_out, k], y, (1, s), true, col, (1, s), weight, (1, k), inner);
    };
    if inner {
        let mut col = Vec::new();
        y.chunks_mut(g.c_out * s).enumerate().for_each(|item| one(&mut col, item));
    } else {
        y.par_chunks_mut(g.c_out * s).enumerate().for_each_init(Vec::new, one);
    }
    y
}

/// Images per chunk of the backward: a function of the batch alone, so that the weight and bias
/// gradients are summed in one order whatever the thread count and however rayon schedules; at
/// most 16 chunks, and at least 4 images in each: every chunk sums into a weight gradient of its
/// own (zeroed, then added to the total), which at one image per chunk (a 16-image shard of the
/// conv tokenizer's step) cost a zeroing and an addition of the weight's size per image.
fn chunk_images(n: usize) -> usize {
    n.div_ceil(16).max(4)
}

/// The backward kernel: `(dx, dW, db)` from `dy` (`[B, C_out, S]`).
fn backward(g: &Geometry, x: &[f32], weight: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (k, s, c) = (g.k(), g.s(), g.c_out);
    let mut dx = vec![0f32; g.n * g.image()];
    let per = chunk_images(g.n);
    let inner = per_image_parallel(g.n.div_ceil(per));
    // One chunk of images: their dx, and their sums of dW (f32, accumulated by the GEMM image
    // by image, `K` tap-major) and db (f64); `col`, `dcol` and `xt` are scratch, allocated once
    // per rayon job.
    type Scratch = (Vec<f32>, Vec<f32>, Vec<f32>);
    let chunk = |(col, dcol, xt): &mut Scratch, (i, dx): (usize, &mut [f32])| -> (Vec<f32>, Vec<f64>) {
        let (mut dw, mut db) = (vec![0f32; c * k], vec![0f64; c]);
        for (j, dx) in dx.chunks_mut(g.image()).enumerate() {
            let b = i * per + j;
            let dy = &dy[b * c * s..(b + 1) * c * s];
            let x = &x[b * g.image()..(b + 1) * g.image()];
            // dcol^T [S x K] = dy^T [S x C_out] W [C_out x K]; a pointwise conv's dcol is dx.
            if g.pointwise() {
                gemm([s, k, c], dx, (1, s), false, dy, (1, s), weight, (k, 1), inner);
            } else {
                dcol.resize(k * s, 0.0);
                gemm([s, k, c], dcol, (1, s), false, dy, (1, s), weight, (k, 1), inner);
                col2im(g, dcol, dx);
            }
            // dW^T [K x C_out] += col [K x S] dy^T [S x C_out], col read as col^T [S x K]
            // (a pointwise conv's x too: its [K x S] layout is the slow one)
            col.resize(k * s, 0.0);
            im2col_t(g, x, xt, col);
            gemm([k, c, s], &mut dw, (1, k), true, col, (1, k), dy, (1, s), inner);
            for (db, row) in db.iter_mut().zip(dy.chunks(s)) {
                *db += row.iter().map(|&v| v as f64).sum::<f64>();
            }
        }
        (dw, db)
    };
    let parts: Vec<(Vec<f32>, Vec<f64>)> = dx
        .par_chunks_mut(per * g.image())
        .enumerate()
        .map_init(|| (Vec::new(), Vec::new(), Vec::new()), chunk)
        .collect();
    let (mut dw, mut db) = (vec![0f32; c * k], vec![0f64; c]);
    for (pw, pb) in &parts {
        for (a, b) in dw.iter_mut().zip(pw) {
            *a += b;
        }
        for (a, b) in db.iter_mut().zip(pb) {
            *a += b;
        }
    }
    (dx, tap_major_to_weight(g, &dw), db.into_iter().map(|v| v as f32).collect())
}

/// The geometry of a call, from the tensors' shapes and the options.
fn geometry(x: &FlexTensor, weight: &FlexTensor, stride: [usize; 2], pad: [usize; 2], dil: [usize; 2]) -> Geometry {
    let (xs, ws) = (x.layout().shape(), weight.layout().shape());
    let out = |axis: usize| {
        let reach = dil[axis] * (ws[2 + axis] - 1) + 1;
        (xs[2 + axis] + 2 * pad[axis] - reach) / stride[axis] + 1
    };
    Geometry {
        n: xs[0],
        c_in: xs[1],
        h: xs[2],
        w: xs[3],
        c_out: ws[0],
        kernel: [ws[2], ws[3]],
        stride,
        pad,
        dilation: dil,
        out: [out(0), out(1)],
    }
}

/// The forward kernel on tensors: `y` (`[B, C_out, OH, OW]`).
fn forward_tensor(g: &Geometry, x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let y = forward(g, &f32s(x), &f32s(weight), &f32s(bias));
    tensor(y, Shape::from(vec![g.n, g.c_out, g.out[0], g.out[1]]))
}

impl Im2colConv2d for Flex {
    fn im2col_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> FlexTensor {
        forward_tensor(&geometry(&x, &weight, stride, padding, dilation), &x, &weight, &bias)
    }
}

/// The autodiff node: the input, the weight and the geometry.
#[derive(Debug)]
struct Conv2dBackward;

impl Backward<Flex, 3> for Conv2dBackward {
    type State = (FlexTensor, FlexTensor, Geometry);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, weight, g) = ops.state;
        let (dx, dw, db) = backward(&g, &f32s(&x), &f32s(&weight), &f32s(&dy));
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(dx, x.layout().shape().clone()));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, tensor(dw, weight.layout().shape().clone()));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, tensor(db, Shape::from(vec![g.c_out])));
        }
    }
}

impl<C: CheckpointStrategy> Im2colConv2d for Autodiff<Flex, C> {
    fn im2col_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), weight.node(), bias.node()];
        let (x, weight, bias) = (x.into_primitive(), weight.into_primitive(), bias.into_primitive());
        let g = geometry(&x, &weight, stride, padding, dilation);
        let y = forward_tensor(&g, &x, &weight, &bias);
        match Conv2dBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x, weight, g), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// `conv2d(x, weight, bias, options)`: the im2col kernel on the CPU (f32, one group, the same
/// padding before and after), burn's `conv2d` otherwise.
///
/// # Shapes
/// - `x`: `[B, C_in, H, W]`; `weight`: `[C_out, C_in / groups, kh, kw]`; `bias`: `[C_out]`;
///   returns `[B, C_out, OH, OW]`
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, options: ConvOptions<2>) -> Tensor<4> {
    let symmetric = options.padding.iter().all(|(a, b)| a == b);
    let fused = crate::parallel::is_cpu(&x.device())
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && options.groups == 1
        && symmetric;
    if !fused {
        return burn_conv2d(x, weight, bias, options);
    }
    let [_, c_in, _, _] = x.dims();
    let [c_out, wc, _, _] = weight.dims();
    assert_eq!(c_in, wc, "conv2d: {c_in} input channels for a weight of {wc}");
    let bias = bias.unwrap_or_else(|| Tensor::zeros([c_out], &weight.device()));
    let padding = options.padding.map(|(a, _)| a);
    Tensor::from_dispatch(<Dispatch as Im2colConv2d>::im2col_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        options.stride,
        padding,
        options.dilation,
    ))
}

/// `conv.forward(x)` through [`conv2d`] (a `Same`-padded module runs burn's `forward`).
///
/// # Shapes
/// - `x`: `[B, C_in, H, W]`; returns `[B, C_out, OH, OW]`
pub fn apply(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Same => return conv.forward(x),
    };
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
    conv2d(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::fused::max_rel;
    use burn::tensor::{Device, Distribution};

    /// Values and the gradients of x, weight and bias against burn's `conv2d`, for a loss that
    /// weights every output differently.
    fn check(
        x: [usize; 4],
        c_out: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 2],
        dil: [usize; 2],
        bias: bool,
    ) {
        let device = Device::flex().autodiff();
        let xs = Tensor::<4>::random(x, Distribution::Normal(0.3, 1.0), &device);
        let w = Tensor::<4>::random([c_out, x[1], kernel[0], kernel[1]], Distribution::Normal(0.0, 0.5), &device);
        let b = Tensor::<1>::random([c_out], Distribution::Normal(0.0, 0.5), &device);
        let options = ConvOptions::new(stride, pad, dil, 1);
        let run = |fused: bool| {
            let (xs, w, b) = (xs.clone().require_grad(), w.clone().require_grad(), b.clone().require_grad());
            let bias_arg = bias.then(|| b.clone());
            let y = if fused {
                conv2d(xs.clone(), w.clone(), bias_arg, options.clone())
            } else {
                burn_conv2d(xs.clone(), w.clone(), bias_arg, options.clone())
            };
            let weights = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &Device::flex());
            let weights = Tensor::from_inner(weights);
            (y, weights, xs, w, b)
        };
        let (y, weights, xs1, w1, b1) = run(true);
        let (y0, _, xs0, w0, b0) = run(false);
        assert_eq!(y.dims(), y0.dims(), "output shape");
        let g1 = (y.clone() * weights.clone()).sum().backward();
        let g0 = (y0.clone() * weights).sum().backward();
        let flat4 = |t: Tensor<4>| t.flatten::<1>(0, 3);
        let mut pairs = vec![
            ("y", flat4(y.inner()), flat4(y0.inner())),
            ("dx", flat4(xs1.grad(&g1).unwrap()), flat4(xs0.grad(&g0).unwrap())),
            ("dW", flat4(w1.grad(&g1).unwrap()), flat4(w0.grad(&g0).unwrap())),
        ];
        if bias {
            pairs.push(("db", b1.grad(&g1).unwrap(), b0.grad(&g0).unwrap()));
        } else {
            assert!(b1.grad(&g1).is_none(), "a convolution without bias has no bias gradient");
        }
        for (name, a, b) in pairs {
            let err = max_rel(a, b);
            assert!(
                err < 2e-5,
                "x {x:?}, {c_out} out, kernel {kernel:?}, stride {stride:?}, pad {pad:?}, dilation {dil:?}: {name} differs by {err:e}"
            );
        }
    }

    #[test]
    fn im2col_conv_matches_burn_values_and_gradients() {
        check([3, 4, 9, 7], 5, [3, 3], [1, 1], [1, 1], [1, 1], true); // the tokenizer's 3x3
        check([2, 4, 9, 8], 6, [3, 3], [2, 2], [1, 1], [1, 1], true); // strided down-sampling
        check([2, 3, 10, 10], 4, [4, 4], [2, 2], [1, 1], [1, 1], false); // PatchGAN, no bias
        check([2, 3, 7, 7], 4, [4, 4], [1, 1], [1, 1], [1, 1], true); // PatchGAN's last layers
        check([3, 6, 5, 4], 2, [1, 1], [1, 1], [0, 0], [1, 1], true); // 1x1: col is x itself
        check([2, 3, 11, 9], 4, [3, 2], [2, 3], [2, 0], [2, 1], true); // uneven everything
        check([1, 2, 3, 3], 3, [3, 3], [1, 1], [0, 0], [1, 1], true); // one output position
        check([2, 2, 4, 4], 3, [3, 3], [3, 3], [2, 2], [1, 1], true); // rows of pure padding
        check([2, 3, 9, 10], 4, [2, 3], [1, 2], [1, 2], [1, 2], true); // dilated along the width
    }

    #[test]
    fn im2col_conv_without_autodiff_matches_burn() {
        let device = Device::flex();
        let x = Tensor::<4>::random([5, 3, 8, 8], Distribution::Normal(-1.0, 2.0), &device);
        let w = Tensor::<4>::random([4, 3, 3, 3], Distribution::Normal(0.0, 1.0), &device);
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let a = conv2d(x.clone(), w.clone(), None, options.clone()).flatten(0, 3);
        let b = burn_conv2d(x, w, None, options).flatten(0, 3);
        assert!(max_rel(a, b) < 2e-5);
    }

    /// The geometry of a convolution of `x` (`[B, C_in, H, W]`) to `c_out` channels.
    fn geometry(
        x: [usize; 4],
        c_out: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 2],
        dil: [usize; 2],
    ) -> Geometry {
        let xs = FlexTensor::from_data(burn::tensor::TensorData::zeros::<f32, _>(x));
        let ws = FlexTensor::from_data(burn::tensor::TensorData::zeros::<f32, _>([c_out, x[1], kernel[0], kernel[1]]));
        super::geometry(&xs, &ws, stride, pad, dil)
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), c> = <x, col2im(c)> for every x and c, at a geometry with padding,
        // stride and dilation: the property that makes the input gradient right.
        let g = geometry([1, 2, 7, 6], 1, [3, 2], [2, 1], [1, 1], [1, 2]);
        assert_eq!(g.out, [4, 6]);
        let x: Vec<f32> = (0..g.image()).map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0).collect();
        let c: Vec<f32> = (0..g.k() * g.s()).map(|i| ((i * 53 % 13) as f32 - 6.0) / 4.0).collect();
        let mut col = vec![0f32; g.k() * g.s()];
        im2col(&g, &x, &mut col);
        let mut back = vec![0f32; g.image()];
        col2im(&g, &c, &mut back);
        let lhs: f64 = col.iter().zip(&c).map(|(&a, &b)| a as f64 * b as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(&a, &b)| a as f64 * b as f64).sum();
        assert!((lhs - rhs).abs() < 1e-9 * lhs.abs().max(1.0), "{lhs} vs {rhs}");
        assert!(col.contains(&0.0) && col.iter().any(|&v| v != 0.0), "padding and data both reached");
    }

    #[test]
    fn im2col_t_is_im2col_transposed_in_tap_order() {
        // colt[p][(ki, kj, ci)] = col[(ci, ki, kj)][p], padding, stride and dilation on both axes
        for (x, kernel, stride, pad, dil) in [
            ([1, 3, 7, 6], [3, 2], [2, 1], [1, 1], [1, 2]),
            ([1, 2, 8, 9], [3, 3], [1, 1], [1, 1], [1, 1]),
            ([1, 4, 5, 5], [1, 1], [1, 1], [0, 0], [1, 1]),
            ([1, 2, 6, 7], [4, 4], [2, 3], [2, 3], [1, 1]),
        ] {
            let g = geometry(x, 1, kernel, stride, pad, dil);
            let xs: Vec<f32> = (0..g.image()).map(|i| 1.0 + i as f32).collect();
            let (k, s) = (g.k(), g.s());
            let mut col = vec![f32::NAN; k * s];
            im2col(&g, &xs, &mut col);
            let (mut colt, mut xt) = (vec![f32::NAN; k * s], Vec::new());
            im2col_t(&g, &xs, &mut xt, &mut colt);
            let [kh, kw] = g.kernel;
            for p in 0..s {
                for ci in 0..g.c_in {
                    for tap in 0..kh * kw {
                        let (a, b) = (colt[p * k + tap * g.c_in + ci], col[(ci * kh * kw + tap) * s + p]);
                        assert_eq!(a, b, "{x:?} kernel {kernel:?}: position {p}, channel {ci}, tap {tap}");
                    }
                }
            }
        }
    }

    #[test]
    fn gradients_do_not_depend_on_the_thread_count() {
        // 37 images: chunks of 4, the last one short; 70: chunks of 5; 2 images: one chunk,
        // each image's GEMMs on all threads when there are 4. The sums must be bitwise the same
        // on 1 thread and on 4.
        for n in [37, 70, 2] {
            same_on_1_and_4_threads(n);
        }
    }

    fn same_on_1_and_4_threads(n: usize) {
        let g = geometry([n, 3, 16, 15], 24, [3, 3], [1, 1], [1, 1], [1, 1]);
        let x: Vec<f32> = (0..g.n * g.image()).map(|i| ((i * 31 % 17) as f32 - 8.0) / 7.0).collect();
        let w: Vec<f32> = (0..g.c_out * g.k()).map(|i| ((i * 13 % 11) as f32 - 5.0) / 9.0).collect();
        let dy: Vec<f32> = (0..g.n * g.c_out * g.s()).map(|i| ((i * 7 % 19) as f32 - 9.0) / 5.0).collect();
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| backward(&g, &x, &w, &dy))
        };
        assert_eq!(on(1), on(4));
    }
}
