//! A spanned TOML value tree: the parsed spec file with `--set` overrides applied, every
//! value remembering where it was written.

use super::diagnostic::Diagnostic;
use super::source::Span;

#[derive(Clone, Debug)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime,
    Array(Vec<Node>),
    Table(Table),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub node: Node,
}

#[derive(Clone, Debug, Default)]
pub struct Table {
    pub entries: Vec<Entry>,
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
    fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.key == key)
    }
}

impl Value {
    /// The TOML type name used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Datetime => "a date-time",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// Parses TOML text from source `source` into a spanned tree.
pub fn parse(text: &str, source: usize) -> Result<Node, Diagnostic> {
    let doc = toml_edit::Document::parse(text).map_err(|e| {
        let message = e.message().trim_end();
        let help = match e.span() {
            Some(r) if message.starts_with("duplicate key") => first_definition(text, r),
            _ => None,
        };
        Diagnostic {
            span: e.span().map(|r| Span {
                source,
                start: r.start,
                end: r.end,
            }),
            path: String::new(),
            message: format!("invalid TOML: {message}"),
            help,
        }
    })?;
    let root = doc
        .as_item()
        .as_table()
        .map(|t| convert_table(t, source))
        .unwrap_or_default();
    Ok(Node {
        value: Value::Table(root),
        span: Span {
            source,
            start: 0,
            end: 0,
        },
    })
}

/// Where the key that `dup` (a byte range of `text`) defines a second time was first defined,
/// as a help line: the same table header earlier, the same key earlier in its inline table,
/// or the same key earlier in its `[table]` section.
fn first_definition(text: &str, dup: std::ops::Range<usize>) -> Option<String> {
    let unquote = |k: &str| k.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
    let key = unquote(text.get(dup.clone())?);
    let line_start = text[..dup.start].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..];
    let line = &line[..line.find('\n').unwrap_or(line.len())];
    let before_on_line = &text[line_start..dup.start];
    let header = |l: &str| {
        let l = l.trim();
        (l.starts_with('[') && !l.starts_with("[["))
            .then(|| unquote(l.trim_start_matches('[').split(']').next().unwrap_or("")))
    };
    let key_of = |l: &str| l.split('=').next().map(unquote);
    let found = if header(line).is_some() && before_on_line.trim() == "[" {
        // A table header defined twice: the earlier identical header.
        let mut at = 0;
        text[..line_start].split_inclusive('\n').find_map(|l| {
            let here = at;
            at += l.len();
            (header(l).as_deref() == Some(key.as_str()))
                .then_some(here + l.len() - l.trim_start().len() + 1)
        })
    } else if let Some(open) = before_on_line.rfind('{') {
        // A key twice in one inline table: an earlier `key =` after the brace.
        let inner = &before_on_line[open + 1..];
        let mut at = line_start + open + 1;
        inner.split(',').find_map(|part| {
            let here = at;
            at += part.len() + 1;
            (key_of(part).as_deref() == Some(key.as_str()))
                .then_some(here + part.len() - part.trim_start().len())
        })
    } else {
        // A key twice in one [table] section: scan back to the section's header.
        let mut found = None;
        let mut end = line_start;
        for l in text[..line_start]
            .split_inclusive('\n')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let start = end - l.len();
            end = start;
            if header(l).is_some() || l.trim_start().starts_with("[[") {
                break;
            }
            if l.contains('=') && key_of(l).as_deref() == Some(key.as_str()) {
                found = Some(start + l.len() - l.trim_start().len());
            }
        }
        found
    }?;
    let line_no = text[..found].matches('\n').count() + 1;
    let col = text[text[..found].rfind('\n').map_or(0, |i| i + 1)..found]
        .chars()
        .count()
        + 1;
    Some(format!(
        "`{key}` is first defined at line {line_no}, column {col}; keep one of the two"
    ))
}

fn span_of(range: Option<std::ops::Range<usize>>, source: usize, fallback: Span) -> Span {
    range.map_or(fallback, |r| Span {
        source,
        start: r.start,
        end: r.end,
    })
}

fn convert_table(t: &toml_edit::Table, source: usize) -> Table {
    let table_span = span_of(
        t.span(),
        source,
        Span {
            source,
            start: 0,
            end: 0,
        },
    );
    let entries = t
        .iter()
        .map(|(k, item)| {
            let key_span = span_of(t.key(k).and_then(|k| k.span()), source, table_span);
            let node = convert_item(item, source, key_span);
            Entry {
                key: k.to_string(),
                key_span,
                node,
            }
        })
        .collect();
    Table { entries }
}

fn convert_item(item: &toml_edit::Item, source: usize, key_span: Span) -> Node {
    let span = span_of(item.span(), source, key_span);
    let value = match item {
        toml_edit::Item::None => Value::Table(Table::default()),
        toml_edit::Item::Value(v) => return convert_value(v, source, key_span),
        toml_edit::Item::Table(t) => Value::Table(convert_table(t, source)),
        toml_edit::Item::ArrayOfTables(a) => Value::Array(
            a.iter()
                .map(|t| {
                    let s = span_of(t.span(), source, key_span);
                    Node {
                        value: Value::Table(convert_table(t, source)),
                        span: s,
                    }
                })
                .collect(),
        ),
    };
    Node { value, span }
}

