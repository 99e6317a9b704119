//! `ddmlab deconstruct`: a declared study (`study`) of ladder rungs or presets run, measured
//! and reported in one folder, resumable at any point.
//!
//! ```text
//! OUT/study.json                         the study and version (hash) the folder belongs to
//! OUT/study.toml                         the declaration it runs
//! OUT/tokenizers/<fit key>/              each fitted tokenizer once, shared by every arm naming it
//!                                        (with its rFID, `recon-nN.json`, when the protocol asks)
//! OUT/budget-<steps>/runs/<arm>/seed-<s>/ an ordinary run folder (config, checkpoints, probe.json,
//!                                        fid.json, provenance.jsonl) stamped with the study version
//! OUT/report.md                          verdicts per budget, claims across budgets, the paper's
//!                                        tables, sweeps, provenance (`study::verdicts`)
//! OUT/budget-<steps>/table-<i>.png       the probe of each paper table's rows, per budget
//! OUT/tokenizers.md                      the fitted tokenizers' reconstruction errors
//! ```
//!
//! Runs are made in the study's fixed order: every arm at the first budget, then the next
//! budget (so a partial result is never a selection of the claims that went well). A run whose
//! measurements are all there is not touched again; a killed command resumes each unfinished
//! run from its last checkpoint; a folder of another study version is refused. In a study that
//! extends, a run at a later budget starts as a copy of the finished run of the budget before
//! (its measurements left behind) and trains on to its steps.

pub mod report;
pub mod slurm;
pub mod task;

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::config::{FinetuneInit, RunConfig};
use crate::data::Split;
use crate::error::{Error, IoContext, Result};
use crate::eval::fid::FidSource;
use crate::eval::gen_eval::{self, GenEvalOptions, MarSweep};
use crate::eval::report::{self as probe_report, Checkpoints, ProbeOptions};
use crate::eval::{Pool, ProbeConfig};
use crate::runs::{PretrainOptions, pretrain};
use crate::store::checkpoint;
use crate::study::verdicts::{self, run_dir};
use crate::study::{Metric, PlannedRun, Stamp, Study};
use crate::train::{Observer, run_folder};

/// What `deconstruct` runs.
#[derive(Debug, Clone)]
pub struct DeconstructOptions {
    pub study: Study,
    pub out: PathBuf,
    pub data_root: PathBuf,
    /// The FID Inception weights (needed when the study measures an FID).
    pub inception: Option<PathBuf>,
    /// Stop cleanly after this many minutes (continue by running the command again).
    pub stop_after_minutes: Option<f64>,
    /// Write the report from what is measured, and run nothing.
    pub report_only: bool,
}

/// The probe options of a probe metric (avg-pool, full splits, EMA weights).
pub fn probe_options(study: &Study, data_root: &Path, metric: &Metric) -> ProbeOptions {
    let (t, depth, noisy) = match metric {
        Metric::Probe { depth, t, noisy } => (*t, *depth, *noisy),
        _ => (None, None, false),
    };
    let epochs = study.protocol.probe_epochs;
    ProbeOptions {
        data_root: data_root.to_path_buf(),
        checkpoints: Checkpoints::Latest,
        pools: vec![Pool::Avg],
        probe: ProbeConfig {
            epochs,
            warmup_epochs: (epochs / 10).max(1).min(epochs.saturating_sub(1)),
            ..Default::default()
        },
        knn_k: study.protocol.knn_k,
        knn_flat: false,
        baselines: false,
        ema: true,
        train_limit: 0,
        test_limit: 0,
        batch_size: 500,
        t,
        encoder_depth: depth,
        noisy,
    }
}

/// The GenEval options of an FID-`n` measurement of a run of `config` (DDIM-50, or a MAR run's
/// sampling as the study's protocol declares it; no guidance, EMA, against the test split).
pub fn fid_options(
    study: &Study,
    config: &RunConfig,
    data_root: &Path,
    weights: &Path,
    n: usize,
) -> Result<GenEvalOptions> {
    let mar = match (&config.mar, &study.protocol.mar) {
        (Some(_), Some(p)) => p.sweep(),
        _ => MarSweep::default(),
    };
    Ok(GenEvalOptions {
        data_root: data_root.to_path_buf(),
        weights: weights.to_path_buf(),
        checkpoints: Checkpoints::Latest,
        cfgs: vec![1.0],
        n,
        references: vec![("fashion-mnist:test".parse::<FidSource>()?, None)],
        samplers: vec![crate::study::FID_SAMPLER],
        mar,
        seed: 0,
        chunk: 125,
        inception_batch: 25,
        ema: true,
        kid: false,
        skip_measured: false,
    })
}

