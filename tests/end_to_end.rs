//! Whole runs through the binary on small real data: outputs, determinism, divergence,
//! and the event files read back by the real TensorBoard.

mod common;

use std::path::Path;

use common::cli::{assay, metrics, mnist_data_section, only_job, run_spec, write_spec};
use common::predictions;

/// A small CNN with batch norm and dropout (every layer kind that draws randomness or keeps state).
fn tiny_spec(name: &str, extra: &str) -> String {
    format!(
        r#"name = "{name}"
seed = 3
{data}
[split]
validation_fraction = 0.2

[model]
architecture = "cnn"
layers = [
  {{ type = "conv", filters = 4, kernel = 3, padding = 1 }},
  {{ type = "batch_norm" }},
  {{ type = "relu" }},
  {{ type = "max_pool", size = 4 }},
  {{ type = "dense", units = 16 }},
  {{ type = "gelu" }},
  {{ type = "dropout", rate = 0.2 }},
]

[optimizer]
kind = "adamw"
lr = 0.003

[train]
epochs = 2
batch_size = 50
{extra}
"#,
        data = mnist_data_section(),
    )
}

/// Runs `spec` with `--runs-dir runs` in `dir`; returns the job folder.
fn run_ok(dir: &Path, spec_text: &str, name: &str, extra_args: &[&str]) -> std::path::PathBuf {
    let spec = write_spec(dir, spec_text);
    let mut args = vec![
        "run",
        spec.to_str().unwrap(),
        "--runs-dir",
        "runs",
        "--threads",
        "1",
    ];
    args.extend_from_slice(extra_args);
    let r = assay(dir, &args);
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    only_job(&dir.join("runs").join(name))
}

