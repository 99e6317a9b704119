//! The l-DAE network: a plain ViT encoder-decoder made of DiT blocks with adaLN conditioned on
//! the timestep only (paper §4.1 and Fig. 1).
//!
//! `x_t -> patch embed + fixed 2-D sin-cos positions -> blocks[0..E] (the encoder) ->
//! blocks[E..N] (the decoder) -> final adaLN layer -> patches -> image`. The conditioning MLP
//! is `cond_width` wide, a quarter of the token width in the paper's setting. The encoder's
//! output tokens are the representation judged by the linear probe. No class label enters.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::data::ImageShape;
use crate::error::{Error, Result};
use crate::nn::{DitBlock, FinalLayer, LabelEmbedder, PatchEmbed, TimestepEmbedder, sincos_pos_embed_2d};
use crate::tokenizer::unpatchify;

/// Sizes of a [`DenoisingVit`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitConfig {
    /// Input and output image shape.
    pub image: ImageShape,
    /// Patch side `p`.
    pub patch: usize,
    /// Token width `W`.
    pub width: usize,
    /// Blocks in total.
    pub depth: usize,
    /// The first `encoder_depth` blocks are the encoder.
    pub encoder_depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP hidden width as a multiple of `W`.
    pub mlp_ratio: f64,
    /// Width of the timestep-conditioning MLP (the paper: `W / 4`).
    pub cond_width: usize,
    /// Sinusoidal timestep features (DiT: 256).
    pub freq_dim: usize,
    /// Classes of a class-conditional model (DiT); 0: the timestep is the only condition
    /// (l-DAE). Label `num_classes` is the null class.
    #[serde(default)]
    pub num_classes: usize,
}

impl VitConfig {
    /// Check every field; errors name it.
    pub fn validate(&self) -> Result<()> {
        let ImageShape { channels, height, width } = self.image;
        let positive = [
            ("model.patch", self.patch),
            ("model.width", self.width),
            ("model.depth", self.depth),
            ("model.heads", self.heads),
            ("model.cond_width", self.cond_width),
            ("model.freq_dim", self.freq_dim),
            ("model.image.channels", channels),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(Error::config(field, "must be positive"));
            }
        }
        if height % self.patch != 0 || width % self.patch != 0 {
            return Err(Error::config(
                "model.patch",
                format!("{} must divide the image size {height}x{width}", self.patch),
            ));
        }
        if !self.width.is_multiple_of(self.heads) {
            return Err(Error::config("model.heads", format!("{} must divide model.width {}", self.heads, self.width)));
        }
        if !self.width.is_multiple_of(4) {
            return Err(Error::config(
                "model.width",
                format!("{} must be divisible by 4 (2-D positional embedding)", self.width),
            ));
        }
        if self.encoder_depth == 0 || self.encoder_depth > self.depth {
            return Err(Error::config(
                "model.encoder_depth",
                format!("{} must be in 1..={}", self.encoder_depth, self.depth),
            ));
        }
        if !(self.mlp_ratio > 0.0 && self.mlp_ratio.is_finite()) {
            return Err(Error::config("model.mlp_ratio", "must be a positive number"));
        }
        Ok(())
    }

    /// Tokens per image `L`.
    pub fn tokens(&self) -> usize {
        (self.image.height / self.patch) * (self.image.width / self.patch)
    }

    /// Build the network on `device` (random init from the device's RNG).
    pub fn init(&self, device: &Device) -> DenoisingVit {
        let hidden = (self.width as f64 * self.mlp_ratio).round() as usize;
        let (gh, gw) = (self.image.height / self.patch, self.image.width / self.patch);
        DenoisingVit {
            patch_embed: PatchEmbed::new(self.patch, self.image.channels, self.width, device),
            pos_embed: sincos_pos_embed_2d(self.width, gh, gw, device),
            t_embed: TimestepEmbedder::new(self.freq_dim, self.cond_width, device),
            y_embed: (self.num_classes > 0).then(|| LabelEmbedder::new(self.num_classes, self.cond_width, device)),
            blocks: (0..self.depth)
                .map(|_| DitBlock::new(self.width, self.heads, hidden, self.cond_width, device))
                .collect(),
            final_layer: FinalLayer::new(
                self.width,
                self.patch * self.patch * self.image.channels,
                self.cond_width,
                device,
            ),
            encoder_depth: self.encoder_depth,
            patch: self.patch,
            image: [self.image.channels, self.image.height, self.image.width],
        }
    }
}

