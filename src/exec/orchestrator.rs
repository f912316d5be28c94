//! `assay run`: the orchestrator. It owns the experiment folder (lock, ledger, plan, folds),
//! starts one worker process per job in parallel slots, follows their progress, answers
//! successive-halving rungs, retries crashed jobs, and resumes where an earlier run stopped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::job_runner::Report;
use super::prepare;
use super::progress::Progress;
use super::scheduler::{self, Slots};
use super::worker;
use crate::data::inventory::Inventory;
use crate::plan::growth::{Continued, Growth};
use crate::plan::Plan;
use crate::spec::Experiment;
use crate::store::ledger::{JobEntry, JobState, Ledger, LEDGER_VERSION};
use crate::store::lock::{LockError, RunLock};
use crate::store::metrics_file;
use crate::store::{now, write_atomic, ExperimentDir};
use crate::train::metrics::higher_is_better;

pub struct RunOptions {
    pub runs_dir: PathBuf,
    /// Jobs run side by side; `None` picks one single-threaded job per thread.
    pub jobs: Option<usize>,
    /// CPU threads shared by the running jobs.
    pub threads: usize,
    /// Threads per job preparing training batches ahead of the trainer.
    pub loader_threads: usize,
    /// Extra attempts for a job whose worker crashed.
    pub retries: u32,
    /// Continue although the spec changed since the experiment started.
    pub force: bool,
    /// Move an existing experiment folder aside and start afresh.
    pub fresh: bool,
    /// Run every failed job again, whatever failed it (divergence included).
    pub retry_failed: bool,
}

#[derive(Debug, Default)]
pub struct RunSummary {
    pub done: usize,
    pub failed: Vec<(String, String)>,
    pub pruned: usize,
    pub pending: usize,
    pub interrupted: bool,
    pub experiment_dir: PathBuf,
}

/// Problems with the user's request rather than with assay (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RunRefused {
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error("the spec changed since {dir} was started:\n{changes}\nrun with --force to continue with the new spec (finished jobs that still match are kept), or --fresh to start over (the old folder is kept beside it)")]
    SpecChanged { dir: PathBuf, changes: String },
    #[error(transparent)]
    Data(#[from] prepare::PrepareError),
    #[error("not even one job fits in this machine's memory: it needs about {need} ({model} to train its model, {data} for each of the worker's and this process's copies of the decoded data), but the machine has {have}; use a smaller train.batch_size or data.image_size, or fewer images")]
    Memory {
        need: String,
        model: String,
        data: String,
        have: String,
    },
}

