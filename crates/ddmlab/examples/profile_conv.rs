//! Times the building blocks of the conv tokenizer's step on the flex backend, forward and
//! forward + backward (a profiling aid; `bench/profile_conv.py` times the same in PyTorch);
//! GroupNorm + SiLU both as burn composes it and as ddmlab's fused kernel (`nn::group_norm`).
//! `cargo run --release --example profile_conv`
use std::time::Instant;

use burn::nn::conv::Conv2dConfig;
use burn::nn::{GroupNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Distribution, Tensor};
use ddmlab::nn::fused::group_norm::{group_norm, plain};

fn time<F: FnMut()>(name: &str, mut f: F) {
    f();
    let n = 5;
    let s = Instant::now();
    for _ in 0..n {
        f();
    }
    println!("{name:<48} {:>8.2} ms", s.elapsed().as_secs_f64() / n as f64 * 1e3);
}

fn main() {
    let ad = Device::flex().autodiff();
    for (b, c, s) in [(16, 16, 32), (16, 32, 16), (16, 64, 8)] {
        let conv = Conv2dConfig::new([c, c], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&ad);
        let norm = GroupNormConfig::new(8, c).init(&ad);
        let x0 = Tensor::<4>::random([b, c, s, s], Distribution::Normal(0.0, 1.0), &ad);
        let x = || x0.clone().detach().require_grad();
        time(&format!("conv3x3 {c}->{c} at {s}x{s}, batch {b}: fwd"), || {
            let _ = conv.forward(x()).into_data();
        });
        time(&format!("conv3x3 {c}->{c} at {s}x{s}, batch {b}: fwd+bwd"), || {
            let _ = conv.forward(x()).sum().backward();
        });
        time(&format!("groupnorm+silu {c} at {s}x{s}, batch {b}: fwd (burn)"), || {
            let _ = plain(&norm, x(), true).into_data();
        });
        time(&format!("groupnorm+silu {c} at {s}x{s}, batch {b}: fwd+bwd (burn)"), || {
            let _ = plain(&norm, x(), true).sum().backward();
        });
        time(&format!("groupnorm+silu {c} at {s}x{s}, batch {b}: fwd (fused)"), || {
            let _ = group_norm(&norm, x(), true).into_data();
        });
        time(&format!("groupnorm+silu {c} at {s}x{s}, batch {b}: fwd+bwd (fused)"), || {
            let _ = group_norm(&norm, x(), true).sum().backward();
        });
    }
}
