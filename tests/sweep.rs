//! Sweeps, cross-validation and the crash-safe orchestrator, through the binary.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{assay, ledger, outcome, repo, run_spec, small_mnist, starts, write_spec};

fn sweep_spec(name: &str, data: &str, epochs: usize, sweep: &str) -> String {
    format!(
        r#"name = "{name}"
seed = 2
{data}
[split]
folds = 2

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
kind = "adam"
lr = 0.003

[train]
epochs = {epochs}
batch_size = 32

[sweep]
{sweep}
"#
    )
}

fn job_dirs(experiment: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(experiment)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("job.json").exists())
        .collect();
    v.sort();
    v
}

#[test]
fn plan_of_a_grid_with_folds_and_repeats_matches_the_snapshot() {
    let spec = repo().join("tests/fixtures/sweep-plan.toml");
    let r = assay(&repo(), &["plan", spec.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let snapshot = repo().join("tests/snapshots/sweep-plan.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &r.stdout).unwrap();
    }
    let expected =
        std::fs::read_to_string(&snapshot).expect("snapshot exists (UPDATE_SNAPSHOTS=1 writes it)");
    assert_eq!(r.stdout, expected);
    assert!(
        r.stdout.starts_with(
            "experiment plan-snapshot: 4 trial(s) × 3 fold(s) × 2 repeat(s) = 24 job(s)\n"
        ),
        "{}",
        r.stdout
    );
    let json = assay(&repo(), &["plan", spec.to_str().unwrap(), "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let ids: std::collections::BTreeSet<&str> = plan["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 24, "job ids are unique");
}

#[test]
fn sweep_errors_point_into_the_sweep_section() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 100, 20);
    let cases = [
        (
            "\"optimizer.lrr\" = [0.1, 0.2]",
            "error: unknown key `lrr` in [optimizer]",
            "\"optimizer.lrr\"",
            "= help: did you mean `lr`?",
        ),
        (
            "\"optimizer.lr\" = [0.1, \"fast\"]",
            "error: expected a number, found the string \"fast\"",
            "\"fast\"",
            "= key: optimizer.lr",
        ),
        (
            "\"optimizer.lr\" = { loguniform = [1e-4, 1e-2] }",
            "error: `loguniform` draws random values; a grid needs a list",
            "loguniform",
            "= key: sweep.parameters.optimizer.lr.loguniform",
        ),
        (
            "\"seed\" = [1, 2]",
            "error: `seed` cannot be swept",
            "\"seed\"",
            "use sweep.repeats",
        ),
    ];
    for (param, message, marked, hint) in cases {
        let text = sweep_spec(
            "bad-sweep",
            &data,
            1,
            &format!("method = \"grid\"\n[sweep.parameters]\n{param}\n"),
        );
        let spec = write_spec(dir.path(), &text);
        let r = assay(dir.path(), &["validate", spec.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{param}: {}", r.stderr);
        assert!(r.stderr.starts_with(message), "{param}: {}", r.stderr);
        let line = text.lines().position(|l| l.contains(param)).unwrap() + 1;
        let col = text.lines().nth(line - 1).unwrap().find(marked).unwrap() + 1;
        assert!(
            r.stderr.contains(&format!("spec.toml:{line}:{col}\n")),
            "{param}: expected {line}:{col} in {}",
            r.stderr
        );
        assert!(r.stderr.contains(hint), "{param}: {}", r.stderr);
    }
}

#[test]
fn a_diverging_point_fails_while_the_others_finish() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 300, 50);
    let text = sweep_spec(
        "diverge-sweep",
        &data,
        2,
        "[sweep.parameters]\n\"optimizer.kind\" = [\"sgd\"]\n\"optimizer.lr\" = [0.01, 1e30]\n",
    );
    let spec = write_spec(dir.path(), &text);
    let r = run_spec(dir.path(), &spec, &["--jobs", "2"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let exp = dir.path().join("runs/diverge-sweep");
    let status = assay(dir.path(), &["status", exp.to_str().unwrap(), "--json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let s: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(s["live"], false);
    for job in s["jobs"].as_array().unwrap() {
        let expected = if job["trial"] == 0 { "done" } else { "failed" };
        assert_eq!(job["state"], expected, "{job}");
        if expected == "failed" {
            assert!(
                job["reason"]
                    .as_str()
                    .unwrap()
                    .contains("training diverged"),
                "{job}"
            );
        }
        assert!(Path::new(job["folder"].as_str().unwrap())
            .join("metrics.json")
            .exists());
    }
    assert!(
        r.stdout.contains("2 done, 2 failed, 0 pruned"),
        "{}",
        r.stdout
    );
}

#[test]
fn asha_prunes_weak_trials_and_records_its_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 400, 50);
    // Trial 0 learns, trial 1 barely moves: at the rung after epoch 1 trial 1 is behind.
    let sweep = "pruning = \"asha\"\nmin_epochs = 1\nreduction_factor = 2\n[sweep.parameters]\n\"optimizer.lr\" = [0.003, 1e-7]\n";
    let text =
        sweep_spec("asha", &data, 3, sweep).replace("folds = 2", "folds = 2\nstratify = true");
    let spec = write_spec(dir.path(), &text);
    let r = run_spec(dir.path(), &spec, &["--jobs", "1"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let exp = dir.path().join("runs/asha");
    let l = ledger(&exp);
    let mut states: Vec<(u64, String)> = l["jobs"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| {
            (
                e["trial"].as_u64().unwrap(),
                e["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    states.sort();
    assert_eq!(
        states,
        vec![
            (0, "done".into()),
            (0, "done".into()),
            (1, "pruned".into()),
            (1, "pruned".into())
        ],
        "{l}"
    );
    let rung = l["rungs"]["1"].as_object().expect("rung 1 recorded");
    assert_eq!(rung.len(), 4, "{l}");
    for dir in job_dirs(&exp) {
        let m = common::cli::metrics(&dir);
        if m["status"] == "pruned" {
            assert_eq!(m["history"].as_array().unwrap().len(), 1);
            assert!(
                m["final"].get("test").is_none(),
                "pruned jobs are not evaluated on the test set"
            );
        }
    }
}

#[test]
fn a_second_live_run_and_a_changed_spec_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 1500, 50);
    let text = sweep_spec(
        "locked",
        &data,
        6,
        "[sweep.parameters]\n\"optimizer.lr\" = [0.003]\n",
    );
    let spec = write_spec(dir.path(), &text);
    let mut first = Command::new(env!("CARGO_BIN_EXE_assay"))
        .current_dir(dir.path())
        .args([
            "run",
            spec.to_str().unwrap(),
            "--runs-dir",
            "runs",
            "--threads",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let exp = dir.path().join("runs/locked");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !exp.join("lock").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = assay(
        dir.path(),
        &["run", spec.to_str().unwrap(), "--runs-dir", "runs"],
    );
    let first_status = first.wait().unwrap();
    assert_eq!(second.code, 2, "{}\n{}", second.stdout, second.stderr);
    assert!(
        second.stderr.contains("another `assay run` (pid"),
        "{}",
        second.stderr
    );
    assert!(first_status.success());

    let changed = run_spec(dir.path(), &spec, &["--set", "train.batch_size=16"]);
    assert_eq!(changed.code, 2, "{}", changed.stderr);
    assert!(
        changed.stderr.contains("the spec changed since"),
        "{}",
        changed.stderr
    );
    assert!(
        changed.stderr.contains("train.batch_size: 32 → 16"),
        "{}",
        changed.stderr
    );
    // Running the unchanged spec again finds everything done.
    let again = assay(
        dir.path(),
        &["run", spec.to_str().unwrap(), "--runs-dir", "runs"],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("2 jobs; 2 already finished"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_killed_sweep_resumes_and_ends_as_if_nothing_happened() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 1500, 100);
    let text = sweep_spec(
        "killed",
        &data,
        5,
        "[sweep.parameters]\n\"optimizer.lr\" = [0.003, 0.001]\n",
    );
    let spec = write_spec(dir.path(), &text);
    let spec_arg = spec.to_str().unwrap();

    // The reference: the same sweep, never interrupted.
    let reference = assay(
        dir.path(),
        &["run", spec_arg, "--runs-dir", "reference", "--jobs", "2"],
    );
    assert_eq!(
        reference.code, 0,
        "{}\n{}",
        reference.stdout, reference.stderr
    );

    let mut run = Command::new(env!("CARGO_BIN_EXE_assay"))
        .current_dir(dir.path())
        .args(["run", spec_arg, "--runs-dir", "runs", "--jobs", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let exp = dir.path().join("runs/killed");
    // Kill it once a job has finished and another is part-way through.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut killed_mid_job = false;
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(exp.join("ledger.json")) {
            if let Ok(l) = serde_json::from_str::<serde_json::Value>(&text) {
                let jobs = l["jobs"].as_object().unwrap();
                let done = jobs.values().filter(|e| e["state"] == "done").count();
                let mid = jobs.values().any(|e| {
                    e["state"] == "running"
                        && e["epochs_done"].as_u64().unwrap() >= 1
                        && e["epochs_done"].as_u64().unwrap() < 5
                });
                if done >= 1 && mid {
                    killed_mid_job = true;
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(
        killed_mid_job,
        "the sweep never reached a state with one job done and another mid-way"
    );
    let before = ledger(&exp);
    let done_before: Vec<String> = before["jobs"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, e)| e["state"] == "done")
        .map(|(id, _)| id.clone())
        .collect();
    let interrupted: Vec<String> = before["jobs"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, e)| e["state"] == "running" && e["epochs_done"].as_u64().unwrap() >= 1)
        .map(|(id, _)| id.clone())
        .collect();
    assert!(!interrupted.is_empty());

    let again = assay(
        dir.path(),
        &["run", spec_arg, "--runs-dir", "runs", "--jobs", "2"],
    );
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    let after = ledger(&exp);
    for (id, e) in after["jobs"].as_object().unwrap() {
        assert_eq!(e["state"], "done", "{id}: {e}");
        let job_dir = exp.join(id);
        if done_before.contains(id) {
            assert_eq!(
                starts(&job_dir),
                1,
                "{id} finished before the kill and must not run again"
            );
        }
        if interrupted.contains(id) {
            let log = std::fs::read_to_string(job_dir.join("log.txt")).unwrap();
            assert!(
                log.contains(&format!("resuming job {id} after epoch")),
                "{id} resumed from its checkpoint:\n{log}"
            );
            // a finished job keeps its last checkpoint (more epochs continue from it), only
            assert!(job_dir.join("checkpoint.safetensors").exists());
            assert!(!job_dir.join("checkpoint.previous.safetensors").exists());
        }
        let resumed = common::cli::metrics(&job_dir);
        let clean = common::cli::metrics(&dir.path().join("reference/killed").join(id));
        assert_eq!(
            resumed["final"], clean["final"],
            "{id}: final metrics differ from the uninterrupted run"
        );
        assert_eq!(resumed["best_epoch"], clean["best_epoch"]);
    }
}

#[test]
fn refit_retrains_the_best_trial_on_all_training_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 300, 60);
    let text = sweep_spec(
        "refit",
        &data,
        2,
        "[sweep.parameters]\n\"optimizer.lr\" = [1e-7, 0.003]\n",
    )
    .replace("folds = 2", "folds = 2\nrefit = true");
    let spec = write_spec(dir.path(), &text);
    let r = run_spec(dir.path(), &spec, &["--jobs", "2"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("refit: trial 1 retrained on all training data"),
        "{}",
        r.stdout
    );
    let exp = dir.path().join("runs/refit");
    let l = ledger(&exp);
    let refits: Vec<(&String, &serde_json::Value)> = l["jobs"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, e)| e["refit"] == true)
        .collect();
    assert_eq!(refits.len(), 1, "{l}");
    let (id, entry) = refits[0];
    assert_eq!(entry["state"], "done");
    assert_eq!(entry["trial"], 1);
    let m = common::cli::metrics(&exp.join(id));
    assert!(m["final"]["test"]["accuracy"].is_f64(), "{m}");
    assert!(
        m["final"].get("val").is_none(),
        "the refit has no validation split: {m}"
    );
    let job: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exp.join(id).join("job.json")).unwrap())
            .unwrap();
    assert_eq!(job["fold"], serde_json::Value::Null);
    // Running again keeps the finished refit.
    let again = assay(
        dir.path(),
        &["run", spec.to_str().unwrap(), "--runs-dir", "runs"],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(common::cli::metrics(&exp.join(id)), m);
}

#[test]
fn ctrl_c_checkpoints_and_a_second_run_finishes_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 1500, 50);
    let text = sweep_spec(
        "interrupted",
        &data,
        6,
        "[sweep.parameters]\n\"optimizer.lr\" = [0.003]\n",
    );
    let spec = write_spec(dir.path(), &text);
    let spec_arg = spec.to_str().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_assay"))
        .current_dir(dir.path())
        .args(["run", spec_arg, "--runs-dir", "runs", "--jobs", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let exp = dir.path().join("runs/interrupted");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut mid_job = false;
    while Instant::now() < deadline && !mid_job {
        if let Ok(Ok(l)) = std::fs::read_to_string(exp.join("ledger.json"))
            .map(|t| serde_json::from_str::<serde_json::Value>(&t))
        {
            mid_job = l["jobs"].as_object().unwrap().values().any(|e| {
                e["state"] == "running"
                    && e["epochs_done"].as_u64().unwrap() >= 1
                    && e["epochs_done"].as_u64().unwrap() < 5
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(mid_job, "the run never got part-way through a job");
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(run.id() as i32, libc::SIGINT) };
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(
        stdout.contains("interrupted: run the same command again to resume"),
        "{stdout}"
    );
    let l = ledger(&exp);
    let states: Vec<&str> = l["jobs"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert!(!states.contains(&"running"), "{l}");
    assert!(states.contains(&"pending"), "{l}");
    assert!(!exp.join("lock").exists());
    let resumed: Vec<String> = l["jobs"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, e)| e["state"] == "pending" && e["epochs_done"].as_u64().unwrap() >= 1)
        .map(|(id, _)| id.clone())
        .collect();
    for id in &resumed {
        assert!(
            exp.join(id).join("checkpoint.safetensors").exists(),
            "{id} kept its checkpoint"
        );
    }
    let again = assay(
        dir.path(),
        &["run", spec_arg, "--runs-dir", "runs", "--jobs", "2"],
    );
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    for id in &resumed {
        let log = std::fs::read_to_string(exp.join(id).join("log.txt")).unwrap();
        assert!(log.contains("resuming job"), "{log}");
    }
    assert!(ledger(&exp)["jobs"]
        .as_object()
        .unwrap()
        .values()
        .all(|e| e["state"] == "done"));
}

#[test]
fn a_random_sweep_draws_the_same_points_from_the_same_seed() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 100, 20);
    let sweep = "method = \"random\"\ntrials = 5\n[sweep.parameters]\n\"optimizer.lr\" = { loguniform = [1e-4, 1e-2] }\n\"train.batch_size\" = { int = [16, 64, 16] }\n\"optimizer.kind\" = [\"adam\", \"sgd\"]\n";
    let spec = write_spec(dir.path(), &sweep_spec("random", &data, 1, sweep));
    let plan = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["plan", spec.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let r = assay(dir.path(), &args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    };
    let a = plan(&[]);
    assert_eq!(a, plan(&[]));
    assert_eq!(a["trials"], 5);
    assert_eq!(a["jobs"].as_array().unwrap().len(), 10);
    for job in a["jobs"].as_array().unwrap() {
        let lr = job["params"]["optimizer.lr"].as_f64().unwrap();
        assert!((1e-4..1e-2).contains(&lr), "{lr}");
        let bs = job["params"]["train.batch_size"].as_i64().unwrap();
        assert!([16, 32, 48, 64].contains(&bs), "{bs}");
        assert_eq!(job["spec"]["train"]["batch_size"].as_i64().unwrap(), bs);
    }
    let other_seed = plan(&["--set", "seed=3"]);
    assert_ne!(a["jobs"][0]["params"], other_seed["jobs"][0]["params"]);
}

#[test]
fn group_kfold_never_splits_a_group_across_folds() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("path,label,group\n");
    for i in 0..24 {
        let class = if i % 2 == 0 { "a" } else { "b" };
        let path = dir.path().join(format!("img{i}.png"));
        image::GrayImage::from_fn(8, 8, |x, y| {
            image::Luma([((x + y) as u8).wrapping_mul(i as u8 + 1)])
        })
        .save(&path)
        .unwrap();
        // Groups of three consecutive images: g0 = 0,1,2; g1 = 3,4,5; ...
        csv.push_str(&format!("img{i}.png,{class},g{}\n", i / 3));
    }
    std::fs::write(dir.path().join("train.csv"), csv).unwrap();
    let text = "name = \"groups\"\n[data]\nformat = \"csv\"\ntrain = \"train.csv\"\nimage_size = [8, 8]\nchannels = 1\n\n[split]\nfolds = 4\nfold_method = \"group-kfold\"\n\n[model]\narchitecture = \"mlp\"\nlayers = []\n\n[train]\nepochs = 1\nbatch_size = 4\n";
    let spec = write_spec(dir.path(), text);
    let r = run_spec(dir.path(), &spec, &["--jobs", "2"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let folds: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("runs/groups/folds.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(folds["method"], "group-kfold");
    let mut fold_of = [usize::MAX; 24];
    for (f, held) in folds["validation"].as_array().unwrap().iter().enumerate() {
        for i in held.as_array().unwrap() {
            fold_of[i.as_u64().unwrap() as usize] = f;
        }
    }
    assert!(
        fold_of.iter().all(|&f| f < 4),
        "every image is in a fold: {fold_of:?}"
    );
    for g in 0..8 {
        assert!(
            fold_of[3 * g] == fold_of[3 * g + 1] && fold_of[3 * g + 1] == fold_of[3 * g + 2],
            "group g{g} split: {fold_of:?}"
        );
    }
    // Without a group column the method is refused with a clear message.
    let text = text
        .replace("format = \"csv\"", "format = \"image-folder\"")
        .replace("train = \"train.csv\"", "train = \".\"");
    let spec = write_spec(dir.path(), &text);
    let r = assay(dir.path(), &["validate", spec.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("group-kfold needs groups"),
        "{}",
        r.stderr
    );
}

fn done_ids(exp: &Path) -> Vec<String> {
    let l = ledger(exp);
    let jobs = l["jobs"].as_object().unwrap();
    assert!(jobs.values().all(|e| e["state"] == "done"), "{l}");
    jobs.keys().cloned().collect()
}

#[test]
fn a_finished_sweep_grows_and_runs_only_what_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 600, 100);
    let lr = |values: &str| {
        format!(
            "repeats = {}\n[sweep.parameters]\n\"optimizer.lr\" = [{values}]\n",
            if values.contains(',') { 2 } else { 1 }
        )
    };
    let spec = write_spec(dir.path(), &sweep_spec("grows", &data, 2, &lr("0.003")));
    let spec_arg = spec.to_str().unwrap();
    let plan = |runs: &str| assay(dir.path(), &["plan", spec_arg, "--runs-dir", runs]);
    assert_eq!(run_spec(dir.path(), &spec, &[]).code, 0);
    let exp = dir.path().join("runs/grows");
    let first = done_ids(&exp);
    assert_eq!(first.len(), 2);

    // A grid value and a repeat more: the two finished jobs stay, six new ones run.
    write_spec(
        dir.path(),
        &sweep_spec("grows", &data, 2, &lr("0.001, 0.003")),
    );
    let p = plan("runs");
    assert!(
        p.stdout.contains(
            "compared with runs/grows: 2 job(s) kept, 6 new; `assay run` runs only what is new"
        ),
        "{}",
        p.stdout
    );
    assert_eq!(p.stdout.matches("  new\n").count(), 6, "{}", p.stdout);
    let grown = run_spec(dir.path(), &spec, &[]);
    assert_eq!(grown.code, 0, "{}\n{}", grown.stdout, grown.stderr);
    assert!(
        grown
            .stdout
            .contains("the plan changed: 2 job(s) kept, 6 new"),
        "{}",
        grown.stdout
    );
    assert!(
        grown.stdout.contains("8 jobs; 2 already finished"),
        "{}",
        grown.stdout
    );
    let second = done_ids(&exp);
    assert_eq!(second.len(), 8);
    for id in &first {
        assert_eq!(starts(&exp.join(id)), 1, "{id} ran again");
    }

    // One epoch more: every job continues from its last checkpoint under its new id and ends
    // as a job trained for three epochs from the start does.
    write_spec(
        dir.path(),
        &sweep_spec("grows", &data, 3, &lr("0.001, 0.003")),
    );
    let p = plan("runs");
    assert!(
        p.stdout
            .contains("0 job(s) kept, 8 continued for more epochs (2 → 3)"),
        "{}",
        p.stdout
    );
    assert_eq!(
        p.stdout.matches(" after epoch 2\n").count(),
        8,
        "{}",
        p.stdout
    );
    let longer = run_spec(dir.path(), &spec, &[]);
    assert_eq!(longer.code, 0, "{}\n{}", longer.stdout, longer.stderr);
    let third = done_ids(&exp);
    assert_eq!(third.len(), 8);
    for id in &second {
        assert!(!exp.join(id).exists(), "{id} was moved to its new id");
    }
    let reference = assay(dir.path(), &["run", spec_arg, "--runs-dir", "reference"]);
    assert_eq!(reference.code, 0, "{}", reference.stderr);
    for id in &third {
        let log = std::fs::read_to_string(exp.join(id).join("log.txt")).unwrap();
        assert!(
            log.contains(&format!("resuming job {id} after epoch 2")),
            "{log}"
        );
        assert_eq!(
            outcome(&exp.join(id)),
            outcome(&dir.path().join("reference/grows").join(id)),
            "{id}"
        );
    }

    // Fewer epochs continue nothing: refused, as any other change is.
    let shrunk = run_spec(dir.path(), &spec, &["--set", "train.epochs=2"]);
    assert_eq!(shrunk.code, 2, "{}", shrunk.stderr);
    assert!(
        shrunk.stderr.contains("train.epochs: 3 → 2"),
        "{}",
        shrunk.stderr
    );
}