/// Lists the key paths whose values differ between two JSON documents.
fn json_changes(
    old: &serde_json::Value,
    new: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => json_changes(x, y, &p, out),
                    (Some(x), None) => out.push(format!("  {p}: {x} → (removed)")),
                    (None, Some(y)) => out.push(format!("  {p}: (absent) → {y}")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                json_changes(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a != b => out.push(format!("  {path}: {a} → {b}")),
        _ => {}
    }
}

fn entry_for(job: &crate::plan::Job) -> JobEntry {
    JobEntry {
        state: JobState::Pending,
        trial: job.trial,
        trial_id: job.trial_id.clone(),
        fold: job.fold,
        repeat: job.repeat,
        attempts: 0,
        reason: None,
        retryable: false,
        epochs_done: 0,
        epochs: job.spec.train.epochs,
        refit: false,
        last_score: None,
        best_score: None,
        best_epoch: None,
        updated_at: now(),
    }
}

/// Opens (or creates) the ledger for `plan`, refusing a changed spec unless forced. A damaged
/// ledger is rebuilt from the job folders (the damaged one kept aside), and finished jobs whose
/// files are missing or damaged run again; each such repair is a warning in the result.
fn open_ledger(
    dir: &ExperimentDir,
    experiment: &Experiment,
    plan: &Plan,
    force: bool,
    retry_failed: bool,
) -> anyhow::Result<OpenedLedger> {
    let fingerprint = plan.fingerprint();
    let spec = crate::plan::portable_json(&experiment.base, &experiment.spec_dir);
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    // The plan the folder was last run with: what a rebuilt ledger's jobs come from.
    let last_plan = std::fs::read(dir.plan())
        .ok()
        .and_then(|b| serde_json::from_slice::<Plan>(&b).ok());
    let last_fingerprint = last_plan
        .as_ref()
        .map_or_else(|| fingerprint.clone(), |p| p.fingerprint());
    let loaded = crate::store::health::load_ledger(dir, &last_fingerprint, &spec)?;
    let loaded = match loaded {
        Some(l) => {
            if let Some(warning) = l.rebuilt {
                let aside = crate::store::health::set_aside_damaged(dir)
                    .context("cannot move the damaged ledger.json aside")?;
                warnings.push(format!(
                    "{warning}; the damaged copy is {}",
                    aside.display()
                ));
            }
            Some(l.ledger)
        }
        None => None,
    };
    let mut ledger = match loaded {
        Some(mut old) if old.fingerprint != fingerprint => {
            let growth = last_plan.as_ref().map(|last| growth_of(last, &old, plan));
            let grows = growth.as_ref().is_some_and(Growth::only_grows);
            if !grows && !force {
                let mut changes = Vec::new();
                json_changes(&old.spec, &spec, "", &mut changes);
                if changes.is_empty() {
                    changes.push("  the sweep (its parameters, trials or repeats)".into());
                }
                return Err(RunRefused::SpecChanged {
                    dir: dir.root.clone(),
                    changes: changes.join("\n"),
                }
                .into());
            }
            if let Some(growth) = growth {
                notes.push(format!("the plan changed: {}", growth.summary()));
                continue_jobs(dir, &mut old, plan, &growth.continued, &mut warnings);
            }
            old.jobs.retain(|id, e| e.refit || plan.job(id).is_some());
            old.fingerprint = fingerprint;
            old.spec = spec;
            old
        }
        Some(mut old) => {
            old.jobs.retain(|id, e| e.refit || plan.job(id).is_some());
            old.fingerprint = fingerprint;
            old.spec = spec;
            old
        }
        None => Ledger {
            version: LEDGER_VERSION,
            experiment: plan.experiment.clone(),
            fingerprint,
            spec,
            created_at: now(),
            updated_at: now(),
            jobs: BTreeMap::new(),
            rungs: BTreeMap::new(),
        },
    };
    for (id, entry) in ledger.jobs.iter_mut() {
        match entry.state {
            // Its worker died with the last orchestrator: resume it from its checkpoint, unless
            // it had written its final metrics by then.
            JobState::Running => match crate::store::health::finished_in_folder(dir, id) {
                Some(m) => {
                    entry.state = m.status.unwrap_or(JobState::Done);
                    entry.epochs_done = m.history.len();
                    entry.best_epoch = m.best_epoch;
                    entry.updated_at = now();
                }
                None => entry.state = JobState::Pending,
            },
            // A crash or an I/O error may pass on another try; divergence would only repeat,
            // unless asked for.
            JobState::Failed if entry.retryable || retry_failed => {
                entry.state = JobState::Pending;
                entry.attempts = 0;
                entry.reason = None;
            }
            _ => {}
        }
    }
    for job in &plan.jobs {
        let entry = ledger
            .jobs
            .entry(job.id.clone())
            .or_insert_with(|| entry_for(job));
        // Grid values added to a sweep renumber the trials after them.
        entry.trial = job.trial;
    }
    let problems = crate::store::health::unfinished_after_all(dir, &ledger);
    for (id, problem) in &problems {
        warnings.push(format!(
            "job {id} was finished but {problem}: it runs again"
        ));
    }
    crate::store::health::demote(&mut ledger, &problems);
    Ok(OpenedLedger {
        ledger,
        warnings,
        notes,
    })
}

/// How many jobs fit side by side in the machine's memory, and what each needs.
#[derive(Clone, Debug)]
struct MemoryFit {
    jobs: usize,
    each: String,
}

/// How many jobs fit in the machine's memory at once: each worker holds its own copy of the
/// decoded data beside what its model needs to train (the largest of the plan's), and the
/// orchestrator holds one more copy of the data. Refused before anything is written when not
/// even one job fits; `None` when the machine's memory is unknown.
fn fit_in_memory(plan: &Plan, data: &prepare::LoadedData) -> Result<Option<MemoryFit>, RunRefused> {
    use crate::model::cost::{for_model, human_bytes, machine_memory};
    let Some(memory) = machine_memory() else {
        return Ok(None);
    };
    let pool = &data.pool;
    let shape = (pool.channels, pool.height, pool.width);
    let data_bytes = [Some(pool), data.test.as_ref()]
        .into_iter()
        .flatten()
        .map(|s| s.pixels.len() as u64)
        .sum::<u64>();
    let training = plan
        .jobs
        .iter()
        .filter_map(|j| {
            let cost = for_model(&j.spec.model, shape, j.spec.task, Some(data.classes.len()))?;
            Some(cost.training_bytes(j.spec.train.batch_size.min(pool.len().max(1))))
        })
        .max()
        .unwrap_or(0);
    let per_job = training.saturating_add(data_bytes);
    let each = format!(
        "each needs about {} ({} to train its model, {} for its copy of the decoded data) of the machine's {}",
        human_bytes(per_job),
        human_bytes(training),
        human_bytes(data_bytes),
        human_bytes(memory)
    );
    match scheduler::jobs_that_fit(usize::MAX, per_job, data_bytes, memory) {
        Some(jobs) => Ok(Some(MemoryFit { jobs, each })),
        None => Err(RunRefused::Memory {
            need: human_bytes(per_job.saturating_add(data_bytes)),
            model: human_bytes(training),
            data: human_bytes(data_bytes),
            have: human_bytes(memory),
        }),
    }
}

/// The ledger a run continues with, and what the user should hear about it.
struct OpenedLedger {
    ledger: Ledger,
    /// Repairs and surprises.
    warnings: Vec<String>,
    /// What changed in the plan, when it grew.
    notes: Vec<String>,
}

/// The plan and ledger a folder was last run with, when both can be read.
pub fn earlier_plan(dir: &ExperimentDir) -> Option<(Plan, Ledger)> {
    let plan = serde_json::from_slice(&std::fs::read(dir.plan()).ok()?).ok()?;
    let ledger = Ledger::load(&dir.root).ok()??;
    Some((plan, ledger))
}

/// How `plan` relates to the plan the folder was last run with (`last`), its refit job aside.
pub fn growth_of(last: &Plan, ledger: &Ledger, plan: &Plan) -> Growth {
    let mut last = last.clone();
    last.jobs
        .retain(|j| !ledger.jobs.get(&j.id).is_some_and(|e| e.refit));
    crate::plan::growth::compare(&last, plan)
}

/// Moves the folders of jobs the new plan trains for more epochs to their new ids, so that
/// they continue from their last checkpoint; a finished job without one trains afresh under
/// its new id (with a warning), its old folder left as it was.
fn continue_jobs(
    dir: &ExperimentDir,
    ledger: &mut Ledger,
    plan: &Plan,
    continued: &[Continued],
    warnings: &mut Vec<String>,
) {
    for c in continued {
        let (Some(entry), Some(job)) = (ledger.jobs.get(&c.from), plan.job(&c.to)) else {
            continue;
        };
        let (from, to) = (dir.job(&c.from), dir.job(&c.to));
        if to.root.exists() {
            continue;
        }
        if entry.state == JobState::Done && !from.checkpoint().exists() {
            warnings.push(format!(
                "job {} has no checkpoint to continue from: its {} epochs run afresh as job {}",
                c.from, c.epochs_after, c.to
            ));
            continue;
        }
        if let Err(e) = std::fs::rename(&from.root, &to.root) {
            warnings.push(format!(
                "cannot move {} to {} ({e}): job {} runs afresh",
                from.root.display(),
                to.root.display(),
                c.to
            ));
            continue;
        }
        let mut entry = ledger
            .jobs
            .remove(&c.from)
            .unwrap_or_else(|| entry_for(job));
        if entry.state == JobState::Done {
            entry.state = JobState::Pending;
        }
        entry.epochs = c.epochs_after;
        entry.updated_at = now();
        ledger.jobs.insert(c.to.clone(), entry);
    }
}

/// Compares the data just loaded with the inventory the experiment started on and warns, naming
/// what changed; writes the inventory when the folder has none (a new experiment, or one from
/// before inventories). The stored inventory is never replaced: it describes the data the
/// experiment started on (and its folds were cut from).
fn check_data(
    dir: &ExperimentDir,
    data: &prepare::LoadedData,
    progress: &Progress,
) -> anyhow::Result<()> {
    let path = dir.inventory();
    let stored = match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<Inventory>(&bytes) {
            Ok(inv) => Some(inv),
            Err(e) => {
                progress.note(&format!(
                    "warning: {} is damaged ({e}); writing it anew from the current data",
                    path.display()
                ));
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    match stored {
        Some(old) => {
            let changes = Inventory::diff(&old, &data.inventory);
            let (was, now) = (old.hash(), &data.data_hash);
            if changes.is_empty() {
                return Ok(());
            }
            progress.note(&format!(
                "warning: the data changed since this experiment started (data hash {} → {}):",
                &was[..12],
                &now[..12.min(now.len())]
            ));
            for line in changes.lines() {
                progress.note(&format!("  {line}"));
            }
            progress.note(
                "  finished jobs are kept; each job's job.json records the data_hash it was trained on",
            );
        }
        None => {
            write_atomic(&path, &serde_json::to_vec(&data.inventory)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(())
}

/// The best trial by its mean validation score over its finished jobs; trials with a failed or
/// pruned job are not candidates.
pub fn best_trial(plan: &Plan, ledger: &Ledger, dir: &ExperimentDir) -> Option<usize> {
    let mut scores: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut excluded = std::collections::BTreeSet::new();
    for job in &plan.jobs {
        let entry = ledger.jobs.get(&job.id)?;
        if entry.refit {
            continue;
        }
        if entry.state != JobState::Done {
            excluded.insert(job.trial);
            continue;
        }
        let m = metrics_file::read(&dir.job(&job.id).metrics()).ok()??;
        let score = m.split("val")?.get(&job.spec.train.best_metric)?;
        scores.entry(job.trial).or_default().push(score);
    }
    let metric = &plan.jobs.first()?.spec.train.best_metric;
    let higher = higher_is_better(metric);
    scores
        .into_iter()
        .filter(|(t, _)| !excluded.contains(t))
        .map(|(t, s)| (t, s.iter().sum::<f64>() / s.len() as f64))
        .max_by(|a, b| {
            if higher {
                a.1.total_cmp(&b.1)
            } else {
                b.1.total_cmp(&a.1)
            }
        })
        .map(|(t, _)| t)
}

/// The best trial retrained on the whole training pool (no validation; the last epoch is kept)
/// and evaluated on the test set.
fn refit_job(plan: &Plan, trial: usize) -> Option<crate::plan::Job> {
    let template = plan
        .jobs
        .iter()
        .find(|j| j.trial == trial && j.repeat == 0)?;
    let mut spec = template.spec.clone();
    spec.split.folds = 0;
    spec.split.validation_fraction = 0.0;
    spec.split.refit = false;
    let json = serde_json::to_string(&spec).unwrap_or_default();
    let id = crate::plan::hex_hash(&[json.as_bytes(), b"refit", &template.seed.to_le_bytes()]);
    // Its own HParams group and trial id: it must not be averaged with the trial's folds.
    let trial_id = format!("{}-refit", template.trial_id);
    Some(crate::plan::Job {
        id,
        fold: None,
        spec,
        trial_id,
        ..template.clone()
    })
}

enum Message {
    Report(String, Report),
    Closed(String),
}

struct Running {
    child: Child,
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

/// How many interrupt signals (Ctrl-C, SIGTERM) arrived.
pub fn interrupt_counter() -> anyhow::Result<Arc<AtomicUsize>> {
    let count = Arc::new(AtomicUsize::new(0));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let c = count.clone();
        // SAFETY: the handler only increments an atomic counter, which is async-signal-safe.
        unsafe {
            signal_hook::low_level::register(signal, move || {
                c.fetch_add(1, Ordering::SeqCst);
            })
        }
        .context("cannot install the Ctrl-C handler")?;
    }
    Ok(count)
}

/// Runs every job of the experiment that is not finished yet.
pub fn run(
    experiment: &Experiment,
    spec_path: &Path,
    opts: &RunOptions,
    progress: &mut Progress,
) -> anyhow::Result<RunSummary> {
    let mut plan = crate::plan::expand(experiment);
    let dir = ExperimentDir::new(&opts.runs_dir, &plan.experiment);
    // Load the data first: bad data is refused before anything is written.
    let data = prepare::load(&experiment.base).map_err(RunRefused::from)?;
    for report in &data.reports {
        for (path, reason) in &report.skipped {
            progress.note(&format!(
                "warning: skipped corrupt image {}: {reason}",
                path.display()
            ));
        }
    }
    // Every split must hold images, for every fold: refused before anything is written.
    let new_folds = prepare::make_folds(&experiment.base, &data.pool).map_err(RunRefused::from)?;
    for w in prepare::check_splits(&experiment.base, &data, new_folds.as_ref())
        .map_err(RunRefused::from)?
    {
        progress.note(&format!("warning: {w}"));
    }
    let memory_fit = fit_in_memory(&plan, &data)?;
    if opts.fresh && dir.root.exists() {
        let aside = dir
            .root
            .with_file_name(format!("{}.{}", plan.experiment, now() as u64));
        std::fs::rename(&dir.root, &aside)
            .with_context(|| format!("cannot move {} aside", dir.root.display()))?;
        progress.note(&format!("moved the earlier run to {}", aside.display()));
    }
    let _lock = RunLock::acquire(&dir.root).map_err(RunRefused::from)?;
    // Half-written files of a run that died; whatever they were replacing is intact.
    crate::store::health::remove_stale_temp_files(&dir);
    let opened = open_ledger(&dir, experiment, &plan, opts.force, opts.retry_failed)?;
    let mut ledger = opened.ledger;
    for w in opened.warnings {
        progress.note(&format!("warning: {w}"));
    }
    for n in opened.notes {
        progress.note(&n);
    }
    check_data(&dir, &data, progress)?;
    let folds_path = dir.folds();
    if !folds_path.exists() {
        if let Some(folds) = new_folds {
            write_atomic(&folds_path, &serde_json::to_vec(&folds)?)
                .with_context(|| format!("cannot write {}", folds_path.display()))?;
        }
    }
    write_atomic(&dir.plan(), &serde_json::to_vec(&plan)?)
        .with_context(|| format!("cannot write {}", dir.plan().display()))?;
    if ledger.jobs.values().all(|e| e.attempts == 0) {
        crate::report::tb_sink::write_experiment_summary(
            &dir.root,
            experiment.sweep.as_ref(),
            experiment.base.task,
        )
        .context("cannot write the TensorBoard experiment summary")?;
    }
    ledger.save(&dir.root)?;

    let unfinished = ledger
        .jobs
        .values()
        .filter(|e| matches!(e.state, JobState::Pending | JobState::Running))
        .count();
    let mut slots = scheduler::slots(opts.jobs, opts.threads, unfinished);
    if let Some(fit) = memory_fit.filter(|f| f.jobs < slots.jobs) {
        progress.note(&format!(
            "{} job(s) at a time fit in memory, not {}: {}",
            fit.jobs, slots.jobs, fit.each
        ));
        slots = scheduler::slots(Some(fit.jobs), opts.threads, fit.jobs);
    }
    let interrupts = interrupt_counter()?;
    let spec_revision = worker::spec_git_revision(spec_path);
    let pruning = experiment.sweep.as_ref().and_then(|s| s.pruning.clone());
    let (tx, rx) = mpsc::channel::<Message>();
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let started = Instant::now();
    let mut stopping = false;
    let mut refit_considered = false;
    progress.start(&plan, &ledger, slots);
    loop {
        let signals = interrupts.load(Ordering::SeqCst);
        if signals >= 1 && !stopping {
            stopping = true;
            progress.note("interrupted: running jobs stop at their next step and keep their last epoch checkpoint (Ctrl-C again to stop at once)");
            for r in running.values() {
                // SAFETY: kill(2) with a child's pid; no memory is touched.
                unsafe { libc::kill(r.child.id() as i32, libc::SIGTERM) };
            }
        }
        if signals >= 2 {
            for r in running.values_mut() {
                let _ = r.child.kill();
            }
        }
        if !stopping {
            let free = slots.jobs.saturating_sub(running.len());
            for id in scheduler::next_jobs(&plan, &ledger, free) {
                let job = plan
                    .job(&id)
                    .context("a scheduled job vanished from the plan")?;
                let rungs = pruning
                    .as_ref()
                    .map(|p| p.rungs(job.spec.train.epochs))
                    .unwrap_or_default();
                let r = spawn(
                    &dir,
                    &id,
                    slots,
                    opts.loader_threads,
                    &rungs,
                    spec_revision.as_deref(),
                    tx.clone(),
                )?;
                running.insert(id.clone(), r);
                if let Some(e) = ledger.jobs.get_mut(&id) {
                    e.state = JobState::Running;
                    e.attempts += 1;
                    e.reason = None;
                    e.updated_at = now();
                }
                ledger.save(&dir.root)?;
                progress.job_started(&id, &ledger);
            }
        }
        if running.is_empty() {
            if experiment.base.split.refit && !refit_considered && !stopping {
                refit_considered = true;
                if let Some(job) =
                    best_trial(&plan, &ledger, &dir).and_then(|t| refit_job(&plan, t))
                {
                    progress.note(&format!(
                        "refit: trial {} retrained on all training data as job {}",
                        job.trial, job.id
                    ));
                    let mut entry = entry_for(&job);
                    entry.refit = true;
                    let entry = ledger.jobs.entry(job.id.clone()).or_insert(entry);
                    if entry.state == JobState::Running {
                        entry.state = JobState::Pending;
                    }
                    plan.jobs.push(job);
                    write_atomic(&dir.plan(), &serde_json::to_vec(&plan)?)
                        .with_context(|| format!("cannot write {}", dir.plan().display()))?;
                    ledger.save(&dir.root)?;
                    continue;
                }
            }
            break;
        }
        let mut next = rx.recv_timeout(Duration::from_millis(100)).ok();
        while let Some(msg) = next {
            match msg {
                Message::Report(
                    id,
                    Report::Epoch {
                        epoch,
                        epochs,
                        score,
                        best_score,
                        best_epoch,
                    },
                ) => {
                    if let Some(e) = ledger.jobs.get_mut(&id) {
                        e.epochs_done = epoch;
                        e.epochs = epochs;
                        e.last_score = score;
                        e.best_score = best_score;
                        e.best_epoch = best_epoch;
                        e.updated_at = now();
                    }
                    ledger.save(&dir.root)?;
                    progress.epoch(&id, epoch, epochs, score, &ledger);
                }
                Message::Report(id, Report::Rung { epoch, score }) => {
                    let job = plan
                        .job(&id)
                        .context("a running job vanished from the plan")?;
                    let higher = higher_is_better(&job.spec.train.best_metric);
                    let factor = pruning.as_ref().map_or(3, |p| p.reduction_factor);
                    let rung = ledger.rungs.entry(epoch).or_default();
                    let promoted =
                        scheduler::rung_verdict(rung, &id, job.trial, score, factor, higher);
                    ledger.save(&dir.root)?;
                    if let Some(r) = running.get_mut(&id) {
                        // A worker that died meanwhile is handled when its exit is seen.
                        let _ =
                            writeln!(r.stdin, "{}", if promoted { "continue" } else { "prune" });
                        let _ = r.stdin.flush();
                    }
                }
                Message::Report(id, Report::Finished { status, reason }) => {
                    if let Some(r) = running.get_mut(&id) {
                        r.finished = Some((status, reason));
                    }
                }
                Message::Report(
                    id,
                    Report::Started {
                        parameters,
                        resumed_from,
                    },
                ) => {
                    let from = if resumed_from > 0 {
                        format!(", resuming after epoch {resumed_from}")
                    } else {
                        String::new()
                    };
                    progress.note(&format!("{id} model: {parameters} parameters{from}"));
                }
                Message::Report(id, Report::Warning { message }) => {
                    progress.note(&format!("warning: job {id}: {message}"));
                }
                Message::Report(id, Report::Step { epoch, step, steps }) => {
                    progress.step(&id, epoch, step, steps, &ledger)
                }
                Message::Closed(id) => {
                    if let Some(r) = running.get_mut(&id) {
                        r.closed = true;
                    }
                }
            }
            next = rx.try_recv().ok();
        }
        // Reap workers whose reports are all read and whose process has ended.
        let ids: Vec<String> = running
            .iter()
            .filter(|(_, r)| r.closed)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let Some(r) = running.get_mut(&id) else {
                continue;
            };
            let Some(status) = r.child.try_wait().context("cannot wait for a worker")? else {
                continue;
            };
            let Some(r) = running.remove(&id) else {
                continue;
            };
            let entry = ledger
                .jobs
                .get_mut(&id)
                .context("a running job vanished from the ledger")?;
            let code = status.code();
            let finished = r.finished;
            let (state, reason, retryable) = match (code, finished) {
                (Some(0), Some((s, _))) if s == "pruned" => (
                    JobState::Pruned,
                    Some(format!("pruned after epoch {}", entry.epochs_done)),
                    false,
                ),
                (Some(0), _) => (JobState::Done, None, false),
                (Some(worker::FAILED_CODE), f) => (
                    JobState::Failed,
                    Some(
                        f.and_then(|f| f.1)
                            .unwrap_or_else(|| "training failed".into()),
                    ),
                    false,
                ),
                (Some(worker::ENVIRONMENT_FAILED_CODE), f) => (
                    JobState::Failed,
                    Some(f.and_then(|f| f.1).unwrap_or_else(|| "an I/O error".into())),
                    true,
                ),
                (Some(worker::INTERRUPTED_CODE), _) => (JobState::Pending, None, false),
                // Killed by a second Ctrl-C: interrupted, not failed; it resumes from its last
                // checkpoint on the next run.
                _ if signals >= 2 => (JobState::Pending, Some("interrupted".to_string()), false),
                _ => {
                    let how = match (code, std::os::unix::process::ExitStatusExt::signal(&status)) {
                        (_, Some(sig)) => format!("the worker was killed by signal {sig}"),
                        (Some(c), None) => format!("the worker crashed (exit code {c})"),
                        (None, None) => "the worker crashed".to_string(),
                    };
                    let said = r.stderr.join().unwrap_or_default();
                    let tail = super::crash::reason(&String::from_utf8_lossy(&said))
                        .map(|l| format!(": {l}"))
                        .unwrap_or_default();
                    (JobState::Failed, Some(format!("{how}{tail}")), true)
                }
            };
            // Keep a worker's stderr only when it said something (a panic, an error).
            if std::fs::metadata(&r.stderr_path).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(&r.stderr_path);
            }
            entry.state = state;
            entry.reason = reason;
            entry.retryable = retryable;
            entry.updated_at = now();
            if state == JobState::Failed && retryable && entry.attempts <= opts.retries && !stopping
            {
                entry.state = JobState::Pending;
                progress.note(&format!(
                    "job {id} failed ({}); retrying",
                    entry.reason.as_deref().unwrap_or("")
                ));
            }
            ledger.save(&dir.root)?;
            progress.job_ended(&id, &ledger);
        }
        if signals >= 2 && running.is_empty() {
            break;
        }
    }
    let mut summary = RunSummary {
        experiment_dir: dir.root.clone(),
        interrupted: stopping,
        ..Default::default()
    };
    for (id, e) in &ledger.jobs {
        match e.state {
            JobState::Done => summary.done += 1,
            JobState::Pruned => summary.pruned += 1,
            JobState::Failed => summary
                .failed
                .push((id.clone(), e.reason.clone().unwrap_or_default())),
            JobState::Pending | JobState::Running => summary.pending += 1,
        }
    }
    progress.finish(&ledger, started.elapsed());
    Ok(summary)
}

/// Starts `assay worker` for one job; its reports arrive on `tx`.
fn spawn(
    dir: &ExperimentDir,
    id: &str,
    slots: Slots,
    loader_threads: usize,
    rungs: &[usize],
    spec_revision: Option<&str>,
    tx: mpsc::Sender<Message>,
) -> anyhow::Result<Running> {
    let exe = std::env::current_exe().context("cannot find the assay executable")?;
    let job_dir = dir.job(id);
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
    cmd.arg("worker")
        .arg("--experiment-dir")
        .arg(&dir.root)
        .arg("--job")
        .arg(id)
        .arg("--threads")
        .arg(slots.threads_per_job.to_string())
        .arg("--loader-threads")
        .arg(loader_threads.to_string());
    if !rungs.is_empty() {
        cmd.arg("--rungs").arg(
            rungs
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    if let Some(rev) = spec_revision {
        cmd.arg("--spec-revision").arg(rev);
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
    let job = id.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(report) = serde_json::from_str::<Report>(&line) {
                if tx.send(Message::Report(job.clone(), report)).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Message::Closed(job));
    });
    Ok(Running {
        child,
        stdin,
        finished: None,
        closed: false,
        stderr_path,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::json_changes;

    #[test]
    fn changes_name_the_key_paths() {
        let a =
            serde_json::json!({"optimizer": {"lr": 0.1, "kind": "sgd"}, "train": {"epochs": 3}});
        let b = serde_json::json!({"optimizer": {"lr": 0.2, "kind": "sgd"}, "train": {"epochs": 3, "patience": 2}});
        let mut out = Vec::new();
        json_changes(&a, &b, "", &mut out);
        assert_eq!(
            out,
            vec![
                "  optimizer.lr: 0.1 → 0.2".to_string(),
                "  train.patience: (absent) → 2".to_string()
            ]
        );
    }
}
