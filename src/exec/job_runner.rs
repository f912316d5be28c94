//! Runs one job of a planned experiment on a given device: loads its data and fold, resumes from
//! its last epoch checkpoint if there is one, trains, evaluates, and writes its folder
//! (`spec.toml`, `job.json`, `metrics.json`, the weights, predictions and mistakes), telling a
//! [`JobSink`] how it goes. `assay worker` is this behind a process protocol; anything else that
//! runs a job (a GPU slot, a batch-system task) calls [`run_job`] too.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use anyhow::Context;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::audit::{self, SplitPredictions};
use super::prepare::{self, PreparedData};
use crate::data::folds::Folds;
use crate::data::image_set::ImageSet;
use crate::model::Model;
use crate::plan::{Job, Plan};
use crate::report::console::ConsoleSink;
use crate::report::events::{EpochRecord, Event, EventSink, Fanout};
use crate::report::tb_sink::TensorBoardSink;
use crate::report::tensorboard::SessionStatus;
use crate::spec::OnOom;
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

/// How a job ended.
#[derive(Clone, Debug, PartialEq)]
pub enum JobEnd {
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

/// What a running job tells whoever runs it; `assay worker` writes each as one JSON line of its
/// protocol with the orchestrator.
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
    /// An epoch whose checkpoint is durable.
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
    /// At a rung epoch: the worker waits for "continue" or "prune" on stdin (sent by the
    /// worker's [`JobSink::verdict`], not by [`run_job`]).
    Rung { epoch: usize, score: f64 },
    Finished {
        status: String,
        reason: Option<String>,
    },
    /// Something the user should hear about (an unreadable checkpoint, say).
    Warning { message: String },
}

/// Whoever runs a job: hears its progress, decides after each epoch whether it goes on, and may
/// ask it to stop.
pub trait JobSink {
    /// A progress report: started, steps, durable epochs, warnings, the end.
    fn report(&mut self, report: &Report) -> anyhow::Result<()>;

    /// After epoch `epoch` (its checkpoint durable) with validation score `score`: go on, or
    /// prune the job. Every job goes on by default.
    fn verdict(&mut self, epoch: usize, score: Option<f64>) -> anyhow::Result<Verdict> {
        let _ = (epoch, score);
        Ok(Verdict::Continue)
    }

    /// Checked after every step: stop as soon as possible, keeping the last checkpoint.
    fn interrupted(&self) -> bool {
        false
    }
}

/// One job to run: the plan it belongs to, the experiment folder, and what it records about
/// where it runs.
pub struct JobRun<'a> {
    pub experiment: &'a ExperimentDir,
    pub plan: &'a Plan,
    pub job: &'a Job,
    /// Compute threads (recorded in `job.json`).
    pub threads: usize,
    /// Threads preparing training batches ahead of the trainer.
    pub loader_threads: usize,
    /// The git revision of the spec's folder, recorded with the job.
    pub spec_git_revision: Option<&'a str>,
    /// The device the scheduler placed the job on (recorded in `job.json`).
    pub placed_on: crate::devices::JobDevice,
}

/// Loads the job's data (and its fold, from the experiment's `folds.json`) and runs it on
/// `device` (see [`run_prepared`]).
pub fn run_job(run: &JobRun, device: &Device, sink: &mut dyn JobSink) -> anyhow::Result<JobEnd> {
    let data = load_data(run.experiment, run.job)?;
    run_prepared(run, &data, device, sink)
}

