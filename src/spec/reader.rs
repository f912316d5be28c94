//! Typed reading of the spanned tree: each getter checks type and range, and records a
//! diagnostic with the key path instead of failing, so one pass reports every problem.

use super::diagnostic::{did_you_mean, Diagnostic};
use super::source::Span;
use super::tree::{path_string, Entry, Node, Segment, Table, Value};

/// Collects diagnostics while a spec is read.
#[derive(Default)]
pub struct Diags {
    pub list: Vec<Diagnostic>,
    /// Data paths are taken as written even where nothing exists (reading a job's spec to use
    /// its model, perhaps where its training data is not).
    pub paths_may_be_missing: bool,
}

impl Diags {
    pub fn error(
        &mut self,
        span: Span,
        path: &[Segment],
        message: impl Into<String>,
        help: Option<String>,
    ) {
        self.list.push(Diagnostic {
            span: Some(span),
            path: path_string(path),
            message: message.into(),
            help,
        });
    }
}

/// A node together with its key path.
#[derive(Clone, Copy)]
pub struct At<'a> {
    pub node: &'a Node,
    pub path: &'a [Segment],
}

pub fn child(path: &[Segment], key: &str) -> Vec<Segment> {
    let mut p = path.to_vec();
    p.push(Segment::Key(key.to_string()));
    p
}

pub fn index(path: &[Segment], i: usize) -> Vec<Segment> {
    let mut p = path.to_vec();
    p.push(Segment::Index(i));
    p
}

/// Reads the keys of one table, remembering which are known, and reports the unknown ones.
pub struct TableReader<'a> {
    table: &'a Table,
    span: Span,
    pub path: Vec<Segment>,
    known: Vec<&'static str>,
}

impl<'a> TableReader<'a> {
    /// `None` (with a diagnostic) if the node is not a table.
    pub fn new(node: &'a Node, path: &[Segment], d: &mut Diags) -> Option<Self> {
        match &node.value {
            Value::Table(table) => Some(TableReader {
                table,
                span: node.span,
                path: path.to_vec(),
                known: Vec::new(),
            }),
            other => {
                d.error(
                    node.span,
                    path,
                    format!("expected a table, found {}", other.type_name()),
                    None,
                );
                None
            }
        }
    }

    pub fn span(&self) -> Span {
        self.span
    }

    /// Declares `key` as known and returns its entry if present.
    pub fn entry(&mut self, key: &'static str) -> Option<&'a Entry> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        self.table.get(key)
    }

    /// The key path of `key` in this table.
    pub fn path_of(&self, key: &str) -> Vec<Segment> {
        child(&self.path, key)
    }

    /// A required key: reports it missing (at the table) if absent.
    pub fn required(&mut self, key: &'static str, d: &mut Diags, what: &str) -> Option<&'a Node> {
        match self.entry(key) {
            Some(e) => Some(&e.node),
            None => {
                let table = if self.path.is_empty() {
                    "the top level".to_string()
                } else {
                    format!("[{}]", path_string(&self.path))
                };
                d.error(
                    self.span,
                    &self.path_of(key),
                    format!("missing key `{key}` in {table}"),
                    Some(format!("add `{key} = {what}`")),
                );
                None
            }
        }
    }

    /// Reports every key that was never declared as known, with the closest known key.
    pub fn finish(self, d: &mut Diags) {
        for e in &self.table.entries {
            if self.known.contains(&e.key.as_str()) {
                continue;
            }
            let place = if self.path.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in [{}]", path_string(&self.path))
            };
            let help = match did_you_mean(&e.key, self.known.iter().copied()) {
                Some(s) => Some(format!("did you mean `{s}`?")),
                None => Some(format!("valid keys here: {}", self.known.join(", "))),
            };
            d.error(
                e.key_span,
                &self.path_of(&e.key),
                format!("unknown key `{}` {place}", e.key),
                help,
            );
        }
    }
}

pub fn type_error(at: At, expected: &str, d: &mut Diags) {
    let found = match &at.node.value {
        Value::Str(s) => format!("the string \"{}\"", super::diagnostic::clip(s, 60)),
        other => other.type_name().to_string(),
    };
    d.error(
        at.node.span,
        at.path,
        format!("expected {expected}, found {found}"),
        None,
    );
}

pub fn string(at: At, d: &mut Diags) -> Option<String> {
    match &at.node.value {
        Value::Str(s) => Some(s.clone()),
        _ => {
            type_error(at, "a string", d);
            None
        }
    }
}

pub fn boolean(at: At, d: &mut Diags) -> Option<bool> {
    match &at.node.value {
        Value::Bool(b) => Some(*b),
        _ => {
            type_error(at, "true or false", d);
            None
        }
    }
}

/// An integer in `min..=max`.
pub fn integer(at: At, min: i64, max: i64, d: &mut Diags) -> Option<i64> {
    match &at.node.value {
        Value::Int(i) if (min..=max).contains(i) => Some(*i),
        Value::Int(i) => {
            let range = if max == i64::MAX {
                format!("at least {min}")
            } else {
                format!("between {min} and {max}")
            };
            d.error(
                at.node.span,
                at.path,
                format!("{i} is out of range: must be {range}"),
                None,
            );
            None
        }
        _ => {
            type_error(at, "an integer", d);
            None
        }
    }
}

pub fn usize_at_least(at: At, min: usize, d: &mut Diags) -> Option<usize> {
    integer(at, min as i64, i64::MAX, d).map(|i| i as usize)
}

/// A number (integer or float) that `check` accepts; `rule` describes the allowed range.
pub fn number(at: At, rule: &str, check: impl Fn(f64) -> bool, d: &mut Diags) -> Option<f64> {
    let v = match &at.node.value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => {
            type_error(at, "a number", d);
            return None;
        }
    };
    if v.is_finite() && check(v) {
        Some(v)
    } else {
        d.error(
            at.node.span,
            at.path,
            format!("{v} is out of range: must be {rule}"),
            None,
        );
        None
    }
}

/// One of `allowed` strings, with a suggestion for near misses.
pub fn choice(at: At, allowed: &[&str], d: &mut Diags) -> Option<String> {
    let s = string(at, d)?;
    if allowed.contains(&s.as_str()) {
        return Some(s);
    }
    let list = allowed
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let help = match did_you_mean(&s, allowed.iter().copied()) {
        Some(m) => format!("did you mean \"{m}\"? allowed: {list}"),
        None => format!("allowed: {list}"),
    };
    d.error(
        at.node.span,
        at.path,
        format!("unknown value \"{}\"", super::diagnostic::clip(&s, 60)),
        Some(help),
    );
    None
}

pub fn array<'a>(at: At<'a>, d: &mut Diags) -> Option<&'a [Node]> {
    match &at.node.value {
        Value::Array(items) => Some(items),
        _ => {
            type_error(at, "an array", d);
            None
        }
    }
}

/// An array of numbers accepted by `check`.
pub fn numbers(
    at: At,
    rule: &str,
    check: impl Fn(f64) -> bool + Copy,
    d: &mut Diags,
) -> Option<Vec<f64>> {
    let items = array(at, d)?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = index(at.path, i);
        match number(
            At {
                node: item,
                path: &p,
            },
            rule,
            check,
            d,
        ) {
            Some(v) => out.push(v),
            None => ok = false,
        }
    }
    ok.then_some(out)
}
