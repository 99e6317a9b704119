//! `ddmlab gen-eval`: FID (and optionally KID) of a generator run's checkpoints at several
//! guidance scales against a reference split, as a table, a JSON file and a curve over
//! training steps. A DiT-style run sweeps samplers and step counts; a MAR run sweeps its
//! generation steps `K`, head steps and temperatures ([`MarSweep`]).
//!
//! Samples are drawn class-balanced (image `i` has label `i mod classes`) and never written to
//! disk: they go from the sampler through the Inception network in memory. Reference features
//! are cached under `DATA/fid-cache/`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::fid::{FidSource, inception_features, source_features};
use super::frechet::{ReferenceStats, Stats, frechet_distance_to, kid};
use super::inception::{FEATURE_DIM, InceptionV3};
use super::precision_recall::{knn_radii, precision_recall_with_radii};
use super::row_sampler::{RowSampler, SamplerSetting};
use crate::atomic::write_atomic;

use crate::data::RawImage;
use crate::error::{Error, IoContext, Result};
use crate::generate::{SampleOptions, sample_images};
use crate::mar::{MarSampling, MarSpec, sample_mar_images};
use crate::models::mar::Mar;
use crate::store::checkpoint::{self, Checkpoints};
use crate::train::Observer;
use crate::train::run_folder;
use crate::train::trainer_state;
use crate::viz::plot::{Series, line_plot};

/// What [`gen_eval_run`] does.
#[derive(Debug, Clone)]
pub struct GenEvalOptions {
    pub data_root: PathBuf,
    /// The converted Inception weights.
    pub weights: PathBuf,
    pub checkpoints: Checkpoints,
    /// Guidance scales to evaluate.
    pub cfgs: Vec<f64>,
    /// Images sampled per (checkpoint, sampler, scale): FID-N.
    pub n: usize,
    /// Reference image sets, each with how many of its images to use (`None`: `n`, the
    /// paper's FID-N against N reference images; `Some(0)`: all of them, e.g. the full
    /// training split, whose features are cached once).
    pub references: Vec<(FidSource, Option<usize>)>,
    /// Samplers and step counts; every one is run at every scale (DiT-style runs).
    pub samplers: Vec<SamplerSetting>,
    /// What a MAR run sweeps instead of `samplers`.
    pub mar: MarSweep,
    pub seed: u64,
    /// Sampler chunk size.
    pub chunk: usize,
    /// Inception batch size.
    pub inception_batch: usize,
    pub ema: bool,
    pub kid: bool,
    /// Skip every point whose rows (against every reference) are already in `RUN/fid.json`:
    /// a killed sweep, rerun with the same settings, resumes at its first missing point.
    pub skip_measured: bool,
}

/// The sampling settings of a MAR run's gen-eval: every combination is run at every scale.
#[derive(Debug, Clone, PartialEq)]
pub struct MarSweep {
    /// Generation steps `K` (empty: the model's default, 64 or `L`).
    pub steps: Vec<usize>,
    /// DDPM steps of the Diffusion Loss head (the paper: 100).
    pub head_steps: Vec<usize>,
    /// Temperatures `tau` of the head's sampling noise.
    pub temperatures: Vec<f64>,
}

impl Default for MarSweep {
    fn default() -> Self {
        MarSweep { steps: vec![], head_steps: vec![100], temperatures: vec![1.0] }
    }
}

impl MarSweep {
    /// Every setting for a model of `spec` at guidance 1 (the scale is set per row), each
    /// checked (a bad `K` or temperature fails before anything is sampled).
    pub fn settings(&self, spec: &MarSpec) -> Result<Vec<MarSampling>> {
        let steps = if self.steps.is_empty() { vec![spec.default_steps()] } else { self.steps.clone() };
        if !spec.loss.denoises() && self.head_steps.len() > 1 {
            return Err(Error::config(
                "gen_eval.mar.head_steps",
                format!(
                    "{:?}: head DDPM steps apply to the Diffusion Loss head; a {} head predicts in one pass, \
                     expected one value",
                    self.head_steps,
                    spec.loss.name()
                ),
            ));
        }
        let mut out = Vec::new();
        for &steps in &steps {
            for &head_steps in &self.head_steps {
                for &temperature in &self.temperatures {
                    let s = MarSampling { steps, head_steps, temperature, cfg: 1.0 };
                    s.validate(spec)?;
                    out.push(s);
                }
            }
        }
        if out.is_empty() {
            return Err(Error::config("gen_eval.mar.temperatures", "at least one MAR sampling setting is needed"));
        }
        Ok(out)
    }
}

