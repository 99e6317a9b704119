//! The GPU code path: burn's `wgpu` backend computes what `flex` computes (CI runs these on
//! Mesa's lavapipe, a software Vulkan driver; they are compiled only with `--features wgpu`).
//!
//! Initial weights are drawn on the CPU for every device (`nn::init::seeded`) and the random
//! draws of training and sampling are host-side functions of the seed, so a run on the GPU
//! and its CPU twin see the same numbers; what may differ is float rounding (other kernels,
//! other summation orders). The tolerances below are stated per claim.

use burn::tensor::{Device, DeviceKind};
use ddmlab::diffusion::SamplerKind;
use ddmlab::generate::{SampleOptions, sample_images};
use ddmlab::recipes::preset;
use ddmlab::runs::pretrain;
use ddmlab::store::checkpoint;
use ddmlab::train::trainer_state;
use ddmlab::train::{Silent, run_folder};

use crate::common::{micro, micro_mar, no_grids, write_synthetic_fashion_mnist};

fn gpu() -> Device {
    Device::wgpu(DeviceKind::DefaultDevice)
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-12)
}

/// Four training steps of each tiny preset (l-DAE, class-conditional DiT, MAR) on the GPU
/// follow the CPU run's loss trajectory: forward, backward, gradient clipping, AdamW and the
/// learning-rate schedule all agree to 1e-3 relative (measured on lavapipe: about 1e-6).
/// MAR's head draws one noise level per token here rather than the paper's four: its rows then
/// match the backbone's, so lavapipe autotunes no second set of matmul shapes for them (the
/// repeat of four runs in the CPU tests of `mar::objective`).
#[test]
fn training_on_the_gpu_follows_the_cpu_trajectory() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let configs = [
        ("ldae-tiny", micro(preset("ldae-tiny").unwrap().config, 4)),
        ("dit-tiny", micro(preset("dit-tiny").unwrap().config, 4)),
        ("mar", {
            let mut config = micro_mar(4);
            config.mar.as_mut().expect("a MAR config").diffusion_repeat = 1;
            config
        }),
    ];
    for (name, config) in configs {
        let run = |device: &Device, folder: &str| {
            pretrain(config.clone(), &tmp.path().join(folder), &no_grids(tmp.path()), device, &mut Silent)
                .unwrap()
                .losses
        };
        let cpu = run(&Device::flex(), &format!("{name}-cpu"));
        let gpu = run(&gpu(), &format!("{name}-gpu"));
        assert_eq!(cpu.len(), 4);
        for (step, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
            eprintln!("{name} step {step}: cpu {a:.7} gpu {b:.7}");
            assert!(relative(*a, *b) < 1e-3, "{name} step {step}: loss {a} on the CPU, {b} on the GPU");
        }
    }
}

/// Conv KL tokenizer training (autoencoder, KL, perceptual classifier, PatchGAN with its hinge
/// loss and adaptive weight, Adam) on the GPU follows the CPU run to 1e-5 relative (measured on
/// lavapipe: 2e-7). Step 0 trains the autoencoder alone; the adversarial terms are on from
/// step 1, and steps 2 and 3 show the first adversarial updates. Two burn fused-kernel misreads
/// were caught here: the fused `relu` under autodiff doubled the hinge loss (see
/// `ae_losses::hinge_d_loss`), and a non-contiguous input gradient of the PatchGAN made the
/// autoencoder's first adversarial gradient ~1e12 times too large, which Adam's normalised
/// step turned into a 2e-3 loss difference, only under some fusion schedules (`CUBECL_DEBUG_LOG`
/// set made it certain; see `nn::grads`). One shard on both devices: the discriminator's
/// BatchNorm normalises per shard. The GPU run loads the perceptual classifier that the CPU run
/// trained (as a resumed run does), so both train against the same frozen network and the GPU
/// autotunes only the tokenizer's shapes; the checkpoint's evaluation runs at the training batch
/// for the same reason (each new shape costs lavapipe every candidate kernel, compiled by LLVM).
#[test]
fn conv_tokenizer_training_on_the_gpu_follows_the_cpu() {
    use ddmlab::runs::tokenizer::{AeMetricLine, TokenizerTrainOptions, train_tokenizer};
    use ddmlab::store::metrics;
    use ddmlab::train::perceptual::perceptual_path;

    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let mut config = ddmlab::recipes::tokenizer_preset("kl-tiny").unwrap().config;
    config.train_limit = 32;
    config.train.steps = 4;
    config.train.checkpoint_every = 4;
    config.train.log_every = 1;
    config.loss.disc_start = 1;
    config.train.eval_images = config.train.batch_size;
    let options = TokenizerTrainOptions { data_root: tmp.path().to_path_buf(), ..Default::default() };
    let run = |device: &Device, folder: &str| {
        let dir = tmp.path().join(folder);
        train_tokenizer(config.clone(), &dir, &options, device, &mut Silent).unwrap();
        metrics::read::<AeMetricLine>(&dir.join("metrics.jsonl"))
            .unwrap()
            .iter()
            .map(|m| (m.stats.loss, m.stats.d_loss))
            .collect::<Vec<_>>()
    };
    // One rayon worker: the CPU run steps in one shard, as the GPU does.
    let one_worker = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let cpu = one_worker.install(|| run(&Device::flex(), "cpu"));
    std::fs::create_dir_all(tmp.path().join("gpu")).unwrap();
    std::fs::copy(perceptual_path(&tmp.path().join("cpu")), perceptual_path(&tmp.path().join("gpu"))).unwrap();
    let gpu = run(&gpu(), "gpu");
    assert_eq!(cpu.len(), 4);
    for (step, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
        eprintln!("step {step}: cpu loss {:.7} d_loss {:.7}, gpu {:.7} {:.7}", a.0, a.1, b.0, b.1);
        let tolerance = 1e-5;
        assert_eq!(a.1 > 0.0, step >= 1, "step {step}: the discriminator trains from step 1");
        assert!(relative(a.0, b.0) < tolerance, "step {step}: loss {} on the CPU, {} on the GPU", a.0, b.0);
        assert!(relative(a.1, b.1) < tolerance, "step {step}: d_loss {} on the CPU, {} on the GPU", a.1, b.1);
    }
}

