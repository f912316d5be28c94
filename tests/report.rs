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

    // Test metrics over the trial's jobs: mean, std and interval as for validation.
    let tests: Vec<f64> = good["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["test"]["accuracy"].as_f64().unwrap())
        .collect();
    let s = assay::report::stats::summarize(&tests).unwrap();
    assert_eq!(good["test_mean"]["accuracy"].as_f64(), Some(s.mean));
    assert_eq!(good["test_std"]["accuracy"].as_f64(), Some(s.std));
    assert_eq!(
        good["test_ci95"]["accuracy"],
        serde_json::json!([s.ci95_low, s.ci95_high])
    );
    assert_eq!(report["selection"], "validation");

    let md = std::fs::read_to_string(r.sweep.join("report.md")).unwrap();
    assert!(md.contains("p ≥ 0.05"), "{md}");
    assert!(
        md.contains(&format!(
            "{:.4} ± {:.4} [{:.4}, {:.4}]",
            s.mean, s.std, s.ci95_low, s.ci95_high
        )),
        "test accuracy with std and interval in the Markdown: {md}"
    );
    assert!(md.contains("## Failed and pruned jobs") && md.contains("diverged"));
    assert!(md.contains("refit of trial"));
    let csv = std::fs::read_to_string(r.sweep.join("report.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("rank,trial,trial_id,optimizer.lr,status,n,loss_mean,loss_std,loss_ci_low,loss_ci_high,accuracy_mean"));
    assert!(lines[0].ends_with(",p_value"));
    assert!(lines[0].contains(
        ",test_accuracy_mean,test_accuracy_std,test_accuracy_ci_low,test_accuracy_ci_high,"
    ));
    assert!(lines[1].starts_with("1,"));
}

#[test]
fn the_end_of_a_run_prints_the_best_trial_and_its_test_metrics() {
    let r = runs();
    let report = json(&r.sweep.join("report.json"));
    let good = trial_with_lr(&report, 0.02);
    let mean = good["mean"]["accuracy"].as_f64().unwrap();
    let ci = good["ci95"]["accuracy"].as_array().unwrap();
    let line = format!(
        "best trial {} (optimizer.lr = 0.02): val accuracy {mean:.4} [95% CI {:.4}, {:.4}] over 2 jobs",
        good["trial"],
        ci[0].as_f64().unwrap(),
        ci[1].as_f64().unwrap()
    );
    let lines: Vec<&str> = r.sweep_stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == line)
        .unwrap_or_else(|| panic!("no line {line:?} in\n{}", r.sweep_stdout));
    let test = |m: &str| {
        format!(
            "{m} {:.4} ± {:.4}",
            good["test_mean"][m].as_f64().unwrap(),
            good["test_std"][m].as_f64().unwrap()
        )
    };
    assert!(
        lines[at + 1].starts_with("  test (mean ± std over 2 jobs): loss ")
            && lines[at + 1].contains(&test("accuracy"))
            && lines[at + 1].contains(&test("f1_macro")),
        "{}",
        lines[at + 1]
    );
    let refit = &report["refit"][0]["job"];
    assert!(
        lines[at + 2].starts_with(&format!(
            "  refit of trial {} (job {}) test: loss ",
            good["trial"],
            refit["id"].as_str().unwrap()
        )),
        "{}",
        lines[at + 2]
    );
    assert!(lines[at + 3].starts_with("report: "), "{}", lines[at + 3]);
    // Each finished job's line gives its best epoch's validation score, not its last.
    let ledger = common::cli::ledger(&r.sweep);
    for (id, e) in ledger["jobs"].as_object().unwrap() {
        if e["state"] == "done" && e["refit"] != true {
            let want = format!(
                "{id} done (best val accuracy {:.4} at epoch {})",
                e["best_score"].as_f64().unwrap(),
                e["best_epoch"]
            );
            assert!(r.sweep_stdout.contains(&want), "{want}");
            let metrics = common::cli::metrics(&r.sweep.join(id));
            assert_eq!(metrics["best_epoch"], e["best_epoch"]);
            assert_eq!(metrics["final"]["val"]["accuracy"], e["best_score"]);
        }
    }
}

#[test]
fn the_report_lists_the_best_trials_most_confident_mistakes_with_thumbnails() {
    let r = runs();
    let report = json(&r.sweep.join("report.json"));
    let good = trial_with_lr(&report, 0.02);
    let m = &report["mistakes"];
    assert_eq!(m["trial"], good["label"], "{m}");
    assert_eq!(m["per_class"], 5);
    let items = m["items"].as_array().unwrap();
    assert!(!items.is_empty());
    let jobs: Vec<&str> = good["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    let mut groups: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for x in items {
        assert!(jobs.contains(&x["job"].as_str().unwrap()), "{x}");
        assert_ne!(x["true"], x["predicted"], "{x}");
        let thumb = r.sweep.join(x["thumbnail"].as_str().unwrap());
        assert!(thumb.is_file(), "{}", thumb.display());
        assert!(x["path"].as_str().unwrap().contains("-images.gz["), "{x}");
        groups
            .entry(format!("{} {} {}", x["split"], x["class"], x["kind"]))
            .or_default()
            .push(x["confidence"].as_f64().unwrap());
    }
    assert!(groups.keys().any(|k| k.starts_with("\"val\"")));
    assert!(groups.keys().any(|k| k.starts_with("\"test\"")));
    for (k, c) in &groups {
        assert!(c.len() <= 5, "{k}: {c:?}");
        assert!(c.windows(2).all(|w| w[0] >= w[1]), "{k}: {c:?}");
    }
    // report.html embeds every thumbnail; report.md lists them without images.
    let html = std::fs::read_to_string(r.sweep.join("report.html")).unwrap();
    assert!(html.contains("Most confident mistakes: trial"));
    assert_eq!(
        html.matches("<img src=\"data:image/png;base64,").count(),
        items.len(),
        "one inline PNG per mistake"
    );
    let md = std::fs::read_to_string(r.sweep.join("report.md")).unwrap();
    assert!(md.contains("## Most confident mistakes: trial"), "{md}");
    assert!(!md.contains("data:image"));
    let first = &items[0];
    assert!(md.contains(first["path"].as_str().unwrap()), "{md}");
}

#[test]
fn a_report_without_validation_ranks_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = small_mnist(root, 300, 60);
    let text = spec("noval", &data, "[0.02, 0.01]")
        .replace("folds = 2\nrefit = true", "validation_fraction = 0");
    let r = run_spec(root, &write_spec(root, &text), &["--jobs", "2"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let exp = root.join("runs/noval");
    let report = json(&exp.join("report.json"));
    assert_eq!(report["selection"], "none");
    assert_eq!(report["best_trial"], serde_json::Value::Null);
    assert_eq!(report["best"], serde_json::Value::Null);
    let trials = report["trials"].as_array().unwrap();
    for (i, t) in trials.iter().enumerate() {
        assert_eq!(t["trial"], i, "plan order");
        assert_eq!(t["rank"], serde_json::Value::Null);
        assert_eq!(t["comparison"]["note"], "no selection: no validation split");
        assert!(t["mean"].as_object().unwrap().is_empty());
        assert!(t["train_mean"]["loss"].is_f64(), "{t}");
        assert!(t["test_mean"]["accuracy"].is_f64(), "{t}");
        // Without validation every job keeps its last epoch.
        let job = exp.join(t["jobs"][0]["id"].as_str().unwrap());
        let m = common::cli::metrics(&job);
        assert_eq!(m["best_epoch"], 2);
        assert!(m["final"]["val"].is_null(), "{m}");
        let (_, val) = common::predictions::read(&job, "val");
        let (_, test) = common::predictions::read(&job, "test");
        assert_eq!((val.len(), test.len()), (0, 60));
    }
    let md = std::fs::read_to_string(exp.join("report.md")).unwrap();
    assert!(
        md.contains("No validation split: trials are not ranked"),
        "{md}"
    );
    assert!(
        md.contains("## Trials") && !md.contains("## Ranking"),
        "{md}"
    );
    assert!(!md.contains("p-value") && !md.contains("| best |"), "{md}");
    let table: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("## Trials"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(table.len(), 4, "header, rule, two trials: {md}");
    assert!(table.iter().all(|l| !l.contains("| – |")), "{table:?}");
    assert!(md.contains("## Test set"), "{md}");
    let html = std::fs::read_to_string(exp.join("report.html")).unwrap();
    assert!(html.contains("No validation split: trials are not ranked"));
    assert!(!html.contains(">p-value<"));
    assert!(!html.contains("<svg"), "no validation curves to plot");
    assert!(
        r.stdout
            .contains("no validation split: trials are not ranked and none is best"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("trial 0 (optimizer.lr = 0.02): test: loss "),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("best trial"), "{}", r.stdout);
}

#[test]
fn repeats_give_the_test_metrics_a_standard_deviation_and_interval() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = small_mnist(root, 300, 60);
    let text = spec("repeats", &data, "[0.001]")
        .replace("folds = 2\nrefit = true", "validation_fraction = 0.2")
        .replace(
            "[sweep.parameters]",
            "[sweep]\nrepeats = 2\n\n[sweep.parameters]",
        );
    let r = run_spec(root, &write_spec(root, &text), &["--jobs", "2"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let report = json(&root.join("runs/repeats/report.json"));
    let t = &report["trials"][0];
    assert_eq!(t["n"], 2);
    for m in report["metrics"].as_array().unwrap() {
        let m = m.as_str().unwrap();
        let values: Vec<f64> = t["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["test"][m].as_f64().unwrap())
            .collect();
        let s = assay::report::stats::summarize(&values).unwrap();
        assert_eq!(t["test_mean"][m].as_f64(), Some(s.mean), "{m}");
        assert_eq!(t["test_std"][m].as_f64(), Some(s.std), "{m}");
        assert_eq!(
            t["test_ci95"][m],
            serde_json::json!([s.ci95_low, s.ci95_high]),
            "{m}"
        );
    }
    let line = format!(
        "  test (mean ± std over 2 jobs): loss {:.4} ± {:.4}, accuracy {:.4} ± {:.4},",
        t["test_mean"]["loss"].as_f64().unwrap(),
        t["test_std"]["loss"].as_f64().unwrap(),
        t["test_mean"]["accuracy"].as_f64().unwrap(),
        t["test_std"]["accuracy"].as_f64().unwrap()
    );
    assert!(r.stdout.contains(&line), "{line:?} in\n{}", r.stdout);
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
    // A finished job's damaged metrics are a warning: the job is left out (it runs again).
    let c = assay(&r.root, &["report", damaged.to_str().unwrap()]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert!(
        c.stderr.starts_with("warning: job ") && c.stderr.contains("metrics.json is damaged"),
        "{}",
        c.stderr
    );
    let c = assay(&r.root, &["compare"]);
    assert_eq!(c.code, 2, "usage error");
}
