//! Devices and kernels through the CLI: training with the device-generic kernels (the candle
//! ops a GPU runs) gives the fast CPU path's metrics; jobs placed on GPUs (stood in for by
//! `ASSAY_FAKE_GPUS` on a machine without them) run at most `per_device` per device, each
//! worker seeing only its own; a GPU asked of a build without CUDA is refused before anything
//! runs.

mod common;

use std::path::Path;
use std::process::Command;

use common::cli::{small_mnist, write_spec, Run};
use serde_json::Value;

fn assay_with_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_assay"));
    cmd.current_dir(cwd).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the assay binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Job folders (those with a job.json) of an experiment, sorted.
fn job_dirs(experiment: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(experiment)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("job.json").exists())
        .collect();
    out.sort();
    out
}

/// A network with every fast op in it: convolution (plain, strided, depthwise) with batch norm,
/// max-pooling with a window larger than its stride, average pooling, dense layers, dropout.
const MODEL: &str = r#"
[model]
architecture = "cnn"
layers = [
  { type = "conv", filters = 8, kernel = 3, padding = 1 },
  { type = "batch_norm" },
  { type = "relu" },
  { type = "max_pool", size = 3, stride = 2 },
  { type = "conv", filters = 8, kernel = 3, padding = 1, groups = 8 },
  { type = "batch_norm" },
  { type = "relu" },
  { type = "conv", filters = 16, kernel = 3, stride = 2 },
  { type = "relu" },
  { type = "avg_pool", size = 2 },
  { type = "dense", units = 32 },
  { type = "relu" },
  { type = "dropout", rate = 0.2 },
]

[optimizer]
kind = "adamw"
lr = 3e-3
weight_decay = 1e-2
"#;

/// The largest differences between two runs' metrics (nested alike): relative for losses,
/// absolute for the rest (fractions of images: accuracy, precision, recall, F1, AUC).
/// Per-class figures and confusion matrices, which move by whole images of one class, and
/// what measures the machine (seconds) are left out.
#[derive(Debug, Default)]
struct Differences {
    loss: f64,
    loss_at: String,
    other: f64,
    other_at: String,
}

fn differences(a: &Value, b: &Value, path: &str, out: &mut Differences) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                if k == "per_class" || k == "confusion_matrix" || k.contains("seconds") {
                    continue;
                }
                let w = y.get(k).unwrap_or_else(|| panic!("{path}.{k} missing"));
                differences(v, w, &format!("{path}.{k}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                differences(v, w, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            if path.ends_with("loss") {
                let d = (x - y).abs() / x.abs().max(1e-9);
                if d > out.loss {
                    (out.loss, out.loss_at) = (d, format!("{path}: {x} and {y}"));
                }
            } else if (x - y).abs() > out.other {
                (out.other, out.other_at) = ((x - y).abs(), format!("{path}: {x} and {y}"));
            }
        }
        _ => {}
    }
}

#[test]
fn training_with_the_generic_kernels_gives_the_fast_kernels_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 1200, 300);
    let spec = write_spec(
        dir.path(),
        &format!(
            "name = \"kernels\"\nseed = 3\n\n{data}\n[split]\nvalidation_fraction = 0.2\n{MODEL}\n[train]\nepochs = 2\nbatch_size = 32\n"
        ),
    );
    let mut metrics = Vec::new();
    for kernels in ["fast", "generic"] {
        let runs = format!("runs-{kernels}");
        let r = assay_with_env(
            dir.path(),
            &["run", spec.to_str().unwrap(), "--runs-dir", &runs],
            &[("ASSAY_KERNELS", kernels)],
        );
        assert_eq!(r.code, 0, "{kernels}: {}\n{}", r.stdout, r.stderr);
        let jobs = job_dirs(&dir.path().join(&runs).join("kernels"));
        assert_eq!(jobs.len(), 1);
        assert_eq!(json(&jobs[0].join("job.json"))["kernels"], kernels);
        let mut m = json(&jobs[0].join("metrics.json"));
        let o = m.as_object_mut().unwrap();
        o.remove("job_id");
        o.remove("trial_id");
        metrics.push(m);
    }
    // Float rounding in different orders, grown by two epochs of training: measured 2.5e-3
    // relative on the last validation loss (under 1e-4 after the first epoch) and one or two
    // of 240 validation and 300 test images classified differently.
    let mut d = Differences::default();
    differences(&metrics[0], &metrics[1], "metrics", &mut d);
    eprintln!("{d:?}");
    assert!(d.loss < 1e-2, "losses differ: {}", d.loss_at);
    assert!(d.other < 0.02, "metrics differ: {}", d.other_at);
}

