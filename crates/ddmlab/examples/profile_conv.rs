//! Times the building blocks of the conv tokenizer's step on the flex backend, forward and
//! forward + backward (a profiling aid; `bench/profile_conv.py` times the same in PyTorch);
//! the 3x3 convolution both as burn runs it and as ddmlab's im2col kernel (`nn::fused::conv2d`),
//! GroupNorm + SiLU both as burn composes it and as ddmlab's fused kernel (`nn::group_norm`).
//! `RAYON_NUM_THREADS=1 cargo run --release --example profile_conv` (one thread: as one shard of
//! the step runs) beside `python3 bench/profile_conv.py 1`.
use std::time::Instant;

use burn::nn::conv::Conv2dConfig;
use burn::nn::{GroupNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Distribution, Tensor};
use ddmlab::nn::fused::conv2d;
use ddmlab::nn::fused::group_norm::{group_norm, plain};

/// Prints the mean time of `f` over 5 calls after one warm-up, and GFLOP/s where `flops` is given.
fn time<F: FnMut()>(name: &str, flops: Option<f64>, mut f: F) {
    f();
    let n = 5;
    let s = Instant::now();
    for _ in 0..n {
        f();
    }
    let t = s.elapsed().as_secs_f64() / n as f64;
    let rate = flops.map(|f| format!("  {:>6.1} GFLOP/s", f / t / 1e9)).unwrap_or_default();
    println!("{name:<56} {:>8.2} ms{rate}", t * 1e3);
}

fn main() {
    let ad = Device::flex().autodiff();
    for (b, c, s) in [(16, 16, 32), (16, 32, 16), (16, 64, 8)] {
        let conv = Conv2dConfig::new([c, c], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&ad);
        let norm = GroupNormConfig::new(8, c).init(&ad);
        let x0 = Tensor::<4>::random([b, c, s, s], Distribution::Normal(0.0, 1.0), &ad);
        let x = || x0.clone().detach().require_grad();
        let fwd = (2 * b * c * c * 9 * s * s) as f64;
        time(&format!("conv3x3 {c}->{c} at {s}x{s}, batch {b}: fwd (burn)"), Some(fwd), || {
            let _ = conv.forward(x()).into_data();
        });
        time(&format!("conv3x3 {c}->{c} at {s}x{s}, batch {b}: fwd+bwd (burn)"), Some(3.0 * fwd), || {
            let _ = conv.forward(x()).sum().backward();
        });
        time(&format!("conv3x3 {c}->{c} at {s}x{s}, batch {b}: fwd (im2col)"), Some(fwd), || {
            let _ = conv2d::apply(&conv, x()).into_data();
        });
        time(&format!("conv3x3 {c}->{c} at {s}x{s}, batch {b}: fwd+bwd (im2col)"), Some(3.0 * fwd), || {
            let _ = conv2d::apply(&conv, x()).sum().backward();
        });
        time(&format!("groupnorm+silu {c} at {s}x{s}, batch {b}: fwd (burn)"), None, || {
            let _ = plain(&norm, x(), true).into_data();
        });
        time(&format!("groupnorm+silu {c} at {s}x{s}, batch {b}: fwd+bwd (burn)"), None, || {
            let _ = plain(&norm, x(), true).sum().backward();
        });
        time(&format!("groupnorm+silu {c} at {s}x{s}, batch {b}: fwd (fused)"), None, || {
            let _ = group_norm(&norm, x(), true).into_data();
        });
        time(&format!("groupnorm+silu {c} at {s}x{s}, batch {b}: fwd+bwd (fused)"), None, || {
            let _ = group_norm(&norm, x(), true).sum().backward();
        });
    }
}
