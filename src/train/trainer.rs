//! The training loop: seeded shuffling, forward/backward/optimizer steps, per-epoch
//! validation, best-epoch tracking and divergence detection.

use std::time::Instant;

use candle_core::Tensor;
use rand::seq::SliceRandom;

use super::batches::{make_batch, Normalizer};
use super::evaluate::{evaluate, record};
use super::metrics::{ConfusionMatrix, MulticlassMetrics, SCALAR_METRICS};
use super::optim::{Adam, Optimizer, Sgd};
use super::{rng, schedule};
use crate::data::image_set::ImageSet;
use crate::model::{Mode, Network};
use crate::report::events::{EpochRecord, Event, EventSink};
use crate::spec::{OptimizerSpec, Spec};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training diverged: the loss became {loss} at epoch {epoch}, step {step}")]
    Diverged {
        epoch: usize,
        step: usize,
        loss: f64,
    },
    #[error("tensor computation failed: {0}")]
    Candle(candle_core::Error),
    #[error(transparent)]
    Sink(#[from] anyhow::Error),
}

impl From<candle_core::Error> for TrainError {
    fn from(e: candle_core::Error) -> Self {
        TrainError::Candle(without_backtrace(e))
    }
}

/// candle attaches a backtrace to errors when RUST_BACKTRACE is set; a job's failure reason
/// should say what went wrong, not where in candle.
pub fn without_backtrace(e: candle_core::Error) -> candle_core::Error {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => without_backtrace(*inner),
        other => other,
    }
}

/// What training produced: the history and the best epoch's weights.
pub struct TrainOutcome {
    pub history: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub best_state: Vec<(String, Tensor)>,
}

pub fn make_optimizer(spec: &OptimizerSpec) -> Box<dyn Optimizer> {
    match *spec {
        OptimizerSpec::Sgd {
            momentum,
            dampening,
            nesterov,
            weight_decay,
            ..
        } => Box::new(Sgd::new(momentum, dampening, nesterov, weight_decay)),
        OptimizerSpec::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            ..
        } => Box::new(Adam::adam(beta1, beta2, eps, weight_decay)),
        OptimizerSpec::AdamW {
            beta1,
            beta2,
            eps,
            weight_decay,
            ..
        } => Box::new(Adam::adamw(beta1, beta2, eps, weight_decay)),
    }
}

/// Whether `candidate` beats `best` on metric `name`.
fn improves(name: &str, candidate: f64, best: Option<f64>) -> bool {
    let higher_is_better = SCALAR_METRICS
        .iter()
        .find(|(n, _)| *n == name)
        .is_none_or(|(_, h)| *h);
    match best {
        None => true,
        Some(b) if higher_is_better => candidate > b,
        Some(b) => candidate < b,
    }
}

/// Trains `net` on `train`, validating on `val` after every epoch.
pub fn train(
    job: &str,
    spec: &Spec,
    net: &Network,
    train: &ImageSet,
    val: Option<&ImageSet>,
    norm: &Normalizer,
    sink: &mut dyn EventSink,
) -> Result<TrainOutcome, TrainError> {
    let t = &spec.train;
    let mut optimizer = make_optimizer(&spec.optimizer);
    let steps = train.len().div_ceil(t.batch_size);
    let mut history = Vec::with_capacity(t.epochs);
    let mut best: Option<(usize, f64, Vec<(String, Tensor)>)> = None;
    let mut global_step = 0;
    for epoch in 1..=t.epochs {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng::stream(spec.seed, "shuffle", epoch as u64));
        let mut dropout_rng = rng::stream(spec.seed, "dropout", epoch as u64);
        let mut cm = ConfusionMatrix::new(train.classes.len());
        let mut loss_sum = 0.0;
        let mut lr = spec.optimizer.lr();
        for (step, chunk) in order.chunks(t.batch_size).enumerate() {
            lr = schedule::learning_rate(
                &spec.schedule,
                spec.optimizer.lr(),
                global_step,
                steps,
                t.epochs,
            );
            let (x, y) = make_batch(train, chunk, norm, net.device())?;
            let logits = net.forward(&x, Mode::Train, &mut dropout_rng)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            let loss_value = loss.to_scalar::<f32>()? as f64;
            if !loss_value.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    step: step + 1,
                    loss: loss_value,
                });
            }
            let grads = loss.backward()?;
            optimizer.step(net.params(), &grads, lr)?;
            loss_sum += loss_value * chunk.len() as f64;
            record(
                &mut cm,
                &logits.detach(),
                chunk.iter().map(|&i| train.labels[i] as usize),
            )?;
            global_step += 1;
            sink.event(&Event::StepDone {
                job: job.to_string(),
                epoch,
                step: step + 1,
                steps,
                loss: loss_value,
            })?;
        }
        let train_metrics = MulticlassMetrics::from_confusion(
            &cm,
            loss_sum / train.len().max(1) as f64,
            &train.classes,
        );
        let val_metrics = match val {
            Some(v) if !v.is_empty() => Some(evaluate(net, v, norm, t.eval_batch_size)?),
            _ => None,
        };
        // Without a validation split the last epoch is the best one.
        let score = val_metrics.as_ref().and_then(|m| m.get(&t.best_metric));
        let is_best = match score {
            Some(s) => improves(&t.best_metric, s, best.as_ref().map(|b| b.1)),
            None => true,
        };
        if is_best {
            best = Some((epoch, score.unwrap_or(0.0), net.state()?));
        }
        let record = EpochRecord {
            epoch,
            lr,
            seconds: started.elapsed().as_secs_f64(),
            train: train_metrics,
            val: val_metrics,
        };
        sink.event(&Event::EpochDone {
            job: job.to_string(),
            record: Box::new(record.clone()),
            best: is_best,
        })?;
        history.push(record);
    }
    let (best_epoch, _, best_state) =
        best.ok_or_else(|| anyhow::anyhow!("no epoch was trained"))?;
    Ok(TrainOutcome {
        history,
        best_epoch,
        best_state,
    })
}

#[cfg(test)]
mod tests {
    use super::improves;

    #[test]
    fn loss_improves_downwards_and_accuracy_upwards() {
        assert!(improves("loss", 0.1, Some(0.2)));
        assert!(!improves("loss", 0.3, Some(0.2)));
        assert!(improves("accuracy", 0.9, Some(0.8)));
        assert!(!improves("accuracy", 0.8, Some(0.8)));
        assert!(improves("f1_macro", 0.1, None));
    }
}