#[test]
fn an_unknown_kernel_choice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = assay_with_env(
        dir.path(),
        &["plan", "nothing.toml"],
        &[("ASSAY_KERNELS", "turbo")],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("ASSAY_KERNELS=\"turbo\"") && r.stderr.contains("generic"),
        "{}",
        r.stderr
    );
}

/// `(start, end, device)` of every job, from their job.json.
fn intervals(experiment: &Path) -> Vec<(f64, f64, String)> {
    job_dirs(experiment)
        .iter()
        .map(|job| {
            let record = json(&job.join("job.json"));
            let visible = record["cuda_visible_devices"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: no CUDA_VISIBLE_DEVICES", job.display()))
                .to_string();
            let device = record["device"].as_str().unwrap();
            // The worker sees only the device it was placed on.
            assert_eq!(
                device,
                format!("cuda:{visible} (simulated on the CPU: ASSAY_FAKE_GPUS)"),
                "{}",
                job.display()
            );
            (
                record["started_at"].as_f64().unwrap(),
                record["finished_at"].as_f64().unwrap(),
                visible,
            )
        })
        .collect()
}

/// The most intervals open at one time, among those `keep` selects.
fn most_at_once(jobs: &[(f64, f64, String)], keep: impl Fn(&str) -> bool) -> usize {
    let mut edges: Vec<(f64, i32)> = jobs
        .iter()
        .filter(|j| keep(&j.2))
        .flat_map(|j| [(j.0, 1), (j.1, -1)])
        .collect();
    // Ends before starts at the same instant.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut open, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        open += step;
        most = most.max(open);
    }
    most as usize
}

