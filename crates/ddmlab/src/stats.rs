//! The one statistical rule every claim of a study is decided by: Welch's two-sample t
//! confidence interval on the difference of two arms' means, compared with the claim's boundary.
//!
//! For arms `a` and `b` with `n_a`, `n_b` seeds, means `m_a`, `m_b` and sample standard
//! deviations `s_a`, `s_b` (divisor `n - 1`):
//! - the difference `D = m_a - m_b`, its standard error `se = sqrt(s_a^2 / n_a + s_b^2 / n_b)`;
//! - Welch-Satterthwaite degrees of freedom
//!   `nu = se^4 / ((s_a^2 / n_a)^2 / (n_a - 1) + (s_b^2 / n_b)^2 / (n_b - 1))`;
//! - the 95% confidence interval `D -/+ t_{0.975, nu} se`.
//!
//! A claim is a [`Hypothesis`] about `a - b`, decided by where that interval lies (a one-sided
//! test at level 0.025 on each side it names):
//! - `Greater`: **reproduced** when the interval lies above 0, **reversed** when below;
//! - `Equivalent { margin }` (two one-sided tests): reproduced when the interval lies inside
//!   `(-margin, margin)`, reversed when it lies wholly outside it;
//! - `NotGreater { margin }` (non-superiority of `a` over `b`): reproduced when the upper end is
//!   below `margin`, reversed when the lower end is above it;
//!
//! and **inconclusive** otherwise. Beside each verdict, the smallest difference these seeds
//! could detect: `(t_{0.975, nu} + t_{0.80, nu}) se`, the usual normal-approximation power
//! formula with t quantiles (80% power at the observed standard deviations).
//!
//! Student's t distribution itself comes from `statrs`; what this file owns is the rule.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// The confidence level of every interval.
pub const LEVEL: f64 = 0.95;

/// The power at which the detectable difference is stated.
pub const POWER: f64 = 0.80;

/// One arm's values over seeds, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (divisor `n - 1`; 0 for one value).
    pub sd: f64,
}

impl Summary {
    /// The summary of `values` (`None` when empty or not all finite).
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = if n < 2 {
            0.0
        } else {
            (values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64).sqrt()
        };
        Some(Summary { n, mean, sd })
    }
}

/// `P(T <= x)` for Student's t with `df` degrees of freedom (`df > 0`).
pub fn t_cdf(x: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df).expect("positive degrees of freedom").cdf(x)
}

/// The `p` quantile of Student's t with `df` degrees of freedom (`0 < p < 1`, `df > 0`).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df).expect("positive degrees of freedom").inverse_cdf(p)
}

/// Welch's comparison of two arms: `a - b`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Welch {
    pub a: Summary,
    pub b: Summary,
    /// `m_a - m_b`.
    pub diff: f64,
    /// Standard error of the difference.
    pub se: f64,
    /// Welch-Satterthwaite degrees of freedom.
    pub df: f64,
    /// The 95% confidence interval of the difference.
    pub ci: (f64, f64),
    /// Two-sided p-value of `a = b` (1 when `se = 0` and `diff = 0`).
    pub p: f64,
    /// The smallest difference these seeds detect with 80% power at the 0.025 one-sided level.
    pub detectable: f64,
}

impl Welch {
    /// Compare `a` with `b` (`None` unless both have at least two finite values).
    pub fn of(a: &[f64], b: &[f64]) -> Option<Welch> {
        let (sa, sb) = (Summary::of(a)?, Summary::of(b)?);
        if sa.n < 2 || sb.n < 2 {
            return None;
        }
        let (va, vb) = (sa.sd * sa.sd / sa.n as f64, sb.sd * sb.sd / sb.n as f64);
        let diff = sa.mean - sb.mean;
        let se = (va + vb).sqrt();
        let denom = va * va / (sa.n - 1) as f64 + vb * vb / (sb.n - 1) as f64;
        // Both arms constant: no spread to weigh; the pooled degrees of freedom stand in.
        let df = if denom > 0.0 { (va + vb) * (va + vb) / denom } else { (sa.n + sb.n - 2) as f64 };
        let q = t_quantile(0.5 + LEVEL / 2.0, df);
        let p = if se > 0.0 {
            2.0 * t_cdf(-(diff / se).abs(), df)
        } else if diff == 0.0 {
            1.0
        } else {
            0.0
        };
        let detectable = (q + t_quantile(POWER, df)) * se;
        Some(Welch { a: sa, b: sb, diff, se, df, ci: (diff - q * se, diff + q * se), p, detectable })
    }
}

