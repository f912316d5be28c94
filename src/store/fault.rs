//! Faults injected on purpose, for the tests of what a full disk or a crash leaves behind. They
//! are armed from environment variables by `assay worker` alone, never by other commands:
//! `ASSAY_FAULT_ENOSPC_AFTER=N` makes crash-safe writes fail with "No space left on device" once
//! the worker has written N bytes through them; `ASSAY_FAULT_PANIC_AFTER_EPOCH=N` makes the worker
//! panic right after it checkpointed epoch N; `ASSAY_FAULT_PAUSE_AFTER_EPOCH=<job id>:N:S` makes
//! that job's worker sleep S seconds right after it checkpointed and reported epoch N (a job
//! slow enough to be caught running: cancelled, requeued).
//!
//! `ASSAY_FAULT_DIE_DURING_WRITE=<file name>:<n>` is armed by `assay run` and by its workers: the
//! process that makes the n-th crash-safe write of a file of that name stops half-way through
//! it and kills its whole process group — orchestrator and workers — as a power cut would.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Bytes crash-safe writes may still write; `u64::MAX`: unarmed.
static BYTES_LEFT: AtomicU64 = AtomicU64::new(u64::MAX);
/// The epoch after whose checkpoint the worker panics; `usize::MAX`: unarmed.
static PANIC_EPOCH: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The epoch after whose checkpoint the worker sleeps, and for how many seconds; armed once.
static PAUSE: std::sync::OnceLock<(usize, u64)> = std::sync::OnceLock::new();

/// The file name and write count at which the process group dies; armed once.
static DIE_DURING: std::sync::OnceLock<(String, usize)> = std::sync::OnceLock::new();
/// Crash-safe writes of that file so far in this process.
static WRITES_OF_DIE_FILE: AtomicUsize = AtomicUsize::new(0);

/// Arms the death during a write the environment asks for (called once by `assay run` and once
/// by `assay worker`).
pub fn arm_death_from_env() {
    let Ok(v) = std::env::var("ASSAY_FAULT_DIE_DURING_WRITE") else {
        return;
    };
    if let Some((name, n)) = v.rsplit_once(':') {
        if let Ok(n) = n.parse::<usize>() {
            let _ = DIE_DURING.set((name.to_string(), n));
        }
    }
}

/// Called with the temp file of a crash-safe write of `path`, written but not yet renamed: at
/// the armed write, cuts it to half and kills the process group.
pub fn while_writing(path: &Path, tmp: &Path) {
    let Some((name, n)) = DIE_DURING.get() else {
        return;
    };
    if path.file_name().and_then(|f| f.to_str()) != Some(name.as_str()) {
        return;
    }
    if WRITES_OF_DIE_FILE.fetch_add(1, Ordering::SeqCst) + 1 != *n {
        return;
    }
    if let Ok(len) = std::fs::metadata(tmp).map(|m| m.len()) {
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .open(tmp)
            .and_then(|f| f.set_len(len / 2));
    }
    // SAFETY: kill(2) on our own process group; no memory is touched.
    unsafe { libc::kill(0, libc::SIGKILL) };
}

/// Arms the faults the environment asks for (called once by `assay worker` for job `job_id`).
pub fn arm_from_env(job_id: &str) {
    if let Ok(v) = std::env::var("ASSAY_FAULT_PAUSE_AFTER_EPOCH") {
        let parts: Vec<&str> = v.split(':').collect();
        if let [job, epoch, seconds] = parts[..] {
            if let (true, Ok(e), Ok(s)) = (job == job_id, epoch.parse(), seconds.parse()) {
                let _ = PAUSE.set((e, s));
            }
        }
    }
    let read = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = read("ASSAY_FAULT_ENOSPC_AFTER") {
        BYTES_LEFT.store(n, Ordering::SeqCst);
    }
    if let Some(n) = read("ASSAY_FAULT_PANIC_AFTER_EPOCH") {
        PANIC_EPOCH.store(n as usize, Ordering::SeqCst);
    }
}

/// Charges the file just written at `tmp` to the byte budget; past it, cuts the file to what
/// fitted and fails as a full disk does.
pub fn charge(tmp: &Path) -> io::Result<()> {
    let left = BYTES_LEFT.load(Ordering::SeqCst);
    if left == u64::MAX {
        return Ok(());
    }
    let len = std::fs::metadata(tmp)?.len();
    if len <= left {
        BYTES_LEFT.store(left - len, Ordering::SeqCst);
        return Ok(());
    }
    BYTES_LEFT.store(0, Ordering::SeqCst);
    std::fs::OpenOptions::new()
        .write(true)
        .open(tmp)?
        .set_len(left)?;
    Err(io::Error::from_raw_os_error(libc::ENOSPC))
}

/// Called once epoch `epoch` is checkpointed and reported: pauses if that is the armed epoch
/// (so that whoever watches the reports can act on the job while it waits).
pub fn after_epoch_reported(epoch: usize) {
    if let Some(&(e, seconds)) = PAUSE.get() {
        if e == epoch {
            std::thread::sleep(std::time::Duration::from_secs(seconds));
        }
    }
}

/// Called once epoch `epoch` is checkpointed: panics if that is the armed epoch.
pub fn after_checkpoint(epoch: usize) {
    if PANIC_EPOCH.load(Ordering::SeqCst) == epoch {
        panic!("injected fault: a panic after the checkpoint of epoch {epoch}");
    }
}
