//! Runs one job: builds the model, trains, evaluates, and writes its folder (resolved spec,
//! job record, metrics, best weights, TensorBoard events).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use candle_core::{Device, Tensor};
use serde::Serialize;

use super::prepare::PreparedData;
use crate::model::Network;
use crate::plan::Job;
use crate::report::events::{EpochRecord, Event, EventSink, Fanout};
use crate::report::tb_sink::TensorBoardSink;
use crate::store::{write_atomic, write_atomic_with, ExperimentDir, JobDir};
use crate::train::batches::Normalizer;
use crate::train::evaluate::evaluate;
use crate::train::metrics::MulticlassMetrics;
use crate::train::{rng, trainer};

/// Version of the files a job writes (`job.json`, `metrics.json`).
pub const FORMAT_VERSION: u32 = 1;

/// What the job folder needs to know about its surroundings.
pub struct JobContext<'a> {
    pub experiment: &'a ExperimentDir,
    pub spec_path: &'a Path,
    pub threads: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    Done,
    /// Already finished by an earlier run; not run again.
    Skipped,
    Failed(String),
}

#[derive(Serialize)]
struct JobRecord<'a> {
    version: u32,
    job_id: &'a str,
    experiment: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    seed: u64,
    data_hash: &'a str,
    classes: &'a [String],
    normalize_mean: &'a [f64],
    normalize_std: &'a [f64],
    parameters: usize,
    threads: usize,
    assay_version: &'a str,
    assay_git_revision: &'a str,
    spec_git_revision: Option<String>,
    started_at: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<f64>,
}

#[derive(Serialize)]
struct HistoryEntry {
    epoch: usize,
    lr: f64,
    seconds: f64,
    train: BTreeMap<&'static str, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    val: Option<BTreeMap<&'static str, f64>>,
}

#[derive(Serialize)]
struct MetricsFile<'a> {
    version: u32,
    job_id: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    best_epoch: Option<usize>,
    best_metric: String,
    #[serde(rename = "final")]
    final_: BTreeMap<&'static str, MulticlassMetrics>,
    history: Vec<HistoryEntry>,
}

fn scalars(m: &MulticlassMetrics) -> BTreeMap<&'static str, f64> {
    m.scalars().into_iter().collect()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The git revision of the folder holding the spec, if it is in a git work tree.
fn spec_git_revision(spec_path: &Path) -> Option<String> {
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

fn is_done(dir: &JobDir) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.job()) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v["status"] == "done")
}

/// Removes what an unfinished earlier attempt left, so its TensorBoard events do not mix with this one's.
fn clear_unfinished(dir: &JobDir) -> std::io::Result<()> {
    if dir.root.exists() {
        std::fs::remove_dir_all(&dir.root)?;
    }
    Ok(())
}

