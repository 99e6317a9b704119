//! The KL-regularised convolutional autoencoder of latent diffusion (Rombach et al. 2022,
//! `AutoencoderKL` in CompVis/latent-diffusion), the tokenizer DiT trains on and the first row
//! of the l-DAE paper's Table 1.
//!
//! ```text
//! encoder: x [B, C, H, W] -> conv3x3 -> per level i: res_blocks x ResBlock(ch * mult[i]),
//!          then a stride-2 conv (all but the last level) -> mid: ResBlock, attention, ResBlock
//!          -> GroupNorm, SiLU, conv3x3 -> [B, 2z, h, w] -> 1x1 "quant" conv -> (mean, logvar)
//! decoder: z [B, z, h, w] -> 1x1 "post-quant" conv -> conv3x3 -> mid -> per level, deepest
//!          first: res_blocks x ResBlock, then nearest upsampling + conv3x3 -> GroupNorm, SiLU,
//!          conv3x3 -> [B, C, H, W]
//! ```
//! The downsampling factor is `2^(levels - 1)`. Unlike latent diffusion's (which pads right and
//! bottom and so needs even sizes), each stride-2 conv pads one pixel all round, so a side `n`
//! becomes `ceil(n / 2)`, and the decoder upsamples to the mirrored sizes: any image size
//! decodes back to itself (28 -> 14 -> 7 -> 4 -> 7 -> 14 -> 28).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::tensor::activation::softmax;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::ImageShape;
use crate::error::{Error, Result};
use crate::nn::fused::conv2d;
use crate::nn::fused::group_norm;

/// Sizes of a [`ConvAutoencoder`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvAeConfig {
    /// The images it encodes.
    pub image: ImageShape,
    /// Base width `ch` (latent diffusion's KL-f8: 128).
    pub channels: usize,
    /// Width multiplier per level (KL-f8: `[1, 2, 4, 4]`, a factor 8).
    pub channel_mult: Vec<usize>,
    /// Residual blocks per level (KL-f8: 2).
    pub res_blocks: usize,
    /// Latent channels `z` (KL-f8: 4).
    pub z_channels: usize,
    /// GroupNorm groups (latent diffusion: 32); must divide every width.
    pub groups: usize,
}

impl ConvAeConfig {
    /// The downsampling factor `2^(levels - 1)`.
    pub fn stride(&self) -> usize {
        1 << (self.channel_mult.len().saturating_sub(1))
    }

    /// The spatial sizes `(h, w)` at every level, the image's first and the latent's last.
    pub fn level_sizes(&self) -> Vec<(usize, usize)> {
        let mut sizes = vec![(self.image.height, self.image.width)];
        for _ in 1..self.channel_mult.len() {
            let (h, w) = *sizes.last().expect("non-empty");
            sizes.push((h.div_ceil(2), w.div_ceil(2)));
        }
        sizes
    }

    /// The latent's shape `[z, h, w]`.
    pub fn latent_shape(&self) -> ImageShape {
        let (height, width) = *self.level_sizes().last().expect("non-empty");
        ImageShape { channels: self.z_channels, height, width }
    }

