//! The Slurm launcher: pending jobs go to the cluster as one job array per submission, with a
//! follow-up job that takes the orchestrator's next turn once the array has ended. It hears of
//! the jobs through the files their detached workers write in the shared run folder
//! (`events.jsonl`, `end.json`) and through `squeue`; a task that leaves Slurm's listings is
//! recorded as whatever its files say, never waited for.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{Ending, Happening, Launch, Launcher};
use crate::exec::job_runner::Report;
use crate::slurm::script::{self, ArrayRequest, ArrayTask};
use crate::slurm::{self as cluster, QueueState};
use crate::spec::SlurmSpec;
use crate::store::ledger::{JobState, Ledger, SlurmTask, Submission};
use crate::store::worker_end::{self, EndStatus};
use crate::store::{now, write_atomic, ExperimentDir};

/// How often `squeue` is asked while following: soon after a worker has written its end, else
/// seldom (a task that dies without a word is found within this), sparing the controller.
const QUEUE_AFTER_AN_END: Duration = Duration::from_secs(2);
const QUEUE_EVERY: Duration = Duration::from_secs(30);

/// What every submission of one run is made of.
#[derive(Clone, Debug)]
pub struct SlurmSetup {
    pub name: String,
    pub spec: SlurmSpec,
    /// The `assay` the tasks run.
    pub executable: PathBuf,
    pub loader_threads: usize,
    /// Successive halving's reduction factor, when the sweep prunes.
    pub reduction_factor: Option<usize>,
    pub spec_revision: Option<String>,
    /// What the follow-up job runs: `assay run … --slurm-follow-up`.
    pub follow_up: Vec<String>,
}

/// The batch scripts and `sbatch` commands of one submission, as `--dry-run` shows them.
pub struct Rendered {
    pub array_script: String,
    pub array_path: PathBuf,
    pub follow_up_script: String,
    pub follow_up_path: PathBuf,
}

impl Rendered {
    /// The commands that submit the two scripts, for people to read.
    pub fn commands(&self) -> [String; 2] {
        [
            format!(
                "sbatch --parsable {}",
                crate::shell::word(&self.array_path.display().to_string())
            ),
            format!(
                "sbatch --parsable {} {}",
                script::follow_up_args(0)
                    .join(" ")
                    .replace("afterany:0", "afterany:<array job id>"),
                crate::shell::word(&self.follow_up_path.display().to_string())
            ),
        ]
    }
}

/// The scripts of submission number `n` of `jobs`.
pub fn render(dir: &ExperimentDir, setup: &SlurmSetup, jobs: &[Launch], n: usize) -> Rendered {
    let tasks: Vec<ArrayTask> = jobs
        .iter()
        .map(|j| ArrayTask {
            job: j.id.clone(),
            rungs: j.rungs.clone(),
        })
        .collect();
    let output_dir = dir.slurm();
    let array_script = script::array_script(&ArrayRequest {
        name: &setup.name,
        experiment_dir: &dir.root,
        output_dir: &output_dir,
        executable: &setup.executable,
        tasks: &tasks,
        slurm: &setup.spec,
        loader_threads: setup.loader_threads,
        reduction_factor: setup.reduction_factor,
        spec_revision: setup.spec_revision.as_deref(),
    });
    let follow_up_script =
        script::follow_up_script(&setup.name, &output_dir, &setup.spec, &setup.follow_up);
    Rendered {
        array_script,
        array_path: output_dir.join(format!("array-{n}.sh")),
        follow_up_script,
        follow_up_path: output_dir.join(format!("follow-up-{n}.sh")),
    }
}

/// A job in Slurm that this launcher follows.
struct Followed {
    task: SlurmTask,
    /// How far its `events.jsonl` has been read.
    offset: u64,
}

pub struct SlurmLauncher {
    dir: ExperimentDir,
    setup: SlurmSetup,
    followed: BTreeMap<String, Followed>,
    queue_checked: Option<Instant>,
    /// Without Slurm's commands (a folder looked at elsewhere), every followed task counts as
    /// gone from the listings; else their absence is an error.
    queue_optional: bool,
    warnings: Vec<String>,
}

impl SlurmLauncher {
    /// Follows the jobs `ledger` says are in Slurm, and submits more.
    pub fn new(dir: &ExperimentDir, setup: SlurmSetup, ledger: &Ledger) -> Self {
        let mut l = SlurmLauncher {
            dir: dir.clone(),
            setup,
            followed: BTreeMap::new(),
            queue_checked: None,
            queue_optional: false,
            warnings: Vec::new(),
        };
        l.adopt(ledger);
        l
    }

    /// Only settles the jobs `ledger` says are in Slurm (for a run on another backend, `assay
    /// status` and `assay cancel`): submits nothing.
    pub fn settler(dir: &ExperimentDir, ledger: &Ledger) -> Self {
        let setup = SlurmSetup {
            name: ledger.experiment.clone(),
            spec: SlurmSpec::default(),
            executable: PathBuf::new(),
            loader_threads: 1,
            reduction_factor: None,
            spec_revision: None,
            follow_up: Vec::new(),
        };
        let mut l = SlurmLauncher::new(dir, setup, ledger);
        l.queue_optional = !cluster::available();
        l
    }

