//! What sampled a FID row, as a value: a diffusion sampler (its update rule and steps) or one
//! MAR setting. `fid.json` stores it as the label it has always had (`ddim-50`, `ddpm-250`,
//! `ddim-50-eta0.5`, `mar-64-head100-tau1`, `mar-64-tau1`, `mar-64`), parsed once when a file is
//! read; a label that names no sampler is an error naming the file.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config::MarLoss;
use crate::diffusion::SamplerKind;
use crate::error::{Error, Result};
use crate::mar::MarSampling;

/// A diffusion sampler and its number of steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerSetting {
    pub kind: SamplerKind,
    pub steps: usize,
}

/// The sampler of a FID row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RowSampler {
    /// DDPM / DDIM on a denoising ViT.
    Diffusion(SamplerSetting),
    /// MAR generation in `steps` steps; the head's DDPM steps (Diffusion Loss only) and its
    /// sampling temperature (the heads that sample: Diffusion Loss, cross-entropy).
    Mar { steps: usize, head_steps: Option<usize>, temperature: Option<f64> },
}

impl RowSampler {
    /// The row sampler of MAR setting `s` of a model with head `loss`, naming only what the head
    /// uses: an L2 head takes no head steps and no temperature.
    pub fn of_mar(loss: MarLoss, s: &MarSampling) -> Self {
        RowSampler::Mar {
            steps: s.steps,
            head_steps: loss.denoises().then_some(s.head_steps),
            temperature: loss.samples().then_some(s.temperature),
        }
    }

    /// The sampler family: `ddpm`, `ddim`, `euler`, `heun`, `dpm2m` or `mar`.
    pub fn family(&self) -> &'static str {
        match self {
            RowSampler::Diffusion(s) => s.kind.name(),
            RowSampler::Mar { .. } => "mar",
        }
    }

    /// Sampling steps: the diffusion sampler's, or MAR's generation steps `K`.
    pub fn steps(&self) -> usize {
        match self {
            RowSampler::Diffusion(s) => s.steps,
            RowSampler::Mar { steps, .. } => *steps,
        }
    }

    /// The order of rows in the tables: by family, then steps as a number (`ddim-25` before
    /// `ddim-100`), then the whole label (eta, MAR's head steps and temperature).
    pub fn order(&self) -> (&'static str, usize, String) {
        (self.family(), self.steps(), self.to_string())
    }
}

