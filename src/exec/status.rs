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
}

#[derive(Serialize)]
pub struct Status {
    pub experiment: String,
    /// Whether an `assay run` holds the experiment now.
    pub live: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_pid: Option<u32>,
    pub counts: std::collections::BTreeMap<&'static str, usize>,
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
            epochs_done: e.epochs_done,
            epochs: e.epochs,
            reason: e.reason.clone(),
            folder: experiment_dir.join(id).display().to_string(),
        })
        .collect();
    jobs.sort_by_key(|j| (j.trial, j.fold, j.repeat));
    // A job marked running in the ledger of a run that is no longer live was interrupted.
    Ok(Status {
        experiment: ledger.experiment.clone(),
        live: holder.is_some(),
        live_pid: holder.map(|h| h.0.pid),
        counts: ledger.counts(),
        jobs,
        warnings,
    })
}

/// The human-readable form.
pub fn render(s: &Status) -> String {
    let n = |k: &str| s.counts.get(k).copied().unwrap_or(0);
    let live = match s.live_pid {
        Some(pid) => format!("running now (pid {pid})"),
        None => "not running".to_string(),
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
        let state = if j.state == "running" && !s.live {
            "stopped"
        } else {
            j.state
        };
        out.push_str(&format!(
            "{:<14} {:>5} {:>4} {:>6} {:<8} {:>7}  {}\n",
            j.id,
            j.trial,
            fold,
            j.repeat,
            state,
            format!("{}/{}", j.epochs_done, j.epochs),
            j.reason.as_deref().unwrap_or("")
        ));
    }
    out
}
