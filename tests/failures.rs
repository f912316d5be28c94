//! Failures that are the machine's, not the job's: a worker's panic reaches the ledger, `status`
//! and the report as its message and place; a full disk fails jobs as retryable and a later run
//! ends them with the metrics of an uninterrupted run; an unreadable checkpoint falls back to the
//! previous one; a second Ctrl-C leaves jobs interrupted, not failed. The faults are injected
//! through the worker's `ASSAY_FAULT_*` variables (`src/store/fault.rs`).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{assay, ledger, outcome, small_mnist, write_spec, Run};
use serde_json::Value;

fn spec(name: &str, data: &str, epochs: usize, sweep: &str) -> String {
    format!(
        "name = \"{name}\"\nseed = 4\n{data}\n[split]\nvalidation_fraction = 0.2\n\n[model]\narchitecture = \"cnn\"\nlayers = [\n  {{ type = \"conv\", filters = 4, kernel = 3, padding = 1 }},\n  {{ type = \"relu\" }},\n  {{ type = \"max_pool\", size = 2 }},\n  {{ type = \"dense\", units = 16 }},\n  {{ type = \"relu\" }},\n]\n\n[optimizer]\nkind = \"adam\"\nlr = 0.003\n\n[train]\nepochs = {epochs}\nbatch_size = 32\n{sweep}"
    )
}

/// `assay run SPEC --runs-dir RUNS extra...` in `dir` with the environment `env`.
fn run_with(dir: &Path, spec: &Path, runs: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_assay"))
        .current_dir(dir)
        .args(["run", spec.to_str().unwrap(), "--runs-dir", runs])
        .args(extra)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn jobs(l: &Value) -> Vec<(String, Value)> {
    l["jobs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn a_panic_is_reported_with_its_message_and_an_unreadable_checkpoint_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 600, 100);
    let spec_path = write_spec(dir.path(), &spec("panics", &data, 3, ""));
    let reference = run_with(dir.path(), &spec_path, "reference", &[], &[]);
    assert_eq!(reference.code, 0, "{}", reference.stderr);

    let fault = [("ASSAY_FAULT_PANIC_AFTER_EPOCH", "2")];
    let r = run_with(dir.path(), &spec_path, "runs", &["--retries", "0"], &fault);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let exp = dir.path().join("runs/panics");
    let (id, entry) = jobs(&ledger(&exp)).remove(0);
    let reason = entry["reason"].as_str().unwrap().to_string();
    assert!(
        reason.starts_with("the worker crashed (exit code 101): panicked at src/store/fault.rs:"),
        "{reason}"
    );
    assert!(
        reason.ends_with(": injected fault: a panic after the checkpoint of epoch 2"),
        "{reason}"
    );
    assert_eq!(entry["state"], "failed");
    assert_eq!(entry["retryable"], true);
    assert!(
        r.stdout.contains(&reason),
        "the run's summary names it:\n{}",
        r.stdout
    );
    let status = assay(dir.path(), &["status", exp.to_str().unwrap()]);
    assert!(status.stdout.contains(&reason), "{}", status.stdout);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(exp.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["problems"][0]["reason"], reason.as_str());
    // the worker's stderr is kept whole
    let stderr = std::fs::read_to_string(exp.join(&id).join("worker-stderr.txt")).unwrap();
    assert!(stderr.contains("RUST_BACKTRACE"), "{stderr}");

    // the last checkpoint (epoch 2) is garbage: the run falls back to the previous one (epoch 1)
    let job = exp.join(&id);
    assert!(job.join("checkpoint.previous.safetensors").exists());
    std::fs::write(job.join("checkpoint.safetensors"), b"garbage").unwrap();
    let again = run_with(dir.path(), &spec_path, "runs", &[], &[]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains(&format!(
            "warning: job {id}: cannot read the checkpoint runs/panics/{id}/checkpoint.safetensors: "
        )) && again.stdout.contains(&format!(
            "; resuming from the previous one, runs/panics/{id}/checkpoint.previous.safetensors"
        )),
        "{}",
        again.stdout
    );
    let log = std::fs::read_to_string(job.join("log.txt")).unwrap();
    assert!(
        log.contains(&format!("resuming job {id} after epoch 1")),
        "{log}"
    );
    assert_eq!(
        outcome(&job),
        outcome(&dir.path().join("reference/panics").join(&id))
    );
    // the garbage was replaced by the finished job's last checkpoint, the only one kept
    assert!(job.join("checkpoint.safetensors").exists());
    assert!(!job.join("checkpoint.previous.safetensors").exists());
}

#[test]
fn a_checkpoint_that_cannot_be_read_at_all_starts_the_job_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 400, 100);
    let spec_path = write_spec(dir.path(), &spec("restart", &data, 2, ""));
    let reference = run_with(dir.path(), &spec_path, "reference", &[], &[]);
    assert_eq!(reference.code, 0, "{}", reference.stderr);
    let fault = [("ASSAY_FAULT_PANIC_AFTER_EPOCH", "1")];
    let r = run_with(dir.path(), &spec_path, "runs", &["--retries", "0"], &fault);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let exp = dir.path().join("runs/restart");
    let (id, _) = jobs(&ledger(&exp)).remove(0);
    let job = exp.join(&id);
    assert!(!job.join("checkpoint.previous.safetensors").exists());
    std::fs::write(job.join("checkpoint.safetensors"), b"garbage").unwrap();
    let again = run_with(dir.path(), &spec_path, "runs", &[], &[]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("the job starts again from epoch 0"),
        "{}",
        again.stdout
    );
    assert_eq!(
        outcome(&job),
        outcome(&dir.path().join("reference/restart").join(&id))
    );
}

