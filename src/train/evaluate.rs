//! Evaluation of a network on one split: mean loss and the task's metrics, and optionally the
//! per-image predictions from the same logits.

use candle_core::{Result, Tensor, D};

use super::batches::Inputs;
use super::loss::Objective;
use super::metrics::{Accumulator, Metrics};
use super::predictions::Predictions;
use crate::data::image_set::ImageSet;
use crate::model::{Mode, Model};

/// Loss and metrics of `net` on every image of `set`, in batches of `batch_size`. The loss is
/// the plain one (no class weights, no smoothing). `threshold`: the binary F1 threshold chosen on
/// validation, applied here; `None` chooses it on `set`.
pub fn evaluate(
    net: &dyn Model,
    set: &ImageSet,
    inputs: &Inputs,
    batch_size: usize,
    objective: &Objective,
    threshold: Option<f64>,
) -> Result<Metrics> {
    run(net, set, inputs, batch_size, objective, threshold, None)
}

/// Like [`evaluate`], also returning each image's prediction, taken from the very logits the
/// metrics are computed from.
pub fn evaluate_with_predictions(
    net: &dyn Model,
    set: &ImageSet,
    inputs: &Inputs,
    batch_size: usize,
    objective: &Objective,
    threshold: Option<f64>,
) -> Result<(Metrics, Predictions)> {
    let mut p = Predictions::new(objective.task, set.classes.len(), objective.positive);
    let m = run(
        net,
        set,
        inputs,
        batch_size,
        objective,
        threshold,
        Some(&mut p),
    )?;
    Ok((m, p))
}

/// What `net` says about every image of `set` (its labels unused), in batches of `batch_size`:
/// the same probabilities, from the same batches, as [`evaluate_with_predictions`] gives.
pub fn predict(
    net: &dyn Model,
    set: &ImageSet,
    inputs: &Inputs,
    batch_size: usize,
    objective: &Objective,
) -> Result<Predictions> {
    let mut p = Predictions::new(objective.task, objective.num_classes, objective.positive);
    let indices: Vec<usize> = (0..set.len()).collect();
    let mut unused_rng = crate::train::rng::stream(0, "eval", 0);
    for chunk in indices.chunks(batch_size.max(1)) {
        let x = inputs.eval_batch(set, chunk, net.device())?;
        let logits = net.forward(&x, Mode::Eval, &mut unused_rng)?;
        match objective.task {
            crate::spec::Task::Multiclass => {
                let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
                p.add_multiclass(&predicted, &logits.flatten_all()?.to_vec1::<f32>()?);
            }
            _ => {
                probabilities(&logits, Some(&mut p))?;
            }
        }
    }
    Ok(p)
}

fn run(
    net: &dyn Model,
    set: &ImageSet,
    inputs: &Inputs,
    batch_size: usize,
    objective: &Objective,
    threshold: Option<f64>,
    mut predictions: Option<&mut Predictions>,
) -> Result<Metrics> {
    let plain = objective.unweighted();
    let mut acc = Accumulator::new(objective.task, set.classes.len());
    let mut loss_sum = 0.0;
    let indices: Vec<usize> = (0..set.len()).collect();
    let mut unused_rng = crate::train::rng::stream(0, "eval", 0);
    for chunk in indices.chunks(batch_size.max(1)) {
        let x = inputs.eval_batch(set, chunk, net.device())?;
        let logits = net.forward(&x, Mode::Eval, &mut unused_rng)?;
        let targets = plain.targets(set, chunk, net.device())?;
        let loss = plain.loss(&logits, &targets)?.to_scalar::<f32>()? as f64;
        loss_sum += loss * chunk.len() as f64;
        record_with(
            &mut acc,
            predictions.as_deref_mut(),
            &logits,
            set,
            chunk,
            objective.positive,
        )?;
    }
    let loss = if set.is_empty() {
        0.0
    } else {
        loss_sum / set.len() as f64
    };
    Ok(acc.finish(loss, &set.classes, objective.positive, threshold))
}

/// The sigmoid of every logit, also handed to `predictions` when it is kept.
fn probabilities(logits: &Tensor, predictions: Option<&mut Predictions>) -> Result<Vec<f32>> {
    let v: Vec<f32> = logits
        .flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(sigmoid)
        .collect();
    if let Some(p) = predictions {
        p.add_probabilities(&v);
    }
    Ok(v)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Adds a batch's predictions (`logits` of images `indices` of `set`) to `acc`: the arg-max class
/// (multiclass), or the sigmoid probabilities (binary: of class `positive`; multilabel: per label).
pub fn record(
    acc: &mut Accumulator,
    logits: &Tensor,
    set: &ImageSet,
    indices: &[usize],
    positive: usize,
) -> Result<()> {
    record_with(acc, None, logits, set, indices, positive)
}

/// [`record`], also adding the batch's per-image predictions to `predictions`.
fn record_with(
    acc: &mut Accumulator,
    predictions: Option<&mut Predictions>,
    logits: &Tensor,
    set: &ImageSet,
    indices: &[usize],
    positive: usize,
) -> Result<()> {
    match acc {
        Accumulator::Multiclass(cm) => {
            let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
            if let Some(p) = predictions {
                p.add_multiclass(&predicted, &logits.flatten_all()?.to_vec1::<f32>()?);
            }
            for (p, &i) in predicted.into_iter().zip(indices) {
                cm.add(set.labels[i] as usize, p as usize);
            }
        }
        Accumulator::Binary { scores, truths } => {
            let v = probabilities(logits, predictions)?;
            scores.extend(v);
            truths.extend(indices.iter().map(|&i| set.labels[i] as usize == positive));
        }
        Accumulator::Multilabel { probs, truths } => {
            let v = probabilities(logits, predictions)?;
            probs.extend(v);
            for &i in indices {
                truths.extend(set.label_set(i));
            }
        }
    }
    Ok(())
}
