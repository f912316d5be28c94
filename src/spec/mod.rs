//! The experiment spec: TOML text (plus `--set` overrides) → validated [`Spec`], with errors
//! that name file:line:col and the key path.

mod diagnostic;
mod reader;
mod source;
mod tree;
mod types;
mod validate;

use std::path::Path;

pub use diagnostic::{Diagnostic, SpecError};
pub use source::{Origin, Sources, Span};
pub use types::*;

/// Reads, overrides and validates the spec at `path`.
pub fn load(path: &Path, overrides: &[String]) -> Result<Spec, SpecError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SpecError::plain(format!("cannot read spec file {}: {e}", path.display())))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parse(&text, Origin::File(path.to_path_buf()), base, overrides)
}

/// Validates spec text; relative data paths start from `base`.
pub fn parse(
    text: &str,
    origin: Origin,
    base: &Path,
    overrides: &[String],
) -> Result<Spec, SpecError> {
    let mut sources = Sources::default();
    let file = sources.add(origin, text.to_string());
    let mut root = tree::parse(text, file).map_err(|d| SpecError::new(vec![d], &sources))?;
    let mut diags = reader::Diags::default();
    for o in overrides {
        if let Err(d) = apply_override(&mut root, &mut sources, o) {
            diags.list.push(d);
        }
    }
    if !diags.list.is_empty() {
        return Err(SpecError::new(diags.list, &sources));
    }
    let spec = validate::spec(&root, base, &mut diags);
    match spec {
        Some(spec) if diags.list.is_empty() => Ok(spec),
        _ => Err(SpecError::new(diags.list, &sources)),
    }
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
        _ => tree::Value::Str(raw.to_string()),
    };
    let node = respan(value, value_span);
    tree::set_path(root, &path, node, key_span)
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
