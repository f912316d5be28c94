//! The `[optimizer]`, `[train]` and `[schedule]` sections: the optimizer and its settings, the
//! training loop (metric, class weights, sampler, smoothing) and the learning-rate schedule.

use super::reader::{self as r, At, Diags, TableReader};
use super::tree::Value;
use super::types::*;
use super::validate::{at, opt};
use crate::train::metrics::{default_best_metric, selectable_metrics};

pub(super) fn optimizer(mut t: TableReader, d: &mut Diags) -> Option<OptimizerSpec> {
    let kind = opt(&mut t, "kind", d, "adamw".to_string(), |a, d| {
        r::choice(a, &["sgd", "adam", "adamw"], d)
    });
    let positive = |a: At, d: &mut Diags| r::number(a, "above 0", |v| v > 0.0, d);
    let non_negative = |a: At, d: &mut Diags| r::number(a, "at least 0", |v| v >= 0.0, d);
    let unit = |a: At, d: &mut Diags| {
        r::number(a, "at least 0 and below 1", |v| (0.0..1.0).contains(&v), d)
    };
    let lr = opt(&mut t, "lr", d, 1e-3, positive);
    let kind = kind?;
    let default_wd = if kind == "adamw" { 0.01 } else { 0.0 };
    let weight_decay = opt(&mut t, "weight_decay", d, default_wd, non_negative);
    let only = |t: &mut TableReader, keys: &[&'static str], owner: &str, d: &mut Diags| {
        for key in keys {
            if let Some(e) = t.entry(key) {
                d.error(
                    e.key_span,
                    &t.path_of(key),
                    format!("`{key}` applies only to {owner}, not to kind = \"{kind}\""),
                    None,
                );
            }
        }
    };
    let spec = if kind == "sgd" {
        let momentum = opt(&mut t, "momentum", d, 0.0, unit);
        let dampening = opt(&mut t, "dampening", d, 0.0, unit);
        let nesterov_span = t.entry("nesterov").map(|e| e.node.span);
        let nesterov = opt(&mut t, "nesterov", d, false, r::boolean);
        only(
            &mut t,
            &["betas", "eps"],
            "kind = \"adam\" and \"adamw\"",
            d,
        );
        let (momentum, dampening, nesterov) = (momentum?, dampening?, nesterov?);
        if nesterov && (momentum == 0.0 || dampening != 0.0) {
            d.error(
                nesterov_span.unwrap_or(t.span()),
                &t.path_of("nesterov"),
                "Nesterov momentum needs momentum > 0 and dampening = 0",
                None,
            );
            return None;
        }
        OptimizerSpec::Sgd {
            lr: lr?,
            momentum,
            dampening,
            nesterov,
            weight_decay: weight_decay?,
        }
    } else {
        let betas = opt(&mut t, "betas", d, vec![0.9, 0.999], |a, d| {
            let b = r::numbers(a, "at least 0 and below 1", |v| (0.0..1.0).contains(&v), d)?;
            if b.len() != 2 {
                d.error(
                    a.node.span,
                    a.path,
                    format!("expected [beta1, beta2], found {} values", b.len()),
                    None,
                );
                return None;
            }
            Some(b)
        });
        let eps = opt(&mut t, "eps", d, 1e-8, positive);
        only(
            &mut t,
            &["momentum", "dampening", "nesterov"],
            "kind = \"sgd\"",
            d,
        );
        let (betas, lr, eps, weight_decay) = (betas?, lr?, eps?, weight_decay?);
        let (beta1, beta2) = (betas[0], betas[1]);
        if kind == "adam" {
            OptimizerSpec::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            }
        } else {
            OptimizerSpec::AdamW {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            }
        }
    };
    t.finish(d);
    Some(spec)
}

pub(super) fn train(
    mut t: TableReader,
    task: Task,
    data: Option<&DataSpec>,
    d: &mut Diags,
) -> Option<TrainSpec> {
    let bounded =
        |max: i64| move |a: At, d: &mut Diags| r::integer(a, 1, max, d).map(|v| v as usize);
    let epochs = opt(&mut t, "epochs", d, 10, bounded(100_000));
    let batch_size = opt(&mut t, "batch_size", d, 64, bounded(65_536));
    let eval_batch_size = opt(&mut t, "eval_batch_size", d, 512, bounded(65_536));
    let names = selectable_metrics(task);
    let task_name = task_name(task);
    let best_metric = opt(
        &mut t,
        "best_metric",
        d,
        default_best_metric(task).to_string(),
        |a, d| {
            let s = r::string(a, d)?;
            if names.contains(&s.as_str()) {
                return Some(s);
            }
            let list = names
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ");
            d.error(
                a.node.span,
                a.path,
                format!("unknown metric \"{s}\" for task \"{task_name}\""),
                Some(format!("allowed for task \"{task_name}\": {list}")),
            );
            None
        },
    );
    let patience = opt(&mut t, "patience", d, 0, |a, d| r::usize_at_least(a, 0, d));
    let num_classes = data.and_then(|d| d.classes.as_ref()).map(Vec::len);
    let class_weights = opt(&mut t, "class_weights", d, ClassWeights::None, |a, d| {
        class_weights(a, task, num_classes, d)
    });
    let sampler = opt(&mut t, "sampler", d, Sampler::Shuffle, |a, d| {
        Some(match r::choice(a, &["shuffle", "balanced"], d)?.as_str() {
            "balanced" => Sampler::Balanced,
            _ => Sampler::Shuffle,
        })
    });
    let label_smoothing = opt(&mut t, "label_smoothing", d, 0.0, |a, d| {
        let v = r::number(a, "at least 0 and below 1", |v| (0.0..1.0).contains(&v), d)?;
        if v > 0.0 && task != Task::Multiclass {
            d.error(
                a.node.span,
                a.path,
                format!(
                    "label_smoothing applies only to task = \"multiclass\", not \"{task_name}\""
                ),
                Some("remove it, or set it to 0".into()),
            );
            return None;
        }
        Some(v)
    });
    t.finish(d);
    Some(TrainSpec {
        patience: patience?,
        epochs: epochs?,
        batch_size: batch_size?,
        eval_batch_size: eval_batch_size?,
        best_metric: best_metric?,
        class_weights: class_weights?,
        sampler: sampler?,
        label_smoothing: label_smoothing?,
    })
}

