//! Adaptive layer norm (DiT §3.2): a LayerNorm without learned affine parameters whose output
//! is shifted and scaled per sample by vectors regressed from the conditioning.

use burn::tensor::Tensor;

/// LayerNorm over the last axis without affine parameters (DiT uses `eps = 1e-6`).
///
/// # Shapes
/// - `x`: `[B, L, W]`; returns `[B, L, W]`
pub fn layer_norm(x: Tensor<3>, eps: f64) -> Tensor<3> {
    let (var, mean) = x.clone().var_mean_bias(2); // [B, L, 1] each
    (x - mean) / (var + eps).sqrt()
}

/// `x * (1 + scale) + shift`, with per-sample `shift` and `scale` broadcast over tokens.
///
/// # Shapes
/// - `x`: `[B, L, W]`; `shift`, `scale`: `[B, W]`; returns `[B, L, W]`
pub fn modulate(x: Tensor<3>, shift: Tensor<2>, scale: Tensor<2>) -> Tensor<3> {
    x * (scale.unsqueeze_dim::<3>(1) + 1.0) + shift.unsqueeze_dim::<3>(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn layer_norm_matches_hand_values() {
        let x = Tensor::<3>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 4]), &Device::flex());
        // mean 2.5, biased var 1.25 -> (x - 2.5) / sqrt(1.25 + 1e-6).
        let y: Vec<f32> = layer_norm(x, 1e-6).into_data().try_into_vec().unwrap();
        let s = (1.25f64 + 1e-6).sqrt();
        for (a, b) in y.iter().zip([-1.5, -0.5, 0.5, 1.5]) {
            assert!((*a as f64 - b / s).abs() < 1e-6);
        }
    }
}
