//! The linear probe (MAE / l-DAE protocol): frozen features -> BatchNorm without affine
//! parameters -> one linear layer, trained with momentum SGD, a cosine learning rate after a
//! linear warm-up, no weight decay; top-1 on the test split.
//!
//! Features are cached once (no augmentation), so the BatchNorm is applied with the exact
//! statistics of the training features, which are what its running estimates converge to.
//! The classifier's gradient is written out (softmax cross-entropy: `X^T (softmax(XW+b) - Y)/B`)
//! rather than taken through autodiff: the probe is a convex problem and this keeps it fast.

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::seq::SliceRandom;

use super::features::Features;
use crate::data::loader::step_rng;
use crate::optim::lr::lr_at;

/// Probe optimisation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    pub momentum: f64,
    /// Warm-up epochs.
    pub warmup_epochs: usize,
    pub seed: u64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig { epochs: 30, batch_size: 256, lr: 0.1, momentum: 0.9, warmup_epochs: 3, seed: 0 }
    }
}

/// Per-dimension mean and standard deviation of the training features (BN without affine).
fn standardizer(f: &Features) -> (Vec<f32>, Vec<f32>) {
    let n = f.len().max(1) as f64;
    let mut mean = vec![0f64; f.dim];
    let mut sq = vec![0f64; f.dim];
    for row in f.data.chunks_exact(f.dim) {
        for (j, &v) in row.iter().enumerate() {
            mean[j] += v as f64;
            sq[j] += (v as f64) * (v as f64);
        }
    }
    let mean: Vec<f64> = mean.iter().map(|m| m / n).collect();
    let std = sq.iter().zip(&mean).map(|(s, m)| ((s / n - m * m).max(0.0) + 1e-6).sqrt() as f32).collect();
    (mean.iter().map(|&m| m as f32).collect(), std)
}

fn upload(f: &Features, mean: &[f32], std: &[f32], device: &Device) -> Tensor<2> {
    let data: Vec<f32> = f
        .data
        .chunks_exact(f.dim)
        .flat_map(|row| row.iter().zip(mean).zip(std).map(|((v, m), s)| (v - m) / s))
        .collect();
    Tensor::from_data(TensorData::new(data, [f.len(), f.dim]), device)
}

/// A trained probe: top-1 accuracy (%) on the test features and the training loss of each step.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeFit {
    pub accuracy: f64,
    /// Mean softmax cross-entropy of each step's batch, before its update.
    pub losses: Vec<f64>,
}

/// Train a linear classifier on `train`: its accuracy on `test` and the loss of every step.
pub fn linear_probe(
    train: &Features,
    train_labels: &[u32],
    test: &Features,
    test_labels: &[u32],
    classes: usize,
    cfg: &ProbeConfig,
    device: &Device,
) -> ProbeFit {
    let (mean, std) = standardizer(train);
    let x_train = upload(train, &mean, &std, device); // [N, D]
    let x_test = upload(test, &mean, &std, device); // [M, D]
    let dim = train.dim;
    let mut w = Tensor::<2>::zeros([dim, classes], device);
    let mut b = Tensor::<1>::zeros([classes], device);
    let mut vw = w.zeros_like();
    let mut vb = b.zeros_like();
    let n = train.len();
    let per_epoch = n.div_ceil(cfg.batch_size);
    let total = per_epoch * cfg.epochs;
    let onehot = |idx: &[usize]| {
        let mut y = vec![0f32; idx.len() * classes];
        for (r, &i) in idx.iter().enumerate() {
            y[r * classes + train_labels[i] as usize] = 1.0;
        }
        Tensor::<2>::from_data(TensorData::new(y, [idx.len(), classes]), device)
    };
    let mut losses = Vec::with_capacity(total); // [1] each, read back once at the end
    for epoch in 0..cfg.epochs {
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(&mut step_rng(cfg.seed, 11, epoch as u64));
        for (k, idx) in perm.chunks(cfg.batch_size).enumerate() {
            let lr = lr_at(epoch * per_epoch + k, total, cfg.warmup_epochs * per_epoch, cfg.lr, 0.0);
            let rows = Tensor::<1, Int>::from_data(
                TensorData::new(idx.iter().map(|&i| i as i64).collect::<Vec<_>>(), [idx.len()]),
                device,
            );
            let xb = x_train.clone().select(0, rows); // [B, D]
            let p = softmax(xb.clone().matmul(w.clone()) + b.clone().unsqueeze_dim::<2>(0), 1); // [B, K]
            let y = onehot(idx); // [B, K]
            losses.push(-(p.clone() * y.clone()).sum_dim(1).clamp_min(1e-30).log().mean()); // [1]
            let g = (p - y) / idx.len() as f64; // [B, K]
            let gw = xb.transpose().matmul(g.clone()); // [D, K]
            let gb = g.sum_dim(0).reshape([classes]); // [K]
            vw = vw * cfg.momentum + gw;
            vb = vb * cfg.momentum + gb;
            w = w - vw.clone() * lr;
            b = b - vb.clone() * lr;
        }
    }
    let pred = (x_test.matmul(w) + b.unsqueeze_dim::<2>(0)).argmax(1).reshape([test.len()]);
    let pred: Vec<i64> = pred.into_data().convert::<i64>().try_into_vec().expect("int predictions");
    let correct = pred.iter().zip(test_labels).filter(|(p, y)| **p == **y as i64).count();
    let losses = if losses.is_empty() {
        Vec::new()
    } else {
        let all = Tensor::cat(losses, 0).into_data().convert::<f32>();
        all.try_into_vec::<f32>().expect("f32 losses").into_iter().map(f64::from).collect()
    };
    ProbeFit { accuracy: 100.0 * correct as f64 / test_labels.len().max(1) as f64, losses }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_separates_linearly_separable_classes() {
        // Two Gaussian-free clusters on a line: class = sign of the first coordinate.
        let mk = |n: usize, off: usize| {
            let data: Vec<f32> = (0..n)
                .flat_map(|i| {
                    let x = ((i + off) as f32 * 0.37).sin();
                    [x, 1.0 - x * 0.5]
                })
                .collect();
            let labels: Vec<u32> = data.chunks(2).map(|r| (r[0] > 0.0) as u32).collect();
            (Features { data, dim: 2 }, labels)
        };
        let (tr, ytr) = mk(400, 0);
        let (te, yte) = mk(100, 1000);
        let cfg = ProbeConfig { epochs: 20, batch_size: 32, ..Default::default() };
        let fit = linear_probe(&tr, &ytr, &te, &yte, 2, &cfg, &Device::flex());
        assert!(fit.accuracy > 95.0, "accuracy {}", fit.accuracy);
        // 400 rows in batches of 32: 13 steps an epoch; the first loss is ln 2 (zero weights).
        assert_eq!(fit.losses.len(), 13 * 20);
        assert!((fit.losses[0] - 2f64.ln()).abs() < 1e-6, "{}", fit.losses[0]);
        assert!(fit.losses[fit.losses.len() - 1] < 0.25 * fit.losses[0], "{:?}", &fit.losses[fit.losses.len() - 13..]);
    }
}
