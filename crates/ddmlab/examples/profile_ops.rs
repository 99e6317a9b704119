//! Times the building blocks of the l-DAE step on the flex backend (a profiling aid).
//! `cargo run --release --example profile_ops`
use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor, activation::gelu_approximate};

fn time<F: FnMut()>(name: &str, flops: f64, mut f: F) {
    f();
    let n = 5;
    let s = Instant::now();
    for _ in 0..n {
        f();
    }
    let dt = s.elapsed().as_secs_f64() / n as f64;
    println!("{name:<40} {:>8.2} ms  {:>7.1} GFLOP/s", dt * 1e3, flops / dt / 1e9);
}

fn main() {
    let d = Device::flex();
    let (m, w) = (12544, 192);
    let x = Tensor::<2>::random([m, w], Distribution::Normal(0.0, 1.0), &d);
    let w1 = Tensor::<2>::random([w, 4 * w], Distribution::Normal(0.0, 1.0), &d);
    let h = Tensor::<2>::random([m, 4 * w], Distribution::Normal(0.0, 1.0), &d);
    time("matmul [12544,192]x[192,768]", 2.0 * (m * w * 4 * w) as f64, || {
        let _ = x.clone().matmul(w1.clone()).into_data();
    });
    time("matmul^T [768,12544]x[12544,192] (dW)", 2.0 * (m * w * 4 * w) as f64, || {
        let _ = h.clone().transpose().matmul(x.clone()).into_data();
    });
    let lin = burn::nn::LinearConfig::new(192, 768).init(&d);
    let x3b = x.clone().reshape([256, 49, w]);
    time("Linear fwd on [256,49,192] (3-D)", 2.0 * (m * w * 4 * w) as f64, || {
        let _ = lin.forward(x3b.clone()).into_data();
    });
    time("Linear fwd on [12544,192] (2-D)", 2.0 * (m * w * 4 * w) as f64, || {
        let _ = lin.forward(x.clone()).into_data();
    });
    time("gelu_approx [12544,768]", 0.0, || {
        let _ = gelu_approximate(h.clone()).into_data();
    });
    time("gelu exact [12544,768]", 0.0, || {
        let _ = burn::tensor::activation::gelu(h.clone()).into_data();
    });
    time("h * 2.0 [12544,768]", 0.0, || {
        let _ = (h.clone() * 2.0).into_data();
    });
    let x3 = x.clone().reshape([256, 49, w]);
    time("layer_norm (var_mean) [256,49,192]", 0.0, || {
        let _ = ddmlab::nn::layer_norm(x3.clone(), 1e-6).into_data();
    });
    let q = Tensor::<4>::random([256, 3, 49, 64], Distribution::Normal(0.0, 1.0), &d);
    time("attention fused [256,3,49,64]", 4.0 * 256.0 * 3.0 * 49.0 * 49.0 * 64.0, || {
        let _ = burn::tensor::module::attention(q.clone(), q.clone(), q.clone(), None, None, Default::default())
            .into_data();
    });
    time("elementwise add [12544,768]", 0.0, || {
        let _ = (h.clone() + h.clone()).into_data();
    });
}
