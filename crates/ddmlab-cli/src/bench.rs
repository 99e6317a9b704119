//! `ddmlab bench`: images per second of the l-DAE training step on synthetic images.

use std::time::Instant;

use anyhow::Result;
use ddmlab::data::loader::Batch;
use ddmlab::models::preset;
use ddmlab::tokenizer::PatchPca;
use ddmlab::train::LdaeTrainer;

use crate::args::BenchArgs;
use crate::setup;

pub fn run(args: BenchArgs) -> Result<()> {
    let mut config = preset(&args.preset)?.config;
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
    println!(
        "ddmlab l-DAE train step, preset {} (batch {b}, {} threads): {:.1} img/s ({:.1} ms/step)",
        args.preset,
        rayon::current_num_threads(),
        (args.steps * b) as f64 / secs,
        1000.0 * secs / args.steps as f64
    );
    Ok(())
}