impl fmt::Display for RowSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowSampler::Diffusion(s) => match s.kind {
                SamplerKind::Ddpm => write!(f, "ddpm-{}", s.steps),
                SamplerKind::Ddim { eta: 0.0 } => write!(f, "ddim-{}", s.steps),
                SamplerKind::Ddim { eta } => write!(f, "ddim-{}-eta{eta}", s.steps),
                kind => write!(f, "{}-{}", kind.name(), s.steps),
            },
            RowSampler::Mar { steps, head_steps, temperature } => {
                write!(f, "mar-{steps}")?;
                if let Some(h) = head_steps {
                    write!(f, "-head{h}")?;
                }
                if let Some(t) = temperature {
                    write!(f, "-tau{t}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for RowSampler {
    type Err = Error;

    fn from_str(label: &str) -> Result<Self> {
        let bad = || {
            Error::config(
                "sampler",
                format!(
                    "`{label}` names no sampler; expected ddpm-STEPS, ddim-STEPS[-etaE], euler-STEPS, heun-STEPS, \
                     dpm2m-STEPS or mar-K[-headH][-tauT]"
                ),
            )
        };
        let mut parts = label.split('-');
        let family = parts.next().ok_or_else(bad)?;
        let steps: usize = parts.next().and_then(|s| s.parse().ok()).filter(|&s| s > 0).ok_or_else(bad)?;
        let rest: Vec<&str> = parts.collect();
        let number = |part: &str, prefix: &str| part.strip_prefix(prefix).and_then(|v| v.parse::<f64>().ok());
        let sampler = match (family, rest.as_slice()) {
            ("ddpm", []) => RowSampler::Diffusion(SamplerSetting { kind: SamplerKind::Ddpm, steps }),
            ("ddim", []) => RowSampler::Diffusion(SamplerSetting { kind: SamplerKind::Ddim { eta: 0.0 }, steps }),
            ("euler", []) => RowSampler::Diffusion(SamplerSetting { kind: SamplerKind::Euler, steps }),
            ("heun", []) => RowSampler::Diffusion(SamplerSetting { kind: SamplerKind::Heun, steps }),
            ("dpm2m", []) => RowSampler::Diffusion(SamplerSetting { kind: SamplerKind::DpmSolver2M, steps }),
            ("ddim", [eta]) => {
                let eta = number(eta, "eta").ok_or_else(bad)?;
                RowSampler::Diffusion(SamplerSetting { kind: SamplerKind::Ddim { eta }, steps })
            }
            ("mar", rest) if rest.len() <= 2 => {
                let (mut head_steps, mut temperature) = (None, None);
                for (i, part) in rest.iter().enumerate() {
                    match (number(part, "head"), number(part, "tau")) {
                        (Some(h), _) if i == 0 && h.fract() == 0.0 && h >= 1.0 => head_steps = Some(h as usize),
                        (_, Some(t)) if i + 1 == rest.len() => temperature = Some(t),
                        _ => return Err(bad()),
                    }
                }
                RowSampler::Mar { steps, head_steps, temperature }
            }
            _ => return Err(bad()),
        };
        Ok(sampler)
    }
}

impl TryFrom<String> for RowSampler {
    type Error = Error;

    fn try_from(label: String) -> Result<Self> {
        label.parse()
    }
}

impl From<RowSampler> for String {
    fn from(s: RowSampler) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_written_so_far_reads_back_as_the_same_sampler() {
        for label in [
            "ddim-50",
            "ddpm-250",
            "ddim-50-eta0.5",
            "ddim-1",
            "euler-25",
            "heun-13",
            "dpm2m-20",
            "mar-64-head100-tau1",
            "mar-16-tau0.9",
            "mar-64",
        ] {
            let s: RowSampler = label.parse().unwrap();
            assert_eq!(s.to_string(), label);
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{label}\""));
            assert_eq!(serde_json::from_str::<RowSampler>(&json).unwrap(), s);
        }
        let s: RowSampler = "mar-64-head100-tau1".parse().unwrap();
        assert_eq!(s, RowSampler::Mar { steps: 64, head_steps: Some(100), temperature: Some(1.0) });
        assert_eq!(
            "ddim-50-eta0.5".parse::<RowSampler>().unwrap(),
            RowSampler::Diffusion(SamplerSetting { kind: SamplerKind::Ddim { eta: 0.5 }, steps: 50 })
        );
    }

    #[test]
    fn a_label_that_names_no_sampler_is_refused() {
        for label in [
            "",
            "ddim",
            "ddim-0",
            "ddim-x",
            "euler",
            "heun-x",
            "dpm-50",
            "dpm2m-50-eta1",
            "ddpm-50-eta1",
            "mar-64-tau1-head100",
            "mar-8-head",
        ] {
            let err = label.parse::<RowSampler>().unwrap_err().to_string();
            assert!(err.contains("names no sampler"), "{label}: {err}");
        }
    }

    #[test]
    fn a_mar_row_names_only_what_its_head_uses() {
        let s = MarSampling { steps: 64, head_steps: 100, temperature: 1.0, cfg: 1.0 };
        assert_eq!(RowSampler::of_mar(MarLoss::Diffusion, &s).to_string(), "mar-64-head100-tau1");
        assert_eq!(RowSampler::of_mar(MarLoss::CrossEntropy, &s).to_string(), "mar-64-tau1");
        assert_eq!(RowSampler::of_mar(MarLoss::L2, &s).to_string(), "mar-64");
    }
}
