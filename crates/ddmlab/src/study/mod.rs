//! A study: the claims of a paper declared as data before their runs, so that what is decided,
//! on what, at which budgets and over which seeds is fixed before any result exists.
//!
//! A study names
//! - its **budgets** (optimisation steps) and **seeds**;
//! - its **arms**: ladder rungs (resolved to full run configs by the registry, with the study's
//!   overrides, each budget and each seed) and the budgets each runs at besides those of the
//!   claims it backs;
//! - its **claims**: two measurements (an arm and a [`Metric`]), a [`Hypothesis`] about their
//!   difference and the budgets it is decided at;
//! - its **tables**: the paper's rows with the paper's figures beside the arm measured for them
//!   (a figure belongs to a row of a table, not to a rung: one rung can stand for rows of two
//!   tables with two figures);
//! - descriptive **sweeps** of probe settings (measured and tabulated, deciding nothing).
//!
//! Its **hash** covers all of it and the resolved config of every run it makes, so a study
//! edited after its runs started is a different study: [`Stamp::check_folder`] refuses to run it
//! into the old folder, and a report never mixes runs of two versions.

pub mod verdicts;

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::atomic::write_atomic;
use crate::config::RunConfig;
use crate::diffusion::SamplerKind;
use crate::error::{Error, IoContext, Result};
use crate::eval::row_sampler::{RowSampler, SamplerSetting};
use crate::recipes::ladder::{Rung, rungs};
use crate::stats::Hypothesis;

/// The studies shipped with the library: `(name, TOML)`. Each is also a committed file
/// (`crates/ddmlab/studies/<name>.toml`) whose history shows it was declared before its runs.
pub const REGISTRY: &[(&str, &str)] = &[
    ("ladder", include_str!("../../studies/ladder.toml")),
    ("kl-tokenizer", include_str!("../../studies/kl-tokenizer.toml")),
    ("mar-orders", include_str!("../../studies/mar-orders.toml")),
    ("ldae-table4", include_str!("../../studies/ldae-table4.toml")),
];

/// What is measured on an arm's run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Metric {
    /// Linear-probe top-1 (%) on average-pooled encoder tokens of the EMA weights, with the
    /// paper's probe ablations: the encoder read to `depth` blocks (default: the model's
    /// encoder), conditioned on `t` (default: the run's `probe_t`), the input noised at `t`.
    Probe {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        depth: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        t: Option<usize>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        noisy: bool,
    },
    /// kNN top-1 (%) on the same features as the default probe.
    Knn,
    /// FID of `n` unguided samples of [`FID_SAMPLER`] (EMA) against the first `n` test images.
    Fid { n: usize },
    /// Reconstruction FID of a tokenizer on the first `n` test images.
    Rfid { n: usize },
    /// Test top-1 (%) of the run's encoder fine-tuned end to end (`ddmlab finetune`, MAE's
    /// recipe for the protocol's `finetune_epochs`) into `RUN/finetune/`; `random`: the same
    /// network fine-tuned from a fresh initialisation (`RUN/finetune-random/`, Table 4's
    /// "random init").
    Finetune {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        random: bool,
    },
}

/// The sampler of every FID a study measures: DDIM, 50 steps, deterministic (eta 0).
pub const FID_SAMPLER: SamplerSetting = SamplerSetting { kind: SamplerKind::Ddim { eta: 0.0 }, steps: 50 };

impl Metric {
    /// The default probe (the paper's protocol).
    pub const PROBE: Metric = Metric::Probe { depth: None, t: None, noisy: false };

    /// A short label for tables.
    pub fn label(&self) -> String {
        match self {
            Metric::Probe { depth, t, noisy } => {
                let mut s = String::from("probe");
                if let Some(d) = depth {
                    s += &format!(" depth {d}");
                }
                if let Some(t) = t {
                    s += &format!(" t={t}");
                }
                if *noisy {
                    s += " noisy";
                }
                s
            }
            Metric::Knn => "kNN".into(),
            Metric::Fid { n } => format!("FID-{n}"),
            Metric::Rfid { n } => format!("rFID-{n}"),
            Metric::Finetune { random: false } => "fine-tune".into(),
            Metric::Finetune { random: true } => "fine-tune from random init".into(),
        }
    }

