//! Diffusion math, separate from networks: noise schedules (f64 tables), training objectives
//! and samplers. Nothing here knows a network's type; samplers reach one through
//! [`sampler::Denoiser`].

pub mod ddpm;
pub mod ldae;
pub mod sampler;
pub mod schedule;
pub mod vp;

pub use ddpm::{DdpmObjective, DdpmTerms};
pub use ldae::{LdaeObjective, LdaeTerms};
pub use sampler::{Denoiser, Guidance, Sampler, SamplerKind, TimestepMap};
pub use schedule::SigmaSchedule;
pub use vp::{BetaSchedule, Prediction, VpSchedule};
