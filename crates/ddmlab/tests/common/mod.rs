//! Helpers shared by the integration tests.

// Each test binary includes this module and uses only some of it.
#![allow(dead_code)]

use std::path::Path;

use ddmlab::config::RunConfig;
use ddmlab::data::idx::encode_idx;
use ddmlab::train::PretrainOptions;

/// 64 train / 32 test 28x28 images: class k is a bright horizontal band at rows 2k..2k+6.
pub fn write_synthetic_fashion_mnist(root: &Path) {
    let dir = root.join("fashion-mnist");
    std::fs::create_dir_all(&dir).unwrap();
    for (prefix, n) in [("train", 64usize), ("t10k", 32)] {
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let k = i % 10;
            labels.push(k as u8);
            for y in 0..28 {
                for x in 0..28 {
                    let band = (2 * k..2 * k + 6).contains(&y);
                    images.push(if band { 200 } else { ((x * 7 + y * 3 + i) % 40) as u8 });
                }
            }
        }
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), encode_idx(&[n, 28, 28], &images)).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), encode_idx(&[n], &labels)).unwrap();
    }
}

/// `config` shrunk to a 2-block, 32-wide network on batches of 16, checkpointing every 3 steps.
pub fn micro(mut c: RunConfig, steps: usize) -> RunConfig {
    c.model.width = 32;
    c.model.cond_width = if c.model.num_classes > 0 { 32 } else { 8 };
    c.model.depth = 2;
    c.model.encoder_depth = 1;
    c.model.heads = 2;
    if let ddmlab::tokenizer::TokenizerSpec::Pca { samples, .. } = &mut c.denoise.tokenizer {
        *samples = 2000;
    }
    c.train.batch_size = 16;
    c.train.steps = steps;
    c.train.checkpoint_every = 3;
    c.train.log_every = 1;
    c.train.warmup_frac = 0.2;
    c
}

/// Training options on data root `root`.
pub fn options(root: &Path, resume: bool, stop: Option<usize>) -> PretrainOptions {
    PretrainOptions {
        data_root: root.to_path_buf(),
        resume,
        stop_after_steps: stop,
        stop_after_minutes: None,
        init_from: None,
    }
}