    /// The folder under the run where a fine-tuning metric's run is made.
    pub fn finetune_folder(&self) -> Option<&'static str> {
        match self {
            Metric::Finetune { random: false } => Some("finetune"),
            Metric::Finetune { random: true } => Some("finetune-random"),
            _ => None,
        }
    }

    /// Whether higher is better (probe, kNN) rather than lower (FID).
    pub fn higher_is_better(&self) -> bool {
        matches!(self, Metric::Probe { .. } | Metric::Knn | Metric::Finetune { .. })
    }
}

/// One side of a claim: a metric of an arm.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    pub arm: String,
    pub metric: Metric,
}

/// An arm: a run recipe that seeds and budgets are applied to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// The arm's id: for a `ladder` study, a ladder rung (`ddmlab presets`).
    pub name: String,
    /// For a `declared` study: the command that makes one run of the arm (`{seed}` and
    /// `{budget}` stand for the run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Budgets this arm runs at whatever the claims say (for its table row).
    #[serde(default)]
    pub budgets: Vec<usize>,
    /// A `presets` study: the preset the arm starts from (default: its name), so that two arms
    /// can be one preset with different overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// `KEY=VALUE` overrides of this arm, after the study's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<String>,
    /// The seeds this arm runs (some of the study's; empty: all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
    /// The arm trains `round(step_scale * budget)` steps at each study budget (e.g. equal
    /// training time beside an arm of slower steps, the ratio measured and stated beforehand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_scale: Option<f64>,
}

impl Arm {
    /// The preset (or ladder rung) the arm starts from.
    pub fn base(&self) -> &str {
        self.preset.as_deref().unwrap_or(&self.name)
    }

    /// The steps this arm trains at study budget `budget`.
    pub fn steps_at(&self, budget: usize) -> usize {
        match self.step_scale {
            Some(s) => ((s * budget as f64).round() as usize).max(1),
            None => budget,
        }
    }
}

/// A claim of the paper, decided per budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// A short id (`a`, `c2`, ...), unique in the study.
    pub id: String,
    /// The claim in words.
    pub text: String,
    /// The paper's figures it rests on.
    pub paper: String,
    pub a: Measure,
    pub b: Measure,
    /// What is claimed of `a - b`.
    pub test: Hypothesis,
    pub budgets: Vec<usize>,
}

/// One row of a paper table: the paper's figures and the arm measured for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableRow {
    pub arm: String,
    /// The paper's row, in words.
    pub row: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper_probe: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper_fid: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper_finetune: Option<f64>,
}

/// A paper table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub title: String,
    pub rows: Vec<TableRow>,
}

/// Probe settings measured on one arm at the listed budgets, tabulated without a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    pub title: String,
    pub arm: String,
    pub metrics: Vec<Metric>,
    pub budgets: Vec<usize>,
}

/// How the measurements are made (part of the declaration: a probe of other epochs is another
/// study).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    pub probe_epochs: usize,
    pub knn_k: usize,
    /// How a MAR arm is sampled for its FID (a DiT arm uses [`FID_SAMPLER`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mar: Option<MarFid>,
    /// Measure each learned tokenizer's reconstruction FID on the first `n` test images once,
    /// and report it beside the FID of every arm that generates in its latent (its floor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfid: Option<usize>,
    /// The epochs of every fine-tuning metric (`ddmlab finetune`'s default, 20, when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finetune_epochs: Option<f64>,
}

/// The MAR sampling of a study's FID: generation steps `K`, the Diffusion Loss head's DDPM
/// steps and its temperature, unguided.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarFid {
    pub steps: usize,
    pub head_steps: usize,
    pub temperature: f64,
}

impl MarFid {
    /// This one setting as gen-eval's MAR sweep.
    pub fn sweep(&self) -> crate::eval::gen_eval::MarSweep {
        crate::eval::gen_eval::MarSweep {
            steps: vec![self.steps],
            head_steps: vec![self.head_steps],
            temperatures: vec![self.temperature],
        }
    }

    /// The FID row sampler of this setting on a model with head `loss`.
    pub fn row_sampler(&self, loss: crate::config::MarLoss) -> RowSampler {
        let s = crate::mar::MarSampling {
            steps: self.steps,
            head_steps: self.head_steps,
            temperature: self.temperature,
            cfg: 1.0,
        };
        RowSampler::of_mar(loss, &s)
    }
}

/// What makes a study's runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runner {
    /// `ddmlab deconstruct`: every arm is a ladder rung.
    Ladder,
    /// Another command makes the runs (each arm names it); the declaration fixes the claims
    /// before them.
    Declared,
    /// `ddmlab deconstruct`: every arm is a registered preset (`ddmlab presets`), with the
    /// arm's own overrides; nothing is measured but what the claims name.
    Presets,
}

