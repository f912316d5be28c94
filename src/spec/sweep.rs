//! `[sweep]`: which spec values vary (by key path) and how — grid or seeded random — and the
//! expansion into trial points, each validated like a hand-written spec.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::reader::{self as r, child, At, Diags, TableReader};
use super::tree::{self, Node, Segment, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepMethod {
    Grid,
    Random,
}

/// One swept value: what a hyperparameter takes in one trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Text(s) => write!(f, "{s}"),
        }
    }
}

/// Where a swept parameter's values come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Domain {
    /// A list: every value in a grid, one drawn at random otherwise.
    Values {
        values: Vec<ParamValue>,
    },
    Uniform {
        low: f64,
        high: f64,
    },
    LogUniform {
        low: f64,
        high: f64,
    },
    /// Integers `low..=high` in steps of `step`.
    Int {
        low: i64,
        high: i64,
        step: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepParam {
    pub path: String,
    pub domain: Domain,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepSpec {
    pub method: SweepMethod,
    /// Random sweeps: how many points are drawn.
    pub trials: usize,
    /// Each point is run with this many seeds (seed, seed + 1, ...).
    pub repeats: usize,
    pub parameters: Vec<SweepParam>,
    /// Successive halving across trials, if asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruning: Option<Pruning>,
}

/// Asynchronous successive halving (ASHA): at each rung epoch a job goes on only if its
/// trial's mean score over the folds done so far is in the top 1/`reduction_factor` there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pruning {
    pub min_epochs: usize,
    pub reduction_factor: usize,
}

impl Pruning {
    /// The rung epochs below `epochs`: min_epochs × reduction_factor^k.
    pub fn rungs(&self, epochs: usize) -> Vec<usize> {
        let mut rungs = Vec::new();
        let mut r = self.min_epochs.max(1);
        while r < epochs {
            rungs.push(r);
            r = r.saturating_mul(self.reduction_factor.max(2));
        }
        rungs
    }
}

/// A parsed parameter with the tree nodes its values came from (for error positions).
struct ParsedParam {
    path: Vec<Segment>,
    key: String,
    domain: Domain,
    /// The node of each listed value, or the domain's table for sampled values.
    value_nodes: Vec<Node>,
    domain_node: Node,
    /// Where the parameter's key path is written in [sweep.parameters].
    key_span: super::source::Span,
}

/// The most points a sweep may expand to.
pub const MAX_POINTS: usize = 100_000;

/// Reads `[sweep]`; `None` with diagnostics when it is invalid.
pub fn parse(node: &Node, seed: u64, d: &mut Diags) -> Option<(SweepSpec, Vec<SweepPoints>)> {
    let path = vec![Segment::Key("sweep".into())];
    let mut t = TableReader::new(node, &path, d)?;
    let mp = t.path_of("method");
    let method = match t.entry("method") {
        Some(e) => match r::choice(
            At {
                node: &e.node,
                path: &mp,
            },
            &["grid", "random"],
            d,
        )?
        .as_str()
        {
            "random" => SweepMethod::Random,
            _ => SweepMethod::Grid,
        },
        None => SweepMethod::Grid,
    };
    let tp = t.path_of("trials");
    let trials_entry = t.entry("trials");
    let trials = match trials_entry {
        Some(e) => r::integer(
            At {
                node: &e.node,
                path: &tp,
            },
            1,
            MAX_POINTS as i64,
            d,
        )
        .map(|v| v as usize),
        None => Some(0),
    };
    let rp = t.path_of("repeats");
    let repeats = match t.entry("repeats") {
        Some(e) => r::integer(
            At {
                node: &e.node,
                path: &rp,
            },
            1,
            1000,
            d,
        )
        .map(|v| v as usize),
        None => Some(1),
    };
    let pruning_path = t.path_of("pruning");
    let pruning_kind = match t.entry("pruning") {
        Some(e) => r::choice(
            At {
                node: &e.node,
                path: &pruning_path,
            },
            &["none", "asha"],
            d,
        )
        .map(|k| k == "asha"),
        None => Some(false),
    };
    let pruning_number = |key: &'static str,
                          default: usize,
                          min: i64,
                          t: &mut TableReader,
                          d: &mut Diags|
     -> Option<(usize, Option<super::source::Span>)> {
        let p = t.path_of(key);
        match t.entry(key) {
            Some(e) => r::integer(
                At {
                    node: &e.node,
                    path: &p,
                },
                min,
                1000,
                d,
            )
            .map(|v| (v as usize, Some(e.key_span))),
            None => Some((default, None)),
        }
    };
    let min_epochs = pruning_number("min_epochs", 1, 1, &mut t, d);
    let reduction = pruning_number("reduction_factor", 3, 2, &mut t, d);
    let pp = t.path_of("parameters");
    let params_node = t.entry("parameters").map(|e| &e.node);
    let span = t.span();
    t.finish(d);
    let (trials, repeats, asha, min_epochs, reduction) =
        (trials?, repeats?, pruning_kind?, min_epochs?, reduction?);
    if !asha {
        if let Some(span) = min_epochs.1.or(reduction.1) {
            d.error(
                span,
                &pruning_path,
                "min_epochs and reduction_factor apply only to pruning = \"asha\"",
                Some("add pruning = \"asha\"".into()),
            );
            return None;
        }
    }
    let pruning = asha.then_some(Pruning {
        min_epochs: min_epochs.0,
        reduction_factor: reduction.0,
    });
    match (method, trials_entry) {
        (SweepMethod::Random, None) => {
            d.error(
                span,
                &tp,
                "a random sweep needs `trials`, the number of points to draw",
                Some("add `trials = 20`".into()),
            );
            return None;
        }
        (SweepMethod::Grid, Some(e)) => {
            d.error(
                e.key_span,
                &tp,
                "`trials` applies only to method = \"random\"; a grid runs every combination",
                None,
            );
            return None;
        }
        _ => {}
    }
    let empty = tree::Table::default();
    let table = match params_node {
        Some(node) => {
            let Value::Table(table) = &node.value else {
                r::type_error(At { node, path: &pp }, "a table of key path = values", d);
                return None;
            };
            table
        }
        None => &empty,
    };
    // Without parameters a sweep is a seeds-only study: the spec itself, `repeats` times.
    if table.entries.is_empty() && (repeats < 2 || method == SweepMethod::Random) {
        let (message, help) = if method == SweepMethod::Random {
            (
                "a random sweep needs parameters to draw",
                "add [sweep.parameters] with e.g. \"optimizer.lr\" = { loguniform = [1e-4, 1e-2] }",
            )
        } else {
            (
                "nothing to sweep: no parameters and a single repeat",
                "add [sweep.parameters] with e.g. \"optimizer.lr\" = [0.001, 0.01], or repeats = 5 to run the spec with 5 seeds",
            )
        };
        d.error(
            params_node.map_or(span, |n| n.span),
            &pp,
            message,
            Some(help.into()),
        );
        return None;
    }
    let mut parsed = Vec::new();
    for e in &table.entries {
        let p = child(&pp, &e.key);
        let Some(target) = tree::parse_path(&e.key) else {
            d.error(e.key_span, &p, format!("`{}` is not a key path", e.key), Some("write keys separated by dots and indices in brackets, e.g. \"model.layers[2].rate\"".into()));
            continue;
        };
        if matches!(target.first(), Some(Segment::Key(k)) if k == "name" || k == "seed" || k == "sweep")
        {
            let help = if e.key == "seed" {
                Some("use sweep.repeats to run each point with several seeds".to_string())
            } else {
                None
            };
            d.error(e.key_span, &p, format!("`{}` cannot be swept", e.key), help);
            continue;
        }
        if let Some(param) = domain(&e.node, &p, method, d) {
            parsed.push(ParsedParam {
                path: target,
                key: e.key.clone(),
                domain: param.0,
                value_nodes: param.1,
                domain_node: e.node.clone(),
                key_span: e.key_span,
            });
        }
    }
    if parsed.len() != table.entries.len() {
        return None;
    }
    let points = match method {
        SweepMethod::Grid => grid(&parsed, span, d)?,
        SweepMethod::Random => random(&parsed, trials, seed),
    };
    let spec = SweepSpec {
        method,
        trials: if method == SweepMethod::Random {
            trials
        } else {
            points.len()
        },
        repeats,
        parameters: parsed
            .iter()
            .map(|p| SweepParam {
                path: p.key.clone(),
                domain: p.domain.clone(),
            })
            .collect(),
        pruning,
    };
    let points = points
        .into_iter()
        .map(|assignments| SweepPoints {
            assignments: assignments
                .into_iter()
                .zip(&parsed)
                .map(|((value, node), p)| Assignment {
                    key: p.key.clone(),
                    path: p.path.clone(),
                    value,
                    node,
                    key_span: p.key_span,
                })
                .collect(),
        })
        .collect();
    Some((spec, points))
}

/// One trial point: the values to set, with the nodes to report errors at.
pub struct SweepPoints {
    pub assignments: Vec<Assignment>,
}

pub struct Assignment {
    pub key: String,
    pub path: Vec<Segment>,
    pub value: ParamValue,
    pub node: Node,
    pub key_span: super::source::Span,
}

impl SweepPoints {
    /// The point's parameters by key path.
    pub fn params(&self) -> BTreeMap<String, ParamValue> {
        self.assignments
            .iter()
            .map(|a| (a.key.clone(), a.value.clone()))
            .collect()
    }

    /// Sets this point's values in a copy of the spec tree.
    pub fn apply(&self, root: &Node) -> Result<Node, super::Diagnostic> {
        let mut root = root.clone();
        for a in &self.assignments {
            tree::set_path(&mut root, &a.path, a.node.clone(), a.key_span)?;
        }
        Ok(root)
    }
}

fn scalar(node: &Node, path: &[Segment], d: &mut Diags) -> Option<ParamValue> {
    Some(match &node.value {
        Value::Bool(b) => ParamValue::Bool(*b),
        Value::Int(i) => ParamValue::Int(*i),
        Value::Float(f) => ParamValue::Float(*f),
        Value::Str(s) => ParamValue::Text(s.clone()),
        _ => {
            r::type_error(At { node, path }, "a number, string or boolean", d);
            return None;
        }
    })
}

fn bounds(
    a: At,
    check: impl Fn(f64) -> bool + Copy,
    rule: &str,
    d: &mut Diags,
) -> Option<(f64, f64)> {
    let v = r::numbers(a, rule, check, d)?;
    if v.len() != 2 || v[0] >= v[1] {
        d.error(
            a.node.span,
            a.path,
            "expected [low, high] with low < high",
            None,
        );
        return None;
    }
    Some((v[0], v[1]))
}

/// A parameter's domain and the nodes its values are reported at.
fn domain(
    node: &Node,
    path: &[Segment],
    method: SweepMethod,
    d: &mut Diags,
) -> Option<(Domain, Vec<Node>)> {
    match &node.value {
        Value::Array(items) => {
            if items.is_empty() {
                d.error(node.span, path, "an empty list of values", None);
                return None;
            }
            let mut values = Vec::new();
            for (i, item) in items.iter().enumerate() {
                values.push(scalar(item, &r::index(path, i), d)?);
            }
            Some((Domain::Values { values }, items.clone()))
        }
        Value::Table(_) => {
            let mut t = TableReader::new(node, path, d)?;
            let keys = ["choice", "uniform", "loguniform", "int"];
            let found: Vec<&str> = keys
                .iter()
                .copied()
                .filter(|k| t.entry(k).is_some())
                .collect();
            let span = t.span();
            t.finish(d);
            let [kind] = found.as_slice() else {
                d.error(
                    span,
                    path,
                    "expected exactly one of choice, uniform, loguniform, int",
                    Some("e.g. { loguniform = [1e-4, 1e-2] }".into()),
                );
                return None;
            };
            let Value::Table(table) = &node.value else {
                return None;
            };
            let entry = table.get(kind)?;
            let p = child(path, kind);
            let a = At {
                node: &entry.node,
                path: &p,
            };
            let sampled = |d: &mut Diags| {
                if method == SweepMethod::Grid {
                    d.error(
                        entry.key_span,
                        &p,
                        format!("`{kind}` draws random values; a grid needs a list"),
                        Some("use method = \"random\", or list the values".into()),
                    );
                    return false;
                }
                true
            };
            match *kind {
                "choice" => domain(&entry.node, &p, method, d),
                "uniform" => {
                    let (low, high) = bounds(a, |_| true, "a finite number", d)?;
                    sampled(d).then(|| (Domain::Uniform { low, high }, vec![node.clone()]))
                }
                "loguniform" => {
                    let (low, high) = bounds(a, |v| v > 0.0, "above 0", d)?;
                    sampled(d).then(|| (Domain::LogUniform { low, high }, vec![node.clone()]))
                }
                _ => {
                    let items = r::array(a, d)?;
                    let ints: Option<Vec<i64>> = items
                        .iter()
                        .enumerate()
                        .map(|(i, n)| {
                            r::integer(
                                At {
                                    node: n,
                                    path: &r::index(&p, i),
                                },
                                i64::MIN,
                                i64::MAX,
                                d,
                            )
                        })
                        .collect();
                    let ints = ints?;
                    let (low, high, step) = match ints.as_slice() {
                        [l, h] => (*l, *h, 1),
                        [l, h, s] => (*l, *h, *s),
                        _ => {
                            d.error(
                                entry.node.span,
                                &p,
                                "expected [low, high] or [low, high, step]",
                                None,
                            );
                            return None;
                        }
                    };
                    if low > high || step < 1 || (high - low) / step >= MAX_POINTS as i64 {
                        d.error(
                            entry.node.span,
                            &p,
                            "expected low ≤ high and a step ≥ 1 giving at most 100000 values",
                            None,
                        );
                        return None;
                    }
                    Some((Domain::Int { low, high, step }, vec![node.clone()]))
                }
            }
        }
        _ => {
            let v = scalar(node, path, d)?;
            Some((Domain::Values { values: vec![v] }, vec![node.clone()]))
        }
    }
}

fn value_node(value: &ParamValue, span: super::source::Span) -> Node {
    let value = match value {
        ParamValue::Bool(b) => Value::Bool(*b),
        ParamValue::Int(i) => Value::Int(*i),
        ParamValue::Float(f) => Value::Float(*f),
        ParamValue::Text(s) => Value::Str(s.clone()),
    };
    Node { value, span }
}

/// The discrete values of a domain with their nodes.
fn discrete(p: &ParsedParam) -> Vec<(ParamValue, Node)> {
    match &p.domain {
        Domain::Values { values } => values
            .iter()
            .cloned()
            .zip(p.value_nodes.iter().cloned())
            .collect(),
        Domain::Int { low, high, step } => {
            let span = p.domain_node.span;
            (0..=(high - low) / step)
                .map(|i| ParamValue::Int(low + i * step))
                .map(|v| (v.clone(), value_node(&v, span)))
                .collect()
        }
        _ => Vec::new(),
    }
}

fn grid(
    params: &[ParsedParam],
    span: super::source::Span,
    d: &mut Diags,
) -> Option<Vec<Vec<(ParamValue, Node)>>> {
    let mut points: Vec<Vec<(ParamValue, Node)>> = vec![Vec::new()];
    for p in params {
        let values = discrete(p);
        if points.len().saturating_mul(values.len()) > MAX_POINTS {
            d.error(
                span,
                &[Segment::Key("sweep".into())],
                format!("the grid has more than {MAX_POINTS} points"),
                Some("use method = \"random\" with a number of trials".into()),
            );
            return None;
        }
        points = points
            .into_iter()
            .flat_map(|pt| {
                values
                    .iter()
                    .map(move |v| [pt.clone(), vec![v.clone()]].concat())
            })
            .collect();
    }
    Some(points)
}

fn random(params: &[ParsedParam], trials: usize, seed: u64) -> Vec<Vec<(ParamValue, Node)>> {
    // Every draw comes from its own stream, so adding trials keeps the earlier points.
    (0..trials)
        .map(|t| {
            let mut rng = crate::train::rng::stream(seed, "sweep", t as u64);
            params
                .iter()
                .map(|p| {
                    let span = p.domain_node.span;
                    let v = match &p.domain {
                        Domain::Uniform { low, high } => {
                            ParamValue::Float(rng.random_range(*low..*high))
                        }
                        Domain::LogUniform { low, high } => {
                            ParamValue::Float(rng.random_range(low.ln()..high.ln()).exp())
                        }
                        _ => {
                            let choices = discrete(p);
                            let i = rng.random_range(0..choices.len());
                            return choices[i].clone();
                        }
                    };
                    (v.clone(), value_node(&v, span))
                })
                .collect()
        })
        .collect()
}
