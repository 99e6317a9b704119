//! `ddmlab finetune --run R`: the encoder of a pretrained run trained end to end with a
//! classification head, MAE's `main_finetune.py` recipe scaled to the data (the paper judges
//! l-DAE's encoders by fine-tuning beside the linear probe). The run is an ordinary run folder:
//! pretraining's driver, checkpoints, resume and metrics, with the test split's top-1 accuracy
//! measured at each regular checkpoint (`RUN/finetune.json`, `eval::top1`).
//!
//! The recipe (MAE's ViT-B values in parentheses where they differ): AdamW (0.9, 0.999), weight
//! decay 0.05 on matrices only, base lr 5e-4 per 256 images (batch 1024 there, 256 here),
//! layer-wise lr decay 0.75 (0.65 for ViT-B; 0.75 for ViT-L), label smoothing 0.1, 5% warm-up
//! then cosine to 0, 20 epochs (100), a random resized crop of 8-100% of the area with flips;
//! not done: mixup (0.8), cutmix (1.0), RandAugment, random erasing (0.25), drop path (0.1). The
//! encoder is read as the probe reads it (a denoising ViT's first `encoder_depth` blocks at the
//! probe's timestep; a MAR / MAE encoder's blocks with nothing masked), its tokens averaged (MAE's `global_pool`), a LayerNorm and a linear head.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::config::{FinetuneInit, FinetuneSection, RunConfig, TrainConfig};
use crate::data::Split;
use crate::data::transform::Augment;
use crate::error::Result;
use crate::optim::decay::DecayExempt;
use crate::runs::{PretrainOptions, PretrainSummary, pretrain};
use crate::train::{Observer, run_folder};

/// What `ddmlab finetune` runs.
#[derive(Debug, Clone)]
pub struct FinetuneOptions {
    /// The pretrained run (its config, tokenizer and latest checkpoint's EMA weights).
    pub source: PathBuf,
    pub init: FinetuneInit,
    pub data_root: PathBuf,
    /// `KEY=VALUE` overrides of the fine-tuning config (`train.epochs=5`, `finetune.layer_decay=0.65`).
    pub overrides: Vec<String>,
    pub seed: u64,
    pub resume: bool,
    pub stop_after_minutes: Option<f64>,
}

/// The recipe's training settings.
pub fn recipe(seed: u64) -> TrainConfig {
    TrainConfig {
        batch_size: 256,
        blr: 5e-4,
        steps: 0,
        epochs: 20.0,
        time_budget_min: 0.0,
        warmup_frac: 0.05,
        warmup_steps: 0,
        min_lr_frac: 0.0,
        weight_decay: 0.05,
        decay_exempt: DecayExempt::NormsBiases,
        beta1: 0.9,
        beta2: 0.999,
        adam_eps: 1e-8,
        grad_clip: 0.0,
        // The EMA is the model (MAE's fine-tuning keeps none): what the checkpoints evaluate.
        ema_decay: 0.0,
        ema_warmup: false,
        augment: Augment::RandomResizedCrop { min_scale: 0.08, flip: true },
        cache_latents: false,
        seed,
        checkpoint_every: 1000,
        log_every: 10,
    }
}

/// The fine-tuning config of the pretrained run `source` (its config `pretrained`): its data,
/// network and tokenizer, the recipe's training, a `[finetune]` section naming `source` by its
/// absolute path (a resumed or requeued run starts anywhere).
pub fn finetune_config(
    pretrained: &RunConfig,
    source: &Path,
    init: FinetuneInit,
    classes: usize,
    seed: u64,
) -> RunConfig {
    RunConfig {
        finetune: Some(FinetuneSection {
            from: std::path::absolute(source).unwrap_or_else(|_| source.to_path_buf()).display().to_string(),
            init,
            label_smoothing: 0.1,
            layer_decay: 0.75,
            classes,
        }),
        train: recipe(seed),
        ..pretrained.clone()
    }
}

/// Fine-tune the encoder of `opts.source` into the run folder `out` (or resume it there).
pub fn finetune(
    out: &Path,
    opts: &FinetuneOptions,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<PretrainSummary> {
    let config = if opts.resume {
        run_folder::read_config(out)?
    } else {
        let pretrained = run_folder::read_config(&opts.source)?;
        let classes = run_folder::load_split(&pretrained, &opts.data_root, Split::Test)?.classes.len();
        let mut config = finetune_config(&pretrained, &opts.source, opts.init, classes, opts.seed);
        for o in &opts.overrides {
            config = config.with_override(o)?;
        }
        config.validate()?;
        run_folder::adopt_tokenizer(&opts.source, out, &config)?;
        config
    };
    let train = PretrainOptions {
        data_root: opts.data_root.clone(),
        resume: opts.resume,
        stop_after_steps: None,
        stop_after_minutes: opts.stop_after_minutes,
        init_from: None,
        extend_to: None,
        sample_grids: true,
    };
    pretrain(config, out, &train, device, obs)
}