    /// Check every field; errors name `field.<key>`.
    pub fn validate(&self, field: &str) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::config(format!("{field}.{key}"), msg));
        if self.channels == 0 || self.z_channels == 0 || self.res_blocks == 0 {
            return bad("channels", "channels, z_channels and res_blocks must be positive".into());
        }
        if self.channel_mult.is_empty() || self.channel_mult.contains(&0) {
            return bad(
                "channel_mult",
                format!("{:?} must be a non-empty list of positive factors", self.channel_mult),
            );
        }
        if self.groups == 0 {
            return bad("groups", "must be positive".into());
        }
        for &m in &self.channel_mult {
            let Some(width) = self.channels.checked_mul(m) else {
                return bad("channel_mult", format!("{} x {m} channels overflows", self.channels));
            };
            if !width.is_multiple_of(self.groups) {
                return bad(
                    "groups",
                    format!("{} must divide every width (channels x mult = {})", self.groups, self.channels * m),
                );
            }
        }
        if self.image.channels == 0 || self.image.height == 0 || self.image.width == 0 {
            return bad("image", "must be a non-empty image shape".into());
        }
        Ok(())
    }

    /// The network, randomly initialised on `device`.
    pub fn init(&self, device: &Device) -> ConvAutoencoder {
        let widths: Vec<usize> = self.channel_mult.iter().map(|m| self.channels * m).collect();
        let g = self.groups;
        let top = *widths.last().expect("validated");
        let mut down = Vec::new();
        let mut w_in = self.channels;
        for (i, &w) in widths.iter().enumerate() {
            let blocks =
                (0..self.res_blocks).map(|k| ResBlock::new(if k == 0 { w_in } else { w }, w, g, device)).collect();
            let sample = (i + 1 < widths.len()).then(|| conv(w, w, 3, 2, device));
            down.push(Level { blocks, sample });
            w_in = w;
        }
        let mut up = Vec::new();
        let mut w_in = top;
        for (i, &w) in widths.iter().enumerate().rev() {
            let blocks =
                (0..self.res_blocks).map(|k| ResBlock::new(if k == 0 { w_in } else { w }, w, g, device)).collect();
            let sample = (i > 0).then(|| conv(w, w, 3, 1, device));
            up.push(Level { blocks, sample });
            w_in = w;
        }
        let z = self.z_channels;
        let c = self.image.channels;
        ConvAutoencoder {
            encoder: Encoder {
                conv_in: conv(c, self.channels, 3, 1, device),
                down,
                mid: Mid::new(top, g, device),
                norm_out: GroupNormConfig::new(g, top).init(device),
                conv_out: conv(top, 2 * z, 3, 1, device),
            },
            quant_conv: conv(2 * z, 2 * z, 1, 1, device),
            post_quant_conv: conv(z, z, 1, 1, device),
            decoder: Decoder {
                conv_in: conv(z, top, 3, 1, device),
                mid: Mid::new(top, g, device),
                up,
                norm_out: GroupNormConfig::new(g, self.channels * self.channel_mult[0]).init(device),
                conv_out: conv(self.channels * self.channel_mult[0], c, 3, 1, device),
            },
            sizes: self.level_sizes(),
        }
    }
}

/// A `k x k` conv with stride `s` and "same" padding `k / 2`.
fn conv(c_in: usize, c_out: usize, k: usize, s: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([s, s])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .init(device)
}

/// `GroupNorm -> SiLU -> conv3x3 -> GroupNorm -> SiLU -> conv3x3`, plus a 1x1 shortcut when the
/// width changes (latent diffusion's `ResnetBlock` without dropout or time embedding).
#[derive(Module, Debug)]
pub struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl ResBlock {
    fn new(c_in: usize, c_out: usize, groups: usize, device: &Device) -> Self {
        ResBlock {
            norm1: GroupNormConfig::new(groups, c_in).init(device),
            conv1: conv(c_in, c_out, 3, 1, device),
            norm2: GroupNormConfig::new(groups, c_out).init(device),
            conv2: conv(c_out, c_out, 3, 1, device),
            shortcut: (c_in != c_out).then(|| conv(c_in, c_out, 1, 1, device)),
        }
    }

    /// # Shapes
    /// - `x`: `[B, c_in, h, w]`; returns `[B, c_out, h, w]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = conv2d::apply(&self.conv1, group_norm(&self.norm1, x.clone(), true));
        let h = conv2d::apply(&self.conv2, group_norm(&self.norm2, h, true));
        let skip = match &self.shortcut {
            Some(s) => conv2d::apply(s, x),
            None => x,
        };
        skip + h
    }
}

/// Single-head self-attention over the positions of a feature map, with a residual
/// (latent diffusion's `AttnBlock`).
#[derive(Module, Debug)]
pub struct SpatialAttention {
    norm: GroupNorm,
    q: Conv2d,
    k: Conv2d,
    v: Conv2d,
    proj: Conv2d,
}

impl SpatialAttention {
    fn new(c: usize, groups: usize, device: &Device) -> Self {
        SpatialAttention {
            norm: GroupNormConfig::new(groups, c).init(device),
            q: conv(c, c, 1, 1, device),
            k: conv(c, c, 1, 1, device),
            v: conv(c, c, 1, 1, device),
            proj: conv(c, c, 1, 1, device),
        }
    }

