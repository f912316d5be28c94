//! `metrics.json`: a job's per-epoch history and its final metrics per split, as the job runner
//! writes it and reports, status, health checks and the orchestrator read it.
//!
//! Other programs read this file too (DESIGN.md, "Contracts"), so its bytes are fixed: the keys
//! in the order of [`MetricsFile`]'s fields, splits and history scalars sorted by name, a split's
//! final scalars in the task's order followed by `per_class` and `confusion_matrix`, pretty
//! printed. Reading is forgiving where the file may come from another version: unknown keys and
//! unknown metric names are ignored or kept, missing keys take their defaults, and numbers JSON
//! cannot hold (NaN and infinities, written as `null`) read as absent. A value of the wrong type
//! makes the file damaged.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::atomic::write_atomic;
use super::ledger::JobState;
use crate::report::events::EpochRecord;
use crate::train::metrics::{ClassMetrics, Metrics};
use crate::train::trainer::Ending;

/// Version of `metrics.json`.
pub const METRICS_VERSION: u32 = 1;

/// The whole file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsFile {
    #[serde(default)]
    pub version: u32,
    /// Always written; `None` only in a file that is not a job's (health checks say so).
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(default)]
    pub trial_id: String,
    #[serde(default)]
    pub fold: Option<usize>,
    #[serde(default)]
    pub repeat: usize,
    /// `done`, `pruned` or `failed`; `None` in a file without one.
    #[serde(default)]
    pub status: Option<JobState>,
    /// Why the job failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The epoch whose weights were kept; `null` for a failed job.
    #[serde(default)]
    pub best_epoch: Option<usize>,
    /// The metric the best epoch was chosen by, with its split (`val.accuracy`).
    #[serde(default)]
    pub best_metric: String,
    /// How training ended (absent for a failed job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending: Option<Ending>,
    /// The best epoch's metrics per split (`train`, `val`, `test`); empty for a failed job.
    /// Always written; `None` only in a file that has no final metrics at all.
    #[serde(rename = "final", default)]
    pub finals: Option<BTreeMap<String, SplitMetrics>>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

impl MetricsFile {
    /// The final metrics of `split` (`train`, `val`, `test`), if the file has them.
    pub fn split(&self, split: &str) -> Option<&SplitMetrics> {
        self.finals.as_ref()?.get(split)
    }

    /// The epochs' history entries as written from the trainer's records.
    pub fn history_from(records: &[EpochRecord]) -> Vec<HistoryEntry> {
        records.iter().map(HistoryEntry::from).collect()
    }
}

/// One epoch of the history: its scalars only, sorted by name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub epoch: usize,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub lr: f64,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub seconds: f64,
    #[serde(default, deserialize_with = "lenient_scalars")]
    pub train: BTreeMap<String, f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_optional_scalars"
    )]
    pub val: Option<BTreeMap<String, f64>>,
}

impl From<&EpochRecord> for HistoryEntry {
    fn from(r: &EpochRecord) -> Self {
        HistoryEntry {
            epoch: r.epoch,
            lr: r.lr,
            seconds: r.seconds,
            train: sorted_scalars(&r.train),
            val: r.val.as_ref().map(sorted_scalars),
        }
    }
}

fn sorted_scalars(m: &Metrics) -> BTreeMap<String, f64> {
    m.scalars()
        .into_iter()
        .map(|(name, v)| (name.to_string(), v))
        .collect()
}

/// One split's final metrics: one flat JSON object, the scalars by name (in the order written:
/// the task's, `loss` first), then `per_class` and `confusion_matrix` — as [`Metrics`] writes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SplitMetrics {
    pub scalars: Vec<(String, f64)>,
    /// Per class (multiclass, binary) or per label (multilabel).
    pub per_class: Vec<ClassMetrics>,
    /// Row = true class, column = predicted class; empty for multilabel.
    pub confusion_matrix: Vec<Vec<u64>>,
}

impl SplitMetrics {
    /// A scalar metric by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.scalars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

impl From<&Metrics> for SplitMetrics {
    fn from(m: &Metrics) -> Self {
        SplitMetrics {
            scalars: m
                .scalars()
                .into_iter()
                .map(|(name, v)| (name.to_string(), v))
                .collect(),
            per_class: m.per_class.clone(),
            confusion_matrix: m.confusion_matrix.clone(),
        }
    }
}

impl Serialize for SplitMetrics {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.scalars.len() + 2))?;
        for (name, v) in &self.scalars {
            m.serialize_entry(name, v)?;
        }
        m.serialize_entry("per_class", &self.per_class)?;
        m.serialize_entry("confusion_matrix", &self.confusion_matrix)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for SplitMetrics {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SplitVisitor;
        impl<'de> Visitor<'de> for SplitVisitor {
            type Value = SplitMetrics;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a split's metrics (an object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SplitMetrics, A::Error> {
                let mut split = SplitMetrics::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "per_class" => split.per_class = map.next_value()?,
                        "confusion_matrix" => split.confusion_matrix = map.next_value()?,
                        _ => {
                            if let Some(v) = map.next_value::<Option<f64>>()? {
                                split.scalars.push((key, v));
                            }
                        }
                    }
                }
                Ok(split)
            }
        }
        d.deserialize_map(SplitVisitor)
    }
}

fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn lenient_scalars<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let raw = BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(raw.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
}

fn lenient_optional_scalars<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, f64>>, D::Error> {
    let raw = Option::<BTreeMap<String, Option<f64>>>::deserialize(d)?;
    Ok(raw.map(|m| m.into_iter().filter_map(|(k, v)| Some((k, v?))).collect()))
}

/// Why `metrics.json` could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetricsFileError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is damaged", path.display())]
    Damaged {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads `path`; `Ok(None)` when there is no such file (the job has no metrics yet).
pub fn read(path: &Path) -> Result<Option<MetricsFile>, MetricsFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(MetricsFileError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| MetricsFileError::Damaged {
            path: path.to_path_buf(),
            source,
        })
}

/// The file's bytes: pretty-printed JSON.
pub fn to_bytes(file: &MetricsFile) -> Vec<u8> {
    // Serialising plain structs, maps of strings and numbers into memory cannot fail.
    serde_json::to_vec_pretty(file).unwrap_or_default()
}

/// Replaces `path` with `file`, crash-safely.
pub fn write(path: &Path, file: &MetricsFile) -> Result<(), MetricsFileError> {
    write_atomic(path, &to_bytes(file)).map_err(|source| MetricsFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::metrics::Metrics;

    fn sample_metrics() -> Metrics {
        Metrics {
            values: vec![("loss", 0.25), ("accuracy", 0.75), ("f1_macro", 1.0 / 3.0)],
            per_class: vec![ClassMetrics {
                class: "cat".into(),
                precision: 0.5,
                recall: 1.0,
                f1: 2.0 / 3.0,
                support: 3,
            }],
            confusion_matrix: vec![vec![3, 0], vec![1, 0]],
        }
    }

    fn sample_file() -> MetricsFile {
        let record = EpochRecord {
            epoch: 1,
            lr: 0.01,
            seconds: 1.5,
            train: sample_metrics(),
            val: Some(sample_metrics()),
        };
        let mut finals = BTreeMap::new();
        finals.insert("val".to_string(), SplitMetrics::from(&sample_metrics()));
        finals.insert("train".to_string(), SplitMetrics::from(&sample_metrics()));
        MetricsFile {
            version: METRICS_VERSION,
            job_id: Some("abc".into()),
            trial_id: "t1".into(),
            fold: Some(0),
            repeat: 0,
            status: Some(JobState::Done),
            reason: None,
            best_epoch: Some(1),
            best_metric: "val.accuracy".into(),
            ending: Some(Ending::StoppedEarly { epoch: 1 }),
            finals: Some(finals),
            history: MetricsFile::history_from(&[record]),
        }
    }

    #[test]
    fn a_split_is_written_as_metrics_writes_it() {
        let m = sample_metrics();
        assert_eq!(
            serde_json::to_string(&SplitMetrics::from(&m)).unwrap(),
            serde_json::to_string(&m).unwrap()
        );
    }

    #[test]
    fn the_key_order_is_the_contract() {
        let text = String::from_utf8(to_bytes(&sample_file())).unwrap();
        let keys: Vec<usize> = [
            "\"version\"",
            "\"job_id\"",
            "\"trial_id\"",
            "\"fold\"",
            "\"repeat\"",
            "\"status\": \"done\"",
            "\"best_epoch\"",
            "\"best_metric\"",
            "\"ending\": {\n    \"kind\": \"stopped_early\"",
            "\"final\"",
            "\"history\"",
        ]
        .iter()
        .map(|k| text.find(k).unwrap_or_else(|| panic!("{k} in {text}")))
        .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(!text.contains("\"reason\""));
        // Splits sorted; a split's scalars in the task's order; history scalars sorted.
        assert!(
            text.find("\"train\": {\n      \"loss\"").unwrap() < text.find("\"val\": {").unwrap()
        );
        assert!(text.contains("\"train\": {\n        \"accuracy\": 0.75,\n        \"f1_macro\""));
    }

    #[test]
    fn reads_back_what_it_writes_byte_for_byte() {
        let bytes = to_bytes(&sample_file());
        let back: MetricsFile = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, sample_file());
        assert_eq!(to_bytes(&back), bytes);
    }

    #[test]
    fn reading_forgives_other_versions() {
        let m: MetricsFile = serde_json::from_str(
            r#"{"job_id": "x", "new_key": [1], "final": {"val": {"loss": null, "brand_new": 2,
                "per_class": []}}, "history": [{"epoch": 1, "train": {"loss": null, "accuracy": 1},
                "val": null}]}"#,
        )
        .unwrap();
        assert_eq!(
            m.split("val").unwrap().scalars,
            vec![("brand_new".into(), 2.0)]
        );
        assert!(!m.history[0].train.contains_key("loss"));
        assert_eq!(m.history[0].train.get("accuracy"), Some(&1.0));
        assert_eq!(m.status, None);
        let bare: MetricsFile = serde_json::from_str("{}").unwrap();
        assert_eq!((bare.job_id, bare.finals), (None, None));
        assert!(serde_json::from_str::<MetricsFile>(r#"{"job_id": 3}"#).is_err());
    }
}
