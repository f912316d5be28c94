//! Where everything lives under `<runs-dir>/<experiment>/`, in one place.

use std::path::{Path, PathBuf};

/// `<runs-dir>/<experiment name>/`: the experiment folder, also the TensorBoard log dir.
#[derive(Clone, Debug)]
pub struct ExperimentDir {
    pub root: PathBuf,
}

impl ExperimentDir {
    pub fn new(runs_dir: &Path, name: &str) -> Self {
        ExperimentDir {
            root: runs_dir.join(name),
        }
    }

    /// The jobs (with their resolved specs) of the current run; workers read their job from it.
    pub fn plan(&self) -> PathBuf {
        self.root.join("plan.json")
    }

    /// The cross-validation folds, computed once and shared by every trial.
    pub fn folds(&self) -> PathBuf {
        self.root.join("folds.json")
    }

    /// The data the experiment started on: every image's name, labels, size and pixel digest.
    pub fn inventory(&self) -> PathBuf {
        self.root.join("data-inventory.json")
    }

    /// Successive-halving decisions that Slurm tasks made themselves (see `rung_file`).
    pub fn rungs(&self) -> PathBuf {
        self.root.join("rungs.json")
    }

    /// The lock tasks take in turn to change `rungs.json`.
    pub fn rungs_lock(&self) -> PathBuf {
        self.root.join("rungs.lock")
    }

    /// Slurm's side of the experiment: each submission's batch scripts and the tasks' output.
    pub fn slurm(&self) -> PathBuf {
        self.root.join("slurm")
    }

    pub fn job(&self, job_id: &str) -> JobDir {
        JobDir {
            root: self.root.join(job_id),
        }
    }
}

/// `<experiment>/<job-id>/`: one job's outputs.
#[derive(Clone, Debug)]
pub struct JobDir {
    pub root: PathBuf,
}

impl JobDir {
    /// The resolved spec (defaults filled in, absolute data paths).
    pub fn spec(&self) -> PathBuf {
        self.root.join("spec.toml")
    }
    /// Identity and provenance: seed, data hash, git revisions, status.
    pub fn job(&self) -> PathBuf {
        self.root.join("job.json")
    }
    /// Per-epoch history and final metrics per split.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.json")
    }
    /// One row per validation and test image: true and predicted labels, probabilities.
    pub fn predictions(&self) -> PathBuf {
        self.root.join("predictions.csv")
    }
    /// The most confident mistakes per class and split, with their thumbnails' names.
    pub fn mistakes(&self) -> PathBuf {
        self.root.join("mistakes.json")
    }
    /// The thumbnails of the most confident mistakes (`<split>-<index>.png`).
    pub fn mistakes_dir(&self) -> PathBuf {
        self.root.join("mistakes")
    }
    /// The best epoch's weights.
    pub fn weights(&self) -> PathBuf {
        self.root.join("model.safetensors")
    }
    /// The last epoch's full training state, for resuming (removed when the job ends).
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.safetensors")
    }
    /// The checkpoint before the last one, kept until the next is written: what a resume falls
    /// back to when the last cannot be read.
    pub fn previous_checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.previous.safetensors")
    }
    /// A detached worker's (a Slurm task's) progress reports, one JSON line each.
    pub fn events(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }
    /// How a detached worker (a Slurm task) ended: its status, reason and exit code.
    pub fn end(&self) -> PathBuf {
        self.root.join("end.json")
    }
    /// Written when the job ran out of GPU memory and started again at half its batch size
    /// (`train.on_oom = "halve_batch"`): the batch sizes, so that a resume keeps the smaller.
    pub fn batch_halved(&self) -> PathBuf {
        self.root.join("batch-halved.json")
    }
    /// The worker's console output.
    pub fn log(&self) -> PathBuf {
        self.root.join("log.txt")
    }
    /// TensorBoard runs: the job folder itself (spec text) and one subfolder per split.
    pub fn tensorboard(&self, split: Option<&str>) -> PathBuf {
        match split {
            Some(s) => self.root.join(s),
            None => self.root.clone(),
        }
    }
}
