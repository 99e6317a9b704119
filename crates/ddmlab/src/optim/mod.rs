//! Optimisation schedules and updates shared by every training loop: the learning-rate
//! schedule, the EMA of the weights, global-norm gradient clipping, which weights decay.

pub mod clip;
pub mod decay;
pub mod ema;
pub mod layer_decay;
pub mod lr;