/// The data `job` trains and evaluates on: its spec's data, cut by its fold of the experiment's
/// `folds.json` (if it has a fold) or by the spec's hold-out split.
pub fn load_data(experiment: &ExperimentDir, job: &Job) -> anyhow::Result<PreparedData> {
    let loaded = prepare::load(&job.spec)?;
    let folds: Option<Folds> = match job.fold {
        Some(_) => {
            let path = experiment.folds();
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
    Ok(prepare::for_job(
        &job.spec,
        &loaded,
        folds.as_ref(),
        job.fold,
    )?)
}

/// Trains and evaluates the job on `data` and `device`, writing its folder. A job that fails in
/// training ends as [`JobEnd::Failed`] (or [`JobEnd::EnvironmentFailed`]) with its files
/// written and `sink` told; an error is returned when even that cannot be done (the job
/// folder cannot be written), and [`is_environment`] says whether it came from the
/// environment. `sink` hears [`Report::Finished`] at the end of every job not interrupted.
pub fn run_prepared(
    run: &JobRun,
    data: &PreparedData,
    device: &Device,
    sink: &mut dyn JobSink,
) -> anyhow::Result<JobEnd> {
    let JobRun { plan, job, .. } = *run;
    let dir = run.experiment.job(&job.id);
    std::fs::create_dir_all(&dir.root)
        .with_context(|| format!("cannot create {}", dir.root.display()))?;
    let spec_toml = crate::plan::job_spec_text(plan, job);
    write_atomic(&dir.spec(), spec_toml.as_bytes())
        .with_context(|| format!("cannot write {}", dir.spec().display()))?;
    // A job that ran out of GPU memory before goes on at the batch size it was halved to.
    let halved = read_batch_halved(&dir)?;
    let resumed_halved = halved.map(|h| with_batch_size(job, h.batch_size));
    let job = resumed_halved.as_ref().unwrap_or(job);
    let mut retried: Option<Job> = None;
    let spec = &job.spec;

    if !spec.train.precision.is_f32() && run.placed_on == crate::devices::JobDevice::Cpu {
        anyhow::bail!(
            "train.precision = \"{}\" is mixed precision for GPUs; on the CPU use \"f32\"",
            spec.train.precision.name()
        );
    }
    let mut net = prepare::build_network(spec, data, job.seed, device)?;
    let (resume, checkpoint_warnings) = checkpoint_file::load_latest(&dir, device);
    let resumed_from = resume.as_ref().map_or(0, |c| c.epoch);
    let pretrained = prepare::load_pretrained(spec, net.as_ref(), resumed_from == 0)?;
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
        pretrained_hash: spec.transfer.pretrained.as_ref().map(|p| p.sha256.as_str()),
        pretrained_head: pretrained
            .head
            .map(|file| if file { "file" } else { "replaced" }),
        batch_size: spec.train.batch_size,
        out_of_memory_at: halved.map(|h| h.from),
        threads: run.threads,
        device: crate::devices::describe(run.placed_on),
        cuda_visible_devices: std::env::var("CUDA_VISIBLE_DEVICES").ok(),
        kernels: crate::model::ops::kernels::on(device).name(),
        assay_version: env!("CARGO_PKG_VERSION"),
        assay_git_revision: env!("ASSAY_GIT_REVISION"),
        spec_git_revision: run.spec_git_revision,
        slurm: slurm_placement(),
        started_at: now(),
        finished_at: None,
    };
    let write_record = |r: &JobRecord| -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(r)?;
        write_atomic(&dir.job(), &json)
            .with_context(|| format!("cannot write {}", dir.job().display()))
    };
    write_record(&record)?;
    sink.report(&Report::Started {
        parameters: net.parameter_count(),
        resumed_from,
    })?;
    // The trainer calls the progress reporter and the hooks in turn, never both at once.
    let sink = RefCell::new(sink);

    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.log())
        .with_context(|| format!("cannot open {}", dir.log().display()))?;
    for line in &pretrained.report {
        use std::io::Write;
        writeln!(log, "{line}").with_context(|| format!("cannot write {}", dir.log().display()))?;
    }
    let mut console = ConsoleSink::to_file(log);
    let mut progress = ProgressReporter {
        sink: &sink,
        last_step: None,
    };
    let mut tb = TensorBoardSink::new(dir.clone()).with_session(&job.params, &job.trial_id);
    if resumed_from == 0 {
        tb.add_samples(&data.train)?;
        if !spec.augment.train.is_empty() {
            let grid = crate::augment::grid::default_preview(&spec.augment, &data.train, job.seed);
            tb.add_augment_preview(&grid)?;
        }
    }
    let mut events = Fanout {
        sinks: vec![&mut console, &mut progress, &mut tb],
    };
    for message in checkpoint_warnings {
        sink.borrow_mut().report(&Report::Warning {
            message: message.clone(),
        })?;
        events.event(&Event::Warning { message })?;
    }
    if resumed_from > 0 {
        events.event(&Event::Warning {
            message: format!("resuming job {} after epoch {resumed_from}", job.id),
        })?;
    }
    let mut hooks = JobHooks {
        dir: &dir,
        sink: &sink,
        epochs: spec.train.epochs,
        metric: &spec.train.best_metric,
    };
    let started = Instant::now();
    let loader = LoaderConfig::for_threads(run.loader_threads);
    let mut result = train_and_evaluate(
        job,
        data,
        net.as_ref(),
        &dir,
        &spec_toml,
        resume,
        loader,
        &mut hooks,
        &mut events,
    );
    // Out of GPU memory with `on_oom = "halve_batch"`: once, afresh at half the batch size.
    let from = spec.train.batch_size;
    let oom = matches!(&result, Err(f) if is_out_of_memory(&f.error));
    if oom && spec.train.on_oom == OnOom::HalveBatch && halved.is_none() && from > 1 {
        let to = from / 2;
        let message = format!(
            "job {} ran out of GPU memory at batch size {from}: it starts again at batch size {to} (train.on_oom = \"halve_batch\")",
            job.id
        );
        sink.borrow_mut().report(&Report::Warning {
            message: message.clone(),
        })?;
        events.event(&Event::Warning { message })?;
        checkpoint_file::remove(&dir)?;
        let marker = serde_json::to_vec_pretty(&BatchHalved {
            from,
            batch_size: to,
        })?;
        write_atomic(&dir.batch_halved(), &marker)
            .with_context(|| format!("cannot write {}", dir.batch_halved().display()))?;
        let retry = retried.insert(with_batch_size(job, to));
        net = prepare::build_network(&retry.spec, data, retry.seed, device)?;
        prepare::load_pretrained(&retry.spec, net.as_ref(), true)?;
        record.batch_size = to;
        record.out_of_memory_at = Some(from);
        result = train_and_evaluate(
            retry,
            data,
            net.as_ref(),
            &dir,
            &spec_toml,
            None,
            loader,
            &mut hooks,
            &mut events,
        );
    }
    let job = retried.as_ref().unwrap_or(job);
    record.finished_at = Some(now());
    let end = match result {
        Ok(Trained {
            ending: Ending::Interrupted,
            ..
        }) => {
            events.event(&Event::Warning {
                message: format!(
                    "job {} interrupted; it resumes from its last checkpoint",
                    job.id
                ),
            })?;
            record.status = "interrupted";
            write_record(&record)?;
            return Ok(JobEnd::Interrupted);
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
            events.event(&Event::JobFinished {
                job: job.id.clone(),
                best_epoch: t.best_epoch,
                seconds: started.elapsed().as_secs_f64(),
            })?;
            record.status = state.name();
            write_record(&record)?;
            if state == JobState::Pruned {
                checkpoint_file::remove(&dir)?;
                JobEnd::Pruned
            } else {
                // The last checkpoint stays: more epochs asked later continue from it.
                checkpoint_file::remove_previous(&dir)?;
                JobEnd::Done
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
            let _ = events.event(&Event::JobFailed {
                job: job.id.clone(),
                reason: reason.clone(),
            });
            record.status = "failed";
            record.reason = Some(&reason);
            write_record(&record)?;
            if is_environment(&failure.error) {
                JobEnd::EnvironmentFailed(reason)
            } else {
                JobEnd::Failed(reason)
            }
        }
    };
    let (status, reason) = match &end {
        JobEnd::Done => ("done", None),
        JobEnd::Pruned => ("pruned", None),
        JobEnd::Failed(r) | JobEnd::EnvironmentFailed(r) => ("failed", Some(r.clone())),
        JobEnd::Interrupted => ("interrupted", None),
    };
    drop(events);
    let session_status = if end == JobEnd::Done {
        SessionStatus::Success
    } else {
        SessionStatus::Failure
    };
    tb.end_session(session_status)?;
    sink.borrow_mut().report(&Report::Finished {
        status: status.into(),
        reason,
    })?;
    Ok(end)
}

