//! Data identity through the binary: the inventory written when an experiment starts, the
//! `data_hash` every job records, and the warning naming what changed when a run resumes on
//! changed data.

mod common;

use std::path::{Path, PathBuf};

use assay::data::inventory::Inventory;
use common::cli::{ledger, run_spec, write_spec, Run};

fn png(path: &Path, shade: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_fn(8, 8, |x, y| {
        image::Luma([shade.wrapping_add((x * y) as u8)])
    })
    .save(path)
    .unwrap();
}

/// `img/a0.png`…`img/a5.png` (class a) and `img/b0.png`…`img/b5.png` (class b), listed in
/// `dir/m.csv`.
fn data(dir: &Path) {
    let mut csv = String::from("path,label\n");
    for (class, shade) in [("a", 10u8), ("b", 200u8)] {
        for i in 0..6 {
            png(&dir.join(format!("img/{class}{i}.png")), shade + 3 * i);
            csv.push_str(&format!("img/{class}{i}.png,{class}\n"));
        }
    }
    std::fs::write(dir.join("m.csv"), csv).unwrap();
}

fn spec(split: &str, sweep: &str) -> String {
    format!(
        "name = \"ident\"\n[data]\nformat = \"csv\"\ntrain = \"m.csv\"\nimage_size = [8, 8]\nchannels = 1\n\n[split]\n{split}\n\n[model]\narchitecture = \"mlp\"\nlayers = []\n\n[train]\nepochs = 1\nbatch_size = 4\n{sweep}"
    )
}

fn run(dir: &Path, spec: &Path) -> Run {
    run_spec(dir, spec, &["--jobs", "2"])
}

fn job_json(exp: &Path, id: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(exp.join(id).join("job.json")).unwrap()).unwrap()
}

fn stored(exp: &Path) -> Inventory {
    serde_json::from_slice(&std::fs::read(exp.join("data-inventory.json")).unwrap()).unwrap()
}

/// The indented lines that follow the data-change warning.
fn warning_lines(stdout: &str) -> Option<Vec<String>> {
    let mut lines = stdout.lines();
    lines.find(|l| l.starts_with("warning: the data changed since this experiment started"))?;
    Some(
        lines
            .take_while(|l| l.starts_with("  "))
            .map(|l| l.trim().to_string())
            .collect(),
    )
}

/// Marks `id` as crashed, so that the next run tries it again.
fn crash(exp: &Path, id: &str) {
    let mut l = ledger(exp);
    l["jobs"][id]["state"] = "failed".into();
    l["jobs"][id]["retryable"] = true.into();
    l["jobs"][id]["reason"] = "the worker was killed by signal 9".into();
    std::fs::write(exp.join("ledger.json"), serde_json::to_vec(&l).unwrap()).unwrap();
}

fn job_ids(exp: &Path) -> Vec<String> {
    let l = ledger(exp);
    let mut ids: Vec<(u64, String)> = l["jobs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, e)| {
            (
                e["trial"].as_u64().unwrap() * 10 + e["fold"].as_u64().unwrap_or(0),
                id.clone(),
            )
        })
        .collect();
    ids.sort();
    ids.into_iter().map(|(_, id)| id).collect()
}

