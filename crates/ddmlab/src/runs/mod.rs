//! The runs a user starts: pretraining (l-DAE, DiT, MAR and every ladder rung through one
//! loop), a conv tokenizer's training with its reconstruction metrics, and the tokenizer a run
//! fits or trains once. They put together the layers below: training steps and storage,
//! MAR's objective, evaluation.

pub mod finetune;
pub mod pretrain;
pub mod token_cache;
pub mod tokenizer;
pub mod tokenizer_fit;

pub use pretrain::{PretrainOptions, PretrainSummary, pretrain};
pub use tokenizer_fit::{FitOptions, load_or_fit_tokenizer};
