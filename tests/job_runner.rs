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

[train]
epochs = 3
batch_size = 100
"#,
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
