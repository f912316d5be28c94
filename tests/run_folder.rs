//! A damaged run folder heals instead of misleading: a finished job whose metrics.json is gone or
//! garbage is shown pending by `status`, left out of the report (which says so), and run again by
//! `assay run`; a truncated ledger.json is rebuilt from the job folders, the damaged copy kept.

mod common;

use std::path::Path;

use common::cli::{assay, ledger, run_spec, small_mnist, write_spec};
use serde_json::Value;

/// A finished experiment of 2 folds (2 jobs) in `dir/runs/healing`; returns the spec path.
fn finished(dir: &Path) -> std::path::PathBuf {
    let data = small_mnist(dir, 400, 100);
    let text = format!(
        "name = \"healing\"\nseed = 1\n{data}\n[split]\nfolds = 2\n[model]\narchitecture = \"cnn\"\nlayers = [{{ type = \"conv\", filters = 4, kernel = 3, padding = 1 }}, {{ type = \"relu\" }}, {{ type = \"max_pool\", size = 2 }}]\n[train]\nepochs = 1\nbatch_size = 32\n"
    );
    let spec = write_spec(dir, &text);
    let r = run_spec(dir, &spec, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    spec
}

fn ids(exp: &Path) -> Vec<String> {
    ledger(exp)["jobs"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

fn report_json(exp: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(exp.join("report.json")).unwrap()).unwrap()
}

#[test]
fn a_finished_job_without_sound_metrics_is_shown_pending_left_out_and_run_again() {
    for (damage, said) in [("missing", "is missing"), ("garbage", "is damaged")] {
        let dir = tempfile::tempdir().unwrap();
        let spec = finished(dir.path());
        let exp = dir.path().join("runs/healing");
        let ids = ids(&exp);
        let victim = exp.join(&ids[0]).join("metrics.json");
        let before: Value =
            serde_json::from_str(&std::fs::read_to_string(&victim).unwrap()).unwrap();
        if damage == "missing" {
            std::fs::remove_file(&victim).unwrap();
        } else {
            std::fs::write(&victim, b"{\"job_id\": ").unwrap();
        }

        let s = assay(dir.path(), &["status", exp.to_str().unwrap()]);
        assert_eq!(s.code, 0, "{}", s.stderr);
        assert!(
            s.stderr
                .contains(&format!("warning: job {} was finished but ", ids[0]))
                && s.stderr.contains(said),
            "{damage}: {}",
            s.stderr
        );
        assert!(
            s.stdout.contains("1 done, 0 running, 1 pending"),
            "{}",
            s.stdout
        );

        let r = assay(dir.path(), &["report", exp.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stderr.contains(said), "{}", r.stderr);
        let report = report_json(&exp);
        assert_eq!(
            report["trials"][0]["n"], 1,
            "the report summarises what it has"
        );
        assert_eq!(report["trials"][0]["status"], "partial");
        assert!(report["warnings"][0].as_str().unwrap().contains(said));

        let again = run_spec(dir.path(), &spec, &[]);
        assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
        assert!(
            again.stdout.contains(&format!("started {}", ids[0])),
            "{}",
            again.stdout
        );
        assert!(
            !again.stdout.contains(&format!("started {}", ids[1])),
            "{}",
            again.stdout
        );
        let after: Value =
            serde_json::from_str(&std::fs::read_to_string(&victim).unwrap()).unwrap();
        assert_eq!(
            after["final"], before["final"],
            "{damage}: the same metrics again"
        );
        assert_eq!(report_json(&exp)["trials"][0]["n"], 2);
    }
}

#[test]
fn a_truncated_ledger_is_rebuilt_from_the_job_folders() {
    let dir = tempfile::tempdir().unwrap();
    let spec = finished(dir.path());
    let exp = dir.path().join("runs/healing");
    let ids = ids(&exp);
    let text = std::fs::read_to_string(exp.join("ledger.json")).unwrap();
    std::fs::write(exp.join("ledger.json"), &text[..text.len() / 2]).unwrap();

    let s = assay(dir.path(), &["status", exp.to_str().unwrap()]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert!(
        s.stderr.contains("is damaged") && s.stderr.contains("rebuilt it from plan.json"),
        "{}",
        s.stderr
    );
    assert!(s.stdout.contains("2 done"), "{}", s.stdout);
    let r = assay(dir.path(), &["report", exp.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(report_json(&exp)["trials"][0]["n"], 2);

    let again = run_spec(dir.path(), &spec, &[]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("the damaged copy is"),
        "{}",
        again.stdout
    );
    for id in &ids {
        assert!(
            !again.stdout.contains(&format!("started {id}")),
            "{}",
            again.stdout
        );
    }
    let aside: Vec<_> = std::fs::read_dir(&exp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ledger.json.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        std::fs::read_to_string(exp.join(&aside[0])).unwrap(),
        &text[..text.len() / 2]
    );
    assert!(ledger(&exp)["jobs"]
        .as_object()
        .unwrap()
        .values()
        .all(|e| e["state"] == "done"));
}
