//! Fine-tuning's objective: the pretrained encoder as the probe reads it (a denoising ViT's
//! first `encoder_depth` blocks at the probe's timestep on the input its objective feeds it; a
//! MAR / MAE encoder's blocks on the tokenizer's latent, nothing masked, the null class in its
//! buffer) and a classification head trained end to end by cross-entropy with label smoothing (MAE's `main_finetune.py`, timm's
//! `LabelSmoothingCrossEntropy`). The training step, its layer-wise learning-rate decay
//! (`optim::layer_decay`) and the run driver are pretraining's.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};

use super::step::{Network, Objective};
use crate::config::RunConfig;
use crate::diffusion::denoise::InputSpace;
use crate::models::DenoisingVit;
use crate::models::finetune::Finetuned;
use crate::models::mar::Mar;
use crate::nn::patchify;
use crate::tokenizer::{FittedTokenizer, Tokenizer};

/// A pretrained network read as the encoder of a fine-tuning run.
pub trait FinetuneEncoder: Network + burn::module::ModuleDisplay {
    /// The width of its output tokens in a run of `config`.
    fn width(config: &RunConfig) -> usize;

    /// The blocks it reads in a run of `config` (every encoder block of a MAR / MAE).
    fn depth(config: &RunConfig) -> usize;

    /// The encoder's output tokens for clean images `x0`.
    ///
    /// # Shapes
    /// - `x0`: `[B, C, H, W]`; returns `[B, L, W]`
    fn tokens(&self, objective: &ClassifyObjective, x0: Tensor<4>) -> Tensor<3>;
}

impl FinetuneEncoder for DenoisingVit {
    fn width(config: &RunConfig) -> usize {
        config.model.width
    }

    fn depth(config: &RunConfig) -> usize {
        config.model.encoder_depth
    }

    fn tokens(&self, o: &ClassifyObjective, x0: Tensor<4>) -> Tensor<3> {
        let b = x0.dims()[0];
        let tokens = match o.input {
            InputSpace::Latent => o.tokenizer.encode(x0),
            InputSpace::Image => patchify(x0, o.tokenizer.patch()),
        }; // [B, L, in]
        self.encode_to(tokens, &vec![o.t; b], o.depth)
    }
}

impl FinetuneEncoder for Mar {
    fn width(config: &RunConfig) -> usize {
        config.mar_network().expect("a MAR run").width
    }

    fn depth(config: &RunConfig) -> usize {
        config.mar_network().expect("a MAR run").enc_depth
    }

    fn tokens(&self, o: &ClassifyObjective, x0: Tensor<4>) -> Tensor<3> {
        let b = x0.dims()[0];
        self.encode(o.tokenizer.encode(x0), &vec![o.null_class; b], o.depth)
    }
}

impl<E: FinetuneEncoder> Network for Finetuned<E> {
    /// # Panics
    /// On a config without `[finetune]` (runs dispatch on it before building a network).
    fn build(config: &RunConfig, device: &Device) -> Self {
        let classes = config.finetune.as_ref().expect("a fine-tuning run has a [finetune] section").classes;
        Finetuned::new(E::build(config, device), E::width(config), classes, device)
    }
}

/// The classification objective of a fine-tuning run.
#[derive(Debug)]
pub struct ClassifyObjective {
    /// The pretrained run's tokenizer on the training device.
    pub tokenizer: Box<dyn Tokenizer>,
    /// What the encoder reads: the tokenizer's latent or the image's patches.
    pub input: InputSpace,
    /// The timestep the encoder is conditioned on (the probe's, `denoise.probe_t`).
    pub t: usize,
    /// Encoder blocks read.
    pub depth: usize,
    /// A MAR / MAE encoder's null class (its buffer's label).
    pub null_class: usize,
    pub label_smoothing: f64,
}

/// A batch's draws: its labels (fine-tuning draws nothing else).
#[derive(Debug, Clone)]
pub struct ClassifyDraws {
    pub labels: Vec<usize>,
}