/// The neighbourhood size of precision / recall (the paper's and the reference code's).
pub const PR_K: usize = 3;

/// One measured point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FidRow {
    pub step: usize,
    pub cfg: f64,
    /// Stored as its label (`ddim-50`, `mar-64-head100-tau1`, ...).
    pub sampler: RowSampler,
    /// Generated images (and reference images).
    pub n: usize,
    pub reference: String,
    pub fid: f64,
    pub kid: Option<f64>,
    /// Improved precision and recall (k = 3) against the reference (absent in older files).
    #[serde(default)]
    pub precision: Option<f64>,
    #[serde(default)]
    pub recall: Option<f64>,
    /// EMA weights (true) or the raw trained weights.
    pub ema: bool,
    /// A MAR row's sampling temperature (absent for other samplers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The sampling seed (`gen-eval --seed`; 0 in older files): rows of two seeds are two
    /// measurements, which is how FID's sampling spread is measured.
    #[serde(default)]
    pub seed: u64,
}

impl FidRow {
    fn key(&self) -> (usize, String, String, usize, String, bool, u64) {
        (
            self.step,
            format!("{}", self.cfg),
            self.sampler.to_string(),
            self.n,
            self.reference.clone(),
            self.ema,
            self.seed,
        )
    }
}

/// Evaluate a run; merges the new rows into `RUN/fid.json` (a row replaces the one with the same
/// step, scale, sampler, count, reference, weights and sampling seed) and rewrites `fid.md` and `fid.png`
/// after every point, so a killed evaluation keeps the points it finished. Returns the merged
/// rows.
pub fn gen_eval_run(run: &Path, opts: &GenEvalOptions, device: &Device, obs: &mut dyn Observer) -> Result<Vec<FidRow>> {
    if opts.cfgs.is_empty() || opts.n < 2 || opts.samplers.is_empty() || opts.references.is_empty() {
        return Err(Error::config(
            "gen_eval.cfgs",
            "at least one guidance scale, sampler, reference and 2 images are needed",
        ));
    }
    let chosen = checkpoint::select(run, &opts.checkpoints)?;
    // A MAR setting the model cannot take fails before anything is loaded or sampled.
    for (_, ckpt) in &chosen {
        if let Some(spec) = MarSpec::of(&trainer_state::read_meta(ckpt)?.0) {
            opts.mar.settings(&spec)?;
        }
    }
    let net = InceptionV3::load(&opts.weights, device)?;
    let steps: Vec<String> = chosen.iter().map(|(s, _)| s.to_string()).collect();
    let detail = format!("FID-{}, steps {}, guidance {:?}", opts.n, steps.join(","), opts.cfgs);
    crate::store::provenance::record(run, &crate::store::provenance::Provenance::now("fid", detail, device))?;
    let started = std::time::Instant::now();
    struct Ref {
        label: String,
        features: Vec<f32>,
        stats: ReferenceStats,
        radii: Option<Vec<f32>>,
    }
    let mut references = Vec::new();
    for (source, count) in &opts.references {
        let want = count.unwrap_or(opts.n);
        let features = source_features(
            &net,
            source,
            &opts.data_root,
            &opts.data_root.join("fid-cache"),
            want,
            opts.inception_batch,
            device,
            &mut |n| obs.message(&format!("Inception features of {source} ({n} images, cached afterwards)")),
            &|_| (),
        )?;
        let n_ref = features.len() / FEATURE_DIM;
        if want > 0 && n_ref < want {
            obs.message(&format!("{source} holds {n_ref} images: the reference uses all of them"));
        }
        let label = if count.is_none() { source.to_string() } else { format!("{source} ({n_ref})") };
        let stats = ReferenceStats::new(Stats::of(&features, FEATURE_DIM));
        let radii = (n_ref > PR_K).then(|| knn_radii(&features, FEATURE_DIM, PR_K, device));
        references.push(Ref { label, features, stats, radii });
    }
    let fid_json = run.join("fid.json");
    let mut merged = read_rows(&fid_json)?;
    for (step, ckpt) in &chosen {
        let (config, _) = trainer_state::read_meta(ckpt)?;
        let tokenizer = run_folder::load_tokenizer(run, &config)?.bind(config.model.image, device);
        let classes = config.model.num_classes;
        let shape = config.model.image;
        let labels: Vec<usize> = if classes > 0 { (0..opts.n).map(|i| i % classes).collect() } else { vec![] };
        // Each point: its label, temperature and how to draw its images at a scale.
        type Draw<'a> = Box<dyn Fn(f64) -> Result<Vec<Vec<f32>>> + 'a>;
        let vit;
        let mar: Mar;
        let codebook = crate::mar::codebook::load_run_codebook(run, &config)?;
        let mut points: Vec<(RowSampler, Option<f64>, Draw)> = Vec::new();
        if let Some(spec) = MarSpec::of(&config) {
            let settings = opts.mar.settings(&spec)?;
            mar = trainer_state::load_weights(ckpt, run_folder::weights_file(opts.ema), &config, device)?;
            for setting in settings {
                let (mar, config, tokenizer, labels, book) =
                    (&mar, &config, tokenizer.as_ref(), &labels, codebook.as_ref());
                let draw = move |cfg: f64| {
                    let sampling = MarSampling { cfg, ..setting };
                    let chunking = (opts.seed, opts.chunk);
                    sample_mar_images(
                        mar,
                        book,
                        config,
                        tokenizer,
                        &sampling,
                        labels,
                        opts.n,
                        chunking,
                        device,
                        &mut |_| (),
                    )
                };
                let temperature = spec.loss.samples().then_some(setting.temperature);
                points.push((RowSampler::of_mar(spec.loss, &setting), temperature, Box::new(draw)));
            }
        } else {
            vit = run_folder::load_model(ckpt, &config, opts.ema, device)?;
            for sampler in &opts.samplers {
                let (vit, config, tokenizer, labels) = (&vit, &config, tokenizer.as_ref(), &labels);
                let draw = move |cfg: f64| {
                    let sample = SampleOptions {
                        kind: sampler.kind,
                        steps: sampler.steps,
                        cfg,
                        labels: labels.clone(),
                        n: opts.n,
                        seed: opts.seed,
                        chunk: opts.chunk,
                        clip_x0: true,
                    };
                    sample_images(vit, config, tokenizer, &sample, device, &|| ())
                };
                points.push((RowSampler::Diffusion(*sampler), None, Box::new(draw)));
            }
        }
        for (label, temperature, draw) in &points {
            for &cfg in &opts.cfgs {
                let point = |reference: &str| FidRow {
                    step: *step,
                    cfg,
                    sampler: *label,
                    n: opts.n,
                    reference: reference.to_string(),
                    fid: f64::NAN,
                    kid: None,
                    precision: None,
                    recall: None,
                    ema: opts.ema,
                    temperature: *temperature,
                    seed: opts.seed,
                };
                if opts.skip_measured
                    && references.iter().all(|r| merged.iter().any(|m| m.key() == point(&r.label).key()))
                {
                    obs.message(&format!("step {step} cfg {cfg} {label}: already in {}, skipped", fid_json.display()));
                    continue;
                }
                let mut rows = Vec::new();
                let t0 = std::time::Instant::now();
                let images: Vec<RawImage> = draw(cfg)?.iter().map(|img| RawImage::from_unit(img, shape)).collect();
                let sampled_s = t0.elapsed().as_secs_f64();
                let features = inception_features(&net, &images, opts.inception_batch, device, &|_| ());
                let stats = Stats::of(&features, FEATURE_DIM);
                for reference in &references {
                    let fid = frechet_distance_to(&stats, &reference.stats);
                    let kid = opts.kid.then(|| kid(&features, &reference.features, FEATURE_DIM, 100, 1000, 0).0);
                    let pr = reference.radii.as_ref().filter(|_| opts.n > PR_K).map(|radii| {
                        precision_recall_with_radii(&reference.features, radii, &features, FEATURE_DIM, PR_K, device)
                    });
                    let row = FidRow {
                        fid,
                        kid,
                        precision: pr.map(|p| p.precision),
                        recall: pr.map(|p| p.recall),
                        ..point(&reference.label)
                    };
                    obs.message(&format!(
                        "{} vs {}  (sampling {sampled_s:.0} s, {:.2} s/image; Inception {:.0} s; {:.0} s in all)",
                        format_row(&row),
                        row.reference,
                        sampled_s / opts.n as f64,
                        t0.elapsed().as_secs_f64() - sampled_s,
                        started.elapsed().as_secs_f64()
                    ));
                    rows.push(row);
                }
                merged = merge_rows(merged, rows);
                write_results(run, &merged)?;
            }
        }
    }
    Ok(merged)
}

