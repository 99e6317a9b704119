//! `ddmlab deconstruct --slurm` on a real one-node Slurm cluster (`tools/slurm-local.sh`:
//! slurmctld + slurmd on localhost): the study's jobs report what the same study reports run
//! here, and a training task requeued mid-run (`scontrol requeue`) resumes from its checkpoint
//! while the stages after it wait for it. Where Slurm is not installed the test says so and
//! passes without running (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{logged_losses, write_data};

/// Table 1's claim (i) on patch PCA with a tiny network: one tokenizer fit, four trainings
/// (long enough, at 1500 steps, to be caught between two checkpoints), four probes.
const STUDY: &str = r#"
name = "tiny-slurm"
about = "claim (i) on patch PCA, a tiny network"
runner = "ladder"
budgets = [1500]
seeds = [0, 1]
overrides = ["model.width=32", "model.cond_width=8", "model.depth=2", "model.encoder_depth=1", "model.heads=2",
             "model.freq_dim=32", "denoise.tokenizer.samples=500", "train.batch_size=8", "train.checkpoint_every=50"]
protocol = { probe_epochs = 2, knn_k = 3 }

[[arm]]
name = "ladder-t1-dit"

[[arm]]
name = "ladder-t1-uncond"

[[claim]]
id = "i"
text = "on patch PCA, removing class conditioning raises the probe"
paper = "57.5 -> 62.5"
a = { arm = "ladder-t1-uncond", metric = { kind = "probe" } }
b = { arm = "ladder-t1-dit", metric = { kind = "probe" } }
test = { kind = "greater" }
budgets = [1500]
"#;

