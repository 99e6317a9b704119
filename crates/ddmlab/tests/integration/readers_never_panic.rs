//! Every reader of outside bytes, fed mutants of a valid file (truncated, bit-flipped, spliced
//! with random bytes, or wholly random): each case is `Ok` or one clean error, never a panic.
//!
//! proptest draws the mutants and shrinks any panicking one to a small input; each reader runs
//! `DDMLAB_FUZZ_CASES` cases (default 20 000, about 100 s for all of them on CI's two cores; a
//! deeper search: `DDMLAB_FUZZ_CASES=1000000`) and prints how many it accepted and rejected.
//! A failure found here becomes a regression test below, named after it.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::module::Module;
use burn::tensor::Device;
use ddmlab::config::RunConfig;
use ddmlab::data::RawImage;
use ddmlab::data::cifar::{CifarKind, read_cifar};
use ddmlab::data::folder::read_image_folder;
use ddmlab::data::idx::{encode_idx, parse_idx, read_idx};
use ddmlab::data::source::idx_pair;
use ddmlab::data::{ImageSet, ImageShape};
use ddmlab::eval::fid::{images_of_set, load_features, read_image_dir, save_features};
use ddmlab::eval::frechet::Stats;
use ddmlab::eval::npz::{SampleBatch, read_samples, read_stats, write_samples, write_stats};
use ddmlab::models::DenoisingVit;
use ddmlab::recipes::{preset, tokenizer_preset};
use ddmlab::store::checkpoint::{CheckpointState, load_into, read_state};
use ddmlab::tokenizer::conv_config::TokenizerRunConfig;
use ddmlab::tokenizer::conv_vae::FittedConvVae;
use ddmlab::tokenizer::{FittedTokenizer, LatentScale, TokenizerSpec};
use ddmlab::train::Network;
use ddmlab::train::interop::Layout;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn cases() -> u32 {
    std::env::var("DDMLAB_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

/// Mutants of `valid`: truncated, 1-16 bit flips (half of them inside the first 256 bytes,
/// where the headers are), a run of random bytes written over it, or random bytes.
fn mutants(valid: Vec<u8>) -> BoxedStrategy<Vec<u8>> {
    let n = valid.len().max(1);
    let head = n.min(256);
    let (v1, v2, v3) = (valid.clone(), valid.clone(), valid.clone());
    let flip = move |v: &[u8], flips: Vec<(usize, u8)>| {
        let mut v = v.to_vec();
        for (i, bit) in flips {
            if let Some(b) = v.get_mut(i) {
                *b ^= 1 << bit;
            }
        }
        v
    };
    let v4 = valid.clone();
    prop_oneof![
        3 => (0..n).prop_map(move |k| v1[..k.min(v1.len())].to_vec()),
        3 => prop::collection::vec((0..head, 0..8u8), 1..16).prop_map(move |f| flip(&v2, f)),
        2 => prop::collection::vec((0..n, 0..8u8), 1..16).prop_map(move |f| flip(&v4, f)),
        1 => (0..n, prop::collection::vec(any::<u8>(), 1..64)).prop_map(move |(at, junk)| {
            let mut v = v3.clone();
            for (i, b) in junk.into_iter().enumerate() {
                if let Some(slot) = v.get_mut(at + i) {
                    *slot = b;
                }
            }
            v
        }),
        1 => prop::collection::vec(any::<u8>(), 0..2 * n),
    ]
    .boxed()
}

/// Run `read` on `cases()` mutants of `valid`, each written to `path` first; `read` returns
/// whether the reader accepted the bytes. Panics (after shrinking) if any case panics.
fn never_panics(name: &str, valid: Vec<u8>, path: &Path, read: impl Fn(&Path) -> bool) {
    run_cases(name, mutants(valid), |bytes| {
        std::fs::write(path, bytes).unwrap();
        read(path)
    });
}

/// `read` on `cases()` inputs drawn from `inputs`, without a file.
fn strategy_never_panics(name: &str, inputs: BoxedStrategy<Vec<u8>>, read: impl Fn(&[u8]) -> bool) {
    run_cases(name, inputs, read);
}

fn run_cases(name: &str, inputs: BoxedStrategy<Vec<u8>>, read: impl Fn(&[u8]) -> bool) {
    let cases = cases();
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 4096, ..Config::default() };
    let (accepted, rejected) = (AtomicUsize::new(0), AtomicUsize::new(0));
    // A fixed seed: CI runs the same cases every time, and a failure reproduces.
    let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let outcome = runner.run(&inputs, |bytes| {
        let counter = if read(&bytes) { &accepted } else { &rejected };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{name}: a reader panicked: {e}");
    }
    let (a, r) = (accepted.load(Ordering::Relaxed), rejected.load(Ordering::Relaxed));
    println!("{name}: {cases} cases, 0 panics ({a} accepted, {r} rejected as one error)");
}

/// `never_panics` on bytes, without a file.
fn parse_never_panics(name: &str, valid: Vec<u8>, parse: impl Fn(&[u8]) -> bool) {
    run_cases(name, mutants(valid), parse);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn pixels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 37 % 251) as u8).collect()
}

