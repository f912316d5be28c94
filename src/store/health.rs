//! A run folder checked against itself: finished jobs whose `metrics.json` is missing, damaged
//! or another job's, and a damaged `ledger.json` rebuilt from `plan.json` and the job folders.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ledger::{JobEntry, JobState, Ledger, LedgerError, LEDGER_VERSION};
use super::metrics_file::{self, MetricsFile, MetricsFileError};
use super::{now, ExperimentDir};

/// Why a job the ledger calls done (or pruned) cannot count as such, if it cannot.
pub fn finished_job_problem(dir: &ExperimentDir, id: &str) -> Option<String> {
    sound_metrics(dir, id).err()
}

/// The job's `metrics.json` if it is sound (there, readable, the job's own, with final
/// metrics), else what is wrong with it.
fn sound_metrics(dir: &ExperimentDir, id: &str) -> Result<MetricsFile, String> {
    let path = dir.job(id).metrics();
    let m = match metrics_file::read(&path) {
        Ok(Some(m)) => m,
        Ok(None) => return Err(format!("{} is missing", path.display())),
        Err(MetricsFileError::Read { source, .. }) => {
            return Err(format!("cannot read {}: {source}", path.display()))
        }
        Err(MetricsFileError::Damaged { source, .. }) => {
            return Err(format!("{} is damaged ({source})", path.display()))
        }
        Err(e) => return Err(e.to_string()),
    };
    match m.job_id.as_deref() {
        Some(j) if j == id => {}
        Some(j) => return Err(format!("{} belongs to job {j}", path.display())),
        None => return Err(format!("{} has no job id", path.display())),
    }
    if m.finals.is_none() {
        return Err(format!("{} has no final metrics", path.display()));
    }
    Ok(m)
}

/// How the job ended by its own sound `metrics.json`: done or pruned, or `None` (unfinished, or
/// no sound file). A job that finished just as its orchestrator died is found here.
pub fn finished_in_folder(dir: &ExperimentDir, id: &str) -> Option<MetricsFile> {
    sound_metrics(dir, id)
        .ok()
        .filter(|m| matches!(m.status, Some(JobState::Done | JobState::Pruned)))
}