impl ClassifyObjective {
    /// The objective of a fine-tuning run (`config.finetune` set) of encoder `E` with the
    /// pretrained run's fitted tokenizer on `device`.
    pub fn new<E: FinetuneEncoder>(config: &RunConfig, tokenizer: &FittedTokenizer, device: &Device) -> Self {
        let f = config.finetune.as_ref().expect("a fine-tuning objective needs a [finetune] section");
        ClassifyObjective {
            tokenizer: tokenizer.bind(config.model.image, device),
            input: config.denoise.input,
            t: config.denoise.probe_t,
            depth: E::depth(config),
            null_class: config.mar_network().map_or(0, |n| n.num_classes),
            label_smoothing: f.label_smoothing,
        }
    }

    /// The class logits of clean images `x0`.
    ///
    /// # Shapes
    /// - `x0`: `[B, C, H, W]`; returns `[B, K]`
    pub fn logits<E: FinetuneEncoder>(&self, model: &Finetuned<E>, x0: Tensor<4>) -> Tensor<2> {
        model.classify(model.encoder.tokens(self, x0))
    }
}

/// The mean cross-entropy of `logits` against `labels` smoothed by `eps`: the target puts
/// `1 - eps + eps / K` on the label and `eps / K` on every other class.
///
/// # Shapes
/// - `logits`: `[B, K]`; `labels`: `[B]`; returns `[1]`
pub fn smoothed_cross_entropy(logits: Tensor<2>, labels: &[usize], eps: f64) -> Tensor<1> {
    let [b, k] = logits.dims();
    let device = logits.device();
    let off = (eps / k as f64) as f32;
    let target: Vec<f32> =
        (0..b * k).map(|i| if i % k == labels[i / k] { 1.0 - eps as f32 + off } else { off }).collect();
    let target = Tensor::<2>::from_data(TensorData::new(target, [b, k]), &device);
    (log_softmax(logits, 1) * target).sum_dim(1).mean().neg()
}

impl<E: FinetuneEncoder> Objective<Finetuned<E>> for ClassifyObjective {
    type Draws = ClassifyDraws;

    fn draw(&self, _seed: u64, _step: usize, labels: &[u32]) -> ClassifyDraws {
        ClassifyDraws { labels: labels.iter().map(|&y| y as usize).collect() }
    }

    fn slice(&self, draws: &ClassifyDraws, lo: usize, hi: usize) -> ClassifyDraws {
        ClassifyDraws { labels: draws.labels[lo..hi].to_vec() }
    }

    fn loss(&self, model: &Finetuned<E>, x0: Tensor<4>, draws: &ClassifyDraws) -> Tensor<1> {
        smoothed_cross_entropy(self.logits(model, x0), &draws.labels, self.label_smoothing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against values computed by hand: logits (2, 0, -1) with label 0 and (0, 0, 0) with
    /// label 2, smoothing 0.3 over 3 classes.
    #[test]
    fn the_smoothed_cross_entropy_is_the_hand_computed_one() {
        let device = Device::flex();
        let logits = Tensor::<2>::from_data([[2.0f32, 0.0, -1.0], [0.0, 0.0, 0.0]], &device);
        let got: f32 = smoothed_cross_entropy(logits.clone(), &[0, 2], 0.3).into_scalar();
        // Row 1: log-sum-exp = ln(e^2 + 1 + e^-1); target (0.8, 0.1, 0.1).
        let lse = (2f64.exp() + 1.0 + (-1f64).exp()).ln();
        let row1 = -(0.8 * (2.0 - lse) + 0.1 * (0.0 - lse) + 0.1 * (-1.0 - lse));
        // Row 2: every log-probability is -ln 3, the target sums to 1.
        let row2 = 3f64.ln();
        assert!((got as f64 - (row1 + row2) / 2.0).abs() < 1e-6, "{got} vs {}", (row1 + row2) / 2.0);
        // No smoothing: the plain negative log-likelihood of the label.
        let plain: f32 = smoothed_cross_entropy(logits, &[0, 2], 0.0).into_scalar();
        assert!((plain as f64 - ((lse - 2.0) + 3f64.ln()) / 2.0).abs() < 1e-6);
    }
}
