//! `rungs.json`: the successive-halving decisions of jobs that decide at their rungs themselves
//! (Slurm tasks, with no orchestrator to ask), changed only under an exclusive `flock` on
//! `rungs.lock` so that tasks on different nodes of a shared filesystem take turns. The
//! orchestrator copies it into the ledger.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsRawFd;

use super::atomic::write_atomic;
use super::ledger::Rung;
use super::ExperimentDir;

pub type Rungs = BTreeMap<usize, Rung>;

/// The decisions so far (none when the file does not exist).
pub fn read(dir: &ExperimentDir) -> io::Result<Rungs> {
    match std::fs::read(dir.rungs()) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is damaged: {e}", dir.rungs().display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Rungs::new()),
        Err(e) => Err(e),
    }
}

/// Runs `change` on the decisions while holding the lock, and writes them back.
pub fn update<T>(dir: &ExperimentDir, change: impl FnOnce(&mut Rungs) -> T) -> io::Result<T> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.rungs_lock())?;
    // SAFETY: flock(2) on a descriptor this function owns; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut rungs = read(dir)?;
    let out = change(&mut rungs);
    let json = serde_json::to_vec_pretty(&rungs).map_err(io::Error::other)?;
    write_atomic(&dir.rungs(), &json)?;
    drop(lock);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ledger::RungScore;

    #[test]
    fn decisions_from_many_threads_are_all_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ExperimentDir {
            root: tmp.path().to_path_buf(),
        };
        assert!(read(&dir).unwrap().is_empty());
        std::thread::scope(|s| {
            for t in 0..8 {
                let dir = &dir;
                s.spawn(move || {
                    update(dir, |r| {
                        r.entry(1).or_default().insert(
                            format!("job{t}"),
                            RungScore {
                                trial: t,
                                score: t as f64,
                                promoted: true,
                            },
                        );
                    })
                    .unwrap()
                });
            }
        });
        assert_eq!(read(&dir).unwrap()[&1].len(), 8);
    }
}
