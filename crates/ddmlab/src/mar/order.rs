//! MAR's masking and generation order (Li et al. 2024, §3.3 and LTH14/mar `models/mar.py`).
//!
//! - **Training**: one mask ratio per batch from a left-half Gaussian centred at 100% with
//!   std 0.25, truncated at `min_ratio` (0.7): `r = 1 - 0.25 |z|`, `|z| <= (1 - min_ratio) / 0.25`.
//!   Each image masks the first `ceil(L r)` tokens of its own random order.
//! - **Generation**: a random order per image; over `K` steps the number of tokens still masked
//!   after step `s` follows `floor(L cos(pi/2 (s + 1) / K))`, clamped so that every step
//!   predicts at least one token and the last step predicts all that remain (MaskGIT / MAGE).
//! - **The paper's Table 1 variants** ([`MarVariant`]): MAR (bidirectional attention, random
//!   order, masked training) or causal autoregression (teacher-forced over all tokens, one token
//!   per generation step) in raster or random order.
//! - **Guidance ramp** (Muse): the scale at a step grows linearly with the fraction of tokens
//!   that will be known after it, `w_s = 1 + (w - 1) (L - m_s) / L` with `m_s` the tokens still
//!   masked after step `s`.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};

use crate::config::MarVariant;
use crate::error::{Error, Result};

/// The order of an image's `len` tokens for `variant`: raster for `ArRaster`, else a random
/// permutation.
pub fn variant_order<R: Rng + ?Sized>(variant: MarVariant, rng: &mut R, len: usize) -> Vec<usize> {
    match variant {
        MarVariant::ArRaster => (0..len).collect(),
        MarVariant::Mar | MarVariant::ArRandom => random_order(rng, len),
    }
}

/// The std of MAR's mask-ratio Gaussian (centred at 1).
pub const MASK_RATIO_STD: f64 = 0.25;

/// A random permutation of `0..len`: the order in which an image's tokens are generated (and,
/// in training, masked: the first ones of the order are the masked ones).
pub fn random_order<R: Rng + ?Sized>(rng: &mut R, len: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(rng);
    order
}

/// One training mask ratio in `[min_ratio, 1]`: a standard normal folded to `|z|`, rejected
/// beyond `(1 - min_ratio) / std` (so the density is the truncated left half of `N(1, std^2)`,
/// exactly as `scipy.stats.truncnorm((min - 1) / std, 0, loc=1, scale=std)` of the official code).
pub fn mask_ratio<R: Rng + ?Sized>(rng: &mut R, min_ratio: f64) -> f64 {
    let cut = (1.0 - min_ratio) / MASK_RATIO_STD;
    loop {
        let z: f64 = StandardNormal.sample(rng);
        let z = z.abs();
        if z <= cut {
            return 1.0 - MASK_RATIO_STD * z;
        }
    }
}

/// Tokens masked in training at ratio `r`: `ceil(L r)`, at least 1 and at most `L`.
pub fn masked_count(len: usize, ratio: f64) -> usize {
    ((len as f64 * ratio).ceil() as usize).clamp(1, len)
}

/// `mask[i] = true` for the first `count` tokens of `order` (length `order.len()`).
pub fn mask_of(order: &[usize], count: usize) -> Vec<bool> {
    let mut mask = vec![false; order.len()];
    for &i in &order[..count.min(order.len())] {
        mask[i] = true;
    }
    mask
}

/// The generation schedule of `len` tokens in `steps` steps: for each step, how many tokens it
/// predicts and how many stay masked after it. Every step predicts at least one token and the
/// counts sum to `len`; more steps than tokens is an error (a step would predict nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct MaskSchedule {
    /// Tokens predicted at each step (each >= 1, summing to `len`).
    pub predicted: Vec<usize>,
    /// Tokens still masked after each step (the last is 0).
    pub remaining: Vec<usize>,
    pub len: usize,
}

impl MaskSchedule {
    pub fn cosine(len: usize, steps: usize) -> Result<MaskSchedule> {
        if steps == 0 || steps > len {
            return Err(Error::config(
                "mar_sampling.steps",
                format!("K = {steps}, expected 1..={len} (at most one generation step per token, for {len} tokens)"),
            ));
        }
        let (mut predicted, mut remaining) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
        let mut masked = len;
        for s in 0..steps {
            let next = if s + 1 == steps {
                0
            } else {
                let cosine = (std::f64::consts::FRAC_PI_2 * (s + 1) as f64 / steps as f64).cos();
                ((len as f64 * cosine).floor() as usize).min(masked - 1).max(1)
            };
            predicted.push(masked - next);
            remaining.push(next);
            masked = next;
        }
        Ok(MaskSchedule { predicted, remaining, len })
    }

