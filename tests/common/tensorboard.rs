//! Reads a log directory back with TensorBoard's own Python reader (`scripts/tb_read.py`).
//!
//! The python is `$ASSAY_TB_PYTHON` if set, else `<repo>/target/tb-venv/bin/python` as created by
//! `scripts/tb-venv.sh`. When neither exists the calling test fails: it never passes silently.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The python of the TensorBoard venv; panics (failing the test) with setup instructions if absent.
pub fn tb_python() -> PathBuf {
    if let Some(p) = std::env::var_os("ASSAY_TB_PYTHON").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "ASSAY_TB_PYTHON={} does not exist; unset it or run scripts/tb-venv.sh \
             (it prints the venv's python path)",
            p.display()
        );
        return p;
    }
    let venv = repo_root().join("target").join("tb-venv");
    let candidates = [
        venv.join("bin").join("python"),
        venv.join("Scripts").join("python.exe"),
    ];
    for p in &candidates {
        if p.exists() {
            return p.clone();
        }
    }
    panic!(
        "TensorBoard venv not found at {}: run `scripts/tb-venv.sh` in the repo root \
         (or set ASSAY_TB_PYTHON to a python that has `tensorboard` installed)",
        venv.display()
    );
}

/// Runs `scripts/tb_read.py dir` and returns its JSON:
/// `{"runs": {run: {"scalars", "text", "images", "tensors_tags"}}, "plugins": {"hparams": {run: [tags]}, "text": ..}, "hparams_data": {run: {tag: ..}}}`.
pub fn read_logdir(dir: &Path) -> serde_json::Value {
    let python = tb_python();
    let script = repo_root().join("scripts").join("tb_read.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {} {}: {e}", python.display(), script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tb_read.py failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("tb_read.py printed invalid JSON ({e}):\n{stdout}\nstderr:\n{stderr}")
    })
}

/// Starts a real TensorBoard server on `dir` (scripts/tb_http.py), waits for `groups` HParams
/// session groups, and returns what its HTTP API answered; the server is stopped by its PID.
pub fn serve_logdir(dir: &Path, groups: usize) -> serde_json::Value {
    let python = tb_python();
    let script = repo_root().join("scripts").join("tb_http.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(dir)
        .arg(groups.to_string())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tb_http.py failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("tb_http.py printed invalid JSON ({e}):\n{stdout}\nstderr:\n{stderr}")
    })
}
