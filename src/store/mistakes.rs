//! `mistakes.json`: a job's most confident mistakes per split and class, as the worker writes it
//! and the report reads it.

use serde::{Deserialize, Serialize};

pub use crate::train::predictions::MistakeKind;

/// Version of `mistakes.json`.
pub const MISTAKES_VERSION: u32 = 1;

/// Mistakes kept per (split, class, kind).
pub const MISTAKES_PER_CLASS: usize = 5;

/// The file: every kept mistake, by split, then class, then confidence (highest first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MistakesFile {
    pub version: u32,
    /// Mistakes kept per split, class and kind.
    pub per_class: usize,
    pub mistakes: Vec<MistakeRecord>,
}

/// One wrong prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MistakeRecord {
    /// `val` or `test`.
    pub split: String,
    /// The image's name as in `predictions.csv` and `data-inventory.json` (`train/cat/a.png`).
    pub path: String,
    /// The class the mistake is filed under: the true class (single-label) or the label that was
    /// got wrong (multilabel).
    pub class: String,
    pub kind: MistakeKind,
    #[serde(rename = "true")]
    pub truth: Vec<String>,
    pub predicted: Vec<String>,
    /// The probability of the wrong decision.
    pub confidence: f64,
    /// The thumbnail's path relative to the job folder (`mistakes/val-12.png`).
    pub thumbnail: Option<String>,
}
