//! Judging models: representations (features from a frozen encoder, the linear probe and kNN)
//! and generators (the FID Inception network, FID, KID, improved precision and recall).

pub mod features;
pub mod fid;
pub mod frechet;
pub mod gen_eval;
pub mod inception;
pub mod knn;
pub mod npz;
pub mod precision_recall;
pub mod probe;
pub mod report;
pub mod row_sampler;
pub mod top1;

pub use features::{Encoder, Features, Pool, encoder_features, pixel_features};
pub use knn::knn_top1;
pub use probe::{ProbeConfig, linear_probe};