/// Write `rows` (merged and sorted) as the run's `fid.json`, `fid.md` and its FID curves (over
/// training steps, guidance scale, sampling steps and temperature, each where it has two points).
pub fn write_results(run: &Path, rows: &[FidRow]) -> Result<()> {
    write_atomic(&run.join("fid.json"), serde_json::to_string_pretty(rows).expect("rows serialise").as_bytes())?;
    write_atomic(&run.join("fid.md"), format_table(rows).as_bytes())?;
    plot_fid(&run.join("fid.png"), rows)?;
    plot_fid_against(&run.join("fid-cfg.png"), rows, Axis::Guidance)?;
    plot_fid_against(&run.join("fid-steps.png"), rows, Axis::SamplingSteps)?;
    plot_fid_against(&run.join("fid-temperature.png"), rows, Axis::Temperature)
}

/// Rows of `RUN/fid.json` (none when the file does not exist).
pub fn read_rows(path: &Path) -> Result<Vec<FidRow>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).at(path)?;
    serde_json::from_str(&text).map_err(|e| Error::format(path, format!("not a FID result list ({e})")))
}

/// `old` with the rows of `new` added, re-measured ones replaced; sorted by sampler (kind, then
/// steps), count, scale and step.
pub fn merge_rows(old: Vec<FidRow>, new: Vec<FidRow>) -> Vec<FidRow> {
    let mut rows: Vec<FidRow> = old.into_iter().filter(|o| !new.iter().any(|n| n.key() == o.key())).collect();
    rows.extend(new);
    rows.sort_by(|a, b| {
        (a.sampler.order(), a.n, &a.reference, a.ema)
            .cmp(&(b.sampler.order(), b.n, &b.reference, b.ema))
            .then(a.cfg.total_cmp(&b.cfg))
            .then(a.step.cmp(&b.step))
            .then(a.seed.cmp(&b.seed))
    });
    rows
}