#[test]
fn a_resumed_run_on_changed_data_names_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());
    let s = write_spec(
        dir.path(),
        &spec(
            "validation_fraction = 0.25",
            "\n[sweep.parameters]\n\"optimizer.lr\" = [0.01, 0.02]\n",
        ),
    );
    let exp: PathBuf = dir.path().join("runs/ident");
    let first = run(dir.path(), &s);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert!(!first.stdout.contains("data changed"), "{}", first.stdout);
    let inventory = stored(&exp);
    assert_eq!(inventory.len(), 12);
    assert_eq!(inventory.splits[0].items[0].name, "img/a0.png");
    let hash = inventory.hash();
    let ids = job_ids(&exp);
    assert_eq!(ids.len(), 2);
    for id in &ids {
        assert_eq!(job_json(&exp, id)["data_hash"], hash.as_str());
    }

    // unchanged data: no warning
    let again = run(dir.path(), &s);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(!again.stdout.contains("data changed"), "{}", again.stdout);

    // an experiment folder from before inventories gets one, without a warning
    let bytes = std::fs::read(exp.join("data-inventory.json")).unwrap();
    std::fs::remove_file(exp.join("data-inventory.json")).unwrap();
    let legacy = run(dir.path(), &s);
    assert_eq!(legacy.code, 0, "{}\n{}", legacy.stdout, legacy.stderr);
    assert!(!legacy.stdout.contains("data changed"), "{}", legacy.stdout);
    assert_eq!(
        std::fs::read(exp.join("data-inventory.json")).unwrap(),
        bytes
    );

    // relabel a3, modify b2, add new.png; the second job "crashed" and runs again
    let csv = std::fs::read_to_string(dir.path().join("m.csv")).unwrap();
    let csv = csv.replace("img/a3.png,a", "img/a3.png,b") + "img/new.png,a\n";
    std::fs::write(dir.path().join("m.csv"), csv).unwrap();
    png(&dir.path().join("img/b2.png"), 77);
    png(&dir.path().join("img/new.png"), 120);
    crash(&exp, &ids[1]);
    let changed = run(dir.path(), &s);
    assert_eq!(changed.code, 0, "{}\n{}", changed.stdout, changed.stderr);
    let lines = warning_lines(&changed.stdout).unwrap_or_else(|| panic!("{}", changed.stdout));
    assert_eq!(
        lines,
        vec![
            "1 image added (train/img/new.png)",
            "1 image relabelled (train/img/a3.png: a → b)",
            "1 image modified (train/img/b2.png)",
            "finished jobs are kept; each job's job.json records the data_hash it was trained on",
        ],
        "{}",
        changed.stdout
    );
    // the warning comes before any job runs
    let warned = changed.stdout.find("data changed").unwrap();
    assert!(
        changed.stdout[..warned]
            .lines()
            .all(|l| !l.contains(&ids[1])),
        "{}",
        changed.stdout
    );
    let l = ledger(&exp);
    assert_eq!(l["jobs"][&ids[0]]["state"], "done");
    assert_eq!(l["jobs"][&ids[1]]["state"], "done");
    // the kept job saw the old data, the re-run one the new
    assert_eq!(job_json(&exp, &ids[0])["data_hash"], hash.as_str());
    let new_hash = job_json(&exp, &ids[1])["data_hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(new_hash.len(), 64);
    assert_ne!(new_hash, hash);
    // the inventory still describes the data the experiment started on: the next run warns again
    assert_eq!(stored(&exp).hash(), hash);
    let later = run(dir.path(), &s);
    assert_eq!(later.code, 0, "{}\n{}", later.stdout, later.stderr);
    assert_eq!(warning_lines(&later.stdout), Some(lines));
    assert!(later.stdout.contains(&new_hash[..12]), "{}", later.stdout);
}

#[test]
fn stale_folds_are_still_an_error_after_the_warning() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());
    let s = write_spec(dir.path(), &spec("folds = 2", ""));
    let exp: PathBuf = dir.path().join("runs/ident");
    let first = run(dir.path(), &s);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let ids = job_ids(&exp);
    assert_eq!(ids.len(), 2);
    std::fs::remove_file(dir.path().join("img/a1.png")).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("m.csv")).unwrap();
    std::fs::write(dir.path().join("m.csv"), csv.replace("img/a1.png,a\n", "")).unwrap();
    crash(&exp, &ids[1]);
    let r = run_spec(dir.path(), &s, &["--retries", "0"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        warning_lines(&r.stdout)
            .unwrap_or_default()
            .first()
            .map(String::as_str),
        Some("1 image removed (train/img/a1.png)"),
        "{}",
        r.stdout
    );
    let l = ledger(&exp);
    assert_eq!(l["jobs"][&ids[0]]["state"], "done");
    assert_eq!(l["jobs"][&ids[1]]["state"], "failed");
    let reason = l["jobs"][&ids[1]]["reason"].as_str().unwrap();
    assert!(
        reason.contains("the stored folds cover 12 images but the data has 11"),
        "{reason}"
    );
    assert!(
        r.stdout.find("data changed").unwrap() < r.stdout.find("failed").unwrap(),
        "{}",
        r.stdout
    );
}
