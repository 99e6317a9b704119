//! `ddmlab sample`: images from a DiT run to a PNG grid (and optionally a folder of PNGs).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Result, bail};
use ddmlab::data::RawImage;
use ddmlab::eval::npz::{SampleBatch, write_samples};
use ddmlab::generate::{SampleOptions, sample_images, sampler_of};
use ddmlab::mar::{MarSampling, MarSpec, sample_mar_images};
use ddmlab::models::mar::Mar;
use ddmlab::store::checkpoint;
use ddmlab::train::run_folder;
use ddmlab::train::trainer_state;
use ddmlab::viz::grid::{save_grid, save_images};
use indicatif::ProgressBar;

use crate::args::SampleArgs;
use crate::progress::styled;
use crate::setup;

pub fn run(args: SampleArgs) -> Result<()> {
    let ckpt = checkpoint::resolve(args.run.as_deref(), &args.ckpt)?;
    let (config, state) = trainer_state::read_meta(&ckpt)?;
    let kind = args.sampler.kind(args.eta);
    if !(args.eta.is_finite() && (0.0..=1.0).contains(&args.eta)) {
        bail!("invalid value for --eta: {}, expected a number in [0, 1]", args.eta);
    }
    if args.batch_size == 0 {
        bail!("invalid value for --batch-size: 0, expected at least 1");
    }
    if config.mar.is_none() && (args.mar_steps.is_some() || args.temperature != 1.0) {
        bail!(
            "--mar-steps and --temperature are MAR sampling settings; {} is a {} run (use --sampler, --steps, --eta)",
            ckpt.display(),
            config.denoise.label(config.model.image.channels)
        );
    }
    let classes = config.model.num_classes;
    let rows: Vec<usize> = if !args.class.is_empty() {
        args.class.clone()
    } else if classes > 0 {
        (0..classes).collect()
    } else {
        vec![]
    };
    let per_row = match (args.n, rows.len()) {
        (Some(0), _) => bail!("invalid value for --n: 0, expected at least 1"),
        (Some(n), 0) => n,
        (Some(n), r) => n.div_ceil(r),
        (None, _) => 8,
    };
    let labels: Vec<usize> = rows.iter().flat_map(|&y| std::iter::repeat_n(y, per_row)).collect();
    let n = if labels.is_empty() { per_row } else { labels.len() };
    let opts = SampleOptions {
        kind,
        steps: args.steps,
        cfg: args.cfg,
        labels,
        n,
        seed: args.seed,
        chunk: args.batch_size,
        clip_x0: !args.no_clip,
    };
    let device = setup::device(&args.common.device)?;
    let tokenizer = run_folder::load_tokenizer(&checkpoint::run_of(&ckpt), &config)?.bind(config.model.image, &device);
    let started = std::time::Instant::now();
    if args.posterior_variance && !config.mar.as_ref().is_some_and(|m| m.learn_variance) {
        bail!(
            "--posterior-variance is for a MAR run with a learned variance (mar.learn_variance); {} has none",
            ckpt.display()
        );
    }
    // The network keeps its 2 C outputs; the sampler reads only the eps half.
    let sampling_config = {
        let mut c = config.clone();
        if let Some(m) = c.mar.as_mut().filter(|_| args.posterior_variance) {
            m.learn_variance = false;
        }
        c
    };
    let (images, method) = if let Some(spec) = MarSpec::of(&sampling_config) {
        let sampling = MarSampling {
            steps: args.mar_steps.unwrap_or(spec.default_steps()),
            head_steps: args.steps,
            temperature: args.temperature,
            cfg: args.cfg,
        };
        sampling.validate(&spec)?;
        let model: Mar = trainer_state::load_weights(&ckpt, run_folder::weights_file(!args.no_ema), &config, &device)?;
        let bar = styled(ProgressBar::new(n as u64), " images");
        let codebook = ddmlab::mar::codebook::load_run_codebook(&checkpoint::run_of(&ckpt), &config)?;
        let images = sample_mar_images(
            &model,
            codebook.as_ref(),
            &sampling_config,
            tokenizer.as_ref(),
            &sampling,
            &opts.labels,
            n,
            (args.seed, args.batch_size),
            &device,
            &mut |done| bar.set_position(done as u64),
        )?;
        bar.finish_and_clear();
        let method = format!(
            "MAR K {} (head DDPM {}, temperature {}{})",
            sampling.steps,
            sampling.head_steps,
            sampling.temperature,
            if spec.learn_variance {
                ", learned variance"
            } else if args.posterior_variance {
                ", posterior variance"
            } else {
                ""
            }
        );
        (images, method)
    } else {
        let sampler = sampler_of(&config, &opts)?;
        let model = run_folder::load_model(&ckpt, &config, !args.no_ema, &device)?;
        let per_chunk = sampler.map.0.len() as u64;
        let bar = styled(ProgressBar::new(n.div_ceil(args.batch_size) as u64 * per_chunk), " sampler steps");
        let done = AtomicU64::new(0);
        let images = sample_images(&model, &config, tokenizer.as_ref(), &opts, &device, &|| {
            let k = done.fetch_add(1, Ordering::Relaxed) + 1;
            bar.set_position(k);
            let imgs = (k as f64 / per_chunk as f64) * args.batch_size as f64;
            bar.set_message(format!("{:.1} img/s", imgs.min(n as f64) / started.elapsed().as_secs_f64().max(1e-9)));
        })?;
        bar.finish_and_clear();
        (images, format!("{} {} steps", args.sampler.name(), sampler.map.0.len()))
    };
    let secs = started.elapsed().as_secs_f64();

    let shape = config.model.image;
    let out = args.out.clone().unwrap_or_else(|| {
        let base = args.run.clone().unwrap_or_else(|| ckpt.clone());
        base.join(format!("samples-step{}-{}{}-cfg{}.png", state.step, args.sampler.name(), args.steps, args.cfg))
    });
    let cols = if rows.is_empty() { (n as f64).sqrt().ceil() as usize } else { per_row };
    let grid: Vec<Vec<Vec<f32>>> = images.chunks(cols).map(|r| r.to_vec()).collect();
    let scale = (256 / shape.height.max(shape.width)).clamp(1, 4) as u32;
    save_grid(&out, &grid, shape, scale)?;
    println!(
        "{}: {n} images from {} (step {}), {method}, cfg {}, seed {} — {:.1} s ({:.2} img/s){}",
        out.display(),
        ckpt.display(),
        state.step,
        args.cfg,
        args.seed,
        secs,
        n as f64 / secs,
        if rows.is_empty() { String::new() } else { format!("; rows are classes {rows:?}") }
    );
    if let Some(dir) = &args.folder {
        let names: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("{i:06}.png"))).collect();
        save_images(&names, &images, shape)?;
        println!("{}: {n} PNGs", dir.display());
    }
    if let Some(path) = &args.npz {
        let images = images.iter().map(|img| RawImage::from_unit(img, shape)).collect();
        let labels = (!opts.labels.is_empty()).then(|| opts.labels.iter().map(|&y| y as i64).collect());
        write_samples(path, &SampleBatch { images, labels })?;
        println!(
            "{}: {n} images as an ADM-style sample batch (arr_0 [N, H, W, C] uint8, arr_1 labels)",
            path.display()
        );
    }
    Ok(())
}
