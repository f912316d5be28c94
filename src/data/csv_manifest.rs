//! CSV manifests (`path,label` and optional `group` columns, RFC 4180 quoting) listing image files relative to the manifest's folder;
//! multilabel manifests hold `;`-separated label cells or one 0/1 column per label.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::image_folder::{decode_files, LabeledFiles};
use super::label_columns::LabelColumns;
use super::source::{LoadOptions, LoadReport};
use super::{DataError, ImageSet};

/// One CSV record and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRecord {
    pub line: usize,
    pub fields: Vec<String>,
}

/// Splits CSV text into records (RFC 4180: comma separator, `"` quoting with `""` as an escaped
/// quote, quoted fields may hold commas and newlines; LF or CRLF line ends). Blank lines are
/// dropped. Whitespace around a quoted field is tolerated. `path` is only used in errors.
pub fn parse_csv(text: &str, path: &Path) -> Result<Vec<CsvRecord>, DataError> {
    let err = |line: usize, message: String| DataError::CsvSyntax {
        path: path.to_path_buf(),
        line,
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut record_line = 1usize;
    let mut quote_line = 1usize;
    let mut in_quotes = false;
    let mut quoted = false; // the current field was quoted and its closing quote was seen
    let mut chars = text.chars().peekable();

    let mut finish_record = |fields: &mut Vec<String>, record_line: usize| {
        let blank = fields.len() == 1 && fields[0].trim().is_empty();
        if !blank {
            records.push(CsvRecord {
                line: record_line,
                fields: std::mem::take(fields),
            });
        }
        fields.clear();
    };

    while let Some(ch) = chars.next() {
        if in_quotes {
            match ch {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    in_quotes = false;
                    quoted = true;
                }
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(ch),
            }
            continue;
        }
        match ch {
            ',' => {
                fields.push(std::mem::take(&mut field));
                quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                quoted = false;
                finish_record(&mut fields, record_line);
                line += 1;
                record_line = line;
            }
            ' ' | '\t' if quoted => {}
            _ if quoted => {
                return Err(err(
                    line,
                    format!("unexpected character {ch:?} after a closing quote"),
                ));
            }
            '"' if field.trim().is_empty() => {
                field.clear();
                in_quotes = true;
                quote_line = line;
            }
            '"' => {
                return Err(err(
                    line,
                    "quote inside an unquoted field (quote the whole field and double inner quotes)".into(),
                ));
            }
            _ => field.push(ch),
        }
    }
    if in_quotes {
        return Err(err(quote_line, "quoted field is never closed".into()));
    }
    if !fields.is_empty() || !field.is_empty() || quoted {
        fields.push(field);
        finish_record(&mut fields, record_line);
    }
    Ok(records)
}

/// Reads a manifest: a header naming (in any order, case-insensitively) the columns `path` and
/// `label`, other columns ignored; then one row per image. Paths are relative to the manifest's
/// folder (absolute paths are kept); path and label values are trimmed of surrounding whitespace.
/// Classes are the sorted set of labels, or `classes` when given (then a label outside it is an
/// error naming file:line). Returns the classes and `(file, label)` pairs in manifest order.
/// A `group` column, if any, is checked but its values are dropped; see [`read_manifest_grouped`].
pub fn read_manifest(
    manifest: &Path,
    classes: Option<&[String]>,
) -> Result<(Vec<String>, LabeledFiles), DataError> {
    read_manifest_grouped(manifest, classes).map(|m| (m.classes, m.files))
}

/// A manifest read by [`read_manifest_grouped`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub classes: Vec<String>,
    /// `(file, label)` pairs in manifest order.
    pub files: LabeledFiles,
    /// One group per row of `files`, when the manifest has a `group` column.
    pub groups: Option<Vec<String>>,
}

/// Like [`read_manifest`], and also returns the per-row groups (manifest order, trimmed) when
/// the header has a `group` column (matched case-insensitively, like `path` and `label`);
/// `None` when it has none. With a `group` column, an empty group cell is an error naming
/// file:line.
pub fn read_manifest_grouped(
    manifest: &Path,
    classes: Option<&[String]>,
) -> Result<Manifest, DataError> {
    read_manifest_any(manifest, classes, None).map(|(m, _)| m)
}

