//! The denoising objective against hand-computed values and against the full-basis definition
//! of the l-DAE loss, for each kind of target.

use burn::tensor::{Device, Tensor, TensorData};
use ddmlab::data::ImageShape;
use ddmlab::diffusion::denoise::{DenoiseObjective, InputSpace, Latent, NoiseSpace, Target};
use ddmlab::diffusion::{LossWeight, NoiseSchedule, SigmaSchedule};
use ddmlab::nn::patchify;
use ddmlab::tokenizer::pca::PcaTokenizer;
use ddmlab::tokenizer::pixels::PixelTokenizer;
use ddmlab::tokenizer::{PatchPca, Tokenizer};

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

/// l-DAE: latent noise, image in, original image out with residual weight 0.1.
fn objective() -> DenoiseObjective {
    DenoiseObjective {
        tables: NoiseSchedule::ldae().tables(1000),
        noise_space: NoiseSpace::Latent,
        input: InputSpace::Image,
        target: Target::Image,
        residual_weight: Some(0.1),
        loss_weight: LossWeight::InvOnePlusSigma2,
    }
}

const IMAGE: ImageShape = ImageShape { channels: 1, height: 2, width: 2 };

fn tokenizer(pca: &PatchPca, d: usize) -> PcaTokenizer {
    PcaTokenizer::new(pca, d, false, IMAGE, &Device::flex())
}

fn image(v: &[f32], b: usize) -> Tensor<4> {
    Tensor::from_data(TensorData::new(v.to_vec(), [b, 1, 2, 2]), &Device::flex())
}

/// The weighted loss of predicting `x_hat` for `x0` (single-patch images).
fn image_loss(objective: &DenoiseObjective, tok: &dyn Tokenizer, x0: &[f32], x_hat: &[f32], t: &[usize]) -> f32 {
    let b = t.len();
    objective.loss(tok, patchify(image(x_hat, b), 2), patchify(image(x0, b), 2), t).into_scalar::<f32>()
}

#[test]
fn ldae_loss_matches_hand_computed_value() {
    // One image, one patch; identity basis, d = 2, t = 999 (sigma^2 = 2, lambda = 1/3).
    // e = x0 - x0_hat = [1, 2, 3, 4] in pixel order (= patch order for p = 2, C = 1).
    // sum_i w_i r_i^2 = 1 + 4 + 0.1 * (9 + 16) = 7.5; loss = 7.5 / 3 = 2.5.
    let tok = tokenizer(&identity_pca(), 2);
    let v = image_loss(&objective(), &tok, &[1.0, 2.0, 3.0, 4.0], &[0.0; 4], &[999]);
    assert!((v - 2.5).abs() < 1e-5, "loss {v}");
}

#[test]
fn ldae_loss_averages_images_with_their_own_lambda() {
    // Image A at t = 0 (lambda 1) with e = [1, 0, 0, 0]: 1.0.
    // Image B at t = 999 (lambda 1/3) with e = [0, 0, 0, 3]: 0.1 * 9 / 3 = 0.3. Mean: 0.65.
    let tok = tokenizer(&identity_pca(), 2);
    let loss = image_loss(&objective(), &tok, &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0], &[0.0; 8], &[0, 999]);
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
    let got = image_loss(&objective(), &tokenizer(&pca, 2), &x0, &x_hat, &[t]);
    assert!((got as f64 - reference).abs() < 1e-5, "{got} vs {reference}");
}

