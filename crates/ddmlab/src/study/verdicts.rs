//! A study's report, read back from its run folders: per budget, every claim with each arm's
//! mean, sd and n, the difference with its 95% Welch interval, the smallest difference these
//! seeds detect, and the verdict (`stats`); one tally per budget (no tally mixes budgets); each
//! claim's intervals across budgets side by side; the paper's tables with the paper's figure per
//! row; the sweeps; and the commits that made the runs.
//!
//! Only run folders stamped with this study version are read: a folder of another version is
//! counted and named, never mixed in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{Claim, Measure, Metric, Stamp, Study};
use crate::config::RunConfig;
use crate::error::Result;
use crate::eval::gen_eval;
use crate::eval::gen_eval::FidRow;
use crate::eval::report::read_rows;
use crate::runs::tokenizer::{read_recon_table, recon_table};
use crate::stats::{Summary, Verdict, Welch, judge};
use crate::store::provenance::{self, Provenance};
use crate::tokenizer::TokenizerSpec;

/// The run folder of `arm` at `budget` with `seed` in study folder `out`.
pub fn run_dir(out: &Path, budget: usize, arm: &str, seed: u64) -> PathBuf {
    out.join(format!("budget-{budget}")).join("runs").join(arm).join(format!("seed-{seed}"))
}

/// The shared folder of the tokenizer of `config` in study folder `out`: fitted (or adopted)
/// once, copied into every run that names it, and where its rFID is measured.
pub fn tokenizer_dir(out: &Path, config: &RunConfig) -> PathBuf {
    out.join("tokenizers").join(config.denoise.tokenizer.fit_key(&config.data, config.model.image))
}

/// The table of a tokenizer's rFID on `n` test images in its shared folder.
pub fn rfid_table(n: usize) -> String {
    recon_table("recon", n, 0)
}

/// Whether `config`'s tokenizer is learned (reconstructs with a loss, so it has an rFID): not
/// the identity on pixels.
pub fn has_rfid(config: &RunConfig) -> bool {
    !matches!(config.denoise.tokenizer, TokenizerSpec::Pixels { .. })
}

/// Every value measured, by `(measure, budget)`, one per seed that has it (in seed order).
#[derive(Debug, Default, Clone)]
pub struct Measurements {
    pub values: BTreeMap<(Measure, usize), Vec<f64>>,
    /// The rFID of each arm's tokenizer (`protocol.rfid`), where measured.
    pub rfid: BTreeMap<String, f64>,
    /// Runs found stamped by another study version (never read).
    pub foreign: Vec<PathBuf>,
    /// Every provenance record of the runs read.
    pub provenance: Vec<(PathBuf, Provenance)>,
}

