//! The conv KL autoencoder as a tokenizer (Table 1 of the l-DAE paper; DiT's tokenizer).
//!
//! The encoder maps `[B, C, H, W]` to a latent `[B, z, h, w]` (stride `s`); one token is a
//! `cells x cells` block of latent positions, as DiT patchifies its VAE latent with patch 2:
//! `L = (h / cells)(w / cells)` tokens of `d = cells^2 z`, each covering `s cells` pixels a
//! side (the tokenizer's patch). `encode` is the posterior mean, `encode_sample` the
//! reparameterised sample DiT trains on, both times the scale (`1 / std` of the training
//! latents, as latent diffusion's `scale_factor`, when unit variance is asked for).
//!
//! The network is trained in its own run (`ddmlab tokenizer train`, `runs::tokenizer`);
//! the fitted tokenizer file keeps its weights (burnpack bytes), its config and the scale.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use rand_distr::{Distribution, StandardNormal};

use super::Tokenizer;
use super::store;
use crate::data::loader::step_rng;
use crate::data::{ImageSet, ImageShape, to_unit};
use crate::error::{Error, Result};
use crate::models::conv_ae::ConvAutoencoder;
use crate::nn::{patchify, unpatchify};
use crate::tokenizer::conv_config::TokenizerRunConfig;

/// A trained conv VAE on the host: its config, weights and latent scale.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedConvVae {
    pub config: TokenizerRunConfig,
    /// The autoencoder's burnpack record.
    pub weights: Vec<u8>,
    /// Latent cells per token side.
    pub cells: usize,
    /// The latent scale `s` (1, or `1 / std` of the training latents).
    pub scale: f64,
}

impl FittedConvVae {
    /// The network on `device` (weights loaded).
    pub fn network(&self, device: &Device, origin: &Path) -> Result<ConvAutoencoder> {
        let record =
            burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(self.weights.clone()))
                .map_err(|e| Error::format(origin, format!("tokenizer weights are not a burnpack record ({e})")))?;
        crate::nn::init::exclusive(|| self.config.model.init(device))
            .try_load_record(record)
            .map_err(|e| Error::format(origin, format!("tokenizer weights do not match its config ({e})")))
    }

    /// `1 / std` of posterior samples of the first `n` images of `set` (latent diffusion's
    /// `scale_factor = 1 / z.std()`), with a fixed noise draw.
    pub fn unit_scale(ae: &ConvAutoencoder, set: &ImageSet, n: usize, device: &Device) -> f64 {
        let shape = set.shape;
        let n = n.min(set.len()).max(1);
        let (mut sum, mut sq, mut count) = (0.0f64, 0.0f64, 0usize);
        for start in (0..n).step_by(100) {
            let b = (n - start).min(100);
            let pixels: Vec<f32> =
                set.images[start * shape.numel()..(start + b) * shape.numel()].iter().map(|&v| to_unit(v)).collect();
            let x =
                Tensor::<4>::from_data(TensorData::new(pixels, [b, shape.channels, shape.height, shape.width]), device);
            let posterior = ae.encode(x);
            let dims = posterior.mean.dims();
            let mut rng = step_rng(0, 8, start as u64);
            let noise: Vec<f32> =
                (0..dims.iter().product::<usize>()).map(|_| StandardNormal.sample(&mut rng)).collect();
            let z = posterior.sample(Tensor::<4>::from_data(TensorData::new(noise, dims), device));
            for v in z.into_data().try_into_vec::<f32>().expect("f32 latents") {
                sum += v as f64;
                sq += (v as f64) * (v as f64);
                count += 1;
            }
        }
        let mean = sum / count as f64;
        let std = (sq / count as f64 - mean * mean).max(0.0).sqrt();
        1.0 / std.max(1e-12)
    }

    /// Save to `path` (atomically): one safetensors file, the weights as a byte tensor.
    pub fn save(&self, path: &Path) -> Result<()> {
        store::save_bytes(
            path,
            "weights.burnpack",
            &self.weights,
            &[
                ("kind", "conv-vae".into()),
                ("config", self.config.to_toml()),
                ("cells", self.cells.to_string()),
                ("scale", format!("{:e}", self.scale)),
            ],
        )
    }

    /// Load from `path`; a file of another kind or a corrupt one is an error naming it.
    pub fn load(path: &Path) -> Result<Self> {
        let file = store::Loaded::read(path)?;
        let kind = file.text("kind")?;
        if kind != "conv-vae" {
            return Err(file.bad(format!("holds a `{kind}` tokenizer, expected conv-vae")));
        }
        let config = TokenizerRunConfig::from_toml(file.text("config")?, path)?;
        let scale: f64 = file.number("scale")?;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(file.bad(format!("metadata `scale` = {scale} must be positive")));
        }
        Ok(FittedConvVae { config, weights: file.bytes("weights.burnpack")?, cells: file.number("cells")?, scale })
    }

    /// On `device`, behind the tokenizer trait.
    ///
    /// The weights are constants (no gradient): a tokenizer is frozen, and a tracked weight
    /// shared by the data-parallel shards would merge their autodiff graphs (which burn runs
    /// under one lock, and can deadlock on).
    pub fn bind(&self, device: &Device, origin: &Path) -> Result<ConvVaeTokenizer> {
        Ok(ConvVaeTokenizer {
            ae: self.network(device, origin)?.freeze(),
            cells: self.cells,
            scale: self.scale,
            image: self.config.model.image,
            latent: self.config.model.latent_shape(),
            stride: self.config.model.stride(),
        })
    }
}

/// A conv VAE on a device.
#[derive(Debug, Clone)]
pub struct ConvVaeTokenizer {
    pub ae: ConvAutoencoder,
    pub cells: usize,
    pub scale: f64,
    pub image: ImageShape,
    /// The latent's `[z, h, w]`.
    pub latent: ImageShape,
    pub stride: usize,
}

impl ConvVaeTokenizer {
    fn to_tokens(&self, latent: Tensor<4>) -> Tensor<3> {
        patchify(latent, self.cells) * self.scale
    }

    fn to_latent(&self, tokens: Tensor<3>) -> Tensor<4> {
        let ImageShape { channels, height, width } = self.latent;
        unpatchify(tokens, self.cells, channels, height, width)
    }
}

impl Tokenizer for ConvVaeTokenizer {
    fn patch(&self) -> usize {
        self.stride * self.cells
    }

    fn latent_dim(&self) -> usize {
        self.cells * self.cells * self.latent.channels
    }

    fn image(&self) -> ImageShape {
        self.image
    }

    fn stochastic(&self) -> bool {
        true
    }

    fn encode(&self, x: Tensor<4>) -> Tensor<3> {
        self.to_tokens(self.ae.encode(x).mean)
    }

    fn encode_sample(&self, x: Tensor<4>, noise: Tensor<3>) -> Tensor<3> {
        let posterior = self.ae.encode(x);
        self.to_tokens(posterior.sample(self.to_latent(noise)))
    }

    fn decode(&self, z: Tensor<3>) -> Tensor<4> {
        self.ae.decode(self.to_latent(z / self.scale))
    }

    fn residual_basis(&self) -> Option<Tensor<2>> {
        None
    }

    /// The (scaled) latent itself, `[B, z, h, w]`.
    fn tokens_to_grid(&self, z: Tensor<3>) -> Tensor<4> {
        self.to_latent(z)
    }

    fn grid_to_tokens(&self, g: Tensor<4>) -> Tensor<3> {
        patchify(g, self.cells)
    }

    fn grid_shape(&self) -> ImageShape {
        self.latent
    }
}