#[test]
fn noisy_input_adds_noise_only_inside_the_latent_subspace() {
    let pca = hadamard_pca();
    let tok = tokenizer(&pca, 2);
    let x0 = [0.3f32, -0.7, 0.2, 0.9];
    let eps = vec![1.5f32, -0.5];
    let t = 999;
    let o = objective();
    let noise = o.noise_tokens(&tok, eps.clone(), 1, false, &Device::flex());
    let (input, target) = o.input_and_target(&tok, image(&x0, 1), &[t], noise, Latent::Encode(None));
    let x_t: Vec<f32> = input.into_data().try_into_vec().unwrap();
    let target: Vec<f32> = target.into_data().try_into_vec().unwrap();
    assert_eq!(target, x0.to_vec(), "the target is the original image, residual included");
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

/// A 1x1-patch pixel tokenizer on 2x2 images: tokens are pixels.
fn pixels() -> PixelTokenizer {
    PixelTokenizer { patch: 1, image: IMAGE, scale: 1.0 }
}

fn vp(target: Target, weight: LossWeight) -> DenoiseObjective {
    DenoiseObjective {
        tables: NoiseSchedule::ddpm().tables(1000),
        noise_space: NoiseSpace::Latent,
        input: InputSpace::Latent,
        target,
        residual_weight: None,
        loss_weight: weight,
    }
}

#[test]
fn latent_targets_and_inputs_match_the_forward_process_by_hand() {
    let device = Device::flex();
    let tok = pixels();
    let schedule = ddmlab::diffusion::VpSchedule::new(ddmlab::diffusion::BetaSchedule::ddpm(), 1000);
    let t = 500;
    let (g, s) = (schedule.gamma(t), schedule.sigma(t));
    let x0 = [0.5f32, -1.0, 0.25, 0.0];
    let eps = [1.0f32, 2.0, -1.0, 0.5];
    for (target, want) in [
        (Target::Eps, eps.map(|e| e as f64)),
        (Target::X0, x0.map(|v| v as f64)),
        (Target::V, [0, 1, 2, 3].map(|i| g * eps[i] as f64 - s * x0[i] as f64)),
    ] {
        let o = vp(target, LossWeight::Uniform);
        let noise = o.noise_tokens(&tok, eps.to_vec(), 1, true, &device);
        let (input, got) = o.input_and_target(&tok, image(&x0, 1), &[t], noise, Latent::Encode(None));
        let input: Vec<f32> = input.into_data().try_into_vec().unwrap();
        let got: Vec<f32> = got.into_data().try_into_vec().unwrap();
        for i in 0..4 {
            assert!((input[i] as f64 - (g * x0[i] as f64 + s * eps[i] as f64)).abs() < 1e-6, "x_t");
            assert!((got[i] as f64 - want[i]).abs() < 1e-6, "{target:?}: {got:?} vs {want:?}");
        }
    }
}

#[test]
fn latent_losses_are_the_weighted_mean_squared_error() {
    let tok = pixels();
    let schedule = ddmlab::diffusion::VpSchedule::new(ddmlab::diffusion::BetaSchedule::ddpm(), 1000);
    // Output 0 against targets (1, 2, 0, 0) and (0, 0, 0, 3): squared errors 1 + 4 and 9 over 8
    // elements; uniform: 14 / 8. With lambda = gamma_t^2 per image: (5 g0^2 + 9 g1^2) / 8.
    let target = patchify(image(&[1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0], 2), 1);
    let out = target.zeros_like();
    let ts = [100, 900];
    let uniform = vp(Target::Eps, LossWeight::Uniform).loss(&tok, out.clone(), target.clone(), &ts);
    assert!((uniform.into_scalar::<f32>() - 14.0 / 8.0).abs() < 1e-6);
    let weighted = vp(Target::X0, LossWeight::Gamma2).loss(&tok, out, target, &ts).into_scalar::<f32>() as f64;
    let want = (5.0 * schedule.alpha_bar[100] + 9.0 * schedule.alpha_bar[900]) / 8.0;
    assert!((weighted - want).abs() < 1e-6, "{weighted} vs {want}");
}

#[test]
fn min_snr_weights_each_target_by_its_own_conversion() {
    // DDPM's linear betas: t = 100 has SNR = abar / (1 - abar) ~ 8.9 (above 5), t = 900 ~ 3e-4.
    // Squared errors 5 (t = 100) and 9 (t = 900) over 8 elements, as above.
    let tok = pixels();
    let schedule = ddmlab::diffusion::VpSchedule::new(ddmlab::diffusion::BetaSchedule::ddpm(), 1000);
    let snr = |t: usize| schedule.alpha_bar[t] / (1.0 - schedule.alpha_bar[t]);
    assert!(snr(100) > 5.0 && snr(900) < 5.0);
    let target = patchify(image(&[1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0], 2), 1);
    let out = target.zeros_like();
    let ts = [100, 900];
    for (t, want) in [
        // eps: min(SNR, 5) / SNR; v: min(SNR, 5) / (1 + SNR); x0: min(SNR, 5).
        (Target::Eps, (5.0 * 5.0 / snr(100) + 9.0) / 8.0),
        (Target::V, (5.0 * 5.0 / (1.0 + snr(100)) + 9.0 * snr(900) / (1.0 + snr(900))) / 8.0),
        (Target::X0, (5.0 * 5.0 + 9.0 * snr(900)) / 8.0),
    ] {
        let got = vp(t, LossWeight::MinSnr(5.0)).loss(&tok, out.clone(), target.clone(), &ts).into_scalar::<f32>();
        assert!((got as f64 - want).abs() < 1e-5 * want.max(1.0), "{t:?}: {got} vs {want}");
    }
}

#[test]
fn decoded_latent_target_is_the_pca_reconstruction_and_pixel_noise_spans_every_pixel() {
    let device = Device::flex();
    let pca = hadamard_pca();
    let tok = tokenizer(&pca, 2);
    let x0 = [0.3f32, -0.7, 0.2, 0.9];
    let o = DenoiseObjective { target: Target::DecodedX0, residual_weight: None, ..objective() };
    let noise = o.noise_tokens(&tok, vec![0.0, 0.0], 1, false, &device);
    let (_, target) = o.input_and_target(&tok, image(&x0, 1), &[0], noise, Latent::Encode(None));
    let target: Vec<f32> = target.into_data().try_into_vec().unwrap();
    let x: Vec<f64> = x0.iter().map(|&v| v as f64).collect();
    let reference = pca.decode(&pca.encode(&x, 2));
    for (a, b) in target.iter().zip(&reference) {
        assert!((*a as f64 - b).abs() < 1e-5, "{target:?} vs {reference:?}");
    }
    // Noise in pixels: x_t = x0 + sigma eps on all four pixels (no input scaling).
    let o = DenoiseObjective { noise_space: NoiseSpace::Pixels, target: Target::Image, ..objective() };
    let eps = vec![1.0f32, -1.0, 0.5, 2.0];
    let noise = o.noise_tokens(&tok, eps.clone(), 1, true, &device);
    let (input, _) = o.input_and_target(&tok, image(&x0, 1), &[999], noise, Latent::Encode(None));
    let input: Vec<f32> = input.into_data().try_into_vec().unwrap();
    let sigma = 2f32.sqrt();
    for i in 0..4 {
        assert!((input[i] - (x0[i] + sigma * eps[i])).abs() < 1e-5, "{input:?}");
    }
}
