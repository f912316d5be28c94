//! `assay worker`: runs one job of a planned experiment in its own process — loads its data
//! and fold, resumes from its last epoch checkpoint if there is one, trains, evaluates, and
//! writes its folder. It reports progress to the orchestrator as JSON lines on stdout.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::audit::{self, SplitPredictions};
use super::prepare::{self, PreparedData};
use crate::data::folds::Folds;
use crate::data::image_set::ImageSet;
use crate::model::Network;
use crate::plan::{Job, Plan};
use crate::report::console::ConsoleSink;
use crate::report::events::{EpochRecord, Event, EventSink, Fanout};
use crate::report::tb_sink::TensorBoardSink;
use crate::report::tensorboard::SessionStatus;
use crate::store::checkpoint_file;
use crate::store::ledger::JobState;
use crate::store::metrics_file::{self, MetricsFile, SplitMetrics};
use crate::store::{now, write_atomic, write_atomic_with, ExperimentDir, JobDir};
use crate::train::batches::Inputs;
use crate::train::evaluate::evaluate_with_predictions;
use crate::train::loader::LoaderConfig;
use crate::train::loss::Objective;
use crate::train::metrics::Metrics;
use crate::train::trainer::{self, Checkpoint, Ending, TrainHooks, Verdict};

/// Version of `job.json`.
pub const FORMAT_VERSION: u32 = 1;

/// How a worker process ends; its exit code tells the orchestrator.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerExit {
    Done,
    Pruned,
    /// Training failed in a way another try would repeat (divergence).
    Failed(String),
    /// The environment failed the job (an I/O error: a full disk, a vanished file); another
    /// try, once that is mended, may pass.
    EnvironmentFailed(String),
    /// Stopped on request; the last epoch checkpoint is kept.
    Interrupted,
}

impl WorkerExit {
    pub const FAILED_CODE: i32 = 10;
    pub const INTERRUPTED_CODE: i32 = 11;
    pub const ENVIRONMENT_FAILED_CODE: i32 = 12;

    pub fn code(&self) -> i32 {
        match self {
            WorkerExit::Done | WorkerExit::Pruned => 0,
            WorkerExit::Failed(_) => Self::FAILED_CODE,
            WorkerExit::EnvironmentFailed(_) => Self::ENVIRONMENT_FAILED_CODE,
            WorkerExit::Interrupted => Self::INTERRUPTED_CODE,
        }
    }
}

/// One line of the worker → orchestrator protocol.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Report {
    Started {
        parameters: usize,
        resumed_from: usize,
    },
    /// Within an epoch, at most twice a second.
    Step {
        epoch: usize,
        step: usize,
        steps: usize,
    },
    Epoch {
        epoch: usize,
        epochs: usize,
        score: Option<f64>,
        /// The best validation score so far and its epoch.
        #[serde(default)]
        best_score: Option<f64>,
        #[serde(default)]
        best_epoch: Option<usize>,
    },
    /// At a rung epoch: the worker waits for "continue" or "prune" on stdin.
    Rung { epoch: usize, score: f64 },
    Finished {
        status: String,
        reason: Option<String>,
    },
    /// Something the user should hear about (an unreadable checkpoint, say).
    Warning { message: String },
}

fn report(r: &Report) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(r)?)?;
    out.flush()?;
    Ok(())
}

#[derive(Serialize)]
struct JobRecord<'a> {
    version: u32,
    job_id: &'a str,
    experiment: &'a str,
    trial: usize,
    trial_id: &'a str,
    fold: Option<usize>,
    repeat: usize,
    params: &'a BTreeMap<String, crate::spec::ParamValue>,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    seed: u64,
    data_hash: &'a str,
    classes: &'a [String],
    /// The binary task's positive class.
    #[serde(skip_serializing_if = "Option::is_none")]
    positive_class: Option<&'a str>,
    normalize_mean: &'a [f64],
    normalize_std: &'a [f64],
    parameters: usize,
    threads: usize,
    assay_version: &'a str,
    assay_git_revision: &'a str,
    spec_git_revision: Option<&'a str>,
    started_at: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<f64>,
}

