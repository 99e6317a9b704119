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
//! clean data"), or `1 / (1 + sigma_t^2)` (l-DAE).

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

/// The loss weight `lambda_t`, in `[denoise] loss_weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossWeight {
    /// 1 (DDPM's `L_simple`).
    Uniform,
    /// `gamma_t^2`.
    Gamma2,
    /// `1 / (1 + sigma_t^2)` (l-DAE).
    InvOnePlusSigma2,
}

impl LossWeight {
    /// `lambda_t` for signal scale `gamma` and noise scale `sigma`.
    pub fn at(self, gamma: f64, sigma: f64) -> f64 {
        match self {
            LossWeight::Uniform => 1.0,
            LossWeight::Gamma2 => gamma * gamma,
            LossWeight::InvOnePlusSigma2 => 1.0 / (1.0 + sigma * sigma),
        }
    }

    /// The name used in configs and tables.
    pub fn label(self) -> &'static str {
        match self {
            LossWeight::Uniform => "uniform",
            LossWeight::Gamma2 => "gamma2",
            LossWeight::InvOnePlusSigma2 => "inv-one-plus-sigma2",
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
        assert_eq!(LossWeight::Uniform.at(0.3, 0.9), 1.0);
        assert!((LossWeight::Gamma2.at(0.6, 0.8) - 0.36).abs() < 1e-15);
        assert!((LossWeight::InvOnePlusSigma2.at(1.0, 2f64.sqrt()) - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn invalid_settings_are_described() {
        assert!(NoiseSchedule::LinearBeta { start: 0.02, end: 1e-4 }.problem().unwrap().contains("start"));
        assert!(NoiseSchedule::Constant { sigma: 0.0 }.problem().is_some());
        assert!(NoiseSchedule::ldae().problem().is_none());
    }
}
