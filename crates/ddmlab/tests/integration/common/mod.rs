//! Helpers shared by the integration tests.

// Each test binary includes this module and uses only some of it.
#![allow(dead_code)]

use std::path::Path;

use ddmlab::config::RunConfig;
use ddmlab::data::idx::encode_idx;
use ddmlab::runs::PretrainOptions;

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

/// A tiny class-conditional MAR config: the micro `ldae-tiny` backbone with a `[mar]` section.
pub fn micro_mar(steps: usize) -> RunConfig {
    let mut config = micro(ddmlab::recipes::preset("ldae-tiny").unwrap().config, steps);
    config.model.num_classes = 10;
    config.mar = Some(ddmlab::config::MarSection::paper(2, 32, 2));
    config
}

/// Training options on data root `root`.
pub fn options(root: &Path, resume: bool, stop: Option<usize>) -> PretrainOptions {
    PretrainOptions {
        data_root: root.to_path_buf(),
        resume,
        stop_after_steps: stop,
        stop_after_minutes: None,
        init_from: None,
        extend_to: None,
        sample_grids: true,
    }
}

/// The data root of the real data sets and weights the README's test command fetches
/// (`DDMLAB_DATA`, default `data/` at the workspace root).
pub fn real_data_root() -> std::path::PathBuf {
    std::env::var_os("DDMLAB_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data"))
}

/// The FID Inception weights there; a test that needs them fails with the fetch command when
/// they are missing.
pub fn inception_weights() -> std::path::PathBuf {
    let weights = ddmlab::data::fetch::inception_path(&real_data_root());
    assert!(weights.exists(), "{}: run `ddmlab data fetch inception` first", weights.display());
    weights
}

/// Training options without the sample grids at checkpoints (the GPU agreement tests: on a
/// software Vulkan, sampling's kernels take minutes to compile and check nothing there).
pub fn no_grids(root: &Path) -> PretrainOptions {
    PretrainOptions { sample_grids: false, ..options(root, false, None) }
}

/// The FID Inception network on `device` matches the PyTorch reference features of the first
/// `n` (at most 8) Fashion-MNIST test images, run `batch` at a time (the fixture
/// `inception-fmnist-test8.safetensors`): cosine above 0.9999 per image. It reads what the
/// README's test command fetches first (`ddmlab data fetch fashion-mnist`, `ddmlab data fetch
/// inception`), never the network itself, and fails with that instruction when they are missing
/// (`DDMLAB_DATA` overrides the data root, default `data/` at the workspace root).
pub fn inception_matches_the_pytorch_reference(device: &burn::tensor::Device, n: usize, batch: usize) {
    use ddmlab::eval::fid::{FidSource, inception_features, load_features};
    use ddmlab::eval::inception::{FEATURE_DIM, InceptionV3};
    use std::path::PathBuf;

    let root = real_data_root();
    let weights = inception_weights();
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inception-fmnist-test8.safetensors");
    let (reference, source) = load_features(&fixture).unwrap();
    assert!(source.starts_with("fashion-mnist:test:8"), "{source}");

    let net = InceptionV3::load(&weights, device).unwrap();
    let images = "fashion-mnist:test"
        .parse::<FidSource>()
        .unwrap()
        .images(&root, n)
        .unwrap_or_else(|e| panic!("{e} (run `ddmlab data fetch fashion-mnist` first)"));
    let ours = inception_features(&net, &images, batch, device, &|_| ());
    let reference = &reference[..n * FEATURE_DIM];
    assert_eq!(ours.len(), reference.len());
    for (i, (a, b)) in ours.chunks(FEATURE_DIM).zip(reference.chunks(FEATURE_DIM)).enumerate() {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (norm(a) * norm(b));
        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        eprintln!("image {i}: cosine {cos:.8}, largest difference {worst:.2e}");
        assert!(cos > 0.9999, "image {i}: cosine {cos} with the PyTorch features");
    }
}