    /// The guidance scale of step `s` for a final scale `w`, ramped linearly with the fraction
    /// of tokens known after the step (the official code's "linear" schedule). The last step
    /// uses `w` itself.
    pub fn guidance(&self, step: usize, w: f64) -> f64 {
        let known = self.len - self.remaining[step];
        1.0 + (w - 1.0) * known as f64 / self.len as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn every_schedule_predicts_at_least_one_token_per_step_and_all_tokens_once() {
        for len in 1..=80 {
            for steps in 1..=len {
                let s = MaskSchedule::cosine(len, steps).unwrap();
                assert_eq!(s.predicted.len(), steps);
                assert!(s.predicted.iter().all(|&n| n >= 1), "L {len} K {steps}: {:?}", s.predicted);
                assert_eq!(s.predicted.iter().sum::<usize>(), len);
                assert_eq!(*s.remaining.last().unwrap(), 0);
            }
        }
    }

    #[test]
    fn the_schedule_follows_the_cosine_and_clamps_only_to_one_token() {
        // L = 256, K = 64 (the paper's ImageNet setting): masked after step s is
        // floor(256 cos(pi/2 (s+1)/64)) wherever that is below the tokens masked before it;
        // where the cosine falls by less than one token a step predicts exactly one.
        let s = MaskSchedule::cosine(256, 64).unwrap();
        let (mut prev, mut clamped, mut free) = (256, 0, 0);
        for step in 0..63 {
            let cosine = (256.0 * (std::f64::consts::FRAC_PI_2 * (step + 1) as f64 / 64.0).cos()).floor() as usize;
            if cosine < prev && cosine >= 1 {
                assert_eq!(s.remaining[step], cosine, "step {step}");
                free += 1;
            } else {
                assert_eq!(s.predicted[step], 1, "step {step}");
                clamped += 1;
            }
            prev = s.remaining[step];
        }
        assert!(free > 50 && clamped >= 1, "{free} {clamped}");
        // Few tokens first, more later: half the steps leave floor(256 cos(pi/4)) = 181 masked.
        assert_eq!(s.predicted[..32].iter().sum::<usize>(), 256 - 181);
    }

    #[test]
    fn more_steps_than_tokens_or_zero_steps_are_an_error_naming_k() {
        for k in [0, 17] {
            let e = MaskSchedule::cosine(16, k).unwrap_err().to_string();
            assert!(e.contains(&format!("K = {k},")) && e.contains("1..=16"), "{e}");
        }
    }

    #[test]
    fn guidance_ramps_from_near_one_to_the_full_scale() {
        let s = MaskSchedule::cosine(64, 16).unwrap();
        let w: Vec<f64> = (0..16).map(|i| s.guidance(i, 3.0)).collect();
        assert!(w.windows(2).all(|p| p[0] <= p[1]), "{w:?}");
        // After step 0, 64 - remaining[0] tokens are known.
        assert!((w[0] - (1.0 + 2.0 * (64 - s.remaining[0]) as f64 / 64.0)).abs() < 1e-12);
        assert_eq!(w[15], 3.0);
        assert_eq!(s.guidance(3, 1.0), 1.0);
    }

    /// The truncated left half of N(1, 0.25^2) on [0.7, 1]: its mean and CDF at 0.85 by
    /// Simpson's rule on the density, in f64.
    fn truncated_moments(min_ratio: f64) -> (f64, f64) {
        let density = |r: f64| (-0.5 * ((r - 1.0) / MASK_RATIO_STD).powi(2)).exp();
        let simpson = |a: f64, b: f64, f: &dyn Fn(f64) -> f64| {
            let n = 2000;
            let h = (b - a) / n as f64;
            (0..=n)
                .map(|i| {
                    let w = if i == 0 || i == n {
                        1.0
                    } else if i % 2 == 1 {
                        4.0
                    } else {
                        2.0
                    };
                    w * f(a + i as f64 * h)
                })
                .sum::<f64>()
                * h
                / 3.0
        };
        let z = simpson(min_ratio, 1.0, &density);
        let mean = simpson(min_ratio, 1.0, &|r| r * density(r)) / z;
        let below = simpson(min_ratio, 0.85, &density) / z;
        (mean, below)
    }

    #[test]
    fn mask_ratios_follow_the_truncated_half_gaussian() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 200_000;
        let draws: Vec<f64> = (0..n).map(|_| mask_ratio(&mut rng, 0.7)).collect();
        assert!(draws.iter().all(|&r| (0.7..=1.0).contains(&r)));
        let (mean, below) = truncated_moments(0.7);
        let got_mean = draws.iter().sum::<f64>() / n as f64;
        let got_below = draws.iter().filter(|&&r| r < 0.85).count() as f64 / n as f64;
        // Standard errors: the ratio's std is below 0.09, so 4 SE of the mean is < 0.0009.
        assert!((got_mean - mean).abs() < 0.0009, "mean {got_mean} vs {mean}");
        assert!((got_below - below).abs() < 4.0 * (below * (1.0 - below) / n as f64).sqrt(), "{got_below} vs {below}");
        // A wrong centre or a full (two-sided) Gaussian would move both far outside these bounds.
        assert!((0.85..0.9).contains(&mean), "{mean}");
    }

    #[test]
    fn training_masks_take_the_first_tokens_of_each_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let order = random_order(&mut rng, 64);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..64).collect::<Vec<_>>());
        let n = masked_count(64, 0.71);
        assert_eq!(n, 46); // ceil(45.44)
        let mask = mask_of(&order, n);
        assert_eq!(mask.iter().filter(|&&m| m).count(), 46);
        assert!(order[..46].iter().all(|&i| mask[i]) && order[46..].iter().all(|&i| !mask[i]));
        assert_eq!(masked_count(64, 1.0), 64);
        assert_eq!(masked_count(4, 0.0), 1);
    }
}
