//! The ladder's results as the paper shows them: a table per paper table with the paper's
//! number beside ours (mean over seeds, each seed, kNN, FID), a chart per table, the encoder-depth
//! and probe-timestep ablations of the last rung, and a verdict per claim.
//!
//! A claim "A beats B" is *reproduced* when A's mean exceeds B's by more than the seed spread
//! (the sum of both rows' standard errors over seeds; for two seeds, half their range), *not
//! reproduced* when B's mean exceeds A's by more than it, and *inconclusive* otherwise. Everything
//! is read back from the run folders, so the report of a half-finished ladder shows what is done
//! and marks the rest as missing.

use std::path::Path;

use super::{FINAL_RUNG, Plan, members, run_dir};
use crate::atomic::write_atomic;
use crate::error::{Error, IoContext, Result};
use crate::eval::Pool;
use crate::eval::gen_eval;
use crate::eval::report::read_rows;
use crate::models::ladder::{Rung, Table, rungs};
use crate::tokenizer::FitReport;
use crate::viz::plot::{Bar, Series, bar_plot, line_plot};

/// The probe protocols the report reads: the ladder's, and the ablation settings of the sweeps.
#[derive(Debug, Clone, Default)]
pub struct Protocols {
    pub base: String,
    /// `(encoder depth, protocol)`.
    pub depth: Vec<(usize, String)>,
    /// `(t, protocol)` with the clean input.
    pub t_clean: Vec<(usize, String)>,
    /// `(t, protocol)` with the input noised at `t`.
    pub t_noisy: Vec<(usize, String)>,
}

/// One rung's measured values, one per seed that has them.
#[derive(Debug, Clone)]
pub struct RowResult {
    pub name: &'static str,
    pub about: &'static str,
    pub paper_row: &'static str,
    pub paper_probe: Option<f64>,
    pub paper_fid: Option<f64>,
    pub linear: Vec<f64>,
    pub knn: Vec<f64>,
    pub fid: Vec<f64>,
}

/// Mean of `v` (NaN when empty).
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
}

/// Standard error of the mean of `v`: the sample standard deviation (n - 1) over sqrt(n), 0 for
/// fewer than two values. For two seeds it is half their range, so a third and fourth seed narrow
/// it as they should (a range only ever widens with more seeds).
pub fn std_error(v: &[f64]) -> f64 {
    let n = v.len();
    if n < 2 {
        return 0.0;
    }
    let m = mean(v);
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64;
    (var / n as f64).sqrt()
}

