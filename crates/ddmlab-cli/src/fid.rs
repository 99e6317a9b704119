//! `ddmlab fid`: FID (and KID) between two image sources.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use ddmlab::data::fetch::inception_path;
use ddmlab::eval::fid::{FidSource, source_features};
use ddmlab::eval::frechet::{Stats, frechet_distance, kid};
use ddmlab::eval::inception::{FEATURE_DIM, InceptionV3};
use ddmlab::eval::npz::{read_stats, write_stats};
use ddmlab::eval::precision_recall::precision_recall;
use indicatif::ProgressBar;

use crate::args::FidArgs;
use crate::progress::styled;
use crate::setup;

pub fn run(args: FidArgs) -> Result<()> {
    let a: FidSource = args.a.parse()?;
    let b = if args.save_stats {
        let out = std::path::PathBuf::from(&args.b);
        if out.extension().is_none_or(|e| e != "npz") {
            bail!("{}: --save-stats writes an .npz file, expected a path ending in .npz", out.display());
        }
        None
    } else {
        Some(args.b.parse::<FidSource>()?)
    };
    if (args.kid || args.pr) && [Some(&a), b.as_ref()].into_iter().flatten().any(|s| matches!(s, FidSource::Stats(_))) {
        let what = if args.kid { "KID" } else { "precision / recall" };
        bail!("{what} needs the features of both sources; a statistics file (mu, sigma) holds none");
    }
    if args.batch_size == 0 {
        bail!("invalid value for --batch-size: 0, expected at least 1");
    }
    if args.kid && (args.kid_subsets == 0 || args.kid_subset_size < 2) {
        bail!("invalid KID settings: --kid-subsets must be positive and --kid-subset-size at least 2");
    }
    let data_root = &args.common.data_dir;
    let weights = args.weights.clone().unwrap_or_else(|| inception_path(data_root));
    let device = setup::device(&args.common.device)?;
    let sources: Vec<&FidSource> = [Some(&a), b.as_ref()].into_iter().flatten().collect();
    let needs_net = sources.iter().any(|s| !matches!(s, FidSource::Stats(_)));
    if needs_net && !weights.exists() {
        bail!("{}: no FID Inception weights; run `ddmlab data fetch inception` (or pass --weights)", weights.display());
    }
    let net = if needs_net { Some(InceptionV3::load(&weights, &device)?) } else { None };
    let cache = data_root.join("fid-cache");
    let started = std::time::Instant::now();
    let mut features = Vec::new();
    let mut stats = Vec::new();
    for source in sources {
        if let FidSource::Stats(path) = source {
            stats.push(read_stats(path)?);
            features.push(Vec::new());
            continue;
        }
        let net = net.as_ref().expect("loaded when a source has images");
        let bar = styled(ProgressBar::hidden(), " images");
        let done = AtomicU64::new(0);
        let t0 = std::time::Instant::now();
        let f = source_features(
            net,
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
        stats.push(Stats::of(&f, FEATURE_DIM));
        features.push(f);
    }
    let Some(b) = b else {
        write_stats(std::path::Path::new(&args.b), &stats[0])?;
        println!("{}: statistics of {a} ({} images, {FEATURE_DIM} features)", args.b, stats[0].n);
        return Ok(());
    };
    let (sa, sb) = (&stats[0], &stats[1]);
    if sa.mu.len() != sb.mu.len() {
        bail!("the statistics have {} and {} features: not the same network's", sa.mu.len(), sb.mu.len());
    }
    let fid = frechet_distance(sa, sb);
    let count = |s: &Stats| if s.n > 0 { format!("{} images", s.n) } else { "statistics".to_string() };
    println!("FID {fid:.4}  ({a}: {}, {b}: {})", count(sa), count(sb));
    let mut record = serde_json::json!({"a": a.to_string(), "b": b.to_string(), "n_a": sa.n, "n_b": sb.n, "fid": fid});
    if args.kid {
        let (mean, std) = kid(&features[0], &features[1], FEATURE_DIM, args.kid_subsets, args.kid_subset_size, 0);
        println!("KID {mean:.6} +- {std:.6}  ({} subsets of {})", args.kid_subsets, args.kid_subset_size);
        record["kid"] = serde_json::json!(mean);
        record["kid_std"] = serde_json::json!(std);
    }
    if args.pr {
        let (fake, real) = (&features[0], &features[1]);
        let k = ddmlab::eval::gen_eval::PR_K;
        if fake.len().min(real.len()) <= k * FEATURE_DIM {
            bail!("precision / recall needs more than {k} images in each source");
        }
        let pr = precision_recall(real, fake, FEATURE_DIM, k, &device);
        println!("precision {:.4}  recall {:.4}  (k = {k}; {b} as the reference)", pr.precision, pr.recall);
        record["precision"] = serde_json::json!(pr.precision);
        record["recall"] = serde_json::json!(pr.recall);
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
