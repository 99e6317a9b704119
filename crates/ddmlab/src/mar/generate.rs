//! MAR generation (Li et al. 2024, §3.3-3.4; `sample_tokens` of LTH14/mar): every image gets a
//! random order; at each of `K` steps the transformer reads the tokens known so far and the
//! Diffusion Loss head samples the tokens the cosine schedule releases at that step, by DDPM
//! over the respaced cosine schedule with its step noise scaled by the temperature `tau`.
//!
//! The causal variants generate one token per step (`K = L`) in their order (raster or random),
//! each from the tokens before it; the L2 baseline's head outputs the token itself (guidance
//! extrapolates the two estimates; the temperature does not apply).
//!
//! Guidance lives in the head's denoiser, not in a doubled label batch: the transformer runs
//! once with the labels and once with the null class, and the head's noise estimate is
//! `eps_u + w_s (eps_c - eps_u)` with `w_s` ramped linearly with the fraction of known tokens
//! ([`MaskSchedule::guidance`]).

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::codebook::Codebook;
use super::order::{MaskSchedule, mask_of, variant_order};
use crate::config::RunConfig;
use crate::config::{MarLoss, MarVariant};
use crate::diffusion::sampler::{Denoiser, Sampler, SamplerKind, TimestepMap};
use crate::diffusion::vlb::{VlbTables, learned_step};
use crate::diffusion::vp::{Prediction, VpSchedule};
use crate::error::{Error, Result};
use crate::models::mar::Mar;

/// How to sample from a MAR model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarSampling {
    /// Generation steps `K` (the paper: 64), at most one per token.
    pub steps: usize,
    /// DDPM steps of the head (the paper: 100).
    pub head_steps: usize,
    /// `tau`: the scale of the head sampler's step noise (0.95-1.0 typical).
    pub temperature: f64,
    /// Guidance scale `w` (1: none).
    pub cfg: f64,
}

/// What generation needs to know of a MAR run beyond its weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarSpec {
    /// Tokens per image `L` and their width `C`.
    pub len: usize,
    pub token_dim: usize,
    /// The null class id (`num_classes`).
    pub null_class: usize,
    pub variant: MarVariant,
    pub loss: MarLoss,
    /// The head also outputs its steps' variance (`mar.learn_variance`), and the sampler uses it.
    pub learn_variance: bool,
}

impl MarSpec {
    /// The spec of a run's config (`None` without `[mar]`).
    pub fn of(config: &RunConfig) -> Option<MarSpec> {
        let (net, mar) = (config.mar_network()?, config.mar.as_ref()?);
        Some(MarSpec {
            len: net.seq_len,
            token_dim: net.token_dim,
            null_class: net.num_classes,
            variant: mar.variant,
            loss: mar.loss,
            learn_variance: mar.learn_variance,
        })
    }

    /// The default number of generation steps: 64 (or `L` when smaller) for MAR, `L` for the
    /// causal variants.
    pub fn default_steps(&self) -> usize {
        if self.variant.is_causal() { self.len } else { self.len.min(64) }
    }
}

impl MarSampling {
    /// Check every setting against a model of `spec`; the error names the flag.
    pub fn validate(&self, spec: &MarSpec) -> Result<MaskSchedule> {
        let len = spec.len;
        if spec.variant.is_causal() && self.steps != len {
            return Err(Error::config(
                "mar_sampling.steps",
                format!(
                    "K = {}: a causal ({}) model generates one token per step, expected K = {len}",
                    self.steps,
                    spec.variant.name()
                ),
            ));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(Error::config(
                "mar_sampling.temperature",
                format!("{}, expected a positive number", self.temperature),
            ));
        }
        if !(self.cfg >= 0.0 && self.cfg.is_finite()) {
            return Err(Error::config("mar_sampling.cfg", format!("{}, expected a non-negative number", self.cfg)));
        }
        if !spec.loss.samples() && self.temperature != 1.0 {
            return Err(Error::config(
                "mar_sampling.temperature",
                format!(
                    "{}: an L2 regression head outputs its prediction without sampling, so a temperature \
                     has nothing to scale (it applies to Diffusion Loss and cross-entropy heads); expected 1",
                    self.temperature
                ),
            ));
        }
        if spec.loss.denoises() && self.head_steps < 2 {
            return Err(Error::config(
                "mar_sampling.head_steps",
                format!(
                    "{}: the Diffusion Loss head's DDPM steps, expected at least 2 (the paper: 100)",
                    self.head_steps
                ),
            ));
        }
        MaskSchedule::cosine(len, self.steps)
    }
}

