//! The variance-preserving forward process of DDPM and its schedules, as f64 tables.
//!
//! `x_t = gamma_t x0 + sigma_t eps` with `gamma_t^2 = abar_t = prod_{s <= t} (1 - beta_s)` and
//! `sigma_t^2 = 1 - abar_t`, for `t = 0..T-1` (`t = 0` is the least noisy level; DDPM's `t = 1`).
//!
//! Schedules (l-DAE paper Table 1 uses the first and the last):
//! - DDPM linear beta: `beta_t` linear from `1e-4` to `0.02` over `T = 1000` (as DiT:
//!   `np.linspace(beta_start, beta_end, T)` in f64);
//! - cosine (improved DDPM): `abar(t) = f(t) / f(0)`, `f(t) = cos^2(((t/T + s) / (1 + s)) pi/2)`,
//!   `s = 0.008`, `beta_t = min(1 - abar(t+1)/abar(t), 0.999)`;
//! - linear gamma^2: `abar_t` decays linearly from 1 to 0, `abar_t = 1 - (t+1)/T`.
//!
//! The posterior `q(x_{t-1} | x_t, x0)` and the conversions between the three training targets
//! (eps, x0, v) live here too, as scalar coefficients; samplers apply them to tensors.

use serde::{Deserialize, Serialize};

/// Which beta schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BetaSchedule {
    /// `beta_t` linear in `[start, end]`.
    LinearBeta { start: f64, end: f64 },
    /// The improved-DDPM cosine schedule with offset `s`, betas clipped at `max_beta`.
    Cosine { s: f64, max_beta: f64 },
    /// `gamma_t^2 = abar_t` linear from 1 down to 0.
    LinearGamma2,
}

impl BetaSchedule {
    /// DDPM's `1e-4 .. 0.02`.
    pub fn ddpm() -> Self {
        BetaSchedule::LinearBeta { start: 1e-4, end: 0.02 }
    }

    /// Improved DDPM's cosine, `s = 0.008`, betas clipped at 0.999.
    pub fn cosine() -> Self {
        BetaSchedule::Cosine { s: 0.008, max_beta: 0.999 }
    }
}

/// The tables of one schedule over `T` steps.
#[derive(Debug, Clone, PartialEq)]
pub struct VpSchedule {
    /// `beta_t`, `[T]`.
    pub betas: Vec<f64>,
    /// `abar_t = gamma_t^2`, `[T]`.
    pub alpha_bar: Vec<f64>,
}

impl VpSchedule {
    /// The tables of `kind` over `steps` steps (`steps >= 2`).
    pub fn new(kind: BetaSchedule, steps: usize) -> Self {
        assert!(steps >= 2, "a schedule needs at least 2 steps");
        let n = steps as f64;
        let betas: Vec<f64> = match kind {
            BetaSchedule::LinearBeta { start, end } => {
                (0..steps).map(|i| start + (end - start) * i as f64 / (n - 1.0)).collect()
            }
            BetaSchedule::Cosine { s, max_beta } => {
                let f = |t: f64| (((t / n + s) / (1.0 + s)) * std::f64::consts::FRAC_PI_2).cos().powi(2);
                (0..steps).map(|i| (1.0 - f(i as f64 + 1.0) / f(i as f64)).min(max_beta)).collect()
            }
            BetaSchedule::LinearGamma2 => {
                let abar = |i: usize| 1.0 - i as f64 / n; // abar before step i: 1 at i = 0
                (0..steps).map(|i| if abar(i + 1) <= 0.0 { 1.0 } else { 1.0 - abar(i + 1) / abar(i) }).collect()
            }
        };
        Self::from_betas(betas)
    }

    /// The tables implied by `betas` (`abar_t = prod_{s <= t} (1 - beta_s)`).
    pub fn from_betas(betas: Vec<f64>) -> Self {
        let mut acc = 1.0;
        let alpha_bar = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        VpSchedule { betas, alpha_bar }
    }

    /// The number of steps `T`.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    /// Whether the table is empty (never, once constructed).
    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// `gamma_t = sqrt(abar_t)`, the signal scale.
    pub fn gamma(&self, t: usize) -> f64 {
        self.alpha_bar[t].sqrt()
    }

    /// `sigma_t = sqrt(1 - abar_t)`, the noise scale.
    pub fn sigma(&self, t: usize) -> f64 {
        (1.0 - self.alpha_bar[t]).sqrt()
    }