fn convert_value(v: &toml_edit::Value, source: usize, fallback: Span) -> Node {
    let span = span_of(v.span(), source, fallback);
    let value = match v {
        toml_edit::Value::String(s) => Value::Str(s.value().clone()),
        toml_edit::Value::Integer(i) => Value::Int(*i.value()),
        toml_edit::Value::Float(f) => Value::Float(*f.value()),
        toml_edit::Value::Boolean(b) => Value::Bool(*b.value()),
        toml_edit::Value::Datetime(_) => Value::Datetime,
        toml_edit::Value::Array(a) => {
            Value::Array(a.iter().map(|v| convert_value(v, source, span)).collect())
        }
        toml_edit::Value::InlineTable(t) => {
            let entries = t
                .iter()
                .map(|(k, v)| {
                    let key_span = span_of(t.key(k).and_then(|k| k.span()), source, span);
                    Entry {
                        key: k.to_string(),
                        key_span,
                        node: convert_value(v, source, key_span),
                    }
                })
                .collect();
            Value::Table(Table { entries })
        }
    };
    Node { value, span }
}

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Renders a key path as `model.layers[2].kernel`.
pub fn path_string(path: &[Segment]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Segment::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Parses `model.layers[2].kernel` into segments.
pub fn parse_path(text: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    for part in text.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return None;
        }
        out.push(Segment::Key(key.to_string()));
        while !rest.is_empty() {
            let close = rest.find(']')?;
            let index = rest.get(1..close)?.parse().ok()?;
            out.push(Segment::Index(index));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return None;
            }
        }
    }
    Some(out)
}

/// Sets the value at `path` in `root`, creating missing tables on the way. `key_span` marks
/// where the path itself was written (for errors about the path).
pub fn set_path(
    root: &mut Node,
    path: &[Segment],
    value: Node,
    key_span: Span,
) -> Result<(), Diagnostic> {
    let mut node = root;
    for (depth, seg) in path.iter().enumerate() {
        let last = depth + 1 == path.len();
        let here = path_string(&path[..depth]);
        match seg {
            Segment::Key(key) => {
                let found = node.value.type_name();
                let Value::Table(table) = &mut node.value else {
                    return Err(Diagnostic {
                        span: Some(key_span),
                        path: path_string(path),
                        message: format!(
                            "`{here}` is {}, not a table, so it has no key `{key}`",
                            found
                        ),
                        help: None,
                    });
                };
                if table.get(key).is_none() {
                    let empty = Node {
                        value: Value::Table(Table::default()),
                        span: key_span,
                    };
                    table.entries.push(Entry {
                        key: key.clone(),
                        key_span,
                        node: empty,
                    });
                }
                let Some(entry) = table.get_mut(key) else {
                    unreachable!("entry inserted above")
                };
                if last {
                    entry.node = value;
                    entry.key_span = key_span;
                    return Ok(());
                }
                node = &mut entry.node;
            }
            Segment::Index(i) => {
                let found = node.value.type_name();
                let Value::Array(items) = &mut node.value else {
                    return Err(Diagnostic {
                        span: Some(key_span),
                        path: path_string(path),
                        message: format!(
                            "`{here}` is {}, not an array, so it has no index [{i}]",
                            found
                        ),
                        help: None,
                    });
                };
                let len = items.len();
                let Some(item) = items.get_mut(*i) else {
                    return Err(Diagnostic {
                        span: Some(key_span),
                        path: path_string(path),
                        message: format!(
                            "`{here}` has {len} entries, so index [{i}] does not exist"
                        ),
                        help: (len > 0)
                            .then(|| format!("indices start at 0; the last one is [{}]", len - 1)),
                    });
                };
                if last {
                    *item = value;
                    return Ok(());
                }
                node = item;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_key_names_its_first_definition() {
        let help = |text: &str| parse(text, 0).unwrap_err().help.unwrap_or_default();
        assert_eq!(
            help("name = \"x\"\n[train]\nepochs = 1\nbatch_size = 3\nepochs = 2\n"),
            "`epochs` is first defined at line 3, column 1; keep one of the two"
        );
        assert_eq!(
            help("name = \"x\"\n[train]\nepochs = 1\n[model]\na = 1\n[train]\nb = 2\n"),
            "`train` is first defined at line 2, column 2; keep one of the two"
        );
        assert_eq!(
            help("train = { epochs = 1, epochs = 2 }\n"),
            "`epochs` is first defined at line 1, column 11; keep one of the two"
        );
        assert_eq!(
            help("[a]\nx = 1\n[b]\n  \"x\" = 1\n  x = 2\n"),
            "`x` is first defined at line 4, column 3; keep one of the two"
        );
    }

    #[test]
    fn paths_round_trip() {
        let p = parse_path("model.layers[2].kernel").unwrap();
        assert_eq!(
            p,
            vec![
                Segment::Key("model".into()),
                Segment::Key("layers".into()),
                Segment::Index(2),
                Segment::Key("kernel".into())
            ]
        );
        assert_eq!(path_string(&p), "model.layers[2].kernel");
        assert!(parse_path("a..b").is_none());
        assert!(parse_path("a[x]").is_none());
        assert!(parse_path("a[1]b").is_none());
    }

    #[test]
    fn spans_point_at_values() {
        let text = "[optimizer]\nlr = 0.1\n";
        let root = parse(text, 0).unwrap();
        let Value::Table(t) = &root.value else {
            panic!()
        };
        let Value::Table(opt) = &t.get("optimizer").unwrap().node.value else {
            panic!()
        };
        let lr = opt.get("lr").unwrap();
        assert_eq!(&text[lr.node.span.start..lr.node.span.end], "0.1");
        assert_eq!(&text[lr.key_span.start..lr.key_span.end], "lr");
    }
}
