//! Samplers for variance-preserving diffusion models: DDPM ancestral and DDIM (`eta`), and
//! solvers of the probability-flow ODE (Euler, Heun, DPM-Solver++(2M)), over a timestep map
//! (fewer steps are data, not a subclass), with classifier-free guidance.
//!
//! Networks are reached only through [`Denoiser`]. Every step turns the prediction into
//! `x0_hat` (optionally clipped to `[-1, 1]`) and `eps_hat = (x_t - g x0_hat) / s`, then, from
//! `(g, s)` at the step's timestep to `(g', s')` at the next (`g' = 1, s' = 0` after the last):
//! - DDPM: `x_prev = c0 x0_hat + ct x_t + sqrt(var) z` with the posterior of the respaced schedule;
//! - DDIM: `x_prev = g' x0_hat + sqrt(1 - g'^2 - sigma^2) eps_hat + sigma z`, with
//!   `sigma = eta sqrt((1 - abar') / (1 - abar)) sqrt(1 - abar / abar')` (DDIM eq. 12, 16);
//! - the ODE solvers, in the variables of Karras et al. (EDM) `y = x / g` and `r = s / g`, where
//!   the probability-flow ODE is `dy / dr = eps_hat(x)`:
//!   - Euler: `y' = y + (r' - r) eps_hat` (algebraically DDIM at `eta = 0`);
//!   - Heun (EDM Algorithm 1): the Euler step, then `y' = y + (r' - r) (eps_hat + eps_hat') / 2`
//!     with `eps_hat'` at the Euler point and the next timestep; the last step (to `r' = 0`)
//!     stays Euler. `2 N - 1` network evaluations for `N` steps;
//!   - DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), in log-SNR `lambda = ln(g / s)` with
//!     `h = lambda' - lambda`: `x' = (s' / s) x - g' (e^-h - 1) D`, where `D = x0_hat` on the
//!     first and the last step and `D = (1 + 1 / 2k) x0_hat - (1 / 2k) x0_hat_before` otherwise,
//!     `k = h_before / h` (the step before's `h`).
//!
//! Guidance (Ho & Salimans): `eps = eps_u + w (eps_c - eps_u)`, the conditional and the
//! unconditional (null-class) predictions made in one doubled batch; `w = 1` skips the
//! unconditional half.

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::vp::{Prediction, VpSchedule};

/// A network as the samplers see it.
pub trait Denoiser {
    /// What [`Denoiser::predict`] returns.
    fn prediction(&self) -> Prediction;

    /// The prediction at original timesteps `t`, conditioned on `labels` (`None`:
    /// unconditional model).
    ///
    /// # Shapes
    /// - `x_t`: `[B, C, H, W]`; `t`, `labels`: `[B]`; returns `[B, C, H, W]`
    fn predict(&self, x_t: Tensor<4>, t: &[usize], labels: Option<&[usize]>) -> Tensor<4>;
}

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerKind {
    /// DDPM ancestral sampling with the posterior variance.
    Ddpm,
    /// DDIM; `eta = 0` is deterministic, `eta = 1` matches DDPM's marginals.
    Ddim { eta: f64 },
    /// Euler's method on the probability-flow ODE (first order, deterministic).
    Euler,
    /// Heun's method on the probability-flow ODE (second order; two network evaluations per
    /// step but the last).
    Heun,
    /// DPM-Solver++(2M): multistep, second order, on the data prediction (deterministic).
    DpmSolver2M,
}

impl SamplerKind {
    /// The name in FID tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Ddpm => "ddpm",
            SamplerKind::Ddim { .. } => "ddim",
            SamplerKind::Euler => "euler",
            SamplerKind::Heun => "heun",
            SamplerKind::DpmSolver2M => "dpm2m",
        }
    }

    /// Network evaluations of a chain of `steps` steps (a guided evaluation's doubled batch
    /// counts once): `2 steps - 1` for Heun, `steps` for the others.
    pub fn evaluations(self, steps: usize) -> usize {
        match self {
            SamplerKind::Heun => (2 * steps).saturating_sub(1),
            _ => steps,
        }
    }
}

/// What a multistep solver carries from one step to the next: the step's `x0_hat` and its
/// `h` in log-SNR (DPM-Solver++(2M)'s history).
pub struct History {
    x0: Tensor<4>,
    h: f64,
}

