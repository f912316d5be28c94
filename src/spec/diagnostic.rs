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

/// The most characters of a message or help that an error shows.
const MAX_TEXT: usize = 300;
/// The most characters of a spec line shown around the caret.
const MAX_LINE: usize = 160;

/// `s`, cut to `max` characters with `…` when longer (a 100 kB value is not echoed whole).
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

/// The part of `line` around the columns `column..column + width` (1-based, characters) and the
/// caret's column within it: all of it when short, else a window with `…` at the cut ends.
fn window(line: &str, column: usize, width: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= MAX_LINE {
        return (line.to_string(), column);
    }
    let margin = (MAX_LINE.saturating_sub(width.min(MAX_LINE / 2))) / 2;
    let start = column.saturating_sub(1).saturating_sub(margin);
    let end = (column - 1 + width.min(MAX_LINE / 2) + margin).min(chars.len());
    let mut shown: String = chars[start..end].iter().collect();
    let mut caret = column - start;
    if start > 0 {
        shown.insert(0, '…');
        caret += 1;
    }
    if end < chars.len() {
        shown.push('…');
    }
    (shown, caret)
}

fn render(d: &Diagnostic, sources: &Sources) -> String {
    let mut out = format!("error: {}\n", clip(&d.message, MAX_TEXT));
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
                format!("--set {} (column {})", clip(&src.text, 80), pos.column),
                "--set".to_string(),
            ),
        };
        let pad = " ".repeat(line_label.len());
        out.push_str(&format!("{pad}--> {where_}\n"));
        out.push_str(&format!("{pad} |\n"));
        let (line, column) = window(&pos.line_text, pos.column, pos.width);
        out.push_str(&format!("{line_label} | {line}\n"));
        let lead: String = line
            .chars()
            .take(column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let caret = pos.width.clamp(1, MAX_LINE / 2);
        out.push_str(&format!("{pad} | {lead}{}\n", "^".repeat(caret)));
        if !d.path.is_empty() {
            out.push_str(&format!("{pad} = key: {}\n", d.path));
        }
        if let Some(help) = &d.help {
            out.push_str(&format!("{pad} = help: {}\n", clip(help, MAX_TEXT)));
        }
    } else {
        if !d.path.is_empty() {
            out.push_str(&format!("  = key: {}\n", d.path));
        }
        if let Some(help) = &d.help {
            out.push_str(&format!("  = help: {}\n", clip(help, MAX_TEXT)));
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

    #[test]
    fn long_values_and_lines_are_cut_around_the_caret() {
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("abc", 3), "abc");
        let line = format!("name = \"{}\"", "x".repeat(100_000));
        let (shown, caret) = window(&line, 8, 100_002);
        assert!(shown.chars().count() <= MAX_LINE + 2, "{}", shown.len());
        assert_eq!(&shown[..8], "name = \"");
        assert_eq!(caret, 8);
        let (shown, caret) = window(&line, 50_000, 3);
        assert!(shown.starts_with('…') && shown.ends_with('…'));
        assert_eq!(shown.chars().nth(caret - 1), Some('x'));
    }
}
