//! Claims about conv tokenizer training (`ddmlab tokenizer train`), on a synthetic
//! Fashion-MNIST-shaped data set (tests never download).

mod common;

use burn::tensor::Device;
use ddmlab::config::tokenizer::TokenizerRunConfig;
use ddmlab::models::tokenizer_preset;
use ddmlab::train::Silent;
use ddmlab::train::metrics;
use ddmlab::train::tokenizer_run::{AeMetricLine, TokenizerTrainOptions, train_tokenizer};

use common::write_synthetic_fashion_mnist;

fn tiny() -> TokenizerRunConfig {
    let mut c = tokenizer_preset("kl-tiny").unwrap().config;
    c.train_limit = 64;
    c.train.steps = 8;
    c.train.checkpoint_every = 4;
    c.train.log_every = 1;
    c.loss.disc_start = 3; // the adversarial terms (and their adaptive weight) are on for the resumed steps
    c
}

fn options(root: &std::path::Path, resume: bool, stop: Option<usize>) -> TokenizerTrainOptions {
    TokenizerTrainOptions { data_root: root.to_path_buf(), resume, stop_after_steps: stop, ..Default::default() }
}

fn losses(run: &std::path::Path) -> Vec<(usize, f64, f64, f64)> {
    metrics::read::<AeMetricLine>(&run.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|m| (m.step, m.stats.loss, m.stats.d_weight, m.stats.d_loss))
        .collect()
}

#[test]
fn resumed_tokenizer_training_reproduces_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let run_a = tmp.path().join("a");
    train_tokenizer(tiny(), &run_a, &options(tmp.path(), false, None), &device, &mut Silent).unwrap();

    // Killed between checkpoints: stopped at step 6, rolled back to the step-4 checkpoint.
    let run_b = tmp.path().join("b");
    train_tokenizer(tiny(), &run_b, &options(tmp.path(), false, Some(6)), &device, &mut Silent).unwrap();
    std::fs::remove_dir_all(run_b.join("checkpoints/step-000006")).unwrap();
    std::fs::write(run_b.join("checkpoints/latest"), "step-000004").unwrap();
    let summary = train_tokenizer(tiny(), &run_b, &options(tmp.path(), true, None), &device, &mut Silent).unwrap();
    assert_eq!(summary.step, 8);

    let (a, b) = (losses(&run_a), losses(&run_b));
    assert_eq!(a.iter().map(|l| l.0).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    assert_eq!(b.iter().map(|l| l.0).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>(), "each step logged once");
    assert!(a[4..].iter().all(|l| l.2 > 0.0 && l.3 > 0.0), "the discriminator is on after step 3: {a:?}");
    for (x, y) in a.iter().zip(&b) {
        // The autoencoder, discriminator, both optimisers, the posterior noise and the batches
        // must all come back: any one of them wrong moves these by far more than 1e-4.
        for (u, v) in [(x.1, y.1), (x.2, y.2), (x.3, y.3)] {
            assert!((u - v).abs() <= 1e-4 * u.abs().max(1.0), "step {}: uninterrupted {u} vs resumed {v}", x.0);
        }
    }
    // Each checkpoint was evaluated once, in both runs, with the same numbers.
    let recon = |run: &std::path::Path| ddmlab::train::tokenizer_run::read_recon(run).unwrap();
    let (ra, rb) = (recon(&run_a), recon(&run_b));
    assert_eq!(ra.iter().map(|r| r.step).collect::<Vec<_>>(), vec![4, 8]);
    assert_eq!(rb.iter().map(|r| r.step).collect::<Vec<_>>(), vec![4, 8]);
    assert!((ra[1].mse - rb[1].mse).abs() < 1e-4 * ra[1].mse, "{} vs {}", ra[1].mse, rb[1].mse);
    assert!(run_a.join("recon-step-000008.png").exists());
}

#[test]
fn a_corrupt_tokenizer_checkpoint_is_one_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let device = Device::flex();
    let run = tmp.path().join("r");
    train_tokenizer(tiny(), &run, &options(tmp.path(), false, Some(4)), &device, &mut Silent).unwrap();
    for file in ["ae.bpk", "disc-optim.bpk"] {
        let path = run.join("checkpoints/step-000004").join(file);
        let original = std::fs::read(&path).unwrap();
        std::fs::write(&path, &original[..original.len() / 3]).unwrap();
        let err = train_tokenizer(tiny(), &run, &options(tmp.path(), true, None), &device, &mut Silent)
            .unwrap_err()
            .to_string();
        assert!(err.contains(file) && !err.contains('\n'), "{file}: {err}");
        std::fs::write(&path, original).unwrap();
    }
    // A fresh start over a run with checkpoints is refused rather than overwriting it.
    let err = train_tokenizer(tiny(), &run, &options(tmp.path(), false, None), &device, &mut Silent).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
}

#[test]
fn invalid_tokenizer_settings_are_named() {
    let c = tiny();
    for (set, field) in [
        ("loss.kl_weight=-1", "loss.kl_weight"),
        ("model.groups=3", "model.groups"),
        ("loss.disc_layers=5", "loss.disc_layers"),
        ("train.eval_images=1", "train.eval_images"),
    ] {
        let err = c.with_override(set).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains(field), "{set}: {err}");
    }
    let err = c.with_override("loss.colour=1").unwrap_err().to_string();
    assert!(err.contains("colour"), "{err}");
}