#[test]
fn a_run_writes_every_output_and_tensorboard_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_spec("tiny", "");
    let job = run_ok(dir.path(), &text, "tiny", &[]);
    for file in ["spec.toml", "job.json", "metrics.json", "model.safetensors"] {
        assert!(
            job.join(file).is_file(),
            "{file} missing in {}",
            job.display()
        );
    }
    let m = metrics(&job);
    assert_eq!(m["status"], "done");
    assert_eq!(m["version"], 1);
    assert_eq!(m["history"].as_array().unwrap().len(), 2);
    for split in ["train", "val", "test"] {
        let f = &m["final"][split];
        for key in [
            "loss",
            "accuracy",
            "precision_macro",
            "recall_macro",
            "f1_macro",
            "precision_micro",
            "recall_micro",
            "f1_micro",
        ] {
            assert!(f[key].is_f64(), "final.{split}.{key} missing: {f}");
        }
        assert_eq!(f["confusion_matrix"].as_array().unwrap().len(), 10);
        assert_eq!(f["per_class"].as_array().unwrap().len(), 10);
    }
    // The test set is the shipped 2,000 images; a model that learned anything beats chance by far.
    let cm_total: u64 = m["final"]["test"]["confusion_matrix"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(cm_total, 2000);
    assert!(
        m["final"]["test"]["accuracy"].as_f64().unwrap() > 0.5,
        "{}",
        m["final"]["test"]
    );

    check_predictions(&job, &m);

    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(job.join("job.json")).unwrap()).unwrap();
    assert_eq!(record["status"], "done");
    assert_eq!(record["seed"], 3);
    assert_eq!(record["data_hash"].as_str().unwrap().len(), 64);
    assert!(record["assay_git_revision"].is_string());
    assert_eq!(record["classes"].as_array().unwrap().len(), 10);

    // The real TensorBoard reads the experiment folder: one run per split plus the job's text.
    let tb = common::tensorboard::read_logdir(&dir.path().join("runs/tiny"));
    let id = job.file_name().unwrap().to_str().unwrap();
    let runs = &tb["runs"];
    for (split, tags) in [
        (
            "train",
            vec!["loss", "accuracy", "f1_macro", "learning_rate"],
        ),
        ("val", vec!["loss", "accuracy", "f1_macro"]),
        ("test", vec!["accuracy"]),
    ] {
        let run = &runs[format!("{id}/{split}")];
        for tag in tags {
            let points = run["scalars"][tag]
                .as_array()
                .unwrap_or_else(|| panic!("{split}/{tag} missing: {run}"));
            let expected_points = if split == "test" { 1 } else { 2 };
            assert_eq!(points.len(), expected_points, "{split}/{tag}: {points:?}");
        }
    }
    // Scalars equal metrics.json's history (as f32).
    let val_acc = runs[format!("{id}/val")]["scalars"]["accuracy"]
        .as_array()
        .unwrap();
    for (point, epoch) in val_acc.iter().zip(m["history"].as_array().unwrap()) {
        assert_eq!(point[0], epoch["epoch"]);
        assert_eq!(
            point[1].as_f64().unwrap() as f32,
            epoch["val"]["accuracy"].as_f64().unwrap() as f32
        );
    }
    let samples = &runs[id]["images"]["samples"];
    assert_eq!(
        samples[0]["width"],
        4 * 28 + 5 * 2,
        "a 4×4 grid of 28×28 samples: {samples}"
    );
    assert_eq!(
        runs[format!("{id}/test")]["images"]["confusion_matrix"][0]["width"],
        160
    );
    assert!(runs[format!("{id}/val")]["images"]["confusion_matrix"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    assert!(
        runs[id]["text"]["spec"][0]
            .as_str()
            .unwrap()
            .contains("name = \"tiny\""),
        "{}",
        runs[id]
    );
}

/// predictions.csv has one row per validation and test image, named as in the data inventory,
/// and agrees exactly with metrics.json; mistakes.json lists the most confident wrong rows with
/// their thumbnails.
fn check_predictions(job: &Path, m: &serde_json::Value) {
    let total = |split: &str| -> u64 {
        m["final"][split]["confusion_matrix"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap())
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    let mut all = Vec::new();
    for (split, prefix) in [
        ("val", "train/train-images-idx3-ubyte.gz["),
        ("test", "test/test-images-idx3-ubyte.gz["),
    ] {
        let (head, rows) = predictions::read(job, split);
        let mut expected = vec!["split", "path", "true", "predicted", "confidence"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        expected.extend((0..10).map(|c| format!("p_{c}")));
        assert_eq!(head, expected);
        assert_eq!(
            rows.len() as u64,
            total(split),
            "{split}: one row per image"
        );
        let f = &m["final"][split];
        assert_eq!(
            predictions::exact_share(&rows),
            f["accuracy"].as_f64().unwrap(),
            "{split} accuracy recomputed from predictions.csv"
        );
        let mut cm = vec![vec![0u64; 10]; 10];
        for r in &rows {
            cm[r["true"].parse::<usize>().unwrap()][r["predicted"].parse::<usize>().unwrap()] += 1;
            assert!(r["path"].starts_with(prefix), "{split}: {r:?}");
            let p: f64 = (0..10).map(|c| predictions::f(r, &format!("p_{c}"))).sum();
            assert!((p - 1.0).abs() < 1e-9, "{r:?}");
            assert_eq!(
                predictions::f(r, "confidence"),
                predictions::f(r, &format!("p_{}", r["predicted"]))
            );
        }
        assert_eq!(serde_json::json!(cm), f["confusion_matrix"], "{split}");
        all.extend(rows);
    }
    // The validation metrics are the best epoch's, as the history recorded them.
    let best = m["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["epoch"] == m["best_epoch"])
        .unwrap();
    for (k, v) in best["val"].as_object().unwrap() {
        assert_eq!(&m["final"]["val"][k], v, "final.val.{k}");
    }
    let mistakes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(job.join("mistakes.json")).unwrap()).unwrap();
    assert_eq!(mistakes["version"], 1);
    let list = mistakes["mistakes"].as_array().unwrap();
    assert!(!list.is_empty(), "a 2-epoch model makes mistakes");
    let mut per: std::collections::BTreeMap<(String, String), Vec<f64>> = Default::default();
    for x in list {
        let row = all
            .iter()
            .find(|r| r["split"] == x["split"] && r["path"] == x["path"])
            .unwrap_or_else(|| panic!("{x} not in predictions.csv"));
        assert_ne!(row["true"], row["predicted"], "{x}");
        assert_eq!(x["kind"], "wrong");
        assert_eq!(x["class"].as_str(), Some(row["true"].as_str()));
        assert_eq!(
            x["confidence"].as_f64(),
            Some(predictions::f(row, "confidence"))
        );
        let png = std::fs::read(job.join(x["thumbnail"].as_str().unwrap())).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
        per.entry((x["split"].to_string(), x["class"].to_string()))
            .or_default()
            .push(x["confidence"].as_f64().unwrap());
    }
    for ((split, class), c) in &per {
        assert!(c.len() <= 5, "{split} {class}: {c:?}");
        assert!(
            c.windows(2).all(|w| w[0] >= w[1]),
            "most confident first: {c:?}"
        );
        // No wrong row of that class is more confident than the least confident kept one.
        let split: String = serde_json::from_str(split).unwrap();
        let class: String = serde_json::from_str(class).unwrap();
        let wrong = all
            .iter()
            .filter(|r| r["split"] == split && r["true"] == class && r["true"] != r["predicted"]);
        let above = wrong
            .filter(|r| predictions::f(r, "confidence") > *c.last().unwrap())
            .count();
        assert!(above < c.len(), "{split} {class}");
    }
}

#[test]
fn the_same_spec_and_seed_give_identical_final_metrics() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let text = tiny_spec("same", "");
    let ja = run_ok(a.path(), &text, "same", &[]);
    let jb = run_ok(b.path(), &text, "same", &[]);
    let (ma, mb) = (metrics(&ja), metrics(&jb));
    assert_eq!(ma["final"], mb["final"]);
    assert_eq!(ma["best_epoch"], mb["best_epoch"]);
    assert_eq!(
        std::fs::read(ja.join("model.safetensors")).unwrap(),
        std::fs::read(jb.join("model.safetensors")).unwrap()
    );
    // Another seed gives another model.
    let c = tempfile::tempdir().unwrap();
    let jc = run_ok(c.path(), &text.replace("seed = 3", "seed = 4"), "same", &[]);
    assert_ne!(metrics(&jc)["final"], ma["final"]);
}

#[test]
fn augmented_training_does_not_depend_on_the_loader_threads() {
    let augment = r#"
[augment]
train = [
  { type = "random_crop", size = 28, padding = 2 },
  { type = "rotation", degrees = 10, p = 0.5 },
  { type = "random_erasing", p = 0.25 },
]
[augment.mixup]
alpha = 0.2
"#;
    let text = format!("{}{augment}", tiny_spec("aug", ""));
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ja = run_ok(a.path(), &text, "aug", &["--loader-threads", "1"]);
    let jb = run_ok(b.path(), &text, "aug", &["--loader-threads", "4"]);
    let (ma, mb) = (metrics(&ja), metrics(&jb));
    assert_eq!(ma["final"], mb["final"]);
    assert_eq!(
        std::fs::read(ja.join("model.safetensors")).unwrap(),
        std::fs::read(jb.join("model.safetensors")).unwrap()
    );
    // The augmentation did change training.
    let c = tempfile::tempdir().unwrap();
    let jc = run_ok(c.path(), &tiny_spec("aug", ""), "aug", &[]);
    assert_ne!(metrics(&jc)["final"], ma["final"]);
}

#[test]
fn a_diverging_job_is_marked_failed_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_spec("diverge", "")
        .replace("kind = \"adamw\"\nlr = 0.003", "kind = \"sgd\"\nlr = 1e30");
    let spec = write_spec(dir.path(), &text);
    let r = run_spec(dir.path(), &spec, &["--threads", "1"]);
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("1 failed"), "{}", r.stdout);
    let job = only_job(&dir.path().join("runs/diverge"));
    let m = metrics(&job);
    assert_eq!(m["status"], "failed");
    assert!(
        m["reason"]
            .as_str()
            .unwrap()
            .contains("training diverged: the loss became"),
        "{m}"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(job.join("job.json")).unwrap()).unwrap();
    assert_eq!(record["status"], "failed");
}

