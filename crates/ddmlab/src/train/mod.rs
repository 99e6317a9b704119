//! Training: the learning-rate schedule, the EMA of weights, checkpoints, metrics and the
//! pretraining loop. Progress is reported through [`observer::Observer`]; nothing here prints.

pub mod ae_losses;
pub mod checkpoint;
pub mod clip;
pub mod conv_tokenizer;
pub mod ema;
pub mod interop;
pub mod lr;
pub mod metrics;
pub mod objective;
pub mod observer;
pub mod perceptual;
pub mod pretrain;
pub mod run_folder;
pub mod step;
pub mod tokenizer_run;

pub use objective::{Draws, TrainObjective};
pub use observer::{Observer, Silent, StepReport};
pub use pretrain::{PretrainOptions, PretrainSummary, pretrain};
pub use step::{Network, Objective, Trainer};
