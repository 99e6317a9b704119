//! `ddmlab deconstruct`: the l-DAE paper's ladder (Tables 1-3) run, probed and tabulated in one
//! folder, resumable at any point.
//!
//! ```text
//! OUT/deconstruct.json                 the plan: steps per rung, seeds, data (a resumed folder keeps it)
//! OUT/tokenizers/<fit key>/            each fitted tokenizer once, shared by every rung naming it
//! OUT/runs/<rung>/seed-<s>/            an ordinary run folder (config, checkpoints, probe.json, fid.json)
//! OUT/table-<n>.md, table-<n>.png      ours beside the paper's numbers, per table
//! OUT/ablations.md, ablations.png      encoder depth and probe timestep of the last rung (l-DAE)
//! OUT/verdicts.md                      the paper's claims: reproduced / not reproduced / inconclusive
//! ```
//!
//! Every rung of a table trains the same number of steps. A rung whose last checkpoint is
//! complete is not trained again, a probe or FID row already in the run's results is not
//! measured again, and a killed command resumes each unfinished run from its last checkpoint.

pub mod report;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::data::Split;
use crate::diffusion::SamplerKind;
use crate::error::{Error, IoContext, Result};
use crate::eval::fid::FidSource;
use crate::eval::gen_eval::{self, GenEvalOptions, SamplerSetting};
use crate::eval::report::{self as probe_report, Checkpoints, ProbeOptions};
use crate::eval::{Pool, ProbeConfig};
use crate::models::ladder::{Rung, Table, rungs};
use crate::train::{Observer, PretrainOptions, checkpoint, pretrain, run_folder};

/// What `deconstruct` runs.
#[derive(Debug, Clone)]
pub struct DeconstructOptions {
    pub tables: Vec<Table>,
    /// Only these rungs of the tables (empty: all of them); the tables list every row.
    pub rungs: Vec<String>,
    pub out: PathBuf,
    pub data_root: PathBuf,
    /// Optimisation steps of every rung.
    pub steps: usize,
    pub seeds: Vec<u64>,
    /// The linear probe's settings (avg-pool features of the full splits).
    pub probe: ProbeConfig,
    /// kNN neighbours.
    pub knn_k: usize,
    /// Images sampled for the FID of the rungs the paper gives one for (FID-N against the test
    /// split).
    pub fid_n: usize,
    /// The FID Inception weights (`None`: no FID column).
    pub inception: Option<PathBuf>,
    /// Stop cleanly after this many minutes (continue by running the command again).
    pub stop_after_minutes: Option<f64>,
    /// Run the encoder-depth and probe-timestep sweeps of the last rung.
    pub sweeps: bool,
    /// `KEY=VALUE` overrides applied to every rung's config (a smaller network for a quick look,
    /// another data set); recorded in the plan.
    pub overrides: Vec<String>,
}

/// The plan a folder was started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: usize,
    pub seeds: Vec<u64>,
    pub data: String,
    #[serde(default)]
    pub overrides: Vec<String>,
}

/// The rung names of `table` in the paper's row order (rungs shared with an earlier table
/// appear in both).
pub fn members(table: Table) -> Vec<&'static str> {
    let all = rungs();
    let own = all.iter().filter(|r| r.table == table).map(|r| r.name);
    match table {
        Table::One => own.collect(),
        Table::Two => {
            let mut names: Vec<&'static str> = own.collect();
            // Table 1's last rung is Table 2's patch-PCA d = 8 row.
            let at = names.iter().position(|n| *n == "ladder-t2-pca-d16").unwrap_or(names.len());
            names.insert(at, "ladder-t1-gamma2");
            // Table 1's last conv-VAE rung is the conv VAE's d = 8 row.
            let at = names.iter().position(|n| *n == "ladder-t2-kl-d16").unwrap_or(names.len());
            names.insert(at, "ladder-t1-kl-gamma2");
            names
        }
        Table::Three => std::iter::once("ladder-t1-gamma2").chain(own).collect(),
    }
}

/// The last rung: l-DAE, whose probe ablations the sweeps measure.
pub const FINAL_RUNG: &str = "ladder-t3-ldae";

/// The encoder depths and probe timesteps of the sweeps (clean and noisy inputs).
pub const SWEEP_T: [usize; 5] = [0, 10, 50, 200, 500];

/// The run folder of `rung` with `seed`.
pub fn run_dir(out: &Path, rung: &str, seed: u64) -> PathBuf {
    out.join("runs").join(rung).join(format!("seed-{seed}"))
}

