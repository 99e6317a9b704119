//! The forward noise process of every denoising objective, as f64 tables, and the loss weight
//! per timestep.
//!
//! `x_t = gamma_t x0 + sigma_t eps` for `t = 0..T-1`. The l-DAE paper's ladder moves along
//! these processes (Tables 1 and 3):
//! - variance preserving (`gamma_t^2 + sigma_t^2 = 1`) with a beta schedule: DDPM's linear betas
//!   (DiT, Table 1's baseline), improved DDPM's cosine, or `gamma_t^2` linear from 1 to 0 (Table
//!   1, "replace the noise schedule"); see [`super::vp`];
//! - no input scaling (`gamma_t = 1`) with `sigma_t` linear from 0 to `sigma_max` (Table 3,
//!   "remove input scaling"; l-DAE: `sqrt 2`);
//! - a single constant level `sigma` (Table 3, last row: `sqrt(1/3)`).
//!
//! The loss weight `lambda_t` is uniform (DDPM's `L_simple`), `gamma_t^2` (Table 3, "predict
//! clean data"), `1 / (1 + sigma_t^2)` (l-DAE), or Min-SNR-`k` (Hang et al. 2023): the clean-data
//! error weighted by `min(SNR_t, k)`, `SNR_t = gamma_t^2 / sigma_t^2`, written on whichever target
//! the network predicts.

use serde::{Deserialize, Serialize};

use super::schedule::SigmaSchedule;
use super::vp::{BetaSchedule, VpSchedule};

/// Which noise process, in a config's `[denoise.noise]` (`kind = ...`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum NoiseSchedule {
    /// Variance preserving, `beta_t` linear in `[start, end]` (DDPM: 1e-4 .. 0.02).
    LinearBeta { start: f64, end: f64 },
    /// Variance preserving, improved DDPM's cosine with offset `s`, betas clipped at `max_beta`.
    Cosine { s: f64, max_beta: f64 },
    /// Variance preserving, `gamma_t^2` linear from 1 down to 0.
    LinearGamma2,
    /// No input scaling: `gamma_t = 1`, `sigma_t = sigma_max t / (T - 1)`.
    LinearSigma { sigma_max: f64 },
    /// No input scaling, one noise level for every `t`.
    Constant { sigma: f64 },
}

impl NoiseSchedule {
    /// DDPM's linear betas (1e-4 .. 0.02).
    pub fn ddpm() -> Self {
        Self::from_beta(BetaSchedule::ddpm())
    }

    /// l-DAE's `sigma_t` linear in `[0, sqrt 2]`.
    pub fn ldae() -> Self {
        NoiseSchedule::LinearSigma { sigma_max: std::f64::consts::SQRT_2 }
    }

    /// The variance-preserving process of a beta schedule.
    pub fn from_beta(beta: BetaSchedule) -> Self {
        match beta {
            BetaSchedule::LinearBeta { start, end } => NoiseSchedule::LinearBeta { start, end },
            BetaSchedule::Cosine { s, max_beta } => NoiseSchedule::Cosine { s, max_beta },
            BetaSchedule::LinearGamma2 => NoiseSchedule::LinearGamma2,
        }
    }

    /// The beta schedule of a variance-preserving process (`None` without input scaling).
    pub fn beta(&self) -> Option<BetaSchedule> {
        match *self {
            NoiseSchedule::LinearBeta { start, end } => Some(BetaSchedule::LinearBeta { start, end }),
            NoiseSchedule::Cosine { s, max_beta } => Some(BetaSchedule::Cosine { s, max_beta }),
            NoiseSchedule::LinearGamma2 => Some(BetaSchedule::LinearGamma2),
            NoiseSchedule::LinearSigma { .. } | NoiseSchedule::Constant { .. } => None,
        }
    }

    /// A short name for tables (`linear-beta`, `linear-sigma(1.414)`, ...).
    pub fn label(&self) -> String {
        match self {
            NoiseSchedule::LinearBeta { .. } => "linear-beta".into(),
            NoiseSchedule::Cosine { .. } => "cosine".into(),
            NoiseSchedule::LinearGamma2 => "linear-gamma2".into(),
            NoiseSchedule::LinearSigma { sigma_max } => format!("linear-sigma({sigma_max:.3})"),
            NoiseSchedule::Constant { sigma } => format!("constant({sigma:.3})"),
        }
    }

    /// Why the settings are invalid, if they are.
    pub fn problem(&self) -> Option<String> {
        match *self {
            NoiseSchedule::LinearBeta { start, end } => (!(0.0 < start && start <= end && end < 1.0))
                .then(|| format!("linear-beta needs 0 < start <= end < 1, got start {start}, end {end}")),
            NoiseSchedule::Cosine { s, max_beta } => (!(s >= 0.0 && 0.0 < max_beta && max_beta < 1.0))
                .then(|| format!("cosine needs s >= 0 and max_beta in (0, 1), got s {s}, max_beta {max_beta}")),
            NoiseSchedule::LinearGamma2 => None,
            NoiseSchedule::LinearSigma { sigma_max } => (!(sigma_max.is_finite() && sigma_max > 0.0))
                .then(|| format!("linear-sigma needs a positive sigma_max, got {sigma_max}")),
            NoiseSchedule::Constant { sigma } => {
                (!(sigma.is_finite() && sigma > 0.0)).then(|| format!("constant needs a positive sigma, got {sigma}"))
            }
        }
    }

