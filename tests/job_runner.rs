//! A job run in-process through the library's job runner, without a worker process: the sink
//! hears its progress and decides, and the job's folder is what the worker would write.

mod common;

use std::path::Path;

use assay::exec::job_runner::{run_job, JobEnd, JobRun, JobSink, Report};
use assay::store::ledger::JobState;
use assay::store::{metrics_file, ExperimentDir};
use assay::train::trainer::{Ending, Verdict};
use candle_core::Device;
use common::cli::{mnist_data_section, write_spec};

/// Keeps every report; prunes at `prune_at`, asks to stop once `stop_after` is durable.
#[derive(Default)]
struct Recorder {
    reports: Vec<String>,
    prune_at: Option<usize>,
    stop_after: Option<usize>,
    epochs_done: usize,
}

impl JobSink for Recorder {
    fn report(&mut self, report: &Report) -> anyhow::Result<()> {
        if let Report::Epoch { epoch, .. } = report {
            self.epochs_done = *epoch;
        }
        if !matches!(report, Report::Step { .. }) {
            self.reports.push(serde_json::to_string(report)?);
        }
        Ok(())
    }

    fn verdict(&mut self, epoch: usize, _: Option<f64>) -> anyhow::Result<Verdict> {
        Ok(if self.prune_at == Some(epoch) {
            Verdict::Prune
        } else {
            Verdict::Continue
        })
    }

    fn interrupted(&self) -> bool {
        self.stop_after.is_some_and(|e| self.epochs_done >= e)
    }
}

fn plan(dir: &Path) -> assay::plan::Plan {
    plan_with(dir, "[train]\nepochs = 3\nbatch_size = 100\n")
}

/// The spec of [`plan`] with `tail` (its `[train]`, and `[schedule]`, sections).
fn plan_with(dir: &Path, tail: &str) -> assay::plan::Plan {
    let spec = write_spec(
        dir,
        &format!(
            r#"name = "lib"
seed = 5
{data}
[split]
validation_fraction = 0.2

[model]
architecture = "cnn"
layers = [
  {{ type = "conv", filters = 4, kernel = 3, padding = 1 }},
  {{ type = "relu" }},
  {{ type = "max_pool", size = 4 }},
]

{tail}"#,
            data = mnist_data_section()
        ),
    );
    let experiment = assay::spec::load(&spec, &[]).expect("the spec loads");
    assay::plan::expand(&experiment)
}

fn run(experiment: &ExperimentDir, plan: &assay::plan::Plan, sink: &mut Recorder) -> JobEnd {
    let job = &plan.jobs[0];
    let run = JobRun {
        experiment,
        plan,
        job,
        threads: 1,
        loader_threads: 1,
        spec_git_revision: None,
        placed_on: assay::devices::JobDevice::Cpu,
    };
    run_job(&run, &Device::Cpu, sink).expect("the job runs")
}