impl Runner {
    /// The name in a study file.
    pub fn name(self) -> &'static str {
        match self {
            Runner::Ladder => "ladder",
            Runner::Declared => "declared",
            Runner::Presets => "presets",
        }
    }
}

/// A declared study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Study {
    pub name: String,
    pub about: String,
    /// What runs it.
    pub runner: Runner,
    pub budgets: Vec<usize>,
    pub seeds: Vec<u64>,
    /// `KEY=VALUE` config overrides applied to every arm (a smaller network for a quick study).
    #[serde(default)]
    pub overrides: Vec<String>,
    pub protocol: Protocol,
    #[serde(rename = "arm")]
    pub arms: Vec<Arm>,
    #[serde(rename = "claim")]
    pub claims: Vec<Claim>,
    #[serde(default, rename = "table")]
    pub tables: Vec<Table>,
    #[serde(default, rename = "sweep")]
    pub sweeps: Vec<Sweep>,
    /// Each budget after the first trains the run of the budget before on (`--resume
    /// --steps`): the longer run of a schedule constant after its warm-up, which keeps its
    /// length in steps ([`RunConfig`]'s `train.warmup_steps`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extend: bool,
}

/// One run a study makes: an arm at a budget with a seed, and its resolved config.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    pub arm: String,
    pub budget: usize,
    pub seed: u64,
    pub config: RunConfig,
    /// What is measured on it (the default probe and kNN always).
    pub metrics: BTreeSet<Metric>,
}

