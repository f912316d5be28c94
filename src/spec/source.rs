//! The texts a spec is read from (the TOML file and each `--set` override) and byte spans into them.

use std::path::PathBuf;

/// Where a piece of the spec came from: the spec file or one `--set` override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Override,
}

/// One text the spec was assembled from.
#[derive(Clone, Debug)]
pub struct SourceText {
    pub origin: Origin,
    pub text: String,
}

/// A byte range in one of the [`Sources`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub source: usize,
    pub start: usize,
    pub end: usize,
}

/// All texts of one spec; index 0 is the spec file.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub texts: Vec<SourceText>,
}

/// A resolved position: 1-based line and column plus the text of that line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
    pub line_text: String,
    /// Width of the marked range on that line, in characters (at least 1).
    pub width: usize,
}

impl Sources {
    pub fn add(&mut self, origin: Origin, text: String) -> usize {
        self.texts.push(SourceText { origin, text });
        self.texts.len() - 1
    }

    /// Line, column and line text of a span's start.
    pub fn position(&self, span: Span) -> Option<Position> {
        let text = &self.texts.get(span.source)?.text;
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let end = floor_char_boundary(text, span.end.clamp(start, line_end));
        let width = text[start..end].chars().count().max(1);
        Some(Position {
            line,
            column,
            line_text: text[line_start..line_end]
                .trim_end_matches('\r')
                .to_string(),
            width,
        })
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let mut s = Sources::default();
        let id = s.add(Origin::Override, "a = 1\nbb = \"x\"\n".into());
        let p = s
            .position(Span {
                source: id,
                start: 11,
                end: 14,
            })
            .unwrap();
        assert_eq!((p.line, p.column, p.width), (2, 6, 3));
        assert_eq!(p.line_text, "bb = \"x\"");
    }
}