/// What the orchestrator tells a worker beyond the plan.
pub struct WorkerOptions<'a> {
    pub experiment: &'a ExperimentDir,
    pub job_id: &'a str,
    pub threads: usize,
    /// Threads preparing training batches ahead of the trainer.
    pub loader_threads: usize,
    /// Epochs at which to ask the orchestrator whether to go on (successive halving).
    pub rungs: Vec<usize>,
    /// The git revision of the spec's folder, recorded with the job.
    pub spec_git_revision: Option<String>,
    /// Set by a signal handler: stop at the next step, keeping the last checkpoint.
    pub stop: Arc<AtomicBool>,
}

/// Runs one job of the plan in `opts.experiment`. An I/O error on the way (a full disk, a
/// vanished file) ends it as [`WorkerExit::EnvironmentFailed`], told to the orchestrator.
pub fn run_worker(opts: &WorkerOptions) -> anyhow::Result<WorkerExit> {
    crate::store::fault::arm_from_env();
    match load_and_run(opts) {
        Err(e) if is_environment(&e) => {
            let reason = format!("{e:#}");
            report(&Report::Finished {
                status: "failed".into(),
                reason: Some(reason.clone()),
            })?;
            Ok(WorkerExit::EnvironmentFailed(reason))
        }
        other => other,
    }
}

