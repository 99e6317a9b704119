//! The DDPM training objective (DDPM §3.4, DiT): `x_t = gamma_t x0 + sigma_t eps` with `t`
//! uniform per image; the network predicts eps, x0 or v, and the loss is the mean squared error
//! to that target, every element and timestep weighted 1 (DDPM's `L_simple`).

use burn::tensor::{Device, Tensor, TensorData};

use super::vp::{Prediction, VpSchedule};

/// The objective's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DdpmObjective {
    pub schedule: VpSchedule,
    pub prediction: Prediction,
}

/// The per-image draws of one batch.
#[derive(Debug, Clone)]
pub struct DdpmTerms {
    /// `t`, `[B]`.
    pub t: Vec<usize>,
    /// `eps`, `[B, C, H, W]` row-major.
    pub eps: Vec<f32>,
}

impl DdpmObjective {
    /// A per-image scalar as a `[B, 1, 1, 1]` tensor.
    fn per_image(&self, t: &[usize], f: impl Fn(usize) -> f64, device: &Device) -> Tensor<4> {
        let values: Vec<f32> = t.iter().map(|&t| f(t) as f32).collect();
        Tensor::from_data(TensorData::new(values, [t.len(), 1, 1, 1]), device)
    }

    /// `(x_t, target)` for clean `x0` and the draws `terms`.
    ///
    /// # Shapes
    /// - `x0`: `[B, C, H, W]`; `terms.eps`: `[B, C, H, W]`; returns two `[B, C, H, W]`
    pub fn noisy_input_and_target(&self, x0: Tensor<4>, terms: &DdpmTerms) -> (Tensor<4>, Tensor<4>) {
        let device = x0.device();
        let eps = Tensor::<4>::from_data(TensorData::new(terms.eps.clone(), x0.dims()), &device);
        let s = &self.schedule;
        let g = self.per_image(&terms.t, |t| s.gamma(t), &device);
        let sg = self.per_image(&terms.t, |t| s.sigma(t), &device);
        let x_t = x0.clone() * g.clone() + eps.clone() * sg.clone();
        let target = match self.prediction {
            Prediction::Eps => eps,
            Prediction::X0 => x0,
            Prediction::V => eps * g - x0 * sg,
        };
        (x_t, target)
    }

    /// Mean squared error between the network's output and the target, averaged over every
    /// element of the batch (DDPM's `L_simple`, DiT's MSE term).
    ///
    /// # Shapes
    /// - `output`, `target`: `[B, C, H, W]`; returns `[1]`
    pub fn loss(&self, output: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
        (output - target).square().mean()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::vp::BetaSchedule;

    #[test]
    fn targets_and_loss_match_hand_values() {
        let device = Device::flex();
        let schedule = VpSchedule::new(BetaSchedule::ddpm(), 1000);
        let (g, s) = (schedule.gamma(500), schedule.sigma(500));
        let x0 = Tensor::<4>::from_data(TensorData::new(vec![0.5f32, -1.0], [2, 1, 1, 1]), &device);
        let terms = DdpmTerms { t: vec![500, 500], eps: vec![1.0, 2.0] };
        for (kind, want) in
            [(Prediction::Eps, [1.0, 2.0]), (Prediction::X0, [0.5, -1.0]), (Prediction::V, [g - s * 0.5, 2.0 * g + s])]
        {
            let objective = DdpmObjective { schedule: schedule.clone(), prediction: kind };
            let (x_t, target) = objective.noisy_input_and_target(x0.clone(), &terms);
            let x_t: Vec<f32> = x_t.into_data().try_into_vec().unwrap();
            let target: Vec<f32> = target.clone().into_data().try_into_vec().unwrap();
            assert!((x_t[0] as f64 - (0.5 * g + s)).abs() < 1e-6 && (x_t[1] as f64 - (-g + 2.0 * s)).abs() < 1e-6);
            for (a, b) in target.iter().zip(want) {
                assert!((*a as f64 - b).abs() < 1e-6, "{kind:?}: {target:?}");
            }
        }
        // MSE of (0, 0) against (1, 2): (1 + 4) / 2.
        let objective = DdpmObjective { schedule, prediction: Prediction::Eps };
        let out = Tensor::<4>::zeros([2, 1, 1, 1], &device);
        let target = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.0], [2, 1, 1, 1]), &device);
        assert!((objective.loss(out, target).into_scalar::<f32>() - 2.5).abs() < 1e-6);
    }
}
