//! Frozen features for evaluation, computed once and cached in memory.
//!
//! The l-DAE probe protocol (paper §5): the clean image goes through the encoder conditioned on
//! a small timestep (`t = 10` of 1000), and its output tokens are pooled. Average pooling is the
//! paper's protocol; flattening the tokens keeps the spatial layout, which matters at small
//! scale. Raw pixels are the baseline every representation should beat.
//!
//! The encoder reads what its objective feeds it: the image's patches, or its tokenizer latent.
//! The paper's probe ablations change the timestep, the number of blocks read as the encoder,
//! and whether the input is noised at that timestep (`FeatureSpec`).
//!
//! A MAR or MAE run's encoder ([`Encoder::Mar`]) reads the tokenizer's latent of the clean
//! image with nothing masked and the null class in its buffer.

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::data::{ImageSet, loader::ordered_batches};
use crate::diffusion::denoise::{InputSpace, NoiseSpace};
use crate::models::DenoisingVit;
use crate::models::mar::Mar;
use crate::nn::patchify;
use crate::tokenizer::Tokenizer;

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

/// What the encoder reads and how deep it is read.
#[derive(Clone, Copy)]
pub struct FeatureSpec<'a> {
    /// The run's tokenizer (the network reads its latent, or the image's patches).
    pub tokenizer: &'a dyn Tokenizer,
    pub input: InputSpace,
    pub noise_space: NoiseSpace,
    /// The timestep the encoder is conditioned on.
    pub t: usize,
    /// `(gamma_t, sigma_t)` to noise the input at `t` as in training (seeded per image); `None`:
    /// the clean input (the paper's protocol).
    pub noise: Option<(f64, f64)>,
    /// Blocks read as the encoder.
    pub depth: usize,
    pub seed: u64,
}

impl FeatureSpec<'_> {
    /// The network's input tokens for clean images `x` (batch `index` of the set, which seeds
    /// the noise of a noisy probe).
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]`; returns `[B, L, in]`
    pub fn tokens(&self, x: Tensor<4>, index: usize) -> Tensor<3> {
        let tok = self.tokenizer;
        let p = tok.patch();
        let Some((g, s)) = self.noise else {
            return match self.input {
                InputSpace::Latent => tok.encode(x),
                InputSpace::Image => patchify(x, p),
            };
        };
        let device = x.device();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9));
        let mut gaussian = |dims: [usize; 3]| {
            let n = dims.iter().product();
            let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
            Tensor::<3>::from_data(TensorData::new(v, dims), &device)
        };
        match self.noise_space {
            NoiseSpace::Latent => {
                let z = tok.encode(x);
                let z_t = z.clone() * g + gaussian(z.dims()) * s;
                match self.input {
                    InputSpace::Latent => z_t,
                    InputSpace::Image => patchify(tok.decode(z_t), p),
                }
            }
            NoiseSpace::Pixels => {
                let xp = patchify(x, p);
                xp.clone() * g + gaussian(xp.dims()) * s
            }
        }
    }
}

/// A frozen encoder the probe reads.
#[derive(Clone, Copy)]
pub enum Encoder<'a> {
    /// A denoising ViT's first `spec.depth` blocks on the input `spec` makes, at `spec.t`.
    Vit(&'a DenoisingVit, FeatureSpec<'a>),
    /// A MAR / MAE encoder's first `depth` blocks on the tokenizer's latent.
    Mar { model: &'a Mar, tokenizer: &'a dyn Tokenizer, depth: usize, null_class: usize },
}

impl Encoder<'_> {
    /// The output tokens for clean images `x` (batch `index` of the set, which seeds the noise
    /// of a noisy probe).
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]`; returns `[B, L, W]`
    pub fn tokens(&self, x: Tensor<4>, index: usize) -> Tensor<3> {
        let b = x.dims()[0];
        match self {
            Encoder::Vit(model, spec) => model.encode_to(spec.tokens(x, index), &vec![spec.t; b], spec.depth),
            Encoder::Mar { model, tokenizer, depth, null_class } => {
                model.encode(tokenizer.encode(x), &vec![*null_class; b], *depth)
            }
        }
    }

    /// The same encoder with its probe noise seeded apart (for the test split).
    pub fn reseeded(&self, salt: u64) -> Self {
        match *self {
            Encoder::Vit(model, spec) => Encoder::Vit(model, FeatureSpec { seed: spec.seed ^ salt, ..spec }),
            other => other,
        }
    }
}

/// Encoder features of every image of `set`, for each requested pooling.
///
/// Batches run concurrently, one per worker thread (burn's element-wise kernels are
/// single-threaded); the output order is the data set's.
pub fn encoder_features(
    encoder: &Encoder<'_>,
    set: &ImageSet,
    pools: &[Pool],
    batch: usize,
    device: &Device,
) -> Vec<Features> {
    let shape = set.shape;
    let encode_batch = |(index, (images, labels)): (usize, (Vec<f32>, Vec<u32>))| -> Vec<(usize, Vec<f32>)> {
        let b = labels.len();
        let x = Tensor::<4>::from_data(TensorData::new(images, [b, shape.channels, shape.height, shape.width]), device);
        let tokens = encoder.tokens(x, index); // [B, L, W]
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
    for per_pool in crate::parallel::map_grouped(device, ordered_batches(set, batch).enumerate(), &encode_batch) {
        for ((dim, data), f) in per_pool.into_iter().zip(out.iter_mut()) {
            f.dim = dim;
            f.data.extend(data);
        }
    }
    out
}
