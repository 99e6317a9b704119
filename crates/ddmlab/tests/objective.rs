//! The l-DAE objective against hand-computed values and against the full-basis definition.

use burn::tensor::{Device, Tensor, TensorData};
use ddmlab::diffusion::{LdaeObjective, LdaeTerms, SigmaSchedule};
use ddmlab::tokenizer::PatchPca;

/// A 2x2 grey patch basis (D = 4): identity components, zero mean.
fn identity_pca() -> PatchPca {
    PatchPca {
        patch: 2,
        channels: 1,
        mean: vec![0.0; 4],
        components: (0..16).map(|i| if i / 4 == i % 4 { 1.0 } else { 0.0 }).collect(),
        eigenvalues: vec![4.0, 3.0, 2.0, 1.0],
    }
}

/// A rotated orthonormal basis (a Hadamard matrix / 2) with a non-zero mean.
fn hadamard_pca() -> PatchPca {
    let h = [[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]];
    PatchPca {
        patch: 2,
        channels: 1,
        mean: vec![0.1, -0.2, 0.3, 0.05],
        components: (0..16).map(|i| h[i / 4][i % 4] * 0.5).collect(),
        eigenvalues: vec![4.0, 3.0, 2.0, 1.0],
    }
}

fn objective() -> LdaeObjective {
    LdaeObjective { schedule: SigmaSchedule::ldae(), residual_weight: 0.1, patch: 2 }
}

fn image(v: &[f32], b: usize) -> Tensor<4> {
    Tensor::from_data(TensorData::new(v.to_vec(), [b, 1, 2, 2]), &Device::flex())
}

#[test]
fn ldae_loss_matches_hand_computed_value() {
    // One image, one patch; identity basis, d = 2, t = 999 (sigma^2 = 2, lambda = 1/3).
    // e = x0 - x0_hat = [1, 2, 3, 4] in pixel order (= patch order for p = 2, C = 1).
    // sum_i w_i r_i^2 = 1 + 4 + 0.1 * (9 + 16) = 7.5; loss = 7.5 / 3 = 2.5.
    let pca = identity_pca().tensors(2, &Device::flex());
    let loss = objective().loss(&pca, image(&[1.0, 2.0, 3.0, 4.0], 1), image(&[0.0; 4], 1), &[999]);
    let v = loss.into_scalar::<f32>();
    assert!((v - 2.5).abs() < 1e-5, "loss {v}");
}

#[test]
fn ldae_loss_averages_images_with_their_own_lambda() {
    // Image A at t = 0 (lambda 1) with e = [1, 0, 0, 0]: 1.0.
    // Image B at t = 999 (lambda 1/3) with e = [0, 0, 0, 3]: 0.1 * 9 / 3 = 0.3. Mean: 0.65.
    let pca = identity_pca().tensors(2, &Device::flex());
    let x0 = image(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0], 2);
    let loss = objective().loss(&pca, x0, image(&[0.0; 8], 2), &[0, 999]).into_scalar::<f32>();
    assert!((loss - 0.65).abs() < 1e-5, "loss {loss}");
}

#[test]
fn ldae_loss_equals_full_basis_weighted_sum() {
    let pca = hadamard_pca();
    let x0 = [0.3f32, -0.7, 0.2, 0.9];
    let x_hat = [0.1f32, 0.4, -0.5, 0.2];
    let t = 500;
    // Reference in f64: r = V^T e over all 4 components, w = [1, 1, 0.1, 0.1] for d = 2.
    let e: Vec<f64> = x0.iter().zip(&x_hat).map(|(a, b)| (a - b) as f64).collect();
    let reference: f64 = (0..4)
        .map(|k| {
            let r: f64 = (0..4).map(|i| pca.components[i * 4 + k] * e[i]).sum();
            (if k < 2 { 1.0 } else { 0.1 }) * r * r
        })
        .sum::<f64>()
        * SigmaSchedule::ldae().lambda(t);
    let got =
        objective().loss(&pca.tensors(2, &Device::flex()), image(&x0, 1), image(&x_hat, 1), &[t]).into_scalar::<f32>();
    assert!((got as f64 - reference).abs() < 1e-5, "{got} vs {reference}");
}

#[test]
fn noisy_input_adds_noise_only_inside_the_latent_subspace() {
    let pca = hadamard_pca();
    let tensors = pca.tensors(2, &Device::flex());
    let x0 = [0.3f32, -0.7, 0.2, 0.9];
    let eps = vec![1.5f32, -0.5];
    let t = 999;
    let x_t: Vec<f32> = objective()
        .noisy_input(&tensors, image(&x0, 1), &LdaeTerms { t: vec![t], eps: eps.clone() })
        .into_data()
        .try_into_vec()
        .unwrap();
    // Reference: x_t = V_d (V_d^T (x0 - mu) + sigma eps) + mu, without the residual of x0.
    let x: Vec<f64> = x0.iter().map(|&v| v as f64).collect();
    let mut z = pca.encode(&x, 2);
    let sigma = SigmaSchedule::ldae().sigma[t];
    for (zk, ek) in z.iter_mut().zip(&eps) {
        *zk += sigma * *ek as f64;
    }
    let reference = pca.decode(&z);
    for (a, b) in x_t.iter().zip(&reference) {
        assert!((*a as f64 - b).abs() < 1e-5, "{x_t:?} vs {reference:?}");
    }
}
