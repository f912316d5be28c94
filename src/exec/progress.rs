//! The orchestrator's console: one live overall line (jobs done/running/failed/pruned, elapsed,
//! ETA, each running job's epoch) on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::scheduler::Slots;
use crate::plan::Plan;
use crate::store::ledger::{JobState, Ledger};

pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    /// Epochs finished since this run started (for the ETA).
    epochs_seen: usize,
    total: usize,
    /// The step each running job last reported: (epoch, step, steps).
    steps: std::collections::BTreeMap<String, (usize, usize, usize)>,
    /// The validation metric that picks the best epoch (`train.best_metric`).
    metric: String,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

impl Progress {
    pub fn new() -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress {
            bar,
            started: Instant::now(),
            epochs_seen: 0,
            total: 0,
            steps: Default::default(),
            metric: String::new(),
        }
    }

    /// A line that stays (warnings, job results).
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => say(line),
        }
    }

    /// The overall status line.
    pub fn line(&self, ledger: &Ledger) -> String {
        let c = ledger.counts();
        let n = |k: &str| c.get(k).copied().unwrap_or(0);
        let running: Vec<String> = ledger
            .jobs
            .iter()
            .filter(|(_, e)| e.state == JobState::Running)
            .map(|(id, e)| match self.steps.get(id) {
                Some((epoch, step, steps)) if *epoch > e.epochs_done => {
                    format!("{id} epoch {epoch}/{} [{step}/{steps}]", e.epochs)
                }
                _ => format!("{id} {}/{}", e.epochs_done, e.epochs),
            })
            .collect();
        let remaining: usize = ledger
            .jobs
            .values()
            .filter(|e| !e.state.is_final())
            .map(|e| e.epochs.saturating_sub(e.epochs_done))
            .sum();
        let elapsed = self.started.elapsed();
        let eta = if self.epochs_seen > 0 {
            clock(elapsed.mul_f64(remaining as f64 / self.epochs_seen as f64))
        } else {
            "?".into()
        };
        format!(
            "jobs {}/{} done, {} running, {} pending, {} failed, {} pruned | {} elapsed, ETA {eta}{}",
            n("done"),
            self.total,
            n("running"),
            n("pending"),
            n("failed"),
            n("pruned"),
            clock(elapsed),
            if running.is_empty() { String::new() } else { format!(" | epochs: {}", running.join(", ")) }
        )
    }

    fn update(&self, ledger: &Ledger) {
        if let Some(bar) = &self.bar {
            bar.set_message(self.line(ledger));
        }
    }

    pub fn start(&mut self, plan: &Plan, ledger: &Ledger, slots: Slots) {
        self.total = plan.jobs.len();
        if let Some(j) = plan.jobs.first() {
            self.metric = j.spec.train.best_metric.clone();
        }
        let c = ledger.counts();
        let finished = c.get("done").copied().unwrap_or(0)
            + c.get("failed").copied().unwrap_or(0)
            + c.get("pruned").copied().unwrap_or(0);
        self.note(&format!(
            "experiment {}: {} trial(s) × {} fold(s) × {} repeat(s) = {} jobs; {} already finished; {} at a time with {} thread(s) each",
            plan.experiment,
            plan.trials,
            plan.folds,
            plan.repeats,
            plan.jobs.len(),
            finished,
            slots.jobs,
            slots.threads_per_job
        ));
        self.update(ledger);
    }

    pub fn job_started(&self, id: &str, ledger: &Ledger) {
        if self.bar.is_none() {
            if let Some(e) = ledger.jobs.get(id) {
                let fold = e.fold.map(|f| format!(" fold {f}")).unwrap_or_default();
                say(&format!(
                    "started {id} (trial {}{fold}, attempt {})",
                    e.trial, e.attempts
                ));
            }
        }
        self.update(ledger);
    }

    /// Progress within an epoch (shown in the live line on a terminal).
    pub fn step(&mut self, id: &str, epoch: usize, step: usize, steps: usize, ledger: &Ledger) {
        self.steps.insert(id.to_string(), (epoch, step, steps));
        self.update(ledger);
    }

    pub fn epoch(
        &mut self,
        id: &str,
        epoch: usize,
        epochs: usize,
        score: Option<f64>,
        ledger: &Ledger,
    ) {
        self.epochs_seen += 1;
        let score = score.map(|s| format!(", val {s:.4}")).unwrap_or_default();
        match &self.bar {
            Some(_) => self.note(&format!("{id} epoch {epoch}/{epochs}{score}")),
            None => say(&format!(
                "{id} epoch {epoch}/{epochs}{score} | {}",
                self.line(ledger)
            )),
        }
        self.update(ledger);
    }

    pub fn job_ended(&self, id: &str, ledger: &Ledger) {
        if let Some(e) = ledger.jobs.get(id) {
            let reason = e
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            let score = match (e.best_score, e.best_epoch) {
                (Some(s), Some(epoch)) => {
                    format!(" (best val {} {s:.4} at epoch {epoch})", self.metric)
                }
                _ => String::new(),
            };
            self.note(&format!("{id} {}{score}{reason}", e.state.name()));
        }
        self.update(ledger);
    }

    pub fn finish(&self, ledger: &Ledger, elapsed: Duration) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let c = ledger.counts();
        let n = |k: &str| c.get(k).copied().unwrap_or(0);
        say(&format!(
            "{} done, {} failed, {} pruned, {} not finished, in {}",
            n("done"),
            n("failed"),
            n("pruned"),
            n("pending") + n("running"),
            clock(elapsed)
        ));
    }
}

/// Prints `line` to stdout, carrying on when nobody reads it any more (`assay run … | head`):
/// a run's results are on disk, and stdout is only a view of them.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// `path` as a shell word: quoted when it holds anything but letters, digits and `_./-=:,@%+`.
pub fn shell_word(path: &std::path::Path) -> String {
    crate::shell::word(&path.display().to_string())
}