    /// `abar` before step `t` (`abar_{t-1}`, and 1 for `t = 0`).
    pub fn alpha_bar_prev(&self, t: usize) -> f64 {
        if t == 0 { 1.0 } else { self.alpha_bar[t - 1] }
    }

    /// The posterior `q(x_{t-1} | x_t, x0) = N(c0 x0 + ct x_t, var)` (DDPM eq. 6-7).
    pub fn posterior(&self, t: usize) -> Posterior {
        let (abar, prev, beta) = (self.alpha_bar[t], self.alpha_bar_prev(t), self.betas[t]);
        let one_minus = 1.0 - abar;
        Posterior {
            coef_x0: beta * prev.sqrt() / one_minus,
            coef_xt: (1.0 - prev) * (1.0 - beta).sqrt() / one_minus,
            variance: beta * (1.0 - prev) / one_minus,
        }
    }

    /// The schedule restricted to the increasing timesteps `kept` (a sampler's timestep map):
    /// the new betas are `1 - abar[kept_i] / abar[kept_{i-1}]` (improved DDPM's respacing), so
    /// `abar` at the kept steps is unchanged.
    pub fn respaced(&self, kept: &[usize]) -> VpSchedule {
        let mut last = 1.0;
        let betas = kept
            .iter()
            .map(|&t| {
                let beta = 1.0 - self.alpha_bar[t] / last;
                last = self.alpha_bar[t];
                beta
            })
            .collect();
        Self::from_betas(betas)
    }
}

/// Coefficients of the posterior mean and its variance at one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posterior {
    pub coef_x0: f64,
    pub coef_xt: f64,
    pub variance: f64,
}

/// What a network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prediction {
    /// The noise `eps` (DDPM).
    Eps,
    /// The clean data `x0`.
    X0,
    /// The velocity `v = gamma eps - sigma x0` (Salimans & Ho).
    V,
}

/// Linear maps between the targets at one noise level: each is `a * x_t + b * other`.
///
/// With `x_t = g x0 + s eps` and `g^2 + s^2 = 1`:
/// `x0 = (x_t - s eps) / g`, `eps = (x_t - g x0) / s`, `v = g eps - s x0`,
/// `x0 = g x_t - s v`, `eps = s x_t + g v`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Coefficient of `x_t`.
    pub xt: f64,
    /// Coefficient of the prediction.
    pub pred: f64,
}

