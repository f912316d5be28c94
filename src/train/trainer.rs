//! The training loop: seeded shuffling, forward/backward/optimizer steps (with gradient
//! clipping and a weight average when the spec asks), per-epoch validation, the plateau
//! schedule's decision, best-epoch tracking and divergence detection.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::batches::{self, Inputs};
use super::ema::Ema;
use super::evaluate::{evaluate, record};
use super::loader::{self, LoaderConfig};
use super::loss::Objective;
use super::loss_scale::LossScaler;
use super::metrics::{higher_is_better, Accumulator};
use super::optim::{Adam, Optimizer, Sgd};
use super::plateau::{Plateau, PlateauRules, PlateauStateError};
use super::{clip, rng, sampler, schedule};
use crate::data::image_set::ImageSet;
use crate::model::{Mode, Model};
use crate::report::events::{EpochRecord, Event, EventSink};
use crate::spec::{OptimizerSpec, ScheduleKind, Spec};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training diverged: the loss became {loss} at epoch {epoch}, step {step}")]
    Diverged {
        epoch: usize,
        step: usize,
        loss: f64,
    },
    #[error("out of GPU memory at batch size {batch_size}")]
    OutOfMemory { batch_size: usize },
    #[error("tensor computation failed: {0}")]
    Candle(candle_core::Error),
    #[error(transparent)]
    Sink(#[from] anyhow::Error),
    #[error(transparent)]
    PositiveClass(#[from] crate::spec::positive::PositiveClassError),
    #[error("schedule type \"reduce_on_plateau\" decides on the validation metric, but this job has no validation images")]
    NoValidation,
    #[error(transparent)]
    PlateauState(#[from] PlateauStateError),
}

impl From<candle_core::Error> for TrainError {
    fn from(e: candle_core::Error) -> Self {
        TrainError::Candle(without_backtrace(e))
    }
}

/// candle attaches a backtrace to errors when RUST_BACKTRACE is set; a job's failure reason
/// should say what went wrong, not where in candle.
pub use crate::model::without_backtrace;

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
    match best {
        None => true,
        Some(b) if higher_is_better(name) => candidate > b,
        Some(b) => candidate < b,
    }
}

/// How a training run ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ending {
    Completed,
    /// No improvement of the best metric for `patience` epochs.
    StoppedEarly {
        epoch: usize,
    },
    /// A pruning rule (successive halving) stopped this job after `epoch`.
    Pruned {
        epoch: usize,
    },
    /// Asked to stop (Ctrl-C); the last epoch checkpoint is kept for resuming.
    Interrupted,
}

/// What training produced: the history and the best epoch's weights.
pub struct TrainOutcome {
    pub history: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub best_state: Vec<(String, Tensor)>,
    pub ending: Ending,
}

/// The decision after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    Prune,
}

/// Everything needed to continue training exactly where an epoch ended.
pub struct Checkpoint {
    pub epoch: usize,
    pub history: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub best_score: Option<f64>,
    pub model: Vec<(String, Tensor)>,
    pub optimizer: Vec<(String, Tensor)>,
    pub best_model: Vec<(String, Tensor)>,
    /// The weight average (`train.ema_decay`); empty without one.
    pub ema: Vec<(String, Tensor)>,
    /// The schedule's state (reduce_on_plateau's); empty for the stateless schedules.
    pub schedule: Vec<(String, Tensor)>,
}

/// What the trainer asks of whoever runs it: persistence, interruption and pruning.
pub trait TrainHooks {
    /// Called after every epoch, before [`TrainHooks::verdict`]; must make `checkpoint` durable.
    fn checkpoint(&mut self, checkpoint: &Checkpoint) -> anyhow::Result<()>;
    /// Checked after every step: stop as soon as possible.
    fn interrupted(&self) -> bool;
    /// After each epoch: continue, or prune. `score` is the epoch's validation best-metric.
    fn verdict(&mut self, epoch: usize, score: Option<f64>) -> anyhow::Result<Verdict>;
}

/// Hooks that keep nothing and never stop training (benchmarks, tests).
pub struct NoHooks;

