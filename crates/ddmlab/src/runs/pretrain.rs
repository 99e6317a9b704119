//! The training loop with its run folder (any objective: l-DAE pretraining, DDPM / DiT).
//!
//! The run folder's files are listed in `run_folder`; the config's total steps are fixed there
//! once known, the tokenizer is fitted (or loaded) before the first step.
//! Resuming restores model, EMA and optimizer state from `checkpoints/latest`; batches and noise
//! are pure functions of `(seed, step)`, so the resumed loss trajectory equals the uninterrupted
//! one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;

use crate::config::RunConfig;
use crate::data::loader::{BatchPlan, Loader};
use crate::data::{ImageSet, Split};
use crate::error::{Error, IoContext, Result};
use crate::mar::codebook::load_or_fit_run_codebook;
use crate::mar::objective::MarTrainObjective;
use crate::models::DenoisingVit;
use crate::models::mar::Mar;
use crate::optim::lr::lr_at;
use crate::train::checkpoint::{self, CheckpointState};
use crate::train::metrics::{self, MetricLine};
use crate::train::objective::TrainObjective;
use crate::train::observer::{Observer, StepReport};
use crate::train::run_folder;
use crate::train::step::{Network, Objective, Trainer};
use crate::viz::plot::{Series, line_plot};

/// How to run (not part of the run's identity, so not in the config).
#[derive(Debug, Clone)]
pub struct PretrainOptions {
    /// Where `fashion-mnist` and `mnist` live.
    pub data_root: PathBuf,
    /// Continue from `checkpoints/latest` instead of refusing a non-empty run folder.
    pub resume: bool,
    /// Stop (with a checkpoint) once this many steps are done in total; for tests and sessions.
    pub stop_after_steps: Option<usize>,
    /// Stop (with a checkpoint) after this many minutes of this invocation.
    pub stop_after_minutes: Option<f64>,
    /// Start a fresh run from these PyTorch weights (model and EMA) instead of a random
    /// initialisation; they are saved as checkpoint 0 before the first step.
    pub init_from: Option<(PathBuf, crate::train::interop::Layout)>,
}

/// What a run reached.
#[derive(Debug, Clone)]
pub struct PretrainSummary {
    pub run: PathBuf,
    pub step: usize,
    pub total_steps: usize,
    pub last_loss: f64,
    pub img_per_s: f64,
    /// Every loss, one per step run in this invocation.
    pub losses: Vec<f64>,
}

/// Load the training split of a config's data set (with `train_limit` applied).
pub fn load_train_set(config: &RunConfig, data_root: &Path) -> Result<ImageSet> {
    run_folder::load_split(config, data_root, Split::Train)
}

