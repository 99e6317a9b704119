//! The variational-bound term of improved DDPM's learned variance (Nichol & Dhariwal 2021, §3.1),
//! as LTH14/mar's Diffusion Loss trains it (`diffusion/gaussian_diffusion.py`, `_vb_terms_bpd`,
//! `diffusion_utils.py`): the head's variance output `v` in `[-1, 1]` interpolates the log
//! variance of `p(x_{t-1} | x_t)` between the posterior's and `beta_t`,
//! `log var = frac log beta_t + (1 - frac) log beta~_t` with `frac = (v + 1) / 2`
//! (`beta~_0` taken as `beta~_1`, improved DDPM's clipping); the term is
//! `KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t))` in bits per dimension, averaged over the token's
//! channels, and at `t = 0` the negative discretized Gaussian log-likelihood of `x0` (bins of
//! width 2/255 on `[-1, 1]`, as the official code computes it for its continuous tokens too).
//!
//! The schedule's coefficients are f64 here ([`VlbTables`]) and f32 only per row at the point of
//! use; the tensor functions are elementwise and differentiable.

use burn::tensor::{Device, Tensor, TensorData};

use super::vp::VpSchedule;

/// Per-timestep f64 coefficients of the term.
#[derive(Debug, Clone, PartialEq)]
pub struct VlbTables {
    /// `log beta~_t`, with `t = 0` taken from `t = 1` (the posterior variance at 0 is 0).
    pub min_log: Vec<f64>,
    /// `log beta_t`.
    pub max_log: Vec<f64>,
    /// The posterior mean's coefficients of `x0` and `x_t`.
    pub coef_x0: Vec<f64>,
    pub coef_xt: Vec<f64>,
    /// `sqrt(1 / abar_t)` and `sqrt(1 / abar_t - 1)`: `x0 = a x_t - b eps`.
    pub recip: Vec<f64>,
    pub recip_m1: Vec<f64>,
}

impl VlbTables {
    pub fn new(s: &VpSchedule) -> Self {
        let n = s.len();
        let post: Vec<_> = (0..n).map(|t| s.posterior(t)).collect();
        let clipped = |t: usize| post[if t == 0 && n > 1 { 1 } else { t }].variance.ln();
        VlbTables {
            min_log: (0..n).map(clipped).collect(),
            max_log: s.betas.iter().map(|b| b.ln()).collect(),
            coef_x0: post.iter().map(|p| p.coef_x0).collect(),
            coef_xt: post.iter().map(|p| p.coef_xt).collect(),
            recip: (0..n).map(|t| (1.0 / s.alpha_bar[t]).sqrt()).collect(),
            recip_m1: (0..n).map(|t| (1.0 / s.alpha_bar[t] - 1.0).sqrt()).collect(),
        }
    }

    /// The learned log variance of `v` at `t` (host, f64).
    pub fn log_variance(&self, t: usize, v: f64) -> f64 {
        let frac = (v + 1.0) / 2.0;
        frac * self.max_log[t] + (1.0 - frac) * self.min_log[t]
    }
}

/// One f64 value per row, as an `[N, 1]` column.
fn column(values: impl Iterator<Item = f64>, device: &Device) -> Tensor<2> {
    let v: Vec<f32> = values.map(|x| x as f32).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n, 1]), device)
}

/// `KL(N(m1, exp(lv1)) || N(m2, exp(lv2)))`, elementwise, in nats.
pub fn normal_kl(m1: Tensor<2>, lv1: Tensor<2>, m2: Tensor<2>, lv2: Tensor<2>) -> Tensor<2> {
    let d = m1 - m2;
    ((lv2.clone() - lv1.clone()) + (lv1 - lv2.clone()).exp() + d.square() * lv2.neg().exp() - 1.0) * 0.5
}

/// The tanh approximation of the standard normal CDF the official code uses.
pub fn approx_standard_normal_cdf(x: Tensor<2>) -> Tensor<2> {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    ((x.clone() + x.powf_scalar(3.0) * 0.044715) * c).tanh().add_scalar(1.0) * 0.5
}

