//! `ddmlab bench`: images per second of the l-DAE training step on synthetic images.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ddmlab::data::loader::Batch;
use ddmlab::tokenizer::PatchPca;
use ddmlab::train::LdaeTrainer;

use crate::args::BenchArgs;
use crate::setup;

pub fn run(args: BenchArgs) -> Result<()> {
    let mut config = crate::pretrain::base_config(&args.preset, args.config.as_deref(), &args.overrides)?;
    config.train.batch_size = args.batch_size;
    config.validate()?;
    let device = setup::device(&args.common.device)?;
    let shape = config.model.image;
    let dim = config.model.patch * config.model.patch * shape.channels;
    // An identity basis: speed does not depend on the basis values.
    let pca = PatchPca {
        patch: config.model.patch,
        channels: shape.channels,
        mean: vec![0.0; dim],
        components: (0..dim * dim).map(|i| if i / dim == i % dim { 1.0 } else { 0.0 }).collect(),
        eigenvalues: vec![1.0; dim],
    };
    let mut trainer = LdaeTrainer::new(config.clone(), &pca, &device);
    let b = args.batch_size;
    let batch = |step: usize| Batch {
        step,
        images: (0..b * shape.numel()).map(|i| ((i * 7919 + step) % 255) as f32 / 127.5 - 1.0).collect(),
        labels: vec![0; b],
    };
    for s in 0..3 {
        trainer.step(&batch(s), 1e-4)?;
    }
    let start = Instant::now();
    for s in 0..args.steps {
        trainer.step(&batch(3 + s), 1e-4)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let ours = (args.steps * b) as f64 / secs;
    let threads = rayon::current_num_threads();
    println!(
        "ddmlab  l-DAE train step, {} (patch {}, d {}, batch {b}, {threads} threads): {ours:.1} img/s ({:.1} ms/step), peak RSS {:.0} MB",
        args.config.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| format!("preset {}", args.preset)),
        config.model.patch,
        config.ldae.latent_dim,
        1000.0 * secs / args.steps as f64,
        peak_rss_mb().unwrap_or(f64::NAN)
    );
    if args.pytorch {
        let theirs = pytorch(&config, &args, threads)?;
        println!(
            "pytorch l-DAE train step, same config (batch {b}, {threads} threads, torch {}): {:.1} img/s ({:.1} ms/step), peak RSS {:.0} MB",
            theirs.torch, theirs.img_per_s, theirs.ms_per_step, theirs.peak_rss_mb
        );
        println!("ratio ddmlab / pytorch: {:.2}x", ours / theirs.img_per_s);
    }
    Ok(())
}

/// What `bench/pytorch_ldae.py bench` prints.
#[derive(serde::Deserialize)]
struct TorchBench {
    img_per_s: f64,
    ms_per_step: f64,
    peak_rss_mb: f64,
    torch: String,
}

/// Run the PyTorch reference step with the same config, batch and threads.
fn pytorch(config: &ddmlab::config::RunConfig, args: &BenchArgs, threads: usize) -> Result<TorchBench> {
    let script = std::path::Path::new(&args.script);
    if !script.exists() {
        bail!("{}: not found (run from the repository root or pass --script)", script.display());
    }
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, config.to_toml())?;
    let out = Command::new(&args.python)
        .arg(script)
        .args(["bench", "--config"])
        .arg(&cfg)
        .args(["--batch-size", &args.batch_size.to_string(), "--steps", &args.steps.to_string()])
        .args(["--threads", &threads.to_string()])
        .output()
        .with_context(|| format!("cannot start {}", args.python))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        bail!("the PyTorch benchmark failed ({}): {last} (it needs `pip install torch numpy`)", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("unexpected output from the PyTorch benchmark: {text}"))
}

/// Peak resident memory of this process (Linux), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}
