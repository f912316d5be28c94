//! The experiment spec: TOML text (plus `--set` overrides) → validated [`Spec`], with errors
//! that name file:line:col and the key path.

mod architectures;
mod augment;
mod diagnostic;
pub mod launch;
mod model_section;
pub mod positive;
mod reader;
mod resolved;
mod source;
mod sweep;
mod training;
mod transfer;
mod tree;
mod types;
mod validate;

use std::path::Path;

pub use diagnostic::{Diagnostic, SpecError};
pub use resolved::{experiment_text, to_text};
pub use source::{Origin, Sources, Span};
pub use sweep::{Domain, ParamValue, Pruning, SweepMethod, SweepParam, SweepSpec};
pub use types::*;

use std::collections::BTreeMap;

/// A validated spec with its sweep expanded: one resolved [`Spec`] per trial.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// The spec as written (with overrides), without the sweep applied.
    pub base: Spec,
    /// The folder relative data paths start from (`data.root`, else the spec file's folder):
    /// data paths are recorded relative to it in job ids.
    pub spec_dir: std::path::PathBuf,
    pub sweep: Option<SweepSpec>,
    pub trials: Vec<Trial>,
}

/// One point of the sweep (the only one when there is no sweep).
#[derive(Clone, Debug)]
pub struct Trial {
    pub params: BTreeMap<String, ParamValue>,
    pub spec: Spec,
}

/// The most jobs one experiment may plan.
pub const MAX_JOBS: u64 = 50_000;

/// At most this many distinct errors are reported from a sweep's points.
const MAX_SWEEP_ERRORS: usize = 20;

/// The largest spec file read (a spec is a few kB; this is not a data file).
pub const MAX_SPEC_BYTES: u64 = 1 << 20;

/// Reads, overrides and validates the spec at `path`, and expands its sweep.
pub fn load(path: &Path, overrides: &[String]) -> Result<Experiment, SpecError> {
    let text = read_spec_file(path)?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parse(&text, Origin::File(path.to_path_buf()), base, overrides)
}

/// The spec a job folder keeps (`spec.toml`), read to use the job's model: as [`load`], except
/// that its data paths need not exist, since a model is often used where its training data is
/// not. The job's spec is its trial's, so the one trial is returned.
pub fn load_job_spec(path: &Path) -> Result<Spec, SpecError> {
    let text = read_spec_file(path)?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let e = parse_with(&text, Origin::File(path.to_path_buf()), base, &[], true)?;
    Ok(e.trials.into_iter().next().map_or(e.base, |t| t.spec))
}