/// The increasing original timesteps a sampler visits (it runs them in reverse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestepMap(pub Vec<usize>);

impl TimestepMap {
    /// `steps` timesteps evenly spaced over `0..T`, both ends included
    /// (`round(i (T - 1) / (steps - 1))`, improved DDPM's respacing); all `T` when `steps >= T`;
    /// one step is the last timestep alone (`x_T -> x0_hat` in a single network call).
    ///
    /// # Panics
    /// When `steps == 0` or `total == 0` (callers check user input first).
    pub fn evenly_spaced(total: usize, steps: usize) -> Self {
        assert!(steps > 0 && total > 0, "a sampler needs at least one step of a non-empty schedule");
        if steps >= total {
            return TimestepMap((0..total).collect());
        }
        if steps == 1 {
            return TimestepMap(vec![total - 1]);
        }
        let stride = (total - 1) as f64 / (steps - 1) as f64;
        let mut map: Vec<usize> = (0..steps).map(|i| (i as f64 * stride).round() as usize).collect();
        map.dedup();
        TimestepMap(map)
    }

    /// `steps` timesteps `i T / steps` for `i < steps` (DDIM's "uniform" spacing): the first is
    /// 0, the last `T - T / steps`, so the chain starts one stride before the schedule's end
    /// (the map of singular schedules, see [`TimestepMap::for_schedule`]).
    ///
    /// # Panics
    /// When `steps == 0` or `total == 0` (callers check user input first).
    pub fn leading(total: usize, steps: usize) -> Self {
        assert!(steps > 0 && total > 0, "a sampler needs at least one step of a non-empty schedule");
        let steps = steps.min(total);
        TimestepMap((0..steps).map(|i| i * total / steps).collect())
    }

    /// The map a sampler of `steps` steps uses on `schedule`: [`TimestepMap::leading`] when the
    /// schedule's last step carries no signal (`abar_T` below [`SINGULAR_ABAR`]: the cosine
    /// schedule, 2.4e-9, and linear gamma^2, 0) and more than one step is asked, else
    /// [`TimestepMap::evenly_spaced`] (linear betas: `abar_T` = 4e-5, the maps of every DiT
    /// result so far).
    pub fn for_schedule(schedule: &VpSchedule, steps: usize) -> Self {
        let total = schedule.len();
        if steps > 1 && schedule.alpha_bar[total - 1] < SINGULAR_ABAR {
            TimestepMap::leading(total, steps)
        } else {
            TimestepMap::evenly_spaced(total, steps)
        }
    }
}

/// `abar` below which a schedule's last timestep is singular for an eps-predicting sampler: the
/// step from it multiplies the eps error by `sqrt(abar_prev / abar_T)`.
pub const SINGULAR_ABAR: f64 = 1e-6;

/// Classifier-free guidance settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guidance {
    /// `w`; 1 is the plain conditional model.
    pub scale: f64,
    /// The label of the learned null class.
    pub null_class: usize,
}

/// A sampler: schedule, update rule, timestep map, guidance.
#[derive(Debug, Clone)]
pub struct Sampler {
    /// The training schedule (original `T` steps).
    pub schedule: VpSchedule,
    pub kind: SamplerKind,
    pub map: TimestepMap,
    pub guidance: Option<Guidance>,
    /// Clip `x0_hat` to `[-1, 1]` (pixel-space models).
    pub clip_x0: bool,
}

