//! Writes a job's events to TensorBoard: the job folder holds the spec as text and the job's
//! HParams session (its swept values, grouped by trial so folds average into one row), and the
//! `train`, `val` and `test` subfolders hold each split's scalars so the dashboard overlays them.
//! The experiment folder holds the HParams experiment summary.

use std::collections::BTreeMap;

use super::events::{Event, EventSink};
use super::tensorboard::{
    experiment_value, session_end_value, session_start_value, EventWriter, HParamSpec, HParamValue,
    SessionStatus,
};
use crate::spec::{Domain, ParamValue, SweepSpec};
use crate::store::JobDir;
use crate::train::metrics::Metrics;

pub struct TensorBoardSink {
    dir: JobDir,
    writers: BTreeMap<&'static str, EventWriter>,
    /// The job's swept values and its trial (the HParams group), written when the job starts.
    session: Option<(BTreeMap<String, HParamValue>, String)>,
}

fn hparam_value(v: &ParamValue) -> HParamValue {
    match v {
        ParamValue::Bool(b) => HParamValue::from(*b),
        ParamValue::Int(i) => HParamValue::from(*i),
        ParamValue::Float(f) => HParamValue::from(*f),
        ParamValue::Text(s) => HParamValue::from(s.as_str()),
    }
}

/// The multiclass validation metrics the HParams dashboard shows for every session.
pub const HPARAMS_METRICS: &[(&str, &str)] = &[
    ("val", "accuracy"),
    ("val", "loss"),
    ("val", "f1_macro"),
    ("val", "precision_macro"),
    ("val", "recall_macro"),
    ("train", "loss"),
];

/// The metrics the HParams dashboard shows for `task`: for multiclass [`HPARAMS_METRICS`];
/// otherwise every validation scalar of the task (but `threshold`) and the training loss.
pub fn hparams_metrics(task: crate::spec::Task) -> Vec<(&'static str, &'static str)> {
    if task == crate::spec::Task::Multiclass {
        return HPARAMS_METRICS.to_vec();
    }
    let mut out: Vec<(&'static str, &'static str)> =
        crate::train::metrics::selectable_metrics(task)
            .into_iter()
            .map(|m| ("val", m))
            .collect();
    out.push(("train", "loss"));
    out
}

/// Writes the HParams experiment summary (every swept parameter with its full domain, and the
/// metrics) into the experiment folder, the log dir's root.
pub fn write_experiment_summary(
    experiment_dir: &std::path::Path,
    sweep: Option<&SweepSpec>,
    task: crate::spec::Task,
) -> anyhow::Result<()> {
    let specs: Vec<HParamSpec> = sweep
        .map(|s| s.parameters.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| match &p.domain {
            Domain::Values { values } => {
                HParamSpec::discrete(p.path.clone(), values.iter().map(hparam_value))
            }
            Domain::Int { low, high, step } if (high - low) / step < 1000 => HParamSpec::discrete(
                p.path.clone(),
                (0..=(high - low) / step).map(|i| HParamValue::from(low + i * step)),
            ),
            Domain::Int { low, high, .. } => {
                HParamSpec::interval(p.path.clone(), *low as f64, *high as f64)
            }
            Domain::Uniform { low, high } | Domain::LogUniform { low, high } => {
                HParamSpec::interval(p.path.clone(), *low, *high)
            }
        })
        .collect();
    let mut w = EventWriter::create(experiment_dir)?;
    w.add_values(vec![experiment_value(&specs, &hparams_metrics(task))], 0)?;
    w.flush()?;
    Ok(())
}

impl TensorBoardSink {
    pub fn new(dir: JobDir) -> Self {
        TensorBoardSink {
            dir,
            writers: BTreeMap::new(),
            session: None,
        }
    }

    /// Makes the job an HParams session with these swept values, in group `group` (its trial).
    pub fn with_session(mut self, params: &BTreeMap<String, ParamValue>, group: &str) -> Self {
        let values = params
            .iter()
            .map(|(k, v)| (k.clone(), hparam_value(v)))
            .collect();
        self.session = Some((values, group.to_string()));
        self
    }

    /// A grid of the first training samples, as the model's input sees them before normalisation.
    pub fn add_samples(&mut self, set: &crate::data::image_set::ImageSet) -> anyhow::Result<()> {
        if let Some(g) = super::images::sample_grid(set, 16) {
            self.writer("")?.add_image_rgb8(
                "samples",
                g.width as u32,
                g.height as u32,
                &g.pixels,
                0,
            )?;
        }
        Ok(())
    }

    /// The augmentation preview grid (`augment::grid`) as image `augment/preview`.
    pub fn add_augment_preview(&mut self, grid: &crate::augment::Image) -> anyhow::Result<()> {
        if grid.height == 0 || grid.width == 0 {
            return Ok(());
        }
        let rgb = crate::augment::grid::to_rgb(grid);
        self.writer("")?.add_image_rgb8(
            "augment/preview",
            grid.width as u32,
            grid.height as u32,
            &rgb,
            0,
        )?;
        Ok(())
    }

    /// The confusion matrix of `split` at `step` as a heatmap.
    pub fn add_confusion(
        &mut self,
        split: &'static str,
        m: &Metrics,
        step: usize,
    ) -> anyhow::Result<()> {
        if let Some(h) = super::images::confusion_heatmap(&m.confusion_matrix, 16) {
            self.writer(split)?.add_image_rgb8(
                "confusion_matrix",
                h.width as u32,
                h.height as u32,
                &h.pixels,
                step as i64,
            )?;
        }
        Ok(())
    }

    /// Ends the HParams session with the job's outcome.
    pub fn end_session(&mut self, status: SessionStatus) -> anyhow::Result<()> {
        if self.session.is_some() {
            let w = self.writer("")?;
            w.add_values(vec![session_end_value(status, crate::store::now())], 0)?;
            w.flush()?;
        }
        Ok(())
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

    fn scalars(&mut self, run: &'static str, m: &Metrics, step: usize) -> anyhow::Result<()> {
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
                let session = self.session.clone();
                let w = self.writer("")?;
                w.add_text("spec", &text, 0)?;
                if let Some((values, group)) = session {
                    w.add_values(
                        vec![session_start_value(&values, &group, crate::store::now())],
                        0,
                    )?;
                }
            }
            Event::EpochDone { record, best, .. } => {
                self.scalars("train", &record.train, record.epoch)?;
                self.writer("train")?.add_scalar(
                    "learning_rate",
                    record.lr,
                    record.epoch as i64,
                )?;
                if let Some(val) = &record.val {
                    self.scalars("val", val, record.epoch)?;
                    if *best {
                        // The last of these images is the best epoch's.
                        self.add_confusion("val", val, record.epoch)?;
                    }
                }
            }
            Event::Evaluated {
                split: "test",
                step,
                metrics,
                ..
            } => {
                self.scalars("test", metrics, *step)?;
                self.add_confusion("test", metrics, *step)?;
            }
            Event::JobFinished { .. } | Event::JobFailed { .. } => self.flush_all()?,
            _ => {}
        }
        Ok(())
    }
}
