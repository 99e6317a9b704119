//! `ddmlab pretrain`: preset or TOML file -> overrides -> validated `RunConfig` -> library.

use anyhow::{Context, Result, bail};
use ddmlab::config::{RunConfig, refuse_changes_on_resume};
use ddmlab::recipes::preset;
use ddmlab::runs::{PretrainOptions, pretrain};
use ddmlab::train::interop::Layout;
use ddmlab::train::run_folder;

use crate::args::PretrainArgs;
use crate::progress::Bar;
use crate::setup;

/// A preset, or a TOML file instead when given, with `--set` overrides applied (not validated).
pub fn base_config(preset_name: &str, file: Option<&std::path::Path>, overrides: &[String]) -> Result<RunConfig> {
    let config = match file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("{}: cannot read config", path.display()))?;
            RunConfig::from_toml(&text, path)?
        }
        None => preset(preset_name)?.config,
    };
    with_overrides(config, overrides)
}

/// `config` with the `--set` assignments applied in order (not validated).
fn with_overrides(mut config: RunConfig, overrides: &[String]) -> Result<RunConfig> {
    for s in overrides {
        config = config.with_override(s)?;
    }
    Ok(config)
}

/// The preset of a run when `--preset` is not given.
const DEFAULT_PRESET: &str = "ldae-fmnist";

/// The config these flags describe, validated.
pub fn resolve(args: &PretrainArgs) -> Result<RunConfig> {
    let preset_name = args.preset.as_deref().unwrap_or(DEFAULT_PRESET);
    let config = apply_flags(base_config(preset_name, args.config.as_deref(), &args.overrides)?, args)?;
    if let Some(m) = args.stop_after
        && !(m.is_finite() && m > 0.0)
    {
        bail!("invalid value for --stop-after: {m}, expected a positive number of minutes");
    }
    config.validate()?;
    Ok(config)
}

/// On `--resume`, the run's saved config governs: flags that would change it are an error naming
/// each field (a flag the saved config already holds is fine). A `--preset` or `--config` given
/// is compared whole; without one, the flags are applied to the saved config.
fn check_resume(args: &PretrainArgs) -> Result<()> {
    if !args.resume || !ddmlab::store::folder::config_path(&args.out).exists() {
        return Ok(());
    }
    let saved = run_folder::read_config(&args.out)?;
    let base = match (&args.preset, &args.config) {
        (None, None) => with_overrides(saved.clone(), &args.overrides)?,
        (p, file) => base_config(p.as_deref().unwrap_or(DEFAULT_PRESET), file.as_deref(), &args.overrides)?,
    };
    let mut requested = apply_flags(base, args)?;
    if requested.train.steps == 0 || args.steps.is_some() {
        // Steps derived from train.epochs or train.time_budget_min were resolved once, at the
        // run's start, and saved; those two fields are still compared. `--steps` trains the run
        // on (the library checks that its schedule extends).
        requested.train.steps = saved.train.steps;
    }
    if saved.train.warmup_steps > 0 && requested.train.warmup_steps == 0 {
        // A run trained on before keeps the warm-up it had in steps.
        (requested.train.warmup_steps, requested.train.warmup_frac) =
            (saved.train.warmup_steps, saved.train.warmup_frac);
    }
    refuse_changes_on_resume(&args.out, &saved, &requested)?;
    Ok(())
}

/// `config` with the command line's field flags (--data, --steps, --seed, ...) applied.
fn apply_flags(mut config: RunConfig, args: &PretrainArgs) -> Result<RunConfig> {
    let t = &mut config.train;
    if let Some(v) = &args.data {
        config.data = v.parse()?;
    }
    if let Some(v) = args.steps {
        t.steps = v;
    }
    if let Some(v) = args.epochs {
        (t.steps, t.epochs) = (0, v);
    }
    if let Some(v) = args.time_budget {
        (t.steps, t.epochs, t.time_budget_min) = (0, 0.0, v);
    }
    if let Some(v) = args.batch_size {
        t.batch_size = v;
    }
    if let Some(v) = args.blr {
        t.blr = v;
    }
    if let Some(v) = args.seed {
        t.seed = v;
    }
    if let Some(v) = args.train_limit {
        config.train_limit = v;
    }
    Ok(config)
}

pub fn run(args: PretrainArgs) -> Result<()> {
    check_resume(&args)?;
    let config = resolve(&args)?;
    if args.dry_run {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let device = setup::device(&args.common.device)?;
    if let Some(from) = &args.tokenizer_from {
        ddmlab::train::run_folder::adopt_tokenizer(from, &args.out, &config)?;
    }
    if !args.resume {
        eprintln!("resolved config:\n{}", config.to_toml());
    }
    let opts = PretrainOptions {
        data_root: args.common.data_dir.clone(),
        resume: args.resume,
        stop_after_steps: None,
        stop_after_minutes: args.stop_after,
        init_from: match &args.init_from {
            Some(path) => Some((path.clone(), Layout::parse(&args.init_layout)?)),
            None => None,
        },
        extend_to: args.steps.filter(|_| args.resume),
        sample_grids: true,
    };
    let summary = pretrain(config, &args.out, &opts, &device, &mut Bar::new())?;
    if summary.losses.is_empty() {
        // A resumed run that had already reached its last step: nothing was trained.
        println!("{}: already finished at step {}/{}", summary.run.display(), summary.step, summary.total_steps);
    } else {
        println!(
            "{}: step {}/{}, last loss {:.4}, {:.0} img/s",
            summary.run.display(),
            summary.step,
            summary.total_steps,
            summary.last_loss,
            summary.img_per_s
        );
    }
    Ok(())
}