    fn adopt(&mut self, ledger: &Ledger) {
        for (id, e) in &ledger.jobs {
            if let (JobState::Running, Some(task)) = (e.state, e.slurm) {
                // Its events file holds this attempt's reports alone (it is removed at each
                // submission): all of them are read, for the ledger's epoch counts.
                self.followed
                    .insert(id.clone(), Followed { task, offset: 0 });
            }
        }
    }

    /// The jobs followed, by their Slurm tasks.
    pub fn tasks(&self) -> BTreeMap<String, SlurmTask> {
        self.followed
            .iter()
            .map(|(id, f)| (id.clone(), f.task))
            .collect()
    }

    /// Reads the new complete lines of each followed job's `events.jsonl`.
    fn read_events(&mut self, out: &mut Vec<Happening>) {
        for (id, f) in self.followed.iter_mut() {
            let Ok(mut file) = std::fs::File::open(self.dir.job(id).events()) else {
                continue;
            };
            if file.seek(SeekFrom::Start(f.offset)).is_err() {
                continue;
            }
            let mut bytes = Vec::new();
            if file.read_to_end(&mut bytes).is_err() {
                continue;
            }
            // Only whole lines: a line still being written is read next time.
            let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
                continue;
            };
            f.offset += end as u64 + 1;
            for line in bytes[..end].split(|&b| b == b'\n') {
                match serde_json::from_slice::<Report>(line) {
                    Ok(Report::Finished { .. }) | Err(_) => {}
                    Ok(report) => out.push(Happening::Report(id.clone(), report)),
                }
            }
        }
    }

    /// How a task that is no longer queued or running ended, from its files and Slurm's last
    /// word on it (`None`: gone from the listings).
    fn ending(&self, id: &str, task: SlurmTask, listed: Option<&QueueState>) -> Ending {
        let job = self.dir.job(id);
        let slurm_state = listed.map(|s| s.state.as_str());
        if slurm_state == Some("TIMEOUT") {
            let limit = self
                .setup
                .spec
                .time
                .as_deref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            return Ending::Failed {
                reason: format!("Slurm task {task} reached its time limit{limit}; another try goes on from its last checkpoint"),
                retryable: true,
            };
        }
        if let Some(end) = worker_end::read(&job) {
            return match end.status {
                EndStatus::Done => Ending::Done,
                EndStatus::Pruned => Ending::Pruned,
                EndStatus::Failed => Ending::Failed {
                    reason: end.reason.unwrap_or_else(|| "training failed".into()),
                    retryable: false,
                },
                EndStatus::EnvironmentFailed => Ending::Failed {
                    reason: end.reason.unwrap_or_else(|| "an I/O error".into()),
                    retryable: true,
                },
                EndStatus::Interrupted => Ending::Stopped {
                    reason: Some(format!("Slurm task {task} was cancelled")),
                },
            };
        }
        // No word from the worker: its final metrics may still be there.
        if let Some(m) = crate::store::health::finished_in_folder(&self.dir, id) {
            return match m.status {
                Some(JobState::Pruned) => Ending::Pruned,
                _ => Ending::Done,
            };
        }
        let started = std::fs::metadata(job.events()).is_ok_and(|m| m.len() > 0);
        let tail = self.output_tail(task);
        match slurm_state {
            Some("CANCELLED") => Ending::Stopped {
                reason: Some(if started {
                    format!("Slurm task {task} was cancelled")
                } else {
                    format!("Slurm task {task} was cancelled before it started")
                }),
            },
            None if !started => Ending::Stopped {
                reason: Some(format!(
                    "Slurm task {task} left Slurm's listings without starting (cancelled while it waited?)"
                )),
            },
            Some("OUT_OF_MEMORY") => Ending::Failed {
                reason: format!(
                    "Slurm task {task} ran out of memory{}{tail}",
                    self.setup
                        .spec
                        .mem
                        .as_deref()
                        .map(|m| format!(" (--mem={m})"))
                        .unwrap_or_default()
                ),
                retryable: true,
            },
            Some(state) => Ending::Failed {
                reason: format!("Slurm ended task {task} as {state} without a word from its worker{tail}"),
                retryable: true,
            },
            None => Ending::Failed {
                reason: format!("Slurm task {task} left Slurm's listings without a word from its worker{tail}"),
                retryable: true,
            },
        }
    }

    /// The last meaningful line of a task's output file, as `: <line>`.
    fn output_tail(&self, task: SlurmTask) -> String {
        let path = self
            .dir
            .slurm()
            .join(format!("{}_{}.out", task.array, task.task));
        let Ok(bytes) = std::fs::read(&path) else {
            return String::new();
        };
        let from = bytes.len().saturating_sub(64 * 1024);
        crate::exec::crash::reason(&String::from_utf8_lossy(&bytes[from..]))
            .map(|l| format!(": {l} (see {})", path.display()))
            .unwrap_or_default()
    }

    /// Asks `squeue` about the followed tasks and ends those no longer queued or running.
    fn check_queue(&mut self, out: &mut Vec<Happening>) -> anyhow::Result<()> {
        self.queue_checked = Some(Instant::now());
        let mut arrays: Vec<u64> = self.followed.values().map(|f| f.task.array).collect();
        arrays.sort_unstable();
        arrays.dedup();
        let listed = match cluster::queue(&arrays) {
            Ok(l) => l,
            Err(_) if self.queue_optional => BTreeMap::new(),
            Err(e) => return Err(e).context("cannot follow the jobs in Slurm"),
        };
        let ended: Vec<(String, SlurmTask)> = self
            .followed
            .iter()
            .filter(|(_, f)| listed.get(&f.task).is_none_or(QueueState::is_terminal))
            .map(|(id, f)| (id.clone(), f.task))
            .collect();
        if ended.is_empty() {
            return Ok(());
        }
        // Their last reports come before their ends.
        self.read_events(out);
        for (id, task) in ended {
            let ending = self.ending(&id, task, listed.get(&task));
            self.followed.remove(&id);
            out.push(Happening::Ended(id, ending));
        }
        Ok(())
    }
}

