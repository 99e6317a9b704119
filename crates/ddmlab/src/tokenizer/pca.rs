//! Patch-wise PCA, l-DAE's tokenizer (paper §4.3, Fig. 4).
//!
//! The basis `V` (`D x D`, one component per column, sorted by explained variance) comes from
//! the eigendecomposition of the covariance of randomly sampled, mean-subtracted patches,
//! computed in f64. Encoding keeps the first `d` coordinates, `z = V_d^T (x - mu)`; decoding is
//! `x = V_d z + mu`. The full basis is kept because the l-DAE loss weighs the residual
//! coordinates `d+1..D` too. No gradient training is involved.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use rand::RngExt;

use super::store::{self, Named};
use crate::data::{
    ImageSet, ImageShape,
    loader::{purpose, step_rng},
};
use crate::error::{Error, Result};
use crate::nn::patchify::patch_vector;

/// A fitted patch-PCA basis (all `D` components).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPca {
    /// Patch side `p`.
    pub patch: usize,
    /// Image channels `C`; `D = p * p * C`.
    pub channels: usize,
    /// The mean patch `mu`, `[D]`.
    pub mean: Vec<f64>,
    /// `V`, row-major `[D, D]`: `components[i * D + k]` is entry `i` of component `k`.
    pub components: Vec<f64>,
    /// Eigenvalues (variance along each component), descending, `[D]`.
    pub eigenvalues: Vec<f64>,
}

impl PatchPca {
    /// The patch dimension `D`.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Fit on `num_patches` grid-aligned patches drawn uniformly from `set` (seeded).
    pub fn fit(set: &ImageSet, patch: usize, num_patches: usize, seed: u64) -> Result<Self> {
        let samples = sample_patches(set, patch, num_patches, seed)?;
        Ok(Self::from_samples(&samples, patch, set.shape.channels))
    }

    /// PCA of the rows of `samples` (`[n, D]`).
    pub fn from_samples(samples: &nalgebra::DMatrix<f64>, patch: usize, channels: usize) -> Self {
        let (n, dim) = samples.shape();
        let mean = samples.row_mean(); // [1, D]
        let centered = samples - nalgebra::DMatrix::from_fn(n, dim, |_, j| mean[j]);
        let cov = (centered.transpose() * &centered) / (n as f64 - 1.0);
        let eig = nalgebra::SymmetricEigen::new(cov);
        let mut order: Vec<usize> = (0..dim).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let mut components = vec![0.0; dim * dim];
        for (k, &src) in order.iter().enumerate() {
            let col = eig.eigenvectors.column(src);
            // Fix the sign so that the largest-magnitude entry is positive: fits are reproducible.
            let big = col.iter().copied().fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
            let sign = if big < 0.0 { -1.0 } else { 1.0 };
            for i in 0..dim {
                components[i * dim + k] = sign * col[i];
            }
        }
        PatchPca {
            patch,
            channels,
            mean: mean.iter().copied().collect(),
            components,
            eigenvalues: order.iter().map(|&k| eig.eigenvalues[k].max(0.0)).collect(),
        }
    }

    /// The fraction of the total variance explained by each component, descending.
    pub fn explained_variance_ratio(&self) -> Vec<f64> {
        let total: f64 = self.eigenvalues.iter().sum();
        self.eigenvalues.iter().map(|v| v / total.max(f64::MIN_POSITIVE)).collect()
    }

    /// `z = V_d^T (x - mu)` for one patch vector `x` (`[D]` -> `[d]`).
    pub fn encode(&self, x: &[f64], d: usize) -> Vec<f64> {
        let dim = self.dim();
        (0..d).map(|k| (0..dim).map(|i| self.components[i * dim + k] * (x[i] - self.mean[i])).sum()).collect()
    }

    /// `x = V_d z + mu` for one latent `z` (`[d]` -> `[D]`).
    pub fn decode(&self, z: &[f64]) -> Vec<f64> {
        let dim = self.dim();
        (0..dim)
            .map(|i| self.mean[i] + z.iter().enumerate().map(|(k, zk)| self.components[i * dim + k] * zk).sum::<f64>())
            .collect()
    }

    /// Component `k` as a vector `[D]`.
    pub fn component(&self, k: usize) -> Vec<f64> {
        let dim = self.dim();
        (0..dim).map(|i| self.components[i * dim + k]).collect()
    }

    /// The basis on a device for a latent of `d` components.
    pub fn tensors(&self, d: usize, device: &Device) -> PcaTensors {
        let dim = self.dim();
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let v_d: Vec<f32> = (0..dim)
            .flat_map(|i| (0..d).map(move |k| (i, k)))
            .map(|(i, k)| self.components[i * dim + k] as f32)
            .collect();
        PcaTensors {
            mean: Tensor::from_data(TensorData::new(f32s(&self.mean), [dim]), device),
            v_d: Tensor::from_data(TensorData::new(v_d, [dim, d]), device),
        }
    }

    /// Save as safetensors (`mean`, `components`, `eigenvalues` in f64; patch and channels in
    /// the metadata), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dim = self.dim();
        store::save(
            path,
            &[
                Named { name: "mean", shape: vec![dim], values: &self.mean },
                Named { name: "components", shape: vec![dim, dim], values: &self.components },
                Named { name: "eigenvalues", shape: vec![dim], values: &self.eigenvalues },
            ],
            &[("patch", self.patch.to_string()), ("channels", self.channels.to_string())],
        )
    }

    /// Load what [`PatchPca::save`] wrote.
    pub fn load(path: &Path) -> Result<Self> {
        let file = store::Loaded::read(path)?;
        let (patch, channels): (usize, usize) = (file.number("patch")?, file.number("channels")?);
        let dim = patch * patch * channels;
        if dim == 0 {
            return Err(file.bad("metadata `patch` and `channels` must be positive"));
        }
        Ok(PatchPca {
            patch,
            channels,
            mean: file.tensor("mean", dim)?,
            components: file.tensor("components", dim * dim)?,
            eigenvalues: file.tensor("eigenvalues", dim)?,
        })
    }
}

