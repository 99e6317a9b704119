//! The recipes: every named configuration a user can start from, in one registry
//! (`presets`), built from shared parts (`parts`), with the l-DAE paper's ladder of rungs
//! (`ladder`) and the conv tokenizer presets (`tokenizers`).

pub mod ladder;
pub mod parts;
pub mod presets;
pub mod tokenizers;

pub use presets::{Preset, preset, preset_names};
pub use tokenizers::{TokenizerPreset, tokenizer_preset, tokenizer_preset_names};
