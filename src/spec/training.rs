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
    let clip_grad_norm = optional(&mut t, "clip_grad_norm", d, |a, d| {
        r::number(a, "above 0", |v| v > 0.0, d)
    });
    let ema_decay = optional(&mut t, "ema_decay", d, |a, d| {
        r::number(a, "above 0 and below 1", |v| v > 0.0 && v < 1.0, d)
    });
    let on_oom = opt(&mut t, "on_oom", d, OnOom::Fail, |a, d| {
        Some(match r::choice(a, &["fail", "halve_batch"], d)?.as_str() {
            "halve_batch" => OnOom::HalveBatch,
            _ => OnOom::Fail,
        })
    });
    let precision = opt(&mut t, "precision", d, Precision::F32, |a, d| {
        Some(match r::choice(a, Precision::NAMES, d)?.as_str() {
            "bf16" => Precision::Bf16,
            "f16" => Precision::F16,
            _ => Precision::F32,
        })
    });
    t.finish(d);
    Some(TrainSpec {
        clip_grad_norm: clip_grad_norm?,
        ema_decay: ema_decay?,
        patience: patience?,
        epochs: epochs?,
        batch_size: batch_size?,
        eval_batch_size: eval_batch_size?,
        best_metric: best_metric?,
        class_weights: class_weights?,
        sampler: sampler?,
        label_smoothing: label_smoothing?,
        on_oom: on_oom?,
        precision: precision?,
    })
}

