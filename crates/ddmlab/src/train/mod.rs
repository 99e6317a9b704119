//! Training: one step of each trainer (the denoiser's, the conv tokenizer's, the perceptual
//! classifier's), their checkpoint files, and the one run driver that runs any of them as a
//! [`driver::Stage`]. Progress is reported through [`observer::Observer`]; nothing here prints.

pub mod ae_losses;
pub mod conv_tokenizer;
pub mod driver;
pub mod finetune;
pub mod interop;
pub mod interop_mar;
pub mod objective;
pub mod observer;
pub mod perceptual;
pub mod run_folder;
pub mod step;
pub mod trainer_state;

pub use objective::{Draws, TrainObjective};
pub use observer::{Observer, Silent, StepReport};
pub use step::{Network, Objective, Trainer};
