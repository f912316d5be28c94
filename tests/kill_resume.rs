//! The machine dies at seeded random moments — half-way through a write of the ledger, of a
//! checkpoint, of a job's metrics or record, or at a random time — and the same `assay run`
//! resumes: no job that had finished runs again, no half-written file is left, and every job
//! ends with the metrics of an uninterrupted run. A death during a write is injected with
//! `ASSAY_FAULT_DIE_DURING_WRITE` (`src/store/fault.rs`), which kills the whole process group.

mod common;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{assay, outcome, small_mnist, starts, write_spec};
use rand::Rng;
use serde_json::Value;

fn spec(data: &str) -> String {
    format!(
        "name = \"dies\"\nseed = 5\n{data}\n[split]\nvalidation_fraction = 0.2\n\n[model]\narchitecture = \"cnn\"\nlayers = [\n  {{ type = \"conv\", filters = 4, kernel = 3, padding = 1 }},\n  {{ type = \"relu\" }},\n  {{ type = \"max_pool\", size = 2 }},\n  {{ type = \"dense\", units = 16 }},\n  {{ type = \"relu\" }},\n]\n\n[optimizer]\nkind = \"adam\"\nlr = 0.003\n\n[train]\nepochs = 3\nbatch_size = 32\n\n[sweep]\nrepeats = 2\n[sweep.parameters]\n\"optimizer.lr\" = [0.003, 0.001]\n"
    )
}

#[derive(Debug)]
enum Death {
    /// During the n-th write of this file by one process.
    During(&'static str, usize),
    /// After this long, from outside.
    After(Duration),
}

fn run_args<'a>(spec: &'a str, runs: &'a str) -> [&'a str; 6] {
    ["run", spec, "--runs-dir", runs, "--jobs", "2"]
}

/// Runs the spec until `death` kills it; returns whether it died (rather than finished).
fn run_until(dir: &Path, spec: &str, runs: &str, death: &Death) -> bool {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_assay"));
    cmd.current_dir(dir)
        .args(run_args(spec, runs))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // its own process group: the fault kills that group, not the test
        .process_group(0);
    if let Death::During(file, n) = death {
        cmd.env("ASSAY_FAULT_DIE_DURING_WRITE", format!("{file}:{n}"));
    }
    let mut child = cmd.spawn().unwrap();
    if let Death::After(after) = death {
        let deadline = Instant::now() + *after;
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: killpg(2) on the child's own process group.
        unsafe { libc::killpg(child.id() as i32, libc::SIGKILL) };
    }
    let status = child.wait().unwrap();
    status.signal() == Some(libc::SIGKILL)
}

/// The jobs whose folders say they finished: a sound `metrics.json` of their own, done.
fn finished_in_folders(exp: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(exp) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let id = e.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(e.path().join("metrics.json")).ok()?;
            let m: Value = serde_json::from_str(&text).ok()?;
            (m["job_id"] == id.as_str() && m["status"] == "done").then_some(id)
        })
        .collect()
}

/// Every file under `dir` whose name marks a crash-safe write in progress.
fn temp_files(dir: &Path) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.contains(".tmp."))
        .collect()
}

#[test]
fn a_run_killed_at_random_moments_resumes_to_the_uninterrupted_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 600, 100);
    let spec_path = write_spec(dir.path(), &spec(&data));
    let spec_arg = spec_path.to_str().unwrap();
    let started = Instant::now();
    let reference = assay(dir.path(), &run_args(spec_arg, "reference"));
    assert_eq!(reference.code, 0, "{}", reference.stderr);
    let reference_time = started.elapsed();
    let reference_dir = dir.path().join("reference/dies");

    // Four jobs of three epochs: the ledger is written about 25 times, each worker writes its
    // job record twice and a checkpoint per epoch.
    let mut rng = assay::train::rng::stream(11, "kill moments", 0);
    let deaths = [
        Death::During("ledger.json", rng.random_range(2..=10)),
        Death::During("ledger.json", rng.random_range(11..=20)),
        Death::During("checkpoint.safetensors", rng.random_range(1..=3)),
        Death::During("metrics.json", 1),
        Death::During("job.json", rng.random_range(1..=2)),
        Death::After(reference_time.mul_f64(rng.random_range(0.15..0.6))),
        Death::After(reference_time.mul_f64(rng.random_range(0.15..0.6))),
    ];
    for (i, death) in deaths.iter().enumerate() {
        let runs = format!("runs-{i}");
        let exp = dir.path().join(&runs).join("dies");
        assert!(
            run_until(dir.path(), spec_arg, &runs, death),
            "{death:?}: the run finished before it could die"
        );
        let finished = finished_in_folders(&exp);
        let again = assay(dir.path(), &run_args(spec_arg, &runs));
        assert_eq!(
            again.code, 0,
            "{death:?}:\n{}\n{}",
            again.stdout, again.stderr
        );
        let l = common::cli::ledger(&exp);
        let jobs = l["jobs"].as_object().unwrap();
        assert_eq!(jobs.len(), 4, "{death:?}: {l}");
        for (id, e) in jobs {
            assert_eq!(e["state"], "done", "{death:?}, {id}: {e}");
            assert_eq!(
                outcome(&exp.join(id)),
                outcome(&reference_dir.join(id)),
                "{death:?}, {id}: metrics differ from the uninterrupted run"
            );
            if finished.contains(id) {
                assert_eq!(
                    starts(&exp.join(id)),
                    1,
                    "{death:?}, {id} had finished and must not run again"
                );
            }
        }
        assert_eq!(temp_files(&exp), Vec::<String>::new(), "{death:?}");
    }
}