impl Sampler {
    /// Draws `x_T ~ N(0, I)` from `seed` and denoises it to `x0`.
    ///
    /// # Shapes
    /// - `shape`: `[B, C, H, W]`; `labels`: `[B]`; returns `[B, C, H, W]`
    pub fn sample(
        &self,
        net: &dyn Denoiser,
        shape: [usize; 4],
        labels: Option<&[usize]>,
        seed: u64,
        device: &Device,
        on_step: &mut dyn FnMut(usize, usize),
    ) -> Tensor<4> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = gaussian(shape, &mut rng, device);
        let n = self.map.0.len();
        let mut history = None;
        for i in (0..n).rev() {
            let noise = if i > 0 { Some(gaussian(shape, &mut rng, device)) } else { None };
            x = self.step_with(net, x, i, labels, noise, &mut history);
            on_step(n - i, n);
        }
        x
    }

    /// One update from map position `i` (original timestep `map[i]`) to `i - 1`; `noise` is
    /// `z ~ N(0, I)` (unused by DDIM with `eta = 0` and the ODE solvers, absent at the last
    /// step). A multistep solver's lone step is its first-order step.
    ///
    /// # Shapes
    /// - `x`, `noise`: `[B, C, H, W]`; `labels`: `[B]`; returns `[B, C, H, W]`
    pub fn step(
        &self,
        net: &dyn Denoiser,
        x: Tensor<4>,
        i: usize,
        labels: Option<&[usize]>,
        noise: Option<Tensor<4>>,
    ) -> Tensor<4> {
        self.step_with(net, x, i, labels, noise, &mut None)
    }

    /// [`Sampler::step`] in a chain: `history` is what the step before left (`None` before the
    /// first step) and is replaced by this step's.
    ///
    /// # Shapes
    /// - `x`, `noise`: `[B, C, H, W]`; `labels`: `[B]`; returns `[B, C, H, W]`
    pub fn step_with(
        &self,
        net: &dyn Denoiser,
        x: Tensor<4>,
        i: usize,
        labels: Option<&[usize]>,
        noise: Option<Tensor<4>>,
        history: &mut Option<History>,
    ) -> Tensor<4> {
        let respaced = self.schedule.respaced(&self.map.0);
        let (x0, eps) = self.denoise(net, x.clone(), self.map.0[i], labels);
        // (g, s) here and (g', s') at the next timestep (the clean end after map position 0).
        let (abar, prev) = (respaced.alpha_bar[i], respaced.alpha_bar_prev(i));
        let (g, s, g2, s2) = (abar.sqrt(), (1.0 - abar).sqrt(), prev.sqrt(), (1.0 - prev).sqrt());
        match self.kind {
            SamplerKind::Euler => {
                // y' = y + (r' - r) eps with y = x / g, r = s / g; x' = g' y'.
                let y = x / g + eps * (s2 / g2 - s / g);
                y * g2
            }
            SamplerKind::Heun => {
                let (r, r2) = (s / g, s2 / g2);
                let y = x / g;
                let euler = y.clone() + eps.clone() * (r2 - r);
                if i == 0 {
                    return euler * g2;
                }
                let (_, eps2) = self.denoise(net, euler * g2, self.map.0[i - 1], labels);
                (y + (eps + eps2) * ((r2 - r) / 2.0)) * g2
            }
            SamplerKind::DpmSolver2M => {
                let (first, ratio) = match (history.take(), i > 0) {
                    (Some(before), true) => {
                        let h = (g2 / s2).ln() - (g / s).ln();
                        let k = before.h / h;
                        let d = x0.clone() * (1.0 + 0.5 / k) - before.x0 * (0.5 / k);
                        *history = Some(History { x0, h });
                        (d, s2 / s)
                    }
                    (_, true) => {
                        let h = (g2 / s2).ln() - (g / s).ln();
                        *history = Some(History { x0: x0.clone(), h });
                        (x0, s2 / s)
                    }
                    // The last step, to s' = 0: h is infinite, x' = g' x0_hat (first order).
                    (_, false) => (x0, 0.0),
                };
                // x' = (s'/s) x - g' (e^-h - 1) D, with g' e^-h = g s' / s.
                x * ratio + first * (g2 - g * ratio)
            }
            SamplerKind::Ddpm => ddpm_or_ddim(x, x0, eps, i, &respaced, noise, None),
            SamplerKind::Ddim { eta } => ddpm_or_ddim(x, x0, eps, i, &respaced, noise, Some(eta)),
        }
    }

    /// `(x0_hat, eps_hat)` at original timestep `t`, with guidance and clipping applied.
    ///
    /// # Shapes
    /// - `x_t`: `[B, C, H, W]`; returns two `[B, C, H, W]`
    pub fn denoise(
        &self,
        net: &dyn Denoiser,
        x_t: Tensor<4>,
        t: usize,
        labels: Option<&[usize]>,
    ) -> (Tensor<4>, Tensor<4>) {
        let b = x_t.dims()[0];
        let (g, s) = (self.schedule.gamma(t), self.schedule.sigma(t));
        let kind = net.prediction();
        let eps_of = |x: Tensor<4>, pred: Tensor<4>| {
            let a = kind.to_eps(g, s);
            x * a.xt + pred * a.pred
        };
        let eps = match (self.guidance, labels) {
            (Some(guide), Some(y)) if guide.scale != 1.0 => {
                let both = Tensor::cat(vec![x_t.clone(), x_t.clone()], 0);
                let mut ys = y.to_vec();
                ys.extend(std::iter::repeat_n(guide.null_class, b));
                let pred = net.predict(both.clone(), &vec![t; 2 * b], Some(&ys));
                let eps = eps_of(both, pred);
                let cond = eps.clone().narrow(0, 0, b);
                let uncond = eps.narrow(0, b, b);
                uncond.clone() + (cond - uncond) * guide.scale
            }
            _ => eps_of(x_t.clone(), net.predict(x_t.clone(), &vec![t; b], labels)),
        };
        // x0 from eps (floor g so that a schedule ending at abar = 0 stays finite).
        let g_safe = g.max(1e-4);
        let x0 = (x_t.clone() - eps.clone() * s) / g_safe;
        if !self.clip_x0 {
            return (x0, eps);
        }
        let x0 = x0.clamp(-1.0, 1.0);
        let eps = (x_t - x0.clone() * g) / s.max(1e-12);
        (x0, eps)
    }
}