/// Whether `error` is running out of GPU memory (anywhere in its chain).
fn is_out_of_memory(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        matches!(
            e.downcast_ref::<trainer::TrainError>(),
            Some(trainer::TrainError::OutOfMemory { .. })
        )
    }) || crate::train::oom::is_out_of_memory(&format!("{error:#}"))
}

/// The batch sizes of a job that ran out of GPU memory and went on at half its batch.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct BatchHalved {
    from: usize,
    batch_size: usize,
}

fn read_batch_halved(dir: &JobDir) -> anyhow::Result<Option<BatchHalved>> {
    let path = dir.batch_halved();
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is damaged", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// `job` with another training batch size (what is trained, not what the job is called).
fn with_batch_size(job: &Job, batch_size: usize) -> Job {
    let mut job = job.clone();
    job.spec.train.batch_size = batch_size;
    job
}

/// Whether `error` came from the environment (an I/O error anywhere in its chain) rather than
/// from the job itself (divergence, a model that cannot be built).
pub fn is_environment(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some())
}

/// Passes progress within epochs on to the job's sink, at most twice a second (finished epochs
/// are passed on by [`JobHooks`] once checkpointed).
struct ProgressReporter<'s, 'k> {
    sink: &'s RefCell<&'k mut dyn JobSink>,
    /// When the last step report went out.
    last_step: Option<Instant>,
}

