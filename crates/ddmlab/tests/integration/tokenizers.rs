//! Claims about every tokenizer behind the `Tokenizer` trait, on synthetic correlated images:
//! the patch AE / VAE learn (their held-out error falls and ends near PCA's optimum at the same
//! size), the VAE's KL term is its closed form, unit scaling gives unit variance, fitted
//! tokenizers round-trip through their files, and a corrupt or mismatched file is one error
//! naming it.

use burn::tensor::{Device, Tensor, TensorData};
use ddmlab::data::{ImageSet, ImageShape};
use ddmlab::tokenizer::patch_ae::kl_divergence;
use ddmlab::tokenizer::{FittedTokenizer, LatentScale, TokenizerSpec};
use rand::{RngExt, SeedableRng};

const SHAPE: ImageShape = ImageShape { channels: 1, height: 8, width: 8 };

/// 1500 8x8 grey images: a smooth random field (4 degrees of freedom) plus a little noise.
fn synthetic_set() -> ImageSet {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut images = Vec::new();
    for _ in 0..1500 {
        let c: [f32; 4] = std::array::from_fn(|_| rng.random_range(-1.0..1.0));
        for y in 0..8 {
            for x in 0..8 {
                let (u, v) = (x as f32 / 8.0, y as f32 / 8.0);
                let s = c[0] + c[1] * u + c[2] * v + c[3] * (u * v * 4.0).sin() + rng.random_range(-0.05..0.05);
                images.push(((s.clamp(-2.0, 2.0) + 2.0) / 4.0 * 255.0) as u8);
            }
        }
    }
    ImageSet { images, labels: vec![0; 1500], shape: SHAPE, classes: vec!["x".into()] }
}

fn ae(latent_dim: usize, variational: bool, steps: usize) -> TokenizerSpec {
    if variational {
        TokenizerSpec::PatchVae {
            patch: 4,
            latent_dim,
            samples: 6000,
            steps,
            kl_weight: 1e-3,
            scale: LatentScale::Unit,
            seed: 0,
        }
    } else {
        TokenizerSpec::PatchAe { patch: 4, latent_dim, samples: 6000, steps, scale: LatentScale::Unit, seed: 0 }
    }
}

fn pca(latent_dim: usize) -> TokenizerSpec {
    TokenizerSpec::Pca { patch: 4, latent_dim, samples: 6000, scale: LatentScale::Unit, seed: 0 }
}

/// The variance per pixel of the set's 4x4 patches (the error of a code of size 0).
fn total_variance(set: &ImageSet) -> f64 {
    let pixels: Vec<f64> = (0..set.len()).flat_map(|i| set.image_f32(i)).map(f64::from).collect();
    let mut var = 0.0;
    for k in 0..64 {
        let column: Vec<f64> = pixels.iter().skip(k).step_by(64).copied().collect();
        let m = column.iter().sum::<f64>() / column.len() as f64;
        var += column.iter().map(|v| (v - m).powi(2)).sum::<f64>() / column.len() as f64;
    }
    var / 64.0
}

#[test]
fn patch_ae_and_vae_errors_fall_during_fitting_and_end_near_pca_at_the_same_d() {
    let set = synthetic_set();
    let device = Device::flex();
    let total = total_variance(&set);
    for d in [2, 4] {
        let (_, pca_report) = FittedTokenizer::fit(&pca(d), &set, &device).unwrap();
        let optimum = pca_report.reconstruction_mse;
        for variational in [false, true] {
            let (_, report) = FittedTokenizer::fit(&ae(d, variational, 1500), &set, &device).unwrap();
            let first = report.curve[0].1;
            let last = report.reconstruction_mse;
            assert!(report.curve.len() >= 16, "a point every 100 steps: {:?}", report.curve);
            assert!(last < 0.05 * first, "d={d} vae={variational}: error {first} -> {last}");
            // PCA is the best linear code of d dimensions: the AE explains nearly as much of the
            // patch variance, and no more (up to the held-out patches differing from PCA's).
            let (explained, best) = (1.0 - last / total, 1.0 - optimum / total);
            assert!(explained > 0.99 * best, "d={d} vae={variational}: explains {explained:.4} vs PCA {best:.4}");
            assert!(last > 0.8 * optimum, "d={d} vae={variational}: {last} below PCA's optimum {optimum}?");
        }
    }
}

