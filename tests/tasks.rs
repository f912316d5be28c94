//! Binary and multilabel tasks end to end through the CLI, on reduced versions of the derived
//! MNIST data sets (`scripts/make-derived-mnist.py`): the task's metrics in metrics.json, in
//! TensorBoard (read back with TensorBoard's own reader) and in `assay report`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cli::{assay, repo, write_spec};
use common::predictions;
use serde_json::Value;

const BINARY: &[&str] = &[
    "loss",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "f1_at_threshold",
    "threshold",
];

const MULTILABEL: &[&str] = &[
    "loss",
    "hamming_loss",
    "subset_accuracy",
    "precision_micro",
    "recall_micro",
    "f1_micro",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc_macro",
    "roc_auc_micro",
];

/// Runs the derivation script into `dir` with reduced counts.
fn derive(dir: &Path) {
    let out = Command::new("python3")
        .arg(repo().join("scripts/make-derived-mnist.py"))
        .args(["--out", dir.to_str().unwrap()])
        .args(["--binary-train", "800", "--binary-test", "300"])
        .args(["--mosaic-train", "1000", "--mosaic-test", "200"])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const MODEL: &str = r#"
[model]
architecture = "cnn"
layers = [
  { type = "conv", filters = 8, kernel = 3, padding = 1 },
  { type = "relu" },
  { type = "max_pool", size = 2 },
  { type = "conv", filters = 16, kernel = 3, padding = 1 },
  { type = "relu" },
  { type = "max_pool", size = 2 },
  { type = "dense", units = 32 },
  { type = "relu" },
]

[optimizer]
kind = "adam"
lr = 3e-3
"#;

/// Job folders (those with a metrics.json) of an experiment.
fn jobs(experiment: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(experiment)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("metrics.json").exists())
        .collect();
    out.sort();
    out
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .filter(|k| *k != "per_class" && *k != "confusion_matrix")
        .cloned()
        .collect()
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The task's metrics are in metrics.json (final and history), TensorBoard and the report.
fn check_outputs(experiment: &Path, names: &[&str], hparams_metric: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let tb = common::tensorboard::read_logdir(experiment);
    for job in jobs(experiment) {
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(job.join("metrics.json")).unwrap())
                .unwrap();
        assert_eq!(m["status"], "done", "{m}");
        for split in ["train", "val", "test"] {
            let mut got = keys(&m["final"][split]);
            got.sort();
            assert_eq!(got, sorted(names), "final.{split}");
        }
        for epoch in m["history"].as_array().unwrap() {
            let mut got = keys(&epoch["val"]);
            got.sort();
            assert_eq!(got, sorted(names));
        }
        let id = job.file_name().unwrap().to_str().unwrap();
        for split in ["train", "val", "test"] {
            let run = &tb["runs"][format!("{id}/{split}")];
            for name in names {
                let points = run["scalars"][*name]
                    .as_array()
                    .unwrap_or_else(|| panic!("{split}/{name} missing in TensorBoard: {run}"));
                let last = points.last().unwrap()[1].as_f64().unwrap() as f32;
                if split == "test" {
                    assert_eq!(last, m["final"]["test"][*name].as_f64().unwrap() as f32);
                }
            }
        }
        all.push(m);
    }
    let infos = &tb["hparams_data"]["."]["_hparams_/experiment"]["experiment"]["metric_infos"];
    assert!(
        infos
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"]["group"] == "val" && i["name"]["tag"] == hparams_metric),
        "{infos}"
    );

    let r = assay(experiment, &["report", experiment.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for name in names {
        assert!(
            r.stdout.contains(&format!(" {name} |")),
            "{name} in\n{}",
            r.stdout
        );
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(experiment.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["metrics"], serde_json::json!(names), "{report}");
    for name in names {
        assert!(
            report["trials"][0]["mean"][*name].is_f64(),
            "{name}: {report}"
        );
        assert!(report["trials"][0]["test_mean"][*name].is_f64(), "{name}");
    }
    let csv = std::fs::read_to_string(experiment.join("report.csv")).unwrap();
    let html = std::fs::read_to_string(experiment.join("report.html")).unwrap();
    for name in names {
        assert!(csv
            .lines()
            .next()
            .unwrap()
            .contains(&format!("{name}_mean")));
        assert!(html.contains(&format!("<th>{name}</th>")), "{name} in html");
    }
    all
}

fn metrics_of(job: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(job.join("metrics.json")).unwrap()).unwrap()
}

/// Images in a single-label split: its confusion matrix's total.
fn images(m: &Value, split: &str) -> u64 {
    m["final"][split]["confusion_matrix"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum()
}

/// Binary predictions.csv: accuracy and F1 at 0.5, F1 at the validation threshold and ROC AUC
/// recomputed from it equal metrics.json exactly.
fn check_binary_predictions(job: &Path) {
    let m = metrics_of(job);
    for split in ["val", "test"] {
        let (head, rows) = predictions::read(job, split);
        assert_eq!(
            head,
            [
                "split",
                "path",
                "true",
                "predicted",
                "confidence",
                "p_seven",
                "threshold",
                "predicted_at_threshold"
            ]
        );
        assert_eq!(rows.len() as u64, images(&m, split), "{split}");
        let f = &m["final"][split];
        let get = |k: &str| f[k].as_f64().unwrap();
        assert_eq!(predictions::exact_share(&rows), get("accuracy"), "{split}");
        assert_eq!(predictions::f1(&rows, "predicted", "seven"), get("f1"));
        assert_eq!(
            predictions::f1(&rows, "predicted_at_threshold", "seven"),
            get("f1_at_threshold"),
            "{split}"
        );
        assert!(rows
            .iter()
            .all(|r| predictions::f(r, "threshold") == get("threshold")));
        let scores: Vec<f32> = rows
            .iter()
            .map(|r| predictions::f(r, "p_seven") as f32)
            .collect();
        let truths: Vec<bool> = rows.iter().map(|r| r["true"] == "seven").collect();
        assert_eq!(
            assay::train::metrics::roc_auc(&scores, &truths),
            get("roc_auc")
        );
    }
    // the test rows are evaluated at the validation's threshold
    let (_, val) = predictions::read(job, "val");
    let (_, test) = predictions::read(job, "test");
    assert_eq!(val[0]["threshold"], test[0]["threshold"]);
    assert!(test[0]["path"].starts_with("test/"), "{:?}", test[0]);
}

/// Multilabel predictions.csv: Hamming loss, subset accuracy and micro ROC AUC recomputed from it
/// equal metrics.json exactly; the mistakes are false positives and negatives per label.
fn check_multilabel_predictions(job: &Path) {
    let m = metrics_of(job);
    let labels: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    let mut sizes = Vec::new();
    for split in ["val", "test"] {
        let (head, rows) = predictions::read(job, split);
        let mut expected: Vec<String> = ["split", "path", "true", "predicted"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        expected.extend(labels.iter().map(|l| format!("p_{l}")));
        assert_eq!(head, expected);
        sizes.push(rows.len());
        let f = &m["final"][split];
        let get = |k: &str| f[k].as_f64().unwrap();
        assert_eq!(
            predictions::hamming_loss(&rows, &labels),
            get("hamming_loss")
        );
        assert_eq!(predictions::exact_share(&rows), get("subset_accuracy"));
        let (mut scores, mut truths) = (Vec::new(), Vec::new());
        for r in &rows {
            let t: Vec<&str> = r["true"].split(';').collect();
            for l in &labels {
                scores.push(predictions::f(r, &format!("p_{l}")) as f32);
                truths.push(t.contains(&l.as_str()));
            }
        }
        assert_eq!(
            assay::train::metrics::roc_auc(&scores, &truths),
            get("roc_auc_micro")
        );
        // predicted: the labels at probability ≥ 0.5
        for r in rows.iter().take(20) {
            let p: Vec<&str> = labels
                .iter()
                .filter(|l| predictions::f(r, &format!("p_{l}")) >= 0.5)
                .map(String::as_str)
                .collect();
            assert_eq!(p.join(";"), r["predicted"], "{r:?}");
        }
    }
    assert_eq!(sizes[1], 200, "every test image");
    assert!(
        (490..=510).contains(&sizes[0]),
        "the fold's images: {sizes:?}"
    );
    let mistakes: Value =
        serde_json::from_str(&std::fs::read_to_string(job.join("mistakes.json")).unwrap()).unwrap();
    let kinds: Vec<&str> = mistakes["mistakes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"false_positive") && kinds.contains(&"false_negative"),
        "{kinds:?}"
    );
}

#[test]
fn binary_and_multilabel_quickstarts_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    derive(&data);
    let seven = data.join("mnist-seven");
    let p = |f: &str| seven.join(f).display().to_string();

    // binary: "is it a 7?", balanced class weights
    let spec = format!(
        "name = \"bin\"\nseed = 3\ntask = \"binary\"\n\n[data]\nformat = \"idx\"\ntrain = {{ images = \"{}\", labels = \"{}\" }}\ntest = {{ images = \"{}\", labels = \"{}\" }}\nimage_size = [28, 28]\nclasses = [\"other\", \"seven\"]\npositive_class = \"seven\"\n\n[split]\nvalidation_fraction = 0.25\n{MODEL}\n[train]\nepochs = 3\nbatch_size = 32\nclass_weights = \"balanced\"\n",
        p("train-images-idx3-ubyte.gz"),
        p("train-labels-idx1-ubyte.gz"),
        p("test-images-idx3-ubyte.gz"),
        p("test-labels-idx1-ubyte.gz"),
    );
    let spec = write_spec(dir.path(), &spec);
    let r = assay(dir.path(), &["run", spec.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let runs = check_outputs(&dir.path().join("runs/bin"), BINARY, "roc_auc");
    let m = &runs[0];
    assert_eq!(m["best_metric"], "val.roc_auc", "the binary default");
    let (val, test) = (&m["final"]["val"], &m["final"]["test"]);
    // the test set is evaluated at the threshold chosen on validation
    assert_eq!(val["threshold"], test["threshold"], "{val}\n{test}");
    assert_eq!(test["confusion_matrix"].as_array().unwrap().len(), 2);
    assert!(test["roc_auc"].as_f64().unwrap() > 0.85, "{test}");
    assert!(test["pr_auc"].as_f64().unwrap() > 0.5, "{test}");
    for job in jobs(&dir.path().join("runs/bin")) {
        check_binary_predictions(&job);
    }

    // multilabel: digit mosaics, 2 folds by iterative stratification, balanced sampler
    let mosaic = data.join("mnist-mosaic");
    let spec = format!(
        "name = \"multi\"\nseed = 3\ntask = \"multilabel\"\n\n[data]\nformat = \"csv\"\ntrain = \"{}\"\ntest = \"{}\"\nchannels = 1\nimage_size = [56, 56]\n\n[split]\nfolds = 2\n{MODEL}\n[train]\nepochs = 6\nbatch_size = 32\nsampler = \"balanced\"\n",
        mosaic.join("train.csv").display(),
        mosaic.join("test.csv").display(),
    );
    let dir2 = dir.path().join("multi");
    std::fs::create_dir_all(&dir2).unwrap();
    let spec = write_spec(&dir2, &spec);
    let r = assay(&dir2, &["run", spec.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let experiment = dir2.join("runs/multi");
    let runs = check_outputs(&experiment, MULTILABEL, "f1_macro");
    assert_eq!(runs.len(), 2, "one job per fold");
    for m in &runs {
        assert_eq!(m["best_metric"], "val.f1_macro");
        let test = &m["final"]["test"];
        assert_eq!(test["per_class"].as_array().unwrap().len(), 10, "{test}");
        assert!(test["confusion_matrix"].as_array().unwrap().is_empty());
        assert!(test["roc_auc_micro"].as_f64().unwrap() > 0.6, "{test}");
    }
    for job in jobs(&experiment) {
        check_multilabel_predictions(&job);
    }
    let folds: Value =
        serde_json::from_str(&std::fs::read_to_string(experiment.join("folds.json")).unwrap())
            .unwrap();
    let sizes: Vec<usize> = folds["validation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_array().unwrap().len())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 1000);
    assert!(sizes.iter().all(|&s| (490..=510).contains(&s)), "{sizes:?}");
}

#[test]
fn multilabel_manifest_with_an_unknown_label_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // the labels are checked before any image is decoded
    for f in ["a.png", "b.png"] {
        std::fs::write(data.join(f), b"not decoded").unwrap();
    }
    let csv = data.join("m.csv");
    std::fs::write(&csv, "path,label\na.png,cat;dog\nb.png,cat;bird\n").unwrap();
    let spec = format!(
        "name = \"ml\"\ntask = \"multilabel\"\n\n[data]\nformat = \"csv\"\ntrain = \"{}\"\nchannels = 1\nimage_size = [8, 8]\nclasses = [\"cat\", \"dog\"]\n\n[model]\narchitecture = \"mlp\"\nlayers = []\n",
        csv.display()
    );
    let spec = write_spec(dir.path(), &spec);
    let r = assay(dir.path(), &["run", spec.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{}:3: label \"bird\" is not one of the classes [cat, dog]",
            csv.display()
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn multilabel_manifest_without_any_label_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut rows = String::from("path,label\n");
    for i in 0..20u8 {
        image::GrayImage::from_pixel(4, 4, image::Luma([i * 10]))
            .save(data.join(format!("{i}.png")))
            .unwrap();
        rows.push_str(&format!("{i}.png,\n"));
    }
    let csv = data.join("m.csv");
    std::fs::write(&csv, rows).unwrap();
    let spec = format!(
        "name = \"ml\"\ntask = \"multilabel\"\n\n[data]\nformat = \"csv\"\ntrain = \"{}\"\nchannels = 1\nimage_size = [4, 4]\n\n[model]\narchitecture = \"mlp\"\nlayers = []\n\n[train]\nepochs = 1\n",
        csv.display()
    );
    let spec = write_spec(dir.path(), &spec);
    let r = assay(dir.path(), &["run", spec.to_str().unwrap()]);
    // not "0 images": the images are there, the labels are not
    assert!(
        r.stderr.contains("needs at least one label")
            || r.stdout.contains("needs at least one label"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
}

/// `dir/data/<class>/<i>.png`: 8 grayscale 4×4 images per class, darker for the first class.
fn two_class_folder(dir: &Path, classes: [&str; 2]) -> PathBuf {
    let root = dir.join("data");
    for (c, class) in classes.iter().enumerate() {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..8u8 {
            image::GrayImage::from_pixel(4, 4, image::Luma([30 + 150 * c as u8 + i]))
                .save(root.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    root
}

fn binary_folder_spec(root: &Path, data_extra: &str) -> String {
    format!(
        "name = \"pc\"\ntask = \"binary\"\n\n[data]\nformat = \"image-folder\"\ntrain = \"{}\"\nchannels = 1\nimage_size = [4, 4]\n{data_extra}\n[split]\nvalidation_fraction = 0.25\n\n[model]\narchitecture = \"mlp\"\nlayers = []\n\n[train]\nepochs = 1\nbatch_size = 4\n",
        root.display()
    )
}

const DEFECT_HELP: &str = "task \"binary\" needs data.positive_class: the classes are [\"defective\", \"functional\"] and neither is an obvious positive (1, true, yes, y, positive, pos)";

#[test]
fn binary_classes_in_the_spec_without_an_obvious_positive_are_refused_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    let root = two_class_folder(dir.path(), ["defective", "functional"]);
    let text = binary_folder_spec(&root, "classes = [\"defective\", \"functional\"]\n");
    let spec = write_spec(dir.path(), &text);
    let line = text
        .lines()
        .position(|l| l.starts_with("classes = "))
        .unwrap()
        + 1;
    let pad = " ".repeat(line.to_string().len());
    let expected = format!(
        "error: {DEFECT_HELP}\n{pad}--> {}:{line}:11\n{pad} |\n{line} | classes = [\"defective\", \"functional\"]\n{pad} |           ^^^^^^^^^^^^^^^^^^^^^^^^^^^\n{pad} = key: data.positive_class\n{pad} = help: say which class precision, recall, F1 and PR-AUC are about: add positive_class = \"defective\" or positive_class = \"functional\" to [data]\n",
        spec.display()
    );
    for command in ["validate", "run"] {
        let r = assay(dir.path(), &[command, spec.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{command}: {}\n{}", r.stdout, r.stderr);
        assert_eq!(r.stderr, expected, "{command}");
    }
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn binary_classes_from_the_data_without_an_obvious_positive_are_refused_after_loading() {
    let dir = tempfile::tempdir().unwrap();
    let root = two_class_folder(dir.path(), ["defective", "functional"]);
    let spec = write_spec(dir.path(), &binary_folder_spec(&root, ""));
    let r = assay(dir.path(), &["run", spec.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        r.stderr,
        format!("error: {DEFECT_HELP}\n   = help: say which class precision, recall, F1 and PR-AUC are about: add positive_class = \"defective\" or positive_class = \"functional\" to [data]\n")
    );
    assert!(!dir.path().join("runs").exists(), "nothing written");
}

#[test]
fn binary_positive_class_is_the_obvious_positive_or_the_given_one() {
    for (classes, extra, positive) in [
        (["0", "1"], "", "1"),
        (["no", "yes"], "", "yes"),
        (["no", "yes"], "classes = [\"no\", \"yes\"]\n", "yes"),
        (
            ["defective", "functional"],
            "positive_class = \"defective\"\n",
            "defective",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = two_class_folder(dir.path(), classes);
        let spec = write_spec(dir.path(), &binary_folder_spec(&root, extra));
        let r = assay(dir.path(), &["run", spec.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{classes:?}: {}\n{}", r.stdout, r.stderr);
        let job = common::cli::only_job(&dir.path().join("runs/pc"));
        let record: Value =
            serde_json::from_str(&std::fs::read_to_string(job.join("job.json")).unwrap()).unwrap();
        assert_eq!(record["positive_class"], positive, "{classes:?} {extra}");
    }
}

/// 24 grayscale 4×4 images under `dir/data/` with label sets over car, cat, dog, as a `;`
/// manifest (`semi.csv`, labels in no particular order within a cell) and as a wide one
/// (`wide.csv`, one 0/1 column per label). Returns the folder.
fn two_layouts(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let names = ["car", "cat", "dog"];
    let mut semi = String::from("path,label\n");
    let mut wide = String::from("path,car,cat,dog\n");
    for i in 0..24u32 {
        let name = format!("img/{i:02}.png");
        let set: Vec<usize> = (0..3)
            .filter(|&k| !(i * 7 + k as u32 * 5).is_multiple_of(3))
            .collect();
        let mut pixels = image::GrayImage::new(4, 4);
        for (x, y, p) in pixels.enumerate_pixels_mut() {
            let on = set.contains(&((x + y) as usize % 3));
            *p = image::Luma([if on { 200 } else { 20 } + (i % 7) as u8]);
        }
        std::fs::create_dir_all(data.join("img")).unwrap();
        pixels.save(data.join(&name)).unwrap();
        let mut cell: Vec<&str> = set.iter().map(|&k| names[k]).collect();
        cell.reverse();
        semi.push_str(&format!("{name},{}\n", cell.join(";")));
        let bits: Vec<&str> = (0..3)
            .map(|k| if set.contains(&k) { "1" } else { "0" })
            .collect();
        wide.push_str(&format!("{name},{}\n", bits.join(",")));
    }
    std::fs::write(data.join("semi.csv"), semi).unwrap();
    std::fs::write(data.join("wide.csv"), wide).unwrap();
    data
}

fn multilabel_csv_spec(manifest: &Path, data_extra: &str) -> String {
    format!(
        "name = \"ml\"\nseed = 5\ntask = \"multilabel\"\n\n[data]\nformat = \"csv\"\ntrain = \"{m}\"\ntest = \"{m}\"\nchannels = 1\nimage_size = [4, 4]\n{data_extra}\n[split]\nvalidation_fraction = 0.25\n\n[model]\narchitecture = \"mlp\"\nlayers = [{{ type = \"dense\", units = 8 }}, {{ type = \"relu\" }}]\n\n[train]\nepochs = 3\nbatch_size = 4\n",
        m = manifest.display()
    )
}

/// metrics.json without what names the job (ids) or measures the machine (seconds).
fn comparable_metrics(job: &Path) -> Value {
    let mut m: Value =
        serde_json::from_str(&std::fs::read_to_string(job.join("metrics.json")).unwrap()).unwrap();
    let o = m.as_object_mut().unwrap();
    o.remove("job_id");
    o.remove("trial_id");
    for epoch in o["history"].as_array_mut().unwrap() {
        epoch.as_object_mut().unwrap().remove("seconds");
    }
    m
}

#[test]
fn multilabel_wide_and_semicolon_layouts_give_the_same_data_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data = two_layouts(dir.path());
    let mut results = Vec::new();
    for (layout, extra) in [
        ("semi", ""),
        ("wide", ""),
        ("wide", "labels = [\"car\", \"cat\", \"dog\"]\n"),
        ("wide", "classes = [\"car\", \"cat\", \"dog\"]\n"),
    ] {
        let run_dir = dir.path().join(format!("run-{}", results.len()));
        std::fs::create_dir_all(&run_dir).unwrap();
        let spec = write_spec(
            &run_dir,
            &multilabel_csv_spec(&data.join(format!("{layout}.csv")), extra),
        );
        let r = assay(&run_dir, &["run", spec.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{layout} {extra}: {}\n{}", r.stdout, r.stderr);
        let experiment = run_dir.join("runs/ml");
        let inventory = std::fs::read_to_string(experiment.join("data-inventory.json")).unwrap();
        let job = common::cli::only_job(&experiment);
        let record: Value =
            serde_json::from_str(&std::fs::read_to_string(job.join("job.json")).unwrap()).unwrap();
        results.push((
            inventory,
            record["data_hash"].clone(),
            record["classes"].clone(),
            comparable_metrics(&job),
        ));
    }
    let (inventory, hash, classes, metrics) = &results[0];
    assert_eq!(classes, &serde_json::json!(["car", "cat", "dog"]));
    assert!(
        inventory.contains("[\"img/00.png\",[\"cat\",\"dog\"]"),
        "{inventory}"
    );
    for (i, r) in results.iter().enumerate().skip(1) {
        assert_eq!(&r.0, inventory, "run {i}: the same images and label sets");
        assert_eq!(&r.1, hash, "run {i}");
        assert_eq!(&r.2, classes, "run {i}");
        assert_eq!(&r.3, metrics, "run {i}: identical metrics.json");
    }
}

#[test]
fn multilabel_wide_manifest_errors_name_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let data = two_layouts(dir.path());
    let wide = data.join("wide.csv");
    let text = std::fs::read_to_string(&wide).unwrap();
    let refused = |manifest: &Path, extra: &str, expected: String| {
        let spec = write_spec(dir.path(), &multilabel_csv_spec(manifest, extra));
        let r = assay(dir.path(), &["run", spec.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
        assert_eq!(r.stderr, format!("error: {expected}\n"));
        assert!(!dir.path().join("runs").exists(), "nothing written");
    };
    // a cell that is not 0 or 1
    let bad = data.join("bad.csv");
    std::fs::write(&bad, text.replacen("img/01.png,1,", "img/01.png,2,", 1)).unwrap();
    assert_ne!(std::fs::read_to_string(&bad).unwrap(), text);
    refused(
        &bad,
        "",
        format!(
            "{}:3: column \"car\" holds \"2\"; a label column holds 0 or 1 (or false/true)",
            bad.display()
        ),
    );
    // a listed label the header lacks
    refused(
        &wide,
        "labels = [\"cat\", \"bird\"]\n",
        format!(
            "{}:1: data.labels names the column \"bird\", but the header has no such label column: [path, car, cat, dog]",
            wide.display()
        ),
    );
    // data.labels with a `label` column
    let semi = data.join("semi.csv");
    refused(
        &semi,
        "labels = [\"cat\"]\n",
        format!(
            "{}:1: the header has a \"label\" column (labels as `cat;dog` cells), but data.labels names label columns (one 0/1 column per label); remove one of them",
            semi.display()
        ),
    );
    // data.classes that are not the label columns
    refused(
        &wide,
        "classes = [\"cat\", \"dog\"]\n",
        format!(
            "{}:1: the label columns [car, cat, dog] are not the classes [cat, dog]",
            wide.display()
        ),
    );
}
