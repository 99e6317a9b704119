//! Training a conv tokenizer end to end (`ddmlab tokenizer train`): the perceptual classifier
//! first (when the loss uses one), then the autoencoder and its discriminator, with metrics,
//! checkpoints, a clean stop on a time limit, resume, and a reconstruction evaluation at every
//! checkpoint.
//!
//! ```text
//! RUN/config.toml                the resolved TokenizerRunConfig
//! RUN/perceptual.bpk, .json      the perceptual classifier and its test accuracy (`perceptual`)
//! RUN/perceptual/checkpoints/    the classifier's checkpoints while it trains
//! RUN/metrics.jsonl              one AeMetricLine per `log_every` steps
//! RUN/recon.json, recon.md       PSNR / rFID per evaluated checkpoint (train.eval_images images)
//! RUN/recon-step-NNNNNN.png      originals (odd rows) over reconstructions (even rows)
//! RUN/recon-nN.json, .md, -step-NNNNNN.png  the same on N images (`tokenizer eval --n N`)
//! RUN/recon-reference-nN.safetensors  Inception features of the first N test images (originals)
//! RUN/checkpoints/step-NNNNNN/   ae.bpk ae-optim.bpk [disc.bpk disc-optim.bpk] state.json config.toml
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::data::RawImage;
use crate::data::loader::{Batch, BatchPlan, ordered_batches};
use crate::data::transform::Augment;
use crate::data::{ImageSet, Split, from_unit};
use crate::error::{Error, IoContext, Result};
use crate::eval::fid::{inception_features, load_features, save_features};
use crate::eval::frechet::{Stats, frechet_distance};
use crate::eval::inception::{FEATURE_DIM, InceptionV3};
use crate::models::conv_ae::ConvAutoencoder;
use crate::store::checkpoint::CheckpointState;
use crate::store::folder::{self, Start};
use crate::store::metrics::Stepped;
use crate::store::provenance;
use crate::tokenizer::conv_config::TokenizerRunConfig;
use crate::train::ae_losses::psnr;
use crate::train::conv_tokenizer::{AeStepStats, AeTrainer};
use crate::train::driver::{Limits, Plan, Progress, Stage, StepOut, drive};
use crate::train::observer::Observer;
use crate::train::perceptual::{self, PerceptualStage};
use crate::viz::grid::save_grid;

/// What [`train_tokenizer`] does besides the config.
#[derive(Debug, Clone, Default)]
pub struct TokenizerTrainOptions {
    pub data_root: PathBuf,
    /// Continue the run's latest checkpoint.
    pub resume: bool,
    /// Stop cleanly (with a checkpoint) after this many minutes.
    pub stop_after_minutes: Option<f64>,
    /// Stop cleanly (with a checkpoint) at this step.
    pub stop_after_steps: Option<usize>,
    /// Inception weights for rFID; without them checkpoints are evaluated by PSNR only.
    pub inception: Option<PathBuf>,
    /// On resume, train on to this many steps instead of the saved `train.steps` (not fewer):
    /// the continued run is the one a longer run would have been, since the tokenizer's
    /// learning rate is constant and its batches are functions of the step.
    pub extend_to: Option<usize>,
}

/// One logged point of a tokenizer run (means over the steps since the last line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AeMetricLine {
    pub step: usize,
    #[serde(flatten)]
    pub stats: AeStepStats,
    pub img_per_s: f64,
    pub elapsed_s: f64,
}

impl Stepped for AeMetricLine {
    fn step(&self) -> usize {
        self.step
    }
}

/// Reconstruction quality of one checkpoint on the first `n` test images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconRow {
    pub step: usize,
    pub n: usize,
    /// Mean squared error per pixel in `[-1, 1]` units.
    pub mse: f64,
    /// PSNR of that error (peak 1 on `[0, 1]`).
    pub psnr: f64,
    /// FID between the originals and their reconstructions (Inception pool3), when measured.
    pub rfid: Option<f64>,
}

/// The end of a call.
#[derive(Debug, Clone)]
pub struct TokenizerSummary {
    pub run: PathBuf,
    pub step: usize,
    pub total_steps: usize,
    pub recon: Vec<ReconRow>,
}

