//! The `[mar]` section: a run with it trains MAR (masked autoregressive generation with the
//! Diffusion Loss) on the tokens of `denoise.tokenizer`, instead of a denoising ViT. The
//! backbone's sizes come from `[model]` (width, heads, MLP ratio, classes; `encoder_depth`
//! blocks in the encoder and `depth - encoder_depth` in the decoder); `denoise.class_dropout`
//! is the label dropout that trains the null class. No other `[denoise]` setting is read.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::models::VitConfig;
use crate::models::mar::MarConfig;

/// How the tokens of an image are ordered and what each prediction may read (the paper's
/// Table 1 rows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MarVariant {
    /// Masked autoregression: bidirectional attention over the known tokens, random order,
    /// several tokens per step.
    #[default]
    Mar,
    /// Causal attention, a random order per image, one token per step (teacher forcing in
    /// training: every token predicted from the ones before it in the order).
    ArRandom,
    /// Causal attention in raster order (left to right, top to bottom), one token per step.
    ArRaster,
}

impl MarVariant {
    /// Causal attention (the AR rows) rather than bidirectional (MAR).
    pub fn is_causal(self) -> bool {
        self != MarVariant::Mar
    }

    /// The config value (`mar`, `ar-random`, `ar-raster`).
    pub fn name(self) -> &'static str {
        match self {
            MarVariant::Mar => "mar",
            MarVariant::ArRandom => "ar-random",
            MarVariant::ArRaster => "ar-raster",
        }
    }
}

/// How a token is predicted from its condition vector `z` (the paper's Table 2 rows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MarLoss {
    /// The Diffusion Loss: a denoising MLP models `p(x | z)`, sampled by DDPM.
    #[default]
    Diffusion,
    /// L2 regression: the head outputs the token itself (a point estimate, the paper's
    /// FID > 100 baseline).
    L2,
    /// Cross-entropy over the codes of a k-means codebook of the tokens (`[mar] codebook`):
    /// the discrete-token baseline.
    CrossEntropy,
}

impl MarLoss {
    /// The config value (`diffusion`, `l2`).
    pub fn name(self) -> &'static str {
        match self {
            MarLoss::Diffusion => "diffusion",
            MarLoss::L2 => "l2",
            MarLoss::CrossEntropy => "cross-entropy",
        }
    }

    /// Whether the head draws its output (Diffusion Loss, cross-entropy), so that a sampling
    /// temperature applies; an L2 head regresses.
    pub fn samples(self) -> bool {
        self != MarLoss::L2
    }

    /// Whether the head runs a DDPM chain (Diffusion Loss), so that head steps apply.
    pub fn denoises(self) -> bool {
        self == MarLoss::Diffusion
    }
}

/// MAR's own settings (LTH14/mar's defaults in parentheses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarSection {
    /// Class-embedding tokens in front of the sequence (64).
    pub buffer: usize,
    /// The Diffusion Loss head's hidden width (1024) and residual blocks (3).
    pub head_width: usize,
    pub head_depth: usize,
    /// Lowest training mask ratio (0.7).
    pub min_mask_ratio: f64,
    /// Noisy copies of every masked token per step, the diffusion batch multiplier (4).
    pub diffusion_repeat: usize,
    /// `mar` (bidirectional, random order), `ar-random` or `ar-raster` (causal): the paper's
    /// Table 1 rows.
    #[serde(default)]
    pub variant: MarVariant,
    /// `diffusion` (the Diffusion Loss) or `l2` (regression baseline).
    #[serde(default)]
    pub loss: MarLoss,
    /// A fixed training mask ratio instead of MAR's truncated Gaussian (MAE: 0.75).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_ratio: Option<f64>,
    /// L2 targets normalised per token by their mean and variance (MAE's `norm_pix_loss`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub norm_target: bool,
    /// Quantise the tokens to a k-means codebook of this many codes fitted on the training
    /// tokens (0: continuous tokens). Needed by the cross-entropy loss; with the Diffusion Loss
    /// it is the paper's VQ row.
    #[serde(default, skip_serializing_if = "crate::settings::is_zero")]
    pub codebook: usize,
    /// The head's residual blocks normalise with an affine LayerNorm, as LTH14/mar's `in_ln`
    /// (off: a plain LayerNorm, as the runs made before this setting).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub head_norm_affine: bool,
    /// The head also predicts the variance of each reverse step (improved DDPM's learned range,
    /// `2 C` outputs, trained by the VLB term beside the MSE, as LTH14/mar's Diffusion Loss) and
    /// the sampler uses it (off: eps only, the posterior variance, as the runs made before this
    /// setting).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub learn_variance: bool,
}

