//! Reads a job's predictions.csv and recomputes metrics from it, to compare with metrics.json.

use std::collections::BTreeMap;
use std::path::Path;

/// One row of predictions.csv, by column name.
pub type Row = BTreeMap<String, String>;

/// The rows of `<job>/predictions.csv` of `split` (`val` or `test`), and the header.
pub fn read(job_dir: &Path, split: &str) -> (Vec<String>, Vec<Row>) {
    let mut r = csv::Reader::from_path(job_dir.join("predictions.csv")).expect("predictions.csv");
    let head: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            head.iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect::<Row>()
        })
        .filter(|row: &Row| row["split"] == split)
        .collect();
    (head, rows)
}

pub fn f(row: &Row, col: &str) -> f64 {
    row[col]
        .parse()
        .unwrap_or_else(|e| panic!("{col} = {:?}: {e}", row[col]))
}

/// The share of rows whose `true` equals `predicted`: accuracy (single-label) or subset accuracy.
pub fn exact_share(rows: &[Row]) -> f64 {
    let hits = rows.iter().filter(|r| r["true"] == r["predicted"]).count();
    hits as f64 / rows.len() as f64
}

fn set(cell: &str) -> Vec<&str> {
    cell.split(';').filter(|s| !s.is_empty()).collect()
}

/// Multilabel: the share of wrong (image, label) decisions over `labels`.
pub fn hamming_loss(rows: &[Row], labels: &[String]) -> f64 {
    let mut wrong = 0u64;
    for r in rows {
        let (t, p) = (set(&r["true"]), set(&r["predicted"]));
        for l in labels {
            if t.contains(&l.as_str()) != p.contains(&l.as_str()) {
                wrong += 1;
            }
        }
    }
    wrong as f64 / (rows.len() * labels.len()) as f64
}

/// F1 of `positive` from the column `col` of predicted classes.
pub fn f1(rows: &[Row], col: &str, positive: &str) -> f64 {
    let (mut tp, mut predicted, mut support) = (0u64, 0u64, 0u64);
    for r in rows {
        let (t, p) = (r["true"] == positive, r[col] == positive);
        tp += (t && p) as u64;
        predicted += p as u64;
        support += t as u64;
    }
    (2 * tp) as f64 / (predicted + support) as f64
}
