//! `assay cancel`: cancels an experiment's queued and running Slurm jobs (and the follow-up
//! jobs that would start more), then records how each ended, leaving the ledger consistent:
//! finished jobs stay finished, the rest are pending and continue from their checkpoints on the
//! next `assay run`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::launch::slurm::SlurmLauncher;
use super::launch::{Ending, Launcher};
use super::orchestrator::{in_slurm, record_ending};
use crate::report::ReportError;
use crate::store::ledger::{JobState, Ledger};
use crate::store::lock::{LockError, RunLock};
use crate::store::ExperimentDir;

/// How long cancelled tasks get to stop (and write their ends) before they are recorded.
const SETTLE: Duration = Duration::from_secs(60);

pub struct Cancelled {
    pub experiment: String,
    /// The Slurm ids cancelled: tasks (`<array>_<task>`) and follow-up jobs.
    pub slurm_ids: Vec<String>,
    /// How each cancelled job was recorded, by job id; empty when a live `assay run` holds the
    /// folder (it records them).
    pub recorded: Vec<(String, JobState)>,
    /// The pid of the `assay run` that holds the folder and records the ends.
    pub left_to: Option<u32>,
}

pub fn cancel(run_dir: &Path) -> anyhow::Result<Cancelled> {
    let dir = ExperimentDir {
        root: run_dir.to_path_buf(),
    };
    let ledger = Ledger::load(&dir.root)
        .map_err(ReportError::from)?
        .ok_or_else(|| ReportError::NotExperiment {
            dir: run_dir.to_path_buf(),
        })?;
    let tasks: Vec<_> = ledger
        .jobs
        .values()
        .filter(|e| in_slurm(e))
        .filter_map(|e| e.slurm)
        .collect();
    let mut slurm_ids: Vec<String> = tasks.iter().map(|t| t.to_string()).collect();
    let follow_ups: Vec<String> = ledger
        .slurm
        .iter()
        .filter(|s| tasks.iter().any(|t| t.array == s.array))
        .filter_map(|s| s.follow_up.map(|f| f.to_string()))
        .collect();
    slurm_ids.extend(follow_ups);
    let mut out = Cancelled {
        experiment: ledger.experiment.clone(),
        slurm_ids,
        recorded: Vec::new(),
        left_to: None,
    };
    if out.slurm_ids.is_empty() {
        return Ok(out);
    }
    crate::slurm::cancel(&out.slurm_ids).map_err(super::refused::RunRefused::Slurm)?;
    let _lock = match RunLock::acquire(&dir.root) {
        Ok(l) => l,
        Err(LockError::Held { pid, .. }) => {
            out.left_to = Some(pid);
            return Ok(out);
        }
        Err(e) => return Err(e.into()),
    };
    // The lock was free, so nothing else writes the ledger now: read it again under the lock.
    let mut ledger = Ledger::load(&dir.root)
        .map_err(ReportError::from)?
        .context("the ledger vanished")?;
    let mut settler = SlurmLauncher::settler(&dir, &ledger);
    let started = Instant::now();
    loop {
        for h in settler.wait(Duration::ZERO)? {
            if let super::launch::Happening::Ended(id, ending) = h {
                if let Some(e) = ledger.jobs.get_mut(&id) {
                    record_ending(e, ending, 0, true);
                    out.recorded.push((id, e.state));
                }
            }
        }
        if settler.active() == 0 || started.elapsed() > SETTLE {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // Tasks Slurm has not let go of yet: pending, continued from their checkpoints next time.
    for (id, task) in settler.tasks() {
        if let Some(e) = ledger.jobs.get_mut(&id) {
            record_ending(
                e,
                Ending::Stopped {
                    reason: Some(format!("Slurm task {task} was cancelled")),
                },
                0,
                true,
            );
            out.recorded.push((id, e.state));
        }
    }
    ledger.save(&dir.root)?;
    Ok(out)
}

pub fn render(c: &Cancelled) -> String {
    if c.slurm_ids.is_empty() {
        return format!(
            "experiment {}: no job is queued or running in Slurm; nothing to cancel\n",
            c.experiment
        );
    }
    let mut out = format!(
        "experiment {}: cancelled Slurm job(s) {}\n",
        c.experiment,
        c.slurm_ids.join(" ")
    );
    if let Some(pid) = c.left_to {
        out.push_str(&format!(
            "the `assay run` following them (pid {pid}) records how they ended\n"
        ));
        return out;
    }
    for (id, state) in &c.recorded {
        let what = match state {
            JobState::Pending => {
                "pending: it continues from its last checkpoint on the next `assay run`"
            }
            other => other.name(),
        };
        out.push_str(&format!("  {id}: {what}\n"));
    }
    out
}