/// The text of the spec file at `path`: a regular file of at most [`MAX_SPEC_BYTES`], in UTF-8
/// (an invalid byte is named by line and column).
fn read_spec_file(path: &Path) -> Result<String, SpecError> {
    use std::io::Read;
    let cannot = |e: &dyn std::fmt::Display| {
        SpecError::plain(format!("cannot read spec file {}: {e}", path.display()))
    };
    let meta = std::fs::metadata(path).map_err(|e| cannot(&e))?;
    if !meta.is_file() {
        return Err(SpecError::plain(format!(
            "spec file {} is not a regular file",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SPEC_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| cannot(&e))?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(SpecError::plain(format!(
            "spec file {} is larger than {} KiB: is it a spec?",
            path.display(),
            MAX_SPEC_BYTES / 1024
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
        SpecError::plain(format!(
            "{}:{line}:{column}: the spec is not valid UTF-8 (byte 0x{:02x})",
            path.display(),
            e.as_bytes()[good.len()]
        ))
    })
}

/// Validates spec text; relative data paths start from `base`.
pub fn parse(
    text: &str,
    origin: Origin,
    base: &Path,
    overrides: &[String],
) -> Result<Experiment, SpecError> {
    parse_with(text, origin, base, overrides, false)
}

/// [`parse`]; `paths_may_be_missing`: data paths need not exist.
fn parse_with(
    text: &str,
    origin: Origin,
    base: &Path,
    overrides: &[String],
    paths_may_be_missing: bool,
) -> Result<Experiment, SpecError> {
    let mut sources = Sources::default();
    let file = sources.add(origin, text.to_string());
    let mut root = tree::parse(text, file).map_err(|d| SpecError::new(vec![d], &sources))?;
    let mut diags = reader::Diags {
        paths_may_be_missing,
        ..Default::default()
    };
    for o in overrides {
        if let Err(d) = apply_override(&mut root, &mut sources, o) {
            diags.list.push(d);
        }
    }
    if !diags.list.is_empty() {
        return Err(SpecError::new(diags.list, &sources));
    }
    let sweep_node = take_sweep(&mut root);
    let data_root = validate::data_root(&root, base);
    let spec_dir = base.to_path_buf();
    let base = data_root.as_path();
    let spec = validate::spec(&root, base, &spec_dir, &mut diags);
    let spec = match spec {
        Some(spec) if diags.list.is_empty() => spec,
        _ => {
            let list = validate::with_setup_hints(diags.list, text);
            return Err(SpecError::new(list, &sources));
        }
    };
    let Some(sweep_node) = sweep_node else {
        let trial = Trial {
            params: BTreeMap::new(),
            spec: spec.clone(),
        };
        return Ok(Experiment {
            base: spec,
            spec_dir: base.to_path_buf(),
            sweep: None,
            trials: vec![trial],
        });
    };
    let Some((sweep, points)) = sweep::parse(&sweep_node, spec.seed, &mut diags) else {
        return Err(SpecError::new(diags.list, &sources));
    };
    let jobs = (points.len() as u64)
        .saturating_mul(sweep.repeats as u64)
        .saturating_mul(spec.split.folds.max(1) as u64);
    if jobs > MAX_JOBS {
        diags.list.push(Diagnostic {
            span: Some(sweep_node.span),
            path: "sweep".into(),
            message: format!(
                "the sweep plans {jobs} jobs ({} point(s) × {} repeat(s) × {} fold(s)); at most {MAX_JOBS} are allowed",
                points.len(),
                sweep.repeats,
                spec.split.folds.max(1)
            ),
            help: Some("use fewer trials, values, repeats or folds".into()),
        });
        return Err(SpecError::new(diags.list, &sources));
    }
    let mut trials = Vec::with_capacity(points.len());
    for point in &points {
        let mut point_diags = reader::Diags {
            paths_may_be_missing,
            ..Default::default()
        };
        let resolved = match point.apply(&root) {
            Ok(tree) => validate::spec(&tree, base, &spec_dir, &mut point_diags),
            Err(d) => {
                point_diags.list.push(d);
                None
            }
        };
        match resolved {
            Some(s) if point_diags.list.is_empty() => trials.push(Trial {
                params: point.params(),
                spec: s,
            }),
            _ => {
                for d in point_diags.list {
                    let seen = diags
                        .list
                        .iter()
                        .any(|e| e.span == d.span && e.message == d.message);
                    if !seen && diags.list.len() < MAX_SWEEP_ERRORS {
                        diags.list.push(d);
                    }
                }
            }
        }
    }
    if !diags.list.is_empty() {
        return Err(SpecError::new(diags.list, &sources));
    }
    Ok(Experiment {
        base: spec,
        spec_dir: base.to_path_buf(),
        sweep: Some(sweep),
        trials,
    })
}

/// Removes `[sweep]` from the tree (it is not part of any one trial's spec).
fn take_sweep(root: &mut tree::Node) -> Option<tree::Node> {
    let tree::Value::Table(t) = &mut root.value else {
        return None;
    };
    let i = t.entries.iter().position(|e| e.key == "sweep")?;
    Some(t.entries.remove(i).node)
}

/// Applies one `key.path=value` override; the value is read as TOML, or as a plain string
/// when it is not valid TOML (so `--set optimizer.kind=sgd` works unquoted).
fn apply_override(
    root: &mut tree::Node,
    sources: &mut Sources,
    text: &str,
) -> Result<(), Diagnostic> {
    let id = sources.add(Origin::Override, text.to_string());
    let whole = Span {
        source: id,
        start: 0,
        end: text.len(),
    };
    let Some(eq) = text.find('=') else {
        return Err(Diagnostic {
            span: Some(whole),
            path: String::new(),
            message: "an override must look like key.path=value".into(),
            help: Some("for example --set optimizer.lr=0.01".into()),
        });
    };
    let key_span = Span {
        source: id,
        start: 0,
        end: eq,
    };
    let value_span = Span {
        source: id,
        start: eq + 1,
        end: text.len().max(eq + 1),
    };
    let path_text = text[..eq].trim();
    let Some(path) = tree::parse_path(path_text) else {
        return Err(Diagnostic {
            span: Some(key_span),
            path: path_text.to_string(),
            message: format!("`{path_text}` is not a key path"),
            help: Some("write keys separated by dots and array indices in brackets, e.g. model.layers[2].filters".into()),
        });
    };
    let raw = text[eq + 1..].trim();
    let value = match tree::parse(&format!("v = {raw}"), id) {
        Ok(tree::Node {
            value: tree::Value::Table(mut t),
            ..
        }) if t.entries.len() == 1 => t.entries.remove(0).node.value,
        _ if looks_like_an_integer(raw) => {
            return Err(Diagnostic {
                span: Some(value_span),
                path: path_text.to_string(),
                message: format!(
                    "integer {} is out of range: at most {}",
                    diagnostic::clip(raw, 40),
                    i64::MAX
                ),
                help: None,
            })
        }
        _ => tree::Value::Str(raw.to_string()),
    };
    let node = respan(value, value_span);
    tree::set_path(root, &path, node, key_span)
}

/// Digits with an optional sign and `_` separators: meant as an integer, not a word.
fn looks_like_an_integer(raw: &str) -> bool {
    let digits = raw.strip_prefix(['-', '+']).unwrap_or(raw);
    !digits.is_empty()
        && digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_')
}

/// Gives every node of an override's value the span of the whole value text.
fn respan(value: tree::Value, span: Span) -> tree::Node {
    let value = match value {
        tree::Value::Array(items) => {
            tree::Value::Array(items.into_iter().map(|n| respan(n.value, span)).collect())
        }
        tree::Value::Table(t) => tree::Value::Table(tree::Table {
            entries: t
                .entries
                .into_iter()
                .map(|e| tree::Entry {
                    key: e.key,
                    key_span: span,
                    node: respan(e.node.value, span),
                })
                .collect(),
        }),
        other => other,
    };
    tree::Node { value, span }
}