/// Minutes left before the stop time (`None`: no limit).
fn minutes_left(deadline: Option<std::time::Instant>) -> Option<f64> {
    deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()).as_secs_f64() / 60.0)
}

/// Whether the run's latest checkpoint is its last step.
fn finished(run: &Path) -> Result<bool> {
    match checkpoint::latest(run)? {
        Some(ckpt) => {
            let state: checkpoint::CheckpointState = checkpoint::read_state(&ckpt)?;
            Ok(state.step >= state.total_steps)
        }
        None => Ok(false),
    }
}

/// The probe-protocol string of every probe metric, for this data set's split sizes.
struct Protocols {
    train_n: usize,
    test_n: usize,
}

impl Protocols {
    fn of(&self, study: &Study, data_root: &Path, metric: &Metric) -> String {
        probe_options(study, data_root, metric).protocol(self.train_n, self.test_n)
    }
}

/// The measurements of `run` still missing from its folder.
fn missing(
    run: &PlannedRun,
    dir: &Path,
    study: &Study,
    opts: &DeconstructOptions,
    p: &Protocols,
) -> Result<Vec<Metric>> {
    let probes = probe_report::read_rows(&dir.join("probe.json"))?;
    let fids = gen_eval::read_rows(&dir.join("fid.json"))?;
    let mut out = Vec::new();
    for m in &run.metrics {
        let have = match m {
            Metric::Knn => true, // measured with the default probe
            Metric::Probe { .. } => {
                let key = p.of(study, &opts.data_root, m);
                probes
                    .iter()
                    .any(|r| r.step == Some(run.config.train.steps) && r.pool == Pool::Avg.label() && r.protocol == key)
            }
            Metric::Fid { n } => {
                let sampler = study.fid_sampler(&run.config);
                fids.iter().any(|r| {
                    r.step == run.config.train.steps && r.n == *n && r.cfg == 1.0 && r.ema && r.sampler == sampler
                })
            }
            Metric::Rfid { .. } => true, // a tokenizer study's metric, not measured on ladder runs
            Metric::Finetune { .. } => {
                let folder = m.finetune_folder().expect("a fine-tuning metric");
                crate::eval::top1::final_top1(&dir.join(folder))?.is_some()
            }
        };
        if !have {
            out.push(m.clone());
        }
    }
    Ok(out)
}

/// Run, measure and report a ladder study.
pub fn deconstruct(opts: &DeconstructOptions, device: &Device, obs: &mut dyn Observer) -> Result<()> {
    let session = Session::open(opts, !opts.report_only)?;
    let mut stopped = false;
    if !opts.report_only {
        for run in &session.plan {
            if session.out_of_time() {
                stopped = true;
                break;
            }
            let Some((dir, todo)) = session.prepare(run)? else { continue };
            if !session.train(run, &dir, true, device, obs)? {
                stopped = true;
                break;
            }
            if !session.measure_rfid(&run.config, device, obs)? || !session.measure(run, &dir, &todo, device, obs)? {
                stopped = true;
                break;
            }
            session.report()?;
        }
    }
    if stopped {
        obs.message("stopped at the time limit; run the same command again to continue");
    }
    session.report()
}

/// Stamp `opts.out` for the study's version (refused when it holds another's) and write the
/// declaration (`study.toml`) its tasks load, checking the data and weights it needs.
pub fn claim_folder(opts: &DeconstructOptions) -> Result<()> {
    Session::open(opts, true).map(|_| ())
}

