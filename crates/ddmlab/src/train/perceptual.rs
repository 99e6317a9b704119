//! The conv tokenizer's first stage: the perceptual classifier, trained on the data set's labels
//! (cross-entropy, AdamW, cosine learning rate) before the autoencoder uses its features. Like
//! every stage that takes minutes, it checkpoints, stops cleanly at the time limit and resumes
//! where it stopped; a resumed classifier is the one an uninterrupted stage gives (the batches
//! and the learning rate are functions of the step).
//!
//! ```text
//! RUN/perceptual.bpk, .json                  the finished classifier and its test accuracy
//! RUN/perceptual/checkpoints/step-NNNNNN/    net.bpk optim.bpk state.json (while it trains)
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, read_bytes};
use super::conv_tokenizer::AeState;
use super::observer::Observer;
use crate::atomic::write_atomic;
use crate::data::ImageSet;
use crate::data::loader::{BatchPlan, ordered_batches};
use crate::data::transform::Augment;
use crate::error::{Error, IoContext, Result};
use crate::models::classifier::{Classifier, ClassifierConfig};
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
    /// Stopped at the time limit after `step` of `total` steps, with a checkpoint.
    Stopped { step: usize, total: usize },
}

/// `RUN/perceptual.bpk`: the finished classifier.
pub fn perceptual_path(run: &Path) -> PathBuf {
    run.join("perceptual.bpk")
}

/// `RUN/perceptual/`: the stage's checkpoints while it trains.
pub fn stage_dir(run: &Path) -> PathBuf {
    run.join("perceptual")
}

/// The run's perceptual classifier: loaded when finished, else trained on the training labels
/// (resuming the stage's latest checkpoint) until done or until `deadline`.
pub fn load_or_train(
    run: &Path,
    config: &TokenizerRunConfig,
    train: &ImageSet,
    test: &ImageSet,
    deadline: Option<Instant>,
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
    let stage = stage_dir(run);
    let ad = device.clone().autodiff();
    let mut net = crate::nn::init::seeded(&ad, config.train.seed ^ 0x5EED, |ad| net_config.init(ad));
    let mut optim = adamw();
    let mut state = AeState { step: 0, elapsed_s: 0.0 };
    match checkpoint::latest(&stage)? {
        Some(ckpt) => {
            net = checkpoint::load_into(net, &ckpt.join("net.bpk"))?;
            let optim_path = ckpt.join("optim.bpk");
            optim = optim
                .from_bytes(read_bytes(&optim_path)?)
                .map_err(|e| Error::format(&optim_path, format!("invalid optimizer state ({e})")))?;
            state = checkpoint::read_state(&ckpt)?;
            obs.message(&format!("resuming the perceptual classifier at step {} of {}", state.step, p.steps));
        }
        None => obs.message(&format!("training the perceptual classifier ({} steps of {})", p.steps, p.batch_size)),
    }
    let started = Instant::now();
    let elapsed_before = state.elapsed_s;
    let plan = BatchPlan { seed: config.train.seed ^ 0x5EED, batch_size: p.batch_size, augment: Augment::None };
    let shape = train.shape;
    let ce = CrossEntropyLossConfig::new().init(&ad);
    while state.step < p.steps {
        let step = state.step;
        let batch = plan.make(train, step);
        let b = batch.labels.len();
        let x =
            Tensor::<4>::from_data(TensorData::new(batch.images, [b, shape.channels, shape.height, shape.width]), &ad);
        let y = Tensor::<1, Int>::from_data(
            TensorData::new(batch.labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [b]),
            &ad,
        );
        let loss = ce.forward(net.forward(x), y);
        let lr = p.lr * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / p.steps as f64).cos());
        let grads = crate::nn::grads::contiguous(&net, GradientsParams::from_grads(loss.backward(), &net));
        net = optim.step(lr, net, grads);
        state.step = step + 1;
        state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
        if state.step < p.steps && (state.step.is_multiple_of(CHECKPOINT_EVERY) || out_of_time) {
            save_stage(&stage, &net, &optim, &state)?;
            if out_of_time {
                return Ok(PerceptualStage::Stopped { step: state.step, total: p.steps });
            }
        }
    }
    let net = net.valid();
    let accuracy = accuracy(&net, test, device);
    let report = PerceptualReport { steps: p.steps, test_accuracy: accuracy, seconds: state.elapsed_s };
    obs.message(&format!("perceptual classifier: test accuracy {:.2}% ({:.0} s)", 100.0 * accuracy, report.seconds));
    let bytes = net
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| Error::Other(format!("serialising the perceptual classifier: {e}")))?;
    write_atomic(&path, &bytes)?;
    write_atomic(&run.join("perceptual.json"), serde_json::to_string_pretty(&report).expect("serialises").as_bytes())?;
    if stage.exists() {
        std::fs::remove_dir_all(&stage).at(&stage)?;
    }
    Ok(PerceptualStage::Ready(Box::new(net)))
}

fn adamw() -> ModuleOptimizer {
    AdamWConfig::new().with_weight_decay(0.0).init()
}

fn save_stage(stage: &Path, net: &Classifier, optim: &ModuleOptimizer, state: &AeState) -> Result<PathBuf> {
    let rec = |e: burn::store::RecordError| Error::Other(format!("serialising the perceptual checkpoint: {e}"));
    let net = net.valid().into_record().into_bytes().map_err(rec)?;
    let optim = optim.into_bytes().map_err(rec)?;
    let json = serde_json::to_string_pretty(state).expect("serialises");
    checkpoint::save_step_files(
        stage,
        state.step,
        &[("net.bpk", &net[..]), ("optim.bpk", &optim[..]), ("state.json", json.as_bytes())],
    )
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
