//! Networks and the one preset registry.

pub mod classifier;
pub mod conv_ae;
pub mod diffusion_head;
pub mod finetune;
pub mod mar;
pub mod patchgan;
pub mod vit;

pub use vit::{DenoisingVit, VitConfig};
