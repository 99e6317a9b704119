//! The study's charts and the fitted tokenizers' table; the verdicts and tables themselves are
//! `study::verdicts`.
//!
//! - `OUT/budget-<steps>/table-<i>.png`: the linear probe of each row of the study's `i`-th paper
//!   table at that budget (mean over seeds, each seed a point), the paper's figure in the label.
//! - `OUT/budget-<steps>/sweep-<i>.png`: each sweep's probe against its setting.
//! - `OUT/tokenizers.md`: the held-out reconstruction error of every fitted tokenizer.

use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::study::verdicts::Measurements;
use crate::study::{Measure, Metric, Study};
use crate::tokenizer::FitReport;
use crate::viz::plot::{Bar, Series, bar_plot, line_plot};

/// The charts of every budget.
pub fn write_charts(out: &Path, study: &Study, got: &Measurements) -> Result<()> {
    for &budget in &study.budgets {
        let dir = out.join(format!("budget-{budget}"));
        for (i, table) in study.tables.iter().enumerate() {
            let bars: Vec<Bar> = table
                .rows
                .iter()
                .filter_map(|r| {
                    let v = got.get(&Measure { arm: r.arm.clone(), metric: Metric::PROBE }, budget);
                    (!v.is_empty()).then(|| Bar {
                        label: format!(
                            "{} (paper {})",
                            r.arm.trim_start_matches("ladder-"),
                            r.paper_probe.map(|p| format!("{p:.1}")).unwrap_or_else(|| "-".into())
                        ),
                        value: v.iter().sum::<f64>() / v.len() as f64,
                        points: v.to_vec(),
                    })
                })
                .collect();
            if !bars.is_empty() {
                std::fs::create_dir_all(&dir).at(&dir)?;
                bar_plot(
                    &dir.join(format!("table-{}.png", i + 1)),
                    &format!("{} ({budget} steps)", table.title),
                    "linear-probe top-1 (%)",
                    &bars,
                )?;
            }
        }
        for (i, sweep) in study.sweeps.iter().enumerate().filter(|(_, s)| s.budgets.contains(&budget)) {
            // One line per kind of setting: depth, clean t, noisy t.
            let mut lines: Vec<Series> = Vec::new();
            for m in &sweep.metrics {
                let Metric::Probe { depth, t, noisy } = m else { continue };
                let (name, x) = match (depth, t) {
                    (Some(d), _) => ("encoder depth".to_string(), *d as f64),
                    (None, Some(t)) => {
                        (if *noisy { "noisy input, t" } else { "clean input, t" }.to_string(), *t as f64)
                    }
                    (None, None) => continue,
                };
                let v = got.get(&Measure { arm: sweep.arm.clone(), metric: m.clone() }, budget);
                if v.is_empty() {
                    continue;
                }
                let y = v.iter().sum::<f64>() / v.len() as f64;
                match lines.iter_mut().find(|s| s.name == name) {
                    Some(s) => s.points.push((x, y)),
                    None => lines.push(Series { name, points: vec![(x, y)] }),
                }
            }
            if lines.iter().any(|s| s.points.len() >= 2) {
                std::fs::create_dir_all(&dir).at(&dir)?;
                line_plot(
                    &dir.join(format!("sweep-{}.png", i + 1)),
                    &format!("{} ({budget} steps)", sweep.arm),
                    "setting",
                    "top-1 (%)",
                    &lines,
                    false,
                )?;
            }
        }
    }
    Ok(())
}

/// The fitted tokenizers of the ladder: held-out reconstruction error per kind and latent size,
/// with the error at the start of training for the trained ones.
pub fn tokenizer_table(out: &Path) -> Result<String> {
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
        if let Some(last) = crate::runs::tokenizer::read_recon(&folder)?.last() {
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