/// The one-node cluster's `SLURM_CONF`, started if needed; `None` where Slurm is not installed.
fn cluster() -> Option<PathBuf> {
    let installed = ["sbatch", "slurmctld", "slurmd", "munged"].iter().all(|b| {
        Command::new("sh").args(["-c", &format!("command -v {b}")]).output().is_ok_and(|o| o.status.success())
    });
    if !installed {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/slurm-local.sh");
    let out = Command::new(&script).arg("start").output().expect("runs tools/slurm-local.sh");
    assert!(
        out.status.success(),
        "slurm-local.sh start: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let conf = line.trim().strip_prefix("export SLURM_CONF=").expect("the script prints SLURM_CONF");
    Some(PathBuf::from(conf))
}

fn run(conf: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).env("SLURM_CONF", conf).output().expect(program);
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The state of a job (`scontrol show job`), e.g. PENDING, RUNNING, COMPLETED.
fn state(conf: &Path, job: &str) -> String {
    let text = run(conf, "scontrol", &["show", "job", job]);
    let at = text.find("JobState=").expect("scontrol shows JobState") + "JobState=".len();
    text[at..].split_whitespace().next().unwrap().to_string()
}

/// The last checkpoint's step of a run folder (0 before its first).
fn checkpointed(run: &Path) -> usize {
    std::fs::read_to_string(run.join("checkpoints/latest"))
        .ok()
        .and_then(|s| s.trim().trim_start_matches("step-").parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_study_on_slurm_reports_what_it_reports_here_and_a_requeued_task_resumes() {
    let Some(conf) = cluster() else {
        eprintln!("Slurm is not installed here (apt-get install -y slurm-wlm munge): the Slurm test did not run");
        return;
    };
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let study = tmp.path().join("tiny.toml");
    std::fs::write(&study, STUDY).unwrap();
    let (data, study) = (tmp.path().to_str().unwrap(), study.to_str().unwrap());
    let (local, remote) = (tmp.path().join("local"), tmp.path().join("slurm"));
    let bin = env!("CARGO_BIN_EXE_ddmlab");
    // Here, on one thread (the tasks' one CPU each: the CPU backend's sums depend on its threads).
    let here =
        ["--threads", "1", "deconstruct", "--study", study, "--data-dir", data, "--out", local.to_str().unwrap()];
    run(&conf, bin, &here);

    let submit = [
        "deconstruct",
        "--study",
        study,
        "--data-dir",
        data,
        "--out",
        remote.to_str().unwrap(),
        "--slurm",
        "--requeue",
        "--time",
        "10",
        "--cpus-per-task",
        "1",
    ];
    let printed = run(&conf, bin, &submit);
    let jobs: Vec<(String, String)> = std::fs::read_to_string(remote.join("slurm/jobs.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string())
        })
        .collect();
    let names: Vec<&str> = jobs.iter().map(|j| j.1.as_str()).collect();
    assert_eq!(
        names,
        [
            "ddmlab-tiny-slurm-fit",
            "ddmlab-tiny-slurm-train-1500",
            "ddmlab-tiny-slurm-measure-1500",
            "ddmlab-tiny-slurm-report"
        ],
        "{printed}"
    );
    let train = format!("{}_0", jobs[1].0);
    let report_job = jobs[3].0.clone();

    // Requeue the first training task once it has a checkpoint and before its last step.
    let run0 = remote.join("budget-1500/runs/ladder-t1-dit/seed-0");
    let requeued_at = loop {
        let step = checkpointed(&run0);
        if step > 0 {
            assert!(step < 1500, "the run ended before it could be requeued: raise its steps");
            run(&conf, "scontrol", &["requeue", &train]);
            break step;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "no checkpoint of {} after 300 s", run0.display());
        std::thread::sleep(Duration::from_millis(20));
    };
    // A requeued job waits ~2 minutes before it is eligible again: once it is back in the
    // queue (the requeue completes after the task is killed), bring its start forward.
    while state(&conf, &train) != "PENDING" {
        assert!(started.elapsed() < Duration::from_secs(400), "{train} not back in the queue");
        std::thread::sleep(Duration::from_millis(20));
    }
    run(&conf, "scontrol", &["update", &format!("jobid={train}"), "StartTime=now"]);
    assert_ne!(state(&conf, &report_job), "COMPLETED", "the report waits for the requeued task");

    loop {
        let s = state(&conf, &report_job);
        if s == "COMPLETED" {
            break;
        }
        assert!(
            ["PENDING", "RUNNING", "COMPLETING", "CONFIGURING"].contains(&s.as_str()),
            "the report job is {s}: see {}",
            remote.join("slurm/logs").display()
        );
        assert!(started.elapsed() < Duration::from_secs(600), "the study's jobs did not end in 600 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = std::fs::read_to_string(remote.join("slurm/logs/train-1500-0.log")).unwrap();
    assert!(log.contains("(restart 0)") && log.contains("(restart 1)"), "the task ran twice:\n{log}");
    assert!(
        log.contains("resuming from"),
        "the requeued task resumed from its checkpoint (step {requeued_at}):\n{log}"
    );

    // The same report, and the requeued run is the uninterrupted one, loss for loss.
    let read = |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(read(remote.join("report.md")), read(local.join("report.md")));
    for (arm, seed) in [("ladder-t1-dit", 0), ("ladder-t1-dit", 1), ("ladder-t1-uncond", 0), ("ladder-t1-uncond", 1)] {
        let at = |root: &Path| root.join(format!("budget-1500/runs/{arm}/seed-{seed}"));
        let (remote_losses, local_losses) =
            (logged_losses(&at(&remote).join("metrics.jsonl")), logged_losses(&at(&local).join("metrics.jsonl")));
        assert_eq!(remote_losses.len(), 150, "{arm} {seed}: each step logged once");
        assert_eq!(remote_losses, local_losses, "{arm} {seed}");
        assert_eq!(read(at(&remote).join("probe.json")), read(at(&local).join("probe.json")), "{arm} {seed}");
    }
    eprintln!("the Slurm study took {:.0} s (requeued at step {requeued_at})", started.elapsed().as_secs_f64());
}

/// Where `sbatch` cannot run (not a Slurm login node), `--slurm` is one error saying so, after
/// the folder is claimed for the study (so the same command runs once sbatch is there).
#[test]
fn without_sbatch_a_slurm_study_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path());
    let study = tmp.path().join("tiny.toml");
    std::fs::write(&study, STUDY).unwrap();
    let out = tmp.path().join("out");
    let args = [
        "deconstruct",
        "--study",
        study.to_str().unwrap(),
        "--data-dir",
        tmp.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--slurm",
    ];
    let result = Command::new(env!("CARGO_BIN_EXE_ddmlab")).args(args).env("PATH", "/nonexistent").output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success() && !stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("cannot run sbatch") && stderr.contains("Slurm login node"), "{stderr}");
    assert!(out.join("study.json").exists() && out.join("slurm/ddmlab-tiny-slurm-fit.sbatch").exists());
}
