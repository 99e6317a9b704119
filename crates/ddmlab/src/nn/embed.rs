//! Embeddings: patches to tokens, timesteps to vectors, and fixed 2-D sine-cosine positions.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::init::{normal_linear, xavier_linear};
use super::linear::linear_tokens;
use super::patchify;
use super::silu::silu;

/// A `p x p` stride-`p` convolution written as patchify + Linear (the same map as DiT's
/// `PatchEmbed` convolution, Xavier-initialised on its flattened weight).
#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: Linear,
    pub patch: usize,
}

impl PatchEmbed {
    /// Patches of `patch x patch x channels` to `width`-dim tokens.
    pub fn new(patch: usize, channels: usize, width: usize, device: &Device) -> Self {
        PatchEmbed { proj: xavier_linear(patch * patch * channels, width, device), patch }
    }

    /// Tokens of `in_dim` values (patch vectors or latents) to `width`-dim tokens; `patch` is
    /// the grid's patch side, kept for reference.
    pub fn from_width(in_dim: usize, patch: usize, width: usize, device: &Device) -> Self {
        PatchEmbed { proj: xavier_linear(in_dim, width, device), patch }
    }

    /// # Shapes
    /// - `x`: `[B, C, H, W]`; returns `[B, L, width]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        self.forward_tokens(patchify(x, self.patch))
    }

    /// # Shapes
    /// - `tokens`: `[B, L, in]`; returns `[B, L, width]`
    pub fn forward_tokens(&self, tokens: Tensor<3>) -> Tensor<3> {
        linear_tokens(&self.proj, tokens)
    }
}

/// DiT's `TimestepEmbedder`: sinusoidal features of `t` through a two-layer SiLU MLP.
#[derive(Module, Debug)]
pub struct TimestepEmbedder {
    pub fc1: Linear,
    pub fc2: Linear,
    pub freq_dim: usize,
}

impl TimestepEmbedder {
    /// `freq_dim` sinusoidal features (DiT: 256) to a `width`-dim vector.
    pub fn new(freq_dim: usize, width: usize, device: &Device) -> Self {
        TimestepEmbedder {
            fc1: normal_linear(freq_dim, width, 0.02, device),
            fc2: normal_linear(width, width, 0.02, device),
            freq_dim,
        }
    }

    /// # Shapes
    /// - `t`: `[B]` integer timesteps (host); returns `[B, width]`
    pub fn forward(&self, t: &[usize], device: &Device) -> Tensor<2> {
        let freqs = timestep_features(t, self.freq_dim);
        let f = Tensor::<2>::from_data(TensorData::new(freqs, [t.len(), self.freq_dim]), device);
        self.fc2.forward(silu(self.fc1.forward(f)))
    }
}

/// DiT's `LabelEmbedder`: a table of `num_classes + 1` vectors, the last one the learned null
/// class that classifier-free guidance contrasts with (label dropout trains it).
#[derive(Module, Debug)]
pub struct LabelEmbedder {
    pub table: Embedding,
    pub num_classes: usize,
}

impl LabelEmbedder {
    /// `num_classes` classes plus the null class, `width`-dim vectors, N(0, 0.02) as DiT.
    pub fn new(num_classes: usize, width: usize, device: &Device) -> Self {
        let table = EmbeddingConfig::new(num_classes + 1, width)
            .with_initializer(Initializer::Normal { mean: 0.0, std: 0.02 })
            .init(device);
        LabelEmbedder { table, num_classes }
    }

    /// The null class's label.
    pub fn null_class(&self) -> usize {
        self.num_classes
    }

    /// # Shapes
    /// - `labels`: `[B]` in `0..=num_classes` (host); returns `[B, width]`
    pub fn forward(&self, labels: &[usize], device: &Device) -> Tensor<2> {
        let b = labels.len();
        let ids: Vec<i64> = labels.iter().map(|&y| y.min(self.num_classes) as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, 1]), device);
        let [_, w] = self.table.weight.val().dims();
        self.table.forward(ids).reshape([b, w])
    }
}

/// `[cos(t w_k), sin(t w_k)]` with `w_k = 10000^(-k / half)`, computed in f64; `[B * dim]`.
pub fn timestep_features(t: &[usize], dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let mut out = Vec::with_capacity(t.len() * dim);
    for &ti in t {
        let args: Vec<f64> = (0..half).map(|k| ti as f64 * (-(10000f64.ln()) * k as f64 / half as f64).exp()).collect();
        out.extend(args.iter().map(|a| a.cos() as f32));
        out.extend(args.iter().map(|a| a.sin() as f32));
        if dim % 2 == 1 {
            out.push(0.0);
        }
    }
    out
}

/// The fixed 2-D sine-cosine position table of MAE/DiT for a `gh x gw` grid; `[1, L, width]`.
pub fn sincos_pos_embed_2d(width: usize, gh: usize, gw: usize, device: &Device) -> Tensor<3> {
    assert!(width.is_multiple_of(4), "positional embedding width {width} must be divisible by 4");
    let quarter = width / 4;
    let omega: Vec<f64> = (0..quarter).map(|k| 1.0 / 10000f64.powf(k as f64 / quarter as f64)).collect();
    let mut table = Vec::with_capacity(gh * gw * width);
    for y in 0..gh {
        for x in 0..gw {
            // First half encodes the column (MAE's grid[0] is w), second half the row.
            for pos in [x as f64, y as f64] {
                table.extend(omega.iter().map(|w| (pos * w).sin() as f32));
                table.extend(omega.iter().map(|w| (pos * w).cos() as f32));
            }
        }
    }
    Tensor::from_data(TensorData::new(table, [1, gh * gw, width]), device)
}
