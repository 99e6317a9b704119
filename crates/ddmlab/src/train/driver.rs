//! The one run driver: every training stage (a denoiser's pretraining, a conv tokenizer, its
//! perceptual classifier) implements [`Stage`], and [`drive`] runs it with what every run needs:
//! batches prefetched as pure functions of `(seed, step)`, metrics lines, checkpoints at an
//! interval and at a stop, the same numbers as TensorBoard scalars (and the stage's checkpoint
//! grids as images), a time limit (`--stop-after`) and a step limit, divergence reported
//! with the last good checkpoint, progress through an [`Observer`], and resume from a
//! checkpoint's [`CheckpointState`].
//!
//! A resumed stage equals the uninterrupted one because nothing the driver keeps between steps
//! changes the numbers: batches and noise are functions of the step, and everything else (weights,
//! optimizer moments) is in the checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::tensor::Bytes;

use super::observer::{Observer, StepReport};
use crate::data::ImageSet;
use crate::data::loader::{Batch, BatchPlan, Loader};
use crate::error::{Error, Result};
use crate::store::checkpoint::{self, CheckpointState};
use crate::store::metrics::{self, MetricLine, Stepped};
use crate::store::tensorboard::{EventWriter, scalars_of};

/// Batches the loader prefetches ahead of the step.
const PREFETCH: usize = 3;

/// What one step of a stage reports.
#[derive(Debug, Clone)]
pub struct StepOut<S> {
    /// The step's loss (shown; a non-finite one stops the run as diverged).
    pub loss: f64,
    /// The learning rate it stepped with.
    pub lr: f64,
    /// Everything else it measured, averaged into the next metrics line.
    pub stats: S,
}

/// Where the run is when a metrics line is written.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Steps done.
    pub step: usize,
    /// The last step's learning rate.
    pub lr: f64,
    /// Training throughput so far in this invocation (evaluations left out).
    pub img_per_s: f64,
    /// Training seconds over every invocation.
    pub elapsed_s: f64,
}

/// One trainable stage of a run: its step, its metrics line and its checkpoint files. The
/// driver owns the loop around it.
pub trait Stage {
    /// What a step measured besides its loss.
    type Stats;
    /// A line of the stage's metrics file.
    type Line: Stepped;

    /// The stage in messages: "training", "tokenizer training", ...
    fn name(&self) -> &'static str;

    /// Run step `batch.step` of `total`.
    fn step(&mut self, batch: &Batch, total: usize) -> Result<StepOut<Self::Stats>>;

    /// The metrics line over `window`, the steps since the previous line (never empty).
    fn line(&self, window: &[StepOut<Self::Stats>], at: Progress) -> Self::Line;

    /// The checkpoint's files besides `state.json` (weights, optimizer state, config).
    fn checkpoint_files(&self) -> Result<Vec<(&'static str, Bytes)>>;

    /// Called after each checkpoint; `regular` is true at the checkpoint interval and at the
    /// last step, false at a stop. Evaluations go here; their time is left out of the
    /// throughput.
    fn after_checkpoint(&mut self, _state: &CheckpointState, _regular: bool, _obs: &mut dyn Observer) -> Result<()> {
        Ok(())
    }

    /// The PNG grids [`Stage::after_checkpoint`] drew at this checkpoint, as `(TensorBoard tag,
    /// file)`; a file that is not there is skipped.
    fn checkpoint_images(&self, _state: &CheckpointState) -> Vec<(&'static str, PathBuf)> {
        Vec::new()
    }

    /// What [`Stage::after_checkpoint`] measured at this checkpoint, as TensorBoard scalars.
    fn checkpoint_scalars(&self, _state: &CheckpointState) -> Result<Vec<(String, f64)>> {
        Ok(Vec::new())
    }
}

/// The stage's data and cadence.
#[derive(Debug, Clone)]
pub struct Plan {
    pub data: Arc<ImageSet>,
    pub batches: BatchPlan,
    /// Steps between metrics lines.
    pub log_every: usize,
    /// Steps between regular checkpoints.
    pub checkpoint_every: usize,
}

/// When to stop before the last step, with a checkpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Stop once this many steps are done in total.
    pub stop_after_steps: Option<usize>,
    /// Stop at the first step that ends after this instant.
    pub deadline: Option<Instant>,
}

impl Limits {
    /// A step limit and a time limit in minutes from now.
    pub fn new(stop_after_steps: Option<usize>, stop_after_minutes: Option<f64>) -> Self {
        let deadline = stop_after_minutes.map(|m| Instant::now() + Duration::from_secs_f64(m * 60.0));
        Limits { stop_after_steps, deadline }
    }

    /// Whether the time limit has passed.
    pub fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// What a call of [`drive`] reached.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The state at the last step run (saved as a checkpoint unless no step ran).
    pub state: CheckpointState,
    /// Every loss, one per step run in this call.
    pub losses: Vec<f64>,
    /// Training throughput of this call (evaluations left out).
    pub img_per_s: f64,
    /// Whether the stage reached its last step.
    pub finished: bool,
}