/// What a claim says about `a - b`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Hypothesis {
    /// `a > b`.
    Greater,
    /// `abs(a - b) < margin`.
    Equivalent { margin: f64 },
    /// `a - b < margin`: `a` is no better than `b` by more than the margin.
    NotGreater { margin: f64 },
}

impl Hypothesis {
    /// The claim in words, for `a` and `b` named.
    pub fn describe(&self, a: &str, b: &str) -> String {
        match self {
            Hypothesis::Greater => format!("{a} > {b}"),
            Hypothesis::Equivalent { margin } => format!("abs({a} - {b}) < {margin}"),
            Hypothesis::NotGreater { margin } => format!("{a} - {b} < {margin}"),
        }
    }

    /// Why the hypothesis is invalid, if it is.
    pub fn problem(&self) -> Option<String> {
        match *self {
            Hypothesis::Greater => None,
            Hypothesis::Equivalent { margin } | Hypothesis::NotGreater { margin } => {
                (!(margin.is_finite() && margin > 0.0)).then(|| format!("a margin must be positive, got {margin}"))
            }
        }
    }

    /// The verdict of a 95% interval `(lo, hi)` of `a - b`.
    pub fn decide(&self, (lo, hi): (f64, f64)) -> Verdict {
        match *self {
            Hypothesis::Greater if lo > 0.0 => Verdict::Reproduced,
            Hypothesis::Greater if hi < 0.0 => Verdict::Reversed,
            Hypothesis::Equivalent { margin } if -margin < lo && hi < margin => Verdict::Reproduced,
            Hypothesis::Equivalent { margin } if lo >= margin || hi <= -margin => Verdict::Reversed,
            Hypothesis::NotGreater { margin } if hi < margin => Verdict::Reproduced,
            Hypothesis::NotGreater { margin } if lo > margin => Verdict::Reversed,
            _ => Verdict::Inconclusive,
        }
    }
}

/// How a claim fared at one budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The interval lies on the paper's side of the boundary.
    Reproduced,
    /// The interval lies on the other side.
    Reversed,
    /// The interval straddles the boundary.
    Inconclusive,
    /// An arm has fewer than two seeds measured.
    Missing,
}

impl Verdict {
    /// The word in tables.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::Reversed => "reversed",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Missing => "not measured yet",
        }
    }
}

