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

use burn::tensor::{Bytes, Device};

use crate::config::{FinetuneInit, FinetuneSection, RunConfig};
use crate::data::loader::{Batch, BatchPlan};
use crate::data::{ImageSet, Split};
use crate::error::{Error, Result};
use crate::eval::top1::record_accuracy;
use crate::mar::codebook::load_or_fit_run_codebook;
use crate::mar::objective::MarTrainObjective;
use crate::models::DenoisingVit;
use crate::models::finetune::Finetuned;
use crate::models::mar::Mar;
use crate::optim::lr::lr_at;
use crate::store::checkpoint::{self, CheckpointState};
use crate::store::folder::{self, Start};
use crate::store::metrics::{self, MetricLine};
use crate::store::provenance;
use crate::train::driver::{Limits, Plan, Progress, Stage, StepOut, drive, loss_line};
use crate::train::finetune::{ClassifyObjective, FinetuneEncoder};
use crate::train::interop::Layout;
use crate::train::objective::TrainObjective;
use crate::train::observer::Observer;
use crate::train::run_folder;
use crate::train::step::{Network, Objective, Trainer};
use crate::train::trainer_state;
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
    pub init_from: Option<(PathBuf, Layout)>,
    /// On resume, train on to this many steps in total (more than the run's): the longer run
    /// of a schedule constant after warm-up, its warm-up kept ([`crate::config::TrainConfig::extended_to`]).
    pub extend_to: Option<usize>,
    /// Draw a generator's sample grid at each regular checkpoint (`samples-step-NNNNNN.png`,
    /// also a TensorBoard image).
    pub sample_grids: bool,
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
    let Start { mut config, resume_from } = folder::open(run, config, opts.resume, &[])?;
    if let Some(total) = opts.extend_to.filter(|_| opts.resume) {
        config.train = config.train.extended_to(total)?;
    }
    config.validate()?;
    match (&opts.init_from, config.mar.is_some()) {
        (Some((_, Layout::Mar)), false) => {
            return Err(Error::config("pretrain.init_from", "the mar layout holds MAR weights; this run has no [mar]"));
        }
        (Some((_, layout)), true) if *layout != Layout::Mar => {
            return Err(Error::config(
                "pretrain.init_from",
                format!("a MAR run ([mar] section) imports the mar layout (LTH14/mar's names), not {}", layout.name()),
            ));
        }
        _ => {}
    }
    if let Some((weights, layout)) = opts.init_from.as_ref().filter(|_| resume_from.is_none()) {
        // Before the data set and the tokenizer (an ImageNet tokenizer fit takes hours): a file
        // that does not fit the network is refused first.
        let params = check_init_weights(&config, weights, *layout, device)?;
        obs.message(&format!(
            "{}: {params} parameters in the {} layout fit the {} network",
            weights.display(),
            layout.name(),
            config.preset
        ));
    }
    folder::write_config(run, &config)?;
    let from = resume_from.as_ref().map(|c| checkpoint::read_state::<CheckpointState>(c)).transpose()?;
    let detail = format!("steps {}..{}", from.map_or(0, |s| s.step), config.train.steps);
    provenance::record(run, &provenance::Provenance::now("train", detail, device))?;

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
    let job = Job { run, opts, set, plan, resume_from };
    let bound = tokenizer.bind(config.model.image, device);
    let cache = match config.train.cache_latents {
        true => {
            // What the objective reads: MAR's tokens (latent cells grouped), else one per patch.
            let tokens = match config.mar_network() {
                Some(net) => (net.seq_len, net.token_dim),
                None => (config.model.tokens(), bound.latent_dim()),
            };
            Some(Arc::new(crate::runs::token_cache::load_or_encode(
                run,
                bound.as_ref(),
                &job.set,
                tokens,
                device,
                obs,
            )?))
        }
        false => None,
    };
    if let Some(section) = config.finetune.clone() {
        return match config.mar.is_some() {
            true => finetune_loop::<Mar>(config, section, job, &tokenizer, device, obs),
            false => finetune_loop::<DenoisingVit>(config, section, job, &tokenizer, device, obs),
        };
    }
    if config.mar.is_some() {
        let codebook = load_or_fit_run_codebook(run, &config, &job.set, &tokenizer, device, obs)?;
        let objective = |c: &RunConfig, ad: &Device| MarTrainObjective {
            cache: cache.clone(),
            ..MarTrainObjective::new(c, &tokenizer, codebook.as_ref(), ad)
        };
        let grid_config = config.clone();
        let grid = |model: &Mar, step: usize| -> Result<()> {
            let spec = crate::mar::MarSpec::of(&grid_config).expect("a MAR run");
            let sampling = crate::mar::MarSampling {
                // A causal order generates one token per step (K = L).
                steps: if spec.variant.is_causal() { spec.len } else { GRID_MAR_STEPS.min(spec.len) },
                head_steps: GRID_HEAD_STEPS,
                temperature: 1.0,
                cfg: 1.0,
            };
            let labels = grid_labels(&grid_config);
            let images = crate::mar::sample_mar_images(
                model,
                codebook.as_ref(),
                &grid_config,
                bound.as_ref(),
                &sampling,
                &labels,
                labels.len(),
                (GRID_SEED, labels.len()),
                device,
                &mut |_| {},
            )?;
            save_sample_grid(run, &grid_config, step, images)
        };
        let grid = opts.sample_grids.then_some(&grid as AtCheckpoint<'_, Mar>);
        return train_loop::<Mar, _>(config, job, device, obs, objective, grid, |trainer, state| {
            // `--init-from` of LTH14/mar weights, saved as checkpoint 0.
            let Some((weights, _)) = &opts.init_from else { return Ok(None) };
            let network = trainer.config.mar_network().expect("a MAR run");
            trainer.model = crate::train::interop_mar::import_mar(trainer.model.clone(), &network, weights)?;
            trainer.ema = burn::module::Module::valid(&trainer.model);
            let path = trainer_state::save(run, trainer, state)?;
            Ok(Some(format!("imported {} (mar layout) as {}", weights.display(), path.display())))
        });
    }
    let objective =
        |c: &RunConfig, ad: &Device| TrainObjective { cache: cache.clone(), ..TrainObjective::new(c, &tokenizer, ad) };
    let grid_config = config.clone();
    let grid = |model: &DenoisingVit, step: usize| -> Result<()> {
        let labels = grid_labels(&grid_config);
        let opts = crate::generate::SampleOptions {
            kind: crate::diffusion::SamplerKind::Ddim { eta: 0.0 },
            steps: GRID_DIT_STEPS.min(grid_config.denoise.timesteps),
            cfg: 1.0,
            n: labels.len(),
            labels: if grid_config.model.num_classes > 0 { labels } else { Vec::new() },
            seed: GRID_SEED,
            chunk: 64,
            clip_x0: true,
        };
        let images = crate::generate::sample_images(model, &grid_config, bound.as_ref(), &opts, device, &|| {})?;
        save_sample_grid(run, &grid_config, step, images)
    };
    let draws = config.denoise.is_generator() && opts.sample_grids;
    train_loop::<DenoisingVit, _>(config, job, device, obs, objective, draws.then_some(&grid), |trainer, state| {
        // `--init-from`: weights imported from PyTorch, saved as checkpoint 0.
        if let Some((weights, layout)) = &opts.init_from {
            let net = trainer.config.network();
            trainer.model = crate::train::interop::import(trainer.model.clone(), &net, *layout, weights)?;
            trainer.ema = burn::module::Module::valid(&trainer.model);
            let path = trainer_state::save(run, trainer, state)?;
            Ok(Some(format!("imported {} ({} layout) as {}", weights.display(), layout.name(), path.display())))
        } else {
            Ok(None)
        }
    })
}

