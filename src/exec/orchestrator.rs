//! `assay run`: the orchestrator. It owns the experiment folder (lock, ledger, plan, folds),
//! hands pending jobs to a launcher (worker processes here, or a Slurm job array), records what
//! it hears of them, answers successive-halving rungs, retries crashed jobs, retrains the best
//! trial, and resumes where an earlier run stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::job_runner::Report;
use super::launch::local::LocalLauncher;
use super::launch::slurm::{self as slurm_launch, SlurmLauncher, SlurmSetup};
use super::launch::{Ending, Happening, Launch, Launcher};
use super::memory_fit;
use super::prepare;
use super::progress::Progress;
pub use super::refused::RunRefused;
pub use super::resume::{earlier_plan, growth_of};
use super::resume::{entry_for, open_ledger};
use super::scheduler::{self, DevicePool, Slots};
use super::worker;
use crate::data::inventory::Inventory;
use crate::devices::JobDevice;
use crate::plan::Plan;
use crate::spec::{Backend, Experiment, Pruning, SlurmSpec};
use crate::store::ledger::{JobState, Ledger};
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
    /// Where the jobs run.
    pub backend: Backend,
    /// The devices local jobs are placed on (`cpu`, or GPUs checked to exist).
    pub devices: Vec<crate::devices::JobDevice>,
    /// Jobs sharing one GPU at once.
    pub per_device: usize,
    /// What Slurm tasks ask for (the spec's `[slurm]` with the command line's flags).
    pub slurm: SlurmSpec,
    /// Show what would be submitted to Slurm, submit nothing.
    pub dry_run: bool,
    /// With Slurm: stay and follow the jobs until they have ended.
    pub wait: bool,
    /// This run is a Slurm submission's follow-up job: it records how the array ended and
    /// starts only what is new or retried, not what was stopped on request.
    pub follow_up: bool,
    /// The arguments (after the executable) of a Slurm submission's follow-up job.
    pub follow_up_command: Vec<String>,
}

#[derive(Debug, Default)]
pub struct RunSummary {
    pub done: usize,
    pub failed: Vec<(String, String)>,
    pub pruned: usize,
    pub pending: usize,
    /// Jobs queued or running in Slurm when this run returned.
    pub in_slurm: usize,
    /// The Slurm job arrays this run submitted.
    pub submitted: Vec<u64>,
    /// What `--dry-run` would have submitted: the batch scripts and commands.
    pub dry_run: Option<String>,
    /// A follow-up job found another `assay run` holding the folder and left it the turn.
    pub left_to_another: bool,
    pub interrupted: bool,
    pub experiment_dir: PathBuf,
}

/// What a turn of the orchestrator needs to record what it hears.
struct Recorder<'a> {
    dir: &'a ExperimentDir,
    pruning: Option<&'a Pruning>,
    retries: u32,
}