/// The probe options of the ladder (avg-pool, full splits) at an ablation setting.
pub fn probe_options(opts: &DeconstructOptions, t: Option<usize>, depth: Option<usize>, noisy: bool) -> ProbeOptions {
    ProbeOptions {
        data_root: opts.data_root.clone(),
        checkpoints: Checkpoints::Latest,
        pools: vec![Pool::Avg],
        probe: opts.probe.clone(),
        knn_k: opts.knn_k,
        knn_flat: false,
        baselines: false,
        ema: true,
        train_limit: 0,
        test_limit: 0,
        batch_size: 500,
        t,
        encoder_depth: depth,
        noisy,
    }
}

/// The GenEval options of the FID column.
pub fn fid_options(opts: &DeconstructOptions, weights: &Path) -> Result<GenEvalOptions> {
    Ok(GenEvalOptions {
        data_root: opts.data_root.clone(),
        weights: weights.to_path_buf(),
        checkpoints: Checkpoints::Latest,
        cfgs: vec![1.0],
        n: opts.fid_n,
        references: vec![("fashion-mnist:test".parse::<FidSource>()?, None)],
        samplers: vec![SamplerSetting { kind: SamplerKind::Ddim { eta: 0.0 }, steps: 50 }],
        mar: Default::default(),
        seed: 0,
        chunk: 125,
        inception_batch: 25,
        ema: true,
        kid: false,
        skip_measured: false,
    })
}

/// Read (or start) the folder's plan; a folder started with another plan is an error.
fn plan_of(opts: &DeconstructOptions, data: &str) -> Result<Plan> {
    let path = opts.out.join("deconstruct.json");
    let plan =
        Plan { steps: opts.steps, seeds: opts.seeds.clone(), data: data.into(), overrides: opts.overrides.clone() };
    if path.exists() {
        let text = std::fs::read_to_string(&path).at(&path)?;
        let old: Plan = serde_json::from_str(&text)
            .map_err(|e| Error::format(&path, format!("not a deconstruct plan ({e}); move the folder away")))?;
        if old.steps != plan.steps || old.data != plan.data || old.overrides != plan.overrides {
            return Err(Error::config(
                "--steps",
                format!(
                    "{} was started with {} steps per rung on {} with overrides {:?}; resume it with the same settings or \
                     choose another --out",
                    opts.out.display(),
                    old.steps,
                    old.data,
                    old.overrides
                ),
            ));
        }
        // More seeds may be added to a folder; the plan keeps them all.
        let mut seeds = old.seeds.clone();
        for s in &plan.seeds {
            if !seeds.contains(s) {
                seeds.push(*s);
            }
        }
        let merged = Plan { seeds, ..old };
        crate::atomic::write_atomic(&path, serde_json::to_string_pretty(&merged).expect("serialises").as_bytes())?;
        return Ok(merged);
    }
    std::fs::create_dir_all(&opts.out).at(&opts.out)?;
    crate::atomic::write_atomic(&path, serde_json::to_string_pretty(&plan).expect("serialises").as_bytes())?;
    Ok(plan)
}

/// The config of `rung` for `seed` under the options (steps, overrides), validated.
pub fn rung_config(rung: &Rung, opts: &DeconstructOptions, seed: u64) -> Result<crate::config::RunConfig> {
    let mut config = rung.config.clone();
    for o in &opts.overrides {
        config = config.with_override(o)?;
    }
    config.train.seed = seed;
    config.train.steps = opts.steps;
    config.validate().map_err(|e| Error::Other(format!("rung {}: {e}", rung.name)))?;
    Ok(config)
}

/// Minutes left before the stop time (`None`: no limit).
fn minutes_left(deadline: Option<std::time::Instant>) -> Option<f64> {
    deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()).as_secs_f64() / 60.0)
}

/// Whether the run's latest checkpoint is its last step.
fn finished(run: &Path) -> Result<bool> {
    match checkpoint::latest(run)? {
        Some(ckpt) => {
            let (_, state) = checkpoint::read_meta(&ckpt)?;
            Ok(state.step >= state.total_steps)
        }
        None => Ok(false),
    }
}

