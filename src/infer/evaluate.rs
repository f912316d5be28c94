//! `assay evaluate`: every metric of a trained model's task on another data set, computed as the
//! job computed its test metrics (the same decoding, eval transforms, batches and binary
//! threshold), so that the job's own test data gives back its `metrics.json` exactly.

use std::path::PathBuf;
use std::time::Instant;

use super::trained::TrainedModel;
use crate::exec::prepare::{self, PrepareError};
use crate::spec::{DataFormat, SourceSpec};
use crate::store::metrics_file::SplitMetrics;
use crate::train::batches::Inputs;
use crate::train::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error(transparent)]
    Data(#[from] PrepareError),
    #[error("{0}")]
    Usage(String),
    #[error("the model failed: {0}")]
    Model(String),
}

/// Where the data to evaluate on is: a folder or CSV manifest, or IDX images with their labels.
pub struct EvalData {
    pub path: PathBuf,
    /// IDX only: the labels file.
    pub labels: Option<PathBuf>,
    /// Default: the format the model was trained on.
    pub format: Option<DataFormat>,
}

/// The metrics and how long it took.
pub struct Evaluated {
    pub metrics: Metrics,
    pub images: usize,
    pub load_seconds: f64,
    pub model_seconds: f64,
}

impl Evaluated {
    /// The metrics as `metrics.json` writes a split's (`final.test`).
    pub fn split_metrics(&self) -> SplitMetrics {
        SplitMetrics::from(&self.metrics)
    }
}

/// Evaluates `model` on `data`.
pub fn evaluate(model: &TrainedModel, data: &EvalData) -> Result<Evaluated, EvaluateError> {
    let format = data.format.unwrap_or(model.spec.data.format);
    let source = match (format, &data.labels) {
        (DataFormat::Idx, Some(labels)) => SourceSpec::Idx {
            images: data.path.clone(),
            labels: labels.clone(),
        },
        (DataFormat::Idx, None) => {
            return Err(EvaluateError::Usage(
                "IDX data needs its labels file: --labels FILE".into(),
            ))
        }
        (_, Some(_)) => {
            return Err(EvaluateError::Usage(
                "--labels is for IDX data only; folders and CSV manifests carry their labels"
                    .into(),
            ))
        }
        (_, None) => SourceSpec::Path(data.path.clone()),
    };
    let started = Instant::now();
    let (set, _) = prepare::load_evaluation_set(&model.spec, &source, format, &model.classes)?;
    let load_seconds = started.elapsed().as_secs_f64();
    let inputs = Inputs::new(&model.spec, &model.mean, &model.std);
    let started = Instant::now();
    let metrics = crate::train::evaluate::evaluate(
        model.net.as_ref(),
        &set,
        &inputs,
        model.spec.train.eval_batch_size,
        &model.objective,
        model.threshold,
    )
    .map_err(|e| EvaluateError::Model(crate::model::without_backtrace(e).to_string()))?;
    Ok(Evaluated {
        metrics,
        images: set.len(),
        load_seconds,
        model_seconds: started.elapsed().as_secs_f64(),
    })
}

/// The metrics as a table: the scalars, then per class precision, recall, F1 and support.
pub fn render_table(m: &SplitMetrics) -> String {
    let mut out = String::from("| metric | value |\n| --- | --- |\n");
    for (name, v) in &m.scalars {
        out.push_str(&format!("| {name} | {v:.4} |\n"));
    }
    if !m.per_class.is_empty() {
        out.push_str(
            "\n| class | precision | recall | f1 | support |\n| --- | --- | --- | --- | --- |\n",
        );
        for c in &m.per_class {
            out.push_str(&format!(
                "| {} | {:.4} | {:.4} | {:.4} | {} |\n",
                c.class, c.precision, c.recall, c.f1, c.support
            ));
        }
    }
    out
}