/// One split of the config's data set at the tokenizer's image size.
pub fn load_split(config: &TokenizerRunConfig, data_root: &Path, split: Split) -> Result<ImageSet> {
    crate::train::run_folder::load_data_split(
        &config.data,
        config.model.image,
        config.resize,
        config.train_limit,
        data_root,
        split,
    )
}

/// Train (or resume) the tokenizer run in folder `run`.
pub fn train_tokenizer(
    config: TokenizerRunConfig,
    run: &Path,
    opts: &TokenizerTrainOptions,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<TokenizerSummary> {
    let stages = [perceptual::stage_dir(run)];
    let Start { mut config, resume_from } = folder::open(run, config, opts.resume, &stages)?;
    if let Some(n) = opts.extend_to {
        if n < config.train.steps {
            return Err(Error::config(
                "train.steps",
                format!(
                    "a resumed tokenizer run may train on to more steps, not fewer (saved {}, asked {n})",
                    config.train.steps
                ),
            ));
        }
        config.train.steps = n;
    }
    config.validate()?;
    folder::write_config(run, &config)?;
    let detail = format!("tokenizer training to step {}", config.train.steps);
    provenance::record(run, &provenance::Provenance::now("tokenizer", detail, device))?;

    let train = Arc::new(load_split(&config, &opts.data_root, Split::Train)?);
    let test = load_split(&config, &opts.data_root, Split::Test)?;
    obs.message(&format!("data: {} train images of {} from {}", train.len(), train.shape, config.data));
    let limits = Limits::new(opts.stop_after_steps, opts.stop_after_minutes);
    let perceptual = if config.loss.perceptual() {
        match perceptual::load_or_train(run, &config, &train, &test, limits, device, obs)? {
            PerceptualStage::Ready(net) => Some(*net),
            PerceptualStage::Stopped => {
                return Ok(TokenizerSummary {
                    run: run.to_path_buf(),
                    step: 0,
                    total_steps: config.train.steps,
                    recon: Vec::new(),
                });
            }
        }
    } else {
        None
    };
    let total = config.train.steps;
    let (trainer, state) = match &resume_from {
        Some(ckpt) => {
            let (mut t, mut s) = AeTrainer::restore(ckpt, perceptual, device)?;
            (t.config.train.steps, s.total_steps) = (total, total);
            obs.message(&format!("resuming from {} (step {} of {total})", ckpt.display(), s.step));
            (t, s)
        }
        None => {
            let state = CheckpointState { step: 0, total_steps: total, elapsed_s: 0.0 };
            (AeTrainer::new(config.clone(), perceptual, device), state)
        }
    };
    let inception = match &opts.inception {
        Some(path) => Some(InceptionV3::load(path, &device.clone().without_autodiff())?),
        None => None,
    };
    let plan = Plan {
        data: train,
        batches: BatchPlan { seed: config.train.seed, batch_size: config.train.batch_size, augment: Augment::None },
        log_every: config.train.log_every,
        checkpoint_every: config.train.checkpoint_every,
    };
    let mut stage = TokenizerStage { trainer, run, test: &test, inception: inception.as_ref(), device };
    let outcome = drive(&mut stage, run, &folder::metrics_path(run), state, plan, limits, obs)?;
    Ok(TokenizerSummary {
        run: run.to_path_buf(),
        step: outcome.state.step,
        total_steps: total,
        recon: read_recon(run)?,
    })
}

/// A conv tokenizer's training as a stage of the run driver: the autoencoder / discriminator
/// step, its checkpoint, and a reconstruction evaluation at every regular checkpoint.
struct TokenizerStage<'a> {
    trainer: AeTrainer,
    run: &'a Path,
    test: &'a ImageSet,
    inception: Option<&'a InceptionV3>,
    device: &'a Device,
}

