//! Console output: a progress bar per epoch on a terminal, plain per-epoch lines otherwise.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::events::{Event, EventSink};
use crate::train::metrics::Metrics;

pub struct ConsoleSink {
    tty: bool,
    bar: Option<ProgressBar>,
    epochs: usize,
    /// Plain lines go here instead of stdout (a job's log file).
    file: Option<std::fs::File>,
}

impl ConsoleSink {
    pub fn new() -> Self {
        ConsoleSink {
            tty: std::io::stdout().is_terminal(),
            bar: None,
            epochs: 0,
            file: None,
        }
    }

    /// Plain per-epoch lines into `file`, no progress bar.
    pub fn to_file(file: std::fs::File) -> Self {
        ConsoleSink {
            tty: false,
            bar: None,
            epochs: 0,
            file: Some(file),
        }
    }

    fn say(&mut self, line: &str) {
        if let Some(f) = &mut self.file {
            // A log line that cannot be written is not worth failing the job for.
            let _ = writeln!(f, "{line}");
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }
}

impl Default for ConsoleSink {
    fn default() -> Self {
        Self::new()
    }
}

/// The loss and the task's headline metrics.
fn brief(m: &Metrics) -> String {
    let mut out = format!("loss {:.4}", m.loss());
    for (name, short) in [
        ("accuracy", "acc"),
        ("f1_macro", "f1"),
        ("roc_auc", "auc"),
        ("f1", "f1"),
        ("subset_accuracy", "subset_acc"),
    ] {
        if let Some(v) = m.get(name) {
            out.push_str(&format!(" {short} {v:.4}"));
        }
    }
    out
}

impl EventSink for ConsoleSink {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        match event {
            Event::JobStarted {
                job,
                parameters,
                train,
                val,
                test,
                epochs,
                steps_per_epoch,
                ..
            } => {
                self.epochs = *epochs;
                self.say(&format!(
                    "job {job}: {parameters} parameters; {train} train / {val} validation / {test} test images; {epochs} epochs × {steps_per_epoch} steps"
                ));
            }
            Event::StepDone {
                epoch,
                step,
                steps,
                loss,
                ..
            } if self.tty => {
                let bar = self.bar.get_or_insert_with(|| {
                    let bar = ProgressBar::with_draw_target(
                        Some(*steps as u64),
                        ProgressDrawTarget::stdout(),
                    );
                    let style = ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {pos}/{len} {msg} ({per_sec}, eta {eta})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                    bar.set_style(style);
                    bar
                });
                bar.set_prefix(format!("epoch {epoch}/{}", self.epochs));
                bar.set_position(*step as u64);
                bar.set_message(format!("loss {loss:.4}"));
            }
            Event::StepDone { .. } => {}
            Event::EpochDone { record, best, .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let val = record
                    .val
                    .as_ref()
                    .map(|v| format!("  val {}", brief(v)))
                    .unwrap_or_default();
                let mark = if *best { "  *" } else { "" };
                self.say(&format!(
                    "epoch {}/{}  train {}{val}  lr {:.2e}  {:.1}s{mark}",
                    record.epoch,
                    self.epochs,
                    brief(&record.train),
                    record.lr,
                    record.seconds
                ));
            }
            Event::Evaluated { split, metrics, .. } => {
                self.say(&format!("{split}: {}", brief(metrics)))
            }
            Event::JobFinished {
                job,
                best_epoch,
                seconds,
            } => {
                self.say(&format!(
                    "job {job} done in {seconds:.1}s; best epoch {best_epoch}"
                ));
            }
            Event::JobFailed { job, reason } => {
                if let Some(bar) = self.bar.take() {
                    bar.abandon();
                }
                self.say(&format!("job {job} FAILED: {reason}"));
            }
            Event::Warning { message } => self.say(&format!("warning: {message}")),
        }
        Ok(())
    }
}
