//! Frozen features for evaluation, computed once and cached in memory.
//!
//! The l-DAE probe protocol (paper §5): the clean image goes through the encoder conditioned on
//! a small timestep (`t = 10` of 1000), and its output tokens are pooled. Average pooling is the
//! paper's protocol; flattening the tokens keeps the spatial layout, which matters at small
//! scale. Raw pixels are the baseline every representation should beat.

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::{ImageSet, loader::ordered_batches};
use crate::models::DenoisingVit;
use crate::tokenizer::LatentCodec;

/// How encoder tokens become one vector per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// Global average over tokens, `[W]` (the paper's protocol).
    Avg,
    /// All tokens concatenated, `[L * W]`.
    Flat,
}

impl Pool {
    /// A short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Pool::Avg => "avg-pool",
            Pool::Flat => "flattened",
        }
    }
}

/// One feature vector per image, row-major `[N, dim]`.
#[derive(Debug, Clone)]
pub struct Features {
    pub data: Vec<f32>,
    pub dim: usize,
}

impl Features {
    /// The number of vectors.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim.max(1)
    }

    /// Whether there is no vector.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Raw pixels in `[-1, 1]` as features.
pub fn pixel_features(set: &ImageSet) -> Features {
    Features { data: set.images.iter().map(|&v| crate::data::to_unit(v)).collect(), dim: set.shape.numel() }
}

/// Encoder features of every image of `set` at timestep `t`, for each requested pooling; a
/// latent-space network reads the images' latents through `codec`.
///
/// Batches run concurrently, one per worker thread (burn's element-wise kernels are
/// single-threaded); the output order is the data set's.
pub fn encoder_features(
    model: &DenoisingVit,
    set: &ImageSet,
    t: usize,
    pools: &[Pool],
    batch: usize,
    codec: Option<&LatentCodec>,
    device: &Device,
) -> Vec<Features> {
    use rayon::prelude::*;

    let shape = set.shape;
    let encode_batch = |(images, labels): (Vec<f32>, Vec<u32>)| -> Vec<(usize, Vec<f32>)> {
        let b = labels.len();
        let x = Tensor::<4>::from_data(TensorData::new(images, [b, shape.channels, shape.height, shape.width]), device);
        let x = match codec {
            Some(codec) => codec.encode(x), // [B, d, H/p, W/p]
            None => x,
        };
        let tokens = model.encode(x, &vec![t; b]); // [B, L, W]
        let [_, l, w] = tokens.dims();
        pools
            .iter()
            .map(|pool| {
                let v: Tensor<2> = match pool {
                    Pool::Avg => tokens.clone().mean_dim(1).reshape([b, w]),
                    Pool::Flat => tokens.clone().reshape([b, l * w]),
                };
                (v.dims()[1], v.into_data().try_into_vec::<f32>().expect("f32 features"))
            })
            .collect()
    };
    let mut out: Vec<Features> = pools.iter().map(|_| Features { data: Vec::new(), dim: 0 }).collect();
    let mut batches = ordered_batches(set, batch).peekable();
    let workers = rayon::current_num_threads().max(1);
    while batches.peek().is_some() {
        let group: Vec<_> = batches.by_ref().take(workers).collect();
        for per_pool in group.into_par_iter().map(encode_batch).collect::<Vec<_>>() {
            for ((dim, data), f) in per_pool.into_iter().zip(out.iter_mut()) {
                f.dim = dim;
                f.data.extend(data);
            }
        }
    }
    out
}
