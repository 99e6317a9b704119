//! The small image classifier whose features make the tokenizer's perceptual loss.
//!
//! Latent diffusion trains its autoencoder with LPIPS on VGG-16 features learnt from ImageNet
//! labels; the l-DAE paper's point about that loss (Table 1) is exactly that labels leak into
//! the tokenizer through it. ddmlab's equivalent is legitimate for the experiment at any scale:
//! a VGG-style network trained here on the data set's own labels (never the FID Inception,
//! which would tune the tokenizer to the metric).
//!
//! ```text
//! x [B, C, H, W] -> stage k (k = 0..): conv3x3 (widths[k]) ReLU conv3x3 ReLU -> feature k
//!   -> 2x2 max-pool (all but the last stage) -> global average -> linear -> logits [B, classes]
//! ```

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::nn::fused::conv2d;

/// Sizes of a [`Classifier`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    pub in_channels: usize,
    /// Width of every stage.
    pub widths: Vec<usize>,
    pub classes: usize,
}

impl ClassifierConfig {
    /// The network on `device`.
    pub fn init(&self, device: &Device) -> Classifier {
        let conv = |a: usize, b: usize| {
            Conv2dConfig::new([a, b], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device)
        };
        let mut stages = Vec::new();
        let mut c = self.in_channels;
        for &w in &self.widths {
            stages.push(Stage { conv1: conv(c, w), conv2: conv(w, w) });
            c = w;
        }
        Classifier {
            stages,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            head: LinearConfig::new(c, self.classes).init(device),
        }
    }
}

/// Two 3x3 convs with ReLU.
#[derive(Module, Debug)]
pub struct Stage {
    conv1: Conv2d,
    conv2: Conv2d,
}

/// The classifier.
#[derive(Module, Debug)]
pub struct Classifier {
    stages: Vec<Stage>,
    pool: MaxPool2d,
    head: Linear,
}

impl Classifier {
    /// The feature map after every stage (before its pooling).
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]`; returns one `[B, widths[k], H / 2^k, W / 2^k]` per stage
    pub fn features(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut out = Vec::with_capacity(self.stages.len());
        let mut h = x;
        for (k, stage) in self.stages.iter().enumerate() {
            if k > 0 {
                h = self.pool.forward(h);
            }
            h = relu(conv2d::apply(&stage.conv2, relu(conv2d::apply(&stage.conv1, h))));
            out.push(h.clone());
        }
        out
    }

    /// Class logits.
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]`; returns `[B, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let last = self.features(x).pop().expect("at least one stage");
        let [b, c, h, w] = last.dims();
        let pooled = last.reshape([b, c, h * w]).mean_dim(2).reshape([b, c]);
        self.head.forward(pooled)
    }
}

/// The perceptual distance of LPIPS with uniform layer weights ("LPIPS-baseline"): per stage,
/// features unit-normalised over channels, squared differences summed over channels and
/// averaged over positions; summed over stages. LPIPS's learnt per-channel weights come from
/// human similarity judgements, which ddmlab does not have.
///
/// # Shapes
/// - `a`, `b`: one `[B, c_k, h_k, w_k]` per stage; returns `[B]`
pub fn perceptual_distance(a: &[Tensor<4>], b: &[Tensor<4>]) -> Tensor<1> {
    let unit = |f: &Tensor<4>| {
        let norm = f.clone().square().sum_dim(1).sqrt() + 1e-10; // [B, 1, h, w]
        f.clone() / norm
    };
    let mut total: Option<Tensor<1>> = None;
    for (fa, fb) in a.iter().zip(b) {
        let [n, _, h, w] = fa.dims();
        let d = (unit(fa) - unit(fb)).square().sum_dim(1).reshape([n, h * w]).mean_dim(1).reshape([n]);
        total = Some(match total {
            Some(t) => t + d,
            None => d,
        });
    }
    total.expect("at least one stage")
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn perceptual_distance_on_hand_values() {
        let device = Device::flex();
        // One image, one stage of 2 channels at 1x2 positions.
        // a: position 0 = (3, 4) -> (0.6, 0.8); position 1 = (1, 0).
        // b: position 0 = (4, 3) -> (0.8, 0.6); position 1 = (2, 0) -> (1, 0).
        let a = Tensor::<4>::from_data(TensorData::new(vec![3.0f32, 1.0, 4.0, 0.0], [1, 2, 1, 2]), &device);
        let b = Tensor::<4>::from_data(TensorData::new(vec![4.0f32, 2.0, 3.0, 0.0], [1, 2, 1, 2]), &device);
        let d = perceptual_distance(std::slice::from_ref(&a), &[b]).into_data().try_into_vec::<f32>().unwrap();
        // position 0: 0.2^2 + 0.2^2 = 0.08; position 1: 0; mean 0.04
        assert!((d[0] - 0.04).abs() < 1e-6, "{}", d[0]);
        let same = perceptual_distance(std::slice::from_ref(&a), &[a.clone() * 5.0])
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert!(same[0].abs() < 1e-6, "scale-invariant per position: {}", same[0]);
    }

    #[test]
    fn features_halve_per_stage() {
        let device = Device::flex();
        let net = ClassifierConfig { in_channels: 1, widths: vec![4, 8, 16], classes: 10 }.init(&device);
        let x = Tensor::<4>::zeros([2, 1, 32, 32], &device);
        let dims: Vec<[usize; 4]> = net.features(x.clone()).iter().map(|f| f.dims()).collect();
        assert_eq!(dims, vec![[2, 4, 32, 32], [2, 8, 16, 16], [2, 16, 8, 8]]);
        assert_eq!(net.forward(x).dims(), [2, 10]);
    }
}