/// `log P(x)` of a Gaussian `N(means, exp(log_scales)^2)` discretised into bins of width 2/255
/// on `[-1, 1]` (the edge bins open), elementwise, in nats.
pub fn discretized_gaussian_log_likelihood(x: Tensor<2>, means: Tensor<2>, log_scales: Tensor<2>) -> Tensor<2> {
    let centred = x.clone() - means;
    let inv = log_scales.neg().exp();
    let cdf_plus = approx_standard_normal_cdf(inv.clone() * (centred.clone() + 1.0 / 255.0));
    let cdf_min = approx_standard_normal_cdf(inv * (centred - 1.0 / 255.0));
    let log_cdf_plus = cdf_plus.clone().clamp_min(1e-12).log();
    let log_one_minus_cdf_min = (cdf_min.clone().neg() + 1.0).clamp_min(1e-12).log();
    let log_delta = (cdf_plus - cdf_min).clamp_min(1e-12).log();
    let upper = log_delta.mask_where(x.clone().greater_elem(0.999), log_one_minus_cdf_min);
    upper.mask_where(x.lower_elem(-0.999), log_cdf_plus)
}

/// The VLB term per row in bits per dimension, differentiable in `v` only (the mean comes from
/// the predicted noise, detached, as the official `frozen_out`).
///
/// # Shapes
/// - `x0`, `x_t`, `eps_hat`, `v`: `[N, C]`; `t`: `N` timesteps (host); returns `[N]`
pub fn vb_term(
    tables: &VlbTables,
    x0: Tensor<2>,
    x_t: Tensor<2>,
    eps_hat: Tensor<2>,
    v: Tensor<2>,
    t: &[usize],
) -> Tensor<1> {
    let device = x0.device();
    let col = |f: &dyn Fn(usize) -> f64| column(t.iter().map(|&s| f(s)), &device);
    let (min_log, max_log) = (col(&|s| tables.min_log[s]), col(&|s| tables.max_log[s]));
    let (c0, ct) = (col(&|s| tables.coef_x0[s]), col(&|s| tables.coef_xt[s]));
    // The true posterior.
    let true_mean = x0.clone() * c0.clone() + x_t.clone() * ct.clone();
    let true_log_var = min_log.clone();
    // The model's: x0 from the detached eps, its posterior mean, the learned log variance.
    let x0_hat = x_t.clone() * col(&|s| tables.recip[s]) - eps_hat.detach() * col(&|s| tables.recip_m1[s]);
    let mean = x0_hat * c0 + x_t * ct;
    let frac = (v + 1.0) * 0.5;
    let log_var = frac.clone() * max_log + (frac.neg() + 1.0) * min_log;
    let [n, c] = x0.dims();
    let kl = normal_kl(true_mean, true_log_var.expand([n, c]), mean.clone(), log_var.clone());
    let nll = discretized_gaussian_log_likelihood(x0, mean, log_var * 0.5).neg();
    let at_zero: Vec<f32> = t.iter().map(|&s| if s == 0 { 1.0 } else { 0.0 }).collect();
    let at_zero = Tensor::<2>::from_data(TensorData::new(at_zero, [n, 1]), &device).expand([n, c]);
    let per = kl.mask_where(at_zero.greater_elem(0.5), nll);
    per.mean_dim(1).reshape([n]) / std::f64::consts::LN_2
}

