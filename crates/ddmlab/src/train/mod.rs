//! Training: the learning-rate schedule, the EMA of weights, checkpoints, metrics and the
//! pretraining loop. Progress is reported through [`observer::Observer`]; nothing here prints.

pub mod ae_losses;
pub mod checkpoint;
pub mod conv_tokenizer;
pub mod interop;
pub mod metrics;
pub mod objective;
pub mod observer;
pub mod perceptual;
pub mod run_folder;
pub mod step;

pub use objective::{Draws, TrainObjective};
pub use observer::{Observer, Silent, StepReport};
pub use step::{Network, Objective, Trainer};
