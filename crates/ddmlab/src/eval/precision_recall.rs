//! Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019) on Inception features.
//!
//! Each set's manifold is the union of balls around its points, a point's radius being the
//! distance to its `k`-th nearest neighbour in its own set (itself excluded). Precision is the
//! fraction of generated points inside the real manifold (quality); recall is the fraction of
//! real points inside the generated manifold (coverage). `k = 3` as in the paper and in the
//! StyleGAN2-ADA / EDM evaluation code this follows (`metrics/precision_recall.py`).
//!
//! Distances are `|a|^2 + |b|^2 - 2 a.b` with the product as one matrix multiply per block of
//! rows on the backend (the CPU's GEMM), in f32 as the reference computes them.

use burn::tensor::{Device, Tensor, TensorData};

/// Improved precision and recall of a generated set against a real one.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PrecisionRecall {
    pub precision: f64,
    pub recall: f64,
    /// The neighbourhood size of the radii.
    pub k: usize,
}

/// Rows of `[n, dim]` features per distance block.
const BLOCK: usize = 1024;

/// The `[n, dim]` features as a tensor.
fn matrix(x: &[f32], dim: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(x.to_vec(), [x.len() / dim, dim]), device)
}

/// Squared distances `[m, n]` between the rows of `a` `[m, d]` and of `b` `[n, d]`.
fn squared_distances(a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    let a2 = a.clone().powi_scalar(2).sum_dim(1); // [m, 1]
    let b2 = b.clone().powi_scalar(2).sum_dim(1).transpose(); // [1, n]
    (a2 + b2 - a.matmul(b.transpose()).mul_scalar(2.0)).clamp_min(0.0)
}

/// For every row of `x` `[n, dim]`, the squared distance to its `k`-th nearest other row.
pub fn knn_radii(x: &[f32], dim: usize, k: usize, device: &Device) -> Vec<f32> {
    let n = x.len() / dim;
    assert!(k >= 1 && k < n, "k = {k} needs more than k = {k} points, got {n}");
    let all = matrix(x, dim, device);
    let mut radii = Vec::with_capacity(n);
    for start in (0..n).step_by(BLOCK) {
        let rows = matrix(&x[start * dim..(start + BLOCK).min(n) * dim], dim, device);
        // The k + 1 smallest distances (the first is the point itself, at 0).
        let nearest = squared_distances(rows, all.clone()).neg().topk(k + 1, 1); // [m, k + 1], descending
        let m = nearest.dims()[0];
        let kth: Vec<f32> = nearest.slice([0..m, k..k + 1]).neg().into_data().try_into_vec::<f32>().expect("f32");
        radii.extend(kth);
    }
    radii
}

/// The fraction of rows of `queries` inside at least one ball (centre a row of `centres`,
/// squared radius `radii[i]`).
pub fn coverage(queries: &[f32], centres: &[f32], radii: &[f32], dim: usize, device: &Device) -> f64 {
    let n = queries.len() / dim;
    let centres = matrix(centres, dim, device);
    let radii = Tensor::<2>::from_data(TensorData::new(radii.to_vec(), [1, radii.len()]), device);
    let mut inside = 0usize;
    for start in (0..n).step_by(BLOCK) {
        let rows = matrix(&queries[start * dim..(start + BLOCK).min(n) * dim], dim, device);
        // max over balls of (radius - distance) >= 0: inside some ball.
        let margin = (radii.clone() - squared_distances(rows, centres.clone())).max_dim(1);
        let margin: Vec<f32> = margin.into_data().try_into_vec::<f32>().expect("f32");
        inside += margin.iter().filter(|&&m| m >= 0.0).count();
    }
    inside as f64 / n.max(1) as f64
}

/// Precision and recall of `fake` against `real` (`[n, dim]` features each, more than `k` rows).
pub fn precision_recall(real: &[f32], fake: &[f32], dim: usize, k: usize, device: &Device) -> PrecisionRecall {
    precision_recall_with_radii(real, &knn_radii(real, dim, k, device), fake, dim, k, device)
}

/// [`precision_recall`] with the real set's radii already computed (one reference set scored
/// against many generated ones).
pub fn precision_recall_with_radii(
    real: &[f32],
    real_radii: &[f32],
    fake: &[f32],
    dim: usize,
    k: usize,
    device: &Device,
) -> PrecisionRecall {
    let fake_radii = knn_radii(fake, dim, k, device);
    PrecisionRecall {
        precision: coverage(fake, real, real_radii, dim, device),
        recall: coverage(real, fake, &fake_radii, dim, device),
        k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five points on a line: radii and coverage checked by hand.
    #[test]
    fn radii_and_coverage_match_a_hand_computed_case() {
        let device = Device::flex();
        // Real points 0, 1, 3, 7, 8 (1-D): with k = 1 the nearest-other distances are
        // 1, 1, 2, 1, 1 (squared: 1, 1, 4, 1, 1); with k = 2: 3, 2, 3, 4, 5 (squared 9, 4, 9, 16, 25).
        let real = [0.0f32, 1.0, 3.0, 7.0, 8.0];
        assert_eq!(knn_radii(&real, 1, 1, &device), vec![1.0, 1.0, 4.0, 1.0, 1.0]);
        assert_eq!(knn_radii(&real, 1, 2, &device), vec![9.0, 4.0, 9.0, 16.0, 25.0]);
        // With k = 1 the balls cover [-1, 5] and [6, 9]: 5.5 and 12 fall outside, 2 and 9 inside.
        let queries = [2.0f32, 5.5, 9.0, 12.0];
        let radii = knn_radii(&real, 1, 1, &device);
        assert_eq!(coverage(&queries, &real, &radii, 1, &device), 0.5);
    }

    /// Two draws of one Gaussian cover each other almost entirely; a shifted Gaussian with
    /// less spread has high precision and low recall (the mode-dropping signature), and a
    /// distant cloud has neither.
    #[test]
    fn precision_and_recall_separate_quality_from_coverage() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        let device = Device::flex();
        let dim = 8;
        let draw = |n: usize, scale: f32, shift: f32, seed: u64| -> Vec<f32> {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            (0..n * dim).map(|_| scale * Distribution::<f32>::sample(&StandardNormal, &mut rng) + shift).collect()
        };
        let real = draw(1500, 1.0, 0.0, 1);
        let same = precision_recall(&real, &draw(1500, 1.0, 0.0, 2), dim, 3, &device);
        assert!(same.precision > 0.6 && same.recall > 0.6, "{same:?}");
        let narrow = precision_recall(&real, &draw(1500, 0.3, 0.0, 3), dim, 3, &device);
        assert!(narrow.precision > 0.95 && narrow.recall < 0.1, "{narrow:?}");
        let far = precision_recall(&real, &draw(1500, 1.0, 10.0, 4), dim, 3, &device);
        assert_eq!((far.precision, far.recall), (0.0, 0.0), "{far:?}");
    }
}
