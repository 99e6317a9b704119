//! A fine-tuned classifier's top-1 accuracy on the test split, measured at each regular
//! checkpoint of its run and kept in `RUN/finetune.json`.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::data::{ImageSet, loader::ordered_batches};
use crate::error::{Error, Result};
use crate::models::finetune::Finetuned;
use crate::train::finetune::{ClassifyObjective, FinetuneEncoder};

/// One measurement of a fine-tuned network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyRow {
    pub step: usize,
    /// Top-1 accuracy on the test split, in percent.
    pub top1: f64,
    /// Test images.
    pub n: usize,
}

/// `RUN/finetune.json`.
pub fn rows_path(run: &Path) -> PathBuf {
    run.join("finetune.json")
}

/// The measurements in `RUN/finetune.json` (none when it is not there).
pub fn read_rows(run: &Path) -> Result<Vec<AccuracyRow>> {
    let path = rows_path(run);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).map_err(|e| Error::format(&path, format!("not a fine-tuning table ({e})")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// The test top-1 of the fine-tuning run in `run` once it has trained to its last step (`None`
/// before: not started, stopped part-way, or not measured there).
pub fn final_top1(run: &Path) -> Result<Option<f64>> {
    let Some(ckpt) = crate::store::checkpoint::latest(run)? else { return Ok(None) };
    let state: crate::store::checkpoint::CheckpointState = crate::store::checkpoint::read_state(&ckpt)?;
    if state.step < state.total_steps {
        return Ok(None);
    }
    Ok(read_rows(run)?.into_iter().find(|r| r.step == state.step).map(|r| r.top1))
}

/// The top-1 accuracy (percent) of `model` on `test` through `objective` (on `device`).
pub fn accuracy<E: FinetuneEncoder>(
    model: &Finetuned<E>,
    objective: &ClassifyObjective,
    test: &ImageSet,
    device: &Device,
) -> f64 {
    let s = test.shape;
    let mut right = 0usize;
    for (images, labels) in ordered_batches(test, 250) {
        let b = labels.len();
        let x = Tensor::<4>::from_data(TensorData::new(images, [b, s.channels, s.height, s.width]), device);
        let predicted = objective.logits(model, x).argmax(1).into_data().convert::<i64>();
        let predicted: Vec<i64> = predicted.try_into_vec().expect("class indices");
        right += predicted.iter().zip(&labels).filter(|(p, y)| **p == **y as i64).count();
    }
    100.0 * right as f64 / test.len().max(1) as f64
}

/// Measure `model` at `step` and record it in `RUN/finetune.json` (a row of the same step is
/// replaced: a resumed run measures its checkpoint again).
pub fn record_accuracy<E: FinetuneEncoder>(
    run: &Path,
    step: usize,
    model: &Finetuned<E>,
    objective: &ClassifyObjective,
    test: &ImageSet,
    device: &Device,
) -> Result<()> {
    let top1 = accuracy(model, objective, test, device);
    let mut rows: Vec<AccuracyRow> = read_rows(run)?.into_iter().filter(|r| r.step != step).collect();
    rows.push(AccuracyRow { step, top1, n: test.len() });
    rows.sort_by_key(|r| r.step);
    let text = serde_json::to_string_pretty(&rows).expect("rows serialise");
    crate::atomic::write_atomic(&rows_path(run), text.as_bytes())
}
