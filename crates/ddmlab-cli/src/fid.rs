//! `ddmlab fid`: FID (and KID) between two image sources.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use ddmlab::data::fetch::inception_path;
use ddmlab::eval::fid::{FidSource, Stats, frechet_distance, kid, source_features};
use ddmlab::eval::inception::{FEATURE_DIM, InceptionV3};
use indicatif::ProgressBar;

use crate::args::FidArgs;
use crate::progress::styled;
use crate::setup;

pub fn run(args: FidArgs) -> Result<()> {
    let (a, b): (FidSource, FidSource) = (args.a.parse()?, args.b.parse()?);
    if args.batch_size == 0 {
        bail!("invalid value for --batch-size: 0, expected at least 1");
    }
    if args.kid && (args.kid_subsets == 0 || args.kid_subset_size < 2) {
        bail!("invalid KID settings: --kid-subsets must be positive and --kid-subset-size at least 2");
    }
    let data_root = &args.common.data_dir;
    let weights = args.weights.clone().unwrap_or_else(|| inception_path(data_root));
    if !weights.exists() {
        bail!("{}: no FID Inception weights; run `ddmlab data fetch inception` (or pass --weights)", weights.display());
    }
    let device = setup::device(&args.common.device)?;
    let net = InceptionV3::load(&weights, &device)?;
    let cache = data_root.join("fid-cache");
    let started = std::time::Instant::now();
    let mut features = Vec::new();
    for source in [&a, &b] {
        let bar = styled(ProgressBar::hidden(), " images");
        let done = AtomicU64::new(0);
        let t0 = std::time::Instant::now();
        let f = source_features(
            &net,
            source,
            data_root,
            &cache,
            args.n,
            args.batch_size,
            &device,
            &mut |total| {
                bar.set_length(total as u64);
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_message(format!("Inception features of {source}"));
            },
            &|k| {
                let d = done.fetch_add(k as u64, Ordering::Relaxed) + k as u64;
                bar.set_position(d);
                bar.set_message(format!("{source}: {:.1} img/s", d as f64 / t0.elapsed().as_secs_f64().max(1e-9)));
            },
        )?;
        bar.finish_and_clear();
        if f.len() < 2 * FEATURE_DIM {
            bail!("{source}: FID needs at least 2 images, found {}", f.len() / FEATURE_DIM);
        }
        features.push(f);
    }
    let (sa, sb) = (Stats::of(&features[0], FEATURE_DIM), Stats::of(&features[1], FEATURE_DIM));
    let fid = frechet_distance(&sa, &sb);
    println!("FID {fid:.4}  ({a}: {} images, {b}: {} images)", sa.n, sb.n);
    let mut record = serde_json::json!({"a": a.to_string(), "b": b.to_string(), "n_a": sa.n, "n_b": sb.n, "fid": fid});
    if args.kid {
        let (mean, std) = kid(&features[0], &features[1], FEATURE_DIM, args.kid_subsets, args.kid_subset_size, 0);
        println!("KID {mean:.6} +- {std:.6}  ({} subsets of {})", args.kid_subsets, args.kid_subset_size);
        record["kid"] = serde_json::json!(mean);
        record["kid_std"] = serde_json::json!(std);
    }
    eprintln!("({:.1} s)", started.elapsed().as_secs_f64());
    if let Some(path) = &args.json {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("{}: cannot open for appending", path.display()))?;
        writeln!(f, "{record}").with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}