    /// # Shapes
    /// - `x`: `[B, c, h, w]`; returns `[B, c, h, w]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let n = group_norm(&self.norm, x.clone(), false);
        let tokens = |t: Tensor<4>| t.reshape([b, c, h * w]).swap_dims(1, 2); // [B, hw, c]
        let q = tokens(conv2d::apply(&self.q, n.clone()));
        let k = tokens(conv2d::apply(&self.k, n.clone()));
        let v = tokens(conv2d::apply(&self.v, n));
        let attn = softmax(q.matmul(k.swap_dims(1, 2)) / (c as f64).sqrt(), 2); // [B, hw, hw]
        let out = attn.matmul(v).swap_dims(1, 2).reshape([b, c, h, w]);
        x + conv2d::apply(&self.proj, out)
    }
}

/// The middle of the encoder and of the decoder: `ResBlock -> attention -> ResBlock`.
#[derive(Module, Debug)]
pub struct Mid {
    block1: ResBlock,
    attn: SpatialAttention,
    block2: ResBlock,
}

impl Mid {
    fn new(c: usize, groups: usize, device: &Device) -> Self {
        Mid {
            block1: ResBlock::new(c, c, groups, device),
            attn: SpatialAttention::new(c, groups, device),
            block2: ResBlock::new(c, c, groups, device),
        }
    }

    /// # Shapes
    /// - `x`: `[B, c, h, w]`; returns `[B, c, h, w]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.block2.forward(self.attn.forward(self.block1.forward(x)))
    }
}

/// One resolution level: residual blocks, then a resampling conv (none at the end).
#[derive(Module, Debug)]
pub struct Level {
    blocks: Vec<ResBlock>,
    sample: Option<Conv2d>,
}

/// Image to the moments of the posterior.
#[derive(Module, Debug)]
pub struct Encoder {
    conv_in: Conv2d,
    down: Vec<Level>,
    mid: Mid,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

/// Latent to image.
#[derive(Module, Debug)]
pub struct Decoder {
    conv_in: Conv2d,
    mid: Mid,
    up: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

/// The diagonal Gaussian posterior `q(z | x)`.
#[derive(Debug, Clone)]
pub struct Posterior {
    /// `[B, z, h, w]`.
    pub mean: Tensor<4>,
    /// `log sigma^2`, clamped to `[-30, 20]` as latent diffusion does; `[B, z, h, w]`.
    pub logvar: Tensor<4>,
}

impl Posterior {
    /// The reparameterised sample `mean + exp(logvar / 2) * noise`.
    ///
    /// # Shapes
    /// - `noise`: `[B, z, h, w]`; returns `[B, z, h, w]`
    pub fn sample(&self, noise: Tensor<4>) -> Tensor<4> {
        self.mean.clone() + (self.logvar.clone() * 0.5).exp() * noise
    }

