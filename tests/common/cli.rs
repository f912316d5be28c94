//! Runs the `assay` binary on specs written into temporary folders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The MNIST subset shipped with the repo.
pub fn mnist_subset(file: &str) -> String {
    repo()
        .join("experiments/data/mnist-subset")
        .join(file)
        .display()
        .to_string()
}

/// `[data]` for the shipped MNIST subset, with absolute paths.
pub fn mnist_data_section() -> String {
    format!(
        "[data]\nformat = \"idx\"\ntrain = {{ images = \"{}\", labels = \"{}\" }}\ntest = {{ images = \"{}\", labels = \"{}\" }}\nimage_size = [28, 28]\n",
        mnist_subset("train-images-idx3-ubyte.gz"),
        mnist_subset("train-labels-idx1-ubyte.gz"),
        mnist_subset("test-images-idx3-ubyte.gz"),
        mnist_subset("test-labels-idx1-ubyte.gz"),
    )
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `assay args...` in `cwd`.
pub fn assay(cwd: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_assay"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("the assay binary runs");
    finish(out)
}

/// Runs `assay run SPEC --runs-dir runs extra...` in `cwd`.
pub fn run_spec(cwd: &Path, spec: &Path, extra: &[&str]) -> Run {
    let spec = spec.to_str().expect("a UTF-8 spec path");
    let mut args = vec!["run", spec, "--runs-dir", "runs"];
    args.extend_from_slice(extra);
    assay(cwd, &args)
}

/// Writes `text` as `spec.toml` in `dir` and returns its path.
pub fn write_spec(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("spec.toml");
    std::fs::write(&p, text).expect("spec written");
    p
}

/// Parses a job's metrics.json.
pub fn metrics(job_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(job_dir.join("metrics.json")).expect("metrics.json exists");
    serde_json::from_str(&text).expect("metrics.json is JSON")
}

/// The single job folder under `<runs>/<name>/`.
pub fn only_job(experiment_dir: &Path) -> PathBuf {
    let jobs: Vec<PathBuf> = std::fs::read_dir(experiment_dir)
        .expect("experiment dir exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(
        jobs.len(),
        1,
        "expected one job folder in {}: {jobs:?}",
        experiment_dir.display()
    );
    jobs.into_iter().next().unwrap()
}

/// Writes the first `n_train` training and `n_test` test images of the shipped MNIST subset as
/// IDX files into `dir` and returns a `[data]` section for them.
pub fn small_mnist(dir: &Path, n_train: usize, n_test: usize) -> String {
    use assay::data::idx::{
        read_idx_images, read_idx_labels, write_idx_images_gz, write_idx_labels_gz,
    };
    let mut paths = Vec::new();
    for (split, n) in [("train", n_train), ("test", n_test)] {
        let (_, h, w, pixels) =
            read_idx_images(mnist_subset(&format!("{split}-images-idx3-ubyte.gz"))).unwrap();
        let labels =
            read_idx_labels(mnist_subset(&format!("{split}-labels-idx1-ubyte.gz"))).unwrap();
        let images = dir.join(format!("{split}-images.gz"));
        let label_file = dir.join(format!("{split}-labels.gz"));
        write_idx_images_gz(&images, n, h, w, &pixels[..n * h * w]).unwrap();
        write_idx_labels_gz(&label_file, &labels[..n]).unwrap();
        paths.push((
            images.display().to_string(),
            label_file.display().to_string(),
        ));
    }
    format!(
        "[data]\nformat = \"idx\"\ntrain = {{ images = \"{}\", labels = \"{}\" }}\ntest = {{ images = \"{}\", labels = \"{}\" }}\nimage_size = [28, 28]\n",
        paths[0].0, paths[0].1, paths[1].0, paths[1].1
    )
}

/// Reads `<experiment>/ledger.json`.
pub fn ledger(experiment_dir: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(experiment_dir.join("ledger.json")).expect("ledger.json exists"),
    )
    .expect("ledger is JSON")
}

/// A job's final metrics, best epoch and history, without the timings: what an interrupted
/// and resumed job must share with one never interrupted.
pub fn outcome(job_dir: &Path) -> serde_json::Value {
    let mut m = metrics(job_dir);
    for epoch in m["history"].as_array_mut().unwrap() {
        epoch.as_object_mut().unwrap().remove("seconds");
    }
    serde_json::json!({ "final": m["final"], "history": m["history"], "best_epoch": m["best_epoch"] })
}

/// How many times a job's worker started training (from its log).
pub fn starts(job_dir: &Path) -> usize {
    let log = std::fs::read_to_string(job_dir.join("log.txt")).unwrap_or_default();
    let id = job_dir.file_name().unwrap().to_str().unwrap();
    log.lines()
        .filter(|l| l.starts_with(&format!("job {id}: ")))
        .count()
}