fn task_name(task: Task) -> &'static str {
    match task {
        Task::Multiclass => "multiclass",
        Task::Binary => "binary",
        Task::Multilabel => "multilabel",
    }
}

/// `"none"`, `"balanced"`, or an array of non-negative weights, one per class (`num_classes`,
/// when the spec lists the classes; otherwise checked against the data when it is loaded).
fn class_weights(
    a: At,
    task: Task,
    num_classes: Option<usize>,
    d: &mut Diags,
) -> Option<ClassWeights> {
    if let Value::Str(_) = &a.node.value {
        return Some(match r::choice(a, &["none", "balanced"], d)?.as_str() {
            "balanced" => ClassWeights::Balanced,
            _ => ClassWeights::None,
        });
    }
    let Value::Array(_) = &a.node.value else {
        r::type_error(a, "\"none\", \"balanced\" or an array of weights", d);
        return None;
    };
    let w = r::numbers(a, "at least 0", |v| v >= 0.0, d)?;
    let want = if task == Task::Binary {
        Some(2)
    } else {
        num_classes
    };
    if let Some(k) = want {
        if w.len() != k {
            d.error(
                a.node.span,
                a.path,
                format!("{} weights for {k} classes", w.len()),
                Some("give one weight per class, in the order of the class list".into()),
            );
            return None;
        }
    }
    if w.iter().all(|&v| v == 0.0) {
        d.error(a.node.span, a.path, "every weight is 0", None);
        return None;
    }
    Some(ClassWeights::Fixed(w))
}

pub(super) fn schedule(
    mut t: TableReader,
    train: Option<&TrainSpec>,
    d: &mut Diags,
) -> Option<ScheduleSpec> {
    let kind = opt(&mut t, "type", d, "constant".to_string(), |a, d| {
        r::choice(a, &["constant", "cosine", "step"], d)
    })?;
    let warmup_path = t.path_of("warmup_epochs");
    let warmup_span = t.entry("warmup_epochs").map(|e| e.node.span);
    let warmup_epochs = opt(&mut t, "warmup_epochs", d, 0.0, |a, d| {
        r::number(a, "at least 0", |v| v >= 0.0, d)
    });
    let only = |t: &mut TableReader, key: &'static str, owner: &str, d: &mut Diags| {
        if let Some(e) = t.entry(key) {
            d.error(
                e.key_span,
                &t.path_of(key),
                format!("`{key}` applies only to type = \"{owner}\", not to type = \"{kind}\""),
                None,
            );
        }
    };
    let kind = match kind.as_str() {
        "cosine" => {
            let min_lr = opt(&mut t, "min_lr", d, 0.0, |a, d| {
                r::number(a, "at least 0", |v| v >= 0.0, d)
            });
            only(&mut t, "every_epochs", "step", d);
            only(&mut t, "gamma", "step", d);
            ScheduleKind::Cosine { min_lr: min_lr? }
        }
        "step" => {
            let ep = t.path_of("every_epochs");
            let every = t
                .required("every_epochs", d, "10")
                .and_then(|n| r::usize_at_least(at(n, &ep), 1, d));
            let gamma = opt(&mut t, "gamma", d, 0.1, |a, d| {
                r::number(a, "above 0 and at most 1", |v| v > 0.0 && v <= 1.0, d)
            });
            only(&mut t, "min_lr", "cosine", d);
            ScheduleKind::Step {
                every_epochs: every?,
                gamma: gamma?,
            }
        }
        _ => {
            for (key, owner) in [
                ("min_lr", "cosine"),
                ("every_epochs", "step"),
                ("gamma", "step"),
            ] {
                only(&mut t, key, owner, d);
            }
            ScheduleKind::Constant
        }
    };
    t.finish(d);
    let warmup_epochs = warmup_epochs?;
    if let (Some(train), Some(span)) = (train, warmup_span) {
        if warmup_epochs >= train.epochs as f64 {
            d.error(span, &warmup_path, format!("warm-up of {warmup_epochs} epochs does not end before training does (train.epochs = {})", train.epochs), None);
            return None;
        }
    }
    Some(ScheduleSpec {
        kind,
        warmup_epochs,
    })
}
