//! The denoising network of every objective: a plain ViT encoder-decoder made of DiT blocks
//! with adaLN conditioned on the timestep (l-DAE paper §4.1 and Fig. 1), and on the class for
//! a class-conditional DiT.
//!
//! `tokens [B, L, in] -> linear embed + fixed 2-D sin-cos positions -> blocks[0..E] (the
//! encoder) -> blocks[E..N] (the decoder) -> final adaLN layer -> [B, L, out]`. The tokens are
//! whatever the objective feeds it: patchified images (`in = p p C`) or a tokenizer's latents
//! (`in = d`); the output width is its own setting (`d` for a latent target, `p p C` for an
//! image). The conditioning MLP is `cond_width` wide, a quarter of the token width in l-DAE's
//! setting. The encoder's output tokens are the representation judged by the linear probe.
//!
//! With `long_skip` (U-ViT, Bao et al. 2023: the change that matters most for a ViT diffusion
//! model at small resolution), the first `N / 2` blocks are "in" blocks and the last `N / 2`
//! "out" blocks (a middle one between them for odd `N`); out block `j` first maps
//! `concat(h, h_in[N/2 - 1 - j])` back to `W` with its own linear layer, so that every out
//! block reads the matching in block's output, as a U-Net's decoder reads its encoder.
//!
//! With `conv_head = K` (U-ViT's extra 3x3 conv after the last linear, widened to `K`
//! channels), the final layer emits `p p K` values per token; they are laid out as a
//! `[B, K, H, W]` image and a 3x3 conv maps it to the `C` output channels, so that every output
//! pixel reads its neighbours across patch borders (a linear head draws each `p x p` patch on
//! its own, and the seams show in early samples). The conv starts at zero, so the model's output
//! starts at zero as adaLN-Zero's does; the linear before it starts at Xavier instead of zero,
//! else neither layer would receive a gradient.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use crate::data::ImageShape;
use crate::error::{Error, Result};
use crate::nn::fused::conv2d;
use crate::nn::gelu::GeluKind;
use crate::nn::init::xavier_linear;
use crate::nn::linear::linear_tokens;
use crate::nn::{DitBlock, FinalLayer, LabelEmbedder, PatchEmbed, TimestepEmbedder, sincos_pos_embed_2d};
use crate::nn::{patchify, unpatchify};

