//! A study handed to Slurm: one sbatch job array per stage, chained with
//! `--dependency=afterok`, each array task one [`Task`] run by the same `ddmlab` binary into the
//! same study folder (on a file system the nodes share).
//!
//! ```text
//! fit            array over the study's tokenizers            (when it fits any)
//! train-<b>      array over the runs at budget b               after fit, and train-<b'> for the
//!                                                              budget b' before when the study extends
//! measure-<b>    array over the runs at budget b               after train-<b>
//! report         one task                                      after every measure-<b>
//! ```
//!
//! Each task stops cleanly a margin before its time limit (`--stop-after`) and exits with
//! [`EXIT_STOPPED`]; with `requeue` its script then requeues itself (`scontrol requeue`), and
//! it continues from its checkpoint when Slurm starts it again. A task requeued by Slurm itself
//! (preemption, a node failure, `scontrol requeue`) resumes the same way. Dependents wait for
//! the requeued task: a requeued job is not finished.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::task::{Task, fits, runs_at};
use crate::error::{Error, IoContext, Result};
use crate::study::Study;

/// The exit status of a task stopped at its time limit (EX_TEMPFAIL: run it again).
pub const EXIT_STOPPED: i32 = 75;

/// What every job asks of Slurm.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub account: Option<String>,
    /// Each task's time limit in minutes.
    pub time_minutes: u32,
    pub cpus_per_task: u32,
    pub gpus_per_task: Option<u32>,
    /// Mark jobs requeueable and requeue a task stopped at its time limit.
    pub requeue: bool,
    /// More `#SBATCH` lines, as `--flag=value` (`--qos=...`, `--mem=...`, `--constraint=...`).
    pub extra: Vec<String>,
}

impl SlurmOptions {
    /// Minutes after which a task stops cleanly: 10% of its time limit (at least 2 minutes) before it,
    /// for the checkpoint and the exit.
    pub fn stop_after_minutes(&self) -> f64 {
        let t = self.time_minutes as f64;
        t - (0.1 * t).max(2.0)
    }

    /// Why these options cannot run a task, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if self.time_minutes < 5 {
            return Some(format!(
                "--time {}: at least 5 minutes (a task stops 2 minutes before its limit)",
                self.time_minutes
            ));
        }
        if self.cpus_per_task == 0 {
            return Some("--cpus-per-task: at least 1".into());
        }
        if let Some(e) = self.extra.iter().find(|e| !e.starts_with("--") || e.contains('\n')) {
            return Some(format!("--sbatch `{e}`: expected one sbatch flag, `--name=value`"));
        }
        None
    }
}

/// The command line every task runs: the `ddmlab` binary and the flags that name the study, its
/// folder, its data and device (absolute paths: a task starts in any directory).
#[derive(Debug, Clone)]
pub struct TaskCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// One sbatch job: a script for an array of `tasks`, after the jobs at `after` (indices of
/// earlier jobs).
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub tasks: usize,
    pub after: Vec<usize>,
    pub script: String,
}