#[test]
fn a_finished_job_is_not_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_spec("again", "").replace("epochs = 2", "epochs = 1");
    let job = run_ok(dir.path(), &text, "again", &[]);
    let before = std::fs::read(job.join("metrics.json")).unwrap();
    let spec = dir.path().join("spec.toml");
    let r = assay(
        dir.path(),
        &["run", spec.to_str().unwrap(), "--runs-dir", "runs"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("already finished"), "{}", r.stdout);
    assert_eq!(std::fs::read(job.join("metrics.json")).unwrap(), before);
}

#[test]
fn plan_and_bench_print_what_they_promise() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &tiny_spec("planned", ""));
    let spec = spec.to_str().unwrap();
    let r = assay(dir.path(), &["plan", spec, "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(plan["experiment"], "planned");
    let jobs = plan["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    let id = jobs[0]["id"].as_str().unwrap().to_string();
    // The id is stable for the same spec and changes with the config.
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(
            &assay(dir.path(), &["plan", spec, "--json"]).stdout
        )
        .unwrap()["jobs"][0]["id"],
        id.as_str()
    );
    let other = assay(
        dir.path(),
        &["plan", spec, "--json", "--set", "optimizer.lr=0.01"],
    );
    assert_ne!(
        serde_json::from_str::<serde_json::Value>(&other.stdout).unwrap()["jobs"][0]["id"],
        id.as_str()
    );
    assert!(!dir.path().join("runs").exists());

    let r = assay(
        dir.path(),
        &["bench", spec, "--steps", "3", "--threads", "1", "--json"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let b: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(b["train_images_per_sec"].as_f64().unwrap() > 0.0);
    assert!(b["load_images_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(b["batch_size"], 50);
    assert_eq!(b["threads"], 1);
    let r = assay(
        dir.path(),
        &["bench", spec, "--steps", "3", "--threads", "1"],
    );
    assert!(r.stdout.contains("images/s"), "{}", r.stdout);
}

/// Training steps reuse the memory of the step before: with activations of 32 MiB (which glibc
/// would map afresh and unmap every time, 8,192 page faults each), a step of a batch-norm CNN
/// takes almost no fresh pages.
#[test]
fn training_steps_take_no_fresh_pages() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), &tiny_spec("no-fresh-pages", ""));
    let r = assay(
        dir.path(),
        &[
            "bench",
            spec.to_str().unwrap(),
            "--steps",
            "3",
            "--threads",
            "2",
            "--json",
            "--set",
            "data.image_size=[64, 64]",
            "--set",
            "model.layers[0].filters=32",
            "--set",
            "train.batch_size=64",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let b: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let faults = b["train_page_faults_per_step"].as_f64().unwrap();
    assert!(faults < 1000.0, "{faults} page faults per training step");
}
