//! Writes a job's events to TensorBoard: the job folder holds the spec as text, and the
//! `train`, `val` and `test` subfolders hold each split's scalars so the dashboard overlays them.

use std::collections::BTreeMap;

use super::events::{Event, EventSink};
use super::tensorboard::EventWriter;
use crate::store::JobDir;
use crate::train::metrics::MulticlassMetrics;

pub struct TensorBoardSink {
    dir: JobDir,
    writers: BTreeMap<&'static str, EventWriter>,
}

impl TensorBoardSink {
    pub fn new(dir: JobDir) -> Self {
        TensorBoardSink {
            dir,
            writers: BTreeMap::new(),
        }
    }

    /// The writer for one run: "" is the job folder itself, otherwise a split's subfolder.
    fn writer(&mut self, run: &'static str) -> anyhow::Result<&mut EventWriter> {
        if !self.writers.contains_key(run) {
            let path = self.dir.tensorboard((!run.is_empty()).then_some(run));
            self.writers.insert(run, EventWriter::create(&path)?);
        }
        self.writers
            .get_mut(run)
            .ok_or_else(|| anyhow::anyhow!("TensorBoard writer for `{run}` vanished"))
    }

    fn scalars(
        &mut self,
        run: &'static str,
        m: &MulticlassMetrics,
        step: usize,
    ) -> anyhow::Result<()> {
        let w = self.writer(run)?;
        for (name, value) in m.scalars() {
            w.add_scalar(name, value, step as i64)?;
        }
        Ok(())
    }

    fn flush_all(&mut self) -> anyhow::Result<()> {
        for w in self.writers.values_mut() {
            w.flush()?;
        }
        Ok(())
    }
}

impl EventSink for TensorBoardSink {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        match event {
            Event::JobStarted { spec_toml, .. } => {
                let text = format!("```toml\n{spec_toml}\n```");
                self.writer("")?.add_text("spec", &text, 0)?;
            }
            Event::EpochDone { record, .. } => {
                self.scalars("train", &record.train, record.epoch)?;
                self.writer("train")?.add_scalar(
                    "learning_rate",
                    record.lr,
                    record.epoch as i64,
                )?;
                if let Some(val) = &record.val {
                    self.scalars("val", val, record.epoch)?;
                }
            }
            Event::Evaluated {
                split: "test",
                step,
                metrics,
                ..
            } => self.scalars("test", metrics, *step)?,
            Event::JobFinished { .. } | Event::JobFailed { .. } => self.flush_all()?,
            _ => {}
        }
        Ok(())
    }
}
