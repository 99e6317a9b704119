//! # ddmlab
//!
//! Denoising diffusion models as image generators and as self-supervised representation
//! learners, on burn. This crate is the library; the `ddmlab` binary is a thin layer over it.
//!
//! The first capability is l-DAE (Chen, Liu, Xie, He, arXiv 2401.14404): a patch-wise PCA
//! tokenizer, Gaussian noise in the PCA latent mapped back to pixels, a ViT of DiT blocks that
//! predicts the clean image under a weighted PCA-residual loss, and a linear probe on the frozen
//! encoder. See `ARCHITECTURE.md` for the code map and invariants.
//!
//! The generative side: DDPM / DDIM sampling with classifier-free guidance from a class-
//! conditional DiT trained with the DDPM objective (`generate`), and MAR with the Diffusion Loss
//! (Li et al., arXiv 2406.11838): masked autoregressive generation over continuous tokens (`mar`).
//!
//! No module here picks a device: every entry point takes a `&Device`.

pub mod atomic;
pub mod config;
pub mod data;
pub mod deconstruct;
pub mod diffusion;
pub mod error;
pub mod eval;
pub mod field_diff;
pub mod generate;
pub mod mar;
pub mod models;
pub mod nn;
pub mod optim;
pub mod parallel;
pub mod recipes;
pub mod runs;
pub mod settings;
pub mod stats;
pub mod store;
pub mod study;
pub mod tokenizer;
pub mod train;
pub mod viz;

pub use error::{Error, Result};
