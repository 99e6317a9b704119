//! Storage of runs, below training and everything that reads a run back: checkpoint folders
//! and their one state type, metrics lines, the run folder's config and how a run opens it, and
//! the provenance every stage records, and the TensorBoard event files beside the metrics.

pub mod checkpoint;
pub mod folder;
pub mod metrics;
pub mod provenance;
pub mod stored_config;
pub mod tensorboard;

pub use checkpoint::CheckpointState;
pub use stored_config::StoredConfig;
