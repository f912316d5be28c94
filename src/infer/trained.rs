//! A trained model as its job folder keeps it — the resolved spec, the classes, the
//! normalisation, the binary threshold and the best epoch's weights — found from a job folder
//! or from an experiment folder (its refit job, else the best trial's best job).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::Deserialize;

use crate::model::Model;
use crate::report::summary::{self, higher_is_better, JobResult};
use crate::spec::{SpecError, Task};
use crate::store::{metrics_file, JobDir};
use crate::train::loss::Objective;

/// Why no trained model could be opened.
#[derive(Debug, thiserror::Error)]
pub enum TrainedError {
    #[error("{} is neither a job folder (with job.json) nor an experiment folder (with plan.json)", path.display())]
    NotAModel { path: PathBuf },
    #[error("the job in {} has no model.safetensors (its status is \"{status}\"): only a finished job has a model", path.display())]
    Unfinished { path: PathBuf, status: String },
    #[error("{}: {reason}", path.display())]
    NoJobToUse { path: PathBuf, reason: String },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is damaged", path.display())]
    Damaged {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Report(#[from] summary::ReportError),
    #[error(transparent)]
    Metrics(#[from] metrics_file::MetricsFileError),
    #[error(transparent)]
    PositiveClass(#[from] crate::spec::positive::PositiveClassError),
    #[error("cannot build the model of {}: {message}", path.display())]
    Model { path: PathBuf, message: String },
    #[error("{}: {reason}", path.display())]
    UnusableSpec { path: PathBuf, reason: String },
}

/// The parts of `job.json` a trained model needs.
#[derive(Deserialize)]
struct JobFile {
    job_id: String,
    status: String,
    classes: Vec<String>,
    normalize_mean: Vec<f64>,
    normalize_std: Vec<f64>,
    /// `"file"` when the head is the weights file's own, not a fresh one.
    #[serde(default)]
    pretrained_head: Option<String>,
}

/// The file of class names `scripts/fetch-pretrained.sh` puts beside the ImageNet weights.
const CLASS_NAMES: &str = "imagenet-classes.txt";

/// The class names of a head kept from a weights file: `imagenet-classes.txt` beside the file
/// (one name per line, in class order), when it names as many classes as the head has.
fn head_class_names(spec: &crate::spec::Spec, classes: usize) -> Option<Vec<String>> {
    let weights = &spec.transfer.pretrained.as_ref()?.path;
    let names = class_names_beside(weights).ok()?;
    (names.len() == classes).then_some(names)
}

/// The `imagenet-classes.txt` beside the weights file `weights`, one name per line.
fn class_names_beside(weights: &Path) -> Result<Vec<String>, TrainedError> {
    let file = names_file(weights);
    let text = std::fs::read_to_string(&file).map_err(|source| TrainedError::Read {
        path: file.clone(),
        source,
    })?;
    Ok(text.lines().map(str::to_string).collect())
}

fn names_file(weights: &Path) -> PathBuf {
    weights
        .parent()
        .map_or_else(|| PathBuf::from(CLASS_NAMES), |p| p.join(CLASS_NAMES))
}

/// A finished job's model, ready to predict with.
pub struct TrainedModel {
    pub job_id: String,
    /// The job folder.
    pub dir: PathBuf,
    /// The job's resolved spec.
    pub spec: crate::spec::Spec,
    pub classes: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// The task's head and its positive class (binary).
    pub objective: Objective,
    /// The binary F1 threshold the job's test metrics applied: chosen on validation, 0.5
    /// without a validation split. `None` for other tasks.
    pub threshold: Option<f64>,
    pub net: Box<dyn Model>,
}

/// How the model of an experiment folder was chosen, for the user to hear.
pub fn describe_choice(model: &TrainedModel, choice: &Choice) -> String {
    match choice {
        Choice::Job => format!("model: job {}", model.job_id),
        Choice::Refit { trial } => format!(
            "model: the refit job {} (trial {trial} retrained on all training data)",
            model.job_id
        ),
        Choice::BestJob {
            trial,
            metric,
            score,
        } => format!(
            "model: job {} of the best trial {trial} (val {metric} {score:.4}, the best of its jobs)",
            model.job_id
        ),
        Choice::OnlyJob => format!("model: job {}, the experiment's only finished job", model.job_id),
        Choice::Spec { weights } => format!(
            "model: {} with its own head, untrained ({} classes from {CLASS_NAMES})",
            weights.display(),
            model.classes.len()
        ),
    }
}

/// Which job of an experiment folder was taken.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// A job folder was given.
    Job,
    /// The refit job of the best trial.
    Refit { trial: usize },
    /// The best validation score among the best trial's finished jobs.
    BestJob {
        trial: usize,
        metric: String,
        score: f64,
    },
    /// Without a validation split there is no best trial; the only finished job.
    OnlyJob,
    /// A spec whose `[model]` starts from a weights file with its own head (the ImageNet
    /// model, say), used without training.
    Spec { weights: PathBuf },
}

/// Opens the model at `path` (a job folder, or an experiment folder: see [`choose_job`]) on
/// `device`.
pub fn open(path: &Path, device: &Device) -> Result<(TrainedModel, Choice), TrainedError> {
    if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
        return open_spec(path, device);
    }
    let (dir, choice) = if path.join("job.json").is_file() {
        (path.to_path_buf(), Choice::Job)
    } else if path.join("plan.json").is_file() {
        let (id, choice) = choose_job(path)?;
        (path.join(id), choice)
    } else {
        return Err(TrainedError::NotAModel {
            path: path.to_path_buf(),
        });
    };
    Ok((open_job(&dir, device)?, choice))
}

/// The job of an experiment folder to use: the refit job if it finished, else the finished job
/// of the best trial with the best validation score, else (no validation split) the only
/// finished job.
pub fn choose_job(experiment: &Path) -> Result<(String, Choice), TrainedError> {
    let results = summary::load(experiment)?;
    if let Some((trial, job)) = results.refit.as_ref().filter(|(_, j)| j.is_done()) {
        return Ok((job.id.clone(), Choice::Refit { trial: *trial }));
    }
    let report = crate::report::report_json::build(std::slice::from_ref(&results), false)?;
    let no_job = |reason: &str| TrainedError::NoJobToUse {
        path: experiment.to_path_buf(),
        reason: reason.to_string(),
    };
    match report.best_trial.as_ref().and_then(|t| t.as_u64()) {
        Some(trial) => {
            let trial = trial as usize;
            let metric = &results.best_metric;
            let higher = higher_is_better(metric);
            let best = results
                .trials
                .iter()
                .filter(|t| t.trial == trial)
                .flat_map(|t| t.jobs.iter())
                .filter(|j| j.is_done())
                .filter_map(|j| j.val.get(metric).map(|&s| (j, s)))
                .fold(None::<(&JobResult, f64)>, |best, (j, s)| match best {
                    Some((_, b)) if (higher && s <= b) || (!higher && s >= b) => best,
                    _ => Some((j, s)),
                });
            let (job, score) = best.ok_or_else(|| no_job("the best trial has no finished job"))?;
            Ok((
                job.id.clone(),
                Choice::BestJob {
                    trial,
                    metric: metric.clone(),
                    score,
                },
            ))
        }
        None => {
            let done: Vec<&JobResult> = results
                .trials
                .iter()
                .flat_map(|t| t.jobs.iter())
                .filter(|j| j.is_done())
                .collect();
            match done.as_slice() {
                [only] => Ok((only.id.clone(), Choice::OnlyJob)),
                [] => Err(no_job("no job has finished")),
                _ => Err(no_job(
                    "without a validation split no trial is best; name one of its job folders",
                )),
            }
        }
    }
}

/// The model of the spec at `path` as its weights file gives it, untrained: `[model]
/// pretrained` with the file's own head, its classes named by `imagenet-classes.txt` beside the
/// file, the normalisation `[preprocess]` states (`"auto"` needs training data, so it is refused).
/// The spec's data paths need not exist.
pub fn open_spec(path: &Path, device: &Device) -> Result<(TrainedModel, Choice), TrainedError> {
    let unusable = |reason: String| TrainedError::UnusableSpec {
        path: path.to_path_buf(),
        reason,
    };
    let spec = crate::spec::load_job_spec(path)?;
    let Some(weights) = spec.transfer.pretrained.clone() else {
        return Err(unusable(
            "a spec predicts without training only from [model] pretrained weights; give a job or experiment folder for a trained model".into(),
        ));
    };
    if spec.task != Task::Multiclass {
        return Err(unusable(format!(
            "a spec predicts without training only for task = \"multiclass\", not {:?}",
            spec.task
        )));
    }
    let channels = spec.data.channels;
    let (mean, std) = match &spec.preprocess.normalize {
        crate::spec::Normalize::Fixed { mean, std } => (mean.clone(), std.clone()),
        crate::spec::Normalize::None => (vec![0.0; channels], vec![1.0; channels]),
        crate::spec::Normalize::Auto => {
            return Err(unusable(
                "[preprocess] normalize = \"auto\" is computed on training data; give the weights' own mean and std".into(),
            ))
        }
    };
    let classes = class_names_beside(&weights.path)?;
    let net = build_net(&spec, classes.len(), path, device)?;
    let loaded = crate::model::pretrained::load(net.as_ref(), &weights).map_err(|e| {
        TrainedError::Model {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    })?;
    if !loaded.head_from_file() {
        return Err(unusable(format!(
            "the head of {} does not fit the {} classes {} lists",
            weights.path.display(),
            classes.len(),
            names_file(&weights.path).display()
        )));
    }
    let objective = Objective::for_evaluation(&spec, &classes)?;
    let model = TrainedModel {
        job_id: String::new(),
        dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        spec,
        classes,
        mean,
        std,
        objective,
        threshold: None,
        net,
    };
    Ok((
        model,
        Choice::Spec {
            weights: weights.path,
        },
    ))
}

/// `spec`'s network with `outputs` outputs, freshly initialised: the weights loaded next replace
/// every parameter, so the initialisation's seed does not matter. Errors name `path`.
fn build_net(
    spec: &crate::spec::Spec,
    outputs: usize,
    path: &Path,
    device: &Device,
) -> Result<Box<dyn Model>, TrainedError> {
    crate::model::build(
        &spec.model,
        spec.input_shape(),
        outputs,
        &mut crate::train::rng::stream(0, "init", 0),
        device,
    )
    .map_err(|e| TrainedError::Model {
        path: path.to_path_buf(),
        message: crate::model::without_backtrace(e).to_string(),
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, TrainedError> {
    let bytes = std::fs::read(path).map_err(|source| TrainedError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| TrainedError::Damaged {
        path: path.to_path_buf(),
        source,
    })
}

/// Opens the finished job in folder `dir`.
pub fn open_job(dir: &Path, device: &Device) -> Result<TrainedModel, TrainedError> {
    let job_dir = JobDir {
        root: dir.to_path_buf(),
    };
    let job: JobFile = read_json(&job_dir.job())?;
    let weights = job_dir.weights();
    if !weights.is_file() {
        return Err(TrainedError::Unfinished {
            path: dir.to_path_buf(),
            status: job.status,
        });
    }
    let spec = crate::spec::load_job_spec(&job_dir.spec())?;
    let mut job = job;
    if job.pretrained_head.as_deref() == Some("file") {
        if let Some(names) = head_class_names(&spec, job.classes.len()) {
            job.classes = names;
        }
    }
    let objective = Objective::for_evaluation(&spec, &job.classes)?;
    let threshold = match spec.task {
        Task::Binary => {
            let metrics = metrics_file::read(&job_dir.metrics())?;
            let val = metrics
                .as_ref()
                .and_then(|m| m.finals.as_ref())
                .and_then(|f| f.get("val"));
            Some(val.and_then(|v| v.get("threshold")).unwrap_or(0.5))
        }
        _ => None,
    };
    let model_error = |message: String| TrainedError::Model {
        path: dir.to_path_buf(),
        message,
    };
    let net = build_net(&spec, objective.outputs(), dir, device)?;
    let state: HashMap<String, Tensor> =
        candle_core::safetensors::load(&weights, device).map_err(|e| {
            model_error(format!(
                "cannot read {}: {}",
                weights.display(),
                crate::model::without_backtrace(e)
            ))
        })?;
    net.load_state(&state)
        .map_err(|e| model_error(crate::model::without_backtrace(e).to_string()))?;
    Ok(TrainedModel {
        job_id: job.job_id,
        dir: dir.to_path_buf(),
        spec,
        classes: job.classes,
        mean: job.normalize_mean,
        std: job.normalize_std,
        objective,
        threshold,
        net,
    })
}