fn fmt_values(v: &[f64]) -> String {
    match v.len() {
        0 => "-".into(),
        1 => format!("{:.2}", v[0]),
        _ => format!(
            "{:.2} ± {:.2} ({})",
            mean(v),
            std_error(v),
            v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

/// The linear-probe (and kNN) figures of `run` under `protocol` at `step`.
pub(super) fn probe_of(run: &Path, protocol: &str, step: usize) -> Result<Option<(f64, Option<f64>)>> {
    let rows = read_rows(&run.join("probe.json"))?;
    Ok(rows
        .iter()
        .find(|r| r.step == Some(step) && r.pool == Pool::Avg.label() && r.protocol == protocol)
        .map(|r| (r.linear, r.knn)))
}

/// The results of `rung` over the plan's seeds.
pub fn collect(out: &Path, plan: &Plan, rung: &Rung, protocol: &str) -> Result<RowResult> {
    let mut row = RowResult {
        name: rung.name,
        about: rung.about,
        paper_row: rung.paper_row,
        paper_probe: rung.paper_probe,
        paper_fid: rung.paper_fid,
        linear: vec![],
        knn: vec![],
        fid: vec![],
    };
    for &seed in &plan.seeds {
        let run = run_dir(out, rung.name, seed);
        if let Some((linear, knn)) = probe_of(&run, protocol, plan.steps)? {
            row.linear.push(linear);
            row.knn.extend(knn);
        }
        let fids = gen_eval::read_rows(&run.join("fid.json"))?;
        if let Some(f) = fids.iter().find(|r| r.step == plan.steps && r.cfg == 1.0 && r.ema) {
            row.fid.push(f.fid);
        }
    }
    Ok(row)
}

/// The markdown table of one paper table.
pub fn table_markdown(table: Table, rows: &[RowResult], plan: &Plan, with_fid: bool) -> String {
    let mut s = format!(
        "Table {} on {} ({} steps per rung, seeds {:?}): linear probe / kNN top-1 (%) on avg-pooled encoder tokens{}; \
         the paper's figures are ImageNet, DiT-L, 400 epochs.\n\n",
        table.number(),
        plan.data,
        plan.steps,
        plan.seeds,
        if with_fid {
            ", FID (DDIM-50, no guidance, EMA) against the test split for the rungs the paper gives one"
        } else {
            ""
        }
    );
    s += "| rung | paper's row | paper probe | ours: linear probe (mean ± s.e., per seed) | kNN | paper FID | FID |\n";
    s += "|---|---|---|---|---|---|---|\n";
    for r in rows {
        s += &format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.paper_row,
            fmt_opt(r.paper_probe),
            fmt_values(&r.linear),
            if r.knn.is_empty() { "-".into() } else { format!("{:.2}", mean(&r.knn)) },
            fmt_opt(r.paper_fid),
            if r.fid.is_empty() { "-".into() } else { fmt_values(&r.fid) },
        );
    }
    s
}

/// How a claim fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Reproduced,
    NotReproduced,
    Inconclusive,
    /// A row it needs has no result yet.
    Missing,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not reproduced",
            Verdict::Inconclusive => "inconclusive (inside the seed spread, or one seed)",
            Verdict::Missing => "not measured yet",
        }
    }
}

/// The seed spread that a difference between rows `a` and `b` must exceed to count.
fn seed_spread(a: &[f64], b: &[f64]) -> f64 {
    std_error(a) + std_error(b)
}

/// `a > b` judged against the seed spread; with the evidence as text.
pub fn judge_higher(a: &[f64], b: &[f64]) -> (Verdict, f64) {
    if a.is_empty() || b.is_empty() {
        return (Verdict::Missing, f64::NAN);
    }
    let diff = mean(a) - mean(b);
    let spread = seed_spread(a, b);
    let verdict = if a.len() < 2 || b.len() < 2 {
        // One seed says nothing about the spread.
        Verdict::Inconclusive
    } else if diff > spread {
        Verdict::Reproduced
    } else if -diff > spread {
        Verdict::NotReproduced
    } else {
        Verdict::Inconclusive
    };
    (verdict, diff)
}

fn find<'a>(rows: &'a [RowResult], name: &str) -> Option<&'a RowResult> {
    rows.iter().find(|r| r.name == name)
}

fn values<'a>(rows: &'a [RowResult], name: &str) -> &'a [f64] {
    find(rows, name).map(|r| r.linear.as_slice()).unwrap_or(&[])
}

/// One claim's line.
struct Claim {
    letter: char,
    text: &'static str,
    verdict: Verdict,
    evidence: String,
}

fn higher_claim(letter: char, text: &'static str, rows: &[RowResult], a: &str, b: &str) -> Claim {
    let (va, vb) = (values(rows, a), values(rows, b));
    let (verdict, diff) = judge_higher(va, vb);
    let evidence = if va.is_empty() || vb.is_empty() {
        let missing: Vec<String> =
            [(a, va), (b, vb)].iter().filter(|(_, v)| v.is_empty()).map(|(n, _)| format!("`{n}`")).collect();
        format!("needs {}", missing.join(" and "))
    } else {
        format!(
            "`{a}` {} vs `{b}` {}: {diff:+.2} points (seed spread {:.2})",
            fmt_values(va),
            fmt_values(vb),
            seed_spread(va, vb)
        )
    };
    Claim { letter, text, verdict, evidence }
}

/// A rung's name and its per-seed values.
type Named<'a> = (&'a str, &'a [f64]);

