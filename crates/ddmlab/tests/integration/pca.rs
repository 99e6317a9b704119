//! Claims about the patch-PCA tokenizer, checked on synthetic correlated patches.

use burn::tensor::{Device, Tensor, TensorData};
use ddmlab::data::{ImageSet, ImageShape};
use ddmlab::tokenizer::PatchPca;
use rand::{RngExt, SeedableRng};

/// 2000 random 6x6 RGB images whose pixels are correlated (a smooth field plus noise).
fn synthetic_set() -> ImageSet {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let shape = ImageShape { channels: 3, height: 6, width: 6 };
    let mut images = Vec::new();
    for _ in 0..2000 {
        let (a, b, c): (f32, f32, f32) =
            (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
        for ch in 0..3 {
            for y in 0..6 {
                for x in 0..6 {
                    let v =
                        a + b * x as f32 / 6.0 + c * y as f32 / 6.0 * (ch as f32 + 1.0) + rng.random_range(-0.1..0.1);
                    images.push(((v.clamp(-1.5, 1.5) + 1.5) / 3.0 * 255.0) as u8);
                }
            }
        }
    }
    ImageSet { images, labels: vec![0; 2000], shape, classes: vec!["x".into()] }
}

fn fitted() -> PatchPca {
    PatchPca::fit(&synthetic_set(), 2, 20_000, 1).unwrap()
}

#[test]
fn pca_basis_is_orthonormal() {
    let pca = fitted();
    let d = pca.dim();
    assert_eq!(d, 12);
    for a in 0..d {
        for b in 0..d {
            let dot: f64 = (0..d).map(|i| pca.components[i * d + a] * pca.components[i * d + b]).sum();
            let want = if a == b { 1.0 } else { 0.0 };
            assert!((dot - want).abs() < 1e-10, "<v{a}, v{b}> = {dot}");
        }
    }
}

/// A truncated basis keeps `d` coordinates and discards the rest: the residual
/// `r = x - decode(encode(x, d))` is orthogonal to the kept components, equals the projection on
/// the discarded ones, splits the centred norm (`|x - mu|^2 = |z|^2 + |r|^2`), and its mean square
/// over the data is the discarded variance (the sum of the discarded eigenvalues). With all
/// `D` components the residual is 0. An orthonormal basis that is not the covariance's
/// eigenbasis, or components sorted the wrong way, fails the last identity.
#[test]
fn pca_residual_of_a_truncated_basis_is_the_discarded_variance() {
    let pca = fitted();
    let dim = pca.dim();
    let set = synthetic_set();
    let patches: Vec<Vec<f64>> =
        (0..2000).map(|i| ddmlab::nn::patchify::patch_vector(&set.image_f32(i), 3, 6, 2, i % 3, (i / 3) % 3)).collect();
    let v = |k: usize, i: usize| pca.components[i * dim + k];
    for d in [1, 3, 6, dim] {
        let mut mean_sq = 0.0;
        for x in &patches {
            let z = pca.encode(x, d);
            let back = pca.decode(&z);
            let r: Vec<f64> = x.iter().zip(&back).map(|(a, b)| a - b).collect();
            let centred: Vec<f64> = x.iter().zip(&pca.mean).map(|(a, m)| a - m).collect();
            for k in 0..d {
                let dot: f64 = (0..dim).map(|i| v(k, i) * r[i]).sum();
                assert!(dot.abs() < 1e-10, "d = {d}: residual . v{k} = {dot}");
            }
            let projected: Vec<f64> = (0..dim)
                .map(|i| (d..dim).map(|k| v(k, i) * (0..dim).map(|j| v(k, j) * centred[j]).sum::<f64>()).sum())
                .collect();
            for (a, b) in r.iter().zip(&projected) {
                assert!((a - b).abs() < 1e-10, "d = {d}: residual {a} vs projection on the discarded components {b}");
            }
            let norm = |u: &[f64]| u.iter().map(|a| a * a).sum::<f64>();
            assert!((norm(&centred) - norm(&z) - norm(&r)).abs() < 1e-9 * norm(&centred).max(1.0));
            mean_sq += norm(&r) / patches.len() as f64;
        }
        let discarded: f64 = pca.eigenvalues[d..].iter().sum();
        if d == dim {
            assert!(mean_sq < 1e-20, "all components: residual {mean_sq}");
        } else {
            let rel = (mean_sq - discarded).abs() / discarded;
            assert!(rel < 0.05, "d = {d}: mean squared residual {mean_sq} vs discarded variance {discarded}");
        }
    }
}

#[test]
fn pca_reconstruction_error_falls_as_d_grows() {
    let pca = fitted();
    let set = synthetic_set();
    let patches: Vec<Vec<f64>> =
        (0..200).map(|i| ddmlab::nn::patchify::patch_vector(&set.image_f32(i), 3, 6, 2, i % 3, (i / 3) % 3)).collect();
    let err = |d: usize| -> f64 {
        patches
            .iter()
            .map(|x| pca.decode(&pca.encode(x, d)).iter().zip(x).map(|(a, b)| (a - b).powi(2)).sum::<f64>())
            .sum()
    };
    let errors: Vec<f64> = (1..=12).map(err).collect();
    for w in errors.windows(2) {
        assert!(w[1] <= w[0] + 1e-9, "error rose: {errors:?}");
    }
    assert!(errors[11] < 1e-12 && errors[0] > errors[5]);
}

#[test]
fn pca_explained_variance_is_sorted_and_sums_to_one() {
    let pca = fitted();
    let r = pca.explained_variance_ratio();
    assert!(r.windows(2).all(|w| w[0] >= w[1]));
    assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    // Three latent factors drive the synthetic images: they explain almost everything.
    assert!(r[..3].iter().sum::<f64>() > 0.95, "{r:?}");
}

#[test]
fn pca_save_then_load_is_identical() {
    let pca = fitted();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pca.safetensors");
    pca.save(&path).unwrap();
    assert_eq!(PatchPca::load(&path).unwrap(), pca);
    std::fs::write(&path, b"garbage").unwrap();
    let err = PatchPca::load(&path).unwrap_err().to_string();
    assert!(err.contains("pca.safetensors") && err.contains("safetensors"), "{err}");
}

#[test]
fn pca_tensor_encode_decode_matches_f64_reference() {
    let pca = fitted();
    let device = Device::flex();
    let t = pca.tensors(4, &device);
    let x: Vec<f64> = (0..12).map(|i| (i as f64 * 0.7).cos() * 0.5).collect();
    let xt =
        Tensor::<3>::from_data(TensorData::new(x.iter().map(|&v| v as f32).collect::<Vec<_>>(), [1, 1, 12]), &device);
    let z: Vec<f32> = t.encode(xt).into_data().try_into_vec().unwrap();
    let z_ref = pca.encode(&x, 4);
    for (a, b) in z.iter().zip(&z_ref) {
        assert!((*a as f64 - b).abs() < 1e-5);
    }
    let zt = Tensor::<3>::from_data(TensorData::new(z.clone(), [1, 1, 4]), &device);
    let back: Vec<f32> = t.decode(zt).into_data().try_into_vec().unwrap();
    for (a, b) in back.iter().zip(pca.decode(&z_ref)) {
        assert!((*a as f64 - b).abs() < 1e-5);
    }
}
