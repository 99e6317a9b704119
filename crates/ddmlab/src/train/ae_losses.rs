//! The loss terms of a conv tokenizer (latent diffusion's `LPIPSWithDiscriminator` and
//! taming-transformers' `hinge_d_loss` / `calculate_adaptive_weight`), as pure functions.

use burn::tensor::Tensor;

use crate::tokenizer::conv_config::Reconstruction;

/// The reconstruction error summed over pixels, per image.
///
/// # Shapes
/// - `x`, `x_hat`: `[B, C, H, W]`; returns `[B]`
pub fn reconstruction(x: Tensor<4>, x_hat: Tensor<4>, kind: Reconstruction) -> Tensor<1> {
    let [b, c, h, w] = x.dims();
    let diff = x_hat - x;
    let per = match kind {
        Reconstruction::L1 => diff.abs(),
        Reconstruction::L2 => diff.square(),
    };
    per.reshape([b, c * h * w]).sum_dim(1).reshape([b])
}

/// The discriminator's hinge loss `1/2 (mean relu(1 - D(x)) + mean relu(1 + D(x_hat)))`.
///
/// `relu` is written `clamp_min(0)`: burn 0.22's fused wgpu backend under autodiff gets two
/// `relu(x + c)` branches summed into one value wrong (2.07 instead of 1.00 on lavapipe, and
/// wrong gradients; `clamp_min` is right). `tests/integration/gpu.rs` trains the adversarial
/// loss on both devices and would catch its return.
///
/// # Shapes
/// - `real`, `fake`: logits `[B, 1, h, w]`; returns `[1]`
pub fn hinge_d_loss(real: Tensor<4>, fake: Tensor<4>) -> Tensor<1> {
    let loss_real = (real.neg() + 1.0).clamp_min(0.0).mean();
    let loss_fake = (fake + 1.0).clamp_min(0.0).mean();
    (loss_real + loss_fake) * 0.5
}

/// The generator's adversarial loss `-mean D(x_hat)`.
///
/// # Shapes
/// - `fake`: logits `[B, 1, h, w]`; returns `[1]`
pub fn generator_loss(fake: Tensor<4>) -> Tensor<1> {
    fake.mean().neg()
}

/// The adaptive weight of the adversarial term (Esser et al. 2021, eq. 7): the ratio of the
/// gradient norms of the reconstruction loss and of the generator loss at the decoder's last
/// layer, clamped to `[0, 1e4]`, times `disc_weight`.
pub fn adaptive_weight(nll_grad_norm: f64, g_grad_norm: f64, disc_weight: f64) -> f64 {
    (nll_grad_norm / (g_grad_norm + 1e-4)).clamp(0.0, 1e4) * disc_weight
}

/// PSNR in dB of images in `[-1, 1]` with mean squared error `mse` (in those units): the peak
/// is 1 on the `[0, 1]` scale, whose error is a quarter of this one.
pub fn psnr(mse: f64) -> f64 {
    10.0 * (1.0 / (mse / 4.0).max(1e-20)).log10()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn logits(v: &[f32]) -> Tensor<4> {
        Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, 1, 1, v.len()]), &Device::flex())
    }

    fn value(t: Tensor<1>) -> f32 {
        t.into_data().try_into_vec::<f32>().unwrap()[0]
    }

    #[test]
    fn hinge_loss_on_hand_values() {
        // real logits (2, 0.5, -1): relu(1 - .) = (0, 0.5, 2), mean 5/6;
        // fake logits (-2, 0, 0.5): relu(1 + .) = (0, 1, 1.5), mean 5/6; loss = 5/6.
        let d = value(hinge_d_loss(logits(&[2.0, 0.5, -1.0]), logits(&[-2.0, 0.0, 0.5])));
        assert!((d - 5.0 / 6.0).abs() < 1e-6, "{d}");
        // A perfect discriminator (margins beyond 1) has zero loss.
        assert_eq!(value(hinge_d_loss(logits(&[1.5, 3.0]), logits(&[-1.0, -4.0]))), 0.0);
        let g = value(generator_loss(logits(&[-2.0, 0.0, 0.5])));
        assert!((g - 0.5).abs() < 1e-6, "{g}");
    }

    #[test]
    fn reconstruction_sums_per_image() {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(TensorData::new(vec![0.0f32, 1.0, 0.0, 0.0], [2, 1, 1, 2]), &device);
        let y = Tensor::<4>::from_data(TensorData::new(vec![0.5f32, -1.0, 0.0, 3.0], [2, 1, 1, 2]), &device);
        let l1 = reconstruction(x.clone(), y.clone(), Reconstruction::L1).into_data().try_into_vec::<f32>().unwrap();
        let l2 = reconstruction(x, y, Reconstruction::L2).into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(l1, vec![2.5, 3.0]);
        assert_eq!(l2, vec![4.25, 9.0]);
    }

    #[test]
    fn adaptive_weight_and_psnr_on_hand_values() {
        assert!((adaptive_weight(2.0, 0.5 - 1e-4, 0.5) - 2.0).abs() < 1e-12);
        assert_eq!(adaptive_weight(1.0, 0.0, 1.0), 1e4, "clamped");
        // mse 0.04 in [-1, 1] units is 0.01 in [0, 1]: 20 dB.
        assert!((psnr(0.04) - 20.0).abs() < 1e-9);
    }
}
