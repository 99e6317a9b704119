//! Noise schedules, computed once in f64.
//!
//! l-DAE (paper Table 3, "remove input scaling") uses no input scaling (`gamma_t = 1`) and a
//! noise level that grows linearly, `sigma_t = sigma_max * t / (T - 1)` for `t = 0..T-1`, with
//! `sigma_max = sqrt(2)` and `T = 1000`, so `t = T-1` is the noisiest level. The loss weight is
//! `lambda_t = 1 / (1 + sigma_t^2)`.

/// The l-DAE noise schedule: a table of `sigma_t` and `lambda_t` for `t = 0..T-1`.
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaSchedule {
    /// `sigma_t`, `[T]`.
    pub sigma: Vec<f64>,
}

impl SigmaSchedule {
    /// `sigma_t = sigma_max * t / (T - 1)`.
    pub fn linear(steps: usize, sigma_max: f64) -> Self {
        assert!(steps >= 2, "a schedule needs at least 2 steps");
        let denom = (steps - 1) as f64;
        SigmaSchedule { sigma: (0..steps).map(|t| sigma_max * t as f64 / denom).collect() }
    }

    /// The paper's schedule: `T = 1000`, `sigma_max = sqrt(2)`.
    pub fn ldae() -> Self {
        Self::linear(1000, std::f64::consts::SQRT_2)
    }

    /// A single noise level (the paper's single-level ablation uses `sigma = sqrt(1/3)`).
    pub fn constant(steps: usize, sigma: f64) -> Self {
        SigmaSchedule { sigma: vec![sigma; steps] }
    }

    /// The number of steps `T`.
    pub fn len(&self) -> usize {
        self.sigma.len()
    }

    /// Whether the table is empty (never, once constructed).
    pub fn is_empty(&self) -> bool {
        self.sigma.is_empty()
    }

    /// `lambda_t = 1 / (1 + sigma_t^2)`.
    pub fn lambda(&self, t: usize) -> f64 {
        1.0 / (1.0 + self.sigma[t] * self.sigma[t])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldae_sigma_is_linear_from_zero_to_sqrt2() {
        let s = SigmaSchedule::ldae();
        assert_eq!(s.len(), 1000);
        assert_eq!(s.sigma[0], 0.0);
        assert!((s.sigma[999] - 2f64.sqrt()).abs() < 1e-15);
        // t = 10, the linear probe's level: sqrt(2) * 10 / 999.
        assert!((s.sigma[10] - 0.014_156_291_915_646_598).abs() < 1e-15);
        assert!((s.lambda(999) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.lambda(0), 1.0);
    }
}