#[test]
fn idx_readers_never_panic() {
    let valid = encode_idx(&[6, 5, 5], &pixels(150));
    parse_never_panics("IDX", valid.clone(), |b| parse_idx(b).is_ok());
    let dir = tempfile::tempdir().unwrap();
    never_panics("IDX (gzip)", gzip(&valid), &dir.path().join("images-idx3-ubyte.gz"), |p| read_idx(p).is_ok());
    // A data set from an image file and its labels: every image it accepts can be read.
    let labels = dir.path().join("labels-idx1-ubyte");
    std::fs::write(&labels, encode_idx(&[6], &[0, 1, 2, 0, 1, 2])).unwrap();
    let classes = || vec!["a".to_string(), "b".into(), "c".into()];
    never_panics("IDX image/label pair", valid, &dir.path().join("images-idx3-ubyte"), |p| {
        idx_pair(p, &labels, classes()).map(|set| images_of_set(&set, 0).len() == set.len()).unwrap_or(false)
    });
}

#[test]
fn cifar_reader_never_panics() {
    let mut valid = Vec::new();
    for label in [3u8, 9] {
        valid.push(label);
        valid.extend(pixels(3 * 32 * 32));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data_batch_1.bin");
    never_panics("CIFAR-10 binary", valid, &path, |p| read_cifar(&[p], CifarKind::Cifar10).is_ok());
}

#[test]
fn image_folder_readers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let class = dir.path().join("shirt");
    std::fs::create_dir(&class).unwrap();
    for (name, format) in [("a.png", image::ImageFormat::Png), ("a.jpg", image::ImageFormat::Jpeg)] {
        let img = image::GrayImage::from_raw(8, 8, pixels(64)).unwrap();
        let mut valid = std::io::Cursor::new(Vec::new());
        img.write_to(&mut valid, format).unwrap();
        let path = class.join(name);
        never_panics(&format!("image folder ({name})"), valid.into_inner(), &path, |_| {
            let training = read_image_folder(dir.path(), 1, 8).is_ok();
            let fid = read_image_dir(dir.path(), 0).is_ok();
            training && fid
        });
        std::fs::remove_file(&path).unwrap();
    }
}

/// Well-formed TOML with 1-4 values replaced by extreme or ill-typed ones: what reaches the
/// validators rather than the parser.
fn toml_value_mutants(text: String) -> BoxedStrategy<Vec<u8>> {
    const VALUES: [&str; 16] = [
        "0",
        "-1",
        "1",
        "3",
        "4294967296",
        "18446744073709551615",
        "1e308",
        "-1e-300",
        "nan",
        "inf",
        "0.5",
        "true",
        "\"\"",
        "\"x\"",
        "[]",
        "{}",
    ];
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let assignments: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].contains(" = ")).collect();
    prop::collection::vec((prop::sample::select(assignments), prop::sample::select(&VALUES[..])), 1..5)
        .prop_map(move |edits| {
            let mut lines = lines.clone();
            for (i, value) in edits {
                let key = lines[i].split(" = ").next().unwrap_or_default().to_string();
                lines[i] = format!("{key} = {value}");
            }
            lines.join("\n").into_bytes()
        })
        .boxed()
}

