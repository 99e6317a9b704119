//! Samplers for variance-preserving diffusion models: DDPM ancestral and DDIM (`eta`), over a
//! timestep map (fewer steps are data, not a subclass), with classifier-free guidance.
//!
//! Networks are reached only through [`Denoiser`]. Every step turns the prediction into
//! `x0_hat` (optionally clipped to `[-1, 1]`) and `eps_hat = (x_t - g x0_hat) / s`, then:
//! - DDPM: `x_prev = c0 x0_hat + ct x_t + sqrt(var) z` with the posterior of the respaced schedule;
//! - DDIM: `x_prev = g' x0_hat + sqrt(1 - g'^2 - sigma^2) eps_hat + sigma z`, with
//!   `sigma = eta sqrt((1 - abar') / (1 - abar)) sqrt(1 - abar / abar')` (DDIM eq. 12, 16).
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
        for i in (0..n).rev() {
            let noise = if i > 0 { Some(gaussian(shape, &mut rng, device)) } else { None };
            x = self.step(net, x, i, labels, noise);
            on_step(n - i, n);
        }
        x
    }

    /// One update from map position `i` (original timestep `map[i]`) to `i - 1`; `noise` is
    /// `z ~ N(0, I)` (unused by DDIM with `eta = 0`, absent at the last step).
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
        let respaced = self.schedule.respaced(&self.map.0);
        let (x0, eps) = self.denoise(net, x.clone(), self.map.0[i], labels);
        match self.kind {
            SamplerKind::Ddpm => {
                let p = respaced.posterior(i);
                let mean = x0 * p.coef_x0 + x * p.coef_xt;
                match noise {
                    Some(z) => mean + z * p.variance.sqrt(),
                    None => mean,
                }
            }
            SamplerKind::Ddim { eta } => {
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
