//! How training reports progress without printing: the caller (the CLI's progress bar, a
//! test) implements [`Observer`].

use std::path::Path;

/// One optimisation step, as reported.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// Steps done (1-based after the step).
    pub step: usize,
    pub total: usize,
    pub loss: f64,
    pub lr: f64,
    /// Training throughput over the run so far, images per second.
    pub img_per_s: f64,
}

/// Receives training events.
pub trait Observer {
    /// The run starts (or resumes) at `step` of `total`.
    fn start(&mut self, _step: usize, _total: usize) {}
    /// A step finished.
    fn step(&mut self, _report: &StepReport) {}
    /// A checkpoint was written.
    fn checkpoint(&mut self, _path: &Path) {}
    /// A line worth telling the user (resolved schedule, PCA fit, ...).
    fn message(&mut self, _text: &str) {}
    /// The run ended.
    fn finish(&mut self) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}