impl Recorder<'_> {
    /// Records one happening in the ledger (saved) and the progress display; returns a rung
    /// verdict for the launcher to pass on.
    fn record(
        &self,
        h: Happening,
        plan: &Plan,
        ledger: &mut Ledger,
        progress: &mut Progress,
        stopping: bool,
    ) -> anyhow::Result<Option<(String, bool)>> {
        match h {
            Happening::Report(
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
                ledger.save(&self.dir.root)?;
                progress.epoch(&id, epoch, epochs, score, ledger);
            }
            Happening::Report(id, Report::Rung { epoch, score }) => {
                let job = plan
                    .job(&id)
                    .context("a running job vanished from the plan")?;
                let higher = higher_is_better(&job.spec.train.best_metric);
                let factor = self.pruning.map_or(3, |p| p.reduction_factor);
                let rung = ledger.rungs.entry(epoch).or_default();
                let promoted = scheduler::rung_verdict(rung, &id, job.trial, score, factor, higher);
                ledger.save(&self.dir.root)?;
                return Ok(Some((id, promoted)));
            }
            Happening::Report(
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
            Happening::Report(id, Report::Warning { message }) => {
                progress.note(&format!("warning: job {id}: {message}"));
            }
            Happening::Report(id, Report::Step { epoch, step, steps }) => {
                progress.step(&id, epoch, step, steps, ledger)
            }
            Happening::Report(_, Report::Finished { .. }) => {}
            Happening::Ended(id, ending) => {
                let entry = ledger
                    .jobs
                    .get_mut(&id)
                    .context("a running job vanished from the ledger")?;
                if record_ending(entry, ending, self.retries, stopping) {
                    progress.note(&format!(
                        "job {id} failed ({}); retrying",
                        entry.reason.as_deref().unwrap_or("")
                    ));
                }
                ledger.save(&self.dir.root)?;
                progress.job_ended(&id, ledger);
            }
        }
        Ok(None)
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
/// Records how a job ended in its ledger entry; a crash (or an I/O error) within `retries`
/// makes it pending again unless the run is `stopping`, and then true is returned.
pub fn record_ending(
    entry: &mut crate::store::ledger::JobEntry,
    ending: Ending,
    retries: u32,
    stopping: bool,
) -> bool {
    let (state, reason, retryable, stopped) = match ending {
        Ending::Done => (JobState::Done, None, false, false),
        Ending::Pruned => (
            JobState::Pruned,
            Some(format!("pruned after epoch {}", entry.epochs_done)),
            false,
            false,
        ),
        Ending::Failed { reason, retryable } => (JobState::Failed, Some(reason), retryable, false),
        Ending::Stopped { reason } => (JobState::Pending, reason, false, true),
    };
    entry.state = state;
    entry.reason = reason;
    entry.retryable = retryable;
    entry.stopped = stopped;
    entry.updated_at = now();
    let retry = state == JobState::Failed && retryable && entry.attempts <= retries && !stopping;
    if retry {
        entry.state = JobState::Pending;
    }
    retry
}

/// Whether the ledger says a job is queued or running in Slurm.
pub fn in_slurm(e: &crate::store::ledger::JobEntry) -> bool {
    e.state == JobState::Running && e.slurm.is_some()
}

/// Takes the successive-halving decisions the jobs made themselves into the ledger.
fn sync_rungs(
    launcher: &dyn Launcher,
    ledger: &mut Ledger,
    dir: &ExperimentDir,
) -> anyhow::Result<()> {
    if let Some(rungs) = launcher.shared_rungs() {
        if !rungs.is_empty() && rungs != ledger.rungs {
            ledger.rungs = rungs;
            ledger.save(&dir.root)?;
        }
    }
    Ok(())
}

/// A Slurm refusal (a wrong partition, no Slurm here) is the user's to mend: exit code 2.
fn slurm_refusal(e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<crate::slurm::SlurmError>() {
        Ok(s) if s.is_refusal() => RunRefused::Slurm(s).into(),
        Ok(s) => s.into(),
        Err(e) => e,
    }
}

/// Runs every job of the experiment that is not finished yet: here, or (with `--backend
/// slurm`) by submitting them to Slurm and, with `--wait`, following them to their ends.
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
    let memory_fit = match opts.backend {
        Backend::Local => memory_fit::fit_in_memory(&plan, &data)?,
        Backend::Slurm => {
            memory_fit::fit_in_slurm_task(&plan, &data, opts.slurm.mem.as_deref())?;
            None
        }
    };
    if opts.fresh && dir.root.exists() && !opts.dry_run {
        let aside = dir
            .root
            .with_file_name(format!("{}.{}", plan.experiment, now() as u64));
        std::fs::rename(&dir.root, &aside)
            .with_context(|| format!("cannot move {} aside", dir.root.display()))?;
        progress.note(&format!("moved the earlier run to {}", aside.display()));
    }
    // A dry run only reads the folder.
    let _lock = if opts.dry_run {
        None
    } else {
        match RunLock::acquire(&dir.root) {
            Ok(lock) => Some(lock),
            Err(LockError::Held { .. } | LockError::OtherHost { .. }) if opts.follow_up => {
                progress.note(
                    "another `assay run` holds this experiment: it records how the array ended",
                );
                return Ok(RunSummary {
                    left_to_another: true,
                    experiment_dir: dir.root.clone(),
                    ..Default::default()
                });
            }
            Err(e) => return Err(RunRefused::from(e).into()),
        }
    };
    if !opts.dry_run {
        // Half-written files of a run that died; whatever they were replacing is intact.
        crate::store::health::remove_stale_temp_files(&dir);
    }
    let opened = open_ledger(&dir, experiment, &plan, opts.force, opts.retry_failed)?;
    let mut ledger = opened.ledger;
    for w in opened.warnings {
        progress.note(&format!("warning: {w}"));
    }
    for n in opened.notes {
        progress.note(&n);
    }
    let pruning = experiment.sweep.as_ref().and_then(|s| s.pruning.clone());
    let launches = |ids: &[String], plan: &Plan| -> Vec<Launch> {
        ids.iter()
            .map(|id| Launch {
                id: id.clone(),
                rungs: match (&pruning, plan.job(id)) {
                    (Some(p), Some(job)) => p.rungs(job.spec.train.epochs),
                    _ => Vec::new(),
                },
            })
            .collect()
    };
    let spec_revision = worker::spec_git_revision(spec_path);
    let slurm_setup = (opts.backend == Backend::Slurm).then(|| {
        let executable = opts
            .slurm
            .executable
            .clone()
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("assay"));
        let mut follow_up = vec![executable.display().to_string()];
        follow_up.extend(opts.follow_up_command.iter().cloned());
        SlurmSetup {
            name: plan.experiment.clone(),
            spec: opts.slurm.clone(),
            executable,
            loader_threads: opts.loader_threads,
            reduction_factor: pruning.as_ref().map(|p| p.reduction_factor),
            spec_revision: spec_revision.clone(),
            follow_up,
        }
    });
    if opts.dry_run {
        let mut preview = ledger.clone();
        preview.jobs.values_mut().for_each(|e| e.stopped = false);
        let ids = scheduler::next_jobs(&plan, &preview, usize::MAX);
        let setup = slurm_setup.context("--dry-run needs --backend slurm")?;
        return Ok(RunSummary {
            dry_run: Some(dry_run_text(&dir, &setup, &launches(&ids, &plan), &preview)),
            experiment_dir: dir.root.clone(),
            ..Default::default()
        });
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

    let recorder = Recorder {
        dir: &dir,
        pruning: pruning.as_ref(),
        retries: opts.retries,
    };
    let unfinished = ledger
        .jobs
        .values()
        .filter(|e| matches!(e.state, JobState::Pending | JobState::Running))
        .count();
    let (mut launcher, slots): (Box<dyn Launcher>, Slots) = match slurm_setup {
        Some(setup) => {
            let slots = Slots {
                jobs: opts.slurm.max_running.unwrap_or(unfinished).max(1),
                threads_per_job: opts.slurm.cpus_per_task,
            };
            (Box::new(SlurmLauncher::new(&dir, setup, &ledger)), slots)
        }
        None => {
            // Jobs an earlier submission left in Slurm must have ended before they run here.
            if ledger.jobs.values().any(in_slurm) {
                let mut settler = SlurmLauncher::settler(&dir, &ledger);
                for h in settler.wait(Duration::ZERO)? {
                    recorder.record(h, &plan, &mut ledger, progress, false)?;
                }
                if settler.active() > 0 {
                    let tasks = settler.tasks();
                    let mut arrays: Vec<u64> = tasks.values().map(|t| t.array).collect();
                    arrays.dedup();
                    return Err(RunRefused::InSlurm {
                        count: tasks.len(),
                        tasks: format!(
                            "array {}",
                            arrays
                                .iter()
                                .map(u64::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        dir: dir.root.clone(),
                    }
                    .into());
                }
            }
            let gpus = opts.devices.iter().any(|d| *d != JobDevice::Cpu);
            let mut slots = if gpus {
                let capacity = opts.devices.len() * opts.per_device.max(1);
                scheduler::gpu_slots(opts.jobs, opts.threads, unfinished, capacity)
            } else {
                scheduler::slots(opts.jobs, opts.threads, unfinished)
            };
            if let Some(fit) = memory_fit.filter(|f| f.jobs < slots.jobs) {
                progress.note(&format!(
                    "{} job(s) at a time fit in memory, not {}: {}",
                    fit.jobs, slots.jobs, fit.each
                ));
                slots = scheduler::slots(Some(fit.jobs), opts.threads, fit.jobs);
            }
            let pool = if gpus {
                DevicePool::new(&opts.devices, opts.per_device)
            } else {
                DevicePool::new(&[JobDevice::Cpu], slots.jobs)
            };
            let launcher =
                LocalLauncher::new(&dir, slots, pool, opts.loader_threads, spec_revision);
            (Box::new(launcher), slots)
        }
    };
    // What ended while nobody followed (Slurm tasks of an earlier submission).
    for h in launcher.wait(Duration::ZERO)? {
        recorder.record(h, &plan, &mut ledger, progress, false)?;
    }
    sync_rungs(launcher.as_ref(), &mut ledger, &dir)?;
    // A user's run starts again what was stopped on request; a follow-up job does not.
    if !opts.follow_up {
        ledger.jobs.values_mut().for_each(|e| e.stopped = false);
    }
    ledger.save(&dir.root)?;

    let interrupts = interrupt_counter()?;
    let detach = opts.backend == Backend::Slurm && !opts.wait;
    let started = Instant::now();
    let mut stopping = false;
    let mut refit_considered = false;
    let mut submitted = Vec::new();
    progress.start(&plan, &ledger, slots);
    loop {
        let signals = interrupts.load(Ordering::SeqCst);
        if signals >= 1 && !stopping {
            stopping = true;
            progress.note(match opts.backend {
                Backend::Local => "interrupted: running jobs stop at their next step and keep their last epoch checkpoint (Ctrl-C again to stop at once)",
                Backend::Slurm => "stopped following: the jobs go on in Slurm (`assay status` shows them, `assay cancel` stops them)",
            });
            launcher.interrupt(false);
        }
        if signals >= 2 {
            launcher.interrupt(true);
        }
        if !stopping {
            let ids = scheduler::next_jobs(&plan, &ledger, launcher.free());
            if !ids.is_empty() {
                let submissions = ledger.slurm.len();
                launcher
                    .launch(&launches(&ids, &plan), &mut ledger)
                    .map_err(slurm_refusal)?;
                for id in &ids {
                    if let Some(e) = ledger.jobs.get_mut(id) {
                        e.state = JobState::Running;
                        e.attempts += 1;
                        e.reason = None;
                        e.stopped = false;
                        e.updated_at = now();
                        if opts.backend == Backend::Local {
                            e.slurm = None;
                        }
                    }
                }
                ledger.save(&dir.root)?;
                if let Some(s) = ledger.slurm.get(submissions) {
                    submitted.push(s.array);
                    let follow_up = s
                        .follow_up
                        .map(|f| format!("; job {f} follows it"))
                        .unwrap_or_default();
                    progress.note(&format!(
                        "submitted {} job(s) to Slurm as array {}{follow_up}",
                        ids.len(),
                        s.array
                    ));
                }
                for id in &ids {
                    progress.job_started(id, &ledger);
                }
                for w in launcher.take_warnings() {
                    progress.note(&format!("warning: {w}"));
                }
            }
        }
        if launcher.active() == 0 {
            let all_final = ledger.jobs.values().all(|e| e.state.is_final());
            if experiment.base.split.refit && !refit_considered && !stopping && all_final {
                refit_considered = true;
                if let Some(job) =
                    best_trial(&plan, &ledger, &dir).and_then(|t| refit_job(&plan, t))
                {
                    let entry = ledger.jobs.get(&job.id);
                    if entry.is_none_or(|e| !e.state.is_final()) {
                        progress.note(&format!(
                            "refit: trial {} retrained on all training data as job {}",
                            job.trial, job.id
                        ));
                    }
                    let mut entry = entry_for(&job);
                    entry.refit = true;
                    let entry = ledger.jobs.entry(job.id.clone()).or_insert(entry);
                    if entry.state == JobState::Running {
                        entry.state = JobState::Pending;
                    }
                    let known = plan.job(&job.id).is_some();
                    if !known {
                        plan.jobs.push(job);
                        write_atomic(&dir.plan(), &serde_json::to_vec(&plan)?)
                            .with_context(|| format!("cannot write {}", dir.plan().display()))?;
                    }
                    ledger.save(&dir.root)?;
                    continue;
                }
            }
            break;
        }
        if detach {
            break;
        }
        for h in launcher.wait(Duration::from_millis(100))? {
            if let Some((id, promoted)) =
                recorder.record(h, &plan, &mut ledger, progress, stopping)?
            {
                launcher.answer_rung(&id, promoted);
            }
        }
        sync_rungs(launcher.as_ref(), &mut ledger, &dir)?;
        if signals >= 2 && launcher.active() == 0 {
            break;
        }
    }
    let mut summary = RunSummary {
        experiment_dir: dir.root.clone(),
        interrupted: stopping,
        submitted,
        ..Default::default()
    };
    for (id, e) in &ledger.jobs {
        match e.state {
            JobState::Done => summary.done += 1,
            JobState::Pruned => summary.pruned += 1,
            JobState::Failed => summary
                .failed
                .push((id.clone(), e.reason.clone().unwrap_or_default())),
            JobState::Running if e.slurm.is_some() => summary.in_slurm += 1,
            JobState::Pending | JobState::Running => summary.pending += 1,
        }
    }
    progress.finish(&ledger, started.elapsed());
    Ok(summary)
}

/// What `--dry-run` prints: the batch scripts and the `sbatch` commands of the submission a
/// run would make now.
fn dry_run_text(
    dir: &ExperimentDir,
    setup: &SlurmSetup,
    jobs: &[Launch],
    ledger: &Ledger,
) -> String {
    if jobs.is_empty() {
        let queued = ledger.jobs.values().filter(|e| in_slurm(e)).count();
        return format!(
            "nothing to submit: every job of {} is finished{}\n",
            dir.root.display(),
            if queued > 0 {
                format!(" or already in Slurm ({queued} job(s))")
            } else {
                String::new()
            }
        );
    }
    let r = slurm_launch::render(dir, setup, jobs, ledger.slurm.len());
    let [array, follow_up] = r.commands();
    format!(
        "# {} — {} job(s) as one array\n{}\n# {} — the follow-up, after the array\n{}\n# submitted with:\n{array}\n{follow_up}\n",
        r.array_path.display(),
        jobs.len(),
        r.array_script,
        r.follow_up_path.display(),
        r.follow_up_script,
    )
}