#[test]
fn config_readers_never_panic() {
    let run = preset("ldae-tiny").unwrap().config.to_toml();
    let read_run = |b: &[u8]| RunConfig::from_toml(&String::from_utf8_lossy(b), Path::new("config.toml")).is_ok();
    parse_never_panics("run config (TOML)", run.clone().into_bytes(), read_run);
    strategy_never_panics("run config (TOML values)", toml_value_mutants(run), read_run);
    let name = ddmlab::recipes::tokenizer_preset_names()[0];
    let tok = tokenizer_preset(name).unwrap().config.to_toml();
    let read_tok =
        |b: &[u8]| TokenizerRunConfig::from_toml(&String::from_utf8_lossy(b), Path::new("tokenizer.toml")).is_ok();
    parse_never_panics("tokenizer config (TOML)", tok.clone().into_bytes(), read_tok);
    strategy_never_panics("tokenizer config (TOML values)", toml_value_mutants(tok), read_tok);
}

#[test]
fn checkpoint_readers_never_panic() {
    let device = Device::flex();
    let mut config = preset("ldae-tiny").unwrap().config;
    config.model.width = 16;
    config.model.cond_width = 8;
    config.model.depth = 2;
    config.model.encoder_depth = 1;
    config.model.heads = 2;
    let model = DenoisingVit::build(&config, &device);
    let weights = model.clone().into_record().into_bytes().unwrap().to_vec();
    let dir = tempfile::tempdir().unwrap();
    never_panics("checkpoint weights (burnpack)", weights, &dir.path().join("model.bpk"), |p| {
        load_into(model.clone(), p).is_ok()
    });
    // PyTorch weights (`ddmlab import`, `train --init-from`): a safetensors state_dict, and a
    // torch.save zip (the DiT fixture written by PyTorch).
    let net = config.network();
    let st = ddmlab::train::interop::export(&model, &net, Layout::Reference).unwrap();
    never_panics("PyTorch weights (safetensors)", st, &dir.path().join("w.safetensors"), |p| {
        ddmlab::train::interop::import(model.clone(), &net, Layout::Reference, p).is_ok()
    });
    let dit = ddmlab::models::VitConfig {
        image: ImageShape { channels: 2, height: 8, width: 8 },
        patch: 2,
        width: 32,
        depth: 2,
        encoder_depth: 1,
        heads: 4,
        mlp_ratio: 4.0,
        cond_width: 32,
        freq_dim: 256,
        num_classes: 3,
        gelu: ddmlab::nn::gelu::GeluKind::Tanh,
        in_dim: None,
        out_dim: None,
        long_skip: false,
        conv_head: 0,
    };
    let dit_model = dit.init(&device);
    let pt = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/interop/dit.pt")).unwrap();
    never_panics("PyTorch weights (torch.save)", pt, &dir.path().join("w.pt"), |p| {
        ddmlab::train::interop::import(dit_model.clone(), &dit, Layout::Dit, p).is_ok()
    });
    let state = CheckpointState { step: 40, total_steps: 200, elapsed_s: 12.5 };
    let state = serde_json::to_vec_pretty(&state).unwrap();
    never_panics("checkpoint state (JSON)", state, &dir.path().join("state.json"), |p| {
        read_state::<CheckpointState>(p.parent().unwrap()).is_ok()
    });
}

