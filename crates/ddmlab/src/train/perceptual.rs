//! The conv tokenizer's first stage: the perceptual classifier, trained on the data set's labels
//! (cross-entropy, AdamW, cosine learning rate) before the autoencoder uses its features. Like
//! every stage that takes minutes, it checkpoints, stops cleanly at the time limit and resumes
//! where it stopped; a resumed classifier is the one an uninterrupted stage gives (the batches
//! and the learning rate are functions of the step).
//!
//! ```text
//! RUN/perceptual.bpk, .json                  the finished classifier and its test accuracy
//! RUN/perceptual-metrics.jsonl               its training loss, one line per `log_every` steps
//! RUN/perceptual/checkpoints/step-NNNNNN/    net.bpk optim.bpk state.json (while it trains)
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Bytes, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::driver::{Limits, Plan, Progress, Stage, StepOut, drive, loss_line};
use super::observer::Observer;
use crate::atomic::write_atomic;
use crate::data::loader::{Batch, BatchPlan, ordered_batches};
use crate::data::transform::Augment;
use crate::data::{ImageSet, ImageShape};
use crate::error::{Error, IoContext, Result};
use crate::models::classifier::{Classifier, ClassifierConfig};
use crate::store::checkpoint::{self, CheckpointState, read_bytes};
use crate::store::metrics::MetricLine;
use crate::tokenizer::conv_config::TokenizerRunConfig;

/// Steps between the stage's checkpoints.
pub const CHECKPOINT_EVERY: usize = 100;

/// The perceptual classifier's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerceptualReport {
    pub steps: usize,
    pub test_accuracy: f64,
    pub seconds: f64,
}

/// What the stage left.
pub enum PerceptualStage {
    /// The trained classifier (loaded, or trained to the end now).
    Ready(Box<Classifier>),
    /// Stopped at the time limit, with a checkpoint.
    Stopped,
}

/// `RUN/perceptual.bpk`: the finished classifier.
pub fn perceptual_path(run: &Path) -> PathBuf {
    run.join("perceptual.bpk")
}

/// `RUN/perceptual-metrics.jsonl`: the classifier's training loss.
pub fn metrics_path(run: &Path) -> PathBuf {
    run.join("perceptual-metrics.jsonl")
}

/// `RUN/perceptual/`: the stage's checkpoints while it trains.
pub fn stage_dir(run: &Path) -> PathBuf {
    run.join("perceptual")
}

/// The run's perceptual classifier: loaded when finished, else trained on the training labels
/// by the run driver (resuming the stage's latest checkpoint) until done or until `limits`.
pub fn load_or_train(
    run: &Path,
    config: &TokenizerRunConfig,
    train: &Arc<ImageSet>,
    test: &ImageSet,
    limits: Limits,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<PerceptualStage> {
    let net_config = ClassifierConfig {
        in_channels: config.model.image.channels,
        widths: config.perceptual.widths.clone(),
        classes: train.num_classes().max(test.num_classes()),
    };
    let path = perceptual_path(run);
    if path.exists() {
        let net = checkpoint::load_into(crate::nn::init::exclusive(|| net_config.init(device)), &path)?;
        return Ok(PerceptualStage::Ready(Box::new(net)));
    }
    let p = &config.perceptual;
    let stage_run = stage_dir(run);
    let ad = device.clone().autodiff();
    let seed = config.train.seed ^ 0x5EED;
    let mut stage = ClassifierStage {
        net: crate::nn::init::seeded(&ad, seed, |ad| net_config.init(ad)),
        optim: adamw(),
        ce: CrossEntropyLossConfig::new().init(&ad),
        lr: p.lr,
        shape: train.shape,
        device: ad,
    };
    let mut state = CheckpointState { step: 0, total_steps: p.steps, elapsed_s: 0.0 };
    match checkpoint::latest(&stage_run)? {
        Some(ckpt) => {
            stage.net = checkpoint::load_into(stage.net, &ckpt.join("net.bpk"))?;
            let optim_path = ckpt.join("optim.bpk");
            stage.optim = stage
                .optim
                .from_bytes(read_bytes(&optim_path)?)
                .map_err(|e| Error::format(&optim_path, format!("invalid optimizer state ({e})")))?;
            state = checkpoint::read_state(&ckpt)?;
            state.total_steps = p.steps;
            obs.message(&format!("resuming the perceptual classifier at step {} of {}", state.step, p.steps));
        }
        None => obs.message(&format!("training the perceptual classifier ({} steps of {})", p.steps, p.batch_size)),
    }
    let plan = Plan {
        data: train.clone(),
        batches: BatchPlan { seed, batch_size: p.batch_size, augment: Augment::None },
        log_every: config.train.log_every,
        checkpoint_every: CHECKPOINT_EVERY,
    };
    let limits = Limits { stop_after_steps: None, ..limits };
    let outcome = drive(&mut stage, &stage_run, &metrics_path(run), state, plan, limits, obs)?;
    if !outcome.finished {
        return Ok(PerceptualStage::Stopped);
    }
    let net = stage.net.valid();
    let accuracy = accuracy(&net, test, device);
    let report = PerceptualReport { steps: p.steps, test_accuracy: accuracy, seconds: outcome.state.elapsed_s };
    obs.message(&format!("perceptual classifier: test accuracy {:.2}% ({:.0} s)", 100.0 * accuracy, report.seconds));
    let bytes = net
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| Error::Other(format!("serialising the perceptual classifier: {e}")))?;
    write_atomic(&path, &bytes)?;
    write_atomic(&run.join("perceptual.json"), serde_json::to_string_pretty(&report).expect("serialises").as_bytes())?;
    std::fs::remove_dir_all(&stage_run).at(&stage_run)?;
    Ok(PerceptualStage::Ready(Box::new(net)))
}