/// One ancestral step with the learned variance (improved DDPM's `p_sample`, as LTH14/mar's head
/// samples), from position `i` of the schedule whose tables are `tables` (a sampler's respaced
/// one): `x0_hat = x_t / sqrt(abar) - sqrt(1 / abar - 1) eps_hat` (not clipped),
/// `x_prev = c0 x0_hat + ct x_t + exp(log var / 2) noise`, `log var` interpolated by `v`
/// ([`VlbTables::log_variance`]); the last step (`i = 0`, `noise` absent) returns the mean.
///
/// # Shapes
/// - `x_t`, `eps_hat`, `v`, `noise`: `[N, C]`; returns `[N, C]`
pub fn learned_step(
    tables: &VlbTables,
    i: usize,
    x_t: Tensor<2>,
    eps_hat: Tensor<2>,
    v: Tensor<2>,
    noise: Option<Tensor<2>>,
) -> Tensor<2> {
    let x0_hat = x_t.clone() * tables.recip[i] - eps_hat * tables.recip_m1[i];
    let mean = x0_hat * tables.coef_x0[i] + x_t * tables.coef_xt[i];
    match noise {
        Some(z) => {
            let frac = (v + 1.0) * 0.5;
            let log_var = frac.clone() * tables.max_log[i] + (frac.neg() + 1.0) * tables.min_log[i];
            mean + (log_var * 0.5).exp() * z
        }
        None => mean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::vp::BetaSchedule;

    fn host(t: Tensor<2>) -> Vec<f64> {
        t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap().into_iter().map(f64::from).collect()
    }

    fn col2(v: &[f64], device: &Device) -> Tensor<2> {
        column(v.iter().copied(), device)
    }

    /// The f64 closed forms: KL of two Gaussians, the tanh CDF, the discretized likelihood.
    #[test]
    fn the_terms_match_their_closed_forms_in_f64() {
        let device = Device::flex();
        let (m1, l1, m2, l2) = ([0.3, -1.0, 0.0], [-0.5, 0.2, -3.0], [0.1, -0.4, 0.0], [-0.2, 0.2, -3.0]);
        let kl = host(normal_kl(col2(&m1, &device), col2(&l1, &device), col2(&m2, &device), col2(&l2, &device)));
        for i in 0..3 {
            let (v1, v2) = (f64::exp(l1[i]), f64::exp(l2[i]));
            let want = 0.5 * (v1 / v2 + (m1[i] - m2[i]).powi(2) / v2 - 1.0 + (v2 / v1).ln());
            assert!((kl[i] - want).abs() < 1e-5 * want.abs().max(1e-3), "KL {i}: {} vs {want}", kl[i]);
        }
        assert_eq!(kl[2], 0.0, "identical Gaussians");
        let cdf = |x: f64| 0.5 * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh());
        let xs = [-0.999_5, -0.3, 0.0, 0.5, 0.9995];
        // Away from the tails, where f32's 0.5 (1 + tanh) cancels (as in PyTorch's f32).
        let (means, log_scales) = ([-0.9, -0.2, 0.1, 0.4, 0.95], [-3.0, -2.0, -2.0, -1.0, -3.5]);
        let got = host(discretized_gaussian_log_likelihood(
            col2(&xs, &device),
            col2(&means, &device),
            col2(&log_scales, &device),
        ));
        for i in 0..5 {
            let inv = (-log_scales[i]).exp();
            let (plus, minus) =
                (cdf(inv * (xs[i] - means[i] + 1.0 / 255.0)), cdf(inv * (xs[i] - means[i] - 1.0 / 255.0)));
            let want = if xs[i] < -0.999 {
                plus.max(1e-12).ln()
            } else if xs[i] > 0.999 {
                (1.0 - minus).max(1e-12).ln()
            } else {
                (plus - minus).max(1e-12).ln()
            };
            assert!((got[i] - want).abs() < 1e-4 * want.abs().max(1.0), "log-likelihood {i}: {} vs {want}", got[i]);
        }
    }

    /// `v = -1` is the posterior variance, `v = 1` is `beta_t`; at the true noise and `v = -1`
    /// the model's posterior is the true one, so the KL vanishes (for `t > 0`).
    #[test]
    fn the_learned_range_spans_the_two_bounds_and_the_exact_model_has_no_kl() {
        let s = VpSchedule::new(BetaSchedule::cosine(), 1000);
        let tables = VlbTables::new(&s);
        for t in [1, 10, 500, 999] {
            assert!((tables.log_variance(t, -1.0) - s.posterior(t).variance.ln()).abs() < 1e-12);
            assert!((tables.log_variance(t, 1.0) - s.betas[t].ln()).abs() < 1e-12);
        }
        assert_eq!(tables.min_log[0], tables.min_log[1], "the clipped posterior variance at t = 0");
        let device = Device::flex();
        let (n, c) = (4, 3);
        let x0 = Tensor::<2>::from_data(
            TensorData::new(vec![0.2f32, -0.5, 0.9, 0.0, 0.1, -0.3, 0.7, 0.4, -0.8, 0.5, 0.5, -0.1], [n, c]),
            &device,
        );
        let eps = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, -0.4, 0.3, -1.2, 0.8, 0.05, -0.6, 1.5, 0.2, -0.9, 0.0, 0.7], [n, c]),
            &device,
        );
        let t = [5usize, 100, 400, 900];
        let gamma = column(t.iter().map(|&k| s.gamma(k)), &device);
        let sigma = column(t.iter().map(|&k| s.sigma(k)), &device);
        let x_t = x0.clone() * gamma + eps.clone() * sigma;
        let v = Tensor::<2>::ones([n, c], &device).neg();
        let term: Vec<f32> =
            vb_term(&tables, x0.clone(), x_t.clone(), eps.clone(), v, &t).into_data().try_into_vec().unwrap();
        for (k, x) in term.iter().enumerate() {
            assert!(x.abs() < 1e-3, "t = {}: KL {x} bits with the exact model", t[k]);
        }
        // A wrong variance (beta_t) costs bits, most where the two bounds differ most (small t;
        // they meet as t grows).
        let v = Tensor::<2>::ones([n, c], &device);
        let term: Vec<f32> = vb_term(&tables, x0, x_t, eps, v, &t).into_data().try_into_vec().unwrap();
        assert!(term.iter().all(|x| *x > 0.0) && term[0] > 1e-2, "{term:?}");
        assert!(term.windows(2).all(|w| w[0] > w[1]), "{term:?}");
    }

    /// The learned step's noise scale is `exp(log var / 2)` of the respaced tables, its mean the
    /// posterior mean of `x0_hat`: checked in f64 at both bounds and half way.
    #[test]
    fn the_learned_step_adds_the_interpolated_standard_deviation_to_the_posterior_mean() {
        let s = VpSchedule::new(BetaSchedule::cosine(), 1000);
        let map: Vec<usize> = (0..20).map(|k| k * 50).collect();
        let tables = VlbTables::new(&s.respaced(&map));
        let device = Device::flex();
        let (x, e, z) = ([0.3f64, -1.1, 2.0], [0.5f64, 0.2, -0.7], [1.0f64, -0.5, 0.25]);
        for i in [1usize, 7, 19] {
            for v in [-1.0f64, 0.0, 1.0] {
                let got = host(learned_step(
                    &tables,
                    i,
                    col2(&x, &device),
                    col2(&e, &device),
                    col2(&[v; 3], &device),
                    Some(col2(&z, &device)),
                ));
                let (abar, prev) = (s.alpha_bar[map[i]], s.alpha_bar[map[i - 1]]);
                let beta = 1.0 - abar / prev;
                let post = beta * (1.0 - prev) / (1.0 - abar);
                let log_var = (v + 1.0) / 2.0 * beta.ln() + (1.0 - v) / 2.0 * post.ln();
                for k in 0..3 {
                    let x0 = x[k] / abar.sqrt() - (1.0 / abar - 1.0).sqrt() * e[k];
                    let mean = prev.sqrt() * beta / (1.0 - abar) * x0
                        + (1.0 - beta).sqrt() * (1.0 - prev) / (1.0 - abar) * x[k];
                    let want = mean + (0.5 * log_var).exp() * z[k];
                    assert!((got[k] - want).abs() < 1e-4 * want.abs().max(1.0), "i {i} v {v}: {} vs {want}", got[k]);
                }
            }
        }
    }
}