impl Study {
    /// Parse a study from TOML; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Study> {
        let study: Study =
            toml::from_str(text).map_err(|e| Error::format(origin, format!("not a study declaration: {e}")))?;
        study.validate().map_err(|e| Error::format(origin, e))?;
        Ok(study)
    }

    /// A registered study by name, or a study file by path.
    pub fn load(name_or_path: &str) -> Result<Study> {
        if let Some((name, text)) = REGISTRY.iter().find(|(n, _)| *n == name_or_path) {
            return Study::from_toml(text, Path::new(&format!("studies/{name}.toml")));
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            let names: Vec<&str> = REGISTRY.iter().map(|(n, _)| *n).collect();
            return Err(Error::config(
                "study",
                format!("`{name_or_path}` is neither a registered study ({}) nor a study file", names.join(", ")),
            ));
        }
        Study::from_toml(&std::fs::read_to_string(path).at(path)?, path)
    }

    /// Why the declaration is inconsistent, if it is: every arm a registered rung, every claim,
    /// table row and sweep naming a declared arm and declared budgets, ids unique, margins
    /// positive, metrics that the arm's runs can measure.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.budgets.is_empty() || self.budgets.contains(&0) {
            return Err("budgets: at least one, every one a positive number of steps".into());
        }
        if self.seeds.is_empty() {
            return Err("seeds: at least one".into());
        }
        let unique = |v: Vec<String>, what: &str| -> std::result::Result<(), String> {
            let set: BTreeSet<&String> = v.iter().collect();
            if set.len() != v.len() { Err(format!("{what}: each must appear once")) } else { Ok(()) }
        };
        unique(self.budgets.iter().map(|b| b.to_string()).collect(), "budgets")?;
        unique(self.seeds.iter().map(|s| s.to_string()).collect(), "seeds")?;
        unique(self.arms.iter().map(|a| a.name.clone()).collect(), "arm")?;
        unique(self.claims.iter().map(|c| c.id.clone()).collect(), "claim ids")?;
        if self.protocol.probe_epochs == 0 || self.protocol.knn_k == 0 {
            return Err("protocol: probe_epochs and knn_k must be positive".into());
        }
        let budgets_ok = |b: &[usize], what: &str| -> std::result::Result<(), String> {
            match b.iter().find(|x| !self.budgets.contains(x)) {
                Some(x) => Err(format!("{what}: budget {x} is not one of the study's {:?}", self.budgets)),
                None if b.is_empty() => Err(format!("{what}: no budget")),
                None => Ok(()),
            }
        };
        let all = rungs();
        let presets = crate::recipes::preset_names();
        for arm in &self.arms {
            let what = format!("arm `{}`", arm.name);
            match self.runner {
                Runner::Ladder if arm.preset.is_some() => {
                    return Err(format!("{what}: a ladder study's arms are rungs, named by their name"));
                }
                Runner::Ladder if !all.iter().any(|r| r.name == arm.name) => {
                    return Err(format!("{what} is not a ladder rung"));
                }
                Runner::Presets if !presets.contains(&arm.base()) => {
                    return Err(format!("{what}: `{}` is not a registered preset (`ddmlab presets`)", arm.base()));
                }
                Runner::Declared if arm.command.is_none() => {
                    return Err(format!("{what}: a declared study names the command of each arm"));
                }
                Runner::Declared
                    if arm.preset.is_some()
                        || !arm.set.is_empty()
                        || !arm.seeds.is_empty()
                        || arm.step_scale.is_some() =>
                {
                    return Err(format!("{what}: preset, set, seeds and step_scale belong to arms the study runs"));
                }
                _ => {}
            }
            if self.runner != Runner::Declared && !arm.budgets.is_empty() {
                budgets_ok(&arm.budgets, &what)?;
            }
            if let Some(x) = arm.seeds.iter().find(|x| !self.seeds.contains(x)) {
                return Err(format!("{what}: seed {x} is not one of the study's {:?}", self.seeds));
            }
            unique(arm.seeds.iter().map(|s| s.to_string()).collect(), &format!("{what}: seeds"))?;
            if let Some(scale) = arm.step_scale.filter(|x| !(x.is_finite() && *x > 0.0)) {
                return Err(format!("{what}: step_scale {scale} must be a positive number"));
            }
        }
        if self.extend {
            if self.runner == Runner::Declared {
                return Err(
                    "extend: a declared study's commands make its runs; extend is for the runs a study makes".into()
                );
            }
            if self.budgets.windows(2).any(|w| w[1] <= w[0]) {
                return Err(format!(
                    "extend: each budget trains the one before on, so budgets must increase ({:?})",
                    self.budgets
                ));
            }
        }
        if let Some(m) = &self.protocol.mar
            && (m.steps == 0 || m.head_steps == 0 || !(m.temperature.is_finite() && m.temperature > 0.0))
        {
            return Err(format!("protocol.mar: {m:?}: steps and head_steps positive, temperature positive"));
        }
        if let Some(e) = self.protocol.finetune_epochs.filter(|e| !(e.is_finite() && *e > 0.0)) {
            return Err(format!("protocol.finetune_epochs: {e} must be a positive number"));
        }
        if self.protocol.rfid == Some(0) {
            return Err("protocol.rfid: a positive number of test images".into());
        }
        let arm_ok = |name: &str, what: &str| -> std::result::Result<(), String> {
            if self.arms.iter().any(|a| a.name == name) {
                Ok(())
            } else {
                Err(format!("{what}: `{name}` is not an arm of the study"))
            }
        };
        for c in &self.claims {
            let what = format!("claim ({})", c.id);
            arm_ok(&c.a.arm, &what)?;
            arm_ok(&c.b.arm, &what)?;
            budgets_ok(&c.budgets, &what)?;
            if let Some(p) = c.test.problem() {
                return Err(format!("{what}: {p}"));
            }
            if c.a.metric.higher_is_better() != c.b.metric.higher_is_better() {
                return Err(format!("{what}: compares metrics of different kinds"));
            }
        }
        for t in &self.tables {
            for r in &t.rows {
                arm_ok(&r.arm, &format!("table `{}`", t.title))?;
            }
        }
        for s in &self.sweeps {
            arm_ok(&s.arm, &format!("sweep `{}`", s.title))?;
            budgets_ok(&s.budgets, &format!("sweep `{}`", s.title))?;
        }
        Ok(())
    }

    /// The rung of a ladder arm.
    fn rung<'a>(all: &'a [Rung], name: &str) -> &'a Rung {
        all.iter().find(|r| r.name == name).expect("validated: every arm is a rung")
    }

    /// The arm called `name` (validated to exist where the study names it).
    fn arm(&self, name: &str) -> &Arm {
        self.arms.iter().find(|a| a.name == name).expect("validated: every name is an arm")
    }

    /// The config of `arm` at `budget` with `seed`: the rung's (or preset's), the study's
    /// overrides, the arm's, then the arm's steps at the budget and the seed; validated. In a
    /// study that extends, a later budget's config is the first budget's trained on to its steps
    /// (the warm-up kept in steps).
    pub fn config(&self, arm: &str, budget: usize, seed: u64) -> Result<RunConfig> {
        let fail = |e: Error| Error::Other(format!("study {}: arm {arm}: {e}", self.name));
        let a = self.arm(arm);
        let mut config = match self.runner {
            Runner::Presets => crate::recipes::preset(a.base())?.config,
            _ => Self::rung(&rungs(), arm).config.clone(),
        };
        for o in self.overrides.iter().chain(&a.set) {
            config = config.with_override(o)?;
        }
        config.train.seed = seed;
        let first = self.budgets[0];
        config.train.steps = a.steps_at(if self.extend { first } else { budget });
        if self.extend && budget != first {
            config.validate().map_err(fail)?;
            config.train = config.train.extended_to(a.steps_at(budget)).map_err(fail)?;
        }
        config.validate().map_err(fail)?;
        Ok(config)
    }

    /// The seeds `arm` runs.
    pub fn seeds_of(&self, arm: &Arm) -> Vec<u64> {
        if arm.seeds.is_empty() { self.seeds.clone() } else { arm.seeds.clone() }
    }

    /// Every run of the study, in the order they are made: budget by budget in the declared
    /// order (every claim at the first budget before any at the next), arms in declared order,
    /// seeds in declared order. An arm runs at a budget when it lists that budget, or a claim or
    /// sweep declared at that budget names it.
    pub fn plan(&self) -> Result<Vec<PlannedRun>> {
        if self.runner == Runner::Declared {
            return Err(Error::Other(format!(
                "study {} is declared only; its runs are made by another command",
                self.name
            )));
        }
        let mut out = Vec::new();
        for &budget in &self.budgets {
            for arm in &self.arms {
                let mut metrics = BTreeSet::new();
                let mut wanted = arm.budgets.contains(&budget);
                for c in self.claims.iter().filter(|c| c.budgets.contains(&budget)) {
                    for m in [&c.a, &c.b].into_iter().filter(|m| m.arm == arm.name) {
                        metrics.insert(m.metric.clone());
                        wanted = true;
                    }
                }
                for s in self.sweeps.iter().filter(|s| s.arm == arm.name && s.budgets.contains(&budget)) {
                    metrics.extend(s.metrics.iter().cloned());
                    wanted = true;
                }
                if !wanted {
                    continue;
                }
                if self.runner == Runner::Ladder {
                    metrics.insert(Metric::PROBE);
                    metrics.insert(Metric::Knn);
                }
                for seed in self.seeds_of(arm) {
                    let config = self.config(&arm.name, budget, seed)?;
                    if config.mar.is_some()
                        && self.protocol.mar.is_none()
                        && metrics.iter().any(|m| matches!(m, Metric::Fid { .. }))
                    {
                        return Err(Error::config(
                            "protocol.mar",
                            format!(
                                "study {}: arm {} is a MAR run measured by FID: declare its sampling (K, head \
                                 steps, temperature) in protocol.mar",
                                self.name, arm.name
                            ),
                        ));
                    }
                    out.push(PlannedRun { arm: arm.name.clone(), budget, seed, config, metrics: metrics.clone() });
                }
            }
        }
        Ok(out)
    }

    /// The sampler of an FID on a run of `config`: the protocol's MAR sampling for a MAR run
    /// (the plan refuses a MAR arm measured by FID without one), else [`FID_SAMPLER`].
    pub fn fid_sampler(&self, config: &RunConfig) -> RowSampler {
        match (&config.mar, &self.protocol.mar) {
            (Some(section), Some(p)) => p.row_sampler(section.loss),
            _ => RowSampler::Diffusion(FID_SAMPLER),
        }
    }

    /// The fit keys of the tokenizers the study's runs use, sorted, each once.
    pub fn tokenizer_keys(&self) -> Result<Vec<String>> {
        let mut keys: Vec<String> = self
            .plan()?
            .iter()
            .map(|r| r.config.denoise.tokenizer.fit_key(&r.config.data, r.config.model.image))
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// The study's hash: SHA-256 of the declaration and of every planned run's resolved config
    /// (16 hex digits).
    pub fn hash(&self) -> Result<String> {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(self).expect("a study serialises"));
        if self.runner != Runner::Declared {
            for run in self.plan()? {
                h.update(format!("\n{} {} {}\n", run.arm, run.budget, run.seed).as_bytes());
                h.update(run.config.to_toml().as_bytes());
            }
        }
        Ok(h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect())
    }

    /// The study as TOML (what `ddmlab study show` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a study serialises")
    }
}

