//! `assay worker`: one job of a planned experiment in its own process. Reads the job from
//! `plan.json`, runs it on the CPU with [`job_runner::run_job`], stops on a signal, and tells how
//! the job ended by its exit code. Started by a local orchestrator, it reports progress as JSON
//! lines on stdout and reads its decisions at rungs from stdin; detached (a Slurm task), it
//! appends the same lines to the job's `events.jsonl`, decides at rungs itself under the lock of
//! `rungs.json`, and writes `end.json` as its last act.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

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
    /// The device the job runs on (a GPU the only one the worker sees).
    pub device: crate::devices::JobDevice,
    /// Set by a signal handler: stop at the next step, keeping the last checkpoint.
    pub stop: Arc<AtomicBool>,
    /// Run as a Slurm task, with no orchestrator at the other end of stdin and stdout; the
    /// sweep's successive-halving reduction factor, when it prunes.
    pub detached: Option<Detached>,
}

/// What a detached worker needs to decide at its rungs.
#[derive(Clone, Copy, Debug)]
pub struct Detached {
    pub reduction_factor: usize,
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
    crate::store::fault::arm_from_env(opts.job_id);
    crate::store::fault::arm_death_from_env();
    let job = opts.experiment.job(opts.job_id);
    let mut sink: Box<dyn JobSink> = match opts.detached {
        None => Box::new(Orchestrator {
            rungs: &opts.rungs,
            stop: opts.stop.clone(),
        }),
        Some(d) => {
            // A requeued task starts again: its earlier end is not this one's.
            let _ = std::fs::remove_file(job.end());
            Box::new(TaskFiles::open(opts, d)?)
        }
    };
    let result = match load_and_run(opts, sink.as_mut()) {
        Err(e) if is_environment(&e) => {
            let reason = format!("{e:#}");
            sink.report(&Report::Finished {
                status: "failed".into(),
                reason: Some(reason.clone()),
            })?;
            Ok(JobEnd::EnvironmentFailed(reason))
        }
        other => other,
    };
    if opts.detached.is_some() {
        write_end(&job, &result);
    }
    result
}

/// Writes `end.json` for a detached worker's result (best effort: without it the task's end is
/// read from Slurm's listings).
fn write_end(job: &crate::store::JobDir, result: &anyhow::Result<JobEnd>) {
    use crate::store::worker_end::{self, EndStatus, WorkerEnd};
    let (status, reason, exit_code) = match result {
        Ok(end) => {
            let (status, reason) = match end {
                JobEnd::Done => (EndStatus::Done, None),
                JobEnd::Pruned => (EndStatus::Pruned, None),
                JobEnd::Failed(r) => (EndStatus::Failed, Some(r.clone())),
                JobEnd::EnvironmentFailed(r) => (EndStatus::EnvironmentFailed, Some(r.clone())),
                JobEnd::Interrupted => (EndStatus::Interrupted, None),
            };
            (status, reason, exit_code(end))
        }
        // An error of assay's own: another try may pass, as after a crash.
        Err(e) => (EndStatus::EnvironmentFailed, Some(format!("{e:#}")), 3),
    };
    let slurm_task = match (
        std::env::var("SLURM_ARRAY_JOB_ID"),
        std::env::var("SLURM_ARRAY_TASK_ID"),
    ) {
        (Ok(a), Ok(t)) => Some(format!("{a}_{t}")),
        _ => None,
    };
    let _ = worker_end::write(
        job,
        &WorkerEnd {
            status,
            reason,
            exit_code,
            slurm_task,
            at: crate::store::now(),
        },
    );
}

/// A detached worker's other end: the job's `events.jsonl`, and `rungs.json` for its rungs.
struct TaskFiles<'a> {
    opts: &'a WorkerOptions<'a>,
    events: std::fs::File,
    reduction_factor: usize,
    /// The job's trial and whether its best metric is better higher, once the plan is read.
    judged: Option<(usize, bool)>,
    last_step: Option<std::time::Instant>,
}

/// How often a detached worker writes its step count (a shared filesystem is no pipe).
const STEP_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl<'a> TaskFiles<'a> {
    fn open(opts: &'a WorkerOptions<'a>, d: Detached) -> anyhow::Result<Self> {
        let job = opts.experiment.job(opts.job_id);
        std::fs::create_dir_all(&job.root)
            .with_context(|| format!("cannot create {}", job.root.display()))?;
        let events = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(job.events())
            .with_context(|| format!("cannot open {}", job.events().display()))?;
        let plan: Option<Plan> = std::fs::read(opts.experiment.plan())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let judged = plan.as_ref().and_then(|p| p.job(opts.job_id)).map(|j| {
            (
                j.trial,
                crate::train::metrics::higher_is_better(&j.spec.train.best_metric),
            )
        });
        Ok(TaskFiles {
            opts,
            events,
            reduction_factor: d.reduction_factor,
            judged,
            last_step: None,
        })
    }
}

impl JobSink for TaskFiles<'_> {
    fn report(&mut self, r: &Report) -> anyhow::Result<()> {
        if let Report::Step { .. } = r {
            if self.last_step.is_some_and(|t| t.elapsed() < STEP_EVERY) {
                return Ok(());
            }
            self.last_step = Some(std::time::Instant::now());
        }
        let line = serde_json::to_string(r)? + "\n";
        self.events.write_all(line.as_bytes()).with_context(|| {
            format!(
                "cannot write {}",
                self.opts
                    .experiment
                    .job(self.opts.job_id)
                    .events()
                    .display()
            )
        })?;
        Ok(())
    }

    /// At a rung epoch, decides by ASHA's rule on the scores recorded at that rung so far, at
    /// once: nothing waits at a rung for other tasks to arrive.
    fn verdict(&mut self, epoch: usize, score: Option<f64>) -> anyhow::Result<Verdict> {
        let (true, Some(score), Some((trial, higher))) =
            (self.opts.rungs.contains(&epoch), score, self.judged)
        else {
            return Ok(Verdict::Continue);
        };
        let (id, factor) = (self.opts.job_id, self.reduction_factor);
        let promoted = crate::store::rung_file::update(self.opts.experiment, |rungs| {
            let rung = rungs.entry(epoch).or_default();
            super::scheduler::rung_verdict(rung, id, trial, score, factor, higher)
        })
        .with_context(|| {
            format!(
                "cannot record the rung decision in {}",
                self.opts.experiment.rungs().display()
            )
        })?;
        Ok(if promoted {
            Verdict::Continue
        } else {
            Verdict::Prune
        })
    }

    fn interrupted(&self) -> bool {
        self.opts.stop.load(Ordering::Relaxed)
    }
}

fn load_and_run(opts: &WorkerOptions, sink: &mut dyn JobSink) -> anyhow::Result<JobEnd> {
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
        placed_on: opts.device,
    };
    let device = crate::devices::open(opts.device, true)?;
    job_runner::run_job(&run, &device, sink)
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
