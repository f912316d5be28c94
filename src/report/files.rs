//! Writes a report (report.{json,md,csv,html} in the experiment folder) or a comparison
//! (compare.{json,md,csv,html} in a chosen folder), crash-safely.

use std::path::{Path, PathBuf};

use super::report_json::{build, Report};
use super::summary::{load, ReportError};
use super::{csv, html, markdown};
use crate::store::write_atomic;

fn write_all(dir: &Path, stem: &str, r: &Report) -> Result<Vec<PathBuf>, ReportError> {
    let json = serde_json::to_string_pretty(r).map_err(|e| ReportError::Write {
        path: dir.join(format!("{stem}.json")),
        source: std::io::Error::other(e),
    })?;
    let outputs = [
        ("json", json),
        ("md", markdown::render(r)),
        ("csv", csv::render(r)),
        ("html", html::render(r)),
    ];
    let mut paths = Vec::new();
    for (ext, text) in outputs {
        let path = dir.join(format!("{stem}.{ext}"));
        write_atomic(&path, text.as_bytes()).map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        })?;
        paths.push(path);
    }
    Ok(paths)
}

/// Reads the experiment in `dir` and writes its report files there; returns the report.
pub fn write_report(dir: &Path) -> Result<Report, ReportError> {
    let results = load(dir)?;
    let report = build(std::slice::from_ref(&results), false)?;
    write_all(dir, "report", &report)?;
    Ok(report)
}

/// Reads the experiments in `dirs` and compares them; writes compare.* into `out` if given.
pub fn compare(dirs: &[PathBuf], out: Option<&Path>) -> Result<Report, ReportError> {
    let results = dirs
        .iter()
        .map(|d| load(d))
        .collect::<Result<Vec<_>, _>>()?;
    let report = build(&results, true)?;
    if let Some(out) = out {
        std::fs::create_dir_all(out).map_err(|source| ReportError::Write {
            path: out.to_path_buf(),
            source,
        })?;
        write_all(out, "compare", &report)?;
    }
    Ok(report)
}
