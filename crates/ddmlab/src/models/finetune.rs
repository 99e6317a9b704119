//! A pretrained encoder with a classification head, as MAE fine-tunes a ViT
//! (`models_vit.py` with `global_pool`): the encoder's output tokens averaged, a LayerNorm
//! (`fc_norm`), a linear head (its weights drawn with std 2e-5 as MAE's `trunc_normal_(std=2e-5)`,
//! the bias zero).

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor};

use super::DenoisingVit;
use crate::nn::init::normal_linear;

/// The denoising ViT read as an encoder, and its classifier.
#[derive(Module, Debug)]
pub struct Finetuned<E: Module = DenoisingVit> {
    pub encoder: E,
    pub norm: LayerNorm,
    pub head: Linear,
}

impl<E: Module> Finetuned<E> {
    /// `encoder` with a fresh head for `classes` classes on its width `width`.
    pub fn new(encoder: E, width: usize, classes: usize, device: &Device) -> Self {
        Finetuned {
            encoder,
            norm: LayerNormConfig::new(width).init(device),
            head: normal_linear(width, classes, 2e-5, device),
        }
    }

    /// Class logits of the encoder's output tokens: average over tokens, norm, head.
    ///
    /// # Shapes
    /// - `tokens`: `[B, L, W]`; returns `[B, K]`
    pub fn classify(&self, tokens: Tensor<3>) -> Tensor<2> {
        let [b, _, w] = tokens.dims();
        let pooled = tokens.mean_dim(1).reshape([b, w]); // [B, W]
        self.head.forward(self.norm.forward(pooled))
    }
}
