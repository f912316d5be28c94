//! One live `assay run` per experiment folder: a lock file naming its holder, taken over when
//! the holder is dead.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Who holds an experiment's lock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub pid: u32,
    pub host: String,
    pub since: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another `assay run` (pid {pid} on {host}) is working on {dir}; wait for it to finish or stop it first")]
    Held {
        pid: u32,
        host: String,
        dir: PathBuf,
    },
    #[error("{dir} is locked by pid {pid} on another host ({host}); if that run is dead, delete {lock} and run again")]
    OtherHost {
        pid: u32,
        host: String,
        dir: PathBuf,
        lock: PathBuf,
    },
    #[error("cannot use the lock file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Held while this process runs an experiment; released on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

pub fn this_host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Whether process `pid` on this machine is alive and is an assay process.
pub fn pid_alive(pid: u32) -> bool {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    match fs::read(proc_dir.join("cmdline")) {
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains("assay"),
        Err(_) => false,
    }
}

fn lock_path(dir: &Path) -> PathBuf {
    dir.join("lock")
}

/// The current holder of `dir`'s lock, if any, and whether it is alive.
pub fn holder(dir: &Path) -> Option<(LockInfo, bool)> {
    let text = fs::read_to_string(lock_path(dir)).ok()?;
    let info: LockInfo = serde_json::from_str(&text).ok()?;
    let alive = info.host == this_host() && pid_alive(info.pid);
    Some((info, alive))
}

impl RunLock {
    /// Takes `dir`'s lock, taking over one left by a dead process on this host.
    pub fn acquire(dir: &Path) -> Result<RunLock, LockError> {
        let path = lock_path(dir);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(dir).map_err(io_err)?;
        let info = LockInfo {
            pid: std::process::id(),
            host: this_host(),
            since: crate::store::now(),
        };
        let json = serde_json::to_string(&info).unwrap_or_default();
        for _ in 0..3 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(json.as_bytes())
                        .and_then(|_| f.sync_all())
                        .map_err(io_err)?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match holder(dir) {
                    Some((other, true)) => {
                        return Err(LockError::Held {
                            pid: other.pid,
                            host: other.host,
                            dir: dir.to_path_buf(),
                        })
                    }
                    Some((other, false)) if other.host != info.host => {
                        return Err(LockError::OtherHost {
                            pid: other.pid,
                            host: other.host,
                            dir: dir.to_path_buf(),
                            lock: path,
                        });
                    }
                    // Dead holder (or an unreadable, half-written lock): remove it and race for a fresh one.
                    _ => match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err(e)),
                    },
                },
                Err(e) => return Err(io_err(e)),
            }
        }
        Err(io_err(io::Error::other("the lock kept changing hands")))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Nothing to do if it is already gone; a stale lock is taken over by the next run.
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_dead_holders_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        // The test binary's name contains "assay", so it counts as a live assay process.
        let lock = RunLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            RunLock::acquire(dir.path()),
            Err(LockError::Held { .. })
        ));
        drop(lock);
        assert!(!dir.path().join("lock").exists());
        let dead = LockInfo {
            pid: u32::MAX - 1,
            host: this_host(),
            since: 0.0,
        };
        fs::write(
            dir.path().join("lock"),
            serde_json::to_string(&dead).unwrap(),
        )
        .unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(holder(dir.path()).unwrap().0.pid, std::process::id());
        drop(lock);
        let remote = LockInfo {
            pid: 1,
            host: "elsewhere".into(),
            since: 0.0,
        };
        fs::write(
            dir.path().join("lock"),
            serde_json::to_string(&remote).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            RunLock::acquire(dir.path()),
            Err(LockError::OtherHost { .. })
        ));
    }
}