/// Sizes of a [`DenoisingVit`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitConfig {
    /// The data's image shape `[C, H, W]`.
    pub image: ImageShape,
    /// Patch side `p`: one token per `p x p` patch, `L = (H/p)(W/p)`.
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
    /// The MLPs' GELU: `erf` (exact, the default) or `tanh` (DiT's approximation).
    #[serde(default, skip_serializing_if = "GeluKind::is_erf")]
    pub gelu: GeluKind,
    /// Token input width (default `p p C`); a run sets it from its objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_dim: Option<usize>,
    /// Token output width (default `p p C`); a run sets it from its objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_dim: Option<usize>,
    /// U-ViT's long skip connections between the first and the last `depth / 2` blocks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub long_skip: bool,
    /// Channels `K` of U-ViT's 3x3 conv head on the output image (0: a linear head, as DiT).
    /// The output must be the image's patches (`out = p p C`).
    #[serde(default, skip_serializing_if = "crate::settings::is_zero")]
    pub conv_head: usize,
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
        if self.in_dim == Some(0) || self.out_dim == Some(0) {
            return Err(Error::config("model.in_dim", "token widths must be positive"));
        }
        if !(self.mlp_ratio > 0.0 && self.mlp_ratio.is_finite()) {
            return Err(Error::config("model.mlp_ratio", "must be a positive number"));
        }
        if self.long_skip && self.depth < 2 {
            return Err(Error::config("model.long_skip", "needs model.depth >= 2 (an in and an out block)"));
        }
        if let Some(out) = self.out_dim.filter(|&out| self.conv_head > 0 && out != self.patch_dim()) {
            return Err(Error::config(
                "model.conv_head",
                format!(
                    "the conv head draws image patches ({} values per token) but this objective's output has {out} \
                     (a latent target): use model.conv_head = 0",
                    self.patch_dim()
                ),
            ));
        }
        Ok(())
    }

    /// Tokens per image `L`.
    pub fn tokens(&self) -> usize {
        (self.image.height / self.patch) * (self.image.width / self.patch)
    }

    /// Values per patch, `p p C`.
    pub fn patch_dim(&self) -> usize {
        self.patch * self.patch * self.image.channels
    }

    /// The final layer's output width per token: the objective's `out` (default `p p C`), or
    /// `p p K` in front of a conv head.
    pub fn final_width(&self) -> usize {
        match self.conv_head {
            0 => self.out_dim.unwrap_or(self.patch_dim()),
            k => self.patch * self.patch * k,
        }
    }

    /// Build the network on `device` (random init from the device's RNG).
    pub fn init(&self, device: &Device) -> DenoisingVit {
        let hidden = (self.width as f64 * self.mlp_ratio).round() as usize;
        let (gh, gw) = (self.image.height / self.patch, self.image.width / self.patch);
        let in_dim = self.in_dim.unwrap_or(self.patch_dim());
        let out = self.final_width();
        let mut model = DenoisingVit {
            patch_embed: PatchEmbed::from_width(in_dim, self.patch, self.width, device),
            pos_embed: sincos_pos_embed_2d(self.width, gh, gw, device),
            t_embed: TimestepEmbedder::new(self.freq_dim, self.cond_width, device),
            y_embed: (self.num_classes > 0).then(|| LabelEmbedder::new(self.num_classes, self.cond_width, device)),
            blocks: (0..self.depth)
                .map(|_| DitBlock::new(self.width, self.heads, hidden, self.gelu, self.cond_width, device))
                .collect(),
            final_layer: FinalLayer::new(self.width, out, self.cond_width, device),
            // Drawn last, so that a model without long skips draws the numbers it always did.
            skips: (0..if self.long_skip { self.depth / 2 } else { 0 })
                .map(|_| xavier_linear(2 * self.width, self.width, device))
                .collect(),
            conv_head: None,
            encoder_depth: self.encoder_depth,
        };
        // Drawn last too; the conv starts at zero, the linear before it at Xavier.
        if self.conv_head > 0 {
            model.final_layer.proj = xavier_linear(self.width, out, device);
            model.conv_head = Some(ConvHead::new(self.conv_head, self.patch, self.image, device));
        }
        model
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
    /// The long skips' `2 W -> W` layers, one per out block (empty without long skips).
    pub skips: Vec<Linear>,
    /// U-ViT's 3x3 conv on the output image (`None`: the final layer's patches are the output).
    pub conv_head: Option<ConvHead>,
    pub encoder_depth: usize,
}

/// The conv head: `[B, L, p p K]` patches -> a `[B, K, H, W]` image -> 3x3 conv -> `[B, L, p p C]`.
#[derive(Module, Debug)]
pub struct ConvHead {
    /// `[C, K, 3, 3]`, zero at init.
    pub conv: Conv2d,
    pub patch: usize,
    pub height: usize,
    pub width: usize,
}

impl ConvHead {
    fn new(k: usize, patch: usize, image: ImageShape, device: &Device) -> Self {
        let conv = Conv2dConfig::new([k, image.channels], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_initializer(Initializer::Zeros)
            .init(device);
        ConvHead { conv, patch, height: image.height, width: image.width }
    }

    /// # Shapes
    /// - `x`: `[B, L, p p K]`; returns `[B, L, p p C]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, k, _, _] = self.conv.weight.dims();
        let grid = unpatchify(x, self.patch, k, self.height, self.width); // [B, K, H, W]
        patchify(conv2d::apply(&self.conv, grid), self.patch) // [B, C, H, W] -> [B, L, p p C]
    }
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

