//! Networks and the one preset registry.

pub mod classifier;
pub mod conv_ae;
pub mod diffusion_head;
pub mod ladder;
pub mod mar;
pub mod patchgan;
pub mod presets;
pub mod vit;

pub use presets::{Preset, TokenizerPreset, preset, preset_names, tokenizer_preset, tokenizer_preset_names};
pub use vit::{DenoisingVit, VitConfig};