/// A row's sampler with its sampling seed where that is not the default 0.
fn sampler_with_seed(r: &FidRow) -> String {
    if r.seed == 0 { r.sampler.to_string() } else { format!("{} (seed {})", r.sampler, r.seed) }
}

/// One row as a line.
pub fn format_row(r: &FidRow) -> String {
    format!(
        "step {} cfg {} {} : FID-{} {:.2}{}{}",
        r.step,
        r.cfg,
        sampler_with_seed(r),
        r.n,
        r.fid,
        r.kid.map(|k| format!("  KID {k:.5}")).unwrap_or_default(),
        r.precision.zip(r.recall).map(|(p, q)| format!("  precision {p:.3} recall {q:.3}")).unwrap_or_default()
    )
}

/// The Markdown table of all rows.
pub fn format_table(rows: &[FidRow]) -> String {
    let mut s = String::from(
        "| step | cfg w | sampler | images | reference | weights | FID | KID | precision | recall |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let opt = |v: Option<f64>, digits: usize| v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "-".into());
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {} |\n",
            r.step,
            r.cfg,
            sampler_with_seed(r),
            r.n,
            r.reference,
            if r.ema { "EMA" } else { "raw" },
            r.fid,
            opt(r.kid, 5),
            opt(r.precision, 3),
            opt(r.recall, 3)
        );
    }
    s
}

/// FID over training steps, one line per (scale, sampler, count, reference).
pub fn plot_fid(path: &Path, rows: &[FidRow]) -> Result<()> {
    let mut series: Vec<Series> = Vec::new();
    for r in rows {
        let name = format!("w = {} ({}, FID-{} vs {})", r.cfg, sampler_with_seed(r), r.n, r.reference);
        add_point(&mut series, name, (r.step as f64, r.fid));
    }
    line_plot(path, "FID over training", "training step", "FID", &series, true)
}

fn add_point(series: &mut Vec<Series>, name: String, point: (f64, f64)) {
    match series.iter_mut().find(|s| s.name == name) {
        Some(s) => s.points.push(point),
        None => series.push(Series { name, points: vec![point] }),
    }
}

