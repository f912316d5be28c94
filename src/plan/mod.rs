//! The plan: an experiment expanded into jobs — sweep points × folds × repeats — each with a
//! stable id. Pure, no I/O.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::spec::{Experiment, ParamValue, Spec};

pub mod growth;

/// One unit of work: a trial's resolved config on one fold with one seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    /// A hash of the resolved config, fold and seed: the same job always gets the same id.
    pub id: String,
    /// Index of the sweep point (0 without a sweep).
    pub trial: usize,
    /// A hash of the trial's resolved config; the jobs of one trial share it.
    pub trial_id: String,
    /// Cross-validation fold, if the spec has folds.
    pub fold: Option<usize>,
    pub repeat: usize,
    /// Seeds initialisation, shuffling and dropout; data splits and folds use the spec's seed.
    pub seed: u64,
    /// The swept values of this trial, by key path.
    pub params: BTreeMap<String, ParamValue>,
    pub spec: Spec,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub experiment: String,
    pub trials: usize,
    /// Folds per trial (1 without cross-validation).
    pub folds: usize,
    pub repeats: usize,
    /// The folder the spec's relative data paths start from (absolute); absent in plans
    /// written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_root: Option<std::path::PathBuf>,
    pub jobs: Vec<Job>,
}

/// The first 12 hex digits of a SHA-256 over length-prefixed parts: ids of jobs and trials.
pub fn hex_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The spec as JSON with data paths relative to `spec_dir`, so ids and change detection do not
/// depend on where the repository or data folder sits; a weights file counts by its SHA-256
/// (and layout), not by where it lies.
pub fn portable_json(spec: &Spec, spec_dir: &Path) -> serde_json::Value {
    let mut v = serde_json::to_value(spec).unwrap_or(serde_json::Value::Null);
    let base = std::path::absolute(spec_dir).unwrap_or_else(|_| spec_dir.to_path_buf());
    let relative = |p: &mut serde_json::Value| {
        if let Some(s) = p.as_str() {
            let path = Path::new(s);
            if let Ok(rel) = path.strip_prefix(&base) {
                *p = serde_json::Value::String(rel.display().to_string());
            }
        }
    };
    if let Some(p) = v
        .get_mut("transfer")
        .and_then(|t| t.get_mut("pretrained"))
        .and_then(|p| p.as_object_mut())
    {
        p.remove("path");
    }
    for split in ["train", "test"] {
        if let Some(source) = v.get_mut("data").and_then(|d| d.get_mut(split)) {
            if source.is_string() {
                relative(source);
            } else if let Some(obj) = source.as_object_mut() {
                obj.values_mut().for_each(relative);
            }
        }
    }
    v
}

fn spec_hash(spec: &Spec, spec_dir: &Path) -> String {
    hex_hash(&[portable_json(spec, spec_dir).to_string().as_bytes()])
}

/// Expands an experiment into its jobs, trial by trial, fold by fold, repeat by repeat.
pub fn expand(experiment: &Experiment) -> Plan {
    let base = &experiment.base;
    let repeats = experiment.sweep.as_ref().map_or(1, |s| s.repeats);
    let folds = base.split.folds.max(1);
    let mut jobs = Vec::new();
    for (t, trial) in experiment.trials.iter().enumerate() {
        let trial_id = spec_hash(&trial.spec, &experiment.spec_dir);
        let spec_json = portable_json(&trial.spec, &experiment.spec_dir).to_string();
        for fold in 0..folds {
            let fold = (base.split.folds >= 2).then_some(fold);
            for repeat in 0..repeats {
                let seed = trial.spec.seed.wrapping_add(repeat as u64);
                let fold_text = fold.map_or("none".to_string(), |f| f.to_string());
                let id = hex_hash(&[
                    spec_json.as_bytes(),
                    fold_text.as_bytes(),
                    &seed.to_le_bytes(),
                ]);
                jobs.push(Job {
                    id,
                    trial: t,
                    trial_id: trial_id.clone(),
                    fold,
                    repeat,
                    seed,
                    params: trial.params.clone(),
                    spec: trial.spec.clone(),
                });
            }
        }
    }
    Plan {
        experiment: base.name.clone(),
        trials: experiment.trials.len(),
        folds,
        repeats,
        data_root: Some(
            std::path::absolute(&experiment.spec_dir)
                .unwrap_or_else(|_| experiment.spec_dir.clone()),
        ),
        jobs,
    }
}

impl Plan {
    /// A fingerprint of everything that decides what runs: changes when the spec does.
    pub fn fingerprint(&self) -> String {
        let ids: Vec<&str> = self.jobs.iter().map(|j| j.id.as_str()).collect();
        hex_hash(&[self.experiment.as_bytes(), ids.join(",").as_bytes()])
    }

    pub fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == id)
    }
}

/// The spec text kept in `job`'s folder: its trial's resolved spec, with `[sweep] repeats` when
/// the plan repeats each trial, so that `assay run` on it plans this trial's jobs again with the
/// same ids (this one among them) and trains them to the same metrics.
pub fn job_spec_text(plan: &Plan, job: &Job) -> String {
    let root = plan
        .data_root
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("/"));
    let sweep = (plan.repeats > 1).then(|| crate::spec::SweepSpec {
        method: crate::spec::SweepMethod::Grid,
        trials: 1,
        repeats: plan.repeats,
        parameters: Vec::new(),
        pruning: None,
    });
    let fold = job
        .fold
        .map_or("no folds".to_string(), |f| format!("fold {f}"));
    let params: Vec<String> = job.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let params = if params.is_empty() {
        String::new()
    } else {
        format!(" ({})", params.join(" "))
    };
    format!(
        "# The resolved spec of job {} of experiment {}: trial {}{params}, {fold}, repeat {} (seed {}).\n\
         # `assay run` on this file trains this trial's jobs again, with the same ids and metrics.\n\n{}",
        job.id,
        plan.experiment,
        job.trial,
        job.repeat,
        job.seed,
        crate::spec::to_text(&job.spec, &root, sweep.as_ref())
    )
}

/// The plan as text: trials with their swept values, then their jobs; compared with the plan a
/// run folder was last run with, each job says whether it is new or continues an earlier one.
pub fn render(plan: &Plan, growth: Option<&growth::Growth>) -> String {
    let mut out = format!(
        "experiment {}: {} trial(s) × {} fold(s) × {} repeat(s) = {} job(s)\n",
        plan.experiment,
        plan.trials,
        plan.folds,
        plan.repeats,
        plan.jobs.len()
    );
    let mut last_trial = None;
    for job in &plan.jobs {
        if last_trial != Some(job.trial) {
            last_trial = Some(job.trial);
            let params: Vec<String> = job.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let params = if params.is_empty() {
                "(no swept values)".to_string()
            } else {
                params.join(" ")
            };
            out.push_str(&format!(
                "trial {} [{}] {params}\n",
                job.trial, job.trial_id
            ));
        }
        let fold = job.fold.map_or("-".to_string(), |f| f.to_string());
        let change = growth.map_or(String::new(), |g| {
            if let Some(c) = g.continued.iter().find(|c| c.to == job.id) {
                format!("  continues {} after epoch {}", c.from, c.epochs_before)
            } else if g.new.contains(&job.id) {
                "  new".to_string()
            } else {
                String::new()
            }
        });
        out.push_str(&format!(
            "  job {}  fold {fold}  repeat {}  seed {}  {} epochs{change}\n",
            job.id, job.repeat, job.seed, job.spec.train.epochs
        ));
    }
    out
}
