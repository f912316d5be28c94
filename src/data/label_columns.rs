//! The wide multilabel manifest layout: one column per label holding 0 or 1 (`path,cat,dog`),
//! as many public multilabel data sets ship; which columns are labels, and each row's label set.

use std::path::{Path, PathBuf};

use super::csv_manifest::CsvRecord;
use super::DataError;

/// A wide manifest's label columns and the classes they stand for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelColumns {
    manifest: PathBuf,
    /// (header position, class index) per label column, in the order they are read.
    columns: Vec<(usize, u32)>,
    /// The header's names, trimmed (for errors).
    names: Vec<String>,
    /// The class list: `classes` when given, else the label columns' names in order.
    pub classes: Vec<String>,
}

impl LabelColumns {
    /// The label columns of `header`: those `labels` names (in that order), or every column not
    /// at a position in `other` (the `path` and `group` columns), in header order. With `classes`
    /// (`data.classes`, or the training set's classes for a test manifest) the label columns must
    /// be exactly the classes, in any order, and the class order is theirs.
    pub fn new(
        manifest: &Path,
        header: &CsvRecord,
        other: &[usize],
        labels: Option<&[String]>,
        classes: Option<&[String]>,
    ) -> Result<LabelColumns, DataError> {
        let err = |message: String| DataError::ManifestLabels {
            path: manifest.to_path_buf(),
            line: header.line,
            message,
        };
        let names: Vec<String> = header.fields.iter().map(|f| f.trim().to_string()).collect();
        let listed = || format!("[{}]", names.join(", "));
        let picked: Vec<(usize, String)> = match labels {
            Some(labels) => labels
                .iter()
                .map(|l| match names.iter().position(|n| n == l) {
                    Some(i) if !other.contains(&i) => Ok((i, l.clone())),
                    _ => Err(err(format!(
                        "data.labels names the column {l:?}, but the header has no such label column: {}",
                        listed()
                    ))),
                })
                .collect::<Result<_, _>>()?,
            None => names
                .iter()
                .enumerate()
                .filter(|(i, _)| !other.contains(i))
                .map(|(i, n)| (i, n.clone()))
                .collect(),
        };
        if picked.is_empty() {
            return Err(err(format!(
                "the header has neither a \"label\" column nor label columns (one 0/1 column per label): {}",
                listed()
            )));
        }
        for (k, (i, name)) in picked.iter().enumerate() {
            if name.is_empty() {
                return Err(err(format!("column {} of the header has no name", i + 1)));
            }
            if picked[..k].iter().any(|(_, n)| n == name) {
                return Err(err(format!("the header has more than one {name:?} column")));
            }
        }
        let classes: Vec<String> = match classes {
            None => picked.iter().map(|(_, n)| n.clone()).collect(),
            Some(list) => {
                let columns: Vec<&str> = picked.iter().map(|(_, n)| n.as_str()).collect();
                let same = list.len() == columns.len()
                    && list.iter().all(|c| columns.contains(&c.as_str()));
                if !same {
                    return Err(err(format!(
                        "the label columns [{}] are not the classes [{}]",
                        columns.join(", "),
                        list.join(", ")
                    )));
                }
                list.to_vec()
            }
        };
        let columns = picked
            .iter()
            .map(|(i, n)| {
                let class = classes.iter().position(|c| c == n).unwrap_or(0);
                (*i, class as u32)
            })
            .collect();
        Ok(LabelColumns {
            manifest: manifest.to_path_buf(),
            columns,
            names,
            classes,
        })
    }

    /// The label set of one row: the class indices whose column holds `1` (or `true`), in class
    /// order. Any cell other than `0`, `1`, `true`, `false` (trimmed, any case) is an error
    /// naming file:line and the column.
    pub fn row(&self, record: &CsvRecord) -> Result<Vec<u32>, DataError> {
        let mut set = Vec::new();
        for &(i, class) in &self.columns {
            let cell = record.fields.get(i).map_or("", |s| s.trim());
            let on = if cell == "1" || cell.eq_ignore_ascii_case("true") {
                true
            } else if cell == "0" || cell.eq_ignore_ascii_case("false") {
                false
            } else {
                return Err(DataError::ManifestLabels {
                    path: self.manifest.clone(),
                    line: record.line,
                    message: format!(
                        "column {:?} holds {cell:?}; a label column holds 0 or 1 (or false/true)",
                        self.names[i]
                    ),
                });
            };
            if on {
                set.push(class);
            }
        }
        set.sort_unstable();
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(line: usize, fields: &[&str]) -> CsvRecord {
        CsvRecord {
            line,
            fields: fields.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    const M: &str = "m.csv";

    #[test]
    fn every_other_column_is_a_label_in_header_order() {
        let h = rec(1, &["path", "dog", "group", " cat "]);
        let c = LabelColumns::new(Path::new(M), &h, &[0, 2], None, None).unwrap();
        assert_eq!(c.classes, v(&["dog", "cat"]));
        assert_eq!(
            c.row(&rec(2, &["a.png", "1", "g", "1"])).unwrap(),
            vec![0, 1]
        );
        assert_eq!(
            c.row(&rec(3, &["a.png", "0", "g", " TRUE"])).unwrap(),
            vec![1]
        );
        assert!(c
            .row(&rec(4, &["a.png", "false", "g", "0"]))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn labels_pick_the_columns_and_classes_fix_the_order() {
        let h = rec(1, &["path", "cat", "dog", "car", "notes"]);
        let c = LabelColumns::new(Path::new(M), &h, &[0], Some(&v(&["dog", "cat"])), None).unwrap();
        assert_eq!(c.classes, v(&["dog", "cat"]));
        assert_eq!(c.row(&rec(2, &["a", "1", "0", "x", "y"])).unwrap(), vec![1]);
        let h = rec(1, &["path", "cat", "dog"]);
        let c = LabelColumns::new(Path::new(M), &h, &[0], None, Some(&v(&["dog", "cat"]))).unwrap();
        assert_eq!(c.classes, v(&["dog", "cat"]));
        assert_eq!(c.row(&rec(2, &["a", "1", "0"])).unwrap(), vec![1]);
    }

    #[test]
    fn errors_name_the_file_line_and_column() {
        let h = rec(1, &["path", "cat", "dog"]);
        let e = LabelColumns::new(Path::new(M), &h, &[0], Some(&v(&["car"])), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.csv:1: data.labels names the column \"car\", but the header has no such label column: [path, cat, dog]"
        );
        let e = LabelColumns::new(Path::new(M), &h, &[0], Some(&v(&["path"])), None).unwrap_err();
        assert!(e.to_string().contains("\"path\""), "{e}");
        let e =
            LabelColumns::new(Path::new(M), &h, &[0], None, Some(&v(&["cat", "car"]))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.csv:1: the label columns [cat, dog] are not the classes [cat, car]"
        );
        let e = LabelColumns::new(Path::new(M), &rec(1, &["path"]), &[0], None, None).unwrap_err();
        assert!(e.to_string().contains("neither a \"label\" column"), "{e}");
        let e = LabelColumns::new(Path::new(M), &rec(1, &["path", "a", "a"]), &[0], None, None)
            .unwrap_err();
        assert!(e.to_string().contains("more than one \"a\" column"), "{e}");
        let c = LabelColumns::new(Path::new(M), &h, &[0], None, None).unwrap();
        for bad in ["2", "", "yes", "0.5"] {
            let e = c.row(&rec(7, &["a.png", "1", bad])).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("m.csv:7: column \"dog\" holds {bad:?}; a label column holds 0 or 1 (or false/true)")
            );
        }
    }
}
