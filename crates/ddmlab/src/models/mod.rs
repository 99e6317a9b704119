//! Networks and the one preset registry.

pub mod ladder;
pub mod presets;
pub mod vit;

pub use presets::{Preset, preset, preset_names};
pub use vit::{DenoisingVit, VitConfig};