fn adamw() -> ModuleOptimizer {
    AdamWConfig::new().with_weight_decay(0.0).init()
}

/// The classifier's training as a stage of the run driver: cross-entropy on the labels, AdamW,
/// a cosine learning rate from `lr` to 0.
struct ClassifierStage {
    net: Classifier,
    optim: ModuleOptimizer,
    ce: CrossEntropyLoss,
    lr: f64,
    shape: ImageShape,
    /// The autodiff device.
    device: Device,
}

impl Stage for ClassifierStage {
    type Stats = ();
    type Line = MetricLine;

    fn name(&self) -> &'static str {
        "the perceptual classifier's training"
    }

    fn step(&mut self, batch: &Batch, total: usize) -> Result<StepOut<()>> {
        let b = batch.labels.len();
        let ImageShape { channels: c, height: h, width: w } = self.shape;
        let x = Tensor::<4>::from_data(TensorData::new(batch.images.clone(), [b, c, h, w]), &self.device);
        let y = Tensor::<1, Int>::from_data(
            TensorData::new(batch.labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [b]),
            &self.device,
        );
        let loss = self.ce.forward(self.net.forward(x), y);
        let lr = self.lr * 0.5 * (1.0 + (std::f64::consts::PI * batch.step as f64 / total as f64).cos());
        let grads = crate::nn::grads::contiguous(&self.net, GradientsParams::from_grads(loss.backward(), &self.net));
        self.net = self.optim.step(lr, self.net.clone(), grads);
        Ok(StepOut { loss: loss.into_scalar::<f32>() as f64, lr, stats: () })
    }

    fn line(&self, window: &[StepOut<()>], at: Progress) -> MetricLine {
        loss_line(window, at)
    }

    fn checkpoint_files(&self) -> Result<Vec<(&'static str, Bytes)>> {
        let rec = |e: burn::store::RecordError| Error::Other(format!("serialising the perceptual checkpoint: {e}"));
        Ok(vec![
            ("net.bpk", self.net.valid().into_record().into_bytes().map_err(rec)?),
            ("optim.bpk", self.optim.into_bytes().map_err(rec)?),
        ])
    }
}

/// Top-1 accuracy of `net` on `set`.
fn accuracy(net: &Classifier, set: &ImageSet, device: &Device) -> f64 {
    let shape = set.shape;
    let mut correct = 0usize;
    for (images, labels) in ordered_batches(set, 500) {
        let b = labels.len();
        let x = Tensor::<4>::from_data(TensorData::new(images, [b, shape.channels, shape.height, shape.width]), device);
        let pred = net.forward(x).argmax(1).into_data().convert::<i64>().try_into_vec::<i64>().expect("ints");
        correct += pred.iter().zip(&labels).filter(|(p, l)| **p == **l as i64).count();
    }
    correct as f64 / set.len().max(1) as f64
}
