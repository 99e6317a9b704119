//! MAR with Diffusion Loss (Li, Tian, Li, Deng, He, arXiv 2406.11838): masked autoregressive
//! generation over continuous tokens. `order` holds the masking and generation schedules; the
//! per-token denoising MLP is `models::diffusion_head`.

pub mod order;

pub use order::{MaskSchedule, mask_of, mask_ratio, masked_count, random_order};