/// Pretrain (or resume) the run in folder `run`.
pub fn pretrain(
    config: RunConfig,
    run: &Path,
    opts: &PretrainOptions,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<PretrainSummary> {
    let cfg_path = run_folder::config_path(run);
    let resume_from = if opts.resume { checkpoint::latest(run)? } else { None };
    let config = match (&resume_from, opts.resume && cfg_path.exists()) {
        (Some(ckpt), _) => checkpoint::read_meta(ckpt)?.0,
        (None, true) => RunConfig::from_toml(&std::fs::read_to_string(&cfg_path).at(&cfg_path)?, &cfg_path)?,
        (None, false) => config,
    };
    config.validate()?;
    if config.mar.is_some() && opts.init_from.is_some() {
        return Err(Error::config(
            "pretrain.init_from",
            "imports DiT / l-DAE weights; a MAR run ([mar] section) starts from its own initialisation",
        ));
    }
    if !opts.resume && checkpoint::latest(run)?.is_some() {
        return Err(Error::config(
            "out",
            format!(
                "{} already holds a run with checkpoints; pass --resume to continue it or choose another folder",
                run.display()
            ),
        ));
    }
    std::fs::create_dir_all(run).at(run)?;
    crate::atomic::write_atomic(&cfg_path, config.to_toml().as_bytes())?;
    let from = resume_from.as_ref().map(|c| checkpoint::read_meta(c).map(|m| m.1.step)).transpose()?.unwrap_or(0);
    let detail = format!("steps {from}..{}", config.train.steps);
    crate::provenance::record(run, &crate::provenance::Provenance::now("train", detail, device))?;

    let set = Arc::new(load_train_set(&config, &opts.data_root)?);
    obs.message(&format!("data: {} train images of {} from {}", set.len(), set.shape, config.data));
    let fit = crate::runs::FitOptions { data_root: &opts.data_root, stop_after_minutes: opts.stop_after_minutes };
    let Some(tokenizer) = crate::runs::load_or_fit_tokenizer(run, &config, &set, fit, device, obs)? else {
        obs.message("stopped after the time limit while training the tokenizer; continue with --resume");
        return Ok(PretrainSummary {
            run: run.to_path_buf(),
            step: 0,
            total_steps: config.train.steps,
            last_loss: f64::NAN,
            img_per_s: 0.0,
            losses: Vec::new(),
        });
    };
    let plan =
        BatchPlan { seed: config.train.seed, batch_size: config.train.batch_size, augment: config.train.augment };
    let job = Job { run, opts, cfg_path: &cfg_path, set, plan, resume_from };
    if config.mar.is_some() {
        let codebook = load_or_fit_run_codebook(run, &config, &job.set, &tokenizer, device, obs)?;
        let objective = |c: &RunConfig, ad: &Device| MarTrainObjective::new(c, &tokenizer, codebook.as_ref(), ad);
        return train_loop::<Mar, _>(config, job, device, obs, objective, |_, _| Ok(None));
    }
    let objective = |c: &RunConfig, ad: &Device| TrainObjective::new(c, &tokenizer, ad);
    train_loop::<DenoisingVit, _>(config, job, device, obs, objective, |trainer, state| {
        // `--init-from`: weights imported from PyTorch, saved as checkpoint 0.
        if let Some((weights, layout)) = &opts.init_from {
            let net = trainer.config.network();
            trainer.model = crate::train::interop::import(trainer.model.clone(), &net, *layout, weights)?;
            trainer.ema = burn::module::Module::valid(&trainer.model);
            let path = checkpoint::save(run, trainer, state)?;
            Ok(Some(format!("imported {} ({} layout) as {}", weights.display(), layout.name(), path.display())))
        } else {
            Ok(None)
        }
    })
}

/// What the loop needs besides the config: the run folder, options, data and where to resume.
struct Job<'a> {
    run: &'a Path,
    opts: &'a PretrainOptions,
    cfg_path: &'a Path,
    set: Arc<ImageSet>,
    plan: BatchPlan,
    resume_from: Option<PathBuf>,
}

/// The training loop of any network and objective: fresh start (total steps resolved, then
/// `on_fresh`, which may replace the weights and returns a message) or resume, then steps with
/// metrics, checkpoints, the time limit and divergence handling.
fn train_loop<M: Network, O: Objective<M>>(
    mut config: RunConfig,
    job: Job<'_>,
    device: &Device,
    obs: &mut dyn Observer,
    objective: impl Fn(&RunConfig, &Device) -> O,
    on_fresh: impl FnOnce(&mut Trainer<M, O>, &CheckpointState) -> Result<Option<String>>,
) -> Result<PretrainSummary> {
    let Job { run, opts, cfg_path, set, plan, resume_from } = job;
    let (mut trainer, mut state) = match &resume_from {
        Some(ckpt) => {
            let (t, s) = checkpoint::restore_with(ckpt, device, &objective)?;
            metrics::truncate_after::<MetricLine>(&run_folder::metrics_path(run), s.step)?;
            obs.message(&format!("resuming from {} (step {} of {})", ckpt.display(), s.step, s.total_steps));
            (t, s)
        }
        None => {
            // A fresh start keeps no metrics of an earlier attempt that left no checkpoint.
            metrics::truncate_after::<MetricLine>(&run_folder::metrics_path(run), 0)?;
            let total = resolve_total_steps::<M, O>(&config, &set, &plan, device, &objective, obs)?;
            config.train.steps = total;
            crate::atomic::write_atomic(cfg_path, config.to_toml().as_bytes())?;
            let mut trainer = Trainer::<M, O>::with_objective(config.clone(), device, &objective);
            let state = CheckpointState { step: 0, total_steps: total, elapsed_s: 0.0 };
            if let Some(msg) = on_fresh(&mut trainer, &state)? {
                obs.message(&msg);
            }
            (trainer, state)
        }
    };
    obs.message(&format!("model: {:.3}M parameters", trainer.model.num_params() as f64 / 1e6));
    let total = state.total_steps;
    let warmup = (config.train.warmup_frac * total as f64).round() as usize;
    let stop_at = opts.stop_after_steps.unwrap_or(total).min(total);
    let deadline = opts.stop_after_minutes.map(|m| Instant::now() + std::time::Duration::from_secs_f64(m * 60.0));
    let mut summary = PretrainSummary {
        run: run.to_path_buf(),
        step: state.step,
        total_steps: total,
        last_loss: f64::NAN,
        img_per_s: 0.0,
        losses: Vec::new(),
    };
    obs.start(state.step, total);

    let started = Instant::now();
    let elapsed_before = state.elapsed_s;
    let first_step = state.step;
    let mut window = (0.0, 0usize);
    for batch in Loader::spawn(set.clone(), plan, state.step, stop_at, 3) {
        let step = batch.step;
        let lr = lr_at(step, total, warmup, config.lr(), config.lr() * config.train.min_lr_frac);
        let loss = trainer.step(&batch, lr).map_err(|e| match e {
            Error::Diverged(msg) => Error::Diverged(format!(
                "training diverged: {msg}; the last good checkpoint is {}",
                checkpoint::latest(run)
                    .ok()
                    .flatten()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "none (no checkpoint yet)".into())
            )),
            other => other,
        })?;
        state.step = step + 1;
        let run_s = started.elapsed().as_secs_f64();
        state.elapsed_s = elapsed_before + run_s;
        let img_per_s = ((state.step - first_step) * config.train.batch_size) as f64 / run_s.max(1e-9);
        summary.losses.push(loss);
        (summary.step, summary.last_loss, summary.img_per_s) = (state.step, loss, img_per_s);
        obs.step(&StepReport { step: state.step, total, loss, lr, img_per_s });
        window = (window.0 + loss, window.1 + 1);
        if state.step % config.train.log_every == 0 || state.step == stop_at {
            let line = MetricLine {
                step: state.step,
                loss: window.0 / window.1 as f64,
                lr,
                img_per_s,
                elapsed_s: state.elapsed_s,
            };
            metrics::append(&run_folder::metrics_path(run), &line)?;
            window = (0.0, 0);
        }
        let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
        if state.step % config.train.checkpoint_every == 0 || state.step == stop_at || out_of_time {
            let path = checkpoint::save(run, &trainer, &state)?;
            obs.checkpoint(&path);
            plot_loss(run)?;
        }
        if out_of_time {
            obs.message(&format!(
                "stopped after the time limit at step {} of {total}; continue with --resume",
                state.step
            ));
            break;
        }
    }
    obs.finish();
    Ok(summary)
}