/// The best `(label, values)` of `names`.
fn best<'a>(rows: &'a [RowResult], names: &[&'a str]) -> Option<Named<'a>> {
    names
        .iter()
        .filter_map(|n| find(rows, n).filter(|r| !r.linear.is_empty()).map(|r| (*n, r.linear.as_slice())))
        .max_by(|a, b| mean(a.1).total_cmp(&mean(b.1)))
}

/// Removing class conditioning raises the probe, from `cond` to `uncond` (claims (a) and (i)),
/// with the FID change beside it.
fn class_conditioning_claim(letter: char, text: &'static str, rows: &[RowResult], uncond: &str, cond: &str) -> Claim {
    let mut claim = higher_claim(letter, text, rows, uncond, cond);
    let fid = |name| find(rows, name).map(|r| r.fid.clone()).unwrap_or_default();
    let (fc, fu) = (fid(cond), fid(uncond));
    if !fc.is_empty() && !fu.is_empty() {
        claim.evidence += &format!("; FID {:.1} -> {:.1} (the paper: worse, 11.6 -> 30.9)", mean(&fc), mean(&fu));
    }
    claim
}

/// The conv KL-VAE rungs of Table 1, in the paper's order: the class-conditional DiT, no class
/// conditioning, no perceptual loss, no adversarial loss (a plain VAE), the linear-gamma^2
/// schedule.
const CONV_VAE_CHAIN: [&str; 5] = [
    "ladder-t1-kl-dit",
    "ladder-t1-kl-uncond",
    "ladder-t1-kl-no-perceptual",
    "ladder-t1-kl-no-adversarial",
    "ladder-t1-kl-gamma2",
];

fn claims(rows: &[RowResult], depth: &[(usize, Vec<f64>)]) -> Vec<Claim> {
    // (a), (b) are Table 1's changes, judged where the paper makes them: on its own tokenizer,
    // the conv KL-VAE (rows 1 -> 2 and 4 -> 5). The same changes on patch PCA are claims (i), (j).
    let chain = CONV_VAE_CHAIN;
    let mut out = vec![
        class_conditioning_claim(
            'a',
            "removing class conditioning raises the probe (conv VAE, the paper's Table 1 tokenizer)",
            rows,
            chain[1],
            chain[0],
        ),
        higher_claim(
            'b',
            "the linear-gamma^2 schedule raises the probe (conv VAE, from the plain VAE row)",
            rows,
            chain[4],
            chain[3],
        ),
    ];

    // (c) Inverted U over d for patch PCA, and a collapse at d = D (pixels).
    let pca = ["ladder-t2-pca-d2", "ladder-t2-pca-d4", "ladder-t1-gamma2", "ladder-t2-pca-d16", "ladder-t2-pca-d32"];
    let curve: Vec<(&str, &[f64])> = pca.iter().map(|n| (*n, values(rows, n))).collect();
    let (verdict, evidence) = if curve.iter().any(|c| c.1.is_empty()) || values(rows, "ladder-t2-pixels-p7").is_empty()
    {
        (Verdict::Missing, "needs every PCA size and the pixels p=7 rung".to_string())
    } else {
        let means: Vec<f64> = curve.iter().map(|c| mean(c.1)).collect();
        let peak = (0..means.len()).max_by(|&i, &j| means[i].total_cmp(&means[j])).expect("five sizes");
        let (left, _) = judge_higher(curve[peak].1, curve[0].1);
        let (right, _) = judge_higher(curve[peak].1, curve[curve.len() - 1].1);
        let (collapse, gap) = judge_higher(curve[peak].1, values(rows, "ladder-t2-pixels-p7"));
        let interior = peak > 0 && peak + 1 < means.len();
        let shape = interior && left == Verdict::Reproduced && right == Verdict::Reproduced;
        let flat_or_monotone = !interior && left != Verdict::Inconclusive && right != Verdict::Inconclusive;
        let verdict = if shape && collapse == Verdict::Reproduced {
            Verdict::Reproduced
        } else if flat_or_monotone || collapse == Verdict::NotReproduced {
            Verdict::NotReproduced
        } else {
            Verdict::Inconclusive
        };
        let d = [2, 4, 8, 16, 32];
        (
            verdict,
            format!(
                "PCA probe by d: {}; peak at d={}; pixels d=D=49 {} ({gap:+.2} below the peak)",
                d.iter().zip(&means).map(|(d, m)| format!("d={d} {m:.2}")).collect::<Vec<_>>().join(", "),
                d[peak],
                fmt_values(values(rows, "ladder-t2-pixels-p7"))
            ),
        )
    };
    out.push(Claim {
        letter: 'c',
        text: "probe vs latent dim is an inverted U, collapsing at d = D (pixels)",
        verdict,
        evidence,
    });

    // (d) PCA ~ AE ~ VAE at their best d.
    let fams = [
        ("PCA", pca.to_vec()),
        ("AE", vec!["ladder-t2-ae-d4", "ladder-t2-ae-d8", "ladder-t2-ae-d16"]),
        ("VAE", vec!["ladder-t2-vae-d4", "ladder-t2-vae-d8", "ladder-t2-vae-d16"]),
    ];
    let bests: Vec<(&str, Option<Named>)> = fams.iter().map(|(f, n)| (*f, best(rows, n))).collect();
    let (verdict, evidence) = if bests.iter().any(|b| b.1.is_none()) {
        (Verdict::Missing, "needs every tokenizer family".to_string())
    } else {
        let got: Vec<(&str, &str, &[f64])> =
            bests.iter().map(|(f, b)| (*f, b.expect("checked").0, b.expect("checked").1)).collect();
        let means: Vec<f64> = got.iter().map(|g| mean(g.2)).collect();
        let (lo, hi) = means.iter().fold((f64::MAX, f64::MIN), |(a, b), &m| (a.min(m), b.max(m)));
        let spread: f64 = got.iter().map(|g| std_error(g.2)).fold(0.0, f64::max) * 2.0;
        // "About equal": within a point, or within the seed spread.
        let verdict = if hi - lo <= spread.max(1.0) { Verdict::Reproduced } else { Verdict::NotReproduced };
        (
            verdict,
            format!(
                "best of each: {}; range {:.2} points (tolerance: 1 point or the seed spread {spread:.2})",
                got.iter().map(|g| format!("{} `{}` {:.2}", g.0, g.1, mean(g.2))).collect::<Vec<_>>().join(", "),
                hi - lo
            ),
        )
    };
    out.push(Claim { letter: 'd', text: "patch PCA ~ patch AE ~ patch VAE at their best d", verdict, evidence });

    out.push(higher_claim(
        'e',
        "predicting the original image (w_res = 0.1) >= predicting the decoded latent",
        rows,
        "ladder-t3-ldae",
        "ladder-t3-image-output",
    ));
    out.push(higher_claim(
        'f',
        "multi-level noise beats a single level",
        rows,
        "ladder-t3-ldae",
        "ladder-t3-single-level",
    ));

    // (g) The best encoder depth is about half the blocks.
    let (verdict, evidence) = if depth.is_empty() || depth.iter().any(|(_, v)| v.is_empty()) {
        (Verdict::Missing, "needs the encoder-depth sweep of the last rung".to_string())
    } else {
        let blocks = depth.len();
        let peak = depth.iter().max_by(|a, b| mean(&a.1).total_cmp(&mean(&b.1))).expect("non-empty");
        let half = blocks as f64 / 2.0;
        let near = (peak.0 as f64 - half).abs() <= 1.0;
        let at_half = depth.iter().find(|(d, _)| *d == blocks / 2).map(|(_, v)| v.as_slice()).unwrap_or(&[]);
        let (vs_half, _) = judge_higher(&peak.1, at_half);
        let verdict = if near {
            Verdict::Reproduced
        } else if vs_half == Verdict::Inconclusive {
            Verdict::Inconclusive
        } else {
            Verdict::NotReproduced
        };
        (
            verdict,
            format!(
                "probe by encoder depth: {}; best {} of {blocks} blocks",
                depth.iter().map(|(d, v)| format!("{d}: {:.2}", mean(v))).collect::<Vec<_>>().join(", "),
                peak.0
            ),
        )
    };
    out.push(Claim { letter: 'g', text: "the best encoder depth is about half the blocks", verdict, evidence });
    out.push(higher_claim(
        'h',
        "l-DAE beats a pixel-space DAE of the same network",
        rows,
        "ladder-t3-ldae",
        "ladder-t3-pixel-dae",
    ));
    out.extend(further_claims(rows, &pca));
    out
}

/// Table 1's changes on patch PCA (claims i, j), FID down the conv VAE's Table 1 (claim k) and
/// Table 2's conv VAE row (claim l).
fn further_claims(rows: &[RowResult], pca: &[&str]) -> Vec<Claim> {
    let chain = CONV_VAE_CHAIN;
    let mut out = vec![
        class_conditioning_claim(
            'i',
            "on patch PCA, removing class conditioning raises the probe",
            rows,
            "ladder-t1-uncond",
            "ladder-t1-dit",
        ),
        higher_claim(
            'j',
            "on patch PCA, the linear-gamma^2 schedule raises the probe",
            rows,
            "ladder-t1-gamma2",
            "ladder-t1-uncond",
        ),
    ];
    // (k) FID worsens down Table 1: every row's FID at least the row before's, up to the spread.
    let fids: Vec<Vec<f64>> = chain.iter().map(|n| find(rows, n).map(|r| r.fid.clone()).unwrap_or_default()).collect();
    let (verdict, evidence) = if fids.iter().any(Vec::is_empty) {
        (Verdict::Missing, "needs the FID of every conv-VAE row of Table 1".to_string())
    } else {
        let steps: Vec<Verdict> = fids.windows(2).map(|w| judge_higher(&w[1], &w[0]).0).collect();
        let verdict = if steps.contains(&Verdict::NotReproduced) {
            Verdict::NotReproduced
        } else if judge_higher(&fids[4], &fids[0]).0 == Verdict::Reproduced {
            Verdict::Reproduced
        } else {
            Verdict::Inconclusive
        };
        (
            verdict,
            format!(
                "FID-1K down the table: {} (the paper: 11.6, 30.9, 54.3, 75.6, 93.2)",
                fids.iter().map(|f| format!("{:.1}", mean(f))).collect::<Vec<_>>().join(" -> ")
            ),
        )
    };
    out.push(Claim { letter: 'k', text: "FID worsens down Table 1 (conv VAE)", verdict, evidence });
    // (l) The conv VAE is no better than the patch-wise tokenizers.
    let conv = best(rows, &["ladder-t2-kl-d4", "ladder-t1-kl-gamma2", "ladder-t2-kl-d16"]);
    let mut patch_wise: Vec<&str> = pca.to_vec();
    patch_wise.extend([
        "ladder-t2-ae-d4",
        "ladder-t2-ae-d8",
        "ladder-t2-ae-d16",
        "ladder-t2-vae-d4",
        "ladder-t2-vae-d8",
        "ladder-t2-vae-d16",
    ]);
    let (verdict, evidence) = match (conv, best(rows, &patch_wise)) {
        (Some(c), Some(p)) => {
            let (above, diff) = judge_higher(c.1, p.1);
            let verdict = match above {
                Verdict::Reproduced => Verdict::NotReproduced,
                Verdict::NotReproduced => Verdict::Reproduced,
                other => other,
            };
            // Equal within the spread is "no better" too.
            let verdict = if verdict == Verdict::Inconclusive && c.1.len() > 1 { Verdict::Reproduced } else { verdict };
            (
                verdict,
                format!(
                    "best conv VAE `{}` {} vs best patch-wise `{}` {}: {diff:+.2} points",
                    c.0,
                    fmt_values(c.1),
                    p.0,
                    fmt_values(p.1)
                ),
            )
        }
        _ => (Verdict::Missing, "needs the conv VAE row and the patch-wise rows of Table 2".to_string()),
    };
    out.push(Claim {
        letter: 'l',
        text: "the conv VAE is no better than the patch-wise tokenizers",
        verdict,
        evidence,
    });
    out
}

/// The fitted tokenizers of the ladder: held-out reconstruction error per kind and latent size,
/// with the error at the start of training for the trained ones.
fn tokenizer_table(out: &Path) -> Result<String> {
    let mut reports: Vec<(String, FitReport)> = Vec::new();
    let dir = out.join("tokenizers");
    if dir.is_dir() {
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let path = entry.at(&dir)?.path().join("tokenizer-fit.json");
            if path.exists() {
                let text = std::fs::read_to_string(&path).at(&path)?;
                let report: FitReport =
                    serde_json::from_str(&text).map_err(|e| Error::format(&path, format!("not a fit report ({e})")))?;
                let key = path
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                reports.push((key, report));
            }
        }
    }
    reports.sort_by(|a, b| (&a.1.kind, a.1.latent_dim).cmp(&(&b.1.kind, b.1.latent_dim)));
    let mut s = String::from(
        "Held-out reconstruction error of each fitted tokenizer (mean squared error per pixel in [-1, 1] units; PCA: \
         the variance its kept components leave out, for every d of the ladder; AE / VAE: at the start and \
         end of training).\n\n| tokenizer | d | error at start | error fitted | fit time (s) |\n|---|---|---|---|---|\n",
    );
    for (key, r) in &reports {
        if r.kind == "pca" {
            // One PCA serves every d: the error of each is the variance its components leave out.
            let pca = crate::tokenizer::PatchPca::load(&dir.join(key).join("pca.safetensors"))?;
            for d in [2, 4, 8, 16, 32].into_iter().filter(|&d| d <= pca.dim()) {
                let err = pca.eigenvalues[d..].iter().sum::<f64>() / pca.dim() as f64;
                s += &format!("| pca (`{key}`) | {d} | - | {err:.5} | {:.1} |\n", r.seconds);
            }
            continue;
        }
        let start = if r.curve.len() > 1 { format!("{:.5}", r.curve[0].1) } else { "-".into() };
        s += &format!(
            "| {} (`{key}`) | {} | {start} | {:.5} | {:.1} |\n",
            r.kind, r.latent_dim, r.reconstruction_mse, r.seconds
        );
    }
    // The conv VAEs' own evaluation: PSNR and rFID of their last checkpoint on the test split.
    let mut conv = String::new();
    for (key, r) in reports.iter().filter(|(_, r)| r.kind == "conv-vae") {
        let folder = crate::train::run_folder::conv_vae_run(&dir.join(key));
        if let Some(last) = crate::train::tokenizer_run::read_recon(&folder)?.last() {
            conv += &format!(
                "| `{key}` | {} | {} | {} | {:.5} | {:.2} | {} |\n",
                r.latent_dim,
                last.step,
                last.n,
                last.mse,
                last.psnr,
                last.rfid.map(|f| format!("{f:.2}")).unwrap_or_else(|| "-".into())
            );
        }
    }
    if !conv.is_empty() {
        s += "\nConv VAEs on the test split (posterior mean; rFID against the same originals):\n\n\
              | tokenizer | d | step | images | MSE | PSNR (dB) | rFID |\n|---|---|---|---|---|---|---|\n";
        s += &conv;
    }
    Ok(s)
}