/// A fine-tuning run of encoder `E` through the training loop: its encoder copied from the
/// pretrained run's EMA weights at step 0 (or a fresh initialisation), the test top-1 measured
/// at each regular checkpoint.
fn finetune_loop<E: FinetuneEncoder>(
    config: RunConfig,
    section: FinetuneSection,
    job: Job<'_>,
    tokenizer: &crate::tokenizer::FittedTokenizer,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<PretrainSummary> {
    let run = job.run;
    let objective = |c: &RunConfig, ad: &Device| ClassifyObjective::new::<E>(c, tokenizer, ad);
    let test = run_folder::load_split(&config, &job.opts.data_root, Split::Test)?;
    let measure = ClassifyObjective::new::<E>(&config, tokenizer, device);
    let top1 = |model: &Finetuned<E>, step: usize| record_accuracy(run, step, model, &measure, &test, device);
    train_loop::<Finetuned<E>, _>(config, job, device, obs, objective, Some(&top1), |trainer, state| {
        if section.init == FinetuneInit::Random {
            return Ok(Some("encoder: a fresh initialisation (random init)".into()));
        }
        let (ckpt, pretrained) = pretrained_checkpoint(&section)?;
        trainer.model.encoder = trainer_state::load_weights(&ckpt, "ema.bpk", &pretrained, &trainer.device)?;
        trainer.ema = burn::module::Module::valid(&trainer.model);
        let path = trainer_state::save(run, trainer, state)?;
        Ok(Some(format!("encoder: the EMA weights of {}, saved as {}", ckpt.display(), path.display())))
    })
}

/// The encoder the fine-tuning run starts from: the pretrained run's latest checkpoint (its
/// EMA weights, as the probe reads them).
fn pretrained_checkpoint(section: &FinetuneSection) -> Result<(PathBuf, RunConfig)> {
    let source = PathBuf::from(&section.from);
    let ckpt = crate::store::checkpoint::latest(&source)?.ok_or_else(|| {
        Error::config("finetune.from", format!("{} holds no checkpoint to fine-tune", source.display()))
    })?;
    Ok((ckpt, run_folder::read_config(&source)?))
}

/// Import `weights` (`layout`) into a fresh network of `config` and count its parameters: the
/// check `--init-from` / `ddmlab import` make before anything else (a mismatch is one error
/// listing the keys, by the file's names).
pub fn check_init_weights(config: &RunConfig, weights: &Path, layout: Layout, device: &Device) -> Result<usize> {
    use burn::module::Module;
    Ok(match config.mar_network() {
        Some(net) => crate::train::interop_mar::import_mar(net.init(device), &net, weights)?.num_params(),
        None => {
            let net = config.network();
            crate::train::interop::import(net.init(device), &net, layout, weights)?.num_params()
        }
    })
}

/// What the loop needs besides the config: the run folder, options, data and where to resume.
struct Job<'a> {
    run: &'a Path,
    opts: &'a PretrainOptions,
    set: Arc<ImageSet>,
    plan: BatchPlan,
    resume_from: Option<PathBuf>,
}