impl Stage for TokenizerStage<'_> {
    type Stats = AeStepStats;
    type Line = AeMetricLine;

    fn name(&self) -> &'static str {
        "tokenizer training"
    }

    fn step(&mut self, batch: &Batch, _total: usize) -> Result<StepOut<AeStepStats>> {
        let stats = self.trainer.step(batch)?;
        Ok(StepOut { loss: stats.loss, lr: self.trainer.config.train.lr, stats })
    }

    fn line(&self, window: &[StepOut<AeStepStats>], at: Progress) -> AeMetricLine {
        let stats: Vec<AeStepStats> = window.iter().map(|o| o.stats.clone()).collect();
        AeMetricLine { step: at.step, stats: mean_stats(&stats), img_per_s: at.img_per_s, elapsed_s: at.elapsed_s }
    }

    fn checkpoint_files(&self) -> Result<Vec<(&'static str, Bytes)>> {
        self.trainer.checkpoint_files()
    }

    fn after_checkpoint(&mut self, state: &CheckpointState, regular: bool, obs: &mut dyn Observer) -> Result<()> {
        if regular {
            let config = &self.trainer.config;
            let ae = self.trainer.ae.valid();
            let n = config.train.eval_images;
            let row = evaluate(self.run, config, &ae, self.test, n, state.step, self.inception, self.device)?;
            obs.message(&format_recon(&row));
        }
        Ok(())
    }

    fn checkpoint_images(&self, state: &CheckpointState) -> Vec<(&'static str, PathBuf)> {
        vec![("reconstruction", self.run.join(format!("recon-step-{:06}.png", state.step)))]
    }

    fn checkpoint_scalars(&self, state: &CheckpointState) -> Result<Vec<(String, f64)>> {
        let rows = read_recon(self.run)?;
        let Some(row) = rows.iter().find(|r| r.step == state.step) else { return Ok(Vec::new()) };
        let mut out = vec![("eval/mse".to_string(), row.mse), ("eval/psnr".to_string(), row.psnr)];
        out.extend(row.rfid.map(|f| (format!("eval/rfid-{}", row.n), f)));
        Ok(out)
    }
}

fn mean_stats(window: &[AeStepStats]) -> AeStepStats {
    let n = window.len().max(1) as f64;
    let mut m = AeStepStats::default();
    for s in window {
        m.add(s, 1.0 / n);
    }
    m
}

/// Reconstruct the first `n` test images with the posterior mean; PSNR, rFID (with Inception
/// weights) and a grid PNG; the row is merged into the table [`recon_table`] names for `n`:
/// `RUN/recon.json` / `recon.md` on the run's own `train.eval_images` (the evaluations made while
/// training), `RUN/recon-nN.*` on any other count.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    run: &Path,
    config: &TokenizerRunConfig,
    ae: &ConvAutoencoder,
    test: &ImageSet,
    n: usize,
    step: usize,
    inception: Option<&InceptionV3>,
    device: &Device,
) -> Result<ReconRow> {
    let plain = device.clone().without_autodiff();
    let ae = ae.clone().to_device(&plain);
    let name = recon_table("recon", n, config.train.eval_images);
    evaluate_reconstruction(run, &name, test, n, step, inception, &plain, &|x| ae.decode(ae.encode(x).mean))
}

/// The table an evaluation on `n` images goes to: `base` itself on the run's own
/// `train.eval_images` (`run_n`: the rows written while training), `base-nN` on any other count,
/// so that an evaluation on more images never replaces a training-time row of the same step.
pub fn recon_table(base: &str, n: usize, run_n: usize) -> String {
    if n == run_n { base.to_string() } else { format!("{base}-n{n}") }
}