/// The decision of one claim on its arms' values: the comparison and its verdict.
pub fn judge(hypothesis: &Hypothesis, a: &[f64], b: &[f64]) -> (Option<Welch>, Verdict) {
    match Welch::of(a, b) {
        Some(w) => (Some(w), hypothesis.decide(w.ci)),
        None => (None, Verdict::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    /// Reference values from scipy 1.16 (`scipy.stats.ttest_ind(a, b, equal_var=False)`, its
    /// `confidence_interval(0.95)`, and the Welch-Satterthwaite df from numpy's `var(ddof=1)`):
    /// ```python
    /// r = stats.ttest_ind(a, b, equal_var=False); ci = r.confidence_interval(0.95)
    /// print(r.statistic, r.pvalue, df, ci.low, ci.high)
    /// ```
    #[test]
    fn welch_matches_scipy_ttest_ind_unequal_variances() {
        #[rustfmt::skip]
        let cases: [(&[f64], &[f64], [f64; 5]); 4] = [
            (&[84.39, 84.62, 84.16], &[84.38, 84.07, 84.69],
             [0.04487118026967825, 0.9665319091707942, 3.689828995763554, -0.6298220508308239, 0.6498220508308341]),
            (&[63.1, 64.0, 62.2, 63.7], &[61.0, 61.9],
             [2.999999999999999, 0.06810572881892821, 2.630136986301371, -0.27073993793526885, 3.870739937935263]),
            (&[1.0, 2.0, 3.0], &[10.0, 10.5, 11.0, 9.5, 10.2],
             [-13.095321905193469, 0.0014155575049372125, 2.7728402504309946, -10.338581420288754, -6.141418579711247]),
            (&[70.12, 70.55, 69.98], &[70.11, 70.13, 70.12],
             [0.5633458001672882, 0.629822006360972, 2.0045334282531155, -0.6400442178951569, 0.8333775512285133]),
        ];
        for (a, b, [t, p, df, lo, hi]) in cases {
            let w = Welch::of(a, b).unwrap();
            assert!(close(w.diff / w.se, t, 1e-6), "t {} vs {t}", w.diff / w.se);
            assert!(close(w.p, p, 1e-6), "p {} vs {p}", w.p);
            assert!(close(w.df, df, 1e-6), "df {} vs {df}", w.df);
            assert!(close(w.ci.0, lo, 1e-6) && close(w.ci.1, hi, 1e-6), "ci {:?} vs ({lo}, {hi})", w.ci);
        }
    }

    /// `scipy.stats.t.ppf(p, df)` and `scipy.stats.t.cdf(1.7, df)`.
    #[test]
    fn t_quantiles_and_cdf_match_scipy() {
        #[rustfmt::skip]
        let cases = [
            (0.975, 4.0, 2.7764451051977934, 0.917822529364975),
            (0.975, 2.5, 3.5746548420036817, 0.8971938914200581),
            (0.8, 3.7, 0.9498778242960849, 0.9149376837535702),
            (0.95, 10.0, 1.8124611228116756, 0.9400153270454898),
            (0.025, 7.3, -2.3450667365477034, 0.9344173158234566),
            (0.999, 1.2, 127.13768835913815, 0.8468569005521083),
        ];
        for (p, df, q, c) in cases {
            assert!(close(t_quantile(p, df), q, 1e-6), "ppf({p}, {df}) = {} vs {q}", t_quantile(p, df));
            assert!(close(t_cdf(1.7, df), c, 1e-6), "cdf(1.7, {df}) = {} vs {c}", t_cdf(1.7, df));
        }
    }

    #[test]
    fn each_hypothesis_reads_the_interval_on_its_own_boundary() {
        let g = Hypothesis::Greater;
        assert_eq!(g.decide((0.1, 2.0)), Verdict::Reproduced);
        assert_eq!(g.decide((-2.0, -0.1)), Verdict::Reversed);
        assert_eq!(g.decide((-0.1, 2.0)), Verdict::Inconclusive);
        let e = Hypothesis::Equivalent { margin: 1.0 };
        assert_eq!(e.decide((-0.9, 0.9)), Verdict::Reproduced);
        assert_eq!(e.decide((-0.5, 1.2)), Verdict::Inconclusive);
        assert_eq!(e.decide((1.0, 3.0)), Verdict::Reversed);
        assert_eq!(e.decide((-4.0, -1.5)), Verdict::Reversed);
        let n = Hypothesis::NotGreater { margin: 1.0 };
        assert_eq!(n.decide((-3.0, 0.99)), Verdict::Reproduced);
        assert_eq!(n.decide((0.2, 1.4)), Verdict::Inconclusive);
        assert_eq!(n.decide((1.1, 2.0)), Verdict::Reversed);
        assert!(Hypothesis::Equivalent { margin: 0.0 }.problem().is_some() && g.problem().is_none());
    }

    #[test]
    fn fewer_than_two_seeds_in_an_arm_is_missing_not_a_verdict() {
        assert_eq!(judge(&Hypothesis::Greater, &[90.0], &[10.0, 11.0]).1, Verdict::Missing);
        assert_eq!(judge(&Hypothesis::Greater, &[], &[10.0, 11.0]).1, Verdict::Missing);
        assert_eq!(judge(&Hypothesis::Greater, &[1.0, f64::NAN], &[10.0, 11.0]).1, Verdict::Missing);
        // Two seeds each with a clear gap do decide.
        assert_eq!(judge(&Hypothesis::Greater, &[20.0, 20.5], &[10.0, 10.4]).1, Verdict::Reproduced);
    }

    /// The one-standard-error rule this replaces said "reproduced" about one time in six with two
    /// seeds and no true effect (12.8% with three, measured here); the rule here must stay at or
    /// below its nominal 2.5% (one side of a 95% interval) with three seeds per arm. Measured with
    /// this seed over 40,000 draws: 1.84% reproduced, 1.90% reversed. Welch's test is
    /// conservative at n = 3 with equal spreads: its degrees of freedom fall below the pooled 4.
    #[test]
    fn with_no_true_effect_and_three_seeds_the_rule_says_reproduced_about_two_and_a_half_percent() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(47);
        let trials = 40_000;
        let mut reproduced = 0usize;
        let mut reversed = 0usize;
        let mut old_rule = 0usize;
        for _ in 0..trials {
            let mut draw = || -> Vec<f64> {
                (0..3).map(|_| 80.0 + 0.4 * Distribution::<f64>::sample(&StandardNormal, &mut rng)).collect()
            };
            let (a, b) = (draw(), draw());
            match judge(&Hypothesis::Greater, &a, &b).1 {
                Verdict::Reproduced => reproduced += 1,
                Verdict::Reversed => reversed += 1,
                _ => {}
            }
            // The old rule: the difference beyond the sum of both standard errors.
            let (sa, sb) = (Summary::of(&a).unwrap(), Summary::of(&b).unwrap());
            if sa.mean - sb.mean > (sa.sd + sb.sd) / 3f64.sqrt() {
                old_rule += 1;
            }
        }
        let rate = reproduced as f64 / trials as f64;
        let old = old_rule as f64 / trials as f64;
        eprintln!(
            "null, 3 seeds: reproduced {rate:.4}, reversed {:.4}, old rule {old:.4}",
            reversed as f64 / trials as f64
        );
        assert!((0.012..=0.027).contains(&rate), "false-positive rate {rate}");
        assert!((0.012..=0.027).contains(&(reversed as f64 / trials as f64)));
        assert!(old > 0.10, "the old rule's rate {old} (it was ~13% with three seeds)");
    }

    /// At the detectable difference the test should reject about 80% of the time.
    #[test]
    fn a_true_difference_at_the_detectable_size_is_found_about_four_times_in_five() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let (n, sd) = (5usize, 1.0f64);
        // se = sd sqrt(2 / n), df ~ 2n - 2 for equal spreads.
        let se = sd * (2.0 / n as f64).sqrt();
        let df = (2 * n - 2) as f64;
        let delta = (t_quantile(0.975, df) + t_quantile(POWER, df)) * se;
        let trials = 20_000;
        let mut hits = 0;
        for _ in 0..trials {
            let mut draw = |m: f64| -> Vec<f64> {
                (0..n).map(|_| m + sd * Distribution::<f64>::sample(&StandardNormal, &mut rng)).collect()
            };
            let (a, b) = (draw(delta), draw(0.0));
            hits += usize::from(judge(&Hypothesis::Greater, &a, &b).1 == Verdict::Reproduced);
        }
        let power = hits as f64 / trials as f64;
        eprintln!("power at the detectable difference (n = {n}): {power:.3}");
        assert!((0.72..=0.86).contains(&power), "power {power}");
    }
}
