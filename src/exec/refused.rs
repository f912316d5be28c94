//! Why `assay run` refuses to go on: problems with the user's request, not with assay (exit
//! code 2).

use std::path::PathBuf;

use super::prepare;
use crate::store::lock::LockError;

/// Problems with the user's request rather than with assay (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RunRefused {
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error("the spec changed since {dir} was started:\n{changes}\nrun with --force to continue with the new spec (finished jobs that still match are kept), or --fresh to start over (the old folder is kept beside it)")]
    SpecChanged { dir: PathBuf, changes: String },
    #[error(transparent)]
    Data(#[from] prepare::PrepareError),
    #[error("not even one job fits in this machine's memory: it needs about {need} ({model} to train its model, {data} for each of the worker's and this process's copies of the decoded data), but the machine has {have}; use a smaller train.batch_size or data.image_size, or fewer images")]
    Memory {
        need: String,
        model: String,
        data: String,
        have: String,
    },
    #[error("a job needs about {need} to train ({model} for its model, {data} for the decoded data), more than the {mem} each Slurm task asks for (slurm.mem); ask for more, or use a smaller train.batch_size or data.image_size")]
    SlurmMemory {
        need: String,
        model: String,
        data: String,
        mem: String,
    },
    #[error("{count} job(s) of {dir} are still queued or running in Slurm ({tasks}); wait for them (`assay status {dir}`), or cancel them (`assay cancel {dir}`), before running it here")]
    InSlurm {
        count: usize,
        tasks: String,
        dir: PathBuf,
    },
    #[error(transparent)]
    Slurm(crate::slurm::SlurmError),
    /// A command-line option that cannot be used as given.
    #[error("{0}")]
    Usage(String),
}