/// `num_patches` grid-aligned patch vectors drawn uniformly from `set` (seeded), as the rows
/// of an `[n, D]` matrix: what every patch-wise tokenizer is fitted on.
pub fn sample_patches(set: &ImageSet, patch: usize, num_patches: usize, seed: u64) -> Result<nalgebra::DMatrix<f64>> {
    let ImageShape { channels, height, width } = set.shape;
    if patch == 0 || height % patch != 0 || width % patch != 0 {
        return Err(Error::config("tokenizer.patch", format!("{patch} must divide the image size {height}x{width}")));
    }
    if set.is_empty() || num_patches < 2 {
        return Err(Error::config("tokenizer.samples", "fitting needs a non-empty data set and at least 2 patches"));
    }
    let dim = patch * patch * channels;
    let (gh, gw) = (height / patch, width / patch);
    let mut rng = step_rng(seed, purpose::PCA, 0);
    let mut samples = nalgebra::DMatrix::<f64>::zeros(num_patches, dim);
    for r in 0..num_patches {
        let img = set.image_f32(rng.random_range(0..set.len()));
        let v = patch_vector(&img, channels, width, patch, rng.random_range(0..gh), rng.random_range(0..gw));
        samples.row_mut(r).copy_from_slice(&v);
    }
    Ok(samples)
}

/// The part of a [`PatchPca`] the model needs, on a device (f32).
#[derive(Debug, Clone)]
pub struct PcaTensors {
    /// `mu`, `[D]`.
    pub mean: Tensor<1>,
    /// `V_d`, the first `d` components, `[D, d]`.
    pub v_d: Tensor<2>,
}

impl PcaTensors {
    /// `z = (x - mu) V_d`.
    ///
    /// # Shapes
    /// - `patches`: `[B, L, D]`; returns `[B, L, d]`
    pub fn encode(&self, patches: Tensor<3>) -> Tensor<3> {
        let [b, l, dim] = patches.dims();
        let d = self.v_d.dims()[1];
        let centered = patches - self.mean.clone().reshape([1, 1, dim]);
        centered.reshape([b * l, dim]).matmul(self.v_d.clone()).reshape([b, l, d])
    }

    /// `x = z V_d^T + mu`.
    ///
    /// # Shapes
    /// - `z`: `[B, L, d]`; returns `[B, L, D]`
    pub fn decode(&self, z: Tensor<3>) -> Tensor<3> {
        let [b, l, d] = z.dims();
        let dim = self.mean.dims()[0];
        let x = z.reshape([b * l, d]).matmul(self.v_d.clone().transpose()).reshape([b, l, dim]);
        x + self.mean.clone().reshape([1, 1, dim])
    }

    /// Coordinates along the first `d` components of difference vectors (no mean): `e V_d`.
    ///
    /// # Shapes
    /// - `e`: `[B, L, D]`; returns `[B, L, d]`
    pub fn project(&self, e: Tensor<3>) -> Tensor<3> {
        let [b, l, dim] = e.dims();
        let d = self.v_d.dims()[1];
        e.reshape([b * l, dim]).matmul(self.v_d.clone()).reshape([b, l, d])
    }
}

/// Patch PCA as a [`super::Tokenizer`] on a device: `z = s V_d^T (x_p - mu)`, `x_p = V_d z / s + mu`.
#[derive(Debug, Clone)]
pub struct PcaTokenizer {
    pub tensors: PcaTensors,
    pub patch: usize,
    pub image: ImageShape,
    /// The latent scale `s`: 1, or `1 / sqrt(mean of the kept eigenvalues)` for unit variance.
    pub scale: f64,
}

impl PcaTokenizer {
    /// `pca` keeping `d` components for images of `image`, with latent scale `scale`.
    pub fn new(pca: &PatchPca, d: usize, unit: bool, image: ImageShape, device: &Device) -> Self {
        let scale = if unit {
            let mean_var = pca.eigenvalues[..d].iter().sum::<f64>() / d as f64;
            1.0 / mean_var.max(1e-12).sqrt()
        } else {
            1.0
        };
        PcaTokenizer { tensors: pca.tensors(d, device), patch: pca.patch, image, scale }
    }
}

impl super::Tokenizer for PcaTokenizer {
    fn patch(&self) -> usize {
        self.patch
    }

    fn latent_dim(&self) -> usize {
        self.tensors.v_d.dims()[1]
    }

    fn image(&self) -> ImageShape {
        self.image
    }

    fn encode(&self, x: Tensor<4>) -> Tensor<3> {
        let z = self.tensors.encode(crate::nn::patchify(x, self.patch)); // [B, L, d]
        if self.scale == 1.0 { z } else { z * self.scale }
    }

    fn decode(&self, z: Tensor<3>) -> Tensor<4> {
        let ImageShape { channels, height, width } = self.image;
        let z = if self.scale == 1.0 { z } else { z / self.scale };
        crate::nn::unpatchify(self.tensors.decode(z), self.patch, channels, height, width)
    }

    fn residual_basis(&self) -> Option<Tensor<2>> {
        Some(self.tensors.v_d.clone())
    }
}
