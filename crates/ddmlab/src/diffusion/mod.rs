//! Diffusion math, separate from networks: noise processes (f64 tables), the one denoising
//! objective and the samplers. Nothing here knows a network's type; samplers reach one through
//! [`sampler::Denoiser`], the objective through tokens in and out.

pub mod denoise;
pub mod noise;
pub mod sampler;
pub mod schedule;
pub mod vlb;
pub mod vp;

pub use denoise::{DenoiseObjective, InputSpace, NoiseSpace, Target};
pub use noise::{ErrorOn, LossWeight, NoiseSchedule, NoiseTables};
pub use sampler::{Denoiser, Guidance, Sampler, SamplerKind, TimestepMap};
pub use schedule::SigmaSchedule;
pub use vp::{BetaSchedule, Prediction, VpSchedule};