impl MarSection {
    /// `buffer` class tokens and a `head_width x head_depth` head, with the paper's lowest mask
    /// ratio (0.7) and diffusion batch multiplier (4).
    pub fn paper(buffer: usize, head_width: usize, head_depth: usize) -> Self {
        MarSection {
            buffer,
            head_width,
            head_depth,
            min_mask_ratio: 0.7,
            diffusion_repeat: 4,
            variant: MarVariant::Mar,
            loss: MarLoss::Diffusion,
            mask_ratio: None,
            norm_target: false,
            codebook: 0,
            head_norm_affine: false,
            learn_variance: false,
        }
    }

    /// The network sizes for `model` and tokens of width `token_dim`.
    pub fn network(&self, model: &VitConfig, token_dim: usize) -> MarConfig {
        MarConfig {
            token_dim,
            seq_len: model.tokens(),
            buffer: self.buffer,
            width: model.width,
            enc_depth: model.encoder_depth,
            dec_depth: model.depth - model.encoder_depth,
            heads: model.heads,
            mlp_ratio: model.mlp_ratio,
            num_classes: model.num_classes,
            head_width: self.head_width,
            head_depth: self.head_depth,
            causal: self.variant.is_causal(),
            head_out: match self.loss {
                MarLoss::CrossEntropy => self.codebook,
                _ if self.learn_variance => 2 * token_dim,
                _ => token_dim,
            },
            head_affine_norm: self.head_norm_affine,
            learn_variance: self.learn_variance,
        }
    }