/// The head's noise estimate with guidance, as a [`Denoiser`] over `[N, C, 1, 1]` token grids.
struct GuidedHead<'a> {
    eps: &'a dyn Fn(Tensor<2>, &[usize], bool) -> Tensor<2>,
    scale: f64,
}

impl GuidedHead<'_> {
    /// The guided noise estimate and the conditional head's other outputs (a learned-variance
    /// head's `v`; as LTH14/mar's `forward_with_cfg`, the variance is not guided).
    ///
    /// # Shapes
    /// - `x`: `[N, C]`; returns `[N, C]` and `[N, out - C]` (`None` when `out = C`)
    fn guided(&self, x: Tensor<2>, t: &[usize]) -> (Tensor<2>, Option<Tensor<2>>) {
        let [n, c] = x.dims();
        let cond = (self.eps)(x.clone(), t, true);
        let rest = cond.dims()[1] - c;
        let cond_rest = (rest > 0).then(|| cond.clone().narrow(1, c, rest));
        let cond_eps = cond.narrow(1, 0, c);
        let eps = if self.scale == 1.0 {
            cond_eps
        } else {
            let uncond = (self.eps)(x, t, false).narrow(1, 0, c);
            uncond.clone() + (cond_eps - uncond) * self.scale
        };
        debug_assert_eq!(eps.dims(), [n, c]);
        (eps, cond_rest)
    }
}

impl Denoiser for GuidedHead<'_> {
    fn prediction(&self) -> Prediction {
        Prediction::Eps
    }

    fn predict(&self, x_t: Tensor<4>, t: &[usize], _labels: Option<&[usize]>) -> Tensor<4> {
        let [n, c, _, _] = x_t.dims();
        self.guided(x_t.reshape([n, c]), t).0.reshape([n, c, 1, 1])
    }
}

fn gaussian(n: usize, c: usize, scale: f64, rng: &mut ChaCha8Rng, device: &Device) -> Tensor<4> {
    let values: Vec<f32> = (0..n * c).map(|_| StandardNormal.sample(rng)).map(|v: f32| v * scale as f32).collect();
    Tensor::from_data(TensorData::new(values, [n, c, 1, 1]), device)
}