/// Removes the temp files of crash-safe writes that a dead process left in the experiment
/// folder and its job folders (`.<name>.tmp.<pid>`); called with the run's lock held, when no
/// other process can be writing there. Returns how many went.
pub fn remove_stale_temp_files(dir: &ExperimentDir) -> usize {
    let is_temp = |name: &str| name.starts_with('.') && name.contains(".tmp.");
    let mut removed = 0;
    let mut folders = vec![dir.root.clone()];
    if let Ok(entries) = std::fs::read_dir(&dir.root) {
        folders.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if is_temp(&name.to_string_lossy())
                && entry.file_type().is_ok_and(|t| t.is_file())
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// The done and pruned jobs of `ledger` whose files say otherwise, with the reason.
pub fn unfinished_after_all(dir: &ExperimentDir, ledger: &Ledger) -> Vec<(String, String)> {
    ledger
        .jobs
        .iter()
        .filter(|(_, e)| matches!(e.state, JobState::Done | JobState::Pruned))
        .filter_map(|(id, _)| finished_job_problem(dir, id).map(|p| (id.clone(), p)))
        .collect()
}

/// Marks `problems`' jobs pending again: they run on the next `assay run`.
pub fn demote(ledger: &mut Ledger, problems: &[(String, String)]) {
    for (id, problem) in problems {
        if let Some(e) = ledger.jobs.get_mut(id) {
            e.state = JobState::Pending;
            e.reason = Some(format!("{problem}: the job runs again"));
            e.retryable = false;
            e.epochs_done = 0;
            e.updated_at = now();
        }
    }
}

/// A ledger and what was wrong with it.
pub struct LoadedLedger {
    pub ledger: Ledger,
    /// Set when `ledger.json` was damaged and this ledger was rebuilt from the job folders.
    pub rebuilt: Option<String>,
}

/// The experiment's ledger; a damaged one is rebuilt (in memory) from `plan.json` and the job
/// folders, with `fingerprint` and `spec` as given. `None` without a ledger.
pub fn load_ledger(
    dir: &ExperimentDir,
    fingerprint: &str,
    spec: &serde_json::Value,
) -> Result<Option<LoadedLedger>, LedgerError> {
    match Ledger::load(&dir.root) {
        Ok(l) => Ok(l.map(|ledger| LoadedLedger {
            ledger,
            rebuilt: None,
        })),
        Err(LedgerError::Parse { path, source }) => {
            let Some(ledger) = rebuild(dir, fingerprint, spec) else {
                return Err(LedgerError::Parse { path, source });
            };
            Ok(Some(LoadedLedger {
                ledger,
                rebuilt: Some(format!(
                    "{} is damaged ({source}); rebuilt it from plan.json and the job folders ({} jobs)",
                    path.display(),
                    dir.plan().display()
                )),
            }))
        }
        Err(e) => Err(e),
    }
}

/// Moves a damaged `ledger.json` aside (`ledger.json.damaged-<unix time>`) before a rebuilt
/// one replaces it; returns where it went.
pub fn set_aside_damaged(dir: &ExperimentDir) -> std::io::Result<std::path::PathBuf> {
    let from = super::ledger::ledger_path(&dir.root);
    let to = dir
        .root
        .join(format!("ledger.json.damaged-{}", now() as u64));
    std::fs::rename(&from, &to)?;
    Ok(to)
}

#[derive(Deserialize)]
struct PlanJobs {
    experiment: String,
    jobs: Vec<PlannedJob>,
}

#[derive(Deserialize)]
struct PlannedJob {
    id: String,
    trial: usize,
    trial_id: String,
    fold: Option<usize>,
    repeat: usize,
    spec: PlannedSpec,
}

#[derive(Deserialize)]
struct PlannedSpec {
    train: PlannedTrain,
}

#[derive(Deserialize)]
struct PlannedTrain {
    epochs: usize,
}

/// Every planned job's state from its folder: done, pruned or failed as its `metrics.json` says
/// (when that is sound), else pending (it resumes from its checkpoint, if any). Successive-halving
/// decisions are not in the folders and are lost. `None` when `plan.json` is unreadable too.
fn rebuild(dir: &ExperimentDir, fingerprint: &str, spec: &serde_json::Value) -> Option<Ledger> {
    let plan: PlanJobs = serde_json::from_slice(&std::fs::read(dir.plan()).ok()?).ok()?;
    let mut jobs = BTreeMap::new();
    for job in plan.jobs {
        let metrics = sound_metrics(dir, &job.id).ok();
        let state = match metrics.as_ref().and_then(|m| m.status) {
            Some(s @ (JobState::Done | JobState::Pruned | JobState::Failed)) => s,
            _ => JobState::Pending,
        };
        let epochs_done = metrics.as_ref().map_or(0, |m| m.history.len());
        jobs.insert(
            job.id.clone(),
            JobEntry {
                state,
                trial: job.trial,
                refit: job.trial_id.ends_with("-refit"),
                trial_id: job.trial_id,
                fold: job.fold,
                repeat: job.repeat,
                attempts: 0,
                reason: metrics.as_ref().and_then(|m| m.reason.clone()),
                retryable: false,
                epochs_done,
                epochs: job.spec.train.epochs,
                last_score: None,
                best_score: None,
                best_epoch: metrics.as_ref().and_then(|m| m.best_epoch),
                updated_at: now(),
                slurm: None,
                stopped: false,
            },
        );
    }
    Some(Ledger {
        version: LEDGER_VERSION,
        experiment: plan.experiment,
        fingerprint: fingerprint.to_string(),
        spec: spec.clone(),
        created_at: now(),
        updated_at: now(),
        jobs,
        rungs: BTreeMap::new(),
        slurm: Vec::new(),
    })
}