    /// Check every field (and the split of `model.depth` it needs); the error names the field.
    pub fn validate(&self, model: &VitConfig) -> Result<()> {
        let check = |ok: bool, field: &str, msg: String| crate::settings::check(ok, field, msg);
        check(self.buffer >= 1, "mar.buffer", format!("{}, expected at least 1 (the class token)", self.buffer))?;
        check(self.head_width >= 1, "mar.head_width", "must be positive".into())?;
        check(self.head_depth >= 1, "mar.head_depth", "must be positive".into())?;
        check(
            self.min_mask_ratio > 0.0 && self.min_mask_ratio <= 1.0,
            "mar.min_mask_ratio",
            format!("{}, expected a ratio in (0, 1]", self.min_mask_ratio),
        )?;
        check(self.diffusion_repeat >= 1, "mar.diffusion_repeat", "must be positive".into())?;
        if let Some(r) = self.mask_ratio {
            check(r > 0.0 && r <= 1.0, "mar.mask_ratio", format!("{r}, expected a ratio in (0, 1]"))?;
            check(
                !self.variant.is_causal(),
                "mar.mask_ratio",
                format!("a causal ({}) model predicts every token: no mask ratio", self.variant.name()),
            )?;
        }
        check(
            self.loss != MarLoss::CrossEntropy || self.codebook >= 2,
            "mar.codebook",
            format!("{}: the cross-entropy loss needs a codebook of at least 2 codes", self.codebook),
        )?;
        check(
            !self.learn_variance || self.loss == MarLoss::Diffusion,
            "mar.learn_variance",
            format!("the {} loss has no reverse diffusion steps whose variance to learn", self.loss.name()),
        )?;
        check(
            !self.norm_target || self.loss == MarLoss::L2,
            "mar.norm_target",
            "normalised targets are for the L2 loss (the Diffusion Loss models the tokens themselves)".into(),
        )?;
        check(
            model.encoder_depth >= 1 && model.encoder_depth < model.depth,
            "model.encoder_depth",
            format!(
                "{} of {} blocks: a MAR run needs at least one encoder and one decoder block",
                model.encoder_depth, model.depth
            ),
        )?;
        // The denoising ViT's options that MAR's encoder-decoder does not have.
        check(!model.long_skip, "model.long_skip", "MAR's encoder-decoder has no long skips: set it to false".into())?;
        check(model.conv_head == 0, "model.conv_head", "MAR predicts tokens, not an image: set it to 0".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;
    use crate::recipes::preset;

    fn mar_config() -> RunConfig {
        let mut config = preset("dit-fmnist-eps").unwrap().config;
        config.model.encoder_depth = 4;
        config.mar = Some(MarSection { buffer: 8, ..MarSection::paper(8, 128, 3) });
        config
    }

    #[test]
    fn a_mar_section_round_trips_and_sizes_the_network_from_the_model() {
        let config = mar_config();
        config.validate().unwrap();
        let text = config.to_toml();
        assert!(text.contains("[mar]"), "{text}");
        assert_eq!(RunConfig::from_toml(&text, "x.toml".as_ref()).unwrap(), config);
        let net = config.mar_network().unwrap();
        let m = &config.model;
        assert_eq!((net.enc_depth, net.dec_depth), (4, m.depth - 4));
        assert_eq!((net.width, net.seq_len, net.num_classes), (m.width, m.tokens(), m.num_classes));
        assert_eq!(net.token_dim, config.denoise.tokenizer.latent_dim(m.image.channels));
        // The variant and the loss round-trip; a section written before they existed reads as
        // MAR with the Diffusion Loss.
        let mut causal = config.clone();
        let section = causal.mar.as_mut().unwrap();
        (section.variant, section.loss) = (MarVariant::ArRaster, MarLoss::L2);
        let text = causal.to_toml();
        assert!(text.contains("variant = \"ar-raster\"") && text.contains("loss = \"l2\""), "{text}");
        assert_eq!(RunConfig::from_toml(&text, "x.toml".as_ref()).unwrap(), causal);
        assert!(causal.mar_network().unwrap().causal);
        let old = config.to_toml().replace("variant = \"mar\"\n", "").replace("loss = \"diffusion\"\n", "");
        assert!(!old.contains("variant"), "{old}");
        assert_eq!(RunConfig::from_toml(&old, "x.toml".as_ref()).unwrap(), config);
        // A config without the section writes none (older runs read and write as before).
        let plain = preset("dit-fmnist-eps").unwrap().config;
        assert!(!plain.to_toml().contains("mar"));
        assert!(plain.mar_network().is_none());
    }

    #[test]
    fn invalid_mar_settings_are_one_error_naming_the_field() {
        type Spoil = fn(&mut RunConfig);
        let cases: [(&str, Spoil); 13] = [
            ("mar.mask_ratio", |c| c.mar.as_mut().unwrap().mask_ratio = Some(0.0)),
            ("mar.mask_ratio", |c| {
                let m = c.mar.as_mut().unwrap();
                (m.mask_ratio, m.variant) = (Some(0.75), MarVariant::ArRaster);
            }),
            ("mar.norm_target", |c| c.mar.as_mut().unwrap().norm_target = true),
            ("mar.learn_variance", |c| {
                let m = c.mar.as_mut().unwrap();
                (m.learn_variance, m.loss) = (true, MarLoss::L2);
            }),
            ("mar.codebook", |c| c.mar.as_mut().unwrap().loss = MarLoss::CrossEntropy),
            ("mar.buffer", |c| c.mar.as_mut().unwrap().buffer = 0),
            ("mar.head_width", |c| c.mar.as_mut().unwrap().head_width = 0),
            ("mar.min_mask_ratio", |c| c.mar.as_mut().unwrap().min_mask_ratio = 1.5),
            ("mar.min_mask_ratio", |c| c.mar.as_mut().unwrap().min_mask_ratio = f64::NAN),
            ("mar.diffusion_repeat", |c| c.mar.as_mut().unwrap().diffusion_repeat = 0),
            ("model.encoder_depth", |c| c.model.encoder_depth = c.model.depth),
            ("model.long_skip", |c| c.model.long_skip = true),
            ("model.conv_head", |c| c.model.conv_head = 4),
        ];
        for (field, spoil) in cases {
            let mut config = mar_config();
            spoil(&mut config);
            let e = config.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
        let e = RunConfig::from_toml(&mar_config().to_toml().replace("buffer = 8", "bufer = 8"), "x.toml".as_ref())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bufer"), "{e}");
        let e = RunConfig::from_toml(
            &mar_config().to_toml().replace("variant = \"mar\"", "variant = \"ar-spiral\""),
            "x.toml".as_ref(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ar-spiral") && e.contains("ar-raster"), "{e}");
    }
}
