//! Opening an experiment folder's ledger for a run: a new one for a new folder; else the one
//! there, checked against the spec (a changed spec is refused unless forced, a grown sweep
//! continues), repaired when damaged, with jobs whose worker died made pending again.

use std::collections::BTreeMap;

use anyhow::Context;

use super::refused::RunRefused;
use crate::plan::growth::{Continued, Growth};
use crate::plan::Plan;
use crate::spec::Experiment;
use crate::store::ledger::{JobEntry, JobState, Ledger, LEDGER_VERSION};
use crate::store::{now, ExperimentDir};

/// Lists the key paths whose values differ between two JSON documents.
fn json_changes(
    old: &serde_json::Value,
    new: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => json_changes(x, y, &p, out),
                    (Some(x), None) => out.push(format!("  {p}: {x} → (removed)")),
                    (None, Some(y)) => out.push(format!("  {p}: (absent) → {y}")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                json_changes(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a != b => out.push(format!("  {path}: {a} → {b}")),
        _ => {}
    }
}

pub fn entry_for(job: &crate::plan::Job) -> JobEntry {
    JobEntry {
        state: JobState::Pending,
        trial: job.trial,
        trial_id: job.trial_id.clone(),
        fold: job.fold,
        repeat: job.repeat,
        attempts: 0,
        reason: None,
        retryable: false,
        epochs_done: 0,
        epochs: job.spec.train.epochs,
        refit: false,
        last_score: None,
        best_score: None,
        best_epoch: None,
        updated_at: now(),
        slurm: None,
        stopped: false,
    }
}

/// Opens (or creates) the ledger for `plan`, refusing a changed spec unless forced. A damaged
/// ledger is rebuilt from the job folders (the damaged one kept aside), and finished jobs whose
/// files are missing or damaged run again; each such repair is a warning in the result.
pub fn open_ledger(
    dir: &ExperimentDir,
    experiment: &Experiment,
    plan: &Plan,
    force: bool,
    retry_failed: bool,
) -> anyhow::Result<OpenedLedger> {
    let fingerprint = plan.fingerprint();
    let spec = crate::plan::portable_json(&experiment.base, &experiment.spec_dir);
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    // The plan the folder was last run with: what a rebuilt ledger's jobs come from.
    let last_plan = std::fs::read(dir.plan())
        .ok()
        .and_then(|b| serde_json::from_slice::<Plan>(&b).ok());
    let last_fingerprint = last_plan
        .as_ref()
        .map_or_else(|| fingerprint.clone(), |p| p.fingerprint());
    let loaded = crate::store::health::load_ledger(dir, &last_fingerprint, &spec)?;
    let loaded = match loaded {
        Some(l) => {
            if let Some(warning) = l.rebuilt {
                let aside = crate::store::health::set_aside_damaged(dir)
                    .context("cannot move the damaged ledger.json aside")?;
                warnings.push(format!(
                    "{warning}; the damaged copy is {}",
                    aside.display()
                ));
            }
            Some(l.ledger)
        }
        None => None,
    };
    let mut ledger = match loaded {
        Some(mut old) if old.fingerprint != fingerprint => {
            let growth = last_plan.as_ref().map(|last| growth_of(last, &old, plan));
            let grows = growth.as_ref().is_some_and(Growth::only_grows);
            if !grows && !force {
                let mut changes = Vec::new();
                json_changes(&old.spec, &spec, "", &mut changes);
                if changes.is_empty() {
                    changes.push("  the sweep (its parameters, trials or repeats)".into());
                }
                return Err(RunRefused::SpecChanged {
                    dir: dir.root.clone(),
                    changes: changes.join("\n"),
                }
                .into());
            }
            if let Some(growth) = growth {
                notes.push(format!("the plan changed: {}", growth.summary()));
                continue_jobs(dir, &mut old, plan, &growth.continued, &mut warnings);
            }
            old.jobs.retain(|id, e| e.refit || plan.job(id).is_some());
            old.fingerprint = fingerprint;
            old.spec = spec;
            old
        }
        Some(mut old) => {
            old.jobs.retain(|id, e| e.refit || plan.job(id).is_some());
            old.fingerprint = fingerprint;
            old.spec = spec;
            old
        }
        None => Ledger {
            version: LEDGER_VERSION,
            experiment: plan.experiment.clone(),
            fingerprint,
            spec,
            created_at: now(),
            updated_at: now(),
            jobs: BTreeMap::new(),
            rungs: BTreeMap::new(),
            slurm: Vec::new(),
        },
    };
    for (id, entry) in ledger.jobs.iter_mut() {
        match entry.state {
            // Submitted to Slurm: the launcher asks Slurm what became of it.
            JobState::Running if entry.slurm.is_some() => {}
            // Its worker died with the last orchestrator: resume it from its checkpoint, unless
            // it had written its final metrics by then.
            JobState::Running => match crate::store::health::finished_in_folder(dir, id) {
                Some(m) => {
                    entry.state = m.status.unwrap_or(JobState::Done);
                    entry.epochs_done = m.history.len();
                    entry.best_epoch = m.best_epoch;
                    entry.updated_at = now();
                }
                None => entry.state = JobState::Pending,
            },
            // A crash or an I/O error may pass on another try; divergence would only repeat,
            // unless asked for.
            JobState::Failed if entry.retryable || retry_failed => {
                entry.state = JobState::Pending;
                entry.attempts = 0;
                entry.reason = None;
            }
            _ => {}
        }
    }
    for job in &plan.jobs {
        let entry = ledger
            .jobs
            .entry(job.id.clone())
            .or_insert_with(|| entry_for(job));
        // Grid values added to a sweep renumber the trials after them.
        entry.trial = job.trial;
    }
    let problems = crate::store::health::unfinished_after_all(dir, &ledger);
    for (id, problem) in &problems {
        warnings.push(format!(
            "job {id} was finished but {problem}: it runs again"
        ));
    }
    crate::store::health::demote(&mut ledger, &problems);
    Ok(OpenedLedger {
        ledger,
        warnings,
        notes,
    })
}

/// The ledger a run continues with, and what the user should hear about it.
pub struct OpenedLedger {
    pub ledger: Ledger,
    /// Repairs and surprises.
    pub warnings: Vec<String>,
    /// What changed in the plan, when it grew.
    pub notes: Vec<String>,
}

/// The plan and ledger a folder was last run with, when both can be read.
pub fn earlier_plan(dir: &ExperimentDir) -> Option<(Plan, Ledger)> {
    let plan = serde_json::from_slice(&std::fs::read(dir.plan()).ok()?).ok()?;
    let ledger = Ledger::load(&dir.root).ok()??;
    Some((plan, ledger))
}

/// How `plan` relates to the plan the folder was last run with (`last`), its refit job aside.
pub fn growth_of(last: &Plan, ledger: &Ledger, plan: &Plan) -> Growth {
    let mut last = last.clone();
    last.jobs
        .retain(|j| !ledger.jobs.get(&j.id).is_some_and(|e| e.refit));
    crate::plan::growth::compare(&last, plan)
}

/// Moves the folders of jobs the new plan trains for more epochs to their new ids, so that
/// they continue from their last checkpoint; a finished job without one trains afresh under
/// its new id (with a warning), its old folder left as it was.
fn continue_jobs(
    dir: &ExperimentDir,
    ledger: &mut Ledger,
    plan: &Plan,
    continued: &[Continued],
    warnings: &mut Vec<String>,
) {
    for c in continued {
        let (Some(entry), Some(job)) = (ledger.jobs.get(&c.from), plan.job(&c.to)) else {
            continue;
        };
        let (from, to) = (dir.job(&c.from), dir.job(&c.to));
        if to.root.exists() {
            continue;
        }
        if entry.state == JobState::Done && !from.checkpoint().exists() {
            warnings.push(format!(
                "job {} has no checkpoint to continue from: its {} epochs run afresh as job {}",
                c.from, c.epochs_after, c.to
            ));
            continue;
        }
        if let Err(e) = std::fs::rename(&from.root, &to.root) {
            warnings.push(format!(
                "cannot move {} to {} ({e}): job {} runs afresh",
                from.root.display(),
                to.root.display(),
                c.to
            ));
            continue;
        }
        let mut entry = ledger
            .jobs
            .remove(&c.from)
            .unwrap_or_else(|| entry_for(job));
        if entry.state == JobState::Done {
            entry.state = JobState::Pending;
        }
        entry.epochs = c.epochs_after;
        entry.updated_at = now();
        ledger.jobs.insert(c.to.clone(), entry);
    }
}

#[cfg(test)]
mod tests {
    use super::json_changes;

    #[test]
    fn changes_name_the_key_paths() {
        let a =
            serde_json::json!({"optimizer": {"lr": 0.1, "kind": "sgd"}, "train": {"epochs": 3}});
        let b = serde_json::json!({"optimizer": {"lr": 0.2, "kind": "sgd"}, "train": {"epochs": 3, "patience": 2}});
        let mut out = Vec::new();
        json_changes(&a, &b, "", &mut out);
        assert_eq!(
            out,
            vec![
                "  optimizer.lr: 0.1 → 0.2".to_string(),
                "  train.patience: (absent) → 2".to_string()
            ]
        );
    }
}
