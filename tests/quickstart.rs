//! The README's quickstarts, as a user runs them: real MNIST subset, ≥ 0.97 test accuracy, and
//! ≥ 0.98 with the augmentation list.

mod common;

use common::cli::{assay, metrics, only_job, repo};

#[test]
fn quickstart_reaches_97_percent_test_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let spec = repo().join("experiments/quickstart.toml");
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
    assert!(r.stdout.contains("epoch 5/5"), "{}", r.stdout);
    let m = metrics(&only_job(&runs.join("quickstart")));
    let accuracy = m["final"]["test"]["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.97, "test accuracy {accuracy}");
}

#[test]
fn the_augmented_quickstart_reaches_98_percent_test_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let spec = repo().join("experiments/augment-quickstart.toml");
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
    let m = metrics(&only_job(&runs.join("augment-quickstart")));
    let accuracy = m["final"]["test"]["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.98, "test accuracy {accuracy}");
}