    /// The tables over `steps` steps (`steps >= 2`).
    pub fn tables(&self, steps: usize) -> NoiseTables {
        match (self.beta(), *self) {
            (Some(beta), _) => {
                let vp = VpSchedule::new(beta, steps);
                NoiseTables {
                    gamma: (0..steps).map(|t| vp.gamma(t)).collect(),
                    sigma: (0..steps).map(|t| vp.sigma(t)).collect(),
                }
            }
            (None, NoiseSchedule::LinearSigma { sigma_max }) => {
                NoiseTables { gamma: vec![1.0; steps], sigma: SigmaSchedule::linear(steps, sigma_max).sigma }
            }
            (None, NoiseSchedule::Constant { sigma }) => {
                NoiseTables { gamma: vec![1.0; steps], sigma: SigmaSchedule::constant(steps, sigma).sigma }
            }
            (None, _) => unreachable!("every variance-preserving kind has a beta schedule"),
        }
    }
}

/// `gamma_t` and `sigma_t` for `t = 0..T-1`.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseTables {
    pub gamma: Vec<f64>,
    pub sigma: Vec<f64>,
}

impl NoiseTables {
    /// The number of steps `T`.
    pub fn len(&self) -> usize {
        self.sigma.len()
    }

    /// Whether the table is empty (never, once constructed).
    pub fn is_empty(&self) -> bool {
        self.sigma.is_empty()
    }
}

/// What the squared error of a loss is measured on, for a weight defined on the clean-data
/// error (Min-SNR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorOn {
    /// The noise `eps`: its error is `SNR_t` times the clean-data error.
    Eps,
    /// `v = gamma_t eps - sigma_t x0`: its error is `(gamma_t^2 + sigma_t^2)^2 / sigma_t^2` times it.
    V,
    /// The clean data (latent or image).
    Clean,
}

/// The loss weight `lambda_t`, in `[denoise] loss_weight`: `"uniform"`, `"gamma2"`,
/// `"inv-one-plus-sigma2"`, or `{ min-snr = 5.0 }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossWeight {
    /// 1 (DDPM's `L_simple`).
    Uniform,
    /// `gamma_t^2`.
    Gamma2,
    /// `1 / (1 + sigma_t^2)` (l-DAE).
    InvOnePlusSigma2,
    /// Min-SNR-`k`: the clean-data error weighted by `min(SNR_t, k)` (`k = 5` in the paper),
    /// so that the low-noise steps, whose gradients conflict with the rest, stop dominating.
    MinSnr(f64),
}

impl LossWeight {
    /// `lambda_t` for signal scale `gamma` and noise scale `sigma`, on an error measured on `on`.
    pub fn at(self, gamma: f64, sigma: f64, on: ErrorOn) -> f64 {
        match self {
            LossWeight::Uniform => 1.0,
            LossWeight::Gamma2 => gamma * gamma,
            LossWeight::InvOnePlusSigma2 => 1.0 / (1.0 + sigma * sigma),
            LossWeight::MinSnr(k) => {
                // min(SNR, k) over the target's error per unit of clean-data error, written with
                // gamma^2 and sigma^2 so that sigma = 0 (SNR infinite) stays finite.
                let (g2, s2) = (gamma * gamma, sigma * sigma);
                match on {
                    ErrorOn::Eps => (k * s2 / g2).min(1.0),
                    ErrorOn::V => g2.min(k * s2) / ((g2 + s2) * (g2 + s2)),
                    ErrorOn::Clean => (g2 / s2).min(k),
                }
            }
        }
    }

    /// The name used in configs and tables.
    pub fn label(self) -> String {
        match self {
            LossWeight::Uniform => "uniform".into(),
            LossWeight::Gamma2 => "gamma2".into(),
            LossWeight::InvOnePlusSigma2 => "inv-one-plus-sigma2".into(),
            LossWeight::MinSnr(k) => format!("min-snr({k})"),
        }
    }