#[test]
fn vae_kl_term_matches_its_closed_form() {
    let device = Device::flex();
    // Row 1: mu = (1, 0), log var = (0, ln 4): 1/2 [(1 + 1 - 1 - 0) + (0 + 4 - 1 - ln 4)].
    // Row 2: mu = (0, 0), log var = (0, 0): 0. The term is the mean over rows.
    let mu = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0], [2, 2]), &device);
    let lv = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 4f32.ln(), 0.0, 0.0], [2, 2]), &device);
    let want = 0.5 * (1.0 + 3.0 - 4f64.ln()) / 2.0;
    let got = kl_divergence(mu, lv).into_scalar::<f32>() as f64;
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
}

#[test]
fn unit_scale_gives_the_training_latents_unit_variance() {
    let set = synthetic_set();
    let device = Device::flex();
    for spec in [pca(3), ae(3, false, 300), TokenizerSpec::Pixels { patch: 4, scale: LatentScale::Unit }] {
        let (fitted, _) = FittedTokenizer::fit(&spec, &set, &device).unwrap();
        let tok = fitted.bind(SHAPE, &device);
        let x: Vec<f32> = (0..500).flat_map(|i| set.image_f32(i)).collect();
        let z: Vec<f32> = tok
            .encode(Tensor::from_data(TensorData::new(x, [500, 1, 8, 8]), &device))
            .into_data()
            .try_into_vec()
            .unwrap();
        let n = z.len() as f64;
        let m = z.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = z.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n;
        assert!((var - 1.0).abs() < 0.1, "{}: latent variance {var}", spec.kind());
    }
}

#[test]
fn vae_samples_around_its_mean_and_decodes_what_it_encodes() {
    let set = synthetic_set();
    let device = Device::flex();
    let (fitted, _) = FittedTokenizer::fit(&ae(4, true, 600), &set, &device).unwrap();
    let tok = fitted.bind(SHAPE, &device);
    assert!(tok.stochastic());
    let x: Vec<f32> = (0..8).flat_map(|i| set.image_f32(i)).collect();
    let x = Tensor::<4>::from_data(TensorData::new(x, [8, 1, 8, 8]), &device);
    let mean = tok.encode(x.clone());
    let zero = tok.encode_sample(x.clone(), mean.zeros_like());
    assert_eq!(
        mean.clone().into_data().try_into_vec::<f32>().unwrap(),
        zero.into_data().try_into_vec::<f32>().unwrap()
    );
    let sample = tok.encode_sample(x.clone(), mean.ones_like());
    let gap = (sample - mean.clone()).abs().mean().into_scalar::<f32>();
    assert!(gap > 0.0 && gap < 1.0, "posterior std in latent units {gap}");
    let err = (tok.decode(mean) - x).square().mean().into_scalar::<f32>();
    assert!(err < 0.05, "reconstruction error {err}");
}

#[test]
fn fitted_tokenizers_round_trip_through_their_files() {
    let set = synthetic_set();
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    for spec in
        [pca(3), ae(3, false, 100), ae(3, true, 100), TokenizerSpec::Pixels { patch: 2, scale: LatentScale::Unit }]
    {
        let (fitted, _) = FittedTokenizer::fit(&spec, &set, &device).unwrap();
        let path = dir.path().join(spec.file_name());
        fitted.save(&path).unwrap();
        let loaded = FittedTokenizer::load(&spec, &path, 1).unwrap();
        // f64 values are stored exactly.
        assert_eq!(loaded, fitted, "{}", spec.kind());
    }
}

#[test]
fn a_corrupt_or_mismatched_tokenizer_file_is_one_error_naming_it() {
    let set = synthetic_set();
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let (fitted, _) = FittedTokenizer::fit(&ae(3, false, 50), &set, &device).unwrap();
    let path = dir.path().join("patch-ae.safetensors");
    fitted.save(&path).unwrap();
    // Another kind, another size.
    let err = FittedTokenizer::load(&ae(3, true, 50), &path, 1).unwrap_err().to_string();
    assert!(err.contains("patch-ae.safetensors") && err.contains("kind"), "{err}");
    let err = FittedTokenizer::load(&ae(5, false, 50), &path, 1).unwrap_err().to_string();
    assert!(err.contains("latent_dim = 3") && err.contains("5"), "{err}");
    // Truncated, and garbage.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = FittedTokenizer::load(&ae(3, false, 50), &path, 1).unwrap_err().to_string();
    assert!(err.contains("patch-ae.safetensors") && err.contains("not a safetensors"), "{err}");
    std::fs::write(&path, b"not a tokenizer").unwrap();
    let err = FittedTokenizer::load(&pca(3), &path, 1).unwrap_err().to_string();
    assert!(err.contains("patch-ae.safetensors"), "{err}");
    let err = FittedTokenizer::load(&pca(3), &dir.path().join("absent.safetensors"), 1).unwrap_err().to_string();
    assert!(err.contains("absent.safetensors"), "{err}");
}