/// A DDPM (`eta` none) or DDIM update of `x` at map position `i` of the `respaced` schedule
/// from its `(x0_hat, eps_hat)`.
///
/// # Shapes
/// - `x`, `x0`, `eps`, `noise`: `[B, C, H, W]`; returns `[B, C, H, W]`
fn ddpm_or_ddim(
    x: Tensor<4>,
    x0: Tensor<4>,
    eps: Tensor<4>,
    i: usize,
    respaced: &VpSchedule,
    noise: Option<Tensor<4>>,
    eta: Option<f64>,
) -> Tensor<4> {
    match eta {
        None => {
            let p = respaced.posterior(i);
            let mean = x0 * p.coef_x0 + x * p.coef_xt;
            match noise {
                Some(z) => mean + z * p.variance.sqrt(),
                None => mean,
            }
        }
        Some(eta) => {
            let (abar, prev) = (respaced.alpha_bar[i], respaced.alpha_bar_prev(i));
            let sigma = eta * ((1.0 - prev) / (1.0 - abar)).sqrt() * (1.0 - abar / prev).sqrt();
            let dir = (1.0 - prev - sigma * sigma).max(0.0).sqrt();
            let next = x0 * prev.sqrt() + eps * dir;
            match noise {
                Some(z) if sigma > 0.0 => next + z * sigma,
                _ => next,
            }
        }
    }
}