    /// Why the setting is invalid, if it is.
    pub fn problem(self) -> Option<String> {
        match self {
            LossWeight::MinSnr(k) if !(k.is_finite() && k > 0.0) => {
                Some(format!("min-snr needs a positive finite k, got {k}"))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_follow_each_closed_form() {
        // DDPM: gamma^2 + sigma^2 = 1 and gamma^2 = prod (1 - beta) in f64.
        let t = NoiseSchedule::ddpm().tables(1000);
        let abar: f64 = (0..=500).map(|i| 1.0 - (1e-4 + (0.02 - 1e-4) * i as f64 / 999.0)).product();
        assert!((t.gamma[500] * t.gamma[500] - abar).abs() < 1e-13);
        assert!((t.gamma[500].powi(2) + t.sigma[500].powi(2) - 1.0).abs() < 1e-13);
        // Linear gamma^2: 1 - (t + 1) / T.
        let t = NoiseSchedule::LinearGamma2.tables(1000);
        assert!((t.gamma[249].powi(2) - 0.75).abs() < 1e-12);
        // No input scaling: gamma = 1, sigma = sqrt 2 t / 999.
        let t = NoiseSchedule::ldae().tables(1000);
        assert_eq!(t.gamma[700], 1.0);
        assert!((t.sigma[999] - 2f64.sqrt()).abs() < 1e-15 && t.sigma[0] == 0.0);
        let t = NoiseSchedule::Constant { sigma: (1.0f64 / 3.0).sqrt() }.tables(10);
        assert!(t.sigma.iter().all(|&s| (s * s - 1.0 / 3.0).abs() < 1e-15) && t.gamma.iter().all(|&g| g == 1.0));
    }

    #[test]
    fn loss_weights_match_hand_values() {
        assert_eq!(LossWeight::Uniform.at(0.3, 0.9, ErrorOn::Eps), 1.0);
        assert!((LossWeight::Gamma2.at(0.6, 0.8, ErrorOn::Clean) - 0.36).abs() < 1e-15);
        assert!((LossWeight::InvOnePlusSigma2.at(1.0, 2f64.sqrt(), ErrorOn::Clean) - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn min_snr_is_min_snr_k_on_the_clean_error_whatever_the_target() {
        let w = LossWeight::MinSnr(5.0);
        // gamma 0.96, sigma 0.28: SNR = 0.9216 / 0.0784 = 11.755... > 5.
        let (g, s) = (0.96, 0.28);
        assert!((w.at(g, s, ErrorOn::Clean) - 5.0).abs() < 1e-12);
        assert!((w.at(g, s, ErrorOn::Eps) - 5.0 / (0.9216 / 0.0784)).abs() < 1e-12);
        assert!((w.at(g, s, ErrorOn::V) - 5.0 / (0.9216 / 0.0784 + 1.0)).abs() < 1e-12); // VP: 1 + SNR
        // gamma 0.6, sigma 0.8: SNR = 0.5625 < 5: the eps error keeps weight 1, v gets SNR / (1 + SNR).
        let (g, s) = (0.6, 0.8);
        assert!((w.at(g, s, ErrorOn::Eps) - 1.0).abs() < 1e-12);
        assert!((w.at(g, s, ErrorOn::V) - 0.5625 / 1.5625).abs() < 1e-12);
        assert!((w.at(g, s, ErrorOn::Clean) - 0.5625).abs() < 1e-12);
        // Each weighted error is the same multiple of the clean-data error: eps error = SNR x
        // clean error, v error = (1 + SNR) x clean error (variance preserving).
        for (g, s) in [(0.99f64, (1.0f64 - 0.9801).sqrt()), (0.3, (1.0f64 - 0.09).sqrt())] {
            let snr = g * g / (s * s);
            let clean = w.at(g, s, ErrorOn::Clean);
            assert!((w.at(g, s, ErrorOn::Eps) * snr - clean).abs() < 1e-9);
            assert!((w.at(g, s, ErrorOn::V) * (1.0 + snr) - clean).abs() < 1e-9);
        }
        // sigma = 0 (t = 0 of l-DAE's schedule) stays finite: eps gets 0, clean data k.
        assert_eq!(LossWeight::MinSnr(5.0).at(1.0, 0.0, ErrorOn::Eps), 0.0);
        assert_eq!(LossWeight::MinSnr(5.0).at(1.0, 0.0, ErrorOn::Clean), 5.0);
        assert!(LossWeight::MinSnr(0.0).problem().is_some() && w.problem().is_none());
    }

    #[test]
    fn loss_weights_read_from_toml() {
        #[derive(Deserialize)]
        struct W {
            w: LossWeight,
        }
        let w: W = toml::from_str("w = { min-snr = 5.0 }").unwrap();
        assert_eq!(w.w, LossWeight::MinSnr(5.0));
        let w: W = toml::from_str("w = \"inv-one-plus-sigma2\"").unwrap();
        assert_eq!(w.w, LossWeight::InvOnePlusSigma2);
    }

    #[test]
    fn invalid_settings_are_described() {
        assert!(NoiseSchedule::LinearBeta { start: 0.02, end: 1e-4 }.problem().unwrap().contains("start"));
        assert!(NoiseSchedule::Constant { sigma: 0.0 }.problem().is_some());
        assert!(NoiseSchedule::ldae().problem().is_none());
    }
}
