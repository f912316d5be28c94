//! Launchers: how the orchestrator's jobs are started and how it hears of them. The orchestrator
//! decides what runs and records it in the ledger; a launcher starts jobs and turns what their
//! workers say into [`Happening`]s: [`local`] runs worker processes on this machine, [`slurm`]
//! submits them to a Slurm cluster as job arrays.

pub mod local;
pub mod slurm;

use std::time::Duration;

use super::job_runner::Report;
use crate::store::ledger::Ledger;

/// One job to start.
pub struct Launch {
    pub id: String,
    /// Epochs at which the job's trial is compared with the others (successive halving).
    pub rungs: Vec<usize>,
}

/// How a job's worker ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Ending {
    Done,
    Pruned,
    /// `retryable`: another try may pass (a crash, an I/O error), unlike divergence.
    Failed {
        reason: String,
        retryable: bool,
    },
    /// Stopped on request before its end: it resumes from its last checkpoint when started again.
    Stopped {
        reason: Option<String>,
    },
}

/// What the orchestrator hears from a launcher.
pub enum Happening {
    /// A job's progress report, in the order its worker sent them.
    Report(String, Report),
    /// A job's worker has ended and every report it sent came before this.
    Ended(String, Ending),
}

/// Starts jobs and reports what becomes of them.
pub trait Launcher {
    /// How many more jobs it takes now.
    fn free(&self) -> usize;

    /// Starts `jobs`, recording in their ledger entries what identifies them to the launcher.
    fn launch(&mut self, jobs: &[Launch], ledger: &mut Ledger) -> anyhow::Result<()>;

    /// What happened, waiting at most `timeout` for something to.
    fn wait(&mut self, timeout: Duration) -> anyhow::Result<Vec<Happening>>;

    /// The orchestrator's verdict on a job's [`Report::Rung`]: go on, or stop as pruned.
    fn answer_rung(&mut self, id: &str, promoted: bool);

    /// Asks every running job to stop at its next step (`hard`: at once).
    fn interrupt(&mut self, hard: bool);

    /// Jobs started and not yet ended.
    fn active(&self) -> usize;

    /// What the user should hear about the launcher itself since last asked.
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// Successive-halving decisions the jobs made themselves, for the ledger.
    fn shared_rungs(&self) -> Option<crate::store::rung_file::Rungs> {
        None
    }
}