fn load_and_run(opts: &WorkerOptions) -> anyhow::Result<WorkerExit> {
    let plan_path = opts.experiment.plan();
    let plan: Plan = serde_json::from_slice(
        &std::fs::read(&plan_path)
            .with_context(|| format!("cannot read {}", plan_path.display()))?,
    )
    .with_context(|| format!("{} is damaged", plan_path.display()))?;
    let job = plan
        .job(opts.job_id)
        .with_context(|| format!("job {} is not in {}", opts.job_id, plan_path.display()))?
        .clone();
    let loaded = prepare::load(&job.spec)?;
    let folds: Option<Folds> = match job.fold {
        Some(_) => {
            let path = opts.experiment.folds();
            Some(
                serde_json::from_slice(
                    &std::fs::read(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                )
                .with_context(|| format!("{} is damaged", path.display()))?,
            )
        }
        None => None,
    };
    let data = prepare::for_job(&job.spec, &loaded, folds.as_ref(), job.fold)?;
    run_job(&plan, &job, &data, opts)
}

/// Trains and evaluates `job` of `plan` on `data`, writing its folder.
pub fn run_job(
    plan: &Plan,
    job: &Job,
    data: &PreparedData,
    opts: &WorkerOptions,
) -> anyhow::Result<WorkerExit> {
    let dir = opts.experiment.job(&job.id);
    std::fs::create_dir_all(&dir.root)
        .with_context(|| format!("cannot create {}", dir.root.display()))?;
    let spec = &job.spec;
    let spec_toml = crate::plan::job_spec_text(plan, job);
    write_atomic(&dir.spec(), spec_toml.as_bytes())
        .with_context(|| format!("cannot write {}", dir.spec().display()))?;

    let device = Device::Cpu;
    let net = prepare::build_network(spec, data, job.seed, &device)?;
    let (resume, checkpoint_warnings) = checkpoint_file::load_latest(&dir, &device);
    let resumed_from = resume.as_ref().map_or(0, |c| c.epoch);
    let positive_class = match spec.task {
        crate::spec::Task::Binary => {
            let i = crate::train::loss::positive_index(spec, &data.classes)?;
            data.classes.get(i).map(String::as_str)
        }
        _ => None,
    };
    let mut record = JobRecord {
        version: FORMAT_VERSION,
        job_id: &job.id,
        experiment: &spec.name,
        trial: job.trial,
        trial_id: &job.trial_id,
        fold: job.fold,
        repeat: job.repeat,
        params: &job.params,
        status: "running",
        reason: None,
        seed: job.seed,
        data_hash: &data.data_hash,
        classes: &data.classes,
        positive_class,
        normalize_mean: &data.mean,
        normalize_std: &data.std,
        parameters: net.parameter_count(),
        threads: opts.threads,
        assay_version: env!("CARGO_PKG_VERSION"),
        assay_git_revision: env!("ASSAY_GIT_REVISION"),
        spec_git_revision: opts.spec_git_revision.as_deref(),
        started_at: now(),
        finished_at: None,
    };
    let write_record = |r: &JobRecord| -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(r)?;
        write_atomic(&dir.job(), &json)
            .with_context(|| format!("cannot write {}", dir.job().display()))
    };
    write_record(&record)?;
    report(&Report::Started {
        parameters: net.parameter_count(),
        resumed_from,
    })?;

    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.log())
        .with_context(|| format!("cannot open {}", dir.log().display()))?;
    let mut console = ConsoleSink::to_file(log);
    let mut progress = ProgressReporter { last_step: None };
    let mut tb = TensorBoardSink::new(dir.clone()).with_session(&job.params, &job.trial_id);
    if resumed_from == 0 {
        tb.add_samples(&data.train)?;
        if !spec.augment.train.is_empty() {
            let grid = crate::augment::grid::default_preview(&spec.augment, &data.train, job.seed);
            tb.add_augment_preview(&grid)?;
        }
    }
    let mut sink = Fanout {
        sinks: vec![&mut console, &mut progress, &mut tb],
    };
    for message in checkpoint_warnings {
        report(&Report::Warning {
            message: message.clone(),
        })?;
        sink.event(&Event::Warning { message })?;
    }
    if resumed_from > 0 {
        sink.event(&Event::Warning {
            message: format!("resuming job {} after epoch {resumed_from}", job.id),
        })?;
    }
    let mut hooks = WorkerHooks {
        dir: &dir,
        stop: opts.stop.clone(),
        rungs: &opts.rungs,
        epochs: spec.train.epochs,
        metric: &spec.train.best_metric,
    };
    let started = Instant::now();
    let result = train_and_evaluate(
        job,
        data,
        &net,
        &dir,
        &spec_toml,
        resume,
        LoaderConfig::for_threads(opts.loader_threads),
        &mut hooks,
        &mut sink,
    );
    record.finished_at = Some(now());
    let exit = match result {
        Ok(Trained {
            ending: Ending::Interrupted,
            ..
        }) => {
            sink.event(&Event::Warning {
                message: format!(
                    "job {} interrupted; it resumes from its last checkpoint",
                    job.id
                ),
            })?;
            record.status = "interrupted";
            write_record(&record)?;
            return Ok(WorkerExit::Interrupted);
        }
        Ok(t) => {
            let state = if matches!(t.ending, Ending::Pruned { .. }) {
                JobState::Pruned
            } else {
                JobState::Done
            };
            audit::write(&dir, spec.task, &data.classes, t.positive, &t.predictions)?;
            write_metrics(
                &dir,
                job,
                state,
                None,
                Some(t.best_epoch),
                Some(&t.ending),
                &t.history,
                &t.finals,
            )?;
            sink.event(&Event::JobFinished {
                job: job.id.clone(),
                best_epoch: t.best_epoch,
                seconds: started.elapsed().as_secs_f64(),
            })?;
            record.status = state.name();
            write_record(&record)?;
            checkpoint_file::remove(&dir)?;
            if state == JobState::Pruned {
                WorkerExit::Pruned
            } else {
                WorkerExit::Done
            }
        }
        Err(failure) => {
            let reason = format!("{:#}", failure.error);
            write_metrics(
                &dir,
                job,
                JobState::Failed,
                Some(&reason),
                None,
                None,
                &failure.history,
                &Finals::new(),
            )
            .with_context(|| format!("after the job failed ({reason})"))?;
            // The log must hear about the failure even if TensorBoard is what failed.
            let _ = sink.event(&Event::JobFailed {
                job: job.id.clone(),
                reason: reason.clone(),
            });
            record.status = "failed";
            record.reason = Some(&reason);
            write_record(&record)?;
            if is_environment(&failure.error) {
                WorkerExit::EnvironmentFailed(reason)
            } else {
                WorkerExit::Failed(reason)
            }
        }
    };
    let (status, reason) = match &exit {
        WorkerExit::Done => ("done", None),
        WorkerExit::Pruned => ("pruned", None),
        WorkerExit::Failed(r) | WorkerExit::EnvironmentFailed(r) => ("failed", Some(r.clone())),
        WorkerExit::Interrupted => ("interrupted", None),
    };
    drop(sink);
    let session_status = if exit == WorkerExit::Done {
        SessionStatus::Success
    } else {
        SessionStatus::Failure
    };
    tb.end_session(session_status)?;
    report(&Report::Finished {
        status: status.into(),
        reason,
    })?;
    Ok(exit)
}