/// The denoising ViT.
#[derive(Module, Debug)]
pub struct DenoisingVit {
    pub patch_embed: PatchEmbed,
    /// Fixed 2-D sine-cosine positions, `[1, L, W]` (not trained, not saved).
    pub pos_embed: Tensor<3>,
    pub t_embed: TimestepEmbedder,
    /// Class embedding, added to the timestep embedding (class-conditional models only).
    pub y_embed: Option<LabelEmbedder>,
    pub blocks: Vec<DitBlock>,
    pub final_layer: FinalLayer,
    pub encoder_depth: usize,
    pub patch: usize,
    /// `[C, H, W]`.
    pub image: [usize; 3],
}

impl DenoisingVit {
    /// The conditioning vector: timestep embedding, plus the class embedding for a
    /// class-conditional model (the null class when `labels` is `None`). An unconditional
    /// model ignores `labels`.
    ///
    /// # Shapes
    /// - `t`, `labels`: `[B]`; returns `[B, cond]`
    fn condition(&self, t: &[usize], labels: Option<&[usize]>, device: &Device) -> Tensor<2> {
        let c = self.t_embed.forward(t, device);
        match &self.y_embed {
            None => c,
            Some(y) => {
                let null = vec![y.null_class(); t.len()];
                c + y.forward(labels.unwrap_or(&null), device)
            }
        }
    }

    /// Tokens and conditioning after the encoder blocks.
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]`; `t`, `labels`: `[B]`; returns (`[B, L, W]`, `[B, cond]`)
    fn run_encoder(&self, x: Tensor<4>, t: &[usize], labels: Option<&[usize]>) -> (Tensor<3>, Tensor<2>) {
        let device = x.device();
        let c = self.condition(t, labels, &device); // [B, cond]
        let mut h = self.patch_embed.forward(x) + self.pos_embed.clone(); // [B, L, W]
        for block in &self.blocks[..self.encoder_depth] {
            h = block.forward(h, c.clone());
        }
        (h, c)
    }

    /// The encoder's output tokens: the representation.
    ///
    /// # Shapes
    /// - `x`: `[B, C, H, W]`; `t`: `[B]`; returns `[B, L, W]`
    pub fn encode(&self, x: Tensor<4>, t: &[usize]) -> Tensor<3> {
        self.run_encoder(x, t, None).0
    }

    /// Predict the clean image from `x_t` (l-DAE; the timestep is the only condition).
    ///
    /// # Shapes
    /// - `x_t`: `[B, C, H, W]`; `t`: `[B]`; returns `[B, C, H, W]`
    pub fn forward(&self, x_t: Tensor<4>, t: &[usize]) -> Tensor<4> {
        self.forward_labelled(x_t, t, None)
    }

    /// The network's output (the target its objective sets: eps, x0 or v) for `x_t` at `t`,
    /// with class `labels` for a class-conditional model (`None`: the null class).
    ///
    /// # Shapes
    /// - `x_t`: `[B, C, H, W]`; `t`, `labels`: `[B]`; returns `[B, C, H, W]`
    pub fn forward_labelled(&self, x_t: Tensor<4>, t: &[usize], labels: Option<&[usize]>) -> Tensor<4> {
        let (mut h, c) = self.run_encoder(x_t, t, labels);
        for block in &self.blocks[self.encoder_depth..] {
            h = block.forward(h, c.clone());
        }
        let patches = self.final_layer.forward(h, c); // [B, L, p p C]
        let [ch, height, width] = self.image;
        unpatchify(patches, self.patch, ch, height, width)
    }
}
