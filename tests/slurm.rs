//! `--backend slurm` on a real Slurm: the single-node cluster of `scripts/slurm-local.sh`. The
//! cluster tests are skipped where no Slurm answers, unless `ASSAY_REQUIRE_SLURM=1` (as in CI),
//! where they fail instead.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::cli::{assay, repo};
use serde_json::Value;

fn sweep_spec() -> PathBuf {
    repo().join("experiments/quickstart-sweep.toml")
}

/// The cluster's two CPUs are shared by the tests: most take it together, the one that needs
/// two tasks to run side by side takes it alone.
static CLUSTER: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn share_cluster() -> std::sync::RwLockReadGuard<'static, ()> {
    CLUSTER.read().unwrap_or_else(|e| e.into_inner())
}

/// Whether a Slurm cluster answers here; without one the test is skipped, or fails when
/// `ASSAY_REQUIRE_SLURM=1`.
fn slurm_here() -> bool {
    // Asked once: later, while other tests cancel their tasks, the node may be completing
    // them (`comp`), which is no reason to skip or fail.
    static UP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let up = *UP.get_or_init(|| {
        Command::new("sinfo")
            .args(["-h", "-o", "%t"])
            .output()
            .is_ok_and(|o| {
                o.status.success()
                    && String::from_utf8_lossy(&o.stdout).lines().any(|l| {
                        let state = l.trim().trim_end_matches(['+', '-']);
                        ["idle", "mix", "alloc", "comp"].contains(&state)
                    })
            })
    });
    if !up {
        assert!(
            std::env::var("ASSAY_REQUIRE_SLURM").as_deref() != Ok("1"),
            "ASSAY_REQUIRE_SLURM=1 but no Slurm answers: start one with scripts/slurm-local.sh start --gpus 2"
        );
        eprintln!("skipped: no Slurm here (scripts/slurm-local.sh start --gpus 2)");
    }
    up
}

