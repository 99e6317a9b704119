//! MAR with Diffusion Loss (Li, Tian, Li, Deng, He, arXiv 2406.11838): masked autoregressive
//! generation over continuous tokens. `order` holds the masking and generation schedules,
//! `objective` the training draws and loss, `generate` the sampler; the network is `models::mar` and the per-token
//! denoising MLP `models::diffusion_head`.

pub mod codebook;
pub mod generate;
pub mod objective;
pub mod order;

pub use generate::{MarSampling, MarSpec, generate, sample_mar_images, sample_tokens};
pub use objective::{MarDraws, MarObjective};
pub use order::{MaskSchedule, mask_of, mask_ratio, masked_count, random_order, variant_order};