    /// `KL(q(z | x) || N(0, I))` summed over the latent, per image (latent diffusion's
    /// `DiagonalGaussianDistribution.kl`): `1/2 sum (mean^2 + sigma^2 - 1 - log sigma^2)`.
    ///
    /// # Shapes
    /// - returns `[B]`
    pub fn kl(&self) -> Tensor<1> {
        let [b, z, h, w] = self.mean.dims();
        let per = (self.mean.clone().square() + self.logvar.clone().exp() - self.logvar.clone() - 1.0) * 0.5;
        per.reshape([b, z * h * w]).sum_dim(1).reshape([b])
    }
}

/// The KL autoencoder.
#[derive(Module, Debug)]
pub struct ConvAutoencoder {
    pub encoder: Encoder,
    quant_conv: Conv2d,
    post_quant_conv: Conv2d,
    pub decoder: Decoder,
    /// The spatial size at every level (image first), so that the decoder inverts the
    /// encoder's rounding.
    sizes: Vec<(usize, usize)>,
}

impl ConvAutoencoder {
    /// The posterior of images `x` (in `[-1, 1]`).
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]`; returns moments `[B, z, h, w]`
    pub fn encode(&self, x: Tensor<4>) -> Posterior {
        let e = &self.encoder;
        let mut h = conv2d::apply(&e.conv_in, x);
        for level in &e.down {
            for block in &level.blocks {
                h = block.forward(h);
            }
            if let Some(down) = &level.sample {
                h = conv2d::apply(down, h);
            }
        }
        h = e.mid.forward(h);
        h = conv2d::apply(&e.conv_out, group_norm(&e.norm_out, h, true));
        let moments = conv2d::apply(&self.quant_conv, h); // [B, 2z, h, w]
        let z = moments.dims()[1] / 2;
        let mut halves = moments.split(z, 1);
        let logvar = halves.pop().expect("two halves").clamp(-30.0, 20.0);
        let mean = halves.pop().expect("two halves");
        Posterior { mean, logvar }
    }

    /// The features the decoder's last conv reads (what the adaptive GAN weight differentiates
    /// against), from latents `z`.
    ///
    /// # Shapes
    /// - `z`: `[B, z, h, w]`; returns `[B, ch * mult[0], H, W]`
    pub fn decode_features(&self, z: Tensor<4>) -> Tensor<4> {
        let d = &self.decoder;
        let mut h = conv2d::apply(&d.conv_in, conv2d::apply(&self.post_quant_conv, z));
        h = d.mid.forward(h);
        let levels = self.sizes.len();
        for (i, level) in d.up.iter().enumerate() {
            for block in &level.blocks {
                h = block.forward(h);
            }
            if let Some(sample) = &level.sample {
                let (hh, ww) = self.sizes[levels - 2 - i];
                let up = interpolate(h, InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([hh, ww]));
                h = conv2d::apply(sample, up);
            }
        }
        group_norm(&d.norm_out, h, true)
    }

    /// The weight of the encoder's first conv (for gradient checks).
    pub fn encoder_first_weight(&self) -> Tensor<4> {
        self.encoder.conv_in.weight.val()
    }

    /// The decoder's last conv.
    pub fn last_layer(&self) -> &Conv2d {
        &self.decoder.conv_out
    }

    /// Images of latents `z`.
    ///
    /// # Shapes
    /// - `z`: `[B, z, h, w]`; returns `[B, C, H, W]`
    pub fn decode(&self, z: Tensor<4>) -> Tensor<4> {
        conv2d::apply(&self.decoder.conv_out, self.decode_features(z))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(height: usize, width: usize, mult: Vec<usize>) -> ConvAeConfig {
        ConvAeConfig {
            image: ImageShape { channels: 1, height, width },
            channels: 8,
            channel_mult: mult,
            res_blocks: 1,
            z_channels: 3,
            groups: 4,
        }
    }

    #[test]
    fn encoder_and_decoder_shapes_hold_for_odd_sizes() {
        let device = Device::flex();
        for (h, w, mult, latent) in
            [(28, 28, vec![1, 2, 2], (7, 7)), (28, 28, vec![1, 1, 2, 2], (4, 4)), (13, 7, vec![1, 2], (7, 4))]
        {
            let cfg = tiny(h, w, mult);
            cfg.validate("tokenizer").unwrap();
            let ae = cfg.init(&device);
            let x = Tensor::<4>::random([2, 1, h, w], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
            let post = ae.encode(x);
            assert_eq!(post.mean.dims(), [2, 3, latent.0, latent.1]);
            assert_eq!(post.logvar.dims(), [2, 3, latent.0, latent.1]);
            let s = cfg.latent_shape();
            assert_eq!((s.channels, s.height, s.width), (3, latent.0, latent.1));
            assert_eq!(ae.decode(post.mean).dims(), [2, 1, h, w], "{h}x{w} decodes back to its size");
        }
    }

    #[test]
    fn kl_matches_its_closed_form_on_hand_values() {
        let device = Device::flex();
        // One image, one latent channel, 1x2 positions: mean (1, -2), logvar (0, ln 4).
        let mean = Tensor::<1>::from_floats([1.0, -2.0], &device).reshape([1, 1, 1, 2]);
        let logvar = Tensor::<1>::from_floats([0.0, 4f32.ln()], &device).reshape([1, 1, 1, 2]);
        let kl = Posterior { mean, logvar }.kl().into_data().try_into_vec::<f32>().unwrap();
        // 1/2 (1 + 1 - 1 - 0) + 1/2 (4 + 4 - 1 - ln 4) = 0.5 + 3.5 - ln 2
        let want = 0.5 + 3.5 - 2f64.ln();
        assert!((kl[0] as f64 - want).abs() < 1e-5, "{} vs {want}", kl[0]);
    }

    #[test]
    fn invalid_groups_are_named() {
        let mut cfg = tiny(28, 28, vec![1, 2]);
        cfg.groups = 3;
        let err = cfg.validate("tokenizer.model").unwrap_err().to_string();
        assert!(err.contains("tokenizer.model.groups"), "{err}");
    }
}