/// The jobs of `study` in submission order (each after only earlier ones).
pub fn jobs(study: &Study, out: &Path, command: &TaskCommand, opts: &SlurmOptions) -> Result<Vec<Job>> {
    if let Some(p) = opts.problem() {
        return Err(Error::config("slurm", p));
    }
    let plan = study.plan()?;
    let logs = out.join("slurm").join("logs");
    let mut jobs: Vec<Job> = Vec::new();
    let add = |jobs: &mut Vec<Job>, stage: &str, tasks: usize, after: Vec<usize>, task: &str| -> usize {
        let name = format!("ddmlab-{}-{stage}", study.name);
        let script = script(&name, tasks, &logs.join(format!("{stage}-%a.log")), command, opts, task);
        jobs.push(Job { name, tasks, after, script });
        jobs.len() - 1
    };
    let n_fits = fits(study)?.len();
    let fit = (n_fits > 0).then(|| add(&mut jobs, "fit", n_fits, vec![], "fit:$SLURM_ARRAY_TASK_ID"));
    let mut measures = Vec::new();
    let mut previous_train: Option<usize> = None;
    for &budget in &study.budgets {
        let n = runs_at(&plan, budget).len();
        if n == 0 {
            continue;
        }
        let mut after: Vec<usize> = fit.into_iter().collect();
        if study.extend {
            after.extend(previous_train);
        }
        let stage = format!("train-{budget}");
        let train = add(&mut jobs, &stage, n, after, &format!("train:{budget}:$SLURM_ARRAY_TASK_ID"));
        previous_train = Some(train);
        let stage = format!("measure-{budget}");
        measures.push(add(&mut jobs, &stage, n, vec![train], &format!("measure:{budget}:$SLURM_ARRAY_TASK_ID")));
    }
    add(&mut jobs, "report", 1, measures, &Task::Report.to_string());
    Ok(jobs)
}

/// Quote `s` for bash (as is when it needs no quoting).
fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The sbatch script of one stage's array.
fn script(name: &str, tasks: usize, log: &Path, command: &TaskCommand, opts: &SlurmOptions, task: &str) -> String {
    let mut s = String::from("#!/usr/bin/env bash\n");
    let mut sb = |line: String| writeln!(s, "#SBATCH {line}").expect("a string takes writes");
    sb(format!("--job-name={name}"));
    sb(format!("--array=0-{}", tasks - 1));
    sb(format!("--time={}", opts.time_minutes));
    sb("--nodes=1".into());
    sb("--ntasks=1".into());
    sb(format!("--cpus-per-task={}", opts.cpus_per_task));
    if let Some(g) = opts.gpus_per_task {
        sb(format!("--gpus-per-task={g}"));
    }
    if let Some(p) = &opts.partition {
        sb(format!("--partition={p}"));
    }
    if let Some(a) = &opts.account {
        sb(format!("--account={a}"));
    }
    sb(format!("--output={}", log.display()));
    sb("--open-mode=append".into());
    sb(if opts.requeue { "--requeue" } else { "--no-requeue" }.into());
    for e in &opts.extra {
        sb(e.clone());
    }
    let mut line = vec![quote(&command.program.to_string_lossy())];
    line.push("--threads".into());
    line.push(opts.cpus_per_task.to_string());
    line.extend(command.args.iter().map(|a| quote(a)));
    line.push("--stop-after".into());
    line.push(format!("{}", opts.stop_after_minutes()));
    // The task id expands in the script; the rest is quoted.
    line.push("--task".into());
    line.push(format!("\"{task}\""));
    let _ = writeln!(s, "set -u");
    let _ = writeln!(
        s,
        "echo \"== $(date -u +%FT%TZ) job $SLURM_JOB_ID task {task} on $(hostname) (restart ${{SLURM_RESTART_COUNT:-0}})\""
    );
    let _ = writeln!(s, "{}", line.join(" "));
    let _ = writeln!(s, "rc=$?");
    if opts.requeue {
        let _ = writeln!(
            s,
            "# Stopped at the time limit: back into the queue, to continue from the checkpoint.\n\
             if [ \"$rc\" -eq {EXIT_STOPPED} ]; then scontrol requeue \"$SLURM_JOB_ID\" && exit 0; fi"
        );
    }
    let _ = writeln!(s, "exit \"$rc\"");
    s
}

/// The sbatch command line of `job` (`ids`: the job ids of the jobs before it, or placeholders).
pub fn sbatch_line(jobs: &[Job], index: usize, ids: &[String], script: &Path) -> Vec<String> {
    let mut line = vec!["sbatch".to_string(), "--parsable".into()];
    if !jobs[index].after.is_empty() {
        let after: Vec<&str> = jobs[index].after.iter().map(|&j| ids[j].as_str()).collect();
        line.push(format!("--dependency=afterok:{}", after.join(":")));
    }
    line.push(script.to_string_lossy().into_owned());
    line
}

