//! The l-DAE objective (paper §4.4 and Fig. 1): noise in the PCA latent, a clean-image target,
//! and a loss weighted per PCA coordinate.
//!
//! For an image `x0` cut into patches `x0_p` (`[L, D]`):
//! 1. `z0 = V_d^T (x0_p - mu)`, the `d`-dim latent of each patch;
//! 2. `z_t = z0 + sigma_t * eps`, `eps ~ N(0, I)` (no input scaling, `gamma_t = 1`);
//! 3. `x_t = unpatchify(V_d z_t + mu)`: the network sees an image, which lacks the PCA
//!    residual of `x0` (components `d+1..D`);
//! 4. the network predicts the clean image `x0_hat = net(x_t, t)`;
//! 5. `loss = lambda_t * sum_i w_i r_i^2` with `r = V^T (x0_p - x0_hat_p)` in the full basis,
//!    `w_i = 1` for `i <= d` and `w_i = residual_weight` (0.1) otherwise, summed over coordinates,
//!    averaged over patches and images.
//!
//! Because `V` is orthonormal, `sum_i w_i r_i^2 = w_res |e|^2 + (1 - w_res) |V_d^T e|^2` with
//! `e = x0_p - x0_hat_p`; that form needs only `V_d` and is what [`LdaeObjective::loss`]
//! computes (`ldae_loss_equals_full_basis_weighted_sum` checks the identity).

use burn::tensor::{Tensor, TensorData};

use super::schedule::SigmaSchedule;
use crate::tokenizer::{PcaTensors, patchify, unpatchify};

/// The objective's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LdaeObjective {
    pub schedule: SigmaSchedule,
    /// `w_i` for the residual coordinates `i > d` (the paper's 0.1).
    pub residual_weight: f64,
    /// Patch side `p`.
    pub patch: usize,
}

/// The per-image noise draws of one batch.
#[derive(Debug, Clone)]
pub struct LdaeTerms {
    /// `t`, `[B]`.
    pub t: Vec<usize>,
    /// `eps`, `[B, L, d]` row-major.
    pub eps: Vec<f32>,
}

impl LdaeObjective {
    /// `sigma_t` for each `t`, as a `[B, 1, 1]` tensor.
    fn per_image(&self, values: Vec<f32>, device: &burn::tensor::Device) -> Tensor<3> {
        let b = values.len();
        Tensor::from_data(TensorData::new(values, [b, 1, 1]), device)
    }

    /// The noisy input `x_t` for clean images `x0`.
    ///
    /// # Shapes
    /// - `x0`: `[B, C, H, W]`; `terms.eps`: `[B, L, d]`; returns `[B, C, H, W]`
    pub fn noisy_input(&self, pca: &PcaTensors, x0: Tensor<4>, terms: &LdaeTerms) -> Tensor<4> {
        let [b, c, h, w] = x0.dims();
        let device = x0.device();
        let z0 = pca.encode(patchify(x0, self.patch)); // [B, L, d]
        let [_, l, d] = z0.dims();
        let eps = Tensor::<3>::from_data(TensorData::new(terms.eps.clone(), [b, l, d]), &device);
        let sigma = self.per_image(terms.t.iter().map(|&t| self.schedule.sigma[t] as f32).collect(), &device);
        let z_t = z0 + eps * sigma; // [B, L, d]
        unpatchify(pca.decode(z_t), self.patch, c, h, w)
    }

    /// The weighted PCA-residual loss between `x0` and the prediction `x0_hat` (a scalar).
    ///
    /// # Shapes
    /// - `x0`, `x0_hat`: `[B, C, H, W]`; returns `[1]`
    pub fn loss(&self, pca: &PcaTensors, x0: Tensor<4>, x0_hat: Tensor<4>, t: &[usize]) -> Tensor<1> {
        let device = x0.device();
        let e = patchify(x0 - x0_hat, self.patch); // [B, L, D]
        let full = e.clone().square().sum_dim(2); // [B, L, 1]
        let latent = pca.project(e).square().sum_dim(2); // [B, L, 1]
        let w = self.residual_weight;
        let per_patch = full * w + latent * (1.0 - w); // [B, L, 1]
        let lambda = self.per_image(t.iter().map(|&t| self.schedule.lambda(t) as f32).collect(), &device);
        (per_patch * lambda).mean()
    }
}