/// Whether `error` came from the environment (an I/O error anywhere in its chain) rather than
/// from the job itself (divergence, a model that cannot be built).
fn is_environment(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some())
}

/// Sends progress within epochs to the orchestrator (finished epochs are sent once checkpointed).
struct ProgressReporter {
    /// When the last step report went out (they are sent at most twice a second).
    last_step: Option<Instant>,
}

impl EventSink for ProgressReporter {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        if let Event::StepDone {
            epoch, step, steps, ..
        } = event
        {
            if self
                .last_step
                .is_none_or(|t| t.elapsed().as_secs_f64() >= 0.5)
            {
                self.last_step = Some(Instant::now());
                report(&Report::Step {
                    epoch: *epoch,
                    step: *step,
                    steps: *steps,
                })?;
            }
        }
        Ok(())
    }
}

struct WorkerHooks<'a> {
    dir: &'a JobDir,
    stop: Arc<AtomicBool>,
    rungs: &'a [usize],
    epochs: usize,
    metric: &'a str,
}

impl TrainHooks for WorkerHooks<'_> {
    fn checkpoint(&mut self, c: &Checkpoint) -> anyhow::Result<()> {
        checkpoint_file::save(self.dir, c)?;
        crate::store::fault::after_checkpoint(c.epoch);
        // Only a durable epoch counts as done for the orchestrator (and a resumed run).
        let score = c
            .history
            .last()
            .and_then(|r| r.val.as_ref())
            .and_then(|v| v.get(self.metric));
        report(&Report::Epoch {
            epoch: c.epoch,
            epochs: self.epochs,
            score,
            best_score: c.best_score,
            best_epoch: (c.best_epoch > 0).then_some(c.best_epoch),
        })
    }

    fn interrupted(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn verdict(&mut self, epoch: usize, score: Option<f64>) -> anyhow::Result<Verdict> {
        let (true, Some(score)) = (self.rungs.contains(&epoch), score) else {
            return Ok(Verdict::Continue);
        };
        report(&Report::Rung { epoch, score })?;
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("the orchestrator did not answer at a rung")?;
        Ok(if line.trim() == "prune" {
            Verdict::Prune
        } else {
            Verdict::Continue
        })
    }
}

struct Failure {
    error: anyhow::Error,
    history: Vec<EpochRecord>,
}

type Finals = BTreeMap<&'static str, Metrics>;

struct Trained<'a> {
    best_epoch: usize,
    history: Vec<EpochRecord>,
    finals: Finals,
    ending: Ending,
    /// The validation and test splits' per-image predictions (best epoch's weights).
    predictions: Vec<SplitPredictions<'a>>,
    /// The binary positive class.
    positive: usize,
}

