//! `ddmlab deconstruct`: flags -> `DeconstructOptions` -> the library's study runner.

use anyhow::{Result, bail};
use ddmlab::data::fetch::inception_path;
use ddmlab::deconstruct::slurm::{self, EXIT_STOPPED, SlurmOptions, TaskCommand};
use ddmlab::deconstruct::task::{Outcome, Task, run_task};
use ddmlab::deconstruct::{DeconstructOptions, deconstruct, reuse_tokenizer};
use ddmlab::study::{Runner, Study};

use crate::args::DeconstructArgs;
use crate::progress::Bar;
use crate::setup;

pub fn run(args: DeconstructArgs) -> Result<()> {
    let study = Study::load(&args.study)?;
    if args.show {
        print!("{}", study.to_toml());
        println!("\n# hash: {}", study.hash()?);
        if study.runner != Runner::Declared {
            let plan = study.plan()?;
            println!("# {} runs, in this order:", plan.len());
            for r in &plan {
                let steps = if r.config.train.steps == r.budget {
                    String::new()
                } else {
                    format!(" (trains {} steps)", r.config.train.steps)
                };
                println!("#   {} steps  {}  seed {}{steps}", r.budget, r.arm, r.seed);
            }
            println!("# tokenizers fitted once each (OUT/tokenizers/<key>/):");
            for k in study.tokenizer_keys()? {
                println!("#   {k}");
            }
        }
        return Ok(());
    }
    if study.runner == Runner::Declared {
        bail!(
            "study `{}` is declared only (runner `{}`): its arms' commands make its runs; `deconstruct` runs ladder and \
             presets studies",
            study.name,
            study.runner.name()
        );
    }
    if let Some(m) = args.stop_after
        && !(m.is_finite() && m > 0.0)
    {
        bail!("invalid value for --stop-after: {m}, expected a positive number of minutes");
    }
    let path = args.weights.clone().unwrap_or_else(|| inception_path(&args.common.data_dir));
    let inception = path.exists().then_some(path);
    if args.slurm && args.dry_run {
        return print_jobs(&args, &study, inception.as_deref());
    }
    if let Some(task) = &args.task {
        let task: Task = task.parse()?;
        let opts = DeconstructOptions { report_only: task == Task::Report, ..options(&args, study, inception) };
        let device = setup::device(&args.common.device)?;
        if run_task(&opts, task, &device, &mut Bar::new())? == Outcome::Stopped {
            eprintln!("task {task} stopped at the time limit; run it again to continue (exit status {EXIT_STOPPED})");
            std::process::exit(EXIT_STOPPED);
        }
        println!("task {task} done");
        return Ok(());
    }
    if !args.reuse_tokenizer.is_empty() {
        // The folder must belong to this study version before anything is copied into it.
        let stamp = ddmlab::study::Stamp { study: study.name.clone(), hash: study.hash()? };
        stamp.check_folder(&args.out)?;
    }
    for dir in &args.reuse_tokenizer {
        let commit = committed_in(dir);
        if reuse_tokenizer(&args.out, &study, dir, &commit)? {
            println!("reused {} (added in commit {commit})", dir.display());
        }
    }
    if args.slurm {
        // The jobs first (their options checked), then the folder stamped for this version with
        // the declaration the tasks load.
        let (jobs, _) = slurm_jobs(&args, &study, inception.as_deref())?;
        ddmlab::deconstruct::claim_folder(&options(&args, study.clone(), inception.clone()))?;
        let ids = slurm::submit(&jobs, &args.out)?;
        for (job, id) in jobs.iter().zip(&ids) {
            println!("submitted {id}  {} ({} task{})", job.name, job.tasks, if job.tasks == 1 { "" } else { "s" });
        }
        println!(
            "scripts in {0}/slurm/, logs in {0}/slurm/logs/; the report ({0}/report.md) is written when job {1} ends",
            args.out.display(),
            ids.last().expect("a report job")
        );
        return Ok(());
    }
    let device = setup::device(&args.common.device)?;
    let opts = options(&args, study, inception);
    deconstruct(&opts, &device, &mut Bar::new())?;
    println!(
        "written: {0}/report.md (verdicts per budget, tables, sweeps, provenance), {0}/budget-*/",
        args.out.display()
    );
    Ok(())
}

/// The last git commit that touched `dir` (`unknown` outside a checkout or for an untracked
/// folder).
fn committed_in(dir: &std::path::Path) -> String {
    std::process::Command::new("git")
        .args(["log", "-1", "--format=%H", "--"])
        .arg(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The options the flags give (`--stop-after`, `--report-only`).
fn options(args: &DeconstructArgs, study: Study, inception: Option<std::path::PathBuf>) -> DeconstructOptions {
    DeconstructOptions {
        study,
        out: args.out.clone(),
        data_root: args.common.data_dir.clone(),
        inception,
        stop_after_minutes: args.stop_after,
        report_only: args.report_only,
    }
}

/// The Slurm jobs of the study and the options they were made with.
fn slurm_jobs(
    args: &DeconstructArgs,
    study: &Study,
    inception: Option<&std::path::Path>,
) -> Result<(Vec<slurm::Job>, SlurmOptions)> {
    if args.stop_after.is_some() {
        bail!("--stop-after with --slurm: each task stops before its --time instead");
    }
    let options = SlurmOptions {
        partition: args.partition.clone(),
        account: args.account.clone(),
        time_minutes: args.time,
        cpus_per_task: args.cpus_per_task,
        gpus_per_task: args.gpus_per_task,
        requeue: args.requeue,
        extra: args.sbatch.clone(),
    };
    let abs = |p: &std::path::Path| -> Result<String> { Ok(std::path::absolute(p)?.to_string_lossy().into_owned()) };
    let mut task_args = vec![
        "deconstruct".to_string(),
        "--study".into(),
        abs(&args.out.join("study.toml"))?,
        "--out".into(),
        abs(&args.out)?,
        "--data-dir".into(),
        abs(&args.common.data_dir)?,
        "--device".into(),
        args.common.device.clone(),
    ];
    if let Some(w) = inception {
        task_args.extend(["--weights".into(), abs(w)?]);
    }
    let command = TaskCommand { program: std::env::current_exe()?, args: task_args };
    let out = std::path::absolute(&args.out)?;
    Ok((slurm::jobs(study, &out, &command, &options)?, options))
}

/// `--slurm --dry-run`: each job's sbatch command (dependencies by job name) and script.
fn print_jobs(args: &DeconstructArgs, study: &Study, inception: Option<&std::path::Path>) -> Result<()> {
    let (jobs, _) = slurm_jobs(args, study, inception)?;
    let out = std::path::absolute(&args.out)?;
    let names: Vec<String> = jobs.iter().map(|j| format!("<{}>", j.name)).collect();
    println!("# study `{}` version {}: {} sbatch jobs, submitted in this order", study.name, study.hash()?, jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        let path = slurm::script_path(&out, job);
        println!("\n# {}", slurm::sbatch_line(&jobs, i, &names, &path).join(" "));
        println!("# ---- {} ----", path.display());
        print!("{}", job.script);
    }
    Ok(())
}
