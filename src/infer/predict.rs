//! `assay predict`: a trained model's classes for image files, decoded, transformed and
//! normalised as its evaluation data was, in batches, as text, JSON or CSV.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::trained::TrainedModel;
use crate::data::image_folder::decode_files;
use crate::data::source::LoadOptions;
use crate::data::DataError;
use crate::spec::Task;
use crate::train::batches::Inputs;
use crate::train::evaluate;
use crate::train::predictions::{csv_header, csv_record, Predictions, Row};

/// Images decoded and predicted at a time, so that memory stays bounded whatever their number.
const CHUNK: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("the model failed: {0}")]
    Model(String),
}

/// Every image's prediction, in the order of `files`.
pub struct Predicted {
    pub files: Vec<PathBuf>,
    /// One row per file: probabilities and the decisions the job's metrics make.
    pub rows: Vec<Row>,
    pub decode_seconds: f64,
    pub model_seconds: f64,
}

/// Predicts every file with `model`, `batch_size` images per forward pass (default: the job's
/// `train.eval_batch_size`, which gives the very numbers of its `predictions.csv`).
pub fn predict(
    model: &TrainedModel,
    files: &[PathBuf],
    batch_size: Option<usize>,
) -> Result<Predicted, PredictError> {
    let spec = &model.spec;
    // Every file given is predicted: a corrupt one is an error naming it, never skipped.
    let opts = LoadOptions {
        skip_corrupt: false,
        classes: None,
        ..crate::exec::prepare::load_options(spec)
    };
    let inputs = Inputs::new(spec, &model.mean, &model.std);
    let batch = batch_size.unwrap_or(spec.train.eval_batch_size).max(1);
    let (mut decode_seconds, mut model_seconds) = (0.0, 0.0);
    let mut rows = Vec::with_capacity(files.len());
    for chunk in files.chunks(CHUNK) {
        let started = Instant::now();
        let labelled: Vec<(PathBuf, u32)> = chunk.iter().map(|f| (f.clone(), 0)).collect();
        let (set, _) = decode_files(&labelled, None, model.classes.clone(), Path::new(""), &opts)?;
        decode_seconds += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let p: Predictions =
            evaluate::predict(model.net.as_ref(), &set, &inputs, batch, &model.objective)
                .map_err(|e| PredictError::Model(crate::model::without_backtrace(e).to_string()))?;
        model_seconds += started.elapsed().as_secs_f64();
        rows.extend((0..set.len()).map(|i| p.row(&set, i, model.threshold)));
    }
    Ok(Predicted {
        files: files.to_vec(),
        rows,
        decode_seconds,
        model_seconds,
    })
}

/// How predictions are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Csv,
}

fn class_name(classes: &[String], c: usize) -> String {
    classes.get(c).cloned().unwrap_or_else(|| c.to_string())
}

/// Multiclass: the `k` most probable classes of `row`, most probable first (ties by class order).
fn top(row: &Row, k: usize) -> Vec<(usize, f64)> {
    let mut order: Vec<(usize, f64)> = row.probs.iter().copied().enumerate().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    order.truncate(k.max(1));
    order
}

/// The predictions as text (one line per image), JSON (an array, one object per image) or CSV
/// (the columns of the job's `predictions.csv` without `split` and `true`).
pub fn render(model: &TrainedModel, p: &Predicted, format: Format, top_k: usize) -> String {
    let classes = &model.classes;
    let positive = model.objective.positive;
    let task = model.spec.task;
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            // predictions.csv's columns, but for those about the split and the truth.
            let header = csv_header(task, classes, positive);
            let kept: Vec<bool> = header.iter().map(|c| c != "split" && c != "true").collect();
            let keep = |v: Vec<String>| -> Vec<String> {
                v.into_iter()
                    .zip(&kept)
                    .filter_map(|(s, &k)| k.then_some(s))
                    .collect()
            };
            // Writing CSV into memory cannot fail.
            let _ = w.write_record(keep(header.clone()));
            for (file, row) in p.files.iter().zip(&p.rows) {
                let path = file.display().to_string();
                let _ = w.write_record(keep(csv_record("", &path, row, classes, model.threshold)));
            }
            String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
        }
        Format::Json => {
            let items: Vec<serde_json::Value> = p
                .files
                .iter()
                .zip(&p.rows)
                .map(|(file, row)| {
                    json_item(task, classes, positive, model.threshold, file, row, top_k)
                })
                .collect();
            let mut s = serde_json::to_string_pretty(&items).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Text => {
            let mut out = String::new();
            for (file, row) in p.files.iter().zip(&p.rows) {
                out.push_str(&file.display().to_string());
                out.push_str("  ");
                out.push_str(&text_line(
                    task,
                    classes,
                    positive,
                    model.threshold,
                    row,
                    top_k,
                ));
                out.push('\n');
            }
            out
        }
    }
}

fn text_line(
    task: Task,
    classes: &[String],
    positive: usize,
    threshold: Option<f64>,
    row: &Row,
    top_k: usize,
) -> String {
    match task {
        Task::Multiclass => top(row, top_k)
            .iter()
            .map(|&(c, p)| format!("{} {p:.4}", class_name(classes, c)))
            .collect::<Vec<_>>()
            .join("  "),
        Task::Binary => {
            let at = row.predicted_at_threshold.unwrap_or(positive);
            format!(
                "{}  (p_{} {:.4}, threshold {:.4})",
                class_name(classes, at),
                class_name(classes, positive),
                row.probs.first().copied().unwrap_or(f64::NAN),
                threshold.unwrap_or(0.5)
            )
        }
        Task::Multilabel => {
            if row.predicted.is_empty() {
                return "(no label at probability ≥ 0.5)".into();
            }
            row.predicted
                .iter()
                .map(|&c| format!("{} {:.4}", class_name(classes, c), row.probs[c]))
                .collect::<Vec<_>>()
                .join("  ")
        }
    }
}

fn json_item(
    task: Task,
    classes: &[String],
    positive: usize,
    threshold: Option<f64>,
    file: &Path,
    row: &Row,
    top_k: usize,
) -> serde_json::Value {
    use serde_json::json;
    let path = file.display().to_string();
    match task {
        Task::Multiclass => json!({
            "path": path,
            "predicted": class_name(classes, row.predicted.first().copied().unwrap_or(0)),
            "top": top(row, top_k)
                .iter()
                .map(|&(c, p)| json!({ "class": class_name(classes, c), "probability": p }))
                .collect::<Vec<_>>(),
        }),
        Task::Binary => json!({
            "path": path,
            "predicted": class_name(classes, row.predicted_at_threshold.unwrap_or(positive)),
            "positive_class": class_name(classes, positive),
            "probability": row.probs.first(),
            "threshold": threshold,
        }),
        Task::Multilabel => json!({
            "path": path,
            "predicted": row.predicted.iter().map(|&c| class_name(classes, c)).collect::<Vec<_>>(),
            "probabilities": row.probs.iter().enumerate()
                .map(|(c, &p)| json!({ "label": class_name(classes, c), "probability": p }))
                .collect::<Vec<_>>(),
        }),
    }
}
