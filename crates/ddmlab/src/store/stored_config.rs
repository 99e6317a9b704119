//! The config a run stores: one trait over every kind of run's config, so that the storage
//! layer reads and writes them without knowing any.

use std::path::Path;

use crate::error::Result;

/// A run's config as `RUN/config.toml` and every checkpoint store it (a pretraining run's, a
/// conv tokenizer's).
pub trait StoredConfig: Sized {
    /// Parse the stored text; an invalid file is an error naming `origin`.
    fn from_toml(text: &str, origin: &Path) -> Result<Self>;
    fn to_toml(&self) -> String;
}
