//! `assay report` and `assay compare` on small sweeps, through the binary.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::cli::{assay, run_spec, small_mnist, write_spec};

fn spec(name: &str, data: &str, lrs: &str) -> String {
    format!(
        r#"name = "{name}"
seed = 2
{data}
[split]
folds = 2
refit = true

[model]
architecture = "cnn"
layers = [
  {{ type = "conv", filters = 4, kernel = 3, padding = 1 }},
  {{ type = "relu" }},
  {{ type = "max_pool", size = 2 }},
  {{ type = "dense", units = 16 }},
  {{ type = "relu" }},
]

[optimizer]
kind = "sgd"
momentum = 0.9

[train]
epochs = 2
batch_size = 32

[sweep.parameters]
"optimizer.lr" = {lrs}
"#
    )
}

struct Runs {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// lr 0.02 (good), 1e-7 (known worse), 1e30 (diverges).
    sweep: PathBuf,
    /// one trial on the same data and folds.
    other: PathBuf,
    sweep_stdout: String,
}

/// Runs the two small experiments once for all tests.
fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let data = small_mnist(&root, 300, 60);
        let a = root.join("a");
        let b = root.join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let spec_a = write_spec(&a, &spec("sweep", &data, "[0.02, 1e-7, 1e30]"));
        let spec_b = write_spec(
            &b,
            &spec("other", &data, "[0.01]").replace("refit = true", ""),
        );
        let r = run_spec(&root, &spec_a, &["--jobs", "2"]);
        assert_eq!(r.code, 1, "a trial diverges: {}\n{}", r.stdout, r.stderr);
        let r2 = run_spec(&root, &spec_b, &["--jobs", "2"]);
        assert_eq!(r2.code, 0, "{}\n{}", r2.stdout, r2.stderr);
        Runs {
            sweep: root.join("runs/sweep"),
            other: root.join("runs/other"),
            root,
            _dir: dir,
            sweep_stdout: r.stdout,
        }
    })
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn trial_with_lr(report: &serde_json::Value, lr: f64) -> &serde_json::Value {
    report["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["params"]["optimizer.lr"].as_f64() == Some(lr))
        .unwrap_or_else(|| panic!("no trial with lr {lr}: {report}"))
}

#[test]
fn run_writes_a_report_with_ranked_trials_tests_and_failures() {
    let r = runs();
    assert!(r.sweep_stdout.contains("report: "), "{}", r.sweep_stdout);
    for ext in ["json", "md", "csv", "html"] {
        assert!(
            r.sweep.join(format!("report.{ext}")).is_file(),
            "report.{ext}"
        );
    }
    // `assay report` rewrites it, the same.
    let before = json(&r.sweep.join("report.json"));
    let out = assay(&r.root, &["report", r.sweep.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("## Ranking"), "{}", out.stdout);
    let report = json(&r.sweep.join("report.json"));
    assert_eq!(report, before);

    assert_eq!(report["version"], 1);
    assert_eq!(report["experiment"], "sweep");
    assert_eq!(report["best_metric"], "accuracy");
    assert_eq!(report["significance"], 0.05);
    let trials = report["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3, "{report}");
    for t in trials {
        assert_eq!(t["jobs"].as_array().unwrap().len(), 2, "two folds: {t}");
        for key in [
            "trial",
            "trial_id",
            "params",
            "status",
            "mean",
            "std",
            "ci95",
            "comparison",
        ] {
            assert!(t.get(key).is_some(), "{key} missing in {t}");
        }
        for job in t["jobs"].as_array().unwrap() {
            for key in ["id", "fold", "repeat", "status", "reason", "val", "test"] {
                assert!(job.get(key).is_some(), "{key} missing in {job}");
            }
        }
    }
    // The best trial (lr 0.02) is ranked first.
    let good = trial_with_lr(&report, 0.02);
    assert_eq!(trials[0]["trial"], good["trial"]);
    assert_eq!(report["best_trial"], good["trial"]);
    assert_eq!(good["rank"], 1);
    assert_eq!(good["status"], "done");
    assert_eq!(good["comparison"]["p_value"], serde_json::Value::Null);
    let acc = &good["mean"]["accuracy"];
    let ci = good["ci95"]["accuracy"].as_array().unwrap();
    assert!(
        ci[0].as_f64() <= acc.as_f64() && acc.as_f64() <= ci[1].as_f64(),
        "{good}"
    );
    // The known-worse trial gets a paired test.
    let worse = trial_with_lr(&report, 1e-7);
    assert_eq!(worse["rank"], 2);
    assert!(worse["comparison"]["p_value"].is_f64(), "{worse}");
    assert_eq!(worse["comparison"]["df"], 1.0);
    assert!(worse["comparison"]["distinguishable"].is_boolean());
    // The diverging trial is failed, last, with its reason listed.
    let failed = trial_with_lr(&report, 1e30);
    assert_eq!(failed["status"], "failed");
    assert_eq!(trials[2]["trial"], failed["trial"]);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{report}");
    assert!(problems
        .iter()
        .all(|p| p["reason"].as_str().unwrap().contains("diverged")));
    // The best trial's classes and confusion matrix; test metrics; the refit.
    let best = &report["best"];
    assert_eq!(best["per_class"].as_array().unwrap().len(), 10, "{best}");
    let cm = best["confusion_matrix"].as_array().unwrap();
    let total: f64 = cm
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|x| x.as_f64().unwrap())
        .sum();
    assert_eq!(
        total, 300.0,
        "the two validation folds cover the training data"
    );
    assert!(good["test_mean"]["accuracy"].is_f64());
    let refit = report["refit"].as_array().unwrap();
    assert_eq!(refit.len(), 1, "{report}");
    assert_eq!(refit[0]["trial"], good["trial"]);
    assert!(refit[0]["job"]["test"]["accuracy"].is_f64());

    let md = std::fs::read_to_string(r.sweep.join("report.md")).unwrap();
    assert!(md.contains("p ≥ 0.05"), "{md}");
    assert!(md.contains("## Failed and pruned jobs") && md.contains("diverged"));
    assert!(md.contains("refit of trial"));
    let csv = std::fs::read_to_string(r.sweep.join("report.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("rank,trial,trial_id,optimizer.lr,status,n,loss_mean,loss_std,loss_ci_low,loss_ci_high,accuracy_mean"));
    assert!(lines[0].ends_with(",p_value"));
    assert!(lines[1].starts_with("1,"));
}

#[test]
fn the_html_report_is_self_contained_with_inline_plots() {
    let r = runs();
    let html = std::fs::read_to_string(r.sweep.join("report.html")).unwrap();
    // Learning curves, one scatter (one swept parameter), the confusion heatmap.
    assert_eq!(html.matches("<svg").count(), 3, "{html}");
    assert!(!html.contains("<script"));
    for attr in ["src=", "href="] {
        for quote in ["\"", "'"] {
            for scheme in ["http:", "https:", "//"] {
                let needle = format!("{attr}{quote}{scheme}");
                assert!(!html.contains(&needle), "external resource {needle}");
            }
        }
    }
    assert!(!html.contains("url(http"));
    assert!(
        html.contains("not distinguishable from the best") || html.contains("worse than the best")
    );
}

#[test]
fn compare_ranks_trials_of_several_experiments_together() {
    let r = runs();
    let out = r.root.join("cmp");
    let c = assay(
        &r.root,
        &[
            "compare",
            r.sweep.to_str().unwrap(),
            r.other.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert!(
        c.stdout.contains("# Comparison: sweep, other"),
        "{}",
        c.stdout
    );
    assert!(
        c.stdout.contains("sweep/0") && c.stdout.contains("other/0"),
        "{}",
        c.stdout
    );
    for ext in ["json", "md", "csv", "html"] {
        assert!(
            out.join(format!("compare.{ext}")).is_file(),
            "compare.{ext}"
        );
    }
    let report = json(&out.join("compare.json"));
    let trials = report["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 4);
    assert_eq!(report["best_trial"], trials[0]["label"]);
    // Same data and folds: trials of the other experiment are paired with the best too.
    for t in &trials[1..3] {
        assert!(t["comparison"]["p_value"].is_f64(), "{t}");
    }
}

#[test]
fn compare_refuses_experiments_with_other_metrics_or_data_and_says_when_folds_differ() {
    let r = runs();
    let scratch = tempfile::tempdir_in(&r.root).unwrap();
    // Another best metric: refused.
    let loss = scratch.path().join("loss");
    copy_dir(&r.other, &loss);
    let plan = std::fs::read_to_string(loss.join("plan.json")).unwrap();
    std::fs::write(
        loss.join("plan.json"),
        plan.replace("\"best_metric\":\"accuracy\"", "\"best_metric\":\"loss\""),
    )
    .unwrap();
    let c = assay(
        &r.root,
        &["compare", r.sweep.to_str().unwrap(), loss.to_str().unwrap()],
    );
    assert_eq!(c.code, 2, "{}\n{}", c.stdout, c.stderr);
    assert!(
        c.stderr.contains("selects by accuracy") && c.stderr.contains("loss"),
        "{}",
        c.stderr
    );
    // Other folds: compared, but not paired.
    let folds = scratch.path().join("folds");
    copy_dir(&r.other, &folds);
    std::fs::write(folds.join("folds.json"), "{\"changed\": true}").unwrap();
    let c = assay(
        &r.root,
        &[
            "compare",
            r.sweep.to_str().unwrap(),
            folds.to_str().unwrap(),
        ],
    );
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert!(c.stdout.contains("not paired"), "{}", c.stdout);
    // Other data: refused.
    for entry in std::fs::read_dir(&folds).unwrap() {
        let job = entry.unwrap().path().join("job.json");
        if job.exists() {
            let mut v = json(&job);
            v["data_hash"] = "0000".into();
            std::fs::write(&job, v.to_string()).unwrap();
        }
    }
    let c = assay(
        &r.root,
        &[
            "compare",
            r.sweep.to_str().unwrap(),
            folds.to_str().unwrap(),
        ],
    );
    assert_eq!(c.code, 2);
    assert!(c.stderr.contains("different data"), "{}", c.stderr);
}

#[test]
fn report_errors_name_the_folder_or_file() {
    let r = runs();
    let scratch = tempfile::tempdir_in(&r.root).unwrap();
    let c = assay(&r.root, &["report", scratch.path().to_str().unwrap()]);
    assert_eq!(c.code, 2);
    assert!(
        c.stderr.contains("is not an experiment folder"),
        "{}",
        c.stderr
    );
    let damaged = scratch.path().join("damaged");
    copy_dir(&r.other, &damaged);
    let job = std::fs::read_dir(&damaged)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("metrics.json").exists())
        .unwrap();
    std::fs::write(job.join("metrics.json"), "{ not json").unwrap();
    let c = assay(&r.root, &["report", damaged.to_str().unwrap()]);
    assert_eq!(c.code, 2);
    assert!(c.stderr.contains("metrics.json is damaged"), "{}", c.stderr);
    let c = assay(&r.root, &["compare"]);
    assert_eq!(c.code, 2, "usage error");
}