#[test]
fn a_job_stopped_after_an_epoch_resumes_from_it_and_a_pruned_one_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = plan(tmp.path());
    let experiment = ExperimentDir::new(&tmp.path().join("runs"), "lib");
    let job = experiment.job(&plan.jobs[0].id);

    let mut stopped = Recorder {
        stop_after: Some(1),
        ..Recorder::default()
    };
    assert_eq!(run(&experiment, &plan, &mut stopped), JobEnd::Interrupted);
    assert!(stopped.reports[0].contains(r#""event":"started""#));
    assert!(stopped.reports[1].starts_with(r#"{"event":"epoch","epoch":1,"epochs":3,"#));
    assert!(!stopped.reports.iter().any(|r| r.contains("finished")));
    assert!(job.checkpoint().exists());
    assert!(!job.metrics().exists());

    let mut pruning = Recorder {
        prune_at: Some(2),
        ..Recorder::default()
    };
    assert_eq!(run(&experiment, &plan, &mut pruning), JobEnd::Pruned);
    assert!(
        pruning.reports[0].ends_with(r#","resumed_from":1}"#),
        "{:?}",
        pruning.reports
    );
    assert!(pruning.reports[1].starts_with(r#"{"event":"epoch","epoch":2,"#));
    assert_eq!(
        pruning.reports.last().unwrap(),
        r#"{"event":"finished","status":"pruned","reason":null}"#
    );
    let m = metrics_file::read(&job.metrics()).unwrap().unwrap();
    assert_eq!(m.job_id.as_deref(), Some(plan.jobs[0].id.as_str()));
    assert_eq!(m.status, Some(JobState::Pruned));
    assert_eq!(m.ending, Some(Ending::Pruned { epoch: 2 }));
    assert_eq!(m.history.len(), 2);
    assert!(m.split("val").and_then(|v| v.get("accuracy")).is_some());
    assert!(m.split("test").is_none(), "a pruned job is not tested");
    assert!(!job.checkpoint().exists() && !job.previous_checkpoint().exists());
}

/// `metrics.json` without its timings.
fn metrics_without_seconds(job: &assay::store::JobDir) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("seconds");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(job.metrics()).unwrap()).unwrap();
    strip(&mut v);
    v
}

/// Named tensors as their raw bytes, sorted by name.
fn raw(tensors: impl IntoIterator<Item = (String, candle_core::Tensor)>) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, t)| {
            let t = t.flatten_all().unwrap();
            let bytes = match t.dtype() {
                candle_core::DType::F64 => t
                    .to_vec1::<f64>()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                candle_core::DType::U32 => t
                    .to_vec1::<u32>()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                candle_core::DType::U8 => t.to_vec1::<u8>().unwrap(),
                _ => t
                    .to_dtype(candle_core::DType::F32)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            };
            (n, bytes)
        })
        .collect();
    out.sort();
    out
}

/// Runs the first job of `tail`'s spec straight through in one folder, and in another stopped
/// after each of `stops` epochs and resumed; both must end bit-identical. Returns the finished
/// job's folder and its last checkpoint.
fn resumed_equals_uninterrupted(
    tmp: &Path,
    tail: &str,
    stops: &[usize],
) -> (assay::store::JobDir, assay::train::trainer::Checkpoint) {
    use assay::store::checkpoint_file;
    let plan = plan_with(tmp, tail);
    let straight = ExperimentDir::new(&tmp.join("straight"), "lib");
    let resumed = ExperimentDir::new(&tmp.join("resumed"), "lib");
    assert_eq!(
        run(&straight, &plan, &mut Recorder::default()),
        JobEnd::Done
    );
    for &stop in stops {
        let mut stopped = Recorder {
            stop_after: Some(stop),
            ..Recorder::default()
        };
        assert_eq!(run(&resumed, &plan, &mut stopped), JobEnd::Interrupted);
        assert_eq!(stopped.epochs_done, stop);
    }
    let mut rest = Recorder::default();
    assert_eq!(run(&resumed, &plan, &mut rest), JobEnd::Done);
    assert!(
        rest.reports[0].ends_with(&format!(r#","resumed_from":{}}}"#, stops.last().unwrap())),
        "{:?}",
        rest.reports
    );
    let (a, b) = (
        straight.job(&plan.jobs[0].id),
        resumed.job(&plan.jobs[0].id),
    );
    assert_eq!(metrics_without_seconds(&a), metrics_without_seconds(&b));
    assert_eq!(
        std::fs::read(a.weights()).unwrap(),
        std::fs::read(b.weights()).unwrap(),
        "model.safetensors"
    );
    let (ca, cb) = (
        checkpoint_file::read(&a.checkpoint(), &Device::Cpu).unwrap(),
        checkpoint_file::read(&b.checkpoint(), &Device::Cpu).unwrap(),
    );
    for (what, x, y) in [
        ("model", &ca.model, &cb.model),
        ("optimizer", &ca.optimizer, &cb.optimizer),
        ("best", &ca.best_model, &cb.best_model),
        ("ema", &ca.ema, &cb.ema),
        ("schedule", &ca.schedule, &cb.schedule),
    ] {
        assert_eq!(raw(x.clone()), raw(y.clone()), "checkpoint group {what}");
    }
    (b, ca)
}

/// `model.safetensors` of `job`.
fn saved_model(job: &assay::store::JobDir) -> Vec<(String, Vec<u8>)> {
    raw(candle_core::safetensors::load(job.weights(), &Device::Cpu).unwrap())
}

#[test]
fn one_cycle_with_clipping_and_a_weight_average_resumes_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, last) = resumed_equals_uninterrupted(
        tmp.path(),
        "[train]\nepochs = 3\nbatch_size = 100\nclip_grad_norm = 0.5\nema_decay = 0.8\n\n[schedule]\ntype = \"one_cycle\"\nmax_lr = 0.01\nwarmup_epochs = 0.5\n",
        &[1, 2],
    );
    let m = metrics_file::read(&job.metrics()).unwrap().unwrap();
    assert_eq!(m.history.len(), 3);
    // The saved model is the weight average of the best epoch, not the trained weights.
    assert_eq!(saved_model(&job), raw(last.best_model.clone()));
    assert!(!last.ema.is_empty() && last.schedule.is_empty());
    if m.best_epoch == Some(3) {
        assert_eq!(raw(last.best_model.clone()), raw(last.ema.clone()));
        assert_ne!(raw(last.ema.clone()), raw(last.model.clone()));
    }
}

#[test]
fn reduce_on_plateau_with_clipping_and_a_weight_average_resumes_bit_identical() {
    // A loss that must fall by 90% to count as better: every epoch after the first is a bad
    // one, so the rate drops after epoch 2 and, past the cooldown epoch, after epoch 4.
    let tmp = tempfile::tempdir().unwrap();
    let (job, last) = resumed_equals_uninterrupted(
        tmp.path(),
        "[train]\nepochs = 5\nbatch_size = 100\nbest_metric = \"loss\"\nclip_grad_norm = 1.0\nema_decay = 0.9\n\n[optimizer]\nlr = 0.004\n\n[schedule]\ntype = \"reduce_on_plateau\"\npatience = 0\nthreshold = 0.9\ncooldown = 1\nfactor = 0.5\n",
        &[2, 3],
    );
    let m = metrics_file::read(&job.metrics()).unwrap().unwrap();
    let lrs: Vec<f64> = m.history.iter().map(|h| h.lr).collect();
    let want = [0.004, 0.004, 0.002, 0.002, 0.001];
    assert!(
        lrs.len() == 5 && lrs.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12),
        "{lrs:?}"
    );
    assert_eq!(saved_model(&job), raw(last.best_model.clone()));
    let plateau = assay::train::plateau::Plateau::from_state(&last.schedule).unwrap();
    // Epoch 5 was the cooldown epoch after the second drop: the rate stays, the cooldown is over.
    assert_eq!(
        (plateau.lr, plateau.cooldown_left, plateau.bad_epochs),
        (0.001, 0, 0)
    );
}
