//! ddmlab's integration tests, one module per subject, linked into one test binary (each
//! binary links burn and wgpu: fourteen of them cost CI about a quarter of an hour of linking).
//!
//! Run one subject with its module path: `cargo test --release -p ddmlab --test integration gpu::`.

mod common;

mod architecture;
mod conv_tokenizer;
mod data_errors;
mod deconstruct;
mod dit;
mod finetune;
mod golden;
#[cfg(feature = "wgpu")]
mod gpu;
mod inception;
mod interop;
mod legacy;
mod mar_official;
mod npz;
mod objective;
mod pca;
mod readers_never_panic;
mod tokenizers;
mod training;
