//! The local launcher: one `assay worker` process per job on this machine, in parallel slots
//! (on GPUs, at most `per_device` per device, each worker seeing only its own), talking JSON
//! lines on stdout (reports) and stdin (rung verdicts).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;

use super::{Ending, Happening, Launch, Launcher};
use crate::devices::JobDevice;
use crate::exec::job_runner::Report;
use crate::exec::scheduler::{DevicePool, Slots};
use crate::exec::worker;
use crate::store::ledger::Ledger;
use crate::store::ExperimentDir;

pub struct LocalLauncher {
    dir: ExperimentDir,
    slots: Slots,
    devices: DevicePool,
    loader_threads: usize,
    spec_revision: Option<String>,
    tx: mpsc::Sender<Message>,
    rx: mpsc::Receiver<Message>,
    running: BTreeMap<String, Running>,
    /// A hard interrupt was asked for: killed workers count as stopped, not crashed.
    killed: bool,
}

impl LocalLauncher {
    /// Runs up to `slots.jobs` workers at once, each placed on a device of `devices`.
    pub fn new(
        dir: &ExperimentDir,
        slots: Slots,
        devices: DevicePool,
        loader_threads: usize,
        spec_revision: Option<String>,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        LocalLauncher {
            dir: dir.clone(),
            slots,
            devices,
            loader_threads,
            spec_revision,
            tx,
            rx,
            running: BTreeMap::new(),
            killed: false,
        }
    }

    /// How a reaped worker ended, by its exit status and its last report.
    fn ending(&self, status: std::process::ExitStatus, r: Running) -> Ending {
        let code = status.code();
        match (code, r.finished) {
            (Some(0), Some((s, _))) if s == "pruned" => Ending::Pruned,
            (Some(0), _) => Ending::Done,
            (Some(worker::FAILED_CODE), f) => Ending::Failed {
                reason: f
                    .and_then(|f| f.1)
                    .unwrap_or_else(|| "training failed".into()),
                retryable: false,
            },
            (Some(worker::ENVIRONMENT_FAILED_CODE), f) => Ending::Failed {
                reason: f.and_then(|f| f.1).unwrap_or_else(|| "an I/O error".into()),
                retryable: true,
            },
            (Some(worker::INTERRUPTED_CODE), _) => Ending::Stopped { reason: None },
            // Killed by a second Ctrl-C: interrupted, not failed; it resumes from its last
            // checkpoint on the next run.
            _ if self.killed => Ending::Stopped {
                reason: Some("interrupted".into()),
            },
            _ => {
                let how = match (code, std::os::unix::process::ExitStatusExt::signal(&status)) {
                    (_, Some(sig)) => format!("the worker was killed by signal {sig}"),
                    (Some(c), None) => format!("the worker crashed (exit code {c})"),
                    (None, None) => "the worker crashed".to_string(),
                };
                let said = r.stderr.join().unwrap_or_default();
                let tail = crate::exec::crash::reason(&String::from_utf8_lossy(&said))
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default();
                Ending::Failed {
                    reason: format!("{how}{tail}"),
                    retryable: true,
                }
            }
        }
    }
}

impl Launcher for LocalLauncher {
    fn free(&self) -> usize {
        self.slots
            .jobs
            .saturating_sub(self.running.len())
            .min(self.devices.free())
    }

