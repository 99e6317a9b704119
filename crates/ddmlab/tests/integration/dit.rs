//! Claims about class-conditional DiT training (the DDPM objective through the shared training
//! loop) and sampling, on a synthetic Fashion-MNIST-shaped data set (tests never download).

use burn::tensor::Device;
use ddmlab::config::RunConfig;
use ddmlab::diffusion::SamplerKind;
use ddmlab::generate::{SampleOptions, sample_images};
use ddmlab::recipes::preset;
use ddmlab::runs::pretrain;
use ddmlab::store::checkpoint;
use ddmlab::train::trainer_state;
use ddmlab::train::{Silent, run_folder};

use crate::common::{micro, options, write_synthetic_fashion_mnist};

/// A very small class-conditional DiT config.
fn micro_dit(steps: usize) -> RunConfig {
    micro(preset("dit-tiny").unwrap().config, steps)
}

#[test]
fn resumed_dit_run_reproduces_the_uninterrupted_loss_trajectory() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let config = micro_dit(7);
    let whole =
        pretrain(config.clone(), &tmp.path().join("a"), &options(tmp.path(), false, None), &device, &mut Silent)
            .unwrap();
    assert!(!tmp.path().join("a/pca.safetensors").exists(), "a pixel-space DiT fits no PCA");
    assert!(tmp.path().join("a/pixels.safetensors").exists(), "its pixel tokenizer is saved with the run");

    let run_b = tmp.path().join("b");
    pretrain(config.clone(), &run_b, &options(tmp.path(), false, Some(3)), &device, &mut Silent).unwrap();
    let resumed = pretrain(config, &run_b, &options(tmp.path(), true, None), &device, &mut Silent).unwrap();
    assert_eq!(resumed.losses.len(), 4);
    assert_eq!(whole.losses[3..], resumed.losses[..], "uninterrupted vs resumed");
    // The saved config says what was trained.
    let (saved, _) = trainer_state::read_meta(&checkpoint::latest(&run_b).unwrap().unwrap()).unwrap();
    assert!(saved.denoise.is_generator() && saved.model.num_classes == 10);
}

#[test]
fn dit_training_lowers_the_noise_prediction_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let mut config = micro_dit(40);
    config.train.checkpoint_every = 40;
    config.train.blr = 3e-2; // lr 2e-3 at batch 16
    let s = pretrain(config, &tmp.path().join("r"), &options(tmp.path(), false, None), &Device::flex(), &mut Silent)
        .unwrap();
    // adaLN-Zero starts at output 0, so the eps loss starts at E[eps^2] = 1.
    let first: f64 = s.losses[..3].iter().sum::<f64>() / 3.0;
    assert!((first - 1.0).abs() < 0.15, "initial eps MSE {first}");
    let last: f64 = s.losses[35..].iter().sum::<f64>() / 5.0;
    assert!(last < 0.7 * first, "loss went from {first} to {last}");
}

#[test]
fn sampling_is_deterministic_per_seed_and_guided_samples_differ() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let run = tmp.path().join("r");
    pretrain(micro_dit(6), &run, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
    let ckpt = checkpoint::resolve(Some(&run), "latest").unwrap();
    let (config, _) = trainer_state::read_meta(&ckpt).unwrap();
    let model = trainer_state::load_weights(&ckpt, "model.bpk", &config, &device).unwrap();
    let tok = run_folder::load_tokenizer(&run, &config).unwrap().bind(config.model.image, &device);
    let tok = tok.as_ref();
    let opts = SampleOptions {
        kind: SamplerKind::Ddim { eta: 0.0 },
        steps: 5,
        cfg: 1.0,
        labels: vec![0, 1, 2, 3, 4],
        n: 5,
        seed: 7,
        chunk: 2,
        clip_x0: true,
    };
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let count = || {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let a = sample_images(&model, &config, tok, &opts, &device, &count).unwrap();
    assert_eq!(calls.into_inner(), 3 * 5, "3 chunks of 5 steps");
    assert_eq!(a.len(), 5);
    assert!(a.iter().all(|img| img.len() == 28 * 28 && img.iter().all(|v| (-1.0..=1.0).contains(v))));
    let again = sample_images(&model, &config, tok, &opts, &device, &|| ()).unwrap();
    assert_eq!(a, again, "same seed, same images");
    let other =
        sample_images(&model, &config, tok, &SampleOptions { seed: 8, ..opts.clone() }, &device, &|| ()).unwrap();
    assert_ne!(a, other, "another seed, other images");
    let guided =
        sample_images(&model, &config, tok, &SampleOptions { cfg: 3.0, ..opts.clone() }, &device, &|| ()).unwrap();
    assert_ne!(a, guided, "guidance changes the samples");

    // Bad requests name what is wrong.
    let err =
        sample_images(&model, &config, tok, &SampleOptions { labels: vec![11; 5], ..opts.clone() }, &device, &|| ())
            .unwrap_err()
            .to_string();
    assert!(err.contains("class") && err.contains("0..=9"), "{err}");
    let err = sample_images(&model, &config, tok, &SampleOptions { steps: 0, ..opts }, &device, &|| ()).unwrap_err();
    assert!(err.to_string().contains("steps"), "{err}");
}

#[test]
fn a_latent_space_dit_trains_on_pca_latents_and_samples_images() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let mut config = micro_dit(4);
    config.denoise.tokenizer = ddmlab::tokenizer::TokenizerSpec::Pca {
        patch: 4,
        latent_dim: 8,
        samples: 2000,
        scale: ddmlab::tokenizer::LatentScale::Unit,
        seed: 0,
    };
    config.validate().unwrap();
    let net = config.network();
    assert_eq!((net.in_dim, net.out_dim, net.tokens()), (Some(8), Some(8), 49), "one token of d = 8 per 4x4 patch");
    let run = tmp.path().join("r");
    let s = pretrain(config, &run, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();
    assert!(s.losses.iter().all(|l| l.is_finite()));
    assert!(run.join("pca.safetensors").exists(), "the latent's PCA is fitted and saved with the run");

    let ckpt = checkpoint::resolve(Some(&run), "latest").unwrap();
    let (config, _) = trainer_state::read_meta(&ckpt).unwrap();
    let model = trainer_state::load_weights(&ckpt, "ema.bpk", &config, &device).unwrap();
    let tok = run_folder::load_tokenizer(&run, &config).unwrap().bind(config.model.image, &device);
    assert_eq!(tok.grid_shape().channels, 8, "the sampler runs on the [d, H/p, W/p] latent");
    let opts = SampleOptions {
        kind: SamplerKind::Ddim { eta: 0.0 },
        steps: 4,
        cfg: 2.0,
        labels: vec![1, 2, 3],
        n: 3,
        seed: 0,
        chunk: 3,
        clip_x0: true,
    };
    let images = sample_images(&model, &config, tok.as_ref(), &opts, &device, &|| ()).unwrap();
    assert!(images.iter().all(|img| img.len() == 28 * 28 && img.iter().all(|v| (-1.0..=1.0).contains(v))));
}