/// The separator between the labels of one multilabel cell (`cat;dog`).
pub const LABEL_SEPARATOR: char = ';';

/// The labels of one multilabel cell: `;`-separated, each trimmed, empty pieces dropped (so an
/// empty cell is an image without labels).
pub fn split_labels(cell: &str) -> Vec<&str> {
    cell.split(LABEL_SEPARATOR)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Like [`read_manifest_grouped`], for multilabel manifests, in one of two layouts:
/// - with a `label` column, each cell holds a `;`-separated list of labels (an empty cell = no
///   label). Classes are the sorted union of the labels, or `classes` when given (a label outside
///   it is an error naming file:line). `labels` must be `None`.
/// - without one (the wide layout), every column but `path` and `group`, or the columns `labels`
///   names, is a label column holding 0 or 1 (see [`LabelColumns`]); the classes are those
///   columns in order, or `classes` when given (then they must be the same names).
///
/// The files' labels are each row's first label (0 without labels); the second value holds
/// every row's label indices.
pub fn read_manifest_multilabel(
    manifest: &Path,
    classes: Option<&[String]>,
    labels: Option<&[String]>,
) -> Result<(Manifest, Vec<Vec<u32>>), DataError> {
    read_manifest_any(manifest, classes, Some(labels))
        .map(|(m, sets)| (m, sets.unwrap_or_default()))
}

/// Each row's label indices (multilabel manifests).
type LabelSets = Vec<Vec<u32>>;

/// `multilabel`: `None` for single-label manifests, else `Some(data.labels)`.
fn read_manifest_any(
    manifest: &Path,
    classes: Option<&[String]>,
    multilabel: Option<Option<&[String]>>,
) -> Result<(Manifest, Option<LabelSets>), DataError> {
    let bytes = std::fs::read(manifest).map_err(|e| DataError::io(manifest, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let upto = e.utf8_error().valid_up_to();
        let line = 1 + e
            .as_bytes()
            .get(..upto)
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
        DataError::CsvSyntax {
            path: manifest.to_path_buf(),
            line,
            message: "not valid UTF-8".into(),
        }
    })?;
    let records = parse_csv(&text, manifest)?;
    let syntax = |line: usize, message: String| DataError::CsvSyntax {
        path: manifest.to_path_buf(),
        line,
        message,
    };
    let mut rows = records.into_iter();
    let header = rows
        .next()
        .ok_or_else(|| syntax(1, "empty manifest: no header line `path,label`".into()))?;
    let names: Vec<String> = header
        .fields
        .iter()
        .map(|f| f.trim().to_ascii_lowercase())
        .collect();
    let optional_column = |want: &str| -> Result<Option<usize>, DataError> {
        let mut hits = names
            .iter()
            .enumerate()
            .filter(|(_, n)| n.as_str() == want)
            .map(|(i, _)| i);
        match (hits.next(), hits.next()) {
            (Some(_), Some(_)) => Err(syntax(
                header.line,
                format!("the header has more than one {want:?} column"),
            )),
            (found, _) => Ok(found),
        }
    };
    let column = |want: &str| -> Result<usize, DataError> {
        match optional_column(want)? {
            Some(i) => Ok(i),
            None => Err(syntax(
                header.line,
                format!(
                    "the header must name the columns \"path\" and \"label\"; found [{}]",
                    header.fields.join(", ")
                ),
            )),
        }
    };
    let path_col = column("path")?;
    let group_col = optional_column("group")?;
    // Multilabel manifests without a `label` column have one 0/1 column per label.
    let (label_col, wide) = match (optional_column("label")?, multilabel) {
        (Some(_), Some(Some(_))) => {
            return Err(DataError::ManifestLabels {
                path: manifest.to_path_buf(),
                line: header.line,
                message: "the header has a \"label\" column (labels as `cat;dog` cells), but data.labels names label columns (one 0/1 column per label); remove one of them".into(),
            })
        }
        (Some(i), _) => (Some(i), None),
        (None, Some(labels)) => {
            let other: Vec<usize> = [Some(path_col), group_col].into_iter().flatten().collect();
            let wide = LabelColumns::new(manifest, &header, &other, labels, classes)?;
            (None, Some(wide))
        }
        (None, None) => (Some(column("label")?), None),
    };
    let multilabel = multilabel.is_some();
    let base = manifest_base(manifest);
    let mut wide_sets: LabelSets = Vec::new();

    let mut entries: Vec<(usize, PathBuf, String)> = Vec::new();
    let mut groups: Option<Vec<String>> = group_col.map(|_| Vec::new());
    for row in rows {
        if row.fields.len() != names.len() {
            return Err(syntax(
                row.line,
                format!(
                    "expected {} fields as in the header, found {}",
                    names.len(),
                    row.fields.len()
                ),
            ));
        }
        let rel = row.fields.get(path_col).map(|s| s.trim()).unwrap_or("");
        let label = label_col
            .and_then(|c| row.fields.get(c))
            .map_or("", |s| s.trim());
        if let Some(wide) = &wide {
            wide_sets.push(wide.row(&row)?);
        }
        if rel.is_empty() {
            return Err(syntax(row.line, "empty path".into()));
        }
        if label.is_empty() && !multilabel {
            return Err(syntax(row.line, "empty label".into()));
        }
        if let (Some(col), Some(groups)) = (group_col, groups.as_mut()) {
            let group = row.fields.get(col).map(|s| s.trim()).unwrap_or("");
            if group.is_empty() {
                return Err(syntax(row.line, "empty group".into()));
            }
            groups.push(group.to_string());
        }
        entries.push((row.line, base.join(rel), label.to_string()));
    }
    if entries.is_empty() {
        return Err(DataError::NoImages {
            path: manifest.to_path_buf(),
        });
    }
    refuse_duplicates(manifest, &entries)?;

    let class_names: Vec<String> = match (classes, &wide) {
        (_, Some(wide)) => wide.classes.clone(),
        (Some(list), None) => list.to_vec(),
        (None, None) if multilabel => entries
            .iter()
            .flat_map(|(_, _, l)| split_labels(l).into_iter().map(str::to_string))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        (None, None) => entries
            .iter()
            .map(|(_, _, l)| l.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let index: HashMap<&str, u32> = class_names
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let mut files = Vec::with_capacity(entries.len());
    let mut sets: Option<Vec<Vec<u32>>> = multilabel.then(Vec::new);
    for (row, (line, file, label)) in entries.iter().enumerate() {
        let lookup = |label: &str| {
            index
                .get(label)
                .copied()
                .ok_or_else(|| DataError::UnknownLabel {
                    path: manifest.to_path_buf(),
                    line: *line,
                    label: label.to_string(),
                    allowed: class_names.clone(),
                })
        };
        let l = match sets.as_mut() {
            Some(sets) if wide.is_some() => {
                let row = wide_sets.get(row).cloned().unwrap_or_default();
                let first = row.first().copied().unwrap_or(0);
                sets.push(row);
                first
            }
            Some(sets) => {
                let mut row = Vec::new();
                for piece in split_labels(label) {
                    let c = lookup(piece)?;
                    if !row.contains(&c) {
                        row.push(c);
                    }
                }
                let first = row.first().copied().unwrap_or(0);
                sets.push(row);
                first
            }
            None => lookup(label)?,
        };
        if !file.is_file() {
            return Err(DataError::CsvMissingImage {
                manifest: manifest.to_path_buf(),
                line: *line,
                image: file.clone(),
            });
        }
        files.push((file.clone(), l));
    }
    Ok((
        Manifest {
            classes: class_names,
            files,
            groups,
        },
        sets,
    ))
}

/// The folder a manifest's relative paths start from.
fn manifest_base(manifest: &Path) -> &Path {
    manifest.parent().unwrap_or_else(|| Path::new(""))
}

/// Loads the images a manifest lists as an [`ImageSet`] (manifest order), with per-image groups
/// when the manifest has a `group` column. Returns the set and a report: the kept images' names
/// (paths relative to the manifest's folder) and file sizes, and the corrupt files skipped (only
/// when `opts.skip_corrupt`; their groups are dropped with them). The report's `seconds` is 0.
pub fn load_csv(manifest: &Path, opts: &LoadOptions) -> Result<(ImageSet, LoadReport), DataError> {
    let m = read_manifest_grouped(manifest, opts.classes.as_deref())?;
    decode_files(
        &m.files,
        m.groups.as_deref(),
        m.classes,
        manifest_base(manifest),
        opts,
    )
}

/// Loads a multilabel manifest (see [`read_manifest_multilabel`]; `labels` is `data.labels`) as
/// an [`ImageSet`] with `label_sets`. Returns the set and a report as [`load_csv`] does.
pub fn load_csv_multilabel(
    manifest: &Path,
    opts: &LoadOptions,
    labels: Option<&[String]>,
) -> Result<(ImageSet, LoadReport), DataError> {
    let (m, sets) = read_manifest_multilabel(manifest, opts.classes.as_deref(), labels)?;
    // Decode with each row's index as its label, to know which rows survive skipping.
    let rows: LabeledFiles = m
        .files
        .iter()
        .enumerate()
        .map(|(i, (f, _))| (f.clone(), i as u32))
        .collect();
    let (mut set, report) = decode_files(
        &rows,
        m.groups.as_deref(),
        m.classes,
        manifest_base(manifest),
        opts,
    )?;
    let k = set.classes.len();
    let mut multi_hot = vec![0u8; set.labels.len() * k];
    for (r, row) in set.labels.iter_mut().enumerate() {
        let labels = &sets[*row as usize];
        for &c in labels {
            multi_hot[r * k + c as usize] = 1;
        }
        *row = labels.first().copied().unwrap_or(0);
    }
    set.label_sets = Some(multi_hot);
    Ok((set, report))
}

/// Refuses an image listed twice, naming both lines (and both labels when they differ). Paths
/// are compared as written, joined to the manifest's folder, with `.` components dropped.
fn refuse_duplicates(
    manifest: &Path,
    entries: &[(usize, PathBuf, String)],
) -> Result<(), DataError> {
    let mut seen: HashMap<PathBuf, (usize, &str)> = HashMap::with_capacity(entries.len());
    for (line, file, label) in entries {
        let key: PathBuf = file.components().collect();
        if let Some(&(first_line, first_label)) = seen.get(&key) {
            return Err(DataError::CsvDuplicate {
                manifest: manifest.to_path_buf(),
                line: *line,
                first_line,
                image: file.clone(),
                conflict: (first_label != label.as_str())
                    .then(|| (first_label.to_string(), label.clone())),
            });
        }
        seen.insert(key, (*line, label));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Vec<(usize, Vec<String>)> {
        parse_csv(s, Path::new("m.csv"))
            .unwrap()
            .into_iter()
            .map(|r| (r.line, r.fields))
            .collect()
    }

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn simple_and_blank_lines() {
        let got = parse("path,label\n\na.png,cat\r\n  \nb.png,dog");
        assert_eq!(
            got,
            vec![
                (1, v(&["path", "label"])),
                (3, v(&["a.png", "cat"])),
                (5, v(&["b.png", "dog"]))
            ]
        );
    }

    #[test]
    fn quoted_fields() {
        let got = parse(
            "label,path\n\"big, cat\",\"dir/a \"\"x\"\".png\"\n\"multi\nline\",b.png\nc,\"\"\n",
        );
        assert_eq!(
            got,
            vec![
                (1, v(&["label", "path"])),
                (2, v(&["big, cat", "dir/a \"x\".png"])),
                (3, v(&["multi\nline", "b.png"])),
                (5, v(&["c", ""])),
            ]
        );
    }

    #[test]
    fn empty_fields_and_trailing_comma() {
        assert_eq!(parse("a,,b,\n"), vec![(1, v(&["a", "", "b", ""]))]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = parse_csv("path,label\na.png,\"cat\nb.png,dog\n", Path::new("m.csv")).unwrap_err();
        assert!(matches!(e, DataError::CsvSyntax { line: 2, .. }), "{e}");
        assert!(e.to_string().starts_with("m.csv:2:"), "{e}");
        let e = parse_csv("path,label\n\na\"b.png,cat\n", Path::new("m.csv")).unwrap_err();
        assert!(matches!(e, DataError::CsvSyntax { line: 3, .. }), "{e}");
        let e = parse_csv("path,label\n\"a.png\"x,cat\n", Path::new("m.csv")).unwrap_err();
        assert!(matches!(e, DataError::CsvSyntax { line: 2, .. }), "{e}");
    }

    #[test]
    fn multilabel_cells_and_unknown_labels() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.png", "b.png", "c.png"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let m = dir.path().join("m.csv");
        std::fs::write(&m, "path,label\na.png,3;7\nb.png,\nc.png, 7 ;1;7\n").unwrap();
        let (man, sets) = read_manifest_multilabel(&m, None, None).unwrap();
        assert_eq!(man.classes, v(&["1", "3", "7"]));
        assert_eq!(sets, vec![vec![1, 2], vec![], vec![2, 0]]);
        let labels: Vec<u32> = man.files.iter().map(|(_, l)| *l).collect();
        assert_eq!(labels, vec![1, 0, 2]);
        // a label outside data.classes names file:line and the label
        let e = read_manifest_multilabel(&m, Some(&v(&["1", "3"])), None).unwrap_err();
        assert!(
            matches!(e, DataError::UnknownLabel { line: 2, ref label, .. } if label == "7"),
            "{e}"
        );
        assert!(e.to_string().contains("m.csv:2"), "{e}");
        // single-label manifests still reject an empty label
        assert!(read_manifest_grouped(&m, None).is_err());
    }

    #[test]
    fn wide_multilabel_manifests_read_like_label_cells() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.png", "b.png", "c.png"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let cells = dir.path().join("cells.csv");
        std::fs::write(
            &cells,
            "path,label,group\na.png,7;3,g1\nb.png,,g1\nc.png,1;7,g2\n",
        )
        .unwrap();
        let wide = dir.path().join("wide.csv");
        std::fs::write(
            &wide,
            "group,path,1,3,7\ng1,a.png,0,1,1\ng1,b.png,0,0,0\ng2,c.png,true,0,TRUE\n",
        )
        .unwrap();
        let (a, a_sets) = read_manifest_multilabel(&cells, None, None).unwrap();
        let (b, b_sets) = read_manifest_multilabel(&wide, None, None).unwrap();
        assert_eq!(a.classes, b.classes);
        assert_eq!(a.groups, b.groups);
        let sorted = |sets: Vec<Vec<u32>>| -> Vec<Vec<u32>> {
            sets.into_iter()
                .map(|mut s| {
                    s.sort();
                    s
                })
                .collect()
        };
        assert_eq!(sorted(a_sets), b_sets);
        assert_eq!(b_sets, vec![vec![1, 2], vec![], vec![0, 2]]);
        // a single-label manifest still needs its `label` column
        assert!(read_manifest_grouped(&wide, None).is_err());
    }

    #[test]
    fn multilabel_load_names_the_kept_rows() {
        let dir = tempfile::tempdir().unwrap();
        for (f, v) in [("a.png", 10u8), ("c.png", 30)] {
            image::GrayImage::from_pixel(2, 2, image::Luma([v]))
                .save(dir.path().join(f))
                .unwrap();
        }
        std::fs::write(dir.path().join("b.png"), b"broken").unwrap();
        let m = dir.path().join("m.csv");
        std::fs::write(
            &m,
            "path,label
a.png,3;7
b.png,3
c.png,
",
        )
        .unwrap();
        let opts = LoadOptions {
            channels: 1,
            height: 2,
            width: 2,
            resize: crate::data::ResizeMethod::Bilinear,
            skip_corrupt: true,
            classes: None,
        };
        let (set, report) = load_csv_multilabel(&m, &opts, None).unwrap();
        assert_eq!(report.names, v(&["a.png", "c.png"]));
        assert_eq!(report.sizes.len(), 2);
        assert_eq!(
            report.sizes[1],
            std::fs::metadata(dir.path().join("c.png")).unwrap().len()
        );
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(set.label_sets, Some(vec![1, 1, 0, 0]));
    }
}
