//! Diffusion math, separate from networks: noise schedules (f64 tables) and training
//! objectives. Nothing here knows a network's type.

pub mod ldae;
pub mod schedule;

pub use ldae::{LdaeObjective, LdaeTerms};
pub use schedule::SigmaSchedule;