/// The x axis of [`plot_fid_against`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Axis {
    Guidance,
    SamplingSteps,
    /// MAR rows only: the head's sampling temperature.
    Temperature,
}

/// FID of the last evaluated training step against the guidance scale (one line per sampler),
/// the number of sampling steps (one line per sampler kind, temperature and scale) or a MAR
/// run's temperature (one line per `K` and scale), each per count and reference. Nothing is drawn (and an older plot is removed) unless some line has two points.
pub fn plot_fid_against(path: &Path, rows: &[FidRow], axis: Axis) -> Result<()> {
    let Some(last) = rows.iter().map(|r| r.step).max() else { return Ok(()) };
    let mut series: Vec<Series> = Vec::new();
    for r in rows.iter().filter(|r| r.step == last) {
        let (kind, steps) = (r.sampler.family(), r.sampler.steps());
        let seed = if r.seed == 0 { String::new() } else { format!(", seed {}", r.seed) };
        let weights = format!("{}{seed}", if r.ema { "" } else { ", raw" });
        let tau = r.temperature.map(|t| format!(" tau {t}")).unwrap_or_default();
        let (name, x) = match axis {
            Axis::Guidance => (format!("{} (FID-{} vs {}{weights})", r.sampler, r.n, r.reference), r.cfg),
            Axis::SamplingSteps => {
                // A diffusion sampler's cost is its network evaluations (Heun: 2 N - 1).
                let x = match r.sampler {
                    RowSampler::Diffusion(s) => s.kind.evaluations(s.steps),
                    RowSampler::Mar { .. } => steps,
                };
                (format!("{kind}{tau}, w = {} (FID-{} vs {}{weights})", r.cfg, r.n, r.reference), x as f64)
            }
            Axis::Temperature => match r.temperature {
                Some(t) => (format!("K = {steps}, w = {} (FID-{} vs {}{weights})", r.cfg, r.n, r.reference), t),
                None => continue,
            },
        };
        add_point(&mut series, name, (x, r.fid));
    }
    series.retain(|s| s.points.len() > 1);
    for s in &mut series {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    if series.is_empty() {
        if path.exists() {
            std::fs::remove_file(path).at(path)?;
        }
        return Ok(());
    }
    let (title, x) = match axis {
        Axis::Guidance => (format!("FID vs guidance scale (step {last})"), "guidance scale w"),
        // A MAR run's step count is its generation steps K (the head's steps are in the label).
        Axis::SamplingSteps if series.iter().all(|s| s.name.starts_with("mar")) => {
            (format!("FID vs generation steps K (step {last})"), "generation steps K")
        }
        Axis::SamplingSteps => {
            (format!("FID vs network evaluations (step {last})"), "network evaluations (a guided batch counts once)")
        }
        Axis::Temperature => (format!("FID vs temperature (step {last})"), "temperature tau"),
    };
    line_plot(path, &title, x, "FID", &series, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MarLoss;

    fn row(step: usize, cfg: f64, fid: f64) -> FidRow {
        FidRow {
            step,
            cfg,
            sampler: "ddim-50".parse().unwrap(),
            n: 5000,
            reference: "fashion-mnist:test".into(),
            fid,
            kid: None,
            precision: None,
            recall: None,
            ema: true,
            temperature: None,
            seed: 0,
        }
    }

    #[test]
    fn merging_replaces_remeasured_points_and_sorts_by_scale_then_step() {
        let old = vec![row(200, 1.0, 30.0), row(100, 1.0, 50.0), row(100, 2.0, 40.0)];
        let merged = merge_rows(old, vec![row(200, 1.0, 25.0), row(300, 1.0, 20.0)]);
        let got: Vec<(usize, f64, f64)> = merged.iter().map(|r| (r.step, r.cfg, r.fid)).collect();
        assert_eq!(got, vec![(100, 1.0, 50.0), (200, 1.0, 25.0), (300, 1.0, 20.0), (100, 2.0, 40.0)]);
    }

    #[test]
    fn two_sampling_seeds_are_two_points_and_older_files_read_as_seed_zero() {
        let old = vec![row(100, 1.0, 50.0)];
        let merged = merge_rows(old, vec![FidRow { seed: 1, ..row(100, 1.0, 51.0) }]);
        let got: Vec<(u64, f64)> = merged.iter().map(|r| (r.seed, r.fid)).collect();
        assert_eq!(got, vec![(0, 50.0), (1, 51.0)]);
        assert!(format_table(&merged).contains("ddim-50 (seed 1)"));
        let json = r#"[{"step": 100, "cfg": 1.0, "sampler": "ddim-50", "n": 5000, "reference": "fashion-mnist:test",
            "fid": 50.0, "kid": null, "ema": true}]"#;
        let read: Vec<FidRow> = serde_json::from_str(json).unwrap();
        assert_eq!(read, vec![row(100, 1.0, 50.0)]);
    }

    #[test]
    fn a_mar_row_label_names_only_the_settings_its_head_uses() {
        let spec = |loss| MarSpec {
            len: 16,
            token_dim: 2,
            null_class: 10,
            variant: crate::config::MarVariant::Mar,
            loss,
            learn_variance: false,
        };
        let sweep = MarSweep { steps: vec![8], head_steps: vec![100], temperatures: vec![0.9] };
        let labels = |loss| -> Vec<String> {
            sweep.settings(&spec(loss)).unwrap().iter().map(|s| RowSampler::of_mar(loss, s).to_string()).collect()
        };
        assert_eq!(labels(MarLoss::Diffusion), vec!["mar-8-head100-tau0.9"]);
        assert_eq!(labels(MarLoss::CrossEntropy), vec!["mar-8-tau0.9"]);
        // A regressor does not sample: no temperature but 1, and its label names neither.
        assert!(sweep.settings(&spec(MarLoss::L2)).unwrap_err().to_string().contains("mar_sampling.temperature"));
        let l2 = MarSweep { temperatures: vec![1.0], ..sweep.clone() };
        let got: Vec<String> = l2
            .settings(&spec(MarLoss::L2))
            .unwrap()
            .iter()
            .map(|s| RowSampler::of_mar(MarLoss::L2, s).to_string())
            .collect();
        assert_eq!(got, vec!["mar-8"]);
        // Several head step counts would be identical points of a one-pass head.
        let many = MarSweep { head_steps: vec![50, 100], ..sweep.clone() };
        assert!(
            many.settings(&spec(MarLoss::CrossEntropy)).unwrap_err().to_string().contains("gen_eval.mar.head_steps")
        );
        assert_eq!(many.settings(&spec(MarLoss::Diffusion)).unwrap().len(), 2);
    }

    #[test]
    fn samplers_sort_by_kind_then_step_count_as_a_number() {
        let rows: Vec<FidRow> = ["ddpm-25", "ddim-250", "ddim-100", "ddim-25", "ddim-50"]
            .iter()
            .map(|s| FidRow { sampler: s.parse().unwrap(), ..row(100, 1.5, 30.0) })
            .collect();
        let merged = merge_rows(Vec::new(), rows);
        let got: Vec<String> = merged.iter().map(|r| r.sampler.to_string()).collect();
        assert_eq!(got, vec!["ddim-25", "ddim-50", "ddim-100", "ddim-250", "ddpm-25"]);
    }

    #[test]
    fn guidance_and_step_curves_are_drawn_from_the_last_step_only_when_they_have_two_points() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg_png, steps_png) = (dir.path().join("cfg.png"), dir.path().join("steps.png"));
        // An earlier step with three scales, the last with one: no guidance curve.
        let rows = vec![row(100, 1.0, 50.0), row(100, 2.0, 40.0), row(100, 3.0, 45.0), row(200, 1.0, 30.0)];
        plot_fid_against(&cfg_png, &rows, Axis::Guidance).unwrap();
        assert!(!cfg_png.exists());
        let mut rows = vec![row(200, 1.0, 30.0), row(200, 2.0, 20.0)];
        plot_fid_against(&cfg_png, &rows, Axis::Guidance).unwrap();
        assert!(cfg_png.exists());
        plot_fid_against(&steps_png, &rows, Axis::SamplingSteps).unwrap();
        assert!(!steps_png.exists(), "one step count: no curve");
        rows.push(FidRow { sampler: "ddim-25".parse().unwrap(), ..row(200, 1.0, 35.0) });
        plot_fid_against(&steps_png, &rows, Axis::SamplingSteps).unwrap();
        assert!(steps_png.exists());
    }
}
