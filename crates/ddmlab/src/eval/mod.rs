//! Judging representations: features from a frozen encoder, the linear probe and kNN.

pub mod features;
pub mod knn;
pub mod probe;
pub mod report;

pub use features::{Features, Pool, encoder_features, pixel_features};
pub use knn::knn_top1;
pub use probe::{ProbeConfig, linear_probe};
