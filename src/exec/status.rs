//! `assay status`: an experiment's state read from its ledger, whether or not a run is live.

use std::path::Path;

use crate::report::ReportError;
use serde::Serialize;

use crate::store::{health, lock, ExperimentDir};

#[derive(Serialize)]
pub struct JobStatus {
    pub id: String,
    pub trial: usize,
    pub fold: Option<usize>,
    pub repeat: usize,
    pub state: &'static str,
    pub attempts: u32,
    pub epochs_done: usize,
    pub epochs: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub folder: String,
    /// The Slurm array task it was last submitted as (`<array>_<task>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slurm_task: Option<String>,
    /// What `squeue` says of that task now (PENDING, RUNNING, COMPLETED, …; `gone` when Slurm
    /// no longer lists it), for jobs the ledger has in Slurm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slurm_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slurm_node: Option<String>,
}

#[derive(Serialize)]
pub struct Status {
    pub experiment: String,
    /// Whether an `assay run` holds the experiment now.
    pub live: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_pid: Option<u32>,
    pub counts: std::collections::BTreeMap<&'static str, usize>,
    /// Jobs the ledger has queued or running in Slurm.
    pub in_slurm: usize,
    pub jobs: Vec<JobStatus>,
    /// What is wrong with the folder: a damaged ledger (shown rebuilt from the job folders),
    /// finished jobs whose files are missing or damaged (shown pending: they run again).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub fn status(experiment_dir: &Path) -> anyhow::Result<Status> {
    let dir = ExperimentDir {
        root: experiment_dir.to_path_buf(),
    };
    // The same errors, and exit codes, as `assay report` on the same folder.
    let loaded = health::load_ledger(&dir, "", &serde_json::Value::Null)
        .map_err(ReportError::from)?
        .ok_or_else(|| ReportError::NotExperiment {
            dir: experiment_dir.to_path_buf(),
        })?;
    let mut ledger = loaded.ledger;
    let mut warnings: Vec<String> = loaded.rebuilt.into_iter().collect();
    let problems = health::unfinished_after_all(&dir, &ledger);
    for (id, problem) in &problems {
        warnings.push(format!(
            "job {id} was finished but {problem}: it runs again on the next `assay run`"
        ));
    }
    health::demote(&mut ledger, &problems);
    let holder = lock::holder(experiment_dir).filter(|(_, alive)| *alive);
    let mut arrays: Vec<u64> = ledger
        .jobs
        .values()
        .filter(|e| crate::exec::orchestrator::in_slurm(e))
        .filter_map(|e| e.slurm.map(|t| t.array))
        .collect();
    arrays.dedup();
    let listed = if arrays.is_empty() {
        Default::default()
    } else {
        crate::slurm::queue(&arrays).unwrap_or_else(|e| {
            warnings.push(format!("cannot ask Slurm about the jobs ({e})"));
            Default::default()
        })
    };
    let in_slurm = ledger
        .jobs
        .values()
        .filter(|e| crate::exec::orchestrator::in_slurm(e))
        .count();
    let mut jobs: Vec<JobStatus> = ledger
        .jobs
        .iter()
        .map(|(id, e)| JobStatus {
            id: id.clone(),
            trial: e.trial,
            fold: e.fold,
            repeat: e.repeat,
            state: e.state.name(),
            attempts: e.attempts,
            // A Slurm task's epochs reach the ledger at the next turn; its own reports say now.
            epochs_done: if crate::exec::orchestrator::in_slurm(e) {
                epochs_reported(&dir.job(id).events()).max(e.epochs_done)
            } else {
                e.epochs_done
            },
            epochs: e.epochs,
            reason: e.reason.clone(),
            folder: experiment_dir.join(id).display().to_string(),
            slurm_task: e.slurm.map(|t| t.to_string()),
            slurm_state: e
                .slurm
                .filter(|_| crate::exec::orchestrator::in_slurm(e))
                .map(|t| {
                    listed
                        .get(&t)
                        .map_or("gone".to_string(), |q| q.state.clone())
                }),
            slurm_node: e
                .slurm
                .filter(|_| crate::exec::orchestrator::in_slurm(e))
                .and_then(|t| listed.get(&t))
                .map(|q| q.node.clone())
                .filter(|n| !n.is_empty()),
        })
        .collect();
    jobs.sort_by_key(|j| (j.trial, j.fold, j.repeat));
    // A job marked running in the ledger of a run that is no longer live was interrupted.
    Ok(Status {
        experiment: ledger.experiment.clone(),
        live: holder.is_some(),
        live_pid: holder.map(|h| h.0.pid),
        counts: ledger.counts(),
        in_slurm,
        jobs,
        warnings,
    })
}

/// The last epoch a detached worker reported in its `events.jsonl` (0 without one).
fn epochs_reported(events: &Path) -> usize {
    std::fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<crate::exec::job_runner::Report>(l).ok())
        .filter_map(|r| match r {
            crate::exec::job_runner::Report::Epoch { epoch, .. } => Some(epoch),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// The human-readable form.
pub fn render(s: &Status) -> String {
    let n = |k: &str| s.counts.get(k).copied().unwrap_or(0);
    let live = match (s.live_pid, s.in_slurm) {
        (Some(pid), 0) => format!("running now (pid {pid})"),
        (Some(pid), n) => format!("{n} job(s) in Slurm, followed by pid {pid}"),
        (None, 0) => "not running".to_string(),
        (None, n) => format!("{n} job(s) in Slurm"),
    };
    let mut out = format!(
        "experiment {}: {live}\n{} jobs: {} done, {} running, {} pending, {} failed, {} pruned\n",
        s.experiment,
        s.jobs.len(),
        n("done"),
        n("running"),
        n("pending"),
        n("failed"),
        n("pruned")
    );
    out.push_str(&format!(
        "{:<14} {:>5} {:>4} {:>6} {:<8} {:>7}  reason\n",
        "job", "trial", "fold", "repeat", "state", "epochs"
    ));
    for j in &s.jobs {
        let fold = j.fold.map_or("-".to_string(), |f| f.to_string());
        let state = match (j.state, j.slurm_state.as_deref()) {
            ("running", Some("PENDING" | "REQUEUED" | "REQUEUE_HOLD")) => "queued",
            ("running", Some("RUNNING" | "COMPLETING" | "CONFIGURING")) => "running",
            // Ended in Slurm; recorded by the next `assay run` or the submission's follow-up.
            ("running", Some(_)) => "ended",
            ("running", None) if !s.live => "stopped",
            (state, _) => state,
        };
        let reason = match (&j.slurm_task, &j.slurm_state) {
            (Some(t), Some(q)) => {
                let node = j
                    .slurm_node
                    .as_deref()
                    .map(|n| format!(" on {n}"))
                    .unwrap_or_default();
                format!("Slurm {t}: {q}{node}")
            }
            _ => j.reason.clone().unwrap_or_default(),
        };
        out.push_str(&format!(
            "{:<14} {:>5} {:>4} {:>6} {:<8} {:>7}  {}\n",
            j.id,
            j.trial,
            fold,
            j.repeat,
            state,
            format!("{}/{}", j.epochs_done, j.epochs),
            reason
        ));
    }
    out
}
