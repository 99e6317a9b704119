//! A study cut into the tasks a scheduler runs (`ddmlab deconstruct --task ...`), each the
//! local loop's own step on one item:
//!
//! ```text
//! fit:<i>                   fit the i-th tokenizer of the study (and its rFID when declared)
//! train:<budget>:<i>        train the i-th run of the budget (resumes from its checkpoint)
//! measure:<budget>:<i>      measure the i-th run of the budget (probe, kNN, FID)
//! report                    write report.md and the charts from what is measured
//! ```
//!
//! Items are numbered in the study's plan order, which the study's hash fixes, so an array job
//! of the scheduler (`$SLURM_ARRAY_TASK_ID`) names the same run in every process. Tasks of one
//! stage touch disjoint folders (a run's own, a tokenizer's own); a stage reads what the stage
//! before it wrote. A task stopped at its time limit ([`Outcome::Stopped`]) continues from its
//! checkpoint when it runs again.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use super::{DeconstructOptions, Session};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::study::{PlannedRun, Study};
use crate::train::Observer;

/// One task of a study.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Fit { index: usize },
    Train { budget: usize, index: usize },
    Measure { budget: usize, index: usize },
    Report,
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Task::Fit { index } => write!(f, "fit:{index}"),
            Task::Train { budget, index } => write!(f, "train:{budget}:{index}"),
            Task::Measure { budget, index } => write!(f, "measure:{budget}:{index}"),
            Task::Report => write!(f, "report"),
        }
    }
}

impl FromStr for Task {
    type Err = Error;

    fn from_str(s: &str) -> Result<Task> {
        let bad = || {
            Error::config(
                "task",
                format!("`{s}`: expected fit:<i>, train:<budget>:<i>, measure:<budget>:<i> or report"),
            )
        };
        let parts: Vec<&str> = s.split(':').collect();
        let num = |p: &str| p.parse::<usize>().map_err(|_| bad());
        match parts.as_slice() {
            ["fit", i] => Ok(Task::Fit { index: num(i)? }),
            ["train", b, i] => Ok(Task::Train { budget: num(b)?, index: num(i)? }),
            ["measure", b, i] => Ok(Task::Measure { budget: num(b)?, index: num(i)? }),
            ["report"] => Ok(Task::Report),
            _ => Err(bad()),
        }
    }
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Stopped at the time limit; running the task again continues it.
    Stopped,
}

/// The tokenizers a study fits, one per fit key in key order, each with the first planned run
/// that uses it (whose config fits it).
pub fn fits(study: &Study) -> Result<Vec<(String, PlannedRun)>> {
    let plan = study.plan()?;
    let mut out: Vec<(String, PlannedRun)> = Vec::new();
    for key in study.tokenizer_keys()? {
        let run = plan.iter().find(|r| fit_key(&r.config) == key).expect("every fit key is a planned run's");
        out.push((key, run.clone()));
    }
    Ok(out)
}

fn fit_key(config: &RunConfig) -> String {
    config.denoise.tokenizer.fit_key(&config.data, config.model.image)
}

/// The runs of the study at `budget`, in plan order.
pub fn runs_at(plan: &[PlannedRun], budget: usize) -> Vec<&PlannedRun> {
    plan.iter().filter(|r| r.budget == budget).collect()
}

/// Run one task of the study in `opts.out`, which must already belong to this study version
/// (the submitting command stamps it).
pub fn run_task(opts: &DeconstructOptions, task: Task, device: &Device, obs: &mut dyn Observer) -> Result<Outcome> {
    let session = Session::open(opts, false)?;
    let out_of_range = |what: &str, n: usize| {
        Error::config("task", format!("{task}: the study has {n} {what} (items are numbered from 0)"))
    };
    let done = |ok: bool| if ok { Outcome::Done } else { Outcome::Stopped };
    match task {
        Task::Fit { index } => {
            let fits = fits(&opts.study)?;
            let (_, run) = fits.get(index).ok_or_else(|| out_of_range("tokenizers", fits.len()))?;
            if !session.fit(&run.arm, &run.config, device, obs)? {
                return Ok(Outcome::Stopped);
            }
            Ok(done(session.measure_rfid(&run.config, device, obs)?))
        }
        Task::Train { budget, index } | Task::Measure { budget, index } => {
            if !opts.study.budgets.contains(&budget) {
                return Err(Error::config(
                    "task",
                    format!("{task}: {budget} is not a budget of the study ({:?})", opts.study.budgets),
                ));
            }
            let runs = runs_at(&session.plan, budget);
            let run = *runs.get(index).ok_or_else(|| out_of_range(&format!("runs at {budget} steps"), runs.len()))?;
            let Some((dir, todo)) = session.prepare(run)? else { return Ok(Outcome::Done) };
            if matches!(task, Task::Train { .. }) {
                return Ok(done(session.train(run, &dir, false, device, obs)?));
            }
            if !super::finished(&dir)? {
                return Err(Error::config(
                    "task",
                    format!("{task}: {} is not trained to its last step (its train task comes first)", dir.display()),
                ));
            }
            Ok(done(session.measure(run, &dir, &todo, device, obs)?))
        }
        Task::Report => {
            session.report()?;
            Ok(Outcome::Done)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_reads_back_as_written_and_a_malformed_one_is_one_error() {
        for t in [
            Task::Fit { index: 3 },
            Task::Train { budget: 600, index: 0 },
            Task::Measure { budget: 2400, index: 17 },
            Task::Report,
        ] {
            assert_eq!(t.to_string().parse::<Task>().unwrap(), t);
        }
        for bad in ["", "fit", "fit:x", "train:600", "measure:1:2:3", "report:1", "probe:600:1", "fit:-1"] {
            let err = bad.parse::<Task>().unwrap_err().to_string();
            assert!(err.contains("expected fit:<i>") && err.contains(&format!("`{bad}`")), "{bad}: {err}");
        }
    }
}
