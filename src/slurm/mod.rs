//! Talking to a Slurm cluster through its commands: `sbatch` to submit, `squeue` to list task
//! states (accounting may be absent, so not `sacct`), `scancel`, and what the answers mean.

pub mod script;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::store::ledger::SlurmTask;

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("cannot run `{command}` ({source}): is this a Slurm cluster's login node? (for a test cluster on this machine: scripts/slurm-local.sh start)")]
    Missing {
        command: &'static str,
        source: std::io::Error,
    },
    #[error("`{command}` refused: {said}")]
    Refused { command: String, said: String },
    #[error("`{command}` answered {answer:?}, not a job id")]
    Answer { command: String, answer: String },
}

impl SlurmError {
    /// The user's request was refused by Slurm (a wrong partition, say), not our failure.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            SlurmError::Refused { .. } | SlurmError::Missing { .. }
        )
    }
}

fn run(command: &'static str, args: &[String]) -> Result<String, SlurmError> {
    let out = Command::new(command)
        .args(args)
        .output()
        .map_err(|source| SlurmError::Missing { command, source })?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let said = if said.is_empty() {
            format!("exit status {}", out.status)
        } else {
            said
        };
        return Err(SlurmError::Refused {
            command: format!("{command} {}", args.join(" ")),
            said,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Submits `script` with `sbatch --parsable` and `args` before it; returns the job id.
pub fn submit(args: &[String], script: &Path) -> Result<u64, SlurmError> {
    let mut all = vec!["--parsable".to_string()];
    all.extend(args.iter().cloned());
    all.push(script.display().to_string());
    let answer = run("sbatch", &all)?;
    parse_job_id(&answer).ok_or_else(|| SlurmError::Answer {
        command: format!("sbatch {}", all.join(" ")),
        answer: answer.trim().to_string(),
    })
}

/// `sbatch --parsable` prints `<id>` or `<id>;<cluster>`.
pub fn parse_job_id(answer: &str) -> Option<u64> {
    answer.trim().split(';').next()?.trim().parse().ok()
}

/// Cancels Slurm jobs (whole arrays or single tasks, `123` or `123_4`).
pub fn cancel(ids: &[String]) -> Result<(), SlurmError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut args = vec!["--quiet".to_string()];
    args.extend(ids.iter().cloned());
    run("scancel", &args).map(|_| ())
}

/// A task's state as `squeue` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueState {
    /// PENDING, RUNNING, COMPLETED, CANCELLED, …
    pub state: String,
    /// Why it waits or ended (`Priority`, `BeginTime`, `None`, …).
    pub reason: String,
    pub node: String,
}

impl QueueState {
    /// Whether the task has ended for good: Slurm will not run it again by itself.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.state.as_str(),
            "COMPLETED"
                | "FAILED"
                | "CANCELLED"
                | "TIMEOUT"
                | "NODE_FAIL"
                | "OUT_OF_MEMORY"
                | "BOOT_FAIL"
                | "DEADLINE"
                | "PREEMPTED"
                | "SPECIAL_EXIT"
                | "REVOKED"
        )
    }
}

/// The tasks of `arrays` that Slurm still lists (finished ones stay listed for `MinJobAge`
/// seconds, 300 by default); a task missing here has left the listings.
pub fn queue(arrays: &[u64]) -> Result<BTreeMap<SlurmTask, QueueState>, SlurmError> {
    if arrays.is_empty() {
        return Ok(BTreeMap::new());
    }
    let ids = arrays
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let args = ["-h", "-r", "-t", "all", "-j", &ids, "-o", "%F|%K|%T|%r|%N"].map(String::from);
    match run("squeue", &args) {
        Ok(text) => Ok(parse_queue(&text)),
        // squeue refuses ids it no longer knows at all ("Invalid job id specified").
        Err(SlurmError::Refused { said, .. }) if said.contains("Invalid job id") => {
            Ok(BTreeMap::new())
        }
        Err(e) => Err(e),
    }
}

/// Parses `squeue -o '%F|%K|%T|%r|%N'` lines; jobs that are not array tasks are left out.
pub fn parse_queue(text: &str) -> BTreeMap<SlurmTask, QueueState> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.trim().split('|').collect();
        let [array, task, state, reason, node] = f[..] else {
            continue;
        };
        let (Ok(array), Ok(task)) = (array.parse(), task.parse()) else {
            continue;
        };
        out.insert(
            SlurmTask { array, task },
            QueueState {
                state: state.to_string(),
                reason: reason.to_string(),
                node: node.to_string(),
            },
        );
    }
    out
}

/// Whether a Slurm cluster answers here (`sinfo` works).
pub fn available() -> bool {
    Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sbatch_and_squeue_answers() {
        assert_eq!(parse_job_id("123\n"), Some(123));
        assert_eq!(parse_job_id("77;cluster-a\n"), Some(77));
        assert_eq!(parse_job_id("Submitted batch job 5"), None);
        let q = parse_queue(
            "5|2|PENDING|JobArrayTaskLimit|\n5|0|RUNNING|None|node7\n9|N/A|RUNNING|None|n1\nnoise\n",
        );
        assert_eq!(q.len(), 2);
        let t = |task| SlurmTask { array: 5, task };
        assert_eq!(q[&t(0)].node, "node7");
        assert!(!q[&t(2)].is_terminal());
        assert_eq!(q[&t(2)].reason, "JobArrayTaskLimit");
        let done = QueueState {
            state: "COMPLETED".into(),
            reason: "None".into(),
            node: String::new(),
        };
        assert!(done.is_terminal());
    }
}