    /// Tokens and conditioning after the first `depth` blocks.
    ///
    /// # Shapes
    /// - `tokens`: `[B, L, in]`; `t`, `labels`: `[B]`; returns (`[B, L, W]`, `[B, cond]`)
    fn run_blocks(
        &self,
        tokens: Tensor<3>,
        t: &[usize],
        labels: Option<&[usize]>,
        depth: usize,
    ) -> (Tensor<3>, Tensor<2>) {
        let device = tokens.device();
        let c = self.condition(t, labels, &device); // [B, cond]
        let mut h = self.patch_embed.forward_tokens(tokens) + self.pos_embed.clone(); // [B, L, W]
        let n = self.blocks.len();
        let half = self.skips.len(); // in blocks 0..half, out blocks n - half..n
        let mut saved: Vec<Tensor<3>> = Vec::with_capacity(half);
        for (i, block) in self.blocks[..depth].iter().enumerate() {
            if i >= n - half {
                let j = i - (n - half);
                let skip = saved[half - 1 - j].clone();
                h = linear_tokens(&self.skips[j], Tensor::cat(vec![h, skip], 2)); // [B, L, 2W] -> [B, L, W]
            }
            h = block.forward(h, c.clone());
            if i < half {
                saved.push(h.clone());
            }
        }
        (h, c)
    }

    /// The encoder's output tokens: the representation (the null class for a
    /// class-conditional model).
    ///
    /// # Shapes
    /// - `tokens`: `[B, L, in]`; `t`: `[B]`; returns `[B, L, W]`
    pub fn encode(&self, tokens: Tensor<3>, t: &[usize]) -> Tensor<3> {
        self.encode_to(tokens, t, self.encoder_depth)
    }

    /// The tokens after the first `depth` blocks (the probe's encoder-depth ablation).
    ///
    /// # Shapes
    /// - `tokens`: `[B, L, in]`; `t`: `[B]`; returns `[B, L, W]`
    pub fn encode_to(&self, tokens: Tensor<3>, t: &[usize], depth: usize) -> Tensor<3> {
        self.run_blocks(tokens, t, None, depth.min(self.blocks.len())).0
    }