impl EventSink for ProgressReporter<'_, '_> {
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
                self.sink.borrow_mut().report(&Report::Step {
                    epoch: *epoch,
                    step: *step,
                    steps: *steps,
                })?;
            }
        }
        Ok(())
    }
}

/// The trainer's hooks for a job: durable checkpoints in its folder, the rest asked of its sink.
struct JobHooks<'a, 's, 'k> {
    dir: &'a JobDir,
    sink: &'s RefCell<&'k mut dyn JobSink>,
    epochs: usize,
    metric: &'a str,
}

impl TrainHooks for JobHooks<'_, '_, '_> {
    fn checkpoint(&mut self, c: &Checkpoint) -> anyhow::Result<()> {
        checkpoint_file::save(self.dir, c)?;
        crate::store::fault::after_checkpoint(c.epoch);
        // Only a durable epoch counts as done for whoever runs the job (and a resumed run).
        let score = c
            .history
            .last()
            .and_then(|r| r.val.as_ref())
            .and_then(|v| v.get(self.metric));
        self.sink.borrow_mut().report(&Report::Epoch {
            epoch: c.epoch,
            epochs: self.epochs,
            score,
            best_score: c.best_score,
            best_epoch: (c.best_epoch > 0).then_some(c.best_epoch),
        })?;
        crate::store::fault::after_epoch_reported(c.epoch);
        Ok(())
    }

    fn interrupted(&self) -> bool {
        self.sink.borrow().interrupted()
    }

    fn verdict(&mut self, epoch: usize, score: Option<f64>) -> anyhow::Result<Verdict> {
        self.sink.borrow_mut().verdict(epoch, score)
    }
}

/// The Slurm job this process runs in, from the variables Slurm sets (`None` outside Slurm).
fn slurm_placement() -> Option<BTreeMap<&'static str, String>> {
    std::env::var_os("SLURM_JOB_ID")?;
    let names = [
        ("job_id", "SLURM_JOB_ID"),
        ("array_job_id", "SLURM_ARRAY_JOB_ID"),
        ("array_task_id", "SLURM_ARRAY_TASK_ID"),
        ("restart_count", "SLURM_RESTART_COUNT"),
        ("node", "SLURMD_NODENAME"),
        ("cpus_per_task", "SLURM_CPUS_PER_TASK"),
        ("cuda_visible_devices", "CUDA_VISIBLE_DEVICES"),
    ];
    Some(
        names
            .into_iter()
            .filter_map(|(key, var)| Some((key, std::env::var(var).ok()?)))
            .collect(),
    )
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
    /// SHA-256 of the weights file the model started from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pretrained_hash: Option<&'a str>,
    /// `file`: the classification head is the weights file's own; `replaced`: a fresh one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pretrained_head: Option<&'static str>,
    /// The training batch size (below the spec's after running out of GPU memory).
    batch_size: usize,
    /// The batch size at which the job ran out of GPU memory, before it went on at half.
    #[serde(skip_serializing_if = "Option::is_none")]
    out_of_memory_at: Option<usize>,
    threads: usize,
    /// The device the job ran on (`cpu`, `cuda:0`) and the kernels (`fast`, `generic`).
    device: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cuda_visible_devices: Option<String>,
    kernels: &'static str,
    assay_version: &'a str,
    assay_git_revision: &'a str,
    spec_git_revision: Option<&'a str>,
    /// Where Slurm ran it: job and array ids, node, restarts, the GPUs it was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    slurm: Option<BTreeMap<&'static str, String>>,
    started_at: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<f64>,
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
    net: &dyn Model,
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