impl Launcher for SlurmLauncher {
    fn free(&self) -> usize {
        usize::MAX
    }

    fn launch(&mut self, jobs: &[Launch], ledger: &mut Ledger) -> anyhow::Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let n = ledger.slurm.len();
        let slurm_dir = self.dir.slurm();
        std::fs::create_dir_all(&slurm_dir)
            .with_context(|| format!("cannot create {}", slurm_dir.display()))?;
        for j in jobs {
            let job = self.dir.job(&j.id);
            std::fs::create_dir_all(&job.root)
                .with_context(|| format!("cannot create {}", job.root.display()))?;
            // What an earlier attempt said is not this one's.
            for stale in [job.events(), job.end()] {
                match std::fs::remove_file(&stale) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(e).with_context(|| format!("cannot remove {}", stale.display()))
                    }
                    _ => {}
                }
            }
        }
        // Decisions made at rungs before (by a local run) hold for the tasks too.
        if !self.dir.rungs().exists() && !ledger.rungs.is_empty() {
            let rungs = ledger.rungs.clone();
            crate::store::rung_file::update(&self.dir, |r| *r = rungs)
                .context("cannot write the rung decisions for the tasks")?;
        }
        let r = render(&self.dir, &self.setup, jobs, n);
        write_atomic(&r.array_path, r.array_script.as_bytes())
            .with_context(|| format!("cannot write {}", r.array_path.display()))?;
        let array = cluster::submit(&[], &r.array_path)?;
        for (i, j) in jobs.iter().enumerate() {
            let task = SlurmTask { array, task: i };
            if let Some(e) = ledger.jobs.get_mut(&j.id) {
                e.slurm = Some(task);
            }
            self.followed
                .insert(j.id.clone(), Followed { task, offset: 0 });
        }
        ledger.slurm.push(Submission {
            array,
            follow_up: None,
            jobs: jobs.iter().map(|j| j.id.clone()).collect(),
            submitted_at: now(),
        });
        // The array is in Slurm now and recorded; without a follow-up, the next `assay run`
        // takes the turn it would have taken.
        let follow_up = write_atomic(&r.follow_up_path, r.follow_up_script.as_bytes())
            .map_err(anyhow::Error::from)
            .and_then(|_| {
                cluster::submit(&script::follow_up_args(array), &r.follow_up_path)
                    .map_err(anyhow::Error::from)
            });
        match follow_up {
            Ok(id) => {
                if let Some(s) = ledger.slurm.last_mut() {
                    s.follow_up = Some(id);
                }
            }
            Err(e) => self.warnings.push(format!(
                "no follow-up job for array {array} ({e:#}): run `assay run` again once it has ended, to record it and write the report"
            )),
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> anyhow::Result<Vec<Happening>> {
        let mut out = Vec::new();
        self.read_events(&mut out);
        let since = self.queue_checked.map(|t| t.elapsed());
        let due = timeout.is_zero()
            || since.is_none_or(|t| t >= QUEUE_EVERY)
            || (since.is_some_and(|t| t >= QUEUE_AFTER_AN_END)
                && self
                    .followed
                    .keys()
                    .any(|id| self.dir.job(id).end().exists()));
        if due && !self.followed.is_empty() {
            self.check_queue(&mut out)?;
        }
        if out.is_empty() && !timeout.is_zero() {
            std::thread::sleep(timeout);
        }
        Ok(out)
    }

    /// Tasks decide at their rungs themselves (see the worker's `rungs.json`).
    fn answer_rung(&mut self, _id: &str, _promoted: bool) {}

    /// Stops following: the tasks go on in Slurm, and a later `assay run`, `assay status` or
    /// the follow-up job picks them up.
    fn interrupt(&mut self, _hard: bool) {
        self.followed.clear();
    }

    fn active(&self) -> usize {
        self.followed.len()
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn shared_rungs(&self) -> Option<crate::store::rung_file::Rungs> {
        crate::store::rung_file::read(&self.dir).ok()
    }
}