/// `n` token vectors of width `c` sampled by DDPM with the head `head(x_t, t, cond)`
/// (`cond = false`: the unconditional one; its first `c` outputs the noise estimate, with
/// `learned` its next `c` the variance interpolation of [`learned_step`]), guidance `w` and
/// temperature `tau` (the scale of each step's noise). Without `learned` each step's variance is
/// the posterior's.
///
/// # Shapes
/// - returns `[n, c]`
#[allow(clippy::too_many_arguments)]
pub fn sample_tokens(
    schedule: &VpSchedule,
    head_steps: usize,
    head: &dyn Fn(Tensor<2>, &[usize], bool) -> Tensor<2>,
    learned: bool,
    (n, c): (usize, usize),
    w: f64,
    temperature: f64,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Tensor<2> {
    let sampler = Sampler {
        schedule: schedule.clone(),
        kind: SamplerKind::Ddpm,
        // The cosine schedule is singular: the chain starts at t = 990, not at t = 999 as the
        // official code (there a 500-step head's eps error of 0.055, scaled by 316, gave tokens
        // of std 260 instead of 1).
        map: TimestepMap::for_schedule(schedule, head_steps),
        guidance: None,
        clip_x0: false,
    };
    let guided = GuidedHead { eps: head, scale: w };
    let tables = learned.then(|| VlbTables::new(&schedule.respaced(&sampler.map.0)));
    let mut x = gaussian(n, c, 1.0, rng, device);
    let steps = sampler.map.0.len();
    for i in (0..steps).rev() {
        let noise = (i > 0).then(|| gaussian(n, c, temperature, rng, device));
        x = match &tables {
            Some(tables) => {
                let x2 = x.reshape([n, c]);
                let (eps, v) = guided.guided(x2.clone(), &vec![sampler.map.0[i]; n]);
                let v = v.expect("a learned-variance head outputs 2 C columns");
                learned_step(tables, i, x2, eps, v, noise.map(|z| z.reshape([n, c]))).reshape([n, c, 1, 1])
            }
            None => sampler.step(&guided, x, i, None, noise),
        };
    }
    x.reshape([n, c])
}

/// One index per row of `probs` (`[N, K]` row-major, rows summing to 1), drawn by inverting
/// the cumulative distribution.
fn sample_categorical(probs: &[f32], k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    probs
        .chunks_exact(k)
        .map(|row| {
            let mut u = rng.random::<f32>() * row.iter().sum::<f32>();
            row.iter()
                .position(|&p| {
                    u -= p;
                    u <= 0.0
                })
                .unwrap_or(k - 1)
        })
        .collect()
}

/// Generate `labels.len()` token sequences from `model` (labels `num_classes` = the null class);
/// a cross-entropy model draws codes of `codebook`.
///
/// # Shapes
/// - returns `[B, L, C]`
#[allow(clippy::too_many_arguments)]
pub fn generate(
    model: &Mar,
    spec: &MarSpec,
    codebook: Option<&Codebook>,
    schedule: &VpSchedule,
    sampling: &MarSampling,
    labels: &[usize],
    seed: u64,
    device: &Device,
) -> Result<Tensor<3>> {
    let plan = sampling.validate(spec)?;
    if spec.loss == MarLoss::CrossEntropy && codebook.is_none() {
        return Err(Error::config("mar.codebook", "a cross-entropy model samples codes: its codebook is needed"));
    }
    let (len, token_dim) = (spec.len, spec.token_dim);
    let b = labels.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let orders: Vec<Vec<usize>> = (0..b).map(|_| variant_order(spec.variant, &mut rng, len)).collect();
    let mut tokens = vec![0f32; b * len * token_dim];
    let null = vec![spec.null_class; b];
    let mut masked = len;
    for step in 0..sampling.steps {
        let mask: Vec<Vec<bool>> = orders.iter().map(|o| mask_of(o, masked)).collect();
        let known = Tensor::<3>::from_data(TensorData::new(tokens.clone(), [b, len, token_dim]), device);
        let remaining = plan.remaining[step];
        // MAR reveals the last of the masked head of each order; a causal model the next
        // token of its order (`K = L`: one per step).
        let release = if spec.variant.is_causal() { len - masked..len - remaining } else { remaining..masked };
        let rows: Vec<usize> =
            orders.iter().enumerate().flat_map(|(i, o)| o[release.clone()].iter().map(move |&j| i * len + j)).collect();
        let n = rows.len();
        let idx = Tensor::<1, Int>::from_data(
            TensorData::new(rows.iter().map(|&r| r as i64).collect::<Vec<_>>(), [n]),
            device,
        );
        let z_of = |y: &[usize]| {
            let z = model.condition(known.clone(), &mask, &orders, y);
            let w = z.dims()[2];
            z.reshape([b * len, w]).select(0, idx.clone())
        };
        let w = plan.guidance(step, sampling.cfg);
        let z_cond = z_of(labels);
        let z_uncond = if w == 1.0 { None } else { Some(z_of(&null)) };
        let new = match spec.loss {
            MarLoss::Diffusion => {
                // W_z z once per generation step, not once per head step.
                let cz_cond = model.head.condition(z_cond);
                let cz_uncond = z_uncond.map(|z| model.head.condition(z));
                let eps = |x: Tensor<2>, t: &[usize], cond: bool| {
                    let cz = if cond { cz_cond.clone() } else { cz_uncond.clone().unwrap_or_else(|| cz_cond.clone()) };
                    model.head.forward_conditioned(x, t, cz)
                };
                sample_tokens(
                    schedule,
                    sampling.head_steps,
                    &eps,
                    spec.learn_variance,
                    (n, token_dim),
                    w,
                    sampling.temperature,
                    &mut rng,
                    device,
                )
            }
            MarLoss::L2 | MarLoss::CrossEntropy => {
                let cond = model.regress(z_cond);
                let out = match z_uncond {
                    Some(z) => {
                        let uncond = model.regress(z);
                        uncond.clone() + (cond - uncond) * w
                    }
                    None => cond,
                };
                match codebook.filter(|_| spec.loss == MarLoss::CrossEntropy) {
                    // Guided logits, sharpened by the temperature, one code drawn per token.
                    Some(book) => {
                        let probs = softmax(out / sampling.temperature, 1);
                        let probs: Vec<f32> = probs.into_data().try_into_vec().expect("f32 probabilities");
                        let codes = sample_categorical(&probs, book.size(), &mut rng);
                        Tensor::<2>::from_data(TensorData::new(book.lookup(&codes), [n, token_dim]), device)
                    }
                    None => out,
                }
            }
        };
        let values: Vec<f32> = new.into_data().try_into_vec().expect("f32 tokens");
        for (k, &r) in rows.iter().enumerate() {
            tokens[r * token_dim..(r + 1) * token_dim].copy_from_slice(&values[k * token_dim..(k + 1) * token_dim]);
        }
        masked = remaining;
    }
    Ok(Tensor::from_data(TensorData::new(tokens, [b, len, token_dim]), device))
}

/// `n` images from a MAR run's model: chunks of `chunk` images, chunk `i` seeded
/// `seed ^ (i + 1) phi` (as `ddmlab sample` does for every model), tokens decoded by the run's
/// tokenizer; `labels` one per image (empty: the null class for all). Pixels in `[-1, 1]`,
/// one `[C H W]` vector per image. `on_chunk` is called after each chunk.
#[allow(clippy::too_many_arguments)]
pub fn sample_mar_images(
    model: &Mar,
    codebook: Option<&Codebook>,
    config: &RunConfig,
    tokenizer: &dyn crate::tokenizer::Tokenizer,
    sampling: &MarSampling,
    labels: &[usize],
    n: usize,
    (seed, chunk): (u64, usize),
    device: &Device,
    on_chunk: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<f32>>> {
    let spec = MarSpec::of(config)
        .ok_or_else(|| Error::config("mar_sampling.run", "not a MAR run (its config has no [mar])"))?;
    let labels: Vec<usize> = if labels.is_empty() { vec![spec.null_class; n] } else { labels.to_vec() };
    let schedule = super::objective::head_schedule();
    let chunk = chunk.max(1);
    let run = |(i, ys): (usize, &[usize])| -> (Result<Vec<f32>>, usize) {
        let chunk_seed = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let images = generate(model, &spec, codebook, &schedule, sampling, ys, chunk_seed, device)
            .map(|tokens| tokenizer.decode(tokens).clamp(-1.0, 1.0).into_data().try_into_vec().expect("f32 samples"));
        (images, ys.len()) // images: [b, C, H, W] flattened
    };
    // Chunks side by side, one per worker (every CPU thread; one stream on a GPU): a chunk's
    // generation is a long chain of small steps that keeps about one CPU thread busy.
    let mut out = Vec::with_capacity(n);
    for (values, b) in crate::parallel::map_grouped(device, labels.chunks(chunk).enumerate(), &run) {
        let values = values?;
        out.extend(values.chunks(values.len() / b).map(|c| c.to_vec()));
        on_chunk(out.len());
    }
    if out.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::Diverged("sampling produced non-finite pixels (is the checkpoint diverged?)".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::vp::BetaSchedule;
    use crate::models::mar::MarConfig;

    fn spec(len: usize, variant: MarVariant) -> MarSpec {
        MarSpec { len, token_dim: 3, null_class: 2, variant, loss: MarLoss::Diffusion, learn_variance: false }
    }

    /// The exact noise estimate for Gaussian data `N(mu, s0^2)`:
    /// `eps = sigma_t (x_t - gamma_t mu) / (gamma_t^2 s0^2 + sigma_t^2)`.
    fn gaussian_data(schedule: &VpSchedule, mu: f64, s0: f64) -> impl Fn(Tensor<2>, &[usize]) -> Tensor<2> + '_ {
        move |x: Tensor<2>, t: &[usize]| {
            let n = x.dims()[0];
            let col = |f: &dyn Fn(usize) -> f64| {
                Tensor::<2>::from_data(
                    TensorData::new(t.iter().map(|&t| f(t) as f32).collect::<Vec<_>>(), [n, 1]),
                    &x.device(),
                )
            };
            let (g, s) = (col(&|t| schedule.gamma(t)), col(&|t| schedule.sigma(t)));
            let var = col(&|t| schedule.gamma(t).powi(2) * s0 * s0 + schedule.sigma(t).powi(2));
            s * (x - g * mu) / var
        }
    }

    /// The exact noise estimate for data that is a single point `c`:
    /// `eps = (x_t - gamma_t c) / sigma_t`.
    fn point_mass(schedule: &VpSchedule, c: f32) -> impl Fn(Tensor<2>, &[usize]) -> Tensor<2> + '_ {
        gaussian_data(schedule, c as f64, 0.0)
    }

    #[test]
    fn the_head_sampler_lands_on_the_point_and_guidance_extrapolates_between_two() {
        let device = Device::flex();
        let schedule = VpSchedule::new(BetaSchedule::cosine(), 1000);
        let (to_a, to_b) = (point_mass(&schedule, 0.5), point_mass(&schedule, -0.25));
        let eps = |x: Tensor<2>, t: &[usize], cond: bool| if cond { to_a(x, t) } else { to_b(x, t) };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for (w, tau, want) in [(1.0, 1.0, 0.5), (1.0, 0.5, 0.5), (3.0, 1.0, -0.25 + 3.0 * 0.75)] {
            let x = sample_tokens(&schedule, 100, &eps, false, (64, 3), w, tau, &mut rng, &device);
            let v: Vec<f32> = x.into_data().try_into_vec().unwrap();
            let worst = v.iter().map(|&x| (x - want as f32).abs()).fold(0f32, f32::max);
            assert!(worst < 2e-3, "w {w} tau {tau}: off by {worst}");
        }
    }

    /// A learned-variance head whose `v` is -1 everywhere asks for the posterior variance: the
    /// same chain as the fixed-variance sampler, draw for draw; `v = +1` (the `beta_t` bound)
    /// is a different chain. The head is the exact one of Gaussian data `N(mu, s0^2)` per class
    /// (`eps = s (x_t - g mu) / (g^2 s0^2 + s^2)`), so that where a chain ends depends on its
    /// noise, and both chains' tokens have about the data's mean and spread.
    #[test]
    fn a_learned_variance_at_its_lower_bound_is_the_fixed_variance_sampler() {
        let device = Device::flex();
        let schedule = VpSchedule::new(BetaSchedule::cosine(), 1000);
        let s0 = 0.3f64;
        let (to_a, to_b) = (gaussian_data(&schedule, 0.5, s0), gaussian_data(&schedule, -0.25, s0));
        let eps = |x: Tensor<2>, t: &[usize], cond: bool| if cond { to_a(x, t) } else { to_b(x, t) };
        let with_v = |v: f32| {
            move |x: Tensor<2>, t: &[usize], cond: bool| {
                let out = eps(x, t, cond);
                // The unconditional head's variance is not used: make it absurd.
                let v = if cond { v } else { 50.0 };
                Tensor::cat(vec![out.clone(), out.zeros_like().add_scalar(v)], 1)
            }
        };
        let run = |head: &dyn Fn(Tensor<2>, &[usize], bool) -> Tensor<2>, learned: bool, w: f64| -> Vec<f32> {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            sample_tokens(&schedule, 50, head, learned, (2048, 2), w, 1.0, &mut rng, &device)
                .into_data()
                .try_into_vec()
                .unwrap()
        };
        for w in [1.0, 2.0] {
            let fixed = run(&eps, false, w);
            let lower = run(&with_v(-1.0), true, w);
            let worst = fixed.iter().zip(&lower).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "w {w}: the learned lower bound differs from the posterior variance by {worst}");
        }
        let fixed = run(&eps, false, 1.0);
        let upper = run(&with_v(1.0), true, 1.0);
        let moved = fixed.iter().zip(&upper).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(moved > 1e-2, "the beta_t bound changed nothing ({moved})");
        for tokens in [&fixed, &upper] {
            let n = tokens.len() as f64;
            let mean = tokens.iter().map(|&x| x as f64).sum::<f64>() / n;
            let sd = (tokens.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
            assert!((mean - 0.5).abs() < 0.03 && (sd - s0).abs() < 0.03, "mean {mean} sd {sd}");
        }
    }

    #[test]
    fn a_head_slightly_off_and_bounded_like_a_network_still_lands_near_the_data() {
        // A trained-but-imperfect head: the exact point-mass estimate plus 0.03, its output
        // bounded to the +-4 a network saw in training. From t = 999 of the cosine schedule
        // (abar 2.4e-9) the DDPM step multiplies that 0.03 by ~300 (tokens of size ~10, where
        // the bounded head can no longer pull them back); from one stride earlier it stays a
        // small bias that the later steps remove.
        let device = Device::flex();
        let schedule = VpSchedule::new(BetaSchedule::cosine(), 1000);
        let exact = point_mass(&schedule, 0.5);
        let eps = |x: Tensor<2>, t: &[usize], _: bool| exact(x, t).clamp(-4.0, 4.0) + 0.03;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x = sample_tokens(&schedule, 100, &eps, false, (256, 2), 1.0, 1.0, &mut rng, &device);
        let v: Vec<f32> = x.into_data().try_into_vec().unwrap();
        let worst = v.iter().map(|&x| (x - 0.5).abs()).fold(0f32, f32::max);
        assert!(worst < 0.1, "off by {worst}");
    }

    #[test]
    fn generation_fills_every_token_and_is_a_function_of_the_seed() {
        let device = Device::flex();
        let config = MarConfig::tiny(3, 8, 2);
        let model = crate::nn::init::seeded(&device, 0, |device| config.init(device));
        let schedule = VpSchedule::new(BetaSchedule::cosine(), 1000);
        let sampling = MarSampling { steps: 4, head_steps: 10, temperature: 1.0, cfg: 2.0 };
        let run = |seed| -> Vec<f32> {
            generate(&model, &spec(8, MarVariant::Mar), None, &schedule, &sampling, &[0, 1], seed, &device)
                .unwrap()
                .into_data()
                .try_into_vec()
                .unwrap()
        };
        let a = run(5);
        assert_eq!(a.len(), 2 * 8 * 3);
        assert!(a.iter().all(|&v| v != 0.0 && v.is_finite()));
        assert_eq!(a, run(5));
        assert_ne!(a, run(6));
    }

    #[test]
    fn causal_and_l2_models_generate_every_token() {
        let device = Device::flex();
        let schedule = VpSchedule::new(BetaSchedule::cosine(), 1000);
        for (variant, loss) in [(MarVariant::ArRaster, MarLoss::Diffusion), (MarVariant::ArRandom, MarLoss::L2)] {
            let config = MarConfig { causal: true, ..MarConfig::tiny(3, 8, 2) };
            let mut model = crate::nn::init::seeded(&device, 1, |device| config.init(device));
            // A trained-looking head: its zero-initialised layers given values, so that the L2
            // tokens depend on z.
            let fill =
                |l: burn::nn::Linear| crate::nn::init::xavier_linear(l.weight.dims()[0], l.weight.dims()[1], &device);
            model.head.output = fill(model.head.output);
            model.head.final_ada = fill(model.head.final_ada);
            for block in &mut model.head.blocks {
                block.ada = fill(block.ada.clone());
            }
            let spec = MarSpec { loss, ..spec(8, variant) };
            let sampling = MarSampling { steps: 8, head_steps: 5, temperature: 1.0, cfg: 1.5 };
            let run = |seed| -> Vec<f32> {
                generate(&model, &spec, None, &schedule, &sampling, &[0, 1, 2], seed, &device)
                    .unwrap()
                    .into_data()
                    .try_into_vec()
                    .unwrap()
            };
            let a = run(3);
            assert_eq!(a.len(), 3 * 8 * 3);
            assert!(a.iter().all(|&v| v != 0.0 && v.is_finite()), "{variant:?} {loss:?}: {a:?}");
            assert_eq!(a, run(3));
        }
    }

    #[test]
    fn a_cross_entropy_model_generates_codes_of_its_codebook_and_needs_one() {
        let device = Device::flex();
        let schedule = VpSchedule::new(BetaSchedule::cosine(), 1000);
        let config = MarConfig { head_out: 4, ..MarConfig::tiny(3, 8, 2) };
        let model = crate::nn::init::seeded(&device, 1, |device| config.init(device));
        let book = Codebook { codes: (0..12).map(|i| i as f32 - 5.5).collect(), dim: 3 };
        let spec = MarSpec { loss: MarLoss::CrossEntropy, ..spec(8, MarVariant::Mar) };
        let sampling = MarSampling { steps: 4, head_steps: 5, temperature: 1.0, cfg: 2.0 };
        let tokens: Vec<f32> = generate(&model, &spec, Some(&book), &schedule, &sampling, &[0, 1], 2, &device)
            .unwrap()
            .into_data()
            .try_into_vec()
            .unwrap();
        // Uniform logits (a fresh head): all four codes appear among the 16 tokens, nothing else.
        let codes = book.assign(&tokens);
        assert_eq!(book.lookup(&codes), tokens);
        assert_eq!(codes.iter().collect::<std::collections::BTreeSet<_>>().len(), 4, "{codes:?}");
        let e = generate(&model, &spec, None, &schedule, &sampling, &[0], 2, &device).unwrap_err().to_string();
        assert!(e.contains("mar.codebook"), "{e}");
    }

    #[test]
    fn bad_sampling_settings_name_their_field() {
        let ok = MarSampling { steps: 4, head_steps: 10, temperature: 1.0, cfg: 1.0 };
        for (bad, flag) in [
            (MarSampling { steps: 0, ..ok }, "mar_sampling.steps"),
            (MarSampling { steps: 9, ..ok }, "mar_sampling.steps"),
            (MarSampling { temperature: 0.0, ..ok }, "mar_sampling.temperature"),
            (MarSampling { temperature: f64::NAN, ..ok }, "mar_sampling.temperature"),
            (MarSampling { head_steps: 0, ..ok }, "mar_sampling.head_steps"),
            (MarSampling { head_steps: 1, ..ok }, "mar_sampling.head_steps"),
            (MarSampling { cfg: -1.0, ..ok }, "mar_sampling.cfg"),
        ] {
            let e = bad.validate(&spec(8, MarVariant::Mar)).unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
        assert!(ok.validate(&spec(8, MarVariant::Mar)).is_ok());
        // A causal model generates one token per step: K must be L.
        let e = ok.validate(&spec(8, MarVariant::ArRaster)).unwrap_err().to_string();
        assert!(e.contains("mar_sampling.steps") && e.contains("ar-raster"), "{e}");
        assert!(MarSampling { steps: 8, ..ok }.validate(&spec(8, MarVariant::ArRandom)).is_ok());
        // A regressor has no noise to scale; a head that takes one pass has no DDPM steps to check.
        let l2 = MarSpec { loss: MarLoss::L2, ..spec(8, MarVariant::Mar) };
        let e = MarSampling { temperature: 0.9, ..ok }.validate(&l2).unwrap_err().to_string();
        assert!(e.contains("mar_sampling.temperature") && e.contains("L2"), "{e}");
        let ce = MarSpec { loss: MarLoss::CrossEntropy, ..spec(8, MarVariant::Mar) };
        assert!(MarSampling { temperature: 0.9, head_steps: 1, ..ok }.validate(&ce).is_ok());
    }
}