#[test]
fn jobs_on_two_gpus_run_at_most_two_per_device_each_seeing_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 400, 100);
    let spec = write_spec(
        dir.path(),
        &format!(
            "name = \"placed\"\nseed = 3\n\n{data}\n[split]\nvalidation_fraction = 0.2\n\n[model]\narchitecture = \"mlp\"\nlayers = [{{ type = \"dense\", units = 16 }}, {{ type = \"relu\" }}]\n\n[train]\nepochs = 2\nbatch_size = 32\n\n[run]\ndevices = \"cuda:0,cuda:1\"\nper_device = 2\n\n[sweep]\nmethod = \"grid\"\n\n[sweep.parameters]\n\"optimizer.lr\" = [1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3, 7e-3, 8e-3, 9e-3, 1e-2]\n"
        ),
    );
    let r = assay_with_env(
        dir.path(),
        &[
            "run",
            spec.to_str().unwrap(),
            "--runs-dir",
            "runs",
            "--threads",
            "8",
        ],
        &[("ASSAY_FAKE_GPUS", "2")],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let jobs = intervals(&dir.path().join("runs/placed"));
    assert_eq!(jobs.len(), 10);
    assert!(most_at_once(&jobs, |_| true) <= 4, "{jobs:?}");
    for device in ["0", "1"] {
        assert!(
            jobs.iter().any(|j| j.2 == device),
            "no job on cuda:{device}: {jobs:?}"
        );
        assert!(most_at_once(&jobs, |d| d == device) <= 2, "{jobs:?}");
    }
    // Eight threads over four slots: two each.
    let record = json(&job_dirs(&dir.path().join("runs/placed"))[0].join("job.json"));
    assert_eq!(record["threads"], 2);

    // The flag overrides the spec: one device, one job at a time there.
    let r = assay_with_env(
        dir.path(),
        &[
            "run",
            spec.to_str().unwrap(),
            "--runs-dir",
            "runs-one",
            "--devices",
            "cuda:1",
            "--per-device",
            "1",
        ],
        &[("ASSAY_FAKE_GPUS", "2")],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let jobs = intervals(&dir.path().join("runs-one/placed"));
    assert!(jobs.iter().all(|j| j.2 == "1"), "{jobs:?}");
    assert_eq!(most_at_once(&jobs, |_| true), 1, "{jobs:?}");
}

#[test]
fn a_gpu_that_is_not_there_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 100, 50);
    let base = format!(
        "name = \"gpu\"\n\n{data}\n[model]\narchitecture = \"mlp\"\nlayers = [{{ type = \"dense\", units = 8 }}]\n\n[train]\nepochs = 1\n"
    );
    let spec = write_spec(dir.path(), &base);
    let s = spec.to_str().unwrap();
    // Two devices stood in for: a third is not there.
    let r = assay_with_env(
        dir.path(),
        &["run", s, "--devices", "cuda:0,cuda:2"],
        &[("ASSAY_FAKE_GPUS", "2")],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("--devices: cuda:2 is not on this machine: it has 2 CUDA device(s)"),
        "{}",
        r.stderr
    );
    let r = assay_with_env(dir.path(), &["run", s, "--devices", "gpu0"], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cuda:all"), "{}", r.stderr);
    assert!(!dir.path().join("runs/gpu").exists(), "nothing ran");

    // A bad device list in the spec names its place.
    let bad = write_spec(
        dir.path(),
        &format!("{base}\n[run]\ndevices = \"cuda:one\"\n"),
    );
    let r = assay_with_env(dir.path(), &["run", bad.to_str().unwrap()], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("spec.toml:") && r.stderr.contains("run.devices"),
        "{}",
        r.stderr
    );

    if !cfg!(feature = "cuda") {
        // This build has no CUDA: the spec's GPU, the flag's, and bench's are refused.
        let gpu = write_spec(
            dir.path(),
            &format!("{base}\n[run]\ndevices = \"cuda:0\"\n"),
        );
        let r = assay_with_env(dir.path(), &["run", gpu.to_str().unwrap()], &[]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(
            r.stderr.contains("run.devices in")
                && r.stderr.contains("built without CUDA")
                && r.stderr.contains("--features cuda"),
            "{}",
            r.stderr
        );
        for args in [
            vec!["run", s, "--devices", "cuda:all"],
            vec!["bench", s, "--device", "cuda:0"],
        ] {
            let r = assay_with_env(dir.path(), &args, &[]);
            assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
            assert!(r.stderr.contains("built without CUDA"), "{}", r.stderr);
        }
        // Slurm tasks given GPUs would train on them with this assay.
        let r = assay_with_env(
            dir.path(),
            &[
                "run",
                s,
                "--backend",
                "slurm",
                "--gpus-per-job",
                "1",
                "--dry-run",
            ],
            &[],
        );
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(
            r.stderr.contains("slurm.gpus_per_job = 1") && r.stderr.contains("without CUDA"),
            "{}",
            r.stderr
        );
        assert!(!dir.path().join("runs/gpu").exists(), "nothing ran");
    }
}

#[test]
fn a_job_out_of_gpu_memory_fails_clearly_or_goes_on_at_half_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 300, 100);
    let spec = |on_oom: &str| {
        format!(
            "name = \"oom\"\nseed = 3\n\n{data}\n[model]\narchitecture = \"mlp\"\nlayers = [{{ type = \"dense\", units = 16 }}, {{ type = \"relu\" }}]\n\n[train]\nepochs = 2\n{on_oom}\n[sweep]\nmethod = \"grid\"\n\n[sweep.parameters]\n\"train.batch_size\" = [64, 16]\n"
        )
    };
    // Batches above 32 images fail as an allocation on a full GPU does.
    let oom = [("ASSAY_FAULT_OOM_ABOVE_BATCH", "32")];
    let outcome = |runs: &str| -> Vec<(u64, Value)> {
        job_dirs(&dir.path().join(runs).join("oom"))
            .iter()
            .map(|j| {
                let spec = std::fs::read_to_string(j.join("spec.toml")).unwrap();
                let asked = if spec.contains("batch_size = 64") {
                    64
                } else {
                    16
                };
                (asked, json(&j.join("job.json")))
            })
            .collect()
    };

    let failing = write_spec(dir.path(), &spec(""));
    let r = assay_with_env(
        dir.path(),
        &["run", failing.to_str().unwrap(), "--runs-dir", "runs-fail"],
        &oom,
    );
    assert_eq!(
        r.code, 1,
        "one job failed, the other finished: {}",
        r.stderr
    );
    assert!(
        r.stdout.contains("out of GPU memory at batch size 64")
            || r.stderr.contains("out of GPU memory at batch size 64"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    for (asked, record) in outcome("runs-fail") {
        if asked == 64 {
            assert_eq!(record["status"], "failed", "{record}");
            assert_eq!(record["reason"], "out of GPU memory at batch size 64");
        } else {
            assert_eq!(record["status"], "done", "the sweep goes on: {record}");
        }
    }

    let halving = write_spec(dir.path(), &spec("on_oom = \"halve_batch\"\n"));
    let r = assay_with_env(
        dir.path(),
        &["run", halving.to_str().unwrap(), "--runs-dir", "runs-halve"],
        &oom,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for (asked, record) in outcome("runs-halve") {
        assert_eq!(record["status"], "done", "{record}");
        if asked == 64 {
            assert_eq!(record["batch_size"], 32, "{record}");
            assert_eq!(record["out_of_memory_at"], 64, "{record}");
        } else {
            assert_eq!(record["batch_size"], 16, "{record}");
            assert!(record.get("out_of_memory_at").is_none(), "{record}");
        }
    }
    // Halved once only: with room for 8 images, the job asking 64 fails at 32; the one asking
    // 16 goes on at 8.
    let r = assay_with_env(
        dir.path(),
        &["run", halving.to_str().unwrap(), "--runs-dir", "runs-twice"],
        &[("ASSAY_FAULT_OOM_ABOVE_BATCH", "8")],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    for (asked, record) in outcome("runs-twice") {
        if asked == 64 {
            assert_eq!(record["status"], "failed", "{record}");
            assert_eq!(record["reason"], "out of GPU memory at batch size 32");
        } else {
            assert_eq!(record["status"], "done", "{record}");
            assert_eq!(record["batch_size"], 8, "{record}");
        }
    }
}

#[test]
fn mixed_precision_trains_on_a_gpu_and_is_refused_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 1200, 300);
    let spec = |precision: &str| {
        write_spec(
            dir.path(),
            &format!(
                "name = \"mixed\"\nseed = 3\n\n{data}\n[split]\nvalidation_fraction = 0.2\n\n[model]\narchitecture = \"cnn\"\nlayers = [\n  {{ type = \"conv\", filters = 8, kernel = 3, padding = 1 }},\n  {{ type = \"batch_norm\" }},\n  {{ type = \"relu\" }},\n  {{ type = \"max_pool\", size = 2 }},\n  {{ type = \"dense\", units = 32 }},\n  {{ type = \"relu\" }},\n]\n\n[train]\nepochs = 2\nbatch_size = 32\nprecision = \"{precision}\"\n"
            ),
        )
    };
    // On a GPU stood in for by the CPU (whose candle kernels have f16, not bf16, convolutions).
    let mut accuracy = Vec::new();
    for precision in ["f32", "f16"] {
        let s = spec(precision);
        let runs = format!("runs-{precision}");
        let r = assay_with_env(
            dir.path(),
            &[
                "run",
                s.to_str().unwrap(),
                "--runs-dir",
                &runs,
                "--devices",
                "cuda:0",
            ],
            &[("ASSAY_FAKE_GPUS", "1")],
        );
        assert_eq!(r.code, 0, "{precision}: {}\n{}", r.stdout, r.stderr);
        let jobs = job_dirs(&dir.path().join(&runs).join("mixed"));
        let m = json(&jobs[0].join("metrics.json"));
        let test = &m["final"]["test"];
        assert!(
            test["loss"].as_f64().unwrap().is_finite(),
            "{precision}: {test}"
        );
        accuracy.push(test["accuracy"].as_f64().unwrap());
    }
    eprintln!("test accuracy: f32 {}, f16 {}", accuracy[0], accuracy[1]);
    assert!(accuracy[0] > 0.5, "f32 learns: {accuracy:?}");
    assert!(
        (accuracy[0] - accuracy[1]).abs() < 0.05,
        "f16 learns as f32 does: {accuracy:?}"
    );

    // On the CPU: refused before anything runs.
    let s = spec("bf16");
    let r = assay_with_env(
        dir.path(),
        &["run", s.to_str().unwrap(), "--runs-dir", "runs-cpu"],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("train.precision = \"bf16\"") && r.stderr.contains("--devices cuda:0"),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("runs-cpu/mixed").exists());
    let r = assay_with_env(dir.path(), &["bench", s.to_str().unwrap()], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("mixed precision for GPUs"),
        "{}",
        r.stderr
    );
}