/// Run `stage` from `state` (step 0, or a checkpoint's state) to `state.total_steps` or a
/// limit. Checkpoints go to `run/checkpoints/`, metrics lines to `metrics_file` (lines after the
/// starting step, left by an attempt that was killed, are dropped first).
pub fn drive<S: Stage>(
    stage: &mut S,
    run: &Path,
    metrics_file: &Path,
    mut state: CheckpointState,
    plan: Plan,
    limits: Limits,
    obs: &mut dyn Observer,
) -> Result<Outcome> {
    metrics::truncate_after::<S::Line>(metrics_file, state.step)?;
    let total = state.total_steps;
    let stop_at = limits.stop_after_steps.unwrap_or(total).min(total);
    let batch_size = plan.batches.batch_size;
    let mut outcome =
        Outcome { state: state.clone(), losses: Vec::new(), img_per_s: 0.0, finished: state.step >= total };
    obs.start(state.step, total);
    let started = Instant::now();
    let (elapsed_before, first_step) = (state.elapsed_s, state.step);
    let mut evaluating = Duration::ZERO;
    let mut window = Vec::new();
    // The TensorBoard file of this call, opened with its first event (a call that runs no step
    // leaves none).
    let mut tb: Option<EventWriter> = None;
    for batch in Loader::spawn(plan.data.clone(), plan.batches, state.step, stop_at, PREFETCH) {
        let out = stage.step(&batch, total).and_then(|out| match out.loss.is_finite() {
            true => Ok(out),
            false => Err(Error::Diverged(format!("loss is {} at step {}", out.loss, batch.step + 1))),
        });
        let out = out.map_err(|e| match e {
            Error::Diverged(msg) => Error::Diverged(format!(
                "{} diverged: {msg}; the last good checkpoint is {}",
                stage.name(),
                checkpoint::latest(run)
                    .ok()
                    .flatten()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "none (no checkpoint yet)".into())
            )),
            other => other,
        })?;
        state.step = batch.step + 1;
        let run_s = (started.elapsed() - evaluating).as_secs_f64();
        state.elapsed_s = elapsed_before + run_s;
        let img_per_s = ((state.step - first_step) * batch_size) as f64 / run_s.max(1e-9);
        obs.step(&StepReport { step: state.step, total, loss: out.loss, lr: out.lr, img_per_s });
        outcome.losses.push(out.loss);
        let lr = out.lr;
        window.push(out);
        if state.step.is_multiple_of(plan.log_every) || state.step == stop_at {
            let at = Progress { step: state.step, lr, img_per_s, elapsed_s: state.elapsed_s };
            let line = stage.line(&window, at);
            metrics::append(metrics_file, &line)?;
            events(&mut tb, run, first_step)?.scalars(state.step, &scalars_of("train", &line))?;
            window.clear();
        }
        let out_of_time = limits.out_of_time();
        let regular = state.step.is_multiple_of(plan.checkpoint_every) || state.step == total;
        if regular || state.step == stop_at || out_of_time {
            let files = stage.checkpoint_files()?;
            let refs: Vec<(&str, &[u8])> = files.iter().map(|(name, bytes)| (*name, &bytes[..])).collect();
            let path = checkpoint::save(run, &state, &refs)?;
            obs.checkpoint(&path);
            let t0 = Instant::now();
            stage.after_checkpoint(&state, regular, obs)?;
            for (tag, png) in stage.checkpoint_images(&state).into_iter().filter(|(_, p)| p.exists()) {
                events(&mut tb, run, first_step)?.image(state.step, tag, &png)?;
            }
            let measured = stage.checkpoint_scalars(&state)?;
            if !measured.is_empty() {
                events(&mut tb, run, first_step)?.scalars(state.step, &measured)?;
            }
            evaluating += t0.elapsed();
        }
        outcome.state = state.clone();
        outcome.img_per_s = img_per_s;
        if out_of_time && state.step < total {
            obs.message(&format!(
                "stopped after the time limit in {} at step {} of {total}; continue with --resume",
                stage.name(),
                state.step
            ));
            break;
        }
    }
    outcome.finished = state.step >= total;
    obs.finish();
    Ok(outcome)
}

/// The event writer of a call of [`drive`], created in `run` on first use.
fn events<'a>(tb: &'a mut Option<EventWriter>, run: &Path, first_step: usize) -> Result<&'a mut EventWriter> {
    if tb.is_none() {
        *tb = Some(EventWriter::create(run, first_step)?);
    }
    Ok(tb.as_mut().expect("created above"))
}

/// The plain metrics line of a stage whose only measurement is its loss: the window's mean loss.
pub fn loss_line<S>(window: &[StepOut<S>], at: Progress) -> MetricLine {
    let loss = window.iter().map(|o| o.loss).sum::<f64>() / window.len().max(1) as f64;
    MetricLine { step: at.step, loss, lr: at.lr, img_per_s: at.img_per_s, elapsed_s: at.elapsed_s, grad_norm: None }
}