/// A study opened on its folder: its version, its planned runs, the probe protocols of its data
/// and the time to stop. Every way of running a study (the local loop above, a scheduler's
/// [`task`]) does its work through these steps, so they make the same runs.
pub(crate) struct Session<'a> {
    pub opts: &'a DeconstructOptions,
    pub stamp: Stamp,
    pub plan: Vec<PlannedRun>,
    protocols: Protocols,
    deadline: Option<std::time::Instant>,
}

impl<'a> Session<'a> {
    /// Open the study on `opts.out`. `claim`: stamp an empty folder for this version and write
    /// the declaration (`study.toml`); otherwise the folder must hold this version already (a
    /// scheduler's task, or the report).
    pub fn open(opts: &'a DeconstructOptions, claim: bool) -> Result<Session<'a>> {
        let study = &opts.study;
        let stamp = Stamp { study: study.name.clone(), hash: study.hash()? };
        let plan = study.plan()?;
        if claim {
            stamp.check_folder(&opts.out)?;
            crate::atomic::write_atomic(&opts.out.join("study.toml"), study.to_toml().as_bytes())?;
        } else if Stamp::read(&opts.out)?.as_ref() != Some(&stamp) {
            return Err(Error::config(
                "study",
                format!("{} holds no runs of study `{}` version {}", opts.out.display(), stamp.study, stamp.hash),
            ));
        }
        let needs_fid = plan.iter().any(|r| r.metrics.iter().any(|m| matches!(m, Metric::Fid { .. })))
            || study.protocol.rfid.is_some();
        if needs_fid && opts.inception.is_none() && !opts.report_only {
            return Err(Error::config(
                "inception",
                format!(
                    "study `{}` measures FID: the Inception weights are needed (`ddmlab data fetch inception`)",
                    study.name
                ),
            ));
        }
        let first = &plan[0].config;
        let protocols = Protocols {
            train_n: run_folder::load_split(first, &opts.data_root, Split::Train)?.len(),
            test_n: run_folder::load_split(first, &opts.data_root, Split::Test)?.len(),
        };
        let deadline =
            opts.stop_after_minutes.map(|m| std::time::Instant::now() + std::time::Duration::from_secs_f64(m * 60.0));
        Ok(Session { opts, stamp, plan, protocols, deadline })
    }

    fn out_of_time(&self) -> bool {
        minutes_left(self.deadline).is_some_and(|m| m <= 0.0)
    }

    /// The folder of `run` and the measurements it still lacks, stamped with this version;
    /// `None` when it has them all. A folder of another version is refused.
    pub fn prepare(&self, run: &PlannedRun) -> Result<Option<(PathBuf, Vec<Metric>)>> {
        let dir = run_dir(&self.opts.out, run.budget, &run.arm, run.seed);
        if let Some(other) = Stamp::read(&dir)?.filter(|s| *s != self.stamp) {
            return Err(Error::config(
                "study",
                format!(
                    "{} belongs to study `{}` version {}, not {}",
                    dir.display(),
                    other.study,
                    other.hash,
                    self.stamp.hash
                ),
            ));
        }
        let todo = missing(run, &dir, &self.opts.study, self.opts, &self.protocols)?;
        if todo.is_empty() {
            return Ok(None);
        }
        self.stamp.write(&dir)?;
        Ok(Some((dir, todo)))
    }

    /// Train `run` in `dir` to its last step (from its checkpoint, or from the finished run of
    /// the budget before in a study that extends), its tokenizer from the shared cache (fitted
    /// there first when `fit`, else it must be there). `false` when stopped at the time limit.
    pub fn train(
        &self,
        run: &PlannedRun,
        dir: &Path,
        fit: bool,
        device: &Device,
        obs: &mut dyn Observer,
    ) -> Result<bool> {
        if finished(dir)? {
            return Ok(true);
        }
        let opts = self.opts;
        if fit {
            if !self.fit(&run.arm, &run.config, device, obs)? {
                return Ok(false);
            }
        } else {
            let cache = verdicts::tokenizer_dir(&opts.out, &run.config);
            let path = run_folder::tokenizer_path(&cache, &run.config);
            if !path.exists() {
                return Err(Error::config(
                    "study",
                    format!(
                        "{}: the tokenizer of {} is not fitted (its fit task comes first)",
                        path.display(),
                        run.arm
                    ),
                ));
            }
        }
        if checkpoint::latest(dir)?.is_none() {
            continue_previous_budget(&opts.study, &opts.out, run, dir)?;
        }
        copy_shared_tokenizer(&opts.out, &run.config, dir)?;
        obs.message(&format!(
            "{} seed {} at {} steps: training ({} steps)",
            run.arm, run.seed, run.budget, run.config.train.steps
        ));
        let train_opts = PretrainOptions {
            data_root: opts.data_root.clone(),
            resume: checkpoint::latest(dir)?.is_some(),
            stop_after_steps: None,
            stop_after_minutes: minutes_left(self.deadline),
            init_from: None,
            extend_to: Some(run.config.train.steps),
            sample_grids: true,
        };
        pretrain(run.config.clone(), dir, &train_opts, device, obs)?;
        if !finished(dir)? {
            return Ok(false);
        }
        prune_checkpoints(dir)?;
        Ok(true)
    }

    /// Fit the tokenizer of `config` into the shared cache unless it is there (`false`: stopped
    /// at the time limit).
    pub fn fit(&self, arm: &str, config: &RunConfig, device: &Device, obs: &mut dyn Observer) -> Result<bool> {
        fit_shared_tokenizer(&self.opts.out, arm, config, self.opts, minutes_left(self.deadline), device, obs)
    }

    /// The rFID of `config`'s tokenizer when the protocol declares one and it has none yet
    /// (`false`: out of time before it).
    pub fn measure_rfid(&self, config: &RunConfig, device: &Device, obs: &mut dyn Observer) -> Result<bool> {
        let Some(n) = self.opts.study.protocol.rfid.filter(|_| verdicts::has_rfid(config)) else { return Ok(true) };
        if self.out_of_time() {
            return Ok(false);
        }
        let weights = self.opts.inception.as_ref().expect("checked when opened");
        measure_rfid(&self.opts.out, config, n, &self.opts.data_root, weights, device, obs)?;
        Ok(true)
    }

    /// Measure `todo` on the trained run in `dir` (`false`: out of time before one of them).
    pub fn measure(
        &self,
        run: &PlannedRun,
        dir: &Path,
        todo: &[Metric],
        device: &Device,
        obs: &mut dyn Observer,
    ) -> Result<bool> {
        let (study, opts) = (&self.opts.study, self.opts);
        for m in todo {
            if self.out_of_time() {
                return Ok(false);
            }
            match m {
                Metric::Probe { .. } => {
                    probe_report::probe_run(dir, &probe_options(study, &opts.data_root, m), device, obs)?;
                }
                Metric::Fid { n } => {
                    let weights = opts.inception.as_ref().expect("checked when opened");
                    let fid = fid_options(study, &run.config, &opts.data_root, weights, *n)?;
                    gen_eval::gen_eval_run(dir, &fid, device, obs)?;
                }
                Metric::Finetune { random } => {
                    let out = dir.join(m.finetune_folder().expect("a fine-tuning metric"));
                    let epochs = study.protocol.finetune_epochs.map(|e| format!("train.epochs={e}"));
                    let finetune = crate::runs::finetune::FinetuneOptions {
                        source: dir.to_path_buf(),
                        init: if *random { FinetuneInit::Random } else { FinetuneInit::Pretrained },
                        data_root: opts.data_root.clone(),
                        overrides: epochs.into_iter().collect(),
                        seed: run.seed,
                        resume: checkpoint::latest(&out)?.is_some(),
                        stop_after_minutes: minutes_left(self.deadline),
                    };
                    crate::runs::finetune::finetune(&out, &finetune, device, obs)?;
                    if crate::eval::top1::final_top1(&out)?.is_none() {
                        return Ok(false);
                    }
                    prune_checkpoints(&out)?;
                }
                Metric::Knn | Metric::Rfid { .. } => {}
            }
        }
        Ok(true)
    }

    /// Read every measurement back and write the report and charts.
    pub fn report(&self) -> Result<()> {
        write_report(self.opts, &self.stamp, &self.protocols)
    }
}

/// Read every measurement back and write the report and charts.
fn write_report(opts: &DeconstructOptions, stamp: &Stamp, protocols: &Protocols) -> Result<()> {
    let study = &opts.study;
    let protocol = |m: &Metric| protocols.of(study, &opts.data_root, m);
    let got = verdicts::measure(study, &opts.out, stamp, &protocol)?;
    crate::atomic::write_atomic(&opts.out.join("report.md"), verdicts::report(study, stamp, &got).as_bytes())?;
    report::write_charts(&opts.out, study, &got)?;
    let tokenizers = report::tokenizer_table(&opts.out)?;
    crate::atomic::write_atomic(&opts.out.join("tokenizers.md"), tokenizers.as_bytes())
}

/// Adopt a fitted tokenizer folder (`tokenizers/<fit key>/` as another study or the repository
/// keeps it) into the study's shared cache, instead of fitting it again: only a folder whose name
/// is one of the study's fit keys, and only when the cache has none. `commit` names the code that
/// fitted it (recorded in its provenance, which every run reading it copies).
pub fn reuse_tokenizer(out: &Path, study: &Study, folder: &Path, commit: &str) -> Result<bool> {
    let key = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let keys = study.tokenizer_keys()?;
    if !keys.contains(&key) {
        return Err(Error::config(
            "tokenizer",
            format!(
                "{}: not a tokenizer of study `{}` (its fit keys: {})",
                folder.display(),
                study.name,
                keys.join(", ")
            ),
        ));
    }
    let target = out.join("tokenizers").join(&key);
    if target.exists() {
        return Ok(false);
    }
    let tmp = out.join("tokenizers").join(format!(".{key}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).at(&tmp)?;
    }
    copy_files(folder, &tmp, &|_| true)?;
    let record = crate::store::provenance::Provenance {
        commit: commit.into(),
        dirty: false,
        src_hash: "unrecorded".into(),
        ..crate::store::provenance::Provenance::now(
            "tokenizer",
            format!("reused from {}", folder.display()),
            &"unrecorded",
        )
    };
    crate::store::provenance::record(&tmp, &record)?;
    std::fs::rename(&tmp, &target).at(&target)?;
    Ok(true)
}

/// Fit the tokenizer of `config` into the shared cache unless it is there; `false` when a
/// conv VAE's training stopped at the time limit.
fn fit_shared_tokenizer(
    out: &Path,
    arm: &str,
    config: &RunConfig,
    opts: &DeconstructOptions,
    stop_after_minutes: Option<f64>,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<bool> {
    let cache = verdicts::tokenizer_dir(out, config);
    if run_folder::tokenizer_path(&cache, config).exists() {
        return Ok(true);
    }
    std::fs::create_dir_all(&cache).at(&cache)?;
    obs.message(&format!("{arm}: fitting {} (shared by every arm that names it)", config.denoise.tokenizer.label(1)));
    let set = run_folder::load_split(config, &opts.data_root, Split::Train)?;
    let fit = crate::runs::FitOptions { data_root: &opts.data_root, stop_after_minutes };
    Ok(crate::runs::load_or_fit_tokenizer(&cache, config, &set, fit, device, obs)?.is_some())
}

/// In a study that extends, start the run at a later budget from the finished run of the
/// budget before (same arm and seed), copied with its last checkpoint, config, metrics,
/// tokenizer and provenance, but none of its measurements: training it on is the longer run.
/// Without that run (an arm the earlier budget did not need), the run trains from its first
/// step with the same schedule, which is the same run.
fn continue_previous_budget(study: &Study, out: &Path, run: &PlannedRun, dir: &Path) -> Result<()> {
    let Some(i) = study.budgets.iter().position(|b| *b == run.budget).filter(|i| study.extend && *i > 0) else {
        return Ok(());
    };
    let prev = run_dir(out, study.budgets[i - 1], &run.arm, run.seed);
    if !finished(&prev)? {
        return Ok(());
    }
    let ckpt = checkpoint::latest(&prev)?.expect("a finished run has a checkpoint");
    let saved: RunConfig = run_folder::read_config(&prev)?;
    let mut on = saved.clone();
    on.train = saved.train.extended_to(run.config.train.steps)?;
    if on != run.config {
        let changed = crate::config::changed_fields(&on, &run.config);
        return Err(Error::config(
            "study",
            format!(
                "{} trained on to {} steps is not the study's run at that budget (differs in {}); the study changed \
                 since it ran: run the new version into a new folder",
                prev.display(),
                run.config.train.steps,
                changed.iter().map(|c| c.key.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    // The measurements (`fid.*`, `fid-*.png`, `probe.*`) and the stamp stay with the earlier run.
    let measurement = |name: &str| name.starts_with("fid") || name.starts_with("probe") || name == "study.json";
    copy_files(&prev, dir, &|name| !measurement(name))?;
    let name = ckpt.file_name().expect("a checkpoint folder has a name");
    let target = dir.join("checkpoints").join(name);
    let tmp = dir.join("checkpoints").join(".copy.partial");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).at(&tmp)?;
    }
    copy_files(&ckpt, &tmp, &|_| true)?;
    std::fs::rename(&tmp, &target).at(&target)?;
    crate::atomic::write_atomic(&dir.join("checkpoints").join("latest"), name.to_string_lossy().as_bytes())
}

/// Copy the files (not the folders) of `from` whose names `keep` accepts into `to` (created).
fn copy_files(from: &Path, to: &Path, keep: &dyn Fn(&str) -> bool) -> Result<()> {
    std::fs::create_dir_all(to).at(to)?;
    for entry in std::fs::read_dir(from).at(from)? {
        let path = entry.at(from)?.path();
        let name = path.file_name().expect("an entry has a name").to_string_lossy().into_owned();
        if path.is_file() && keep(&name) {
            let target = to.join(&name);
            std::fs::copy(&path, &target).at(&target)?;
        }
    }
    Ok(())
}

/// The rFID of `config`'s tokenizer on the first `n` test images, measured once in its shared
/// folder (the floor of every generator in its latent: the decoder of the data's own codes).
fn measure_rfid(
    out: &Path,
    config: &RunConfig,
    n: usize,
    data_root: &Path,
    weights: &Path,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<()> {
    let cache = verdicts::tokenizer_dir(out, config);
    let table = verdicts::rfid_table(n);
    if crate::runs::tokenizer::read_recon_table(&cache, &table)?.iter().any(|r| r.n == n && r.rfid.is_some()) {
        return Ok(());
    }
    obs.message(&format!("{}: rFID on {n} test images", config.denoise.tokenizer.label(config.model.image.channels)));
    let plain = device.clone().without_autodiff();
    let tokenizer = run_folder::load_tokenizer(&cache, config)?.bind(config.model.image, &plain);
    let test = run_folder::load_split(config, data_root, Split::Test)?;
    let net = crate::eval::inception::InceptionV3::load(weights, &plain)?;
    let recon = |x| tokenizer.decode(tokenizer.encode(x));
    crate::runs::tokenizer::evaluate_reconstruction(&cache, &table, &test, n, 0, Some(&net), &plain, &recon)?;
    Ok(())
}

/// Copy the shared tokenizer (with its fit report and provenance) into `run` unless it is there.
fn copy_shared_tokenizer(out: &Path, config: &RunConfig, run: &Path) -> Result<()> {
    let target = run_folder::tokenizer_path(run, config);
    if target.exists() {
        return Ok(());
    }
    let cache = verdicts::tokenizer_dir(out, config);
    let from = run_folder::tokenizer_path(&cache, config);
    std::fs::copy(&from, &target).at(&target)?;
    let report = run_folder::fit_report_path(&cache);
    if report.exists() {
        let to = run_folder::fit_report_path(run);
        std::fs::copy(&report, &to).at(&to)?;
    }
    for p in crate::store::provenance::read(&cache)? {
        crate::store::provenance::record(
            run,
            &crate::store::provenance::Provenance { detail: format!("{} (shared)", p.detail), ..p },
        )?;
    }
    Ok(())
}

/// Remove every checkpoint of a finished run but the last (what the measurements read).
fn prune_checkpoints(run: &Path) -> Result<()> {
    let Some(latest) = checkpoint::latest(run)? else { return Ok(()) };
    for (_, dir) in checkpoint::list(run)? {
        if dir != latest {
            std::fs::remove_dir_all(&dir).at(&dir)?;
        }
    }
    Ok(())
}
