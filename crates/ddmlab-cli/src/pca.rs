//! `ddmlab pca`.

use anyhow::Result;
use ddmlab::data::{DataSource, ImageShape, Split};
use ddmlab::tokenizer::PatchPca;
use ddmlab::viz::pca::save_components;

use crate::args::PcaArgs;

pub fn run(args: PcaArgs) -> Result<()> {
    let pca = match &args.run {
        Some(run) => PatchPca::load(&run.join("pca.safetensors"))?,
        None => {
            let source: DataSource = args.data.parse()?;
            let shape = source.native_shape().unwrap_or(ImageShape { channels: 3, height: 64, width: 64 });
            let set = source.load(&args.common.data_dir, Split::Train, shape)?;
            PatchPca::fit(&set, args.patch, 100_000, 0)?
        }
    };
    save_components(&pca, args.count, 8, &args.out)?;
    let ratio = pca.explained_variance_ratio();
    let mut cumulative = 0.0;
    println!("component  explained  cumulative");
    for (k, r) in ratio.iter().take(args.count).enumerate() {
        cumulative += r;
        println!("{:>9}  {:>8.2}%  {:>9.2}%", k + 1, 100.0 * r, 100.0 * cumulative);
    }
    println!("written: {}", args.out.display());
    Ok(())
}
