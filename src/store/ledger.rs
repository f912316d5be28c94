//! The ledger: every job's state for one experiment, in one versioned JSON file rewritten
//! crash-safely by the single live `assay run` — what a later run resumes from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::atomic::write_atomic;

pub const LEDGER_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Pending,
    Running,
    Done,
    Failed,
    Pruned,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Pruned => "pruned",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Pruned)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobEntry {
    pub state: JobState,
    pub trial: usize,
    pub trial_id: String,
    pub fold: Option<usize>,
    pub repeat: usize,
    /// Times a worker was started for this job.
    pub attempts: u32,
    /// Why it failed or was pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A failure that may pass on another try (a crash), unlike divergence.
    #[serde(default)]
    pub retryable: bool,
    pub epochs_done: usize,
    pub epochs: usize,
    /// The best trial retrained on all training data (`split.refit`), added after the sweep.
    #[serde(default)]
    pub refit: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_score: Option<f64>,
    /// The best validation `best_metric` so far and its epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
    pub updated_at: f64,
    /// The Slurm array task it was last submitted as (`--backend slurm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmTask>,
    /// Stopped on request (Ctrl-C, `scancel`, `assay cancel`): pending, but only a new `assay run`
    /// starts it again, not the follow-up job of a Slurm submission.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

/// One task of a Slurm job array: `<array>_<task>` in Slurm's listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SlurmTask {
    pub array: u64,
    pub task: usize,
}

impl std::fmt::Display for SlurmTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.array, self.task)
    }
}

/// One `sbatch` of pending jobs: the array (task i runs `jobs[i]`) and the dependent job that
/// takes the orchestrator's next turn when the array has ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub array: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<u64>,
    pub jobs: Vec<String>,
    pub submitted_at: f64,
}

/// Scores reported at one rung (an epoch where successive halving decides), by job.
pub type Rung = BTreeMap<String, RungScore>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RungScore {
    pub trial: usize,
    pub score: f64,
    /// Whether the job was allowed on (true) or pruned (false) at this rung.
    pub promoted: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub version: u32,
    pub experiment: String,
    /// Changes when the spec changes what runs (see `Plan::fingerprint`).
    pub fingerprint: String,
    /// The base spec as JSON, to say what changed when a different spec meets this ledger.
    pub spec: serde_json::Value,
    pub created_at: f64,
    pub updated_at: f64,
    pub jobs: BTreeMap<String, JobEntry>,
    /// Successive-halving decisions by rung epoch; they survive crashes.
    #[serde(default)]
    pub rungs: BTreeMap<usize, Rung>,
    /// Every Slurm submission of this experiment, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slurm: Vec<Submission>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({source}); move it away to start the experiment afresh")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} was written by a newer assay (ledger version {found}, this one reads {LEDGER_VERSION})")]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub fn ledger_path(experiment_dir: &Path) -> PathBuf {
    experiment_dir.join("ledger.json")
}

impl Ledger {
    /// The ledger in `experiment_dir`, if one exists.
    pub fn load(experiment_dir: &Path) -> Result<Option<Ledger>, LedgerError> {
        let path = ledger_path(experiment_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LedgerError::Read { path, source }),
        };
        let version = serde_json::from_str::<serde_json::Value>(&text).map_err(|source| {
            LedgerError::Parse {
                path: path.clone(),
                source,
            }
        })?["version"]
            .as_u64()
            .unwrap_or(0) as u32;
        if version > LEDGER_VERSION {
            return Err(LedgerError::Version {
                path,
                found: version,
            });
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| LedgerError::Parse { path, source })
    }

    /// Writes the ledger crash-safely (temp file, fsync, rename).
    pub fn save(&mut self, experiment_dir: &Path) -> Result<(), LedgerError> {
        self.updated_at = super::now();
        let path = ledger_path(experiment_dir);
        let json = serde_json::to_vec_pretty(self).map_err(|e| LedgerError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&path, &json).map_err(|source| LedgerError::Write { path, source })
    }

    /// How many jobs are in each state.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for e in self.jobs.values() {
            *counts.entry(e.state.name()).or_insert(0) += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_newer_versions() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Ledger::load(dir.path()).unwrap().is_none());
        let entry = JobEntry {
            state: JobState::Done,
            trial: 0,
            trial_id: "t".into(),
            fold: Some(1),
            repeat: 0,
            attempts: 1,
            reason: None,
            retryable: false,
            epochs_done: 3,
            epochs: 3,
            refit: false,
            last_score: Some(0.9),
            best_score: Some(0.9),
            best_epoch: Some(1),
            updated_at: 1.0,
            slurm: Some(SlurmTask { array: 7, task: 2 }),
            stopped: true,
        };
        let mut l = Ledger {
            version: LEDGER_VERSION,
            experiment: "e".into(),
            fingerprint: "f".into(),
            spec: serde_json::json!({"a": 1}),
            created_at: 1.0,
            updated_at: 1.0,
            jobs: [("j".to_string(), entry)].into(),
            rungs: BTreeMap::new(),
            slurm: vec![Submission {
                array: 7,
                follow_up: Some(8),
                jobs: vec!["j".into()],
                submitted_at: 1.0,
            }],
        };
        l.save(dir.path()).unwrap();
        let back = Ledger::load(dir.path()).unwrap().unwrap();
        assert_eq!(back, l);
        assert_eq!(back.counts()["done"], 1);
        std::fs::write(ledger_path(dir.path()), r#"{"version": 99}"#).unwrap();
        assert!(matches!(
            Ledger::load(dir.path()),
            Err(LedgerError::Version { found: 99, .. })
        ));
        std::fs::write(ledger_path(dir.path()), "{").unwrap();
        assert!(matches!(
            Ledger::load(dir.path()),
            Err(LedgerError::Parse { .. })
        ));
    }
}
