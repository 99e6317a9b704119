//! Diagnostic: how well a DDPM-objective checkpoint denoises real images, per timestep.
//!
//! For the first 128 test images of the run's data set and `t` in 10..990, prints the network's
//! eps-prediction MSE with the true labels and with the null class (their gap is how much the
//! class condition is used), and the MSE of the implied `x0_hat = (x_t - sigma_t eps_hat) /
//! gamma_t` (what the samplers see before clipping). A pixel-space DDPM with eps prediction only
//! (the pixel tokenizer, unscaled); it reads the network output as eps whatever the run's
//! prediction is.
//!
//! ```sh
//! cargo run --release --example eps_error -- runs/dit/checkpoints/step-002000 [ema.bpk|model.bpk] [DATA_DIR]
//! ```

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use ddmlab::diffusion::VpSchedule;
use ddmlab::nn::{patchify, unpatchify};
use ddmlab::train::trainer_state;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn main() -> ddmlab::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(ckpt) = args.get(1).map(Path::new) else {
        eprintln!("usage: eps_error CHECKPOINT_DIR [ema.bpk|model.bpk] [DATA_DIR]");
        std::process::exit(2);
    };
    let file = args.get(2).map_or("ema.bpk", String::as_str);
    let data_root = Path::new(args.get(3).map_or("data", String::as_str));
    let device = Device::flex();
    let (config, _) = trainer_state::read_meta(ckpt)?;
    let model: ddmlab::models::DenoisingVit = trainer_state::load_weights(ckpt, file, &config, &device)?;
    let d = &config.denoise;
    let beta =
        d.noise.beta().filter(|_| d.is_generator()).ok_or_else(|| ddmlab::Error::Other("not a DDPM run".into()))?;
    let schedule = VpSchedule::new(beta, d.timesteps);
    let p = config.model.patch;
    let source = config.data.clone();
    let set = source.load(data_root, ddmlab::data::Split::Test, config.model.image)?;
    let b = 128.min(set.len());
    let shape = config.model.image;
    let dims = [b, shape.channels, shape.height, shape.width];
    let x0: Vec<f32> = (0..b).flat_map(|i| set.image_f32(i)).collect();
    let x0 = Tensor::<4>::from_data(TensorData::new(x0, dims), &device); // [b, C, H, W]
    let classes = config.model.num_classes;
    let labels: Vec<usize> = (0..b).map(|i| set.labels[i] as usize).collect();
    let null = vec![classes; b];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    println!("| t | eps MSE (label) | eps MSE (null class) | x0_hat MSE |\n|---|---|---|---|");
    for t in [10usize, 100, 300, 500, 700, 900, 990].into_iter().filter(|&t| t < d.timesteps) {
        let (g, s) = (schedule.gamma(t), schedule.sigma(t));
        let e: Vec<f32> = (0..x0.shape().num_elements()).map(|_| StandardNormal.sample(&mut rng)).collect();
        let eps = Tensor::<4>::from_data(TensorData::new(e, dims), &device);
        let x_t = x0.clone() * g + eps.clone() * s;
        let ts = vec![t; b];
        let mse = |pred: Tensor<4>| -> f32 { (pred - eps.clone()).square().mean().into_scalar() };
        let net = |y: &[usize]| {
            let out = model.forward(patchify(x_t.clone(), p), &ts, (classes > 0).then_some(y));
            unpatchify(out, p, shape.channels, shape.height, shape.width)
        };
        let (cond, uncond) = (net(&labels), net(&null));
        let x0_err: f32 = ((x_t - cond.clone() * s) / g - x0.clone()).square().mean().into_scalar();
        println!("| {t} | {:.5} | {:.5} | {x0_err:.4} |", mse(cond), mse(uncond));
    }
    Ok(())
}