/// The same evaluation of any reconstruction `recon` (a conv VAE, or a baseline such as patch
/// PCA at the same latent size) of the first `n` images of `test`, written to `RUN/<name>.json`,
/// `<name>.md` and `<name>-step-NNNNNN.png`.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_reconstruction(
    run: &Path,
    name: &str,
    test: &ImageSet,
    n: usize,
    step: usize,
    inception: Option<&InceptionV3>,
    plain: &Device,
    recon: &dyn Fn(Tensor<4>) -> Tensor<4>,
) -> Result<ReconRow> {
    let shape = test.shape;
    let n = n.min(test.len());
    let subset = test.clone().truncate(n);
    let mut originals: Vec<f32> = Vec::with_capacity(n * shape.numel());
    let mut reconstructed: Vec<f32> = Vec::with_capacity(n * shape.numel());
    for (images, labels) in ordered_batches(&subset, 100) {
        let b = labels.len();
        let x = Tensor::<4>::from_data(
            TensorData::new(images.clone(), [b, shape.channels, shape.height, shape.width]),
            plain,
        );
        let y = recon(x).clamp(-1.0, 1.0);
        reconstructed.extend(y.into_data().try_into_vec::<f32>().expect("f32"));
        originals.extend(images);
    }
    let recon = reconstructed;
    let mse = originals.iter().zip(&recon).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>() / originals.len() as f64;
    let raw = |pixels: &[f32]| -> Vec<RawImage> {
        pixels
            .chunks(shape.numel())
            .map(|p| RawImage {
                channels: shape.channels,
                height: shape.height,
                width: shape.width,
                pixels: p.iter().map(|&v| from_unit(v)).collect(),
            })
            .collect()
    };
    let rfid = match inception {
        Some(net) => {
            let reference = reference_features(run, &raw(&originals), net, plain)?;
            let features = inception_features(net, &raw(&recon), 25, plain, &|_| ());
            Some(frechet_distance(&Stats::of(&features, FEATURE_DIM), &Stats::of(&reference, FEATURE_DIM)))
        }
        None => None,
    };
    let cols = 8.min(n);
    let per = shape.numel();
    let mut rows = Vec::new();
    for r in 0..2.min(n.div_ceil(cols)) {
        let range = |src: &[f32]| {
            (0..cols)
                .filter_map(|c| src.get((r * cols + c) * per..(r * cols + c + 1) * per).map(<[f32]>::to_vec))
                .collect::<Vec<_>>()
        };
        rows.push(range(&originals));
        rows.push(range(&recon));
    }
    save_grid(&run.join(format!("{name}-step-{step:06}.png")), &rows, shape, 4)?;
    let row = ReconRow { step, n, mse, psnr: psnr(mse), rfid };
    let mut all: Vec<ReconRow> = read_rows(run, name)?.into_iter().filter(|r| r.step != step).collect();
    all.push(row.clone());
    all.sort_by_key(|r| r.step);
    write_atomic(
        &run.join(format!("{name}.json")),
        serde_json::to_string_pretty(&all).expect("serialises").as_bytes(),
    )?;
    let table: String =
        std::iter::once("| step | images | MSE | PSNR (dB) | rFID |\n|---:|---:|---:|---:|---:|\n".to_string())
            .chain(all.iter().map(|r| {
                format!(
                    "| {} | {} | {:.5} | {:.2} | {} |\n",
                    r.step,
                    r.n,
                    r.mse,
                    r.psnr,
                    r.rfid.map(|f| format!("{f:.2}")).unwrap_or_else(|| "-".into())
                )
            }))
            .collect();
    write_atomic(&run.join(format!("{name}.md")), table.as_bytes())?;
    Ok(row)
}

/// Inception features of the evaluation originals, cached in the run folder, one file per count.
fn reference_features(run: &Path, originals: &[RawImage], net: &InceptionV3, device: &Device) -> Result<Vec<f32>> {
    let path = run.join(format!("recon-reference-n{}.safetensors", originals.len()));
    let tag = format!("tokenizer eval originals: {} images", originals.len());
    if path.exists() {
        let (features, meta) = load_features(&path)?;
        if meta == tag && features.len() == originals.len() * FEATURE_DIM {
            return Ok(features);
        }
    }
    let features = inception_features(net, originals, 25, device, &|_| ());
    save_features(&path, &features, &tag)?;
    Ok(features)
}

/// `RUN/recon.json` (empty when not written yet).
pub fn read_recon(run: &Path) -> Result<Vec<ReconRow>> {
    read_rows(run, "recon")
}

/// `RUN/<name>.json` (empty when not written yet); `name` as [`recon_table`] gives it.
pub fn read_recon_table(run: &Path, name: &str) -> Result<Vec<ReconRow>> {
    read_rows(run, name)
}

/// `RUN/<name>.json` (empty when not written yet).
fn read_rows(run: &Path, name: &str) -> Result<Vec<ReconRow>> {
    let path = run.join(format!("{name}.json"));
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).at(&path)?;
    serde_json::from_str(&text).map_err(|e| Error::format(&path, format!("invalid reconstruction table ({e})")))
}

/// One line for the terminal.
pub fn format_recon(r: &ReconRow) -> String {
    format!(
        "step {}: reconstruction of {} test images: MSE {:.5}, PSNR {:.2} dB{}",
        r.step,
        r.n,
        r.mse,
        r.psnr,
        r.rfid.map(|f| format!(", rFID-{} {f:.2}", r.n)).unwrap_or_default()
    )
}