/// The script file of `job` in the study folder: `OUT/slurm/<name>.sbatch`.
pub fn script_path(out: &Path, job: &Job) -> PathBuf {
    out.join("slurm").join(format!("{}.sbatch", job.name))
}

/// Write every job's script into `OUT/slurm/` and submit them in order with `sbatch`, each after
/// the jobs it depends on; returns the job ids. A job that sbatch refuses is one error with its
/// message (the jobs submitted before it are named, to cancel or keep).
pub fn submit(jobs: &[Job], out: &Path) -> Result<Vec<String>> {
    let dir = out.join("slurm");
    std::fs::create_dir_all(dir.join("logs")).at(&dir)?;
    let mut ids: Vec<String> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let path = script_path(out, job);
        crate::atomic::write_atomic(&path, job.script.as_bytes())?;
        let line = sbatch_line(jobs, i, &ids, &path);
        let result = std::process::Command::new(&line[0]).args(&line[1..]).output();
        let submitted =
            if ids.is_empty() { String::new() } else { format!(" (submitted before it: {})", ids.join(", ")) };
        let output = result.map_err(|e| {
            Error::config("slurm", format!("cannot run sbatch ({e}): is this a Slurm login node?{submitted}"))
        })?;
        if !output.status.success() {
            return Err(Error::config(
                "slurm",
                format!(
                    "sbatch refused {}: {}{submitted}",
                    path.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            ));
        }
        // `--parsable` prints `<id>` or `<id>;<cluster>`.
        let text = String::from_utf8_lossy(&output.stdout);
        let id = text.trim().split(';').next().unwrap_or_default().to_string();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::config("slurm", format!("sbatch printed `{}`, expected a job id", text.trim())));
        }
        ids.push(id);
    }
    let record: Vec<String> = jobs.iter().zip(&ids).map(|(j, id)| format!("{id} {} {}", j.name, j.tasks)).collect();
    crate::atomic::write_atomic(&dir.join("jobs.txt"), (record.join("\n") + "\n").as_bytes())?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two presets arms on two budgets, trained on (`extend`), one of them a latent DiT on
    /// patch PCA, the other on pixels: two tokenizers to fit.
    fn study(extend: bool) -> Study {
        let text = format!(
            r#"
name = "s"
about = "two arms"
runner = "presets"
budgets = [10, 20]
seeds = [0, 1, 2]
extend = {extend}
protocol = {{ probe_epochs = 2, knn_k = 3 }}

[[arm]]
name = "pca"
preset = "ladder-t1-dit"
set = ["train.min_lr_frac=1.0"]

[[arm]]
name = "pixels"
preset = "ladder-t3-pixel-dae"
seeds = [0]
budgets = [10]
set = ["train.min_lr_frac=1.0"]

[[claim]]
id = "a"
text = "-"
paper = "-"
a = {{ arm = "pca", metric = {{ kind = "probe" }} }}
b = {{ arm = "pixels", metric = {{ kind = "probe" }} }}
test = {{ kind = "greater" }}
budgets = [10]

[[claim]]
id = "b"
text = "-"
paper = "-"
a = {{ arm = "pca", metric = {{ kind = "probe" }} }}
b = {{ arm = "pca", metric = {{ kind = "knn" }} }}
test = {{ kind = "greater" }}
budgets = [20]
"#
        );
        Study::from_toml(&text, Path::new("s.toml")).unwrap()
    }

    fn options() -> SlurmOptions {
        SlurmOptions {
            partition: Some("gpu".into()),
            account: None,
            time_minutes: 60,
            cpus_per_task: 4,
            gpus_per_task: None,
            requeue: true,
            extra: vec!["--qos=short".into()],
        }
    }

    fn command() -> TaskCommand {
        TaskCommand {
            program: "/opt/dd lab/ddmlab".into(),
            args: ["deconstruct", "--study", "/s/it's.toml"].map(String::from).to_vec(),
        }
    }

    #[test]
    fn the_stages_chain_fits_trainings_measurements_and_the_report() {
        let graph = |extend: bool| -> Vec<(String, usize, Vec<usize>)> {
            jobs(&study(extend), Path::new("/out"), &command(), &options())
                .unwrap()
                .into_iter()
                .map(|j| (j.name.trim_start_matches("ddmlab-s-").to_string(), j.tasks, j.after))
                .collect()
        };
        let expect = |train20_after: Vec<usize>| {
            vec![
                ("fit".to_string(), 2, vec![]),
                ("train-10".into(), 4, vec![0]),
                ("measure-10".into(), 4, vec![1]),
                ("train-20".into(), 3, train20_after),
                ("measure-20".into(), 3, vec![3]),
                ("report".into(), 1, vec![2, 4]),
            ]
        };
        // Trained on, budget 20 waits for budget 10's trainings; otherwise only for the fits.
        assert_eq!(graph(true), expect(vec![0, 1]));
        assert_eq!(graph(false), expect(vec![0]));
        let jobs = jobs(&study(true), Path::new("/out"), &command(), &options()).unwrap();
        let ids: Vec<String> = (10..16).map(|i| i.to_string()).collect();
        let line = sbatch_line(&jobs, 3, &ids, Path::new("/out/slurm/x.sbatch"));
        assert_eq!(line, ["sbatch", "--parsable", "--dependency=afterok:10:11", "/out/slurm/x.sbatch"]);
        assert_eq!(sbatch_line(&jobs, 0, &ids, Path::new("f")), ["sbatch", "--parsable", "f"]);
    }

    #[test]
    fn a_script_runs_its_array_task_quoted_and_requeues_itself_when_stopped() {
        let jobs = jobs(&study(false), Path::new("/out"), &command(), &options()).unwrap();
        let s = &jobs[1].script;
        for line in [
            "#SBATCH --array=0-3\n",
            "#SBATCH --time=60\n",
            "#SBATCH --cpus-per-task=4\n",
            "#SBATCH --partition=gpu\n",
            "#SBATCH --qos=short\n",
            "#SBATCH --requeue\n",
            "#SBATCH --output=/out/slurm/logs/train-10-%a.log\n",
            "'/opt/dd lab/ddmlab' --threads 4 deconstruct --study '/s/it'\\''s.toml' --stop-after 54 --task \
             \"train:10:$SLURM_ARRAY_TASK_ID\"\n",
            "if [ \"$rc\" -eq 75 ]; then scontrol requeue \"$SLURM_JOB_ID\" && exit 0; fi\n",
        ] {
            assert!(s.contains(line), "`{line}` missing:\n{s}");
        }
        assert!(!s.contains("--account"), "{s}");
        let plain = SlurmOptions { requeue: false, ..options() };
        let s = &super::jobs(&study(false), Path::new("/out"), &command(), &plain).unwrap()[5].script;
        assert!(s.contains("#SBATCH --no-requeue\n") && !s.contains("scontrol"), "{s}");
        assert!(s.contains("#SBATCH --array=0-0\n") && s.contains("--task \"report\""), "{s}");
        assert_eq!(SlurmOptions { time_minutes: 10, ..options() }.stop_after_minutes(), 8.0);
        assert_eq!(options().stop_after_minutes(), 54.0);
        for (bad, field) in [
            (SlurmOptions { time_minutes: 4, ..options() }, "--time 4"),
            (SlurmOptions { cpus_per_task: 0, ..options() }, "--cpus-per-task"),
            (SlurmOptions { extra: vec!["qos=short".into()], ..options() }, "qos=short"),
        ] {
            let err = super::jobs(&study(false), Path::new("/out"), &command(), &bad).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }
}