impl TrainHooks for NoHooks {
    fn checkpoint(&mut self, _: &Checkpoint) -> anyhow::Result<()> {
        Ok(())
    }
    fn interrupted(&self) -> bool {
        false
    }
    fn verdict(&mut self, _: usize, _: Option<f64>) -> anyhow::Result<Verdict> {
        Ok(Verdict::Continue)
    }
}

/// The best epoch so far: its number, its best-metric score and its weights.
type Best = Option<(usize, Option<f64>, Vec<(String, Tensor)>)>;

/// reduce_on_plateau's rules, if that is the schedule.
fn plateau_rules(spec: &Spec) -> Option<PlateauRules> {
    match spec.schedule.kind {
        ScheduleKind::ReduceOnPlateau {
            patience,
            factor,
            threshold,
            cooldown,
            min_lr,
        } => Some(PlateauRules {
            patience,
            factor,
            threshold,
            cooldown,
            min_lr,
        }),
        _ => None,
    }
}

/// Trains `net` on `train` from `resume` (or from scratch), validating on `val` after every epoch.
/// With `train.ema_decay`, validation, the best epoch's weights and so everything after training
/// use the weight average.
#[allow(clippy::too_many_arguments)]
pub fn train(
    job: &str,
    spec: &Spec,
    seed: u64,
    net: &dyn Model,
    train: &ImageSet,
    val: Option<&ImageSet>,
    inputs: &Inputs,
    resume: Option<Checkpoint>,
    loader: LoaderConfig,
    hooks: &mut dyn TrainHooks,
    sink: &mut dyn EventSink,
) -> Result<TrainOutcome, TrainError> {
    let t = &spec.train;
    let objective = Objective::new(spec, &train.classes, train)?;
    let mut optimizer = make_optimizer(&spec.optimizer);
    let steps = train.len().div_ceil(t.batch_size);
    let mut history = Vec::with_capacity(t.epochs);
    let mut best: Best = None;
    let mut first_epoch = 1;
    let rules = plateau_rules(spec);
    let higher = higher_is_better(&t.best_metric);
    if rules.is_some() && val.is_none_or(|v| v.is_empty()) {
        return Err(TrainError::NoValidation);
    }
    let mut plateau = rules.map(|_| Plateau::new(spec.optimizer.lr(), higher));
    let mut ema = None;
    let mut scaler = (t.precision == crate::spec::Precision::F16).then(LossScaler::default);
    if let Some(c) = resume {
        if let Some(s) = scaler.as_mut() {
            *s = LossScaler::from_state(&c.schedule).unwrap_or_default();
        }
        let model: HashMap<String, Tensor> = c.model.into_iter().collect();
        net.load_state(&model)?;
        optimizer.load_state(&c.optimizer.into_iter().collect())?;
        first_epoch = c.epoch + 1;
        history = c.history;
        if c.best_epoch > 0 {
            best = Some((c.best_epoch, c.best_score, c.best_model));
        }
        // A checkpoint of a spec without them (continued with --force) starts them afresh.
        if plateau.is_some() && c.schedule.iter().any(|(n, _)| Plateau::holds(n)) {
            plateau = Some(Plateau::from_state(&c.schedule)?);
        } else if plateau.is_some() {
            sink.event(&Event::Warning {
                message: format!("job {job}: the checkpoint has no reduce_on_plateau state; the plateau starts afresh at the optimizer's rate"),
            })?;
        }
        if let Some(decay) = t.ema_decay {
            if c.ema.is_empty() {
                sink.event(&Event::Warning {
                    message: format!("job {job}: the checkpoint has no weight average; it starts from the resumed weights"),
                })?;
            } else {
                ema = Some(Ema::from_state(net, decay, c.ema)?);
            }
        }
    }
    if let (Some(decay), None) = (t.ema_decay, &ema) {
        ema = Some(Ema::new(net, decay)?);
    }
    if let Some(stop) = early_stop(&history, best.as_ref().map(|b| b.0), t.patience) {
        // Resumed after the stopping epoch was checkpointed: nothing more to train.
        return finish(history, best, stop);
    }
    for epoch in first_epoch..=t.epochs {
        let started = Instant::now();
        crate::model::parts::apply(net.params(), &spec.transfer, epoch);
        let order = sampler::epoch_order(train, t.sampler, seed, epoch);
        let chunks: Vec<&[usize]> = order.chunks(t.batch_size).collect();
        let keys = batches::draw_keys(&order, train.len());
        let key_chunks: Vec<&[u64]> = keys.chunks(t.batch_size).collect();
        let mut dropout_rng = rng::stream(seed, "dropout", epoch as u64);
        let mut acc = Accumulator::new(spec.task, train.classes.len());
        let mut loss_sum = 0.0;
        let base_lr = plateau.map_or(spec.optimizer.lr(), |p| p.lr);
        let mut lr = base_lr;
        let shape = inputs.shape();
        let completed = loader::with_batches(
            chunks.len(),
            loader,
            |step| {
                let (indices, keys) = (chunks[step], key_chunks[step]);
                inputs.train_batch(train, indices, keys, &objective, seed, epoch, step)
            },
            |batches| -> Result<bool, TrainError> {
                for (step, batch) in batches.enumerate() {
                    if hooks.interrupted() {
                        return Ok(false);
                    }
                    let global_step = (epoch - 1) * steps + step;
                    lr = schedule::learning_rate(
                        &spec.schedule,
                        base_lr,
                        global_step,
                        steps,
                        t.epochs,
                    );
                    let images = batch.indices.len();
                    let stepped = (|| -> candle_core::Result<(Tensor, Tensor)> {
                        if let Some(e) = super::oom::injected(images) {
                            return Err(e);
                        }
                        let (x, targets) = batch.into_tensors(shape, net.device())?;
                        let logits = net.forward(&x, Mode::Train, &mut dropout_rng)?;
                        let loss = objective.loss(&logits, &targets)?;
                        // f16: the backward pass on the scaled loss; an overflowed step is
                        // skipped.
                        let (mut grads, finite) = match scaler.as_mut() {
                            Some(s) => {
                                let mut grads = s.scaled(&loss)?.backward()?;
                                let finite = s.unscale(net.params(), &mut grads)?;
                                (grads, finite)
                            }
                            None => (loss.backward()?, true),
                        };
                        if finite {
                            if let Some(max_norm) = t.clip_grad_norm {
                                clip::clip_grad_norm(net.params(), &mut grads, max_norm)?;
                            }
                            optimizer.step(net.params(), &grads, lr)?;
                            if let Some(ema) = ema.as_mut() {
                                ema.update(net)?;
                            }
                        }
                        Ok((logits, loss))
                    })();
                    let (logits, loss) = stepped.map_err(|e| {
                        if super::oom::is_out_of_memory(&e.to_string()) {
                            TrainError::OutOfMemory {
                                batch_size: t.batch_size,
                            }
                        } else {
                            e.into()
                        }
                    })?;
                    // The step's one wait for the device, once its whole work is queued (a GPU
                    // computes asynchronously): the loss, for the progress display and the
                    // divergence check. A diverged job fails; its checkpoints are untouched.
                    let loss_value = loss.to_scalar::<f32>()? as f64;
                    if !loss_value.is_finite() {
                        return Err(TrainError::Diverged {
                            epoch,
                            step: step + 1,
                            loss: loss_value,
                        });
                    }
                    let chunk = chunks[step];
                    loss_sum += loss_value * chunk.len() as f64;
                    record(&mut acc, &logits.detach(), train, chunk, objective.positive)?;
                    sink.event(&Event::StepDone {
                        job: job.to_string(),
                        epoch,
                        step: step + 1,
                        steps,
                        loss: loss_value,
                    })?;
                }
                Ok(true)
            },
        )?;
        if !completed {
            return finish(history, best, Ending::Interrupted);
        }
        let train_metrics = acc.finish(
            loss_sum / train.len().max(1) as f64,
            &train.classes,
            objective.positive,
            None,
        );
        let validate = |v: &ImageSet| evaluate(net, v, inputs, t.eval_batch_size, &objective, None);
        let val_metrics = match (val, &ema) {
            (Some(v), Some(ema)) if !v.is_empty() => Some(ema.with_weights(net, || validate(v))?),
            (Some(v), None) if !v.is_empty() => Some(validate(v)?),
            _ => None,
        };
        // Without a validation split the last epoch is the best one.
        let score = val_metrics.as_ref().and_then(|m| m.get(&t.best_metric));
        let is_best = match score {
            Some(s) => improves(&t.best_metric, s, best.as_ref().and_then(|b| b.1)),
            None => true,
        };
        if is_best {
            let weights = match &ema {
                Some(ema) => ema.state(),
                None => net.state()?,
            };
            best = Some((epoch, score, weights));
        }
        if let (Some(p), Some(rules)) = (plateau.as_mut(), &rules) {
            p.epoch_done(rules, score, higher);
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
        let (best_epoch, best_score, best_model) = best.clone().unwrap_or((0, None, Vec::new()));
        hooks.checkpoint(&Checkpoint {
            epoch,
            history: history.clone(),
            best_epoch,
            best_score,
            model: net.state()?,
            optimizer: optimizer.state(),
            best_model,
            ema: ema.as_ref().map(Ema::state).unwrap_or_default(),
            schedule: plateau
                .map(|p| p.state())
                .unwrap_or_default()
                .into_iter()
                .chain(scaler.as_ref().map(LossScaler::state))
                .collect(),
        })?;
        if hooks.verdict(epoch, score)? == Verdict::Prune {
            return finish(history, best, Ending::Pruned { epoch });
        }
        if let Some(stop) = early_stop(&history, best.as_ref().map(|b| b.0), t.patience) {
            return finish(history, best, stop);
        }
    }
    finish(history, best, Ending::Completed)
}

/// Early stopping: `patience` epochs after the best one without a better one.
fn early_stop(
    history: &[EpochRecord],
    best_epoch: Option<usize>,
    patience: usize,
) -> Option<Ending> {
    let last = history.last()?.epoch;
    (patience > 0 && last >= best_epoch? + patience).then_some(Ending::StoppedEarly { epoch: last })
}

fn finish(
    history: Vec<EpochRecord>,
    best: Best,
    ending: Ending,
) -> Result<TrainOutcome, TrainError> {
    let (best_epoch, best_state) = match best {
        Some((e, _, state)) => (e, state),
        None => (0, Vec::new()),
    };
    Ok(TrainOutcome {
        history,
        best_epoch,
        best_state,
        ending,
    })
}

#[cfg(test)]
mod tests {
    use super::improves;

    #[test]
    fn early_stopping_waits_patience_epochs_after_the_best() {
        use super::{early_stop, Ending};
        use crate::report::events::EpochRecord;
        use crate::train::metrics::{ConfusionMatrix, Metrics};
        let m = Metrics::from_confusion(&ConfusionMatrix::new(2), 0.0, &["a".into(), "b".into()]);
        let history: Vec<EpochRecord> = (1..=5)
            .map(|epoch| EpochRecord {
                epoch,
                lr: 0.1,
                seconds: 0.0,
                train: m.clone(),
                val: None,
            })
            .collect();
        assert_eq!(
            early_stop(&history[..4], Some(2), 2),
            Some(Ending::StoppedEarly { epoch: 4 })
        );
        assert_eq!(early_stop(&history[..3], Some(2), 2), None);
        assert_eq!(
            early_stop(&history, Some(2), 0),
            None,
            "patience 0 never stops"
        );
        assert_eq!(early_stop(&[], Some(2), 1), None);
    }

    #[test]
    fn loss_improves_downwards_and_accuracy_upwards() {
        assert!(improves("loss", 0.1, Some(0.2)));
        assert!(!improves("loss", 0.3, Some(0.2)));
        assert!(improves("accuracy", 0.9, Some(0.8)));
        assert!(!improves("accuracy", 0.8, Some(0.8)));
        assert!(improves("f1_macro", 0.1, None));
    }
}