/// Run, probe and tabulate the requested tables.
pub fn deconstruct(opts: &DeconstructOptions, device: &Device, obs: &mut dyn Observer) -> Result<()> {
    if opts.tables.is_empty() || opts.seeds.is_empty() || opts.steps == 0 {
        return Err(Error::config("--table", "at least one table, one seed and a positive number of steps are needed"));
    }
    let deadline =
        opts.stop_after_minutes.map(|m| std::time::Instant::now() + std::time::Duration::from_secs_f64(m * 60.0));
    let all = rungs();
    let base = rung_config(&all[0], opts, 0)?;
    let plan = plan_of(opts, &base.data)?;
    let mut names: Vec<&'static str> = Vec::new();
    for &table in &opts.tables {
        for name in members(table) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    for wanted in &opts.rungs {
        if !names.contains(&wanted.as_str()) {
            return Err(Error::config(
                "--rungs",
                format!("`{wanted}` is not a rung of the chosen tables: {}", names.join(", ")),
            ));
        }
    }
    if !opts.rungs.is_empty() {
        names.retain(|n| opts.rungs.iter().any(|w| w == n));
    }
    let probe_opts = probe_options(opts, None, None, false);
    let train_n = run_folder::load_split(&base, &opts.data_root, Split::Train)?.len();
    let test_n = run_folder::load_split(&base, &opts.data_root, Split::Test)?.len();
    let protocol = probe_opts.protocol(train_n, test_n);
    let final_rung = all.iter().find(|r| r.name == FINAL_RUNG).expect("the last rung exists");
    let depth = rung_config(final_rung, opts, 0)?.model.depth;
    let protocols = report::Protocols {
        base: protocol.clone(),
        depth: (1..=depth).map(|d| (d, probe_options(opts, None, Some(d), false).protocol(train_n, test_n))).collect(),
        t_clean: SWEEP_T
            .iter()
            .map(|&t| (t, probe_options(opts, Some(t), None, false).protocol(train_n, test_n)))
            .collect(),
        t_noisy: SWEEP_T
            .iter()
            .filter(|&&t| t > 0)
            .map(|&t| (t, probe_options(opts, Some(t), None, true).protocol(train_n, test_n)))
            .collect(),
    };
    for name in &names {
        let rung = all.iter().find(|r| r.name == *name).expect("members are rungs");
        for &seed in &opts.seeds {
            if minutes_left(deadline).is_some_and(|m| m <= 0.0) {
                return stop(obs, &opts.out, &plan, opts.inception.is_some(), &protocols);
            }
            let run = run_dir(&opts.out, rung.name, seed);
            let config = rung_config(rung, opts, seed)?;
            // FID where the paper gives one (Table 1): every rung there is a generator.
            let fid_weights =
                opts.inception.as_ref().filter(|_| config.denoise.is_generator() && rung.paper_fid.is_some());
            // The probe ablations of the last rung, measured right after it trains.
            let sweeps: Vec<ProbeOptions> = if opts.sweeps && rung.name == FINAL_RUNG {
                let mut settings: Vec<(Option<usize>, Option<usize>, bool)> =
                    (1..=depth).map(|d| (None, Some(d), false)).collect();
                settings.extend(SWEEP_T.iter().map(|&t| (Some(t), None, false)));
                settings.extend(SWEEP_T.iter().filter(|&&t| t > 0).map(|&t| (Some(t), None, true)));
                settings.into_iter().map(|(t, d, noisy)| probe_options(opts, t, d, noisy)).collect()
            } else {
                Vec::new()
            };
            let mut missing_sweeps = Vec::new();
            for o in &sweeps {
                if !has_probe_row(&run, &o.protocol(train_n, test_n), opts.steps)? {
                    missing_sweeps.push(o.clone());
                }
            }
            // A rung whose results are all there is done, with or without its checkpoints (a
            // results-only copy of the folder resumes too).
            let needs_probe = !has_probe_row(&run, &protocol, opts.steps)?;
            let needs_fid = fid_weights.is_some() && !has_fid_row(&run, opts.steps, opts.fid_n)?;
            if !needs_probe && !needs_fid && missing_sweeps.is_empty() {
                continue;
            }
            if !finished(&run)? {
                if !fit_shared_tokenizer(&opts.out, rung, &config, opts, minutes_left(deadline), device, obs)? {
                    return stop(obs, &opts.out, &plan, opts.inception.is_some(), &protocols);
                }
                std::fs::create_dir_all(&run).at(&run)?;
                copy_shared_tokenizer(&opts.out, &config, &run)?;
                obs.message(&format!("{} seed {seed}: training {} steps", rung.name, opts.steps));
                let resume = checkpoint::latest(&run)?.is_some();
                let train_opts = PretrainOptions {
                    data_root: opts.data_root.clone(),
                    resume,
                    stop_after_steps: None,
                    stop_after_minutes: minutes_left(deadline),
                    init_from: None,
                };
                pretrain(config.clone(), &run, &train_opts, device, obs)?;
                if !finished(&run)? {
                    return stop(obs, &opts.out, &plan, opts.inception.is_some(), &protocols);
                }
                prune_checkpoints(&run)?;
            }
            if needs_probe {
                probe_report::probe_run(&run, &probe_opts, device, obs)?;
            }
            if let Some(weights) = fid_weights.filter(|_| needs_fid) {
                gen_eval::gen_eval_run(&run, &fid_options(opts, weights)?, device, obs)?;
            }
            for o in &missing_sweeps {
                if minutes_left(deadline).is_some_and(|m| m <= 0.0) {
                    return stop(obs, &opts.out, &plan, opts.inception.is_some(), &protocols);
                }
                probe_report::probe_run(&run, o, device, obs)?;
            }
        }
    }
    report::write_all(&opts.out, &plan, opts.inception.is_some(), &protocols)
}

/// Fit the tokenizer of `config` into the shared cache unless it is there; `false` when a
/// conv VAE's training stopped at the time limit.
fn fit_shared_tokenizer(
    out: &Path,
    rung: &Rung,
    config: &crate::config::RunConfig,
    opts: &DeconstructOptions,
    stop_after_minutes: Option<f64>,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<bool> {
    let cache = tokenizer_cache(out, config);
    if run_folder::tokenizer_path(&cache, config).exists() {
        return Ok(true);
    }
    std::fs::create_dir_all(&cache).at(&cache)?;
    obs.message(&format!(
        "{}: fitting {} (shared by every rung that names it)",
        rung.name,
        config.denoise.tokenizer.label(1)
    ));
    let set = run_folder::load_split(config, &opts.data_root, Split::Train)?;
    let fit = run_folder::FitOptions { data_root: &opts.data_root, stop_after_minutes };
    Ok(run_folder::load_or_fit_tokenizer(&cache, config, &set, fit, device, obs)?.is_some())
}

/// The shared cache folder of `config`'s tokenizer.
pub fn tokenizer_cache(out: &Path, config: &crate::config::RunConfig) -> PathBuf {
    out.join("tokenizers").join(config.denoise.tokenizer.fit_key(&config.data, config.model.image))
}

/// Copy the shared tokenizer (and its fit report) into `run` unless it is there.
fn copy_shared_tokenizer(out: &Path, config: &crate::config::RunConfig, run: &Path) -> Result<()> {
    let target = run_folder::tokenizer_path(run, config);
    if target.exists() {
        return Ok(());
    }
    let cache = tokenizer_cache(out, config);
    let from = run_folder::tokenizer_path(&cache, config);
    std::fs::copy(&from, &target).at(&target)?;
    let report = run_folder::fit_report_path(&cache);
    if report.exists() {
        let to = run_folder::fit_report_path(run);
        std::fs::copy(&report, &to).at(&to)?;
    }
    Ok(())
}

/// Stop at the time limit: say so and write the report of what is done.
fn stop(obs: &mut dyn Observer, out: &Path, plan: &Plan, with_fid: bool, protocols: &report::Protocols) -> Result<()> {
    obs.message("stopped at the time limit; run the same command again to continue");
    report::write_all(out, plan, with_fid, protocols)
}

/// Remove every checkpoint of a finished run but the last (what the tables read).
fn prune_checkpoints(run: &Path) -> Result<()> {
    let Some(latest) = checkpoint::latest(run)? else { return Ok(()) };
    for (_, dir) in checkpoint::list(run)? {
        if dir != latest {
            std::fs::remove_dir_all(&dir).at(&dir)?;
        }
    }
    Ok(())
}

/// Whether `RUN/probe.json` holds the avg-pool row of step `step` under `protocol`.
pub fn has_probe_row(run: &Path, protocol: &str, step: usize) -> Result<bool> {
    Ok(report::probe_of(run, protocol, step)?.is_some())
}

/// Whether `RUN/fid.json` holds the unguided FID-`n` row of step `step`.
pub fn has_fid_row(run: &Path, step: usize, n: usize) -> Result<bool> {
    let rows = gen_eval::read_rows(&run.join("fid.json"))?;
    Ok(rows.iter().any(|r| r.step == step && r.n == n && r.cfg == 1.0 && r.ema))
}