/// Standard normal noise of `shape` from `rng`.
fn gaussian(shape: [usize; 4], rng: &mut ChaCha8Rng, device: &Device) -> Tensor<4> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::vp::BetaSchedule;

    /// A "network" that knows the data: every image is the constant `value`, so its exact
    /// eps prediction is `(x_t - g value) / s`.
    struct Oracle {
        value: f32,
        schedule: VpSchedule,
    }

    impl Denoiser for Oracle {
        fn prediction(&self) -> Prediction {
            Prediction::Eps
        }
        fn predict(&self, x_t: Tensor<4>, t: &[usize], _labels: Option<&[usize]>) -> Tensor<4> {
            let (g, s) = (self.schedule.gamma(t[0]), self.schedule.sigma(t[0]));
            (x_t - g * self.value as f64) / s
        }
    }

    fn sampler(kind: SamplerKind, steps: usize) -> Sampler {
        let schedule = VpSchedule::new(BetaSchedule::ddpm(), 1000);
        Sampler { map: TimestepMap::evenly_spaced(1000, steps), schedule, kind, guidance: None, clip_x0: false }
    }

    fn values(x: Tensor<4>) -> Vec<f32> {
        x.into_data().try_into_vec().unwrap()
    }

    #[test]
    fn timestep_map_spans_both_ends() {
        assert_eq!(TimestepMap::evenly_spaced(1000, 5).0, vec![0, 250, 500, 749, 999]);
        assert_eq!(TimestepMap::evenly_spaced(10, 50).0, (0..10).collect::<Vec<_>>());
        assert_eq!(TimestepMap::evenly_spaced(1000, 2).0, vec![0, 999]);
    }

    #[test]
    fn leading_map_starts_at_zero_and_stops_one_stride_before_the_end() {
        assert_eq!(TimestepMap::leading(1000, 4).0, vec![0, 250, 500, 750]);
        assert_eq!(TimestepMap::leading(1000, 100).0.last(), Some(&990));
        assert_eq!(TimestepMap::leading(1000, 3).0, vec![0, 333, 666]);
        assert_eq!(TimestepMap::leading(10, 50).0, (0..10).collect::<Vec<_>>());
        assert_eq!(TimestepMap::leading(1000, 1).0, vec![0]);
    }

    #[test]
    fn singular_schedules_start_one_stride_before_their_end() {
        let map = |kind, steps| TimestepMap::for_schedule(&VpSchedule::new(kind, 1000), steps).0;
        let linear = BetaSchedule::LinearBeta { start: 1e-4, end: 0.02 };
        assert_eq!(map(linear, 50), TimestepMap::evenly_spaced(1000, 50).0);
        assert_eq!(map(BetaSchedule::cosine(), 100).last(), Some(&990));
        assert_eq!(map(BetaSchedule::LinearGamma2, 50).last(), Some(&980));
        assert_eq!(map(BetaSchedule::cosine(), 1), vec![999]);
    }

    /// Regression (issue 11, defect a): `--steps 1` ran all 1000 steps.
    #[test]
    fn one_step_is_one_network_call_from_the_last_timestep() {
        assert_eq!(TimestepMap::evenly_spaced(1000, 1).0, vec![999]);
        let device = Device::flex();
        for kind in [SamplerKind::Ddpm, SamplerKind::Ddim { eta: 0.0 }] {
            let s = sampler(kind, 1);
            let oracle = Oracle { value: 0.3, schedule: s.schedule.clone() };
            let mut calls = 0;
            let x = values(s.sample(&oracle, [1, 1, 2, 2], None, 5, &device, &mut |_, _| calls += 1));
            assert_eq!(calls, 1, "{kind:?}");
            assert!(x.iter().all(|v| (v - 0.3).abs() < 1e-3), "{kind:?}: {x:?}");
        }
    }

    #[test]
    fn ddim_with_the_exact_eps_recovers_x0_and_is_deterministic() {
        let device = Device::flex();
        let s = sampler(SamplerKind::Ddim { eta: 0.0 }, 50);
        let oracle = Oracle { value: 0.3, schedule: s.schedule.clone() };
        let a = values(s.sample(&oracle, [2, 1, 4, 4], None, 7, &device, &mut |_, _| {}));
        let b = values(s.sample(&oracle, [2, 1, 4, 4], None, 7, &device, &mut |_, _| {}));
        assert_eq!(a, b, "eta = 0 is deterministic for a seed");
        assert!(a.iter().all(|v| (v - 0.3).abs() < 1e-4), "{a:?}");
    }

    #[test]
    fn a_ddim_step_keeps_the_noise_direction() {
        // With the exact eps, x_t = g x0 + s z maps to g' x0 + s' z at the previous kept step.
        let device = Device::flex();
        let s = sampler(SamplerKind::Ddim { eta: 0.0 }, 5); // map 0, 250, 500, 749, 999
        let oracle = Oracle { value: 0.3, schedule: s.schedule.clone() };
        let z = [0.5f32, -1.0, 2.0, 0.0];
        let (g, sg) = (s.schedule.gamma(500), s.schedule.sigma(500));
        let x: Vec<f32> = z.iter().map(|&v| (g * 0.3 + sg * v as f64) as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(x, [1, 1, 2, 2]), &device);
        let prev = values(s.step(&oracle, x, 2, None, None));
        let (g2, s2) = (s.schedule.gamma(250), s.schedule.sigma(250));
        for (p, v) in prev.iter().zip(z) {
            assert!((*p as f64 - (g2 * 0.3 + s2 * v as f64)).abs() < 1e-5, "{prev:?}");
        }
    }

    #[test]
    fn ddpm_with_the_exact_eps_recovers_x0() {
        let device = Device::flex();
        let s = sampler(SamplerKind::Ddpm, 100);
        let oracle = Oracle { value: -0.5, schedule: s.schedule.clone() };
        let x = values(s.sample(&oracle, [1, 1, 4, 4], None, 3, &device, &mut |_, _| {}));
        assert!(x.iter().all(|v| (v + 0.5).abs() < 1e-4), "{x:?}");
    }

    /// Data `N(mu, c^2)` in every pixel: the exact denoiser is affine,
    /// `x0_hat = mu + g c^2 / (g^2 c^2 + s^2) (x_t - g mu)`, and the probability-flow ODE is
    /// solved in closed form: `y = x / g = mu + sqrt(c^2 + r^2) u` with `r = s / g` and `u`
    /// constant along a path. It counts its evaluations.
    struct GaussianData {
        mu: f64,
        c: f64,
        schedule: VpSchedule,
        calls: std::cell::Cell<usize>,
    }

    impl Denoiser for GaussianData {
        fn prediction(&self) -> Prediction {
            Prediction::Eps
        }
        fn predict(&self, x_t: Tensor<4>, t: &[usize], _labels: Option<&[usize]>) -> Tensor<4> {
            self.calls.set(self.calls.get() + 1);
            let (g, s) = (self.schedule.gamma(t[0]), self.schedule.sigma(t[0]));
            let k = g * self.c * self.c / (g * g * self.c * self.c + s * s);
            let x0 = (x_t.clone() - g * self.mu) * k + self.mu;
            (x_t - x0 * g) / s
        }
    }

    /// The largest error, at map position 0, of `kind`'s chain of `steps` steps started on the
    /// exact ODE path at the map's last timestep, against the closed form; and the network
    /// evaluations it made.
    fn ode_error(kind: SamplerKind, steps: usize) -> (f64, usize) {
        let device = Device::flex();
        let s = sampler(kind, steps);
        let data = GaussianData { mu: 0.3, c: 0.5, schedule: s.schedule.clone(), calls: Default::default() };
        let r = |t: usize| s.schedule.sigma(t) / s.schedule.gamma(t);
        let (first, last) = (s.map.0[s.map.0.len() - 1], s.map.0[0]);
        let u = [-2.0, -0.5, 0.7, 1.9];
        let start: Vec<f32> =
            u.iter().map(|u| (s.schedule.gamma(first) * (0.3 + (0.25 + r(first).powi(2)).sqrt() * u)) as f32).collect();
        let mut x = Tensor::<4>::from_data(TensorData::new(start, [1, 1, 2, 2]), &device);
        let mut history = None;
        for i in (1..s.map.0.len()).rev() {
            x = s.step_with(&data, x, i, None, None, &mut history);
        }
        let got = values(x);
        let err = u
            .iter()
            .zip(&got)
            .map(|(u, x)| {
                let exact = s.schedule.gamma(last) * (0.3 + (0.25 + r(last).powi(2)).sqrt() * u);
                (*x as f64 - exact).abs()
            })
            .fold(0.0, f64::max);
        (err, data.calls.get())
    }

    /// Each ODE solver converges at its order on the probability-flow ODE of Gaussian data:
    /// doubling the steps divides the error by about 2 (Euler, DDIM) or 4 (Heun, DPM-Solver++(2M)).
    /// A wrong coefficient in a second-order step (e.g. DPM-Solver++'s `1 / 2k` as `1 / k`, or
    /// Heun's corrector at the current timestep) leaves it first order and fails here.
    ///
    /// Measured from 40 steps on: on this map (evenly spaced in t, ending at t = 0) the last
    /// steps are long in log-SNR, and at 10-20 steps DPM-Solver++(2M)'s extrapolation is not yet
    /// in its asymptotic regime (errors 0.39 and 0.24 at 10 and 20 steps against DDIM's 0.28 and
    /// 0.14; a float64 rerun of the same chains gives the same figures).
    #[test]
    fn ode_solvers_converge_at_their_order_on_gaussian_data() {
        const STEPS: [usize; 3] = [40, 80, 160];
        for (kind, order) in [
            (SamplerKind::Euler, 1.0),
            (SamplerKind::Ddim { eta: 0.0 }, 1.0),
            (SamplerKind::Heun, 2.0),
            (SamplerKind::DpmSolver2M, 2.0),
        ] {
            let errs: Vec<(f64, usize)> = STEPS.iter().map(|&n| ode_error(kind, n)).collect();
            for w in errs.windows(2) {
                let measured = (w[0].0 / w[1].0).log2();
                eprintln!("{kind:?}: {:.3e} -> {:.3e}, order {measured:.2}", w[0].0, w[1].0);
                assert!((measured - order).abs() < 0.35, "{kind:?}: order {measured:.2}, expected {order}: {errs:?}");
            }
            for (n, (_, calls)) in STEPS.iter().zip(&errs) {
                // Positions n-1 .. 1: n - 1 steps, each two evaluations for Heun (none is the last).
                let expect = if kind == SamplerKind::Heun { 2 * (n - 1) } else { n - 1 };
                assert_eq!(*calls, expect, "{kind:?} at {n} steps");
            }
        }
        assert_eq!(SamplerKind::Heun.evaluations(10), 19);
        assert_eq!(SamplerKind::DpmSolver2M.evaluations(10), 10);
    }

    /// Euler on the ODE is DDIM at eta 0 written in other variables; DPM-Solver++'s first step
    /// (no history) is DDIM's; every solver ends on the clean sample of an exact denoiser.
    #[test]
    fn euler_is_ddim_and_every_solver_ends_on_the_data() {
        let device = Device::flex();
        let chain = |kind| {
            let s = sampler(kind, 25);
            let data = GaussianData { mu: 0.3, c: 0.5, schedule: s.schedule.clone(), calls: Default::default() };
            values(s.sample(&data, [1, 1, 4, 4], None, 11, &device, &mut |_, _| {}))
        };
        let ddim = chain(SamplerKind::Ddim { eta: 0.0 });
        for (a, b) in chain(SamplerKind::Euler).iter().zip(&ddim) {
            assert!((a - b).abs() < 1e-4, "euler {a} vs ddim {b}");
        }
        let s = sampler(SamplerKind::DpmSolver2M, 25);
        let d = sampler(SamplerKind::Ddim { eta: 0.0 }, 25);
        let data = GaussianData { mu: 0.3, c: 0.5, schedule: s.schedule.clone(), calls: Default::default() };
        let x = Tensor::<4>::from_data(TensorData::new(vec![0.1f32, -0.4, 1.2, 0.0], [1, 1, 2, 2]), &device);
        let one = values(s.step(&data, x.clone(), 24, None, None));
        let two = values(d.step(&data, x, 24, None, None));
        for (a, b) in one.iter().zip(&two) {
            assert!((a - b).abs() < 1e-5, "first dpm step {a} vs ddim {b}");
        }
        for kind in [SamplerKind::Euler, SamplerKind::Heun, SamplerKind::DpmSolver2M] {
            let s = sampler(kind, 30);
            let point = Oracle { value: -0.25, schedule: s.schedule.clone() };
            let x = values(s.sample(&point, [1, 1, 2, 2], None, 4, &device, &mut |_, _| {}));
            assert!(x.iter().all(|v| (v + 0.25).abs() < 1e-4), "{kind:?}: {x:?}");
        }
    }

    /// Predicts eps = 1 for class 0 and eps = 0 for every other label.
    struct TwoClass;

    impl Denoiser for TwoClass {
        fn prediction(&self) -> Prediction {
            Prediction::Eps
        }
        fn predict(&self, x_t: Tensor<4>, _t: &[usize], labels: Option<&[usize]>) -> Tensor<4> {
            let [b, c, h, w] = x_t.dims();
            let per: Vec<f32> = labels.unwrap().iter().flat_map(|&y| vec![(y == 0) as u8 as f32; c * h * w]).collect();
            Tensor::from_data(TensorData::new(per, [b, c, h, w]), &x_t.device())
        }
    }

    #[test]
    fn guidance_extrapolates_from_the_null_class() {
        let device = Device::flex();
        let mut s = sampler(SamplerKind::Ddim { eta: 0.0 }, 10);
        s.guidance = Some(Guidance { scale: 3.0, null_class: 9 });
        let x = Tensor::<4>::zeros([2, 1, 2, 2], &device);
        // eps_c = 1 (class 0) or 0 (class 5); eps_u = 0: eps = 0 + 3 (eps_c - 0).
        let (_, eps) = s.denoise(&TwoClass, x, 500, Some(&[0, 5]));
        assert_eq!(values(eps), vec![3.0, 3.0, 3.0, 3.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
