//! The PatchGAN discriminator of latent diffusion's autoencoder losses (pix2pix's
//! `NLayerDiscriminator`, Isola et al. 2017, as taming-transformers uses it).
//!
//! ```text
//! x [B, C, H, W] -> conv4x4 s2 (ndf) -> LeakyReLU 0.2
//!   -> per layer n = 1..layers-1: conv4x4 s2 (ndf * min(2^n, 8)), BatchNorm, LeakyReLU
//!   -> conv4x4 s1 (ndf * min(2^layers, 8)), BatchNorm, LeakyReLU -> conv4x4 s1 (1)
//!   -> logits [B, 1, h, w], one per receptive-field patch
//! ```
//! Convolutions pad 1 and initialise from `N(0, 0.02)`, BatchNorm scales from `N(1, 0.02)`
//! (`weights_init` of taming-transformers).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::fused::conv2d;
use crate::nn::leaky_relu;

/// Sizes of a [`PatchGan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchGanConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Width of the first layer `ndf` (taming: 64).
    pub channels: usize,
    /// Stride-2 layers (taming: 3).
    pub layers: usize,
}

impl PatchGanConfig {
    /// Check the sizes against images of side `min_side`; errors name `field.<key>`.
    pub fn validate(&self, min_side: usize, field: &str) -> Result<()> {
        if self.channels == 0 || self.layers == 0 {
            return Err(Error::config(
                format!("{field}.disc_layers"),
                "disc_channels and disc_layers must be positive",
            ));
        }
        // Each stride-2 conv4x4 p1 halves the side; the two stride-1 conv4x4 p1 take 1 each.
        let side = u32::try_from(self.layers).ok().and_then(|l| min_side.checked_shr(l)).unwrap_or(0);
        if side < 3 {
            return Err(Error::config(
                format!("{field}.disc_layers"),
                format!(
                    "{} stride-2 layers leave no patch of a {min_side}-pixel image (at most {})",
                    self.layers,
                    max_layers(min_side)
                ),
            ));
        }
        Ok(())
    }

    /// The discriminator on `device`.
    pub fn init(&self, device: &Device) -> PatchGan {
        let ndf = self.channels;
        let width = |n: usize| ndf * (1usize << n.min(3));
        let mut blocks = vec![Block { conv: conv(self.in_channels, ndf, 2, true, device), norm: None }];
        for n in 1..self.layers {
            blocks
                .push(Block { conv: conv(width(n - 1), width(n), 2, false, device), norm: Some(bn(width(n), device)) });
        }
        let last = self.layers;
        blocks.push(Block {
            conv: conv(width(last - 1), width(last), 1, false, device),
            norm: Some(bn(width(last), device)),
        });
        PatchGan { blocks, out: conv(width(last), 1, 1, true, device) }
    }
}

fn max_layers(side: usize) -> usize {
    let (mut s, mut n) = (side, 0);
    while s / 2 >= 3 {
        s /= 2;
        n += 1;
    }
    n
}

fn conv(c_in: usize, c_out: usize, stride: usize, bias: bool, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [4, 4])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(bias)
        .with_initializer(Initializer::Normal { mean: 0.0, std: 0.02 })
        .init(device)
}

fn bn(c: usize, device: &Device) -> BatchNorm {
    let mut norm = BatchNormConfig::new(c).init(device);
    // `set_require_grad`: a tensor drawn afresh is not a trained leaf by itself.
    norm.gamma = norm.gamma.map(|g| {
        let trained = g.is_require_grad();
        Tensor::<1>::random([c], burn::tensor::Distribution::Normal(1.0, 0.02), &g.device()).set_require_grad(trained)
    });
    norm
}

/// Conv, optional BatchNorm, LeakyReLU 0.2.
#[derive(Module, Debug)]
pub struct Block {
    conv: Conv2d,
    norm: Option<BatchNorm>,
}

/// The discriminator.
#[derive(Module, Debug)]
pub struct PatchGan {
    blocks: Vec<Block>,
    out: Conv2d,
}

impl PatchGan {
    /// Logits of "real" per patch.
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]`; returns `[B, 1, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x;
        for block in &self.blocks {
            h = conv2d::apply(&block.conv, h);
            if let Some(norm) = &block.norm {
                h = norm.forward(h);
            }
            h = leaky_relu::leaky_relu(h, 0.2);
        }
        conv2d::apply(&self.out, h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_cover_patches_and_too_many_layers_are_named() {
        let device = Device::flex();
        let cfg = PatchGanConfig { in_channels: 1, channels: 8, layers: 2 };
        cfg.validate(32, "tokenizer.loss").unwrap();
        let d = cfg.init(&device);
        let x = Tensor::<4>::zeros([3, 1, 32, 32], &device);
        // 32 -> 16 -> 8 (stride 2) -> 7 -> 6 (stride 1, kernel 4, pad 1)
        assert_eq!(d.forward(x).dims(), [3, 1, 6, 6]);
        let err = PatchGanConfig { in_channels: 1, channels: 8, layers: 4 }.validate(28, "tokenizer.loss").unwrap_err();
        assert!(err.to_string().contains("tokenizer.loss.disc_layers"), "{err}");
    }

    /// Every trained tensor gets a gradient from the logits: 4 conv weights, 2 conv biases and
    /// each BatchNorm's scale and shift (2 x 2). The BatchNorm scale, drawn afresh at init, once
    /// was a constant (it was never trained).
    #[test]
    fn every_weight_is_trained() {
        struct Count<'a>(&'a burn::optim::GradientsParams, usize);
        impl burn::module::ModuleVisitor for Count<'_> {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                self.1 += usize::from(self.0.get::<D>(param.id).is_some());
            }
        }
        let device = Device::flex().autodiff();
        let d =
            crate::nn::init::seeded(&device, 0, |d| PatchGanConfig { in_channels: 1, channels: 4, layers: 2 }.init(d));
        let x = Tensor::<4>::random([2, 1, 32, 32], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let loss = d.forward(x).square().mean();
        let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &d);
        let mut count = Count(&grads, 0);
        d.visit(&mut count);
        assert_eq!(count.1, 10);
    }

    /// Found by `readers_never_panic`: `disc_layers = 18446744073709551615` in a tokenizer
    /// config halved the side that many times (a hang) before saying it was too many.
    #[test]
    fn a_huge_layer_count_is_rejected_at_once() {
        for layers in [64, usize::MAX] {
            let err = PatchGanConfig { in_channels: 1, channels: 8, layers }.validate(28, "loss").unwrap_err();
            assert!(err.to_string().contains("loss.disc_layers"), "{err}");
        }
        PatchGanConfig { in_channels: 1, channels: 8, layers: 3 }.validate(28, "loss").unwrap();
    }
}