/// Write every table, chart, the ablations and the verdicts into `out`, and `deconstruct.md`
/// with all of them.
pub fn write_all(out: &Path, plan: &Plan, with_fid: bool, protocols: &Protocols) -> Result<()> {
    let all = rungs();
    let mut everything: Vec<RowResult> = Vec::new();
    let mut doc = String::from("# The deconstruction ladder\n\n");
    for table in [Table::One, Table::Two, Table::Three] {
        let rows: Vec<RowResult> = members(table)
            .iter()
            .map(|n| collect(out, plan, all.iter().find(|r| r.name == *n).expect("a rung"), &protocols.base))
            .collect::<Result<_>>()?;
        let md = table_markdown(table, &rows, plan, with_fid);
        write_atomic(&out.join(format!("table-{}.md", table.number())), md.as_bytes())?;
        doc += &format!(
            "## Table {}\n\n{md}\n![table {}](table-{}.png)\n\n",
            table.number(),
            table.number(),
            table.number()
        );
        let bars: Vec<Bar> = rows
            .iter()
            .filter(|r| !r.linear.is_empty())
            .map(|r| Bar {
                label: format!("{} (paper {})", r.name.trim_start_matches("ladder-"), fmt_opt(r.paper_probe)),
                value: mean(&r.linear),
                points: r.linear.clone(),
            })
            .collect();
        if !bars.is_empty() {
            bar_plot(
                &out.join(format!("table-{}.png", table.number())),
                &format!("Table {}: linear probe, {} ({} steps per rung)", table.number(), plan.data, plan.steps),
                "linear-probe top-1 (%)",
                &bars,
            )?;
        }
        for r in rows {
            if !everything.iter().any(|e| e.name == r.name) {
                everything.push(r);
            }
        }
    }

    // The ablations of the last rung.
    let sweep = |list: &[(usize, String)]| -> Result<Vec<(usize, Vec<f64>)>> {
        list.iter()
            .map(|(k, protocol)| {
                let mut v = Vec::new();
                for &seed in &plan.seeds {
                    if let Some((linear, _)) = probe_of(&run_dir(out, FINAL_RUNG, seed), protocol, plan.steps)? {
                        v.push(linear);
                    }
                }
                Ok((*k, v))
            })
            .collect()
    };
    let depth = sweep(&protocols.depth)?;
    let t_clean = sweep(&protocols.t_clean)?;
    let t_noisy = sweep(&protocols.t_noisy)?;
    let mut abl = format!(
        "Probe ablations of `{FINAL_RUNG}` (no retraining; linear probe top-1, mean ± standard error over seeds). The paper \
         (24 blocks): encoder depth 9..15 gives 58.5 62.0 64.1 64.5 63.6 61.9 59.7, best at half; noisy input at t = \
         10..40 gives 65.0.\n\n| encoder depth | linear probe |\n|---|---|\n"
    );
    for (d, v) in &depth {
        abl += &format!("| {d} | {} |\n", fmt_values(v));
    }
    abl += "\n| probe t | clean input | noisy input |\n|---|---|---|\n";
    for (t, v) in &t_clean {
        let noisy = t_noisy.iter().find(|(k, _)| k == t).map(|(_, v)| fmt_values(v)).unwrap_or_else(|| "-".into());
        abl += &format!("| {t} | {} | {noisy} |\n", fmt_values(v));
    }
    write_atomic(&out.join("ablations.md"), abl.as_bytes())?;
    let series = |name: &str, list: &[(usize, Vec<f64>)]| Series {
        name: name.into(),
        points: list.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (*k as f64, mean(v))).collect(),
    };
    let depth_series = series("linear probe", &depth);
    if depth_series.points.len() >= 2 {
        line_plot(
            &out.join("ablation-depth.png"),
            "l-DAE: probe vs encoder depth",
            "blocks read as the encoder",
            "top-1 (%)",
            &[depth_series],
            false,
        )?;
    }
    let t_series = [series("clean input", &t_clean), series("noisy input", &t_noisy)];
    if t_series.iter().all(|s| s.points.len() >= 2) {
        line_plot(
            &out.join("ablation-t.png"),
            "l-DAE: probe vs probe timestep",
            "t (of 1000)",
            "top-1 (%)",
            &t_series,
            false,
        )?;
    }
    doc += &format!("## Ablations of the last rung\n\n{abl}\n![depth](ablation-depth.png) ![t](ablation-t.png)\n\n");

    let tokenizers = tokenizer_table(out)?;
    write_atomic(&out.join("tokenizers.md"), tokenizers.as_bytes())?;
    doc += &format!("## Tokenizers\n\n{tokenizers}\n");

    let claims = claims(&everything, &depth);
    let mut verdicts = String::from("| claim | verdict | evidence |\n|---|---|---|\n");
    for c in &claims {
        verdicts += &format!("| ({}) {} | **{}** | {} |\n", c.letter, c.text, c.verdict.label(), c.evidence);
    }
    let count = |range: std::ops::RangeInclusive<char>| {
        let of: Vec<&Claim> = claims.iter().filter(|c| range.contains(&c.letter)).collect();
        (of.iter().filter(|c| c.verdict == Verdict::Reproduced).count(), of.len())
    };
    let (paper, paper_n) = count('a'..='h');
    let (conv, conv_n) = count('i'..='l');
    verdicts += &format!(
        "\n{paper} of the paper's {paper_n} claims (a-h) reproduced; {conv} of {conv_n} more (i-l: Table 1's changes on \
         patch PCA, FID down Table 1, the conv VAE against the patch-wise tokenizers).\n"
    );
    write_atomic(&out.join("verdicts.md"), verdicts.as_bytes())?;
    doc += &format!("## The paper's claims\n\n{verdicts}");
    write_atomic(&out.join("deconstruct.md"), doc.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_counts_only_outside_the_seed_spread() {
        assert_eq!(judge_higher(&[80.0, 81.0], &[78.0, 78.4]).0, Verdict::Reproduced);
        assert_eq!(judge_higher(&[80.0, 81.0], &[80.2, 80.6]).0, Verdict::Inconclusive);
        assert_eq!(judge_higher(&[77.0, 77.2], &[80.0, 80.4]).0, Verdict::NotReproduced);
        assert_eq!(judge_higher(&[], &[80.0]).0, Verdict::Missing);
        assert_eq!(judge_higher(&[90.0], &[80.0]).0, Verdict::Inconclusive, "one seed has no spread");
        assert_eq!(std_error(&[3.0]), 0.0, "one seed has no spread");
        // Two seeds: half the range; more: sd / sqrt(n) (mean 2, sample variance 1, n = 4).
        assert!((std_error(&[80.0, 81.0]) - 0.5).abs() < 1e-12);
        assert!((std_error(&[1.0, 3.0, 2.0 + 0.5f64.sqrt(), 2.0 - 0.5f64.sqrt()]) - 0.5).abs() < 1e-12);
    }

    /// A measured rung with only its name and linear-probe values.
    fn row(name: &'static str, linear: Vec<f64>) -> RowResult {
        RowResult {
            name,
            about: "",
            paper_row: "",
            paper_probe: None,
            paper_fid: None,
            linear,
            knn: vec![],
            fid: vec![],
        }
    }

    #[test]
    fn a_claim_whose_rungs_are_not_measured_names_them_instead_of_a_nan_difference() {
        let rows = vec![row("a", vec![80.0, 81.0]), row("b", vec![])];
        let claim = higher_claim('x', "a beats b", &rows, "a", "b");
        assert_eq!(claim.verdict, Verdict::Missing);
        assert_eq!(claim.evidence, "needs `b`");
        let claim = higher_claim('x', "a beats c", &rows, "c", "b");
        assert_eq!(claim.evidence, "needs `c` and `b`");
    }

    #[test]
    fn table_1_claims_a_b_read_the_conv_vae_rows_and_i_j_the_patch_pca_rows() {
        // The conv VAE's changes raise the probe, patch PCA's lower it: each claim must follow
        // its own tokenizer's rows.
        let rows = vec![
            row("ladder-t1-kl-dit", vec![80.0, 80.2]),
            row("ladder-t1-kl-uncond", vec![82.0, 82.2]),
            row("ladder-t1-kl-no-adversarial", vec![81.0, 81.2]),
            row("ladder-t1-kl-gamma2", vec![83.0, 83.2]),
            row("ladder-t1-dit", vec![84.0, 84.2]),
            row("ladder-t1-uncond", vec![82.0, 82.2]),
            row("ladder-t1-gamma2", vec![80.0, 80.2]),
        ];
        let all = claims(&rows, &[]);
        let verdict = |letter| all.iter().find(|c| c.letter == letter).unwrap().verdict;
        assert_eq!([verdict('a'), verdict('b')], [Verdict::Reproduced; 2]);
        assert_eq!([verdict('i'), verdict('j')], [Verdict::NotReproduced; 2]);
    }
}