/// Total steps from `steps`, else `epochs`, else the time budget (measured on this machine).
fn resolve_total_steps<M: Network, O: Objective<M>>(
    config: &RunConfig,
    set: &ImageSet,
    plan: &BatchPlan,
    device: &Device,
    objective: impl Fn(&RunConfig, &Device) -> O,
    obs: &mut dyn Observer,
) -> Result<usize> {
    let t = &config.train;
    if t.steps > 0 {
        return Ok(t.steps);
    }
    let per_epoch = plan.steps_per_epoch(set.len());
    if t.epochs > 0.0 {
        return Ok(((t.epochs * per_epoch as f64).ceil() as usize).max(1));
    }
    // Time the step on a throwaway trainer: three warm-up steps (the allocator and the page
    // tables settle over the first few: one warm-up step overestimated the sustained step by up
    // to 20%), then five timed ones.
    const WARM_UP: usize = 3;
    const TIMED: usize = 5;
    let mut probe = Trainer::<M, O>::with_objective(config.clone(), device, objective);
    for s in 0..WARM_UP {
        probe.step(&plan.make(set, s), 0.0)?;
    }
    let start = Instant::now();
    for s in WARM_UP..WARM_UP + TIMED {
        probe.step(&plan.make(set, s), 0.0)?;
    }
    let per_step = start.elapsed().as_secs_f64() / TIMED as f64;
    // Checkpoints and metrics cost a little; keep 5% aside.
    let total = ((t.time_budget_min * 60.0 * 0.95 / per_step).floor() as usize).max(1);
    obs.message(&format!(
        "time budget {:.1} min at {:.3} s/step -> {total} steps ({:.2} epochs)",
        t.time_budget_min,
        per_step,
        total as f64 / per_epoch as f64
    ));
    Ok(total)
}

/// Redraw `loss.png` from `metrics.jsonl`.
pub fn plot_loss(run: &Path) -> Result<()> {
    let lines = metrics::read::<MetricLine>(&run_folder::metrics_path(run))?;
    if lines.len() < 2 {
        return Ok(());
    }
    let series = Series { name: "train loss".into(), points: lines.iter().map(|m| (m.step as f64, m.loss)).collect() };
    let config = run_folder::read_config(run)?;
    let title = format!("training loss: {}", config.denoise.label(config.model.image.channels));
    let y = match config.denoise.target {
        crate::diffusion::denoise::Target::Image => "loss (weighted squared error per patch)".to_string(),
        t => format!("{}-prediction loss", t.label()),
    };
    line_plot(&run.join("loss.png"), &title, "step", &y, &[series], true)
}