    /// The network's output (the target its objective sets) for input tokens at `t`, with
    /// class `labels` for a class-conditional model (`None`: the null class).
    ///
    /// # Shapes
    /// - `tokens`: `[B, L, in]`; `t`, `labels`: `[B]`; returns `[B, L, out]`
    pub fn forward(&self, tokens: Tensor<3>, t: &[usize], labels: Option<&[usize]>) -> Tensor<3> {
        let (h, c) = self.run_blocks(tokens, t, labels, self.blocks.len());
        let out = self.final_layer.forward(h, c); // [B, L, out] (or [B, L, p p K] before a conv head)
        match &self.conv_head {
            Some(head) => head.forward(out),
            None => out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::init::normal_linear;
    use burn::tensor::TensorData;

    fn config(depth: usize, long_skip: bool) -> VitConfig {
        VitConfig {
            num_classes: 3,
            long_skip,
            ..crate::recipes::parts::vit(ImageShape { channels: 1, height: 8, width: 8 }, 4, 16, depth, 2)
        }
    }

    /// The model with its adaLN layers drawn at random, so that no block is the identity.
    fn live(config: &VitConfig, device: &Device) -> DenoisingVit {
        let mut model = config.init(device);
        let (w, c) = (config.width, config.cond_width);
        for block in &mut model.blocks {
            block.ada_ln = normal_linear(c, 6 * w, 0.3, device);
        }
        model.final_layer.ada_ln = normal_linear(c, 2 * w, 0.3, device);
        model.final_layer.proj = normal_linear(w, config.final_width(), 0.3, device);
        model
    }

    #[test]
    fn conv_head_starts_at_zero_and_still_learns() {
        let device = Device::flex().autodiff();
        let config = VitConfig { conv_head: 3, ..config(2, false) };
        let model = config.init(&device);
        let tokens = Tensor::<3>::random([2, 4, 16], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let out = model.forward(tokens, &[3, 900], Some(&[1, 0]));
        assert_eq!(out.dims(), [2, 4, 16], "the output is the image's patches, p p C = 16");
        assert_eq!(out.clone().abs().max().into_scalar::<f32>(), 0.0, "zero at init, as adaLN-Zero");
        // A zero conv after a zero linear would never move: the conv must get a gradient.
        let weight = &model.conv_head.as_ref().unwrap().conv.weight;
        let probe = Tensor::<3>::random([2, 4, 16], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let grads = burn::optim::GradientsParams::from_grads((out * probe).sum().backward(), &model);
        let g = grads.get::<4>(weight.id).expect("the conv receives a gradient");
        assert!(g.abs().max().into_scalar::<f32>() > 1e-3);
        let mut wrong = config.clone();
        wrong.out_dim = Some(8); // a latent target
        assert!(wrong.validate().unwrap_err().to_string().contains("model.conv_head"));
    }

    #[test]
    fn conv_head_output_pixels_read_their_neighbours_across_patch_borders() {
        let device = Device::flex();
        let (k, p, side) = (3, 4, 8);
        let config = VitConfig { conv_head: k, ..config(2, false) };
        let mut model = live(&config, &device);
        // Output pixel (y, x) = hidden channel 1 at (y, x + 1): a conv tap right of the centre.
        let mut taps = vec![0.0f32; k * 9];
        taps[9 + 3 + 2] = 1.0; // [C = 0, K = 1, row 1, column 2]
        let head = model.conv_head.as_mut().unwrap();
        head.conv.weight =
            head.conv.weight.clone().map(|_| Tensor::<4>::from_data(TensorData::new(taps, [1, k, 3, 3]), &device));
        let tokens = Tensor::<3>::random([1, 4, 16], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let (h, c) = model.run_blocks(tokens.clone(), &[40], None, 2);
        let f: Vec<f32> = model.final_layer.forward(h, c).into_data().try_into_vec().unwrap(); // [1, 4, p p K]
        let got: Vec<f32> = model.forward(tokens, &[40], None).into_data().try_into_vec().unwrap(); // [1, 4, p p]
        let hidden = |y: usize, x: usize, ch: usize| {
            let token = (y / p) * (side / p) + x / p;
            f[token * p * p * k + ((y % p) * p + x % p) * k + ch]
        };
        for y in 0..side {
            for x in 0..side {
                let want = if x + 1 < side { hidden(y, x + 1, 1) } else { 0.0 }; // zero padding
                let have = got[((y / p) * (side / p) + x / p) * p * p + (y % p) * p + x % p];
                assert!((have - want).abs() < 1e-5, "pixel ({y}, {x}): {have} vs {want}");
            }
        }
        assert_ne!(hidden(0, 4, 1), 0.0, "pixel (0, 3) reads the next patch's first column, which is live");
    }

    #[test]
    fn long_skips_pair_each_out_block_with_its_mirror_in_block() {
        let device = Device::flex();
        let config = config(5, true); // in blocks 0, 1; middle 2; out blocks 3, 4
        let model = live(&config, &device);
        assert_eq!(model.skips.len(), 2);
        let tokens = Tensor::<3>::random([2, 4, 16], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let (t, y) = ([10, 700], [0, 2]);
        let got = model.forward(tokens.clone(), &t, Some(&y));
        // By hand: out block 3 reads block 1's output, out block 4 block 0's.
        let c = model.condition(&t, Some(&y), &device);
        let b = |i: usize, h: Tensor<3>| model.blocks[i].forward(h, c.clone());
        let skip =
            |j: usize, h: Tensor<3>, s: &Tensor<3>| linear_tokens(&model.skips[j], Tensor::cat(vec![h, s.clone()], 2));
        let h0 = model.patch_embed.forward_tokens(tokens) + model.pos_embed.clone();
        let h1 = b(0, h0);
        let h2 = b(1, h1.clone());
        let h3 = b(2, h2.clone());
        let h4 = b(3, skip(0, h3, &h2));
        let h5 = b(4, skip(1, h4, &h1));
        let want = model.final_layer.forward(h5, c);
        let diff = (got - want).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn without_long_skips_the_blocks_run_in_sequence_and_the_config_is_unchanged() {
        let device = Device::flex();
        let config = config(3, false);
        assert!(!toml::to_string(&config).unwrap().contains("long_skip"), "old configs keep their text");
        let model = live(&config, &device);
        assert!(model.skips.is_empty());
        let tokens = Tensor::<3>::random([1, 4, 16], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let got = model.forward(tokens.clone(), &[5], None);
        let c = model.condition(&[5], None, &device);
        let mut h = model.patch_embed.forward_tokens(tokens) + model.pos_embed.clone();
        for block in &model.blocks {
            h = block.forward(h, c.clone());
        }
        let diff = (got - model.final_layer.forward(h, c)).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "{diff}");
        assert!(VitConfig { depth: 1, encoder_depth: 1, ..self::config(1, true) }.validate().is_err());
    }
}