/// Runs `job` to completion. Training problems (divergence, tensor errors) make the job
/// `Failed`; an `Err` means the job folder itself could not be written.
pub fn run_job(
    job: &Job,
    data: &PreparedData,
    ctx: &JobContext,
    console: &mut dyn EventSink,
) -> anyhow::Result<JobStatus> {
    let dir = ctx.experiment.job(&job.id);
    if is_done(&dir) {
        console.event(&Event::Warning {
            message: format!(
                "job {} already finished in {}; skipping it",
                job.id,
                dir.root.display()
            ),
        })?;
        return Ok(JobStatus::Skipped);
    }
    clear_unfinished(&dir).with_context(|| {
        format!(
            "cannot clear the unfinished job folder {}",
            dir.root.display()
        )
    })?;
    std::fs::create_dir_all(&dir.root)
        .with_context(|| format!("cannot create {}", dir.root.display()))?;
    let spec = &job.spec;
    let spec_toml = toml::to_string_pretty(spec).context("cannot serialise the resolved spec")?;
    write_atomic(&dir.spec(), spec_toml.as_bytes())
        .with_context(|| format!("cannot write {}", dir.spec().display()))?;

    let device = Device::Cpu;
    let net = Network::build(
        &spec.model,
        data.train.channels,
        data.train.height,
        data.train.width,
        data.classes.len(),
        &mut rng::stream(job.seed, "init", 0),
        &device,
    )
    .context("cannot build the model")?;
    let mut record = JobRecord {
        version: FORMAT_VERSION,
        job_id: &job.id,
        experiment: &spec.name,
        status: "running",
        reason: None,
        seed: job.seed,
        data_hash: &data.data_hash,
        classes: &data.classes,
        normalize_mean: &data.mean,
        normalize_std: &data.std,
        parameters: net.parameter_count(),
        threads: ctx.threads,
        assay_version: env!("CARGO_PKG_VERSION"),
        assay_git_revision: env!("ASSAY_GIT_REVISION"),
        spec_git_revision: spec_git_revision(ctx.spec_path),
        started_at: now(),
        finished_at: None,
    };
    let write_record = |r: &JobRecord| -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(r)?;
        write_atomic(&dir.job(), &json)
            .with_context(|| format!("cannot write {}", dir.job().display()))
    };
    write_record(&record)?;

    let mut tb = TensorBoardSink::new(dir.clone());
    let mut sink = Fanout {
        sinks: vec![console, &mut tb],
    };
    let started = Instant::now();
    let result = train_and_evaluate(job, data, &net, &dir, &spec_toml, &mut sink);
    record.finished_at = Some(now());
    let status = match result {
        Ok((best_epoch, history, finals)) => {
            write_metrics(&dir, job, "done", None, Some(best_epoch), &history, finals)?;
            sink.event(&Event::JobFinished {
                job: job.id.clone(),
                best_epoch,
                seconds: started.elapsed().as_secs_f64(),
            })?;
            record.status = "done";
            write_record(&record)?;
            JobStatus::Done
        }
        Err(failure) => {
            let reason = format!("{:#}", failure.error);
            write_metrics(
                &dir,
                job,
                "failed",
                Some(&reason),
                None,
                &failure.history,
                BTreeMap::new(),
            )?;
            // The console must hear about the failure even if TensorBoard is what failed.
            let _ = sink.event(&Event::JobFailed {
                job: job.id.clone(),
                reason: reason.clone(),
            });
            record.status = "failed";
            record.reason = Some(&reason);
            write_record(&record)?;
            JobStatus::Failed(reason)
        }
    };
    Ok(status)
}

struct Failure {
    error: anyhow::Error,
    history: Vec<EpochRecord>,
}

type Finals = BTreeMap<&'static str, MulticlassMetrics>;

fn train_and_evaluate(
    job: &Job,
    data: &PreparedData,
    net: &Network,
    dir: &JobDir,
    spec_toml: &str,
    sink: &mut dyn EventSink,
) -> Result<(usize, Vec<EpochRecord>, Finals), Failure> {
    let fail = |error: anyhow::Error| Failure {
        error,
        history: Vec::new(),
    };
    let spec = &job.spec;
    let norm = Normalizer::new(&data.mean, &data.std);
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
        net,
        &data.train,
        data.val.as_ref(),
        &norm,
        sink,
    )
    .map_err(|e| fail(e.into()))?;
    let history = outcome.history;
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
    let best_record = &history[outcome.best_epoch - 1];
    let mut finals = Finals::new();
    finals.insert("train", best_record.train.clone());
    if let Some(val) = &best_record.val {
        finals.insert("val", val.clone());
    }
    if let Some(test) = &data.test {
        let m = evaluate(net, test, &norm, spec.train.eval_batch_size)
            .map_err(|e| with_history(trainer::without_backtrace(e).into()))?;
        sink.event(&Event::Evaluated {
            job: job.id.clone(),
            split: "test",
            step: outcome.best_epoch,
            metrics: Box::new(m.clone()),
        })
        .map_err(with_history)?;
        finals.insert("test", m);
    }
    Ok((outcome.best_epoch, history, finals))
}

fn write_metrics(
    dir: &JobDir,
    job: &Job,
    status: &str,
    reason: Option<&str>,
    best_epoch: Option<usize>,
    history: &[EpochRecord],
    finals: Finals,
) -> anyhow::Result<()> {
    let file = MetricsFile {
        version: FORMAT_VERSION,
        job_id: &job.id,
        status,
        reason,
        best_epoch,
        best_metric: format!("val.{}", job.spec.train.best_metric),
        final_: finals,
        history: history
            .iter()
            .map(|r| HistoryEntry {
                epoch: r.epoch,
                lr: r.lr,
                seconds: r.seconds,
                train: scalars(&r.train),
                val: r.val.as_ref().map(scalars),
            })
            .collect(),
    };
    let json = serde_json::to_vec_pretty(&file)?;
    write_atomic(&dir.metrics(), &json)
        .with_context(|| format!("cannot write {}", dir.metrics().display()))
}