/// The training loop of any network and objective: fresh start (total steps resolved, then
/// `on_fresh`, which may replace the weights and returns a message) or resume, then the run
/// driver.
fn train_loop<M: Network, O: Objective<M>>(
    mut config: RunConfig,
    job: Job<'_>,
    device: &Device,
    obs: &mut dyn Observer,
    objective: impl Fn(&RunConfig, &Device) -> O,
    grid: Option<AtCheckpoint<'_, M>>,
    on_fresh: impl FnOnce(&mut Trainer<M, O>, &CheckpointState) -> Result<Option<String>>,
) -> Result<PretrainSummary> {
    let Job { run, opts, set, plan, resume_from } = job;
    let (trainer, state) = match &resume_from {
        Some(ckpt) => {
            let (mut t, mut s) = trainer_state::restore_with(ckpt, device, &objective)?;
            obs.message(&format!("resuming from {} (step {} of {})", ckpt.display(), s.step, s.total_steps));
            if config.train.steps > s.total_steps {
                // Trained on (`extend_to`): the checkpoints from here on hold the longer schedule.
                obs.message(&format!(
                    "training on to step {} (warm-up kept at {} steps)",
                    config.train.steps,
                    config.train.warmup(config.train.steps)
                ));
                s.total_steps = config.train.steps;
                t.config.train = config.train.clone();
            }
            (t, s)
        }
        None => {
            let total = resolve_total_steps::<M, O>(&config, &set, &plan, device, &objective, obs)?;
            config.train.steps = total;
            folder::write_config(run, &config)?;
            let mut trainer = Trainer::<M, O>::with_objective(config.clone(), device, &objective);
            let state = CheckpointState { step: 0, total_steps: total, elapsed_s: 0.0 };
            if let Some(msg) = on_fresh(&mut trainer, &state)? {
                obs.message(&msg);
            }
            (trainer, state)
        }
    };
    obs.message(&format!("model: {:.3}M parameters", trainer.model.num_params() as f64 / 1e6));
    let warmup = config.train.warmup(state.total_steps);
    let mut stage = PretrainStage { trainer, run, warmup, grid };
    let plan = Plan {
        data: set,
        batches: plan,
        log_every: config.train.log_every,
        checkpoint_every: config.train.checkpoint_every,
    };
    let limits = Limits::new(opts.stop_after_steps, opts.stop_after_minutes);
    let metrics_file = folder::metrics_path(run);
    let outcome = drive(&mut stage, run, &metrics_file, state, plan, limits, obs)?;
    Ok(PretrainSummary {
        run: run.to_path_buf(),
        step: outcome.state.step,
        total_steps: outcome.state.total_steps,
        last_loss: outcome.losses.last().copied().unwrap_or(f64::NAN),
        img_per_s: outcome.img_per_s,
        losses: outcome.losses,
    })
}

