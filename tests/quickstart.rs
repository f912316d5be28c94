//! The README's quickstarts, as a user runs them: real MNIST subset, ≥ 0.97 test accuracy, and
//! ≥ 0.98 with the augmentation list.

mod common;

use common::cli::{assay, metrics, only_job, repo};

/// Runs `experiments/<name>.toml` as the README shows; returns its job's test accuracy.
fn test_accuracy(name: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let spec = repo().join(format!("experiments/{name}.toml"));
    let runs = dir.path().join("runs");
    let r = assay(
        &repo(),
        &[
            "run",
            spec.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let m = metrics(&only_job(&runs.join(name)));
    m["final"]["test"]["accuracy"].as_f64().unwrap()
}

#[test]
fn quickstart_reaches_97_percent_test_accuracy() {
    let accuracy = test_accuracy("quickstart");
    assert!(accuracy >= 0.97, "test accuracy {accuracy}");
}

#[test]
fn the_augmented_quickstart_reaches_98_percent_test_accuracy() {
    let accuracy = test_accuracy("augment-quickstart");
    assert!(accuracy >= 0.98, "test accuracy {accuracy}");
}