/// A key without a default: `Some(None)` when absent, `None` when present but invalid.
fn optional<T>(
    t: &mut TableReader,
    key: &'static str,
    d: &mut Diags,
    read: impl for<'b> FnOnce(At<'b>, &mut Diags) -> Option<T>,
) -> Option<Option<T>> {
    let path = t.path_of(key);
    match t.entry(key) {
        Some(e) => read(at(&e.node, &path), d).map(Some),
        None => Some(None),
    }
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

/// Every type-specific key of `[schedule]` and the types it belongs to.
const SCHEDULE_KEYS: &[(&str, &[&str])] = &[
    (
        "min_lr",
        &["cosine", "cosine_restarts", "reduce_on_plateau"],
    ),
    ("every_epochs", &["step"]),
    ("gamma", &["step", "multistep", "exponential"]),
    ("max_lr", &["one_cycle"]),
    ("pct_start", &["one_cycle"]),
    ("div_factor", &["one_cycle"]),
    ("final_div_factor", &["one_cycle"]),
    ("anneal", &["one_cycle"]),
    ("milestones", &["multistep"]),
    ("t0", &["cosine_restarts"]),
    ("t_mult", &["cosine_restarts"]),
    ("patience", &["reduce_on_plateau"]),
    ("factor", &["reduce_on_plateau"]),
    ("threshold", &["reduce_on_plateau"]),
    ("cooldown", &["reduce_on_plateau"]),
];

pub(super) fn schedule(
    mut t: TableReader,
    optimizer: Option<&OptimizerSpec>,
    train: Option<&TrainSpec>,
    split: Option<&SplitSpec>,
    d: &mut Diags,
) -> Option<ScheduleSpec> {
    let type_span = t.entry("type").map(|e| e.node.span);
    let kind = opt(&mut t, "type", d, "constant".to_string(), |a, d| {
        r::choice(
            a,
            &[
                "constant",
                "cosine",
                "step",
                "one_cycle",
                "multistep",
                "exponential",
                "cosine_restarts",
                "reduce_on_plateau",
            ],
            d,
        )
    })?;
    let warmup_path = t.path_of("warmup_epochs");
    let warmup_span = t.entry("warmup_epochs").map(|e| e.node.span);
    let warmup_epochs = opt(&mut t, "warmup_epochs", d, 0.0, |a, d| {
        r::number(a, "at least 0", |v| v >= 0.0, d)
    });
    let at_least_0 = |a: At, d: &mut Diags| r::number(a, "at least 0", |v| v >= 0.0, d);
    let above_0 = |a: At, d: &mut Diags| r::number(a, "above 0", |v| v > 0.0, d);
    let gamma = |t: &mut TableReader, default: Option<f64>, d: &mut Diags| {
        let read = |a: At, d: &mut Diags| {
            r::number(a, "above 0 and at most 1", |v| v > 0.0 && v <= 1.0, d)
        };
        match default {
            Some(g) => opt(t, "gamma", d, g, read),
            None => {
                let path = t.path_of("gamma");
                t.required("gamma", d, "0.9")
                    .and_then(|n| read(at(n, &path), d))
            }
        }
    };
    let kind = match kind.as_str() {
        "cosine" => ScheduleKind::Cosine {
            min_lr: opt(&mut t, "min_lr", d, 0.0, at_least_0)?,
        },
        "step" => {
            let ep = t.path_of("every_epochs");
            let every = t
                .required("every_epochs", d, "10")
                .and_then(|n| r::usize_at_least(at(n, &ep), 1, d));
            let gamma = gamma(&mut t, Some(0.1), d);
            ScheduleKind::Step {
                every_epochs: every?,
                gamma: gamma?,
            }
        }
        "one_cycle" => {
            let max_lr = opt(
                &mut t,
                "max_lr",
                d,
                optimizer.map_or(1e-3, |o| o.lr()),
                above_0,
            );
            let pct_start = opt(&mut t, "pct_start", d, 0.3, |a, d| {
                r::number(a, "above 0 and below 1", |v| v > 0.0 && v < 1.0, d)
            });
            let div_factor = opt(&mut t, "div_factor", d, 25.0, above_0);
            let final_div_factor = opt(&mut t, "final_div_factor", d, 1e4, above_0);
            let anneal = opt(&mut t, "anneal", d, Anneal::Cos, |a, d| {
                Some(match r::choice(a, &["cos", "linear"], d)?.as_str() {
                    "linear" => Anneal::Linear,
                    _ => Anneal::Cos,
                })
            });
            ScheduleKind::OneCycle {
                max_lr: max_lr?,
                pct_start: pct_start?,
                div_factor: div_factor?,
                final_div_factor: final_div_factor?,
                anneal: anneal?,
            }
        }
        "multistep" => {
            let mp = t.path_of("milestones");
            let milestones = t
                .required("milestones", d, "[30, 60]")
                .and_then(|n| milestones(at(n, &mp), train.map(|t| t.epochs), d));
            let gamma = gamma(&mut t, Some(0.1), d);
            ScheduleKind::Multistep {
                milestones: milestones?,
                gamma: gamma?,
            }
        }
        "exponential" => ScheduleKind::Exponential {
            gamma: gamma(&mut t, None, d)?,
        },
        "cosine_restarts" => {
            let tp = t.path_of("t0");
            let t0 = t
                .required("t0", d, "10")
                .and_then(|n| r::usize_at_least(at(n, &tp), 1, d));
            let t_mult = opt(&mut t, "t_mult", d, 1, |a, d| r::usize_at_least(a, 1, d));
            let min_lr = opt(&mut t, "min_lr", d, 0.0, at_least_0);
            ScheduleKind::CosineRestarts {
                t0: t0?,
                t_mult: t_mult?,
                min_lr: min_lr?,
            }
        }
        "reduce_on_plateau" => {
            let patience = opt(&mut t, "patience", d, 10, |a, d| r::usize_at_least(a, 0, d));
            let factor = opt(&mut t, "factor", d, 0.1, |a, d| {
                r::number(a, "above 0 and below 1", |v| v > 0.0 && v < 1.0, d)
            });
            let threshold = opt(&mut t, "threshold", d, 1e-4, at_least_0);
            let cooldown = opt(&mut t, "cooldown", d, 0, |a, d| r::usize_at_least(a, 0, d));
            let min_lr = opt(&mut t, "min_lr", d, 0.0, at_least_0);
            if let Some(split) = split {
                let why = if split.refit {
                    Some("its refit job retrains on all training data, without validation")
                } else if split.validation_fraction == 0.0 && split.folds == 0 {
                    Some("the spec has no validation split")
                } else {
                    None
                };
                if let Some(why) = why {
                    d.error(
                        type_span.unwrap_or(t.span()),
                        &t.path_of("type"),
                        format!("reduce_on_plateau decides on the validation metric, but {why}"),
                        Some(
                            "set split.validation_fraction above 0 (or split.folds), without split.refit, or choose another schedule"
                                .into(),
                        ),
                    );
                    return None;
                }
            }
            ScheduleKind::ReduceOnPlateau {
                patience: patience?,
                factor: factor?,
                threshold: threshold?,
                cooldown: cooldown?,
                min_lr: min_lr?,
            }
        }
        _ => ScheduleKind::Constant,
    };
    for (key, owners) in SCHEDULE_KEYS {
        if owners.contains(&kind_name(&kind)) {
            continue;
        }
        if let Some(e) = t.entry(key) {
            let owners = owners
                .iter()
                .map(|o| format!("type = \"{o}\""))
                .collect::<Vec<_>>()
                .join(" or ");
            d.error(
                e.key_span,
                &t.path_of(key),
                format!(
                    "`{key}` applies only to {owners}, not to type = \"{}\"",
                    kind_name(&kind)
                ),
                None,
            );
        }
    }
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

/// The `type` name of a schedule.
pub fn kind_name(kind: &ScheduleKind) -> &'static str {
    match kind {
        ScheduleKind::Constant => "constant",
        ScheduleKind::Cosine { .. } => "cosine",
        ScheduleKind::Step { .. } => "step",
        ScheduleKind::OneCycle { .. } => "one_cycle",
        ScheduleKind::Multistep { .. } => "multistep",
        ScheduleKind::Exponential { .. } => "exponential",
        ScheduleKind::CosineRestarts { .. } => "cosine_restarts",
        ScheduleKind::ReduceOnPlateau { .. } => "reduce_on_plateau",
    }
}

/// `milestones`: epochs, strictly increasing, each at least 1 and below `train.epochs`.
fn milestones(a: At, epochs: Option<usize>, d: &mut Diags) -> Option<Vec<usize>> {
    let items = r::array(a, d)?;
    if items.is_empty() {
        d.error(
            a.node.span,
            a.path,
            "no milestones",
            Some("list the epochs after which the rate drops, e.g. [30, 60]".into()),
        );
        return None;
    }
    let mut out: Vec<usize> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = r::index(a.path, i);
        let v = r::usize_at_least(at(item, &p), 1, d)?;
        if epochs.is_some_and(|e| v >= e) {
            d.error(
                item.span,
                &p,
                format!(
                    "milestone {v} is not before the end of training (train.epochs = {})",
                    epochs.unwrap_or(0)
                ),
                None,
            );
            return None;
        }
        if let Some(&prev) = out.last() {
            if v <= prev {
                d.error(
                    item.span,
                    &p,
                    format!("milestone {v} does not come after {prev}"),
                    Some("list the milestones in strictly increasing order".into()),
                );
                return None;
            }
        }
        out.push(v);
    }
    Some(out)
}