/// Whether the cluster has GPUs to hand out (the fake ones of `slurm-local.sh --gpus 2`).
fn gpus_here() -> bool {
    Command::new("sinfo")
        .args(["-h", "-o", "%G"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("gpu:"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every job's final metrics, by job id.
fn finals(experiment: &Path) -> BTreeMap<String, Value> {
    std::fs::read_dir(experiment)
        .expect("the experiment folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("metrics.json").exists())
        .map(|p| {
            let id = p.file_name().unwrap().to_string_lossy().into_owned();
            (id, read_json(&p.join("metrics.json"))["final"].clone())
        })
        .collect()
}

/// The quickstart sweep's final metrics from the local backend, computed once.
fn local_finals() -> &'static BTreeMap<String, Value> {
    static FINALS: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    FINALS.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let spec = sweep_spec();
        let r = assay(
            tmp.path(),
            &["run", spec.to_str().unwrap(), "--runs-dir", "runs"],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let f = finals(&tmp.path().join("runs/quickstart-sweep"));
        assert_eq!(f.len(), 12);
        f
    })
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a job's `events.jsonl` has a report matching `pred`.
fn has_event(job: &Path, pred: impl Fn(&Value) -> bool) -> bool {
    std::fs::read_to_string(job.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|v| pred(&v))
}

fn epoch_reported(job: &Path, epoch: u64) -> bool {
    has_event(job, |v| {
        v["event"] == "epoch" && v["epoch"].as_u64() == Some(epoch)
    })
}

fn resumed_after(job: &Path, epoch: u64) -> bool {
    has_event(job, |v| {
        v["event"] == "started" && v["resumed_from"].as_u64() == Some(epoch)
    })
}

/// The job ids of the quickstart sweep's plan, in plan (array task) order.
fn planned_ids() -> Vec<String> {
    let spec = sweep_spec();
    let r = assay(&repo(), &["plan", spec.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan: Value = serde_json::from_str(&r.stdout).unwrap();
    plan["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect()
}

/// `assay run <the sweep> --runs-dir runs extra...` in `cwd`, with job `slow` pausing `seconds`
/// after its first epoch's checkpoint (long enough to be caught running).
fn run_sweep_pausing(cwd: &Path, extra: &[&str], slow: &str, seconds: u32) -> Command {
    let spec = sweep_spec();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_assay"));
    cmd.current_dir(cwd)
        .args(["run", spec.to_str().unwrap(), "--runs-dir", "runs"])
        .args(extra)
        .env(
            "ASSAY_FAULT_PAUSE_AFTER_EPOCH",
            format!("{slow}:1:{seconds}"),
        );
    cmd
}

fn scontrol(args: &[&str]) {
    let out = Command::new("scontrol").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "scontrol {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Cancels what a test left in Slurm (follow-up jobs) before its folder goes.
fn cancel_leftovers(ledger: &Value) {
    let ids: Vec<String> = ledger["slurm"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| [s["array"].as_u64(), s["follow_up"].as_u64()])
        .flatten()
        .map(|id| id.to_string())
        .collect();
    let _ = Command::new("scancel").arg("--quiet").args(&ids).output();
}

#[test]
fn a_sweep_through_a_slurm_array_ends_with_the_local_runs_metrics() {
    if !slurm_here() {
        return;
    }
    let _cluster = share_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let spec = sweep_spec();
    let r = assay(
        tmp.path(),
        &[
            "run",
            spec.to_str().unwrap(),
            "--runs-dir",
            "runs",
            "--backend",
            "slurm",
            "--wait",
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("submitted 12 job(s) to Slurm as array"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("best trial 3"), "{}", r.stdout);
    let exp = tmp.path().join("runs/quickstart-sweep");
    assert!(exp.join("report.html").exists());
    let ledger = read_json(&exp.join("ledger.json"));
    cancel_leftovers(&ledger);
    let submissions = ledger["slurm"].as_array().unwrap();
    assert_eq!(submissions.len(), 1, "one array for the whole sweep");
    let array = submissions[0]["array"].as_u64().unwrap();
    assert_eq!(submissions[0]["jobs"].as_array().unwrap().len(), 12);
    // Every job ran as its own task of that array, and ends with the local run's metrics.
    for (i, id) in planned_ids().iter().enumerate() {
        let job = read_json(&exp.join(id).join("job.json"));
        assert_eq!(job["slurm"]["array_job_id"], array.to_string(), "{job}");
        assert_eq!(job["slurm"]["array_task_id"], i.to_string(), "{job}");
        assert_eq!(ledger["jobs"][id]["state"], "done");
    }
    assert_eq!(&finals(&exp), local_finals());
}

#[test]
fn a_cancelled_task_alone_runs_again_and_the_sweep_ends_as_the_local_run() {
    if !slurm_here() {
        return;
    }
    let _cluster = share_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let spec = sweep_spec();
    let ids = planned_ids();
    let victim = ids[4].clone();
    // Without --wait: `assay run` submits and returns; the follow-up job records the ends.
    // The victim pauses after it reported its first checkpointed epoch, long enough that the
    // refused local run below and the cancel come within the pause on a loaded machine.
    let out = run_sweep_pausing(tmp.path(), &["--backend", "slurm"], &victim, 30)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("12 job(s) in Slurm"), "{stdout}");
    let exp = tmp.path().join("runs/quickstart-sweep");
    let ledger_path = exp.join("ledger.json");
    let task = read_json(&ledger_path)["jobs"][&victim]["slurm"].clone();
    let task = format!("{}_{}", task["array"], task["task"]);
    // Cancelled while it runs: after its first epoch's checkpoint, in the pause that follows.
    wait_until("the first epoch", Duration::from_secs(180), || {
        epoch_reported(&exp.join(&victim), 1)
    });
    // Meanwhile the folder cannot be run here: its jobs are Slurm's.
    let local = assay(
        tmp.path(),
        &["run", spec.to_str().unwrap(), "--runs-dir", "runs"],
    );
    assert_eq!(local.code, 2, "{}", local.stderr);
    assert!(
        local.stderr.contains("still queued or running in Slurm"),
        "{}",
        local.stderr
    );
    let status = Command::new("scancel").arg(&task).status().unwrap();
    assert!(status.success());
    // The follow-up job records the others as done and the cancelled one as pending, and
    // starts nothing again: a cancelled job waits for the user.
    wait_until("the follow-up's turn", Duration::from_secs(180), || {
        let l = read_json(&ledger_path);
        exp.join("report.json").exists()
            && l["jobs"][&victim]["state"] == "pending"
            && l["jobs"]
                .as_object()
                .unwrap()
                .values()
                .filter(|e| e["state"] == "done")
                .count()
                == 11
    });
    let ledger = read_json(&ledger_path);
    assert_eq!(ledger["slurm"].as_array().unwrap().len(), 1, "{ledger}");
    assert!(
        ledger["jobs"][&victim]["reason"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{ledger}"
    );
    let status = assay(tmp.path(), &["status", exp.to_str().unwrap()]);
    assert!(
        status.stdout.contains("11 done, 0 running, 1 pending"),
        "{}",
        status.stdout
    );

    // Running it again submits only the cancelled job, which goes on from its checkpoint.
    let r = assay(
        tmp.path(),
        &[
            "run",
            spec.to_str().unwrap(),
            "--runs-dir",
            "runs",
            "--backend",
            "slurm",
            "--wait",
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("submitted 1 job(s) to Slurm"),
        "{}",
        r.stdout
    );
    let ledger = read_json(&ledger_path);
    cancel_leftovers(&ledger);
    let submissions = ledger["slurm"].as_array().unwrap();
    assert_eq!(submissions.len(), 2);
    assert_eq!(submissions[1]["jobs"], serde_json::json!([victim]));
    assert!(
        resumed_after(&exp.join(&victim), 1),
        "it resumed after epoch 1: {}\n{}",
        std::fs::read_to_string(exp.join(&victim).join("events.jsonl")).unwrap_or_default(),
        ledger["jobs"][&victim]
    );
    assert_eq!(&finals(&exp), local_finals());
}

#[test]
fn assay_cancel_stops_the_array_and_its_follow_up_and_leaves_the_ledger_consistent() {
    if !slurm_here() {
        return;
    }
    let _cluster = share_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let ids = planned_ids();
    let out = run_sweep_pausing(
        tmp.path(),
        &["--backend", "slurm", "--max-running", "1"],
        &ids[0],
        8,
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exp = tmp.path().join("runs/quickstart-sweep");
    wait_until("the first epoch", Duration::from_secs(180), || {
        epoch_reported(&exp.join(&ids[0]), 1)
    });
    let r = assay(tmp.path(), &["cancel", exp.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("cancelled Slurm job(s)"), "{}", r.stdout);
    let ledger = read_json(&exp.join("ledger.json"));
    let submission = &ledger["slurm"][0];
    let (array, follow_up) = (
        submission["array"].as_u64().unwrap(),
        submission["follow_up"].as_u64().unwrap(),
    );
    // Nothing of it is left queued or running in Slurm, the follow-up included.
    let out = Command::new("squeue")
        .args([
            "-h",
            "-r",
            "-j",
            &format!("{array},{follow_up}"),
            "-t",
            "PENDING,RUNNING",
            "-o",
            "%i",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "still in Slurm"
    );
    // Every job is pending, none running: the one that ran keeps its checkpoint to go on from.
    for id in &ids {
        let e = &ledger["jobs"][id];
        assert_eq!(e["state"], "pending", "{id}: {e}");
        assert!(
            e["reason"].as_str().unwrap().contains("cancelled"),
            "{id}: {e}"
        );
    }
    assert!(exp.join(&ids[0]).join("checkpoint.safetensors").exists());
    let status = assay(tmp.path(), &["status", exp.to_str().unwrap()]);
    assert!(status.stdout.contains("not running"), "{}", status.stdout);
    assert!(
        status.stdout.contains("0 done, 0 running, 12 pending"),
        "{}",
        status.stdout
    );
    let again = assay(tmp.path(), &["cancel", exp.to_str().unwrap()]);
    assert!(
        again.stdout.contains("nothing to cancel"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_requeued_task_goes_on_from_its_checkpoint() {
    if !slurm_here() {
        return;
    }
    let _cluster = share_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let ids = planned_ids();
    let victim = ids[2].clone();
    let run = run_sweep_pausing(tmp.path(), &["--backend", "slurm", "--wait"], &victim, 8)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exp = tmp.path().join("runs/quickstart-sweep");
    wait_until("the first epoch", Duration::from_secs(180), || {
        epoch_reported(&exp.join(&victim), 1)
    });
    let task = read_json(&exp.join("ledger.json"))["jobs"][&victim]["slurm"].clone();
    let task = format!("{}_{}", task["array"], task["task"]);
    // As a node failure or preemption would: Slurm stops the task and queues it again.
    scontrol(&["requeue", &task]);
    // A requeued task waits about two minutes before it may start; let it start now.
    wait_until("the requeued task to wait", Duration::from_secs(60), || {
        let out = Command::new("squeue")
            .args(["-h", "-j", &task, "-o", "%T"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "PENDING"
    });
    scontrol(&["update", &format!("jobid={task}"), "StartTime=now"]);
    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ledger = read_json(&exp.join("ledger.json"));
    cancel_leftovers(&ledger);
    let job = read_json(&exp.join(&victim).join("job.json"));
    assert_eq!(job["slurm"]["restart_count"], "1", "{job}");
    assert!(
        resumed_after(&exp.join(&victim), 1),
        "it went on after epoch 1, not from epoch 0"
    );
    assert_eq!(
        ledger["jobs"][&victim]["attempts"], 1,
        "Slurm ran it again, not assay"
    );
    assert_eq!(ledger["slurm"].as_array().unwrap().len(), 1);
    assert_eq!(&finals(&exp), local_finals());
}

#[test]
fn a_task_past_its_time_limit_is_retried_from_its_checkpoint() {
    if !slurm_here() {
        return;
    }
    let _cluster = share_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let ids = planned_ids();
    let victim = ids[7].clone();
    // One minute is Slurm's least limit: the victim sleeps past it after its first epoch, and
    // past the kill that follows the limit's SIGTERM (Slurm checks limits every 30 s or so,
    // then waits KillWait, 30 s), so that it ends with its first epoch's checkpoint.
    let out = run_sweep_pausing(
        tmp.path(),
        &["--backend", "slurm", "--wait", "--time", "1"],
        &victim,
        150,
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("job {victim} failed (Slurm task")),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "reached its time limit (1); another try goes on from its last checkpoint); retrying"
        ),
        "{stdout}"
    );
    let exp = tmp.path().join("runs/quickstart-sweep");
    let ledger = read_json(&exp.join("ledger.json"));
    cancel_leftovers(&ledger);
    assert_eq!(ledger["jobs"][&victim]["attempts"], 2);
    let submissions = ledger["slurm"].as_array().unwrap();
    assert_eq!(submissions.len(), 2);
    assert_eq!(submissions[1]["jobs"], serde_json::json!([victim]));
    assert!(
        resumed_after(&exp.join(&victim), 1),
        "the retry went on after epoch 1"
    );
    assert_eq!(&finals(&exp), local_finals());
}

#[test]
fn asha_tasks_decide_at_their_rungs_as_the_local_run_does() {
    if !slurm_here() {
        return;
    }
    let _cluster = share_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(sweep_spec())
        .unwrap()
        .replace(
            "method = \"grid\"",
            "method = \"grid\"\npruning = \"asha\"\nmin_epochs = 1",
        )
        .replace(
            "\"data/",
            &format!("\"{}/experiments/data/", repo().display()),
        );
    let spec = tmp.path().join("asha.toml");
    std::fs::write(&spec, text).unwrap();
    let spec = spec.to_str().unwrap();
    // One job at a time in plan order on both backends: the rungs see the same scores in the
    // same order, so the decisions must agree.
    let local = assay(
        tmp.path(),
        &["run", spec, "--runs-dir", "local", "--jobs", "1"],
    );
    assert_eq!(local.code, 0, "{}", local.stderr);
    let r = assay(
        tmp.path(),
        &[
            "run",
            spec,
            "--runs-dir",
            "slurm",
            "--backend",
            "slurm",
            "--wait",
            "--max-running",
            "1",
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let local = read_json(&tmp.path().join("local/quickstart-sweep/ledger.json"));
    let slurm = read_json(&tmp.path().join("slurm/quickstart-sweep/ledger.json"));
    cancel_leftovers(&slurm);
    let states = |l: &Value| -> BTreeMap<String, Value> {
        l["jobs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(id, e)| (id.clone(), e["state"].clone()))
            .collect()
    };
    assert_eq!(states(&slurm), states(&local));
    assert!(states(&slurm).values().any(|s| s == "pruned"), "{slurm}");
    assert_eq!(
        slurm["rungs"], local["rungs"],
        "the same decisions at the rungs"
    );
    assert!(tmp
        .path()
        .join("slurm/quickstart-sweep/rungs.json")
        .exists());
}

#[test]
fn each_task_sees_its_own_gpu() {
    if !slurm_here() {
        return;
    }
    let _cluster = CLUSTER.write().unwrap_or_else(|e| e.into_inner());
    if !gpus_here() {
        assert!(
            std::env::var("ASSAY_REQUIRE_SLURM").as_deref() != Ok("1"),
            "the cluster has no GPUs: start it with scripts/slurm-local.sh start --gpus 2"
        );
        eprintln!("skipped: the cluster has no GPUs (scripts/slurm-local.sh start --gpus 2)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = sweep_spec();
    let first = {
        let r = assay(
            &repo(),
            &[
                "plan",
                spec.to_str().unwrap(),
                "--json",
                "--set",
                "train.epochs=1",
            ],
        );
        let plan: Value = serde_json::from_str(&r.stdout).unwrap();
        plan["jobs"][0]["id"].as_str().unwrap().to_string()
    };
    // The first task holds its GPU a while, so that others run beside it.
    let out = run_sweep_pausing(
        tmp.path(),
        &[
            "--backend",
            "slurm",
            "--wait",
            "--gpus-per-job",
            "1",
            "--set",
            "train.epochs=1",
        ],
        &first,
        10,
    )
    // No CUDA in this build: the tasks' GPUs are stood in for, their jobs train on the CPU.
    .env("ASSAY_FAKE_GPUS", "1")
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exp = tmp.path().join("runs/quickstart-sweep");
    let ledger = read_json(&exp.join("ledger.json"));
    cancel_leftovers(&ledger);
    let script = std::fs::read_to_string(exp.join("slurm/array-0.sh")).unwrap();
    assert!(script.contains("#SBATCH --gres=gpu:1\n"), "{script}");
    // (device, start, end) of every task.
    let spans: Vec<(String, f64, f64)> = ledger["jobs"]
        .as_object()
        .unwrap()
        .keys()
        .map(|id| {
            let job = read_json(&exp.join(id).join("job.json"));
            let device = job["slurm"]["cuda_visible_devices"]
                .as_str()
                .unwrap_or_else(|| panic!("no CUDA_VISIBLE_DEVICES in {job}"))
                .to_string();
            assert!(device == "0" || device == "1", "{job}");
            // The task trains on the first (only) GPU it sees.
            assert_eq!(
                job["device"], "cuda:0 (simulated on the CPU: ASSAY_FAKE_GPUS)",
                "{job}"
            );
            (
                device,
                job["started_at"].as_f64().unwrap(),
                job["finished_at"].as_f64().unwrap(),
            )
        })
        .collect();
    let mut overlapping = 0;
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            if a.1 < b.2 && b.1 < a.2 {
                overlapping += 1;
                assert_ne!(a.0, b.0, "two tasks at once shared GPU {}", a.0);
            }
        }
    }
    assert!(overlapping > 0, "no two tasks ran at once: {spans:?}");
}

#[test]
fn a_dry_run_prints_the_batch_scripts_and_submits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = sweep_spec();
    let r = assay(
        tmp.path(),
        &[
            "run",
            spec.to_str().unwrap(),
            "--runs-dir",
            "runs",
            "--backend",
            "slurm",
            "--dry-run",
            "--partition",
            "gpu",
            "--time",
            "01:30:00",
            "--mem",
            "4G",
            "--max-running",
            "3",
            "--sbatch-arg=--constraint=a100",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for line in [
        "#SBATCH --array=0-11%3",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=01:30:00",
        "#SBATCH --mem=4G",
        "#SBATCH --constraint=a100",
        "#SBATCH --requeue",
    ] {
        assert!(
            r.stdout.lines().any(|l| l == line),
            "no {line:?} in\n{}",
            r.stdout
        );
    }
    let ids = planned_ids();
    assert!(
        r.stdout.contains(&format!("0) job={} ;;", ids[0])),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("--slurm-follow-up"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("sbatch --parsable --dependency=afterany:<array job id>"),
        "{}",
        r.stdout
    );
    assert!(
        !tmp.path().join("runs").exists(),
        "a dry run writes nothing"
    );
}

#[test]
fn slurm_options_are_checked_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = sweep_spec();
    let s = spec.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--backend", "slurm", "--time", "1h"],
            "--time: \"1h\" is not a Slurm time limit",
        ),
        (
            vec!["--backend", "slurm", "--mem", "lots"],
            "--mem: \"lots\" is not an amount of memory",
        ),
        (
            vec!["--backend", "slurm", "--sbatch-arg", "constraint=a100"],
            "is not an sbatch option",
        ),
        (vec!["--dry-run"], "--dry-run and --wait are for Slurm"),
    ] {
        let mut all = vec!["run", s, "--runs-dir", "runs"];
        all.extend(args);
        let r = assay(tmp.path(), &all);
        assert_eq!(r.code, 2, "{all:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{all:?}: {}", r.stderr);
    }
    // The spec's own [slurm] keys name file:line:col.
    let text = std::fs::read_to_string(&spec).unwrap();
    let line = text.lines().count() + 5;
    let text =
        format!("{text}\n[run]\nbackend = \"slurm\"\n[slurm]\ntime = \"soon\"\ncpus_per_tsk = 2\n");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        text.replace(
            "\"data/",
            &format!("\"{}/experiments/data/", repo().display()),
        ),
    )
    .unwrap();
    let r = assay(tmp.path(), &["validate", bad.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("bad.toml:{line}:8")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("\"soon\" is not a Slurm time limit"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("unknown key `cpus_per_tsk` in [slurm]"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("did you mean `cpus_per_task`?"),
        "{}",
        r.stderr
    );
}
