//! `end.json`: how a detached worker (a Slurm task) ended, written by the worker as its last act
//! and read by whichever `assay` process next takes the orchestrator's turn.

use serde::{Deserialize, Serialize};

use super::atomic::write_atomic;
use super::JobDir;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndStatus {
    Done,
    Pruned,
    /// The job failed in a way another try would repeat (divergence, a bad model).
    Failed,
    /// The environment failed it (an I/O error): another try may pass.
    EnvironmentFailed,
    /// Stopped by a signal (cancelled, requeued, its time limit): it resumes from its last
    /// checkpoint.
    Interrupted,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerEnd {
    pub status: EndStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The worker's exit code.
    pub exit_code: i32,
    /// The Slurm job (`<array>_<task>`) it ran as, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_task: Option<String>,
    pub at: f64,
}

pub fn write(job: &JobDir, end: &WorkerEnd) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(end).map_err(std::io::Error::other)?;
    write_atomic(&job.end(), &json)
}

/// The job's `end.json`, if there is a readable one.
pub fn read(job: &JobDir) -> Option<WorkerEnd> {
    serde_json::from_slice(&std::fs::read(job.end()).ok()?).ok()
}