/// 300 8x8 grey images of a smooth random field: enough to fit every patch tokenizer.
fn small_set() -> ImageSet {
    let shape = ImageShape { channels: 1, height: 8, width: 8 };
    let images = (0..300 * 64).map(|i| ((i % 64) * 3 + (i / 64) % 50) as u8).collect();
    ImageSet { images, labels: vec![0; 300], shape, classes: vec!["x".into()] }
}

#[test]
fn tokenizer_file_readers_never_panic() {
    let set = small_set();
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let scale = LatentScale::Unit;
    let specs = [
        TokenizerSpec::Pca { patch: 4, latent_dim: 3, samples: 1000, scale, seed: 0 },
        TokenizerSpec::PatchAe { patch: 4, latent_dim: 3, samples: 1000, steps: 5, scale, seed: 0 },
        TokenizerSpec::PatchVae { patch: 4, latent_dim: 3, samples: 1000, steps: 5, kl_weight: 1e-3, scale, seed: 0 },
        TokenizerSpec::Pixels { patch: 2, scale },
    ];
    for spec in specs {
        let (fitted, _) = FittedTokenizer::fit(&spec, &set, &device).unwrap();
        let path = dir.path().join(spec.file_name());
        fitted.save(&path).unwrap();
        let valid = std::fs::read(&path).unwrap();
        never_panics(&format!("tokenizer file ({})", spec.kind()), valid, &path, |p| {
            FittedTokenizer::load(&spec, p, 1).is_ok()
        });
    }
    // A conv VAE's file: its config as TOML metadata and its weights as a burnpack byte tensor.
    let mut config = tokenizer_preset(ddmlab::recipes::tokenizer_preset_names()[0]).unwrap().config;
    (config.model.channels, config.model.channel_mult, config.model.res_blocks) = (4, vec![1], 1);
    (config.model.groups, config.model.z_channels) = (2, 2);
    let weights = config.model.init(&device).into_record().into_bytes().unwrap().to_vec();
    let path = dir.path().join("conv-vae.safetensors");
    FittedConvVae { config, weights, cells: 1, scale: 0.5 }.save(&path).unwrap();
    never_panics("tokenizer file (conv-vae)", std::fs::read(&path).unwrap(), &path, |p| FittedConvVae::load(p).is_ok());
}

#[test]
fn feature_cache_reader_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fashion-mnist-test-2.safetensors");
    let features: Vec<f32> = (0..2 * 2048).map(|i| (i % 97) as f32 / 97.0).collect();
    save_features(&path, &features, "fashion-mnist:test").unwrap();
    let valid = std::fs::read(&path).unwrap();
    never_panics("FID feature cache (safetensors)", valid, &path, |p| load_features(p).is_ok());
}

#[test]
fn npz_readers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stats.npz");
    let sigma = nalgebra::DMatrix::from_fn(4, 4, |i, j| if i == j { 1.0 } else { 0.1 });
    write_stats(&path, &Stats { n: 0, mu: nalgebra::DVector::from_element(4, 0.5), sigma }).unwrap();
    never_panics("FID statistics (.npz)", std::fs::read(&path).unwrap(), &path, |p| read_stats(p).is_ok());
    let image = |c: usize| RawImage { channels: c, height: 4, width: 4, pixels: pixels(c * 16) };
    for (name, c) in [("grey", 1), ("rgb", 3)] {
        let path = dir.path().join(format!("samples-{name}.npz"));
        write_samples(&path, &SampleBatch { images: vec![image(c), image(c)], labels: Some(vec![1, 7]) }).unwrap();
        let valid = std::fs::read(&path).unwrap();
        never_panics(&format!("sample batch (.npz, {name})"), valid, &path, |p| read_samples(p, 0).is_ok());
    }
    // numpy's own writer (np.savez_compressed): deflated members.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npz/stats-a-f32.npz");
    never_panics("FID statistics (.npz, numpy compressed)", std::fs::read(fixture).unwrap(), &path, |p| {
        read_stats(p).is_ok()
    });
}
