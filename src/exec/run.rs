//! `assay run`: prepares the data once, then runs every job of the plan in turn.

use std::path::{Path, PathBuf};

use super::prepare::{prepare, PreparedData};
use super::worker::{run_job, JobContext, JobStatus};
use crate::plan::Plan;
use crate::report::events::{Event, EventSink};
use crate::store::ExperimentDir;

pub struct RunOptions {
    pub runs_dir: PathBuf,
    pub threads: usize,
}

#[derive(Debug, Default)]
pub struct RunSummary {
    pub done: usize,
    pub skipped: usize,
    pub failed: Vec<(String, String)>,
    pub experiment_dir: PathBuf,
}

/// Prepares the data; errors here are the user's data problems (exit code 2).
pub fn load_data(plan: &Plan, console: &mut dyn EventSink) -> anyhow::Result<PreparedData> {
    let spec = &plan
        .jobs
        .first()
        .ok_or_else(|| anyhow::anyhow!("the plan has no jobs"))?
        .spec;
    let data = prepare(spec)?;
    for report in &data.reports {
        for (path, reason) in &report.skipped {
            console.event(&Event::Warning {
                message: format!("skipped corrupt image {}: {reason}", path.display()),
            })?;
        }
    }
    Ok(data)
}

/// Runs every job; a failed job is recorded and the others go on.
pub fn run_plan(
    plan: &Plan,
    data: &PreparedData,
    spec_path: &Path,
    opts: &RunOptions,
    console: &mut dyn EventSink,
) -> anyhow::Result<RunSummary> {
    let experiment = ExperimentDir::new(&opts.runs_dir, &plan.experiment);
    let ctx = JobContext {
        experiment: &experiment,
        spec_path,
        threads: opts.threads,
    };
    let mut summary = RunSummary {
        experiment_dir: experiment.root.clone(),
        ..Default::default()
    };
    for job in &plan.jobs {
        match run_job(job, data, &ctx, console)? {
            JobStatus::Done => summary.done += 1,
            JobStatus::Skipped => summary.skipped += 1,
            JobStatus::Failed(reason) => summary.failed.push((job.id.clone(), reason)),
        }
    }
    Ok(summary)
}