/// A denoiser's pretraining as a stage of the run driver: the trainer's step at the run's
/// learning-rate schedule (linear warmup, cosine decay), its checkpoint, and the loss plot
/// redrawn at each checkpoint.
struct PretrainStage<'a, M: Network, O: Objective<M>> {
    trainer: Trainer<M, O>,
    run: &'a Path,
    warmup: usize,
    /// What is made of the EMA weights at each regular checkpoint: a generator's sample grid,
    /// a fine-tuned classifier's test top-1.
    grid: Option<AtCheckpoint<'a, M>>,
}

impl<M: Network, O: Objective<M>> Stage for PretrainStage<'_, M, O> {
    /// The gradient norm, measured on the last step of each metrics line.
    type Stats = Option<f64>;
    type Line = MetricLine;

    fn name(&self) -> &'static str {
        "training"
    }

    fn step(&mut self, batch: &Batch, total: usize) -> Result<StepOut<Option<f64>>> {
        let config = &self.trainer.config;
        let lr = lr_at(batch.step, total, self.warmup, config.lr(), config.lr() * config.train.min_lr_frac);
        let logged = (batch.step + 1).is_multiple_of(config.train.log_every) || batch.step + 1 == total;
        let (loss, grad_norm) = self.trainer.step_measured(batch, lr, logged)?;
        Ok(StepOut { loss, lr, stats: grad_norm })
    }

    fn line(&self, window: &[StepOut<Option<f64>>], at: Progress) -> MetricLine {
        MetricLine { grad_norm: window.iter().rev().find_map(|o| o.stats), ..loss_line(window, at) }
    }

    fn checkpoint_files(&self) -> Result<Vec<(&'static str, Bytes)>> {
        trainer_state::files(&self.trainer)
    }

    fn after_checkpoint(&mut self, state: &CheckpointState, regular: bool, _: &mut dyn Observer) -> Result<()> {
        if let Some(grid) = self.grid.filter(|_| regular) {
            grid(&self.trainer.ema, state.step)?;
        }
        plot_loss(self.run)
    }

    fn checkpoint_images(&self, state: &CheckpointState) -> Vec<(&'static str, PathBuf)> {
        vec![("samples", sample_grid_path(self.run, state.step))]
    }
}

/// The sample grid of a generator's checkpoint: one image per class (a row of 8 for an
/// unconditional model), the EMA weights, a fixed seed, no guidance; DiT by DDIM in 50 steps
/// (the studies' FID sampler), MAR in `K = 16` steps (a causal order in `L`) with a 50-step head (a look at
/// training, not an FID).
const GRID_DIT_STEPS: usize = 50;
const GRID_MAR_STEPS: usize = 16;
const GRID_HEAD_STEPS: usize = 50;
const GRID_SEED: u64 = 0;

/// What a run makes of its EMA weights at a regular checkpoint (a generator's sample grid, a
/// fine-tuned classifier's test top-1), given the weights and the step.
type AtCheckpoint<'a, M> = &'a dyn Fn(&M, usize) -> Result<()>;

/// `RUN/samples-step-NNNNNN.png`.
pub fn sample_grid_path(run: &Path, step: usize) -> PathBuf {
    run.join(format!("samples-step-{step:06}.png"))
}

/// The grid's labels: each class once (at most 10), or 8 draws of an unconditional model.
fn grid_labels(config: &RunConfig) -> Vec<usize> {
    match config.model.num_classes {
        0 => vec![0; 8],
        k => (0..k.min(10)).collect(),
    }
}

/// Write the grid's images (`[C, H, W]` each) in one row.
fn save_sample_grid(run: &Path, config: &RunConfig, step: usize, images: Vec<Vec<f32>>) -> Result<()> {
    crate::viz::grid::save_grid(&sample_grid_path(run, step), &[images], config.model.image, 2)
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
    let lines = metrics::read::<MetricLine>(&folder::metrics_path(run))?;
    if lines.len() < 2 {
        return Ok(());
    }
    let series = Series { name: "train loss".into(), points: lines.iter().map(|m| (m.step as f64, m.loss)).collect() };
    let config: RunConfig = folder::read_config(run)?;
    let title = format!("training loss: {}", config.denoise.label(config.model.image.channels));
    let y = match config.denoise.target {
        crate::diffusion::denoise::Target::Image => "loss (weighted squared error per patch)".to_string(),
        t => format!("{}-prediction loss", t.label()),
    };
    line_plot(&run.join("loss.png"), &title, "step", &y, &[series], true)
}