/// DDIM sampling with guidance (network, guidance, update rule, the tokenizer's decode) from
/// the same checkpoint gives the same images on both devices within 1e-3 per pixel.
#[test]
fn guided_ddim_sampling_on_the_gpu_matches_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let run = tmp.path().join("dit");
    let config = micro(preset("dit-tiny").unwrap().config, 6);
    pretrain(config, &run, &no_grids(tmp.path()), &Device::flex(), &mut Silent).unwrap();
    let ckpt = checkpoint::resolve(Some(&run), "latest").unwrap();
    let (config, _) = trainer_state::read_meta(&ckpt).unwrap();
    let opts = SampleOptions {
        kind: SamplerKind::Ddim { eta: 0.0 },
        steps: 4,
        cfg: 2.5,
        labels: vec![0, 3, 7],
        n: 3,
        seed: 11,
        chunk: 3,
        clip_x0: true,
    };
    let sample = |device: &Device| {
        let model = trainer_state::load_weights(&ckpt, "ema.bpk", &config, device).unwrap();
        let tok = run_folder::load_tokenizer(&run, &config).unwrap().bind(config.model.image, device);
        sample_images(&model, &config, tok.as_ref(), &opts, device, &|| ()).unwrap()
    };
    let (cpu, gpu) = (sample(&Device::flex()), sample(&gpu()));
    let worst = cpu.iter().flatten().zip(gpu.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    eprintln!("largest pixel difference {worst:.2e}");
    assert_eq!(cpu.len(), 3);
    assert!(worst < 1e-3, "largest pixel difference {worst}");
}

/// MAR generation (random order, guidance, the head's DDPM sampler with temperature) from the
/// same weights gives the same tokens on both devices within 1e-3 relative.
#[test]
fn mar_generation_on_the_gpu_matches_the_cpu() {
    use ddmlab::diffusion::{BetaSchedule, VpSchedule};
    use ddmlab::mar::{MarSampling, MarSpec, generate};

    let config = micro_mar(1);
    let spec = MarSpec::of(&config).unwrap();
    let schedule = VpSchedule::new(BetaSchedule::cosine(), 1000);
    let sampling = MarSampling { steps: 4, head_steps: 8, temperature: 0.95, cfg: 2.0 };
    let tokens = |device: &Device| -> Vec<f32> {
        let net = config.mar_network().unwrap();
        let model = ddmlab::nn::init::seeded(device, 5, |device| {
            // A trained-looking head: its zero-initialised layers given values, so that the
            // tokens depend on the backbone's z (a fresh head ignores it).
            let mut model = net.init(device);
            let fill = |l: burn::nn::Linear| {
                let [d_in, d_out] = l.weight.dims();
                ddmlab::nn::init::xavier_linear(d_in, d_out, device)
            };
            model.head.output = fill(model.head.output);
            model.head.final_ada = fill(model.head.final_ada);
            for block in &mut model.head.blocks {
                block.ada = fill(block.ada.clone());
            }
            model
        });
        generate(&model, &spec, None, &schedule, &sampling, &[1, 4], 9, device)
            .unwrap()
            .into_data()
            .try_into_vec()
            .unwrap()
    };
    let (cpu, gpu) = (tokens(&Device::flex()), tokens(&gpu()));
    // An untrained head's tokens reach 1e4 (its x0 estimates divide by sqrt(alpha_bar) near t =
    // T, and tokens are not clipped), and the chain of guided steps carries rounding along: the
    // tolerance is relative to the value's size (measured on lavapipe: 5e-5).
    let worst = cpu.iter().zip(&gpu).map(|(a, b)| (a - b).abs() / a.abs().max(1.0)).fold(0f32, f32::max);
    eprintln!("largest token difference {worst:.2e} relative");
    assert_eq!(cpu.len(), gpu.len());
    assert!(worst < 1e-3, "largest token difference {worst} relative");
}

/// The FID Inception network on the GPU matches the PyTorch reference features as closely as
/// on the CPU (tests/integration/inception.rs), on two of its eight images, one at a time: every
/// convolution shape is autotuned on its first call by running each candidate kernel on the
/// call's own input, and on lavapipe that tuning, not the features, is most of the test's time
/// (measured: 2-22 s per 3x3 shape and 36-50 s per 1x1 shape at batch 4), so the batch sets it.
#[test]
fn inception_on_the_gpu_matches_the_pytorch_reference() {
    crate::common::inception_matches_the_pytorch_reference(&gpu(), 2, 1);
}