#[test]
fn a_full_disk_fails_jobs_as_retryable_and_a_later_run_ends_them_as_if_nothing_happened() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 600, 100);
    let text = spec(
        "full",
        &data,
        2,
        "\n[sweep.parameters]\n\"optimizer.lr\" = [0.001, 0.003]\n",
    );
    let spec_path = write_spec(dir.path(), &text);
    let reference = run_with(dir.path(), &spec_path, "reference", &[], &[]);
    assert_eq!(reference.code, 0, "{}", reference.stderr);

    // Room for the job's spec and record, not for its first checkpoint; and at a later write.
    for budget in ["20000", "400000"] {
        let runs = format!("runs-{budget}");
        let fault = [("ASSAY_FAULT_ENOSPC_AFTER", budget)];
        let r = run_with(dir.path(), &spec_path, &runs, &["--retries", "0"], &fault);
        let exp = dir.path().join(&runs).join("full");
        let l = ledger(&exp);
        let failed: Vec<(String, Value)> = jobs(&l)
            .into_iter()
            .filter(|(_, e)| e["state"] == "failed")
            .collect();
        assert!(!failed.is_empty(), "budget {budget}: {}\n{l}", r.stdout);
        assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
        for (id, e) in &failed {
            let reason = e["reason"].as_str().unwrap();
            assert!(
                reason.contains("No space left on device"),
                "budget {budget}, job {id}: {reason}"
            );
            assert_eq!(e["retryable"], true, "{reason}");
        }
        // space is back: the same command finishes every job, as an uninterrupted run would
        let again = run_with(dir.path(), &spec_path, &runs, &[], &[]);
        assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
        for (id, e) in jobs(&ledger(&exp)) {
            assert_eq!(e["state"], "done", "{id}");
            assert_eq!(
                outcome(&exp.join(&id)),
                outcome(&dir.path().join("reference/full").join(&id)),
                "budget {budget}, job {id}"
            );
        }
    }
}

#[test]
fn retry_failed_runs_a_diverged_job_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 300, 50);
    let spec_path = write_spec(
        dir.path(),
        &spec("diverges", &data, 1, "").replace("lr = 0.003", "lr = 1e30"),
    );
    let r = run_with(dir.path(), &spec_path, "runs", &[], &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let (id, e) = jobs(&ledger(&dir.path().join("runs/diverges"))).remove(0);
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .starts_with("training diverged"),
        "{e}"
    );
    assert_eq!(e["retryable"], false);
    let started = format!("started {id}");
    assert!(r.stdout.contains(&started), "{}", r.stdout);
    let r = run_with(dir.path(), &spec_path, "runs", &[], &[]);
    assert_eq!(r.code, 1);
    assert!(
        !r.stdout.contains(&started),
        "divergence is not retried by itself:\n{}",
        r.stdout
    );
    let r = run_with(dir.path(), &spec_path, "runs", &["--retry-failed"], &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains(&started),
        "--retry-failed runs it again:\n{}",
        r.stdout
    );
}

#[test]
fn a_second_ctrl_c_leaves_the_running_jobs_interrupted_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 3000, 50);
    let spec_path = write_spec(dir.path(), &spec("twice", &data, 20, ""));
    let mut run = Command::new(env!("CARGO_BIN_EXE_assay"))
        .current_dir(dir.path())
        .args(["run", spec_path.to_str().unwrap(), "--runs-dir", "runs"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let exp = dir.path().join("runs/twice");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut running = false;
    while Instant::now() < deadline && !running {
        if let Ok(Ok(l)) = std::fs::read_to_string(exp.join("ledger.json"))
            .map(|t| serde_json::from_str::<Value>(&t))
        {
            running = jobs(&l)
                .iter()
                .any(|(_, e)| e["state"] == "running" && e["epochs_done"].as_u64() >= Some(1));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(running, "the job never got going");
    for _ in 0..2 {
        // SAFETY: sending SIGINT to our own child process.
        unsafe { libc::kill(run.id() as i32, libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let l = ledger(&exp);
    for (id, e) in jobs(&l) {
        assert_eq!(e["state"], "pending", "{id}: {e}");
        assert_ne!(e["retryable"], true, "{id}: {e}");
    }
    let s = assay(dir.path(), &["status", exp.to_str().unwrap()]);
    let row = s.stdout.lines().last().unwrap();
    assert!(
        row.contains(" pending ") && row.ends_with("interrupted"),
        "{}",
        s.stdout
    );
    let _ = run.kill();
}