impl Prediction {
    /// The name used in configs and plots (`eps`, `x0`, `v`).
    pub fn label(self) -> &'static str {
        match self {
            Prediction::Eps => "eps",
            Prediction::X0 => "x0",
            Prediction::V => "v",
        }
    }

    /// `x0` from `x_t` and a prediction of this kind at signal scale `g`, noise scale `s`.
    pub fn to_x0(self, g: f64, s: f64) -> Affine {
        match self {
            Prediction::Eps => Affine { xt: 1.0 / g, pred: -s / g },
            Prediction::X0 => Affine { xt: 0.0, pred: 1.0 },
            Prediction::V => Affine { xt: g, pred: -s },
        }
    }

    /// `eps` from `x_t` and a prediction of this kind.
    pub fn to_eps(self, g: f64, s: f64) -> Affine {
        match self {
            Prediction::Eps => Affine { xt: 0.0, pred: 1.0 },
            Prediction::X0 => Affine { xt: 1.0 / s, pred: -g / s },
            Prediction::V => Affine { xt: s, pred: g },
        }
    }

    /// The training target of this kind, given `x0` and `eps`: `(coef of x0, coef of eps)`.
    pub fn target(self, g: f64, s: f64) -> (f64, f64) {
        match self {
            Prediction::Eps => (0.0, 1.0),
            Prediction::X0 => (1.0, 0.0),
            Prediction::V => (-s, g),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    #[test]
    fn ddpm_linear_beta_alpha_bar_is_the_product_of_one_minus_beta() {
        let s = VpSchedule::new(BetaSchedule::ddpm(), 1000);
        assert_eq!(s.betas[0], 1e-4);
        assert!(close(s.betas[999], 0.02, 1e-15));
        // beta_t = 1e-4 + (0.02 - 1e-4) t / 999; abar by a direct product in f64.
        for t in [0usize, 1, 10, 500, 999] {
            let direct: f64 = (0..=t).map(|i| 1.0 - (1e-4 + (0.02 - 1e-4) * i as f64 / 999.0)).product();
            assert!(close(s.alpha_bar[t], direct, 1e-13), "t = {t}");
        }
        // Known value (DDPM / DiT tables): abar at the last step is about 4.04e-5.
        assert!((s.alpha_bar[999] - 4.035829e-5).abs() < 1e-9, "{}", s.alpha_bar[999]);
    }

    #[test]
    fn cosine_alpha_bar_follows_the_closed_form_until_the_clip() {
        let s = VpSchedule::new(BetaSchedule::cosine(), 1000);
        let f = |t: f64| (((t / 1000.0 + 0.008) / 1.008) * std::f64::consts::FRAC_PI_2).cos().powi(2);
        for t in [0usize, 1, 100, 500, 900, 990] {
            assert!(close(s.alpha_bar[t], f(t as f64 + 1.0) / f(0.0), 1e-12), "t = {t}");
        }
        assert!(s.betas.iter().all(|&b| b > 0.0 && b <= 0.999), "no zero or clipped-away betas");
        assert_eq!(s.betas[999], 0.999, "the last beta is clipped");
        assert!(s.betas.windows(2).all(|w| w[1] >= w[0]), "betas increase");
    }

    #[test]
    fn linear_gamma2_decays_linearly_to_zero() {
        let s = VpSchedule::new(BetaSchedule::LinearGamma2, 1000);
        for t in [0usize, 1, 499, 998] {
            assert!(close(s.alpha_bar[t], 1.0 - (t as f64 + 1.0) / 1000.0, 1e-12), "t = {t}");
        }
        assert_eq!(s.alpha_bar[999], 0.0);
        assert_eq!(s.sigma(999), 1.0);
    }

    #[test]
    fn posterior_matches_the_gaussian_product_formula() {
        // q(x_{t-1} | x_t, x0) is proportional to q(x_t | x_{t-1}) q(x_{t-1} | x0): its precision
        // is the sum of precisions, its mean the precision-weighted sum.
        let s = VpSchedule::new(BetaSchedule::ddpm(), 1000);
        for t in [1usize, 10, 500, 999] {
            let p = s.posterior(t);
            let (beta, prev) = (s.betas[t], s.alpha_bar[t - 1]);
            let precision = (1.0 - beta) / beta + 1.0 / (1.0 - prev);
            assert!(close(p.variance, 1.0 / precision, 1e-12));
            assert!(close(p.coef_xt, (1.0 - beta).sqrt() / beta / precision, 1e-12));
            assert!(close(p.coef_x0, prev.sqrt() / (1.0 - prev) / precision, 1e-12));
        }
        // At t = 0 the posterior is x0 itself.
        let p0 = s.posterior(0);
        assert!(close(p0.coef_x0, 1.0, 1e-10) && p0.coef_xt == 0.0 && p0.variance == 0.0);
    }

    #[test]
    fn respacing_keeps_alpha_bar_at_the_kept_steps() {
        let s = VpSchedule::new(BetaSchedule::ddpm(), 1000);
        let kept: Vec<usize> = (0..50).map(|i| i * 20 + 19).collect();
        let r = s.respaced(&kept);
        for (i, &t) in kept.iter().enumerate() {
            assert!(close(r.alpha_bar[i], s.alpha_bar[t], 1e-12));
        }
    }

    #[test]
    fn target_conversions_round_trip() {
        let (x0, eps) = (0.7_f64, -1.3_f64);
        for abar in [0.999, 0.5, 0.01] {
            let (g, s) = (f64::sqrt(abar), f64::sqrt(1.0 - abar));
            let xt = g * x0 + s * eps;
            for kind in [Prediction::Eps, Prediction::X0, Prediction::V] {
                let (a, b) = kind.target(g, s);
                let pred = a * x0 + b * eps;
                let to_x0 = kind.to_x0(g, s);
                let to_eps = kind.to_eps(g, s);
                assert!(close(to_x0.xt * xt + to_x0.pred * pred, x0, 1e-12), "{kind:?} -> x0 at {abar}");
                assert!(close(to_eps.xt * xt + to_eps.pred * pred, eps, 1e-12), "{kind:?} -> eps at {abar}");
            }
        }
    }
}
