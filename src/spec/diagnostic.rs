//! Spec errors: each names the source position, the key path and, where it can, a suggestion.

use std::fmt;

use super::source::{Origin, Sources, Span};

/// One problem found in a spec.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub span: Option<Span>,
    /// Full key path, e.g. `model.layers[2].kernel`; empty for syntax errors.
    pub path: String,
    pub message: String,
    pub help: Option<String>,
}

/// Every problem found in a spec, rendered against its sources.
#[derive(Debug, thiserror::Error)]
pub struct SpecError {
    pub diagnostics: Vec<Diagnostic>,
    rendered: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rendered)
    }
}

impl SpecError {
    pub fn new(diagnostics: Vec<Diagnostic>, sources: &Sources) -> Self {
        let mut rendered = String::new();
        for (i, d) in diagnostics.iter().enumerate() {
            if i > 0 {
                rendered.push('\n');
            }
            rendered.push_str(&render(d, sources));
        }
        let n = diagnostics.len();
        if n > 1 {
            rendered.push_str(&format!("\n{n} errors in the spec\n"));
        }
        SpecError {
            diagnostics,
            rendered,
        }
    }

    /// An error that has no position in any source (e.g. the file cannot be read).
    pub fn plain(message: impl Into<String>) -> Self {
        let d = Diagnostic {
            span: None,
            path: String::new(),
            message: message.into(),
            help: None,
        };
        SpecError::new(vec![d], &Sources::default())
    }
}

fn render(d: &Diagnostic, sources: &Sources) -> String {
    let mut out = format!("error: {}\n", d.message);
    let located = d
        .span
        .and_then(|s| Some((sources.texts.get(s.source)?, sources.position(s)?)));
    if let Some((src, pos)) = located {
        let (where_, line_label) = match &src.origin {
            Origin::File(path) => (
                format!("{}:{}:{}", path.display(), pos.line, pos.column),
                pos.line.to_string(),
            ),
            Origin::Override => (
                format!("--set {} (column {})", src.text, pos.column),
                "--set".to_string(),
            ),
        };
        let pad = " ".repeat(line_label.len());
        out.push_str(&format!("{pad}--> {where_}\n"));
        out.push_str(&format!("{pad} |\n"));
        out.push_str(&format!("{line_label} | {}\n", pos.line_text));
        let lead: String = pos
            .line_text
            .chars()
            .take(pos.column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        out.push_str(&format!("{pad} | {lead}{}\n", "^".repeat(pos.width)));
        if !d.path.is_empty() {
            out.push_str(&format!("{pad} = key: {}\n", d.path));
        }
        if let Some(help) = &d.help {
            out.push_str(&format!("{pad} = help: {help}\n"));
        }
    } else {
        if !d.path.is_empty() {
            out.push_str(&format!("  = key: {}\n", d.path));
        }
        if let Some(help) = &d.help {
            out.push_str(&format!("  = help: {help}\n"));
        }
    }
    out
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("lrr", ["lr", "momentum"]), Some("lr"));
        assert_eq!(
            did_you_mean("epohcs", ["epochs", "batch_size"]),
            Some("epochs")
        );
        assert_eq!(did_you_mean("zzz", ["epochs", "batch_size"]), None);
    }
}