/// The study and version a folder's runs belong to (`study.json` in the study folder and in
/// every run folder it makes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub study: String,
    pub hash: String,
}

impl Stamp {
    /// `DIR/study.json`.
    pub fn path(dir: &Path) -> std::path::PathBuf {
        dir.join("study.json")
    }

    /// The stamp in `dir`, if any.
    pub fn read(dir: &Path) -> Result<Option<Stamp>> {
        let path = Self::path(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::format(&path, format!("not a study stamp ({e})"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at(&path),
        }
    }

    /// Write the stamp into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).at(dir)?;
        write_atomic(&Self::path(dir), serde_json::to_string_pretty(self).expect("serialises").as_bytes())
    }

    /// Claim `dir` for this study version: a folder stamped by another version (or study) is
    /// refused, naming both; an unstamped folder that already holds files is refused too.
    pub fn check_folder(&self, dir: &Path) -> Result<()> {
        match Self::read(dir)? {
            Some(old) if old == *self => Ok(()),
            Some(old) => Err(Error::config(
                "study",
                format!(
                    "{} holds the runs of study `{}` version {}; this is study `{}` version {}. A changed study is a new \
                     study: run it into a new folder (the old one keeps its report)",
                    dir.display(),
                    old.study,
                    old.hash,
                    self.study,
                    self.hash
                ),
            )),
            None if dir.read_dir().map(|mut d| d.next().is_some()).unwrap_or(false) => Err(Error::config(
                "study",
                format!(
                    "{} is not empty and holds no study stamp; choose a new folder for study `{}`",
                    dir.display(),
                    self.study
                ),
            )),
            None => self.write(dir),
        }
    }

    /// Whether the run folder `run` belongs to this version (stamped with it).
    pub fn owns(&self, run: &Path) -> Result<bool> {
        Ok(Self::read(run)?.as_ref() == Some(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Study {
        Study::from_toml(
            r#"
name = "tiny"
about = "two rungs"
runner = "ladder"
budgets = [10, 20]
seeds = [0, 1, 2]
overrides = ["model.width=48"]
protocol = { probe_epochs = 2, knn_k = 5 }

[[arm]]
name = "ladder-t3-ldae"
budgets = [10]

[[arm]]
name = "ladder-t3-single-level"

[[arm]]
name = "ladder-t3-pixel-dae"
budgets = [10]

[[claim]]
id = "f"
text = "multi-level noise beats a single level"
paper = "64.5 vs 61.5"
a = { arm = "ladder-t3-ldae", metric = { kind = "probe" } }
b = { arm = "ladder-t3-single-level", metric = { kind = "probe" } }
test = { kind = "greater" }
budgets = [10, 20]
"#,
            Path::new("tiny.toml"),
        )
        .unwrap()
    }

    #[test]
    fn every_registered_study_parses_validates_and_resolves() {
        for (name, text) in REGISTRY {
            let study = Study::from_toml(text, Path::new(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&study.name, name);
            if study.runner == Runner::Ladder {
                let plan = study.plan().unwrap();
                assert!(!plan.is_empty());
                assert_eq!(study.hash().unwrap().len(), 16);
            }
        }
    }

    /// The ladder study being run (`bench/study-ladder.sh`, tag `ladder-study-v1`) keeps its
    /// version: a change to a rung, a preset, a default of the run config or the way configs
    /// are written changes the hash, and its runs would be refused in their folder. Such a
    /// change is a new study version (a new folder), made on purpose: update this figure then.
    #[test]
    fn the_ladder_study_keeps_the_version_being_run() {
        let study = Study::load("ladder").unwrap();
        assert_eq!(study.hash().unwrap(), "93598b1731013ab4");
        assert_eq!(study.plan().unwrap().len(), 156);
    }

    #[test]
    fn the_plan_runs_every_claim_at_the_first_budget_before_any_at_the_next() {
        let study = tiny();
        let plan = study.plan().unwrap();
        let keys: Vec<(usize, &str, u64)> = plan.iter().map(|r| (r.budget, r.arm.as_str(), r.seed)).collect();
        // Budget 10: all three arms (two listed, one by the claim); budget 20: the claim's two.
        assert_eq!(keys.len(), 3 * 3 + 2 * 3);
        assert!(keys[..9].iter().all(|k| k.0 == 10) && keys[9..].iter().all(|k| k.0 == 20));
        assert_eq!(keys[9..].iter().filter(|k| k.1 == "ladder-t3-pixel-dae").count(), 0);
        assert!(plan.iter().all(|r| r.config.train.steps == r.budget && r.config.model.width == 48));
        assert_eq!(plan[4].config.train.seed, 1);
        assert!(plan[0].metrics.contains(&Metric::PROBE) && plan[0].metrics.contains(&Metric::Knn));
    }

    #[test]
    fn the_hash_changes_with_the_declaration_and_with_a_resolved_config() {
        let study = tiny();
        let h = study.hash().unwrap();
        assert_eq!(h, tiny().hash().unwrap(), "deterministic");
        let mut seeds = tiny();
        seeds.seeds.push(3);
        assert_ne!(seeds.hash().unwrap(), h);
        let mut over = tiny();
        over.overrides = vec!["model.width=96".into()];
        assert_ne!(over.hash().unwrap(), h);
    }

    #[test]
    fn inconsistent_declarations_are_one_error_naming_the_part() {
        let base = tiny().to_toml();
        let bad = |from: &str, to: &str| {
            let text = base.replacen(from, to, 1);
            assert_ne!(text, base, "{from} not found");
            Study::from_toml(&text, Path::new("s.toml")).unwrap_err().to_string()
        };
        assert!(bad("name = \"ladder-t3-single-level\"", "name = \"ladder-t3-nope\"").contains("ladder-t3-nope"));
        let e = bad("    20,\n]\n\n[claim.a]", "    30,\n]\n\n[claim.a]");
        assert!(e.contains("claim (f)") && e.contains("budget 30"), "{e}");
        assert!(bad("kind = \"greater\"", "kind = \"equivalent\"\nmargin = 0.0").contains("margin"));
        assert!(bad("id = \"f\"", "id = \"f\"\nextra = 1").contains("extra"));
    }

    /// A `presets` study: MAR arms from one preset, one with its own seeds, a DiT at a step
    /// scale, and budgets that train the runs on.
    const PRESETS: &str = r#"
name = "orders"
about = "two MAR arms and a DiT"
runner = "presets"
budgets = [100, 200]
seeds = [0, 1, 2]
extend = true
protocol = { probe_epochs = 2, knn_k = 5, mar = { steps = 16, head_steps = 100, temperature = 1.0 }, rfid = 5000 }

[[arm]]
name = "mar-tiny"

[[arm]]
name = "raster"
preset = "mar-tiny"
set = ["mar.variant=ar-raster"]
seeds = [0, 1]

[[arm]]
name = "dit"
preset = "dit-tiny"
set = ["train.min_lr_frac=1.0", "train.warmup_frac=0.1"]
step_scale = 2.5

[[claim]]
id = "m1"
text = "bidirectional beats raster"
paper = "MAR Table 1"
a = { arm = "raster", metric = { kind = "fid", n = 5000 } }
b = { arm = "mar-tiny", metric = { kind = "fid", n = 5000 } }
test = { kind = "greater" }
budgets = [100, 200]

[[claim]]
id = "m2"
text = "MAR beats the DiT at equal time"
paper = "-"
a = { arm = "dit", metric = { kind = "fid", n = 5000 } }
b = { arm = "mar-tiny", metric = { kind = "fid", n = 5000 } }
test = { kind = "greater" }
budgets = [100]
"#;

    #[test]
    fn a_presets_study_resolves_arm_presets_seeds_step_scales_and_extended_budgets() {
        let study = Study::from_toml(PRESETS, Path::new("orders.toml")).unwrap();
        let plan = study.plan().unwrap();
        let keys: Vec<(usize, &str, u64, usize)> =
            plan.iter().map(|r| (r.budget, r.arm.as_str(), r.seed, r.config.train.steps)).collect();
        assert_eq!(
            keys,
            vec![
                (100, "mar-tiny", 0, 100),
                (100, "mar-tiny", 1, 100),
                (100, "mar-tiny", 2, 100),
                (100, "raster", 0, 100),
                (100, "raster", 1, 100),
                (100, "dit", 0, 250),
                (100, "dit", 1, 250),
                (100, "dit", 2, 250),
                (200, "mar-tiny", 0, 200),
                (200, "mar-tiny", 1, 200),
                (200, "mar-tiny", 2, 200),
                (200, "raster", 0, 200),
                (200, "raster", 1, 200),
            ]
        );
        // Nothing is measured that no claim names (no probe of a generator).
        assert!(
            plan.iter().all(|r| r.metrics.len() == 1 && matches!(r.metrics.first(), Some(Metric::Fid { n: 5000 })))
        );
        let raster = &plan[3].config;
        assert_eq!(raster.mar.as_ref().unwrap().variant, crate::config::MarVariant::ArRaster);
        assert_eq!(raster.preset, "mar-tiny");
        // The later budget is the first trained on: mar-tiny warms up 5% of 100 steps, kept.
        let first = &plan[0].config.train;
        let later = &plan[8].config.train;
        assert_eq!((first.warmup(first.steps), first.warmup_steps), (5, 0));
        assert_eq!((later.steps, later.warmup_steps, later.warmup(later.steps)), (200, 5, 5));
        assert_eq!(*later, first.extended_to(200).unwrap());
        // The FID sampler follows the run: the protocol's MAR setting, DDIM-50 for the DiT.
        assert_eq!(study.fid_sampler(&plan[0].config).to_string(), "mar-16-head100-tau1");
        assert_eq!(study.fid_sampler(&plan[5].config), RowSampler::Diffusion(FID_SAMPLER));
        assert_eq!(study.hash().unwrap(), study.hash().unwrap());
        let mut other = study.clone();
        other.arms[2].step_scale = Some(3.0);
        assert_ne!(other.hash().unwrap(), study.hash().unwrap(), "a step scale is part of the version");
    }

    #[test]
    fn a_presets_study_that_cannot_run_as_declared_is_one_error() {
        let bad = |from: &str, to: &str| {
            let text = PRESETS.replacen(from, to, 1);
            assert_ne!(text, PRESETS, "{from} not found");
            match Study::from_toml(&text, Path::new("s.toml")) {
                Err(e) => e.to_string(),
                Ok(study) => study.plan().map(|_| String::new()).unwrap_or_else(|e| e.to_string()),
            }
        };
        assert!(bad("preset = \"dit-tiny\"", "preset = \"dit-nope\"").contains("dit-nope"));
        assert!(bad("seeds = [0, 1]\n", "seeds = [0, 5]\n").contains("seed 5"));
        assert!(bad("step_scale = 2.5", "step_scale = -1.0").contains("step_scale"));
        assert!(bad("budgets = [100, 200]\nseeds", "budgets = [200, 100]\nseeds").contains("increase"));
        // A cosine schedule does not extend: the later budget would not be the longer run.
        let e = bad("set = [\"train.min_lr_frac=1.0\", ", "set = [");
        assert!(e.is_empty(), "the DiT runs at one budget only: {e}");
        let e = bad("budgets = [100]\n", "budgets = [100, 200]\n");
        assert!(e.is_empty(), "{e}");
        let both = PRESETS.replacen("budgets = [100]\n", "budgets = [100, 200]\n", 1).replacen(
            "\"train.min_lr_frac=1.0\"",
            "\"train.min_lr_frac=0.1\"",
            1,
        );
        let e = Study::from_toml(&both, Path::new("s.toml")).unwrap().plan().unwrap_err().to_string();
        assert!(e.contains("train.min_lr_frac") && e.contains("dit"), "{e}");
        // A MAR arm measured by FID needs its sampling declared.
        let e = bad(", mar = { steps = 16, head_steps = 100, temperature = 1.0 }", "");
        assert!(e.contains("protocol.mar"), "{e}");
        assert!(bad("temperature = 1.0", "temperature = 0.0").contains("protocol.mar"));
        // A ladder study names rungs only.
        let e = bad("runner = \"presets\"", "runner = \"ladder\"");
        assert!(e.contains("not a ladder rung") || e.contains("rungs"), "{e}");
    }

    #[test]
    fn a_folder_of_another_version_is_refused_naming_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = Stamp { study: "tiny".into(), hash: "aaaa".into() };
        let v2 = Stamp { study: "tiny".into(), hash: "bbbb".into() };
        v1.check_folder(dir.path()).unwrap();
        v1.check_folder(dir.path()).unwrap();
        let err = v2.check_folder(dir.path()).unwrap_err().to_string();
        assert!(err.contains("aaaa") && err.contains("bbbb") && err.contains("tiny"), "{err}");
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("x"), "").unwrap();
        assert!(v1.check_folder(other.path()).unwrap_err().to_string().contains("not empty"));
        assert!(v1.owns(dir.path()).unwrap() && !v2.owns(dir.path()).unwrap());
    }
}
