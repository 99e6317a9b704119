//! `ddmlab export` / `ddmlab import`: a run's weights to and from PyTorch's key names.

use anyhow::Result;
use ddmlab::models::mar::Mar;
use ddmlab::runs::{PretrainOptions, pretrain};
use ddmlab::store::checkpoint;
use ddmlab::train::interop::{self, Layout};
use ddmlab::train::interop_mar;
use ddmlab::train::run_folder;
use ddmlab::train::trainer_state;

use crate::args::{ExportArgs, ImportArgs};
use crate::pretrain::base_config;
use crate::progress::Bar;
use crate::setup;

pub fn export(args: ExportArgs) -> Result<()> {
    let layout = Layout::parse(&args.layout)?;
    let ckpt = checkpoint::resolve(Some(&args.run), &args.ckpt)?;
    let (config, state) = trainer_state::read_meta(&ckpt)?;
    let device = setup::device("flex")?;
    let bytes = match config.mar_network() {
        Some(network) => {
            if layout != Layout::Mar {
                anyhow::bail!("{} is a MAR run: export it with --layout mar (LTH14/mar's names)", args.run.display());
            }
            let model: Mar = trainer_state::load_weights(&ckpt, run_folder::weights_file(!args.raw), &config, &device)?;
            interop_mar::export_mar(&model, &network)?
        }
        None => {
            let model = run_folder::load_model(&ckpt, &config, !args.raw, &device)?;
            interop::export(&model, &config.network(), layout)?
        }
    };
    ddmlab::atomic::write_atomic(&args.out, &bytes)?;
    let which = if args.raw { "raw" } else { "EMA" };
    println!("{}: {which} weights of step {} in the {} layout", args.out.display(), state.step, layout.name());
    Ok(())
}

pub fn import(args: ImportArgs) -> Result<()> {
    let layout = Layout::parse(&args.layout)?;
    let config = base_config(&args.preset, args.config.as_deref(), &args.overrides)?;
    config.validate()?;
    let device = setup::device(&args.common.device)?;
    if let Some(from) = &args.tokenizer_from {
        ddmlab::train::run_folder::adopt_tokenizer(from, &args.out, &config)?;
    }
    let opts = PretrainOptions {
        data_root: args.common.data_dir.clone(),
        resume: false,
        stop_after_steps: Some(0),
        stop_after_minutes: None,
        init_from: Some((args.weights.clone(), layout)),
        extend_to: None,
        sample_grids: true,
    };
    pretrain(config, &args.out, &opts, &device, &mut Bar::new())?;
    println!(
        "{}: a run at step 0 holding {}; sample or probe it, or train on with `ddmlab train --out {} --resume`",
        args.out.display(),
        args.weights.display(),
        args.out.display()
    );
    Ok(())
}