    fn launch(&mut self, jobs: &[Launch], _ledger: &mut Ledger) -> anyhow::Result<()> {
        for job in jobs {
            let device = self
                .devices
                .take()
                .context("no device is free for another job")?;
            let r = spawn(
                &self.dir,
                job,
                device,
                self.slots,
                self.loader_threads,
                self.spec_revision.as_deref(),
                self.tx.clone(),
            );
            match r {
                Ok(r) => {
                    self.running.insert(job.id.clone(), r);
                }
                Err(e) => {
                    self.devices.give_back(device);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> anyhow::Result<Vec<Happening>> {
        let mut out = Vec::new();
        let mut next = self.rx.recv_timeout(timeout).ok();
        while let Some(msg) = next {
            match msg {
                Message::Report(id, Report::Finished { status, reason }) => {
                    if let Some(r) = self.running.get_mut(&id) {
                        r.finished = Some((status, reason));
                    }
                }
                Message::Report(id, report) => out.push(Happening::Report(id, report)),
                Message::Closed(id) => {
                    if let Some(r) = self.running.get_mut(&id) {
                        r.closed = true;
                    }
                }
            }
            next = self.rx.try_recv().ok();
        }
        // Reap workers whose reports are all read and whose process has ended.
        let closed: Vec<String> = self
            .running
            .iter()
            .filter(|(_, r)| r.closed)
            .map(|(id, _)| id.clone())
            .collect();
        for id in closed {
            let Some(r) = self.running.get_mut(&id) else {
                continue;
            };
            let Some(status) = r.child.try_wait().context("cannot wait for a worker")? else {
                continue;
            };
            let Some(r) = self.running.remove(&id) else {
                continue;
            };
            self.devices.give_back(r.device);
            let stderr_path = r.stderr_path.clone();
            let ending = self.ending(status, r);
            // Keep a worker's stderr only when it said something (a panic, an error).
            if std::fs::metadata(&stderr_path).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(&stderr_path);
            }
            out.push(Happening::Ended(id, ending));
        }
        Ok(out)
    }

    fn answer_rung(&mut self, id: &str, promoted: bool) {
        if let Some(r) = self.running.get_mut(id) {
            // A worker that died meanwhile is handled when its exit is seen.
            let _ = writeln!(r.stdin, "{}", if promoted { "continue" } else { "prune" });
            let _ = r.stdin.flush();
        }
    }

    fn interrupt(&mut self, hard: bool) {
        for r in self.running.values_mut() {
            if hard {
                self.killed = true;
                let _ = r.child.kill();
            } else {
                // SAFETY: kill(2) with a child's pid; no memory is touched.
                unsafe { libc::kill(r.child.id() as i32, libc::SIGTERM) };
            }
        }
    }

    fn active(&self) -> usize {
        self.running.len()
    }
}

enum Message {
    Report(String, Report),
    Closed(String),
}

struct Running {
    child: Child,
    device: JobDevice,
    stdin: ChildStdin,
    finished: Option<(String, Option<String>)>,
    /// Its stdout reached end of file: every report it sent has been handled.
    closed: bool,
    stderr_path: PathBuf,
    /// What this attempt wrote to stderr (its tail), once the pipe closes. It is also appended to
    /// `stderr_path` as it comes, where the disk lets it.
    stderr: std::thread::JoinHandle<Vec<u8>>,
}

/// The most of one attempt's stderr kept in memory for its failure reason.
const STDERR_TAIL: usize = 64 * 1024;

/// Copies a worker's stderr into `file` (best effort: a full disk must not lose the message)
/// and returns its last [`STDERR_TAIL`] bytes at end of file.
fn follow_stderr(
    mut pipe: std::process::ChildStderr,
    mut file: Option<std::fs::File>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        use std::io::Read;
        let mut tail = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(f) = file.as_mut() {
                if f.write_all(&buf[..n]).is_err() {
                    file = None;
                }
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * STDERR_TAIL {
                tail.drain(..tail.len() - STDERR_TAIL);
            }
        }
        if tail.len() > STDERR_TAIL {
            tail.drain(..tail.len() - STDERR_TAIL);
        }
        tail
    })
}

/// The `assay worker` arguments after `worker` for one job (also what a Slurm task runs, with
/// its own thread count).
pub fn worker_args(
    dir: &ExperimentDir,
    job: &Launch,
    threads: &str,
    loader_threads: usize,
    spec_revision: Option<&str>,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "--experiment-dir".into(),
        dir.root.clone().into(),
        "--job".into(),
        job.id.clone().into(),
        "--threads".into(),
        threads.into(),
        "--loader-threads".into(),
        loader_threads.to_string().into(),
    ];
    if !job.rungs.is_empty() {
        args.push("--rungs".into());
        args.push(
            job.rungs
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(",")
                .into(),
        );
    }
    if let Some(rev) = spec_revision {
        args.push("--spec-revision".into());
        args.push(rev.into());
    }
    args
}

/// Starts `assay worker` for one job on `device`; its reports arrive on `tx`. A worker on a GPU
/// sees only that GPU (`CUDA_VISIBLE_DEVICES`).
fn spawn(
    dir: &ExperimentDir,
    job: &Launch,
    device: JobDevice,
    slots: Slots,
    loader_threads: usize,
    spec_revision: Option<&str>,
    tx: mpsc::Sender<Message>,
) -> anyhow::Result<Running> {
    let exe = std::env::current_exe().context("cannot find the assay executable")?;
    let job_dir = dir.job(&job.id);
    std::fs::create_dir_all(&job_dir.root)
        .with_context(|| format!("cannot create {}", job_dir.root.display()))?;
    let stderr_path = job_dir.root.join("worker-stderr.txt");
    // Best effort: without the file (a full disk) the message still reaches the ledger.
    let stderr_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&stderr_path)
        .ok();
    let mut cmd = Command::new(exe);
    cmd.arg("worker").args(worker_args(
        dir,
        job,
        &slots.threads_per_job.to_string(),
        loader_threads,
        spec_revision,
    ));
    cmd.arg("--device").arg(device.to_string());
    if let JobDevice::Cuda(ordinal) = device {
        cmd.env("CUDA_VISIBLE_DEVICES", ordinal.to_string());
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the worker when the
    // orchestrator dies, so no worker outlives it and keeps writing into a resumed run.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start a worker process")?;
    let stdin = child.stdin.take().context("the worker has no stdin")?;
    let stdout = child.stdout.take().context("the worker has no stdout")?;
    let stderr = follow_stderr(
        child.stderr.take().context("the worker has no stderr")?,
        stderr_file,
    );
    let id = job.id.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(report) = serde_json::from_str::<Report>(&line) {
                if tx.send(Message::Report(id.clone(), report)).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Message::Closed(id));
    });
    Ok(Running {
        child,
        device,
        stdin,
        finished: None,
        closed: false,
        stderr_path,
        stderr,
    })
}
