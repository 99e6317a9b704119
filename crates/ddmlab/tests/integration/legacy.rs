//! Configs and run folders written before the `[denoise]` section (`[ldae]`, `[ddpm]`) load as
//! the same objective and train on with the same losses. The fixtures were written by ddmlab at
//! commit 71f17db: a micro l-DAE and a micro DiT run (seed 3, batch 8, 6 steps, checkpoints at
//! 3 and 6) on the synthetic data of `common`, with the step-6 checkpoint removed and the losses
//! of all 6 steps kept in `expected-losses.json`.

use std::path::Path;

use burn::tensor::Device;
use ddmlab::config::RunConfig;
use ddmlab::diffusion::{InputSpace, LossWeight, NoiseSchedule, Target};
use ddmlab::recipes::preset;
use ddmlab::runs::pretrain;
use ddmlab::tokenizer::{LatentScale, TokenizerSpec};
use ddmlab::train::Silent;

use crate::common::{options, write_synthetic_fashion_mnist};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Resume the fixture run `name` for its last 3 steps and compare with the losses it had.
fn resumes_with_the_losses_it_had(name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_fashion_mnist(tmp.path());
    let run = tmp.path().join("run");
    copy_dir(&fixture(name), &run);
    let expected: Vec<f64> =
        serde_json::from_str(&std::fs::read_to_string(run.join("expected-losses.json")).unwrap()).unwrap();
    // The config argument is ignored on resume: the checkpoint's (legacy) config is used.
    let placeholder = preset("ldae-tiny").unwrap().config;
    let s = pretrain(placeholder, &run, &options(tmp.path(), true, None), &Device::flex(), &mut Silent).unwrap();
    assert_eq!(s.losses.len(), 3);
    for (a, b) in expected[3..].iter().zip(&s.losses) {
        assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{name}: before {a} vs now {b}");
    }
}

#[test]
fn a_legacy_ldae_run_resumes_with_the_losses_it_had() {
    resumes_with_the_losses_it_had("legacy-ldae-tiny");
}

#[test]
fn a_legacy_dit_run_resumes_with_the_losses_it_had() {
    resumes_with_the_losses_it_had("legacy-dit-tiny");
}

#[test]
fn legacy_sections_become_the_equivalent_denoise_settings() {
    let read =
        |path: std::path::PathBuf| RunConfig::from_toml(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
    let ldae = read(fixture("legacy-ldae-tiny/config.toml"));
    let d = &ldae.denoise;
    assert_eq!(
        (d.input, d.target, d.residual_weight, d.loss_weight),
        (InputSpace::Image, Target::Image, Some(0.1), LossWeight::InvOnePlusSigma2)
    );
    assert_eq!(d.noise, NoiseSchedule::ldae());
    assert!(matches!(
        d.tokenizer,
        TokenizerSpec::Pca { patch: 4, latent_dim: 4, samples: 2000, scale: LatentScale::None, seed: 3 }
    ));
    ldae.validate().unwrap();

    let dit = read(fixture("legacy-dit-tiny/config.toml"));
    assert!(dit.denoise.is_generator() && dit.denoise.target == Target::Eps && dit.denoise.class_dropout == 0.1);
    assert!(matches!(dit.denoise.tokenizer, TokenizerSpec::Pixels { patch: 4, scale: LatentScale::None }));
    dit.validate().unwrap();

    // A latent-space DiT read the [d, H/p, W/p] latent with patch 1: as tokens, one per PCA patch.
    let latent = read(fixture("legacy-dit-fmnist-pca.toml"));
    assert_eq!(latent.model.patch, 4);
    assert!(matches!(
        latent.denoise.tokenizer,
        TokenizerSpec::Pca { patch: 4, latent_dim: 8, scale: LatentScale::Unit, .. }
    ));
    assert_eq!(latent, preset("dit-fmnist-pca").unwrap().config, "the preset today is the same run");
    // Written back, it is a [denoise] config that reads as itself.
    let text = latent.to_toml();
    assert!(text.contains("[denoise]") && !text.contains("[ddpm]"));
    assert_eq!(RunConfig::from_toml(&text, Path::new("c.toml")).unwrap(), latent);
}