impl Measurements {
    /// The values of `m` at `budget` (empty when none).
    pub fn get(&self, m: &Measure, budget: usize) -> &[f64] {
        self.values.get(&(m.clone(), budget)).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Read every measurement the study names from `out`; `protocol` gives the probe protocol
/// string of a probe metric (the rows of `probe.json` are keyed by it).
pub fn measure(study: &Study, out: &Path, stamp: &Stamp, protocol: &dyn Fn(&Metric) -> String) -> Result<Measurements> {
    let mut got = Measurements::default();
    let plan = study.plan()?;
    if let Some(n) = study.protocol.rfid {
        for run in plan.iter().filter(|r| has_rfid(&r.config)) {
            let rows = read_recon_table(&tokenizer_dir(out, &run.config), &rfid_table(n))?;
            if let Some(rfid) = rows.iter().rev().find(|r| r.n == n).and_then(|r| r.rfid) {
                got.rfid.insert(run.arm.clone(), rfid);
            }
        }
    }
    for run in &plan {
        let dir = run_dir(out, run.budget, &run.arm, run.seed);
        match Stamp::read(&dir)? {
            Some(s) if s == *stamp => {}
            Some(_) => {
                got.foreign.push(dir);
                continue;
            }
            None => continue,
        }
        for p in provenance::read(&dir)? {
            got.provenance.push((dir.clone(), p));
        }
        let probes = read_rows(&dir.join("probe.json"))?;
        let fids = gen_eval::read_rows(&dir.join("fid.json"))?;
        for metric in &run.metrics {
            let value = match metric {
                Metric::Probe { .. } | Metric::Knn => {
                    let probe_metric = if *metric == Metric::Knn { Metric::PROBE } else { metric.clone() };
                    let key = protocol(&probe_metric);
                    probes
                        .iter()
                        .find(|r| r.step == Some(run.config.train.steps) && r.pool == "avg-pool" && r.protocol == key)
                        .and_then(|r| if *metric == Metric::Knn { r.knn } else { Some(r.linear) })
                }
                Metric::Fid { n } => {
                    let sampler = study.fid_sampler(&run.config);
                    let row = |r: &&FidRow| r.step == run.config.train.steps && r.n == *n && r.cfg == 1.0 && r.ema;
                    fids.iter().filter(row).find(|r| r.sampler == sampler).map(|r| r.fid)
                }
                Metric::Rfid { .. } => None,
                Metric::Finetune { .. } => {
                    let folder = metric.finetune_folder().expect("a fine-tuning metric");
                    crate::eval::top1::final_top1(&dir.join(folder))?
                }
            };
            if let Some(v) = value {
                got.values
                    .entry((Measure { arm: run.arm.clone(), metric: metric.clone() }, run.budget))
                    .or_default()
                    .push(v);
            }
        }
    }
    Ok(got)
}

/// One claim decided at one budget.
#[derive(Debug, Clone)]
pub struct Decision {
    pub claim: Claim,
    pub budget: usize,
    pub a: Option<Summary>,
    pub b: Option<Summary>,
    pub welch: Option<Welch>,
    pub verdict: Verdict,
}

/// Every claim at every budget it is declared for, in declared order.
pub fn decide(study: &Study, got: &Measurements) -> Vec<Decision> {
    let mut out = Vec::new();
    for &budget in &study.budgets {
        for c in study.claims.iter().filter(|c| c.budgets.contains(&budget)) {
            let (a, b) = (got.get(&c.a, budget), got.get(&c.b, budget));
            let (welch, verdict) = judge(&c.test, a, b);
            out.push(Decision { claim: c.clone(), budget, a: Summary::of(a), b: Summary::of(b), welch, verdict });
        }
    }
    out
}

fn fmt_summary(s: &Option<Summary>) -> String {
    match s {
        Some(s) => format!("{:.2} ± {:.2} (n={})", s.mean, s.sd, s.n),
        None => "-".into(),
    }
}

fn side(m: &Measure) -> String {
    format!("`{}` {}", m.arm.trim_start_matches("ladder-"), m.metric.label())
}

/// The verdict table of one budget, with its tally.
pub fn budget_table(decisions: &[Decision], budget: usize) -> String {
    let here: Vec<&Decision> = decisions.iter().filter(|d| d.budget == budget).collect();
    let mut s = format!(
        "### {budget} steps\n\nEach arm: mean ± sd over seeds (n). Difference a - b with its 95% Welch interval; \
         detectable: the smallest difference these seeds find with 80% power.\n\n\
         | claim | test | a | b | a - b [95% CI] | detectable | verdict |\n|---|---|---|---|---|---|---|\n"
    );
    for d in &here {
        let c = &d.claim;
        let (diff, detect) = match &d.welch {
            Some(w) => (format!("{:+.2} [{:+.2}, {:+.2}]", w.diff, w.ci.0, w.ci.1), format!("{:.2}", w.detectable)),
            None => ("-".into(), "-".into()),
        };
        s += &format!(
            "| ({}) {} | {} | {}: {} | {}: {} | {diff} | {detect} | **{}** |\n",
            c.id,
            c.text,
            c.test.describe("a", "b"),
            side(&c.a),
            fmt_summary(&d.a),
            side(&c.b),
            fmt_summary(&d.b),
            d.verdict.label()
        );
    }
    let count = |v: Verdict| here.iter().filter(|d| d.verdict == v).count();
    s += &format!(
        "\nAt {budget} steps: {} of {} claims reproduced, {} reversed, {} inconclusive, {} not measured yet.\n",
        count(Verdict::Reproduced),
        here.len(),
        count(Verdict::Reversed),
        count(Verdict::Inconclusive),
        count(Verdict::Missing)
    );
    s
}

/// Each claim's difference and verdict per budget, side by side (the claims that change between
/// budgets are marked).
pub fn across_budgets(study: &Study, decisions: &[Decision]) -> String {
    let mut s = String::from("| claim |");
    for b in &study.budgets {
        s += &format!(" {b} steps |");
    }
    s += "\n|---|";
    s += &"---|".repeat(study.budgets.len());
    s += "\n";
    for c in &study.claims {
        let cells: Vec<&Decision> = decisions.iter().filter(|d| d.claim.id == c.id).collect();
        let verdicts: BTreeSet<&str> =
            cells.iter().filter(|d| d.verdict != Verdict::Missing).map(|d| d.verdict.label()).collect();
        let mark = if verdicts.len() > 1 { " (changes)" } else { "" };
        s += &format!("| ({}){mark} |", c.id);
        for b in &study.budgets {
            match cells.iter().find(|d| d.budget == *b) {
                Some(d) => match &d.welch {
                    Some(w) => {
                        s += &format!(" {:+.2} [{:+.2}, {:+.2}] {} |", w.diff, w.ci.0, w.ci.1, d.verdict.label())
                    }
                    None => s += &format!(" {} |", d.verdict.label()),
                },
                None => s += " not declared |",
            }
        }
        s += "\n";
    }
    s
}

/// The paper's tables at one budget: the paper's figures per row beside ours.
pub fn paper_tables(study: &Study, got: &Measurements, budget: usize) -> String {
    let mut s = String::new();
    let rfid = study.protocol.rfid;
    let finetunes = study.claims.iter().flat_map(|c| [&c.a, &c.b]).any(|m| matches!(m.metric, Metric::Finetune { .. }));
    for t in &study.tables {
        let (rfid_head, rfid_rule) = match rfid {
            Some(n) => (format!(" tokenizer rFID-{n} |"), "---|"),
            None => (String::new(), ""),
        };
        let (ft_head, ft_rule) = match finetunes {
            true => (" paper fine-tune | fine-tune (mean ± sd, n) | fine-tune from random init |", "---|---|---|"),
            false => ("", ""),
        };
        s += &format!(
            "#### {} ({budget} steps)\n\n| paper's row | arm | paper probe | probe (mean ± sd, n) | kNN | paper FID | FID |{rfid_head}{ft_head}\n\
             |---|---|---|---|---|---|---|{rfid_rule}{ft_rule}\n",
            t.title
        );
        for r in &t.rows {
            let m = |metric: Metric| got.get(&Measure { arm: r.arm.clone(), metric }, budget).to_vec();
            let fid = study
                .claims
                .iter()
                .flat_map(|c| [&c.a, &c.b])
                .find(|x| x.arm == r.arm && matches!(x.metric, Metric::Fid { .. }))
                .map(|x| m(x.metric.clone()))
                .unwrap_or_default();
            let opt = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
            let floor = match rfid {
                Some(_) => {
                    format!(" {} |", got.rfid.get(&r.arm).map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into()))
                }
                None => String::new(),
            };
            let finetuned = match finetunes {
                true => format!(
                    " {} | {} | {} |",
                    opt(r.paper_finetune),
                    fmt_summary(&Summary::of(&m(Metric::Finetune { random: false }))),
                    fmt_summary(&Summary::of(&m(Metric::Finetune { random: true })))
                ),
                false => String::new(),
            };
            s += &format!(
                "| {} | `{}` | {} | {} | {} | {} | {} |{floor}{finetuned}\n",
                r.row,
                r.arm,
                opt(r.paper_probe),
                fmt_summary(&Summary::of(&m(Metric::PROBE))),
                Summary::of(&m(Metric::Knn)).map(|x| format!("{:.2}", x.mean)).unwrap_or_else(|| "-".into()),
                opt(r.paper_fid),
                fmt_summary(&Summary::of(&fid)),
            );
        }
        s += "\n";
    }
    s
}

/// The sweeps at one budget.
pub fn sweeps(study: &Study, got: &Measurements, budget: usize) -> String {
    let mut s = String::new();
    for w in study.sweeps.iter().filter(|w| w.budgets.contains(&budget)) {
        s += &format!(
            "#### {} ({budget} steps, `{}`)\n\n| setting | probe (mean ± sd, n) |\n|---|---|\n",
            w.title, w.arm
        );
        for m in &w.metrics {
            let v = got.get(&Measure { arm: w.arm.clone(), metric: m.clone() }, budget);
            s += &format!("| {} | {} |\n", m.label(), fmt_summary(&Summary::of(v)));
        }
        s += "\n";
    }
    s
}

/// The commits (and library source hashes) of the stages that made the runs at `budget`.
pub fn budget_commits(got: &Measurements, budget: usize) -> String {
    let folder = format!("budget-{budget}");
    let commits: BTreeSet<String> = got
        .provenance
        .iter()
        .filter(|(dir, _)| dir.components().any(|c| c.as_os_str() == folder.as_str()))
        .map(|(_, p)| format!("{} (sources {})", p.commit_label(), p.src_hash))
        .collect();
    if commits.is_empty() {
        return String::new();
    }
    format!("Made by: {}.\n", commits.into_iter().collect::<Vec<_>>().join(", "))
}

/// The commits that made the runs, and a warning when the library sources differ between them.
pub fn provenance_section(got: &Measurements) -> String {
    let mut by: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut machines: BTreeSet<String> = BTreeSet::new();
    for (_, p) in &got.provenance {
        by.entry((p.commit_label(), p.src_hash.clone())).or_default().insert(p.stage.clone());
        machines.insert(format!("{} ({} threads, {})", p.cpu, p.threads, p.device));
    }
    let mut s = String::from("| commit | library source hash | stages |\n|---|---|---|\n");
    for ((commit, hash), stages) in &by {
        s += &format!("| {commit} | {hash} | {} |\n", stages.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    let hashes: BTreeSet<&String> = by.keys().map(|(_, h)| h).collect();
    if hashes.len() > 1 {
        s += &format!(
            "\n**Warning: these runs were made by {} different versions of the library sources** (`crates/ddmlab/src`); \
             their figures may not be comparable.\n",
            hashes.len()
        );
    }
    if by.keys().any(|(c, _)| c.ends_with("-dirty")) {
        s += "\n**Warning: some runs were made by a binary built from uncommitted sources.**\n";
    }
    s += &format!("\nMachines: {}.\n", machines.into_iter().collect::<Vec<_>>().join("; "));
    if !got.foreign.is_empty() {
        s += &format!(
            "\n{} run folders stamped by another study version were left out: {}.\n",
            got.foreign.len(),
            got.foreign.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", ")
        );
    }
    s
}

/// The whole report (markdown).
pub fn report(study: &Study, stamp: &Stamp, got: &Measurements) -> String {
    let decisions = decide(study, got);
    let mut s = format!(
        "# Study `{}`, version {}\n\n{}\n\nSeeds {:?}; budgets {:?} steps. Every claim is decided by the 95% Welch \
         interval of a - b: reproduced when it lies on the paper's side of the claim's boundary (0 for a > b; inside \
         ±margin for an equivalence; below the margin for a non-superiority), reversed when it lies on the other side, \
         inconclusive otherwise.\n\n## Verdicts per budget\n\n",
        study.name, stamp.hash, study.about, study.seeds, study.budgets
    );
    if let Some(m) = &study.protocol.mar {
        s.insert_str(
            s.find("## Verdicts per budget").expect("written above"),
            &format!(
                "Every MAR arm's FID samples with K = {} generation steps, {} head steps, temperature {}, unguided \
                 (EMA weights).\n\n",
                m.steps, m.head_steps, m.temperature
            ),
        );
    }
    if study.extend {
        s.insert_str(
            s.find("## Verdicts per budget").expect("written above"),
            "Each budget after the first trains the runs of the budget before on (the warm-up kept in steps).\n\n",
        );
    }
    for &b in &study.budgets {
        s += &budget_table(&decisions, b);
        s += &budget_commits(got, b);
        s += "\n";
    }
    s += "## Each claim across budgets\n\n";
    s += &across_budgets(study, &decisions);
    s += "\n## The paper's tables\n\n";
    for &b in &study.budgets {
        s += &paper_tables(study, got, b);
        s += &sweeps(study, got, b);
    }
    s += "## Provenance\n\n";
    s += &provenance_section(got);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Hypothesis;

    fn study() -> Study {
        Study::load("ladder").unwrap()
    }

    #[test]
    fn tallies_are_per_budget_and_every_declared_claim_appears_at_each_of_its_budgets() {
        let study = study();
        let mut got = Measurements::default();
        let c = &study.claims[0];
        let b0 = study.budgets[0];
        got.values.insert((c.a.clone(), b0), vec![85.0, 85.2, 85.1]);
        got.values.insert((c.b.clone(), b0), vec![84.0, 84.1, 83.9]);
        let decisions = decide(&study, &got);
        let declared: usize = study.claims.iter().map(|c| c.budgets.len()).sum();
        assert_eq!(decisions.len(), declared);
        let first = decisions.iter().find(|d| d.claim.id == c.id && d.budget == b0).unwrap();
        let expect = if c.test == Hypothesis::Greater { Verdict::Reproduced } else { first.verdict };
        assert_eq!(first.verdict, expect);
        for &b in &study.budgets {
            let table = budget_table(&decisions, b);
            let n = study.claims.iter().filter(|c| c.budgets.contains(&b)).count();
            assert!(table.contains(&format!("of {n} claims")), "{table}");
        }
        let later = decisions.iter().find(|d| d.claim.id == c.id && d.budget != b0).unwrap();
        assert_eq!(later.verdict, Verdict::Missing, "a budget's verdict reads only that budget's runs");
    }
}
