//! The run folder on disk: its layout, crash-safe writes, the ledger and the run lock, and the
//! formats of the files a job writes and others read (`metrics.json`, checkpoints).

pub mod atomic;
pub mod checkpoint_file;
pub mod fault;
pub mod health;
pub mod layout;
pub mod ledger;
pub mod lock;
pub mod metrics_file;
pub mod mistakes;
pub mod rung_file;
pub mod worker_end;

pub use atomic::{write_atomic, write_atomic_with};
pub use layout::{ExperimentDir, JobDir};

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