#[allow(clippy::too_many_arguments)]
fn train_and_evaluate<'a>(
    job: &Job,
    data: &'a PreparedData,
    net: &Network,
    dir: &JobDir,
    spec_toml: &str,
    resume: Option<Checkpoint>,
    loader: LoaderConfig,
    hooks: &mut dyn TrainHooks,
    sink: &mut dyn EventSink,
) -> Result<Trained<'a>, Failure> {
    let fail = |error: anyhow::Error| Failure {
        error,
        history: Vec::new(),
    };
    let spec = &job.spec;
    let inputs = Inputs::new(spec, &data.mean, &data.std);
    let steps_per_epoch = data.train.len().div_ceil(spec.train.batch_size);
    sink.event(&Event::JobStarted {
        job: job.id.clone(),
        parameters: net.parameter_count(),
        train: data.train.len(),
        val: data.val.as_ref().map_or(0, |v| v.len()),
        test: data.test.as_ref().map_or(0, |t| t.len()),
        epochs: spec.train.epochs,
        steps_per_epoch,
        spec_toml: spec_toml.to_string(),
    })
    .map_err(fail)?;
    let outcome = trainer::train(
        &job.id,
        spec,
        job.seed,
        net,
        &data.train,
        data.val.as_ref(),
        &inputs,
        resume,
        loader,
        hooks,
        sink,
    )
    .map_err(|e| fail(e.into()))?;
    let history = outcome.history;
    if outcome.ending == Ending::Interrupted {
        return Ok(Trained {
            best_epoch: outcome.best_epoch,
            history,
            finals: Finals::new(),
            ending: Ending::Interrupted,
            predictions: Vec::new(),
            positive: 0,
        });
    }
    let with_history = |error: anyhow::Error| Failure {
        error,
        history: history.clone(),
    };
    let best: HashMap<String, Tensor> = outcome.best_state.into_iter().collect();
    net.load_state(&best)
        .map_err(|e| with_history(trainer::without_backtrace(e).into()))?;
    write_atomic_with(&dir.weights(), |tmp| {
        candle_core::safetensors::save(&best, tmp).map_err(std::io::Error::other)
    })
    .with_context(|| format!("cannot write {}", dir.weights().display()))
    .map_err(with_history)?;
    let best_record = history
        .iter()
        .find(|r| r.epoch == outcome.best_epoch)
        .ok_or_else(|| {
            with_history(anyhow::anyhow!(
                "no record of the best epoch {}",
                outcome.best_epoch
            ))
        })?;
    let objective =
        Objective::new(spec, &data.classes, &data.train).map_err(|e| with_history(e.into()))?;
    let eval = |set: &ImageSet, threshold: Option<f64>| {
        evaluate_with_predictions(
            net,
            set,
            &inputs,
            spec.train.eval_batch_size,
            &objective,
            threshold,
        )
        .map_err(|e| anyhow::Error::from(trainer::without_backtrace(e)))
    };
    let mut finals = Finals::new();
    let mut predictions = Vec::new();
    finals.insert("train", best_record.train.clone());
    // The best epoch's weights on the validation split once more, in one pass for its final
    // metrics and its per-image predictions (the same numbers as the best epoch's record).
    if let (Some(val), Some(_)) = (&data.val, &best_record.val) {
        let (m, p) = eval(val, None).map_err(with_history)?;
        predictions.push(SplitPredictions {
            split: "val",
            set: val,
            names: data.val_names.as_deref(),
            threshold: m.get("threshold"),
            predictions: p,
        });
        finals.insert("val", m);
    }
    // Pruned jobs stop before the end; their test score would only tempt selection on the test set.
    if let (Some(test), false) = (&data.test, matches!(outcome.ending, Ending::Pruned { .. })) {
        // The binary F1 threshold is the one chosen on validation (0.5 without validation).
        let threshold = match finals.get("val") {
            Some(v) => v.get("threshold"),
            None => Some(0.5),
        };
        let (m, p) = eval(test, threshold).map_err(with_history)?;
        sink.event(&Event::Evaluated {
            job: job.id.clone(),
            split: "test",
            step: outcome.best_epoch,
            metrics: Box::new(m.clone()),
        })
        .map_err(with_history)?;
        predictions.push(SplitPredictions {
            split: "test",
            set: test,
            names: data.test_names.as_deref(),
            threshold: m.get("threshold"),
            predictions: p,
        });
        finals.insert("test", m);
    }
    Ok(Trained {
        best_epoch: outcome.best_epoch,
        history,
        finals,
        ending: outcome.ending,
        predictions,
        positive: objective.positive,
    })
}

#[allow(clippy::too_many_arguments)]
fn write_metrics(
    dir: &JobDir,
    job: &Job,
    status: JobState,
    reason: Option<&str>,
    best_epoch: Option<usize>,
    ending: Option<&Ending>,
    history: &[EpochRecord],
    finals: &Finals,
) -> anyhow::Result<()> {
    let file = MetricsFile {
        version: metrics_file::METRICS_VERSION,
        job_id: Some(job.id.clone()),
        trial_id: job.trial_id.clone(),
        fold: job.fold,
        repeat: job.repeat,
        status: Some(status),
        reason: reason.map(str::to_string),
        best_epoch,
        best_metric: format!("val.{}", job.spec.train.best_metric),
        ending: ending.cloned(),
        finals: Some(
            finals
                .iter()
                .map(|(split, m)| (split.to_string(), SplitMetrics::from(m)))
                .collect(),
        ),
        history: MetricsFile::history_from(history),
    };
    metrics_file::write(&dir.metrics(), &file)?;
    Ok(())
}

/// The git revision of the folder holding the spec, if it is in a git work tree.
pub fn spec_git_revision(spec_path: &Path) -> Option<String> {
    let dir = spec_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
