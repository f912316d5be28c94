//! `assay worker`: one job of a planned experiment in its own process. Reads the job from
//! `plan.json`, runs it on the CPU with [`job_runner::run_job`], reports progress to the
//! orchestrator as JSON lines on stdout, reads its decisions at rungs from stdin, stops on a
//! signal, and tells how the job ended by its exit code.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use candle_core::Device;

use super::job_runner::{self, is_environment, JobEnd, JobRun, JobSink, Report};
use crate::plan::Plan;
use crate::store::ExperimentDir;
use crate::train::trainer::Verdict;

/// The exit code of a worker whose job failed in a way another try would repeat.
pub const FAILED_CODE: i32 = 10;
/// The exit code of a worker stopped on request (the job resumes from its last checkpoint).
pub const INTERRUPTED_CODE: i32 = 11;
/// The exit code of a worker whose job the environment failed (an I/O error).
pub const ENVIRONMENT_FAILED_CODE: i32 = 12;

/// The worker's exit code for a job that ended so: 0 when done or pruned.
pub fn exit_code(end: &JobEnd) -> i32 {
    match end {
        JobEnd::Done | JobEnd::Pruned => 0,
        JobEnd::Failed(_) => FAILED_CODE,
        JobEnd::EnvironmentFailed(_) => ENVIRONMENT_FAILED_CODE,
        JobEnd::Interrupted => INTERRUPTED_CODE,
    }
}

/// What the orchestrator tells a worker beyond the plan.
pub struct WorkerOptions<'a> {
    pub experiment: &'a ExperimentDir,
    pub job_id: &'a str,
    pub threads: usize,
    /// Threads preparing training batches ahead of the trainer.
    pub loader_threads: usize,
    /// Epochs at which to ask the orchestrator whether to go on (successive halving).
    pub rungs: Vec<usize>,
    /// The git revision of the spec's folder, recorded with the job.
    pub spec_git_revision: Option<String>,
    /// Set by a signal handler: stop at the next step, keeping the last checkpoint.
    pub stop: Arc<AtomicBool>,
}

/// Writes `r` as one line on stdout.
fn report(r: &Report) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(r)?)?;
    out.flush()?;
    Ok(())
}

/// The orchestrator at the other end of stdout and stdin.
struct Orchestrator<'a> {
    rungs: &'a [usize],
    stop: Arc<AtomicBool>,
}

impl JobSink for Orchestrator<'_> {
    fn report(&mut self, r: &Report) -> anyhow::Result<()> {
        report(r)
    }

    /// At a rung epoch, asks the orchestrator: it answers "continue" or "prune" on stdin.
    fn verdict(&mut self, epoch: usize, score: Option<f64>) -> anyhow::Result<Verdict> {
        let (true, Some(score)) = (self.rungs.contains(&epoch), score) else {
            return Ok(Verdict::Continue);
        };
        report(&Report::Rung { epoch, score })?;
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("the orchestrator did not answer at a rung")?;
        Ok(if line.trim() == "prune" {
            Verdict::Prune
        } else {
            Verdict::Continue
        })
    }

    fn interrupted(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Runs one job of the plan in `opts.experiment`. An I/O error on the way (a full disk, a
/// vanished file) ends it as [`JobEnd::EnvironmentFailed`], told to the orchestrator.
pub fn run_worker(opts: &WorkerOptions) -> anyhow::Result<JobEnd> {
    crate::store::fault::arm_from_env();
    crate::store::fault::arm_death_from_env();
    match load_and_run(opts) {
        Err(e) if is_environment(&e) => {
            let reason = format!("{e:#}");
            report(&Report::Finished {
                status: "failed".into(),
                reason: Some(reason.clone()),
            })?;
            Ok(JobEnd::EnvironmentFailed(reason))
        }
        other => other,
    }
}

fn load_and_run(opts: &WorkerOptions) -> anyhow::Result<JobEnd> {
    let plan_path = opts.experiment.plan();
    let plan: Plan = serde_json::from_slice(
        &std::fs::read(&plan_path)
            .with_context(|| format!("cannot read {}", plan_path.display()))?,
    )
    .with_context(|| format!("{} is damaged", plan_path.display()))?;
    let job = plan
        .job(opts.job_id)
        .with_context(|| format!("job {} is not in {}", opts.job_id, plan_path.display()))?;
    let run = JobRun {
        experiment: opts.experiment,
        plan: &plan,
        job,
        threads: opts.threads,
        loader_threads: opts.loader_threads,
        spec_git_revision: opts.spec_git_revision.as_deref(),
    };
    let mut orchestrator = Orchestrator {
        rungs: &opts.rungs,
        stop: opts.stop.clone(),
    };
    job_runner::run_job(&run, &Device::Cpu, &mut orchestrator)
}

/// The git revision of the folder holding the spec, if it is in a git work tree.
pub fn spec_git_revision(spec_path: &Path) -> Option<String> {
    let dir = spec_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
