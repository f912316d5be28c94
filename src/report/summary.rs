//! Reads a finished (or partly finished) experiment folder — plan.json, ledger.json and each
//! job's metrics.json and job.json — into trials with their per-job metrics. Pure given the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::spec::Task;
use crate::store::health;
use crate::store::ledger::LedgerError;
use crate::store::metrics_file::{self, MetricsFileError, SplitMetrics};
use crate::store::mistakes::{MistakeRecord, MistakesFile};
use crate::store::ExperimentDir;
use crate::train::metrics::scalar_metrics;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{dir} is not an experiment folder (no ledger.json or plan.json; expected runs/<name>/ as written by `assay run`)")]
    NotExperiment { dir: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged: {message}")]
    Damaged { path: PathBuf, message: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot compare these experiments: {0}")]
    Incompatible(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ReportError {
    /// Whether the error is the user's input (exit code 2) rather than an internal failure.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, ReportError::Write { .. })
    }
}

/// One class's precision, recall and F1 on the validation split.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassScore {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// A mistake from a job's mistakes.json and its thumbnail's PNG bytes (if readable).
pub type JobMistake = (MistakeRecord, Option<Vec<u8>>);

/// One job's outcome as read from its files.
#[derive(Clone, Debug, Default)]
pub struct JobResult {
    pub id: String,
    pub fold: Option<usize>,
    pub repeat: usize,
    /// The ledger state: pending, running, done, failed or pruned.
    pub status: String,
    pub reason: Option<String>,
    /// Final validation scalars (best epoch); empty when the job has none.
    pub val: BTreeMap<String, f64>,
    /// Final test scalars, when the job was evaluated on a test set.
    pub test: Option<BTreeMap<String, f64>>,
    /// Final training scalars (the best epoch's, measured during training).
    pub train: BTreeMap<String, f64>,
    /// Its most confident mistakes (mistakes.json) with each thumbnail's PNG bytes.
    pub mistakes: Vec<JobMistake>,
    pub per_class: Vec<ClassScore>,
    pub confusion: Option<Vec<Vec<f64>>>,
    /// The validation `best_metric` per epoch: (epoch, value).
    pub curve: Vec<(usize, f64)>,
}

impl JobResult {
    pub fn is_done(&self) -> bool {
        self.status == "done"
    }
}

/// One sweep point with its jobs (folds × repeats).
#[derive(Clone, Debug)]
pub struct TrialResult {
    pub trial: usize,
    pub trial_id: String,
    pub params: BTreeMap<String, serde_json::Value>,
    pub jobs: Vec<JobResult>,
}

impl TrialResult {
    /// done (every job done), failed (any failed), pruned (any pruned, none failed), or partial.
    pub fn status(&self) -> &'static str {
        if self.jobs.iter().any(|j| j.status == "failed") {
            "failed"
        } else if self.jobs.iter().any(|j| j.status == "pruned") {
            "pruned"
        } else if !self.jobs.is_empty() && self.jobs.iter().all(JobResult::is_done) {
            "done"
        } else {
            "partial"
        }
    }
}

/// Everything a report needs about one experiment.
#[derive(Clone, Debug)]
pub struct ExperimentResults {
    pub name: String,
    pub dir: PathBuf,
    pub best_metric: String,
    /// The task (from plan.json; multiclass for older plans): which metrics the report shows.
    pub task: Task,
    /// Folds per trial (1 without cross-validation).
    pub folds: usize,
    pub repeats: usize,
    /// Whether the jobs have a validation split (folds or `validation_fraction` > 0): without
    /// one there is no selection.
    pub validation: bool,
    pub trials: Vec<TrialResult>,
    /// The refit job (best trial retrained on all training data), with its trial index.
    pub refit: Option<(usize, JobResult)>,
    pub classes: Vec<String>,
    /// The data hash recorded in the jobs' job.json.
    pub data_hash: Option<String>,
    /// The content of folds.json, if any (trials compared across experiments need the same).
    pub folds_json: Option<String>,
    /// What is wrong with the folder (a rebuilt ledger, finished jobs left out).
    pub warnings: Vec<String>,
}

/// Whether a larger value of `metric` is better (`loss` and `hamming_loss` are lower-is-better).
pub fn higher_is_better(metric: &str) -> bool {
    crate::train::metrics::higher_is_better(metric)
}

fn read(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>, ReportError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ReportError::Damaged {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ReportError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The known scalar metrics of a split (any task's names), by name.
fn scalars(split: &SplitMetrics) -> BTreeMap<String, f64> {
    [Task::Multiclass, Task::Binary, Task::Multilabel]
        .iter()
        .flat_map(|t| scalar_metrics(*t).iter())
        .filter_map(|(name, _)| split.get(name).map(|x| (name.to_string(), x)))
        .collect()
}

/// Fills `job`'s metrics from its metrics.json (absent: the job has no metrics yet).
fn read_metrics(path: &Path, best_metric: &str, job: &mut JobResult) -> Result<(), ReportError> {
    let m = match metrics_file::read(path) {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(()),
        Err(MetricsFileError::Read { source, .. }) => {
            return Err(ReportError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(e) => {
            return Err(ReportError::Damaged {
                path: path.to_path_buf(),
                message: match e {
                    MetricsFileError::Damaged { source, .. } => source.to_string(),
                    other => other.to_string(),
                },
            })
        }
    };
    let no_split = SplitMetrics::default();
    let val = m.split("val").unwrap_or(&no_split);
    job.val = scalars(val);
    job.train = scalars(m.split("train").unwrap_or(&no_split));
    job.test = m.split("test").map(scalars);
    job.per_class = val
        .per_class
        .iter()
        .map(|r| ClassScore {
            class: r.class.clone(),
            precision: r.precision,
            recall: r.recall,
            f1: r.f1,
        })
        .collect();
    // Multilabel jobs have no confusion matrix (an empty one).
    if !val.confusion_matrix.is_empty() {
        job.confusion = Some(
            val.confusion_matrix
                .iter()
                .map(|row| row.iter().map(|&x| x as f64).collect())
                .collect(),
        );
    }
    job.curve = m
        .history
        .iter()
        .filter_map(|h| Some((h.epoch, *h.val.as_ref()?.get(best_metric)?)))
        .collect();
    Ok(())
}

/// The parts of plan.json a report needs (read loosely, so that older plans still report).
#[derive(serde::Deserialize)]
struct PlanView {
    experiment: String,
    folds: usize,
    repeats: usize,
    jobs: Vec<JobView>,
}

#[derive(serde::Deserialize)]
struct JobView {
    id: String,
    trial: usize,
    trial_id: String,
    fold: Option<usize>,
    repeat: usize,
    #[serde(default)]
    params: BTreeMap<String, serde_json::Value>,
    #[serde(rename = "spec", deserialize_with = "best_metric_of_spec")]
    spec: SpecView,
}

/// What a report needs of a job's resolved spec.
struct SpecView {
    best_metric: String,
    task: Task,
    /// It has a validation split: folds, or a validation fraction above 0.
    validation: bool,
}

fn best_metric_of_spec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SpecView, D::Error> {
    let spec: serde_json::Value = serde::Deserialize::deserialize(d)?;
    let task = serde_json::from_value(spec["task"].clone()).unwrap_or(Task::Multiclass);
    let split = &spec["split"];
    // Older plans without these keys had the defaults: a validation fraction of 0.1.
    let validation = split["folds"].as_u64().unwrap_or(0) >= 2
        || split["validation_fraction"].as_f64().unwrap_or(0.1) > 0.0;
    Ok(SpecView {
        best_metric: spec["train"]["best_metric"]
            .as_str()
            .unwrap_or("accuracy")
            .to_string(),
        task,
        validation,
    })
}

/// A job's mistakes.json with its thumbnails (absent: none, as for jobs from before it).
fn read_mistakes(dir: &crate::store::JobDir) -> Result<Vec<JobMistake>, ReportError> {
    let path = dir.mistakes();
    let Some(v) = read_json(&path)? else {
        return Ok(Vec::new());
    };
    let file: MistakesFile = serde_json::from_value(v).map_err(|e| ReportError::Damaged {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(file
        .mistakes
        .into_iter()
        .map(|m| {
            // A thumbnail that cannot be read is left out of the page, not a failed report.
            let png = m
                .thumbnail
                .as_deref()
                .filter(|t| !t.contains("..") && !t.starts_with('/'))
                .and_then(|t| std::fs::read(dir.root.join(t)).ok());
            (m, png)
        })
        .collect())
}

fn read_plan(path: &Path) -> Result<PlanView, ReportError> {
    serde_json::from_str(&read(path)?).map_err(|e| ReportError::Damaged {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads the experiment in `dir`.
pub fn load(dir: &Path) -> Result<ExperimentResults, ReportError> {
    let exp = ExperimentDir {
        root: dir.to_path_buf(),
    };
    let plan_path = exp.plan();
    if !dir.is_dir() || !plan_path.exists() {
        return Err(ReportError::NotExperiment {
            dir: dir.to_path_buf(),
        });
    }
    let loaded = health::load_ledger(&exp, "", &serde_json::Value::Null)?.ok_or_else(|| {
        ReportError::NotExperiment {
            dir: dir.to_path_buf(),
        }
    })?;
    let mut ledger = loaded.ledger;
    let mut warnings: Vec<String> = loaded.rebuilt.into_iter().collect();
    // A finished job whose metrics are gone or damaged is not summarised: it runs again.
    let problems = health::unfinished_after_all(&exp, &ledger);
    for (id, problem) in &problems {
        warnings.push(format!(
            "job {id} was finished but {problem}: it is left out and runs again on the next `assay run`"
        ));
    }
    health::demote(&mut ledger, &problems);
    let plan = read_plan(&plan_path)?;
    let best_metric = plan
        .jobs
        .first()
        .map_or_else(|| "accuracy".to_string(), |j| j.spec.best_metric.clone());
    let task = plan.jobs.first().map_or(Task::Multiclass, |j| j.spec.task);
    let refits: std::collections::BTreeSet<&str> = ledger
        .jobs
        .iter()
        .filter(|(_, e)| e.refit)
        .map(|(id, _)| id.as_str())
        .collect();
    // The refit job never has a validation split; the sweep's jobs decide.
    let validation = plan
        .jobs
        .iter()
        .find(|j| !refits.contains(j.id.as_str()))
        .is_none_or(|j| j.spec.validation);
    let mut trials: BTreeMap<usize, TrialResult> = BTreeMap::new();
    let mut refit = None;
    let mut classes = Vec::new();
    let mut data_hash = None;
    for job in &plan.jobs {
        let entry = ledger.jobs.get(&job.id);
        let job_dir = exp.job(&job.id);
        let mut result = JobResult {
            id: job.id.clone(),
            fold: job.fold,
            repeat: job.repeat,
            status: entry.map_or("pending", |e| e.state.name()).to_string(),
            reason: entry.and_then(|e| e.reason.clone()),
            ..JobResult::default()
        };
        if !problems.iter().any(|(id, _)| *id == job.id) {
            read_metrics(&job_dir.metrics(), &best_metric, &mut result)?;
            if result.is_done() {
                result.mistakes = read_mistakes(&job_dir)?;
            }
        }
        if let Some(info) = read_json(&job_dir.job())? {
            if data_hash.is_none() {
                data_hash = info["data_hash"].as_str().map(str::to_string);
            }
            if classes.is_empty() {
                if let Some(c) = info["classes"].as_array() {
                    classes = c
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect();
                }
            }
        }
        if entry.is_some_and(|e| e.refit) {
            refit = Some((job.trial, result));
            continue;
        }
        let trial = trials.entry(job.trial).or_insert_with(|| TrialResult {
            trial: job.trial,
            trial_id: job.trial_id.clone(),
            params: job.params.clone(),
            jobs: Vec::new(),
        });
        trial.jobs.push(result);
    }
    let folds_json = match std::fs::read_to_string(exp.folds()) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(ReportError::Read {
                path: exp.folds(),
                source,
            })
        }
    };
    Ok(ExperimentResults {
        name: plan.experiment.clone(),
        dir: dir.to_path_buf(),
        best_metric,
        task,
        folds: plan.folds,
        repeats: plan.repeats,
        validation,
        trials: trials.into_values().collect(),
        refit,
        classes,
        data_hash,
        folds_json,
        warnings,
    })
}
