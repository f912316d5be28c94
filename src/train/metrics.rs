//! Classification metrics per task: multiclass (accuracy, per-class/macro/micro precision,
//! recall, F1 from a confusion matrix), binary (positive-class P/R/F1, ROC AUC, average precision,
//! the F1-maximising threshold) and multilabel (Hamming loss, subset accuracy, micro/macro P/R/F1,
//! ROC AUC).
//!
//! Conventions follow scikit-learn with `zero_division=0`: a class that is never predicted has
//! precision 0, a class with no support has recall 0, F1 is 0 when precision + recall is 0,
//! macro averages are unweighted means over *all* classes, and an empty matrix gives zeros
//! (never NaN).

use serde::{Deserialize, Serialize};

pub use crate::spec::Task;

/// Counts of (true class, predicted class) pairs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub num_classes: usize,
    /// Row = true class, column = predicted class, row-major (`num_classes²` entries).
    pub counts: Vec<u64>,
}

impl ConfusionMatrix {
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            counts: vec![0; num_classes * num_classes],
        }
    }

    /// Records one sample.
    ///
    /// # Panics
    /// If `target` or `predicted` is not below `num_classes`.
    pub fn add(&mut self, target: usize, predicted: usize) {
        let n = self.num_classes;
        assert!(
            target < n && predicted < n,
            "confusion matrix with {n} classes got target {target}, prediction {predicted}"
        );
        self.counts[target * n + predicted] += 1;
    }

    /// Adds the counts of `other` (e.g. from another worker or batch).
    ///
    /// # Panics
    /// If the two matrices have different numbers of classes.
    pub fn merge(&mut self, other: &ConfusionMatrix) {
        assert_eq!(
            self.num_classes, other.num_classes,
            "cannot merge confusion matrices with different numbers of classes"
        );
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// Number of samples recorded.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The count for (true class, predicted class).
    pub fn get(&self, target: usize, predicted: usize) -> u64 {
        self.counts[target * self.num_classes + predicted]
    }

    /// The matrix as rows (row = true class).
    pub fn rows(&self) -> Vec<Vec<u64>> {
        if self.num_classes == 0 {
            return Vec::new();
        }
        self.counts
            .chunks(self.num_classes)
            .map(<[u64]>::to_vec)
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Number of samples whose true class is this one.
    pub support: u64,
}

/// The scalar metrics of one split, in the task's order (`loss` first), with the per-class
/// scores and (single-label tasks) the confusion matrix. Serialised as one flat JSON object:
/// the scalars by name, then `per_class` and `confusion_matrix`.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// `(name, value)` in the order of [`scalar_metrics`] for the task.
    pub values: Vec<(&'static str, f64)>,
    /// Per class (multiclass, binary) or per label (multilabel).
    pub per_class: Vec<ClassMetrics>,
    /// Row = true class, column = predicted class; empty for multilabel.
    pub confusion_matrix: Vec<Vec<u64>>,
}

/// Multiclass scalar metric names, and whether larger is better for each.
pub const MULTICLASS_METRICS: &[(&str, bool)] = &[
    ("loss", false),
    ("accuracy", true),
    ("precision_macro", true),
    ("recall_macro", true),
    ("f1_macro", true),
    ("precision_micro", true),
    ("recall_micro", true),
    ("f1_micro", true),
];

/// Binary scalar metrics: `precision`, `recall`, `f1` are the positive class's at threshold 0.5;
/// `threshold` is the F1-maximising threshold (chosen on validation) and `f1_at_threshold` the F1
/// there.
pub const BINARY_METRICS: &[(&str, bool)] = &[
    ("loss", false),
    ("accuracy", true),
    ("precision", true),
    ("recall", true),
    ("f1", true),
    ("roc_auc", true),
    ("pr_auc", true),
    ("f1_at_threshold", true),
    ("threshold", true),
];

/// Multilabel scalar metrics (threshold 0.5 per label).
pub const MULTILABEL_METRICS: &[(&str, bool)] = &[
    ("loss", false),
    ("hamming_loss", false),
    ("subset_accuracy", true),
    ("precision_micro", true),
    ("recall_micro", true),
    ("f1_micro", true),
    ("precision_macro", true),
    ("recall_macro", true),
    ("f1_macro", true),
    ("roc_auc_macro", true),
    ("roc_auc_micro", true),
];

/// The multiclass list, kept for code that predates the other tasks.
pub const SCALAR_METRICS: &[(&str, bool)] = MULTICLASS_METRICS;

/// The scalar metric names of `task`, and whether larger is better for each.
pub fn scalar_metrics(task: Task) -> &'static [(&'static str, bool)] {
    match task {
        Task::Multiclass => MULTICLASS_METRICS,
        Task::Binary => BINARY_METRICS,
        Task::Multilabel => MULTILABEL_METRICS,
    }
}

/// The metrics `train.best_metric` may name for `task` (every scalar but `threshold`).
pub fn selectable_metrics(task: Task) -> Vec<&'static str> {
    scalar_metrics(task)
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| *n != "threshold")
        .collect()
}

/// The default `train.best_metric` of `task`.
pub fn default_best_metric(task: Task) -> &'static str {
    match task {
        Task::Multiclass => "accuracy",
        Task::Binary => "roc_auc",
        Task::Multilabel => "f1_macro",
    }
}

/// Whether larger is better for metric `name` (any task); unknown names count as higher-is-better.
pub fn higher_is_better(name: &str) -> bool {
    ALL_TASKS
        .iter()
        .flat_map(|t| scalar_metrics(*t).iter())
        .find(|(n, _)| *n == name)
        .is_none_or(|(_, h)| *h)
}

const ALL_TASKS: [Task; 3] = [Task::Multiclass, Task::Binary, Task::Multilabel];

/// The static name of a known metric, if `name` is one.
fn known(name: &str) -> Option<&'static str> {
    ALL_TASKS
        .iter()
        .flat_map(|t| scalar_metrics(*t).iter())
        .map(|(n, _)| *n)
        .find(|n| *n == name)
}

/// The tasks' metric names in one order (each once): the order of scalars read back from JSON.
fn all_names() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for t in ALL_TASKS {
        for (n, _) in scalar_metrics(t) {
            if !out.contains(n) {
                out.push(n);
            }
        }
    }
    out
}

/// `num / den`, or 0 when `den` is 0 (scikit-learn's `zero_division=0`).
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

fn mean(xs: impl ExactSizeIterator<Item = f64>) -> f64 {
    let n = xs.len();
    if n == 0 {
        0.0
    } else {
        xs.sum::<f64>() / n as f64
    }
}

fn class_name(classes: &[String], c: usize) -> String {
    classes.get(c).cloned().unwrap_or_else(|| c.to_string())
}

/// Precision, recall and F1 from counts (`zero_division=0`).
fn prf(tp: u64, predicted: u64, support: u64) -> (f64, f64, f64) {
    (
        ratio(tp, predicted),
        ratio(tp, support),
        // 2·tp / (2·tp + fp + fn) = 2·P·R / (P + R), and 0 when both are 0.
        ratio(2 * tp, predicted + support),
    )
}

impl Metrics {
    /// `loss` is the mean loss over the samples (computed by the caller); `classes` names the rows.
    /// Classes beyond the end of `classes` are named by their index.
    pub fn from_confusion(cm: &ConfusionMatrix, loss: f64, classes: &[String]) -> Self {
        let n = cm.num_classes;
        let mut per_class = Vec::with_capacity(n);
        let (mut tp_sum, mut pred_sum, mut support_sum) = (0u64, 0u64, 0u64);
        for c in 0..n {
            let tp = cm.get(c, c);
            let support: u64 = (0..n).map(|p| cm.get(c, p)).sum();
            let predicted: u64 = (0..n).map(|t| cm.get(t, c)).sum();
            tp_sum += tp;
            pred_sum += predicted;
            support_sum += support;
            let (precision, recall, f1) = prf(tp, predicted, support);
            per_class.push(ClassMetrics {
                class: class_name(classes, c),
                precision,
                recall,
                f1,
                support,
            });
        }
        // Micro averages pool tp, fp and fn over the classes; for single-label data every
        // sample is one prediction and one true label, so all three equal the accuracy.
        let values = vec![
            ("loss", loss),
            ("accuracy", ratio(tp_sum, cm.total())),
            (
                "precision_macro",
                mean(per_class.iter().map(|m| m.precision)),
            ),
            ("recall_macro", mean(per_class.iter().map(|m| m.recall))),
            ("f1_macro", mean(per_class.iter().map(|m| m.f1))),
            ("precision_micro", ratio(tp_sum, pred_sum)),
            ("recall_micro", ratio(tp_sum, support_sum)),
            ("f1_micro", ratio(2 * tp_sum, pred_sum + support_sum)),
        ];
        Self {
            values,
            per_class,
            confusion_matrix: cm.rows(),
        }
    }

    /// Binary metrics from the positive-class probabilities `scores` and the truths `targets`
    /// (true = positive). `positive` is the positive class's index in `classes` (the other one is
    /// the negative class). `threshold`: the F1 threshold to apply (chosen on validation); `None`
    /// chooses the F1-maximising one on these scores.
    pub fn binary(
        scores: &[f32],
        targets: &[bool],
        loss: f64,
        classes: &[String],
        positive: usize,
        threshold: Option<f64>,
    ) -> Self {
        let negative = 1 - positive.min(1);
        let mut cm = ConfusionMatrix::new(2);
        for (&s, &t) in scores.iter().zip(targets) {
            let pred = if s as f64 >= 0.5 { positive } else { negative };
            let truth = if t { positive } else { negative };
            cm.add(truth, pred);
        }
        let base = Self::from_confusion(&cm, loss, classes);
        let pos = &base.per_class[positive];
        let (threshold, f1_at) = match threshold {
            Some(t) => (t, f1_at_threshold(scores, targets, t)),
            None => best_f1_threshold(scores, targets),
        };
        let values = vec![
            ("loss", loss),
            ("accuracy", base.get("accuracy").unwrap_or(0.0)),
            ("precision", pos.precision),
            ("recall", pos.recall),
            ("f1", pos.f1),
            ("roc_auc", roc_auc(scores, targets)),
            ("pr_auc", average_precision(scores, targets)),
            ("f1_at_threshold", f1_at),
            ("threshold", threshold),
        ];
        Self { values, ..base }
    }

    /// Multilabel metrics at threshold 0.5 from row-major N×K `probs` and multi-hot `targets`.
    pub fn multilabel(probs: &[f32], targets: &[u8], loss: f64, classes: &[String]) -> Self {
        let k = classes.len();
        let n = targets.len().checked_div(k).unwrap_or(0);
        let mut tp = vec![0u64; k];
        let mut predicted = vec![0u64; k];
        let mut support = vec![0u64; k];
        let mut wrong = 0u64;
        let mut exact = 0u64;
        for i in 0..n {
            let mut all = true;
            for c in 0..k {
                let p = probs[i * k + c] >= 0.5;
                let t = targets[i * k + c] != 0;
                predicted[c] += p as u64;
                support[c] += t as u64;
                tp[c] += (p && t) as u64;
                if p != t {
                    wrong += 1;
                    all = false;
                }
            }
            exact += all as u64;
        }
        let per_class: Vec<ClassMetrics> = (0..k)
            .map(|c| {
                let (precision, recall, f1) = prf(tp[c], predicted[c], support[c]);
                ClassMetrics {
                    class: class_name(classes, c),
                    precision,
                    recall,
                    f1,
                    support: support[c],
                }
            })
            .collect();
        let (tp_sum, pred_sum, sup_sum) = (
            tp.iter().sum::<u64>(),
            predicted.iter().sum::<u64>(),
            support.iter().sum::<u64>(),
        );
        let truths: Vec<bool> = targets.iter().map(|&t| t != 0).collect();
        let mut aucs = Vec::new();
        for c in 0..k {
            let s: Vec<f32> = (0..n).map(|i| probs[i * k + c]).collect();
            let t: Vec<bool> = (0..n).map(|i| truths[i * k + c]).collect();
            if t.iter().any(|&x| x) && t.iter().any(|&x| !x) {
                aucs.push(roc_auc(&s, &t));
            }
        }
        let values = vec![
            ("loss", loss),
            ("hamming_loss", ratio(wrong, (n * k) as u64)),
            ("subset_accuracy", ratio(exact, n as u64)),
            ("precision_micro", ratio(tp_sum, pred_sum)),
            ("recall_micro", ratio(tp_sum, sup_sum)),
            ("f1_micro", ratio(2 * tp_sum, pred_sum + sup_sum)),
            (
                "precision_macro",
                mean(per_class.iter().map(|m| m.precision)),
            ),
            ("recall_macro", mean(per_class.iter().map(|m| m.recall))),
            ("f1_macro", mean(per_class.iter().map(|m| m.f1))),
            ("roc_auc_macro", mean(aucs.into_iter())),
            ("roc_auc_micro", roc_auc(&probs[..n * k], &truths)),
        ];
        Self {
            values,
            per_class,
            confusion_matrix: Vec::new(),
        }
    }

    /// The mean loss.
    pub fn loss(&self) -> f64 {
        self.get("loss").unwrap_or(0.0)
    }

    /// The scalar metrics by name, in the task's order — the names used in metrics.json and
    /// TensorBoard.
    pub fn scalars(&self) -> Vec<(&'static str, f64)> {
        self.values.clone()
    }

    /// A scalar metric by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

impl Serialize for Metrics {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.values.len() + 2))?;
        for (name, v) in &self.values {
            m.serialize_entry(name, v)?;
        }
        m.serialize_entry("per_class", &self.per_class)?;
        m.serialize_entry("confusion_matrix", &self.confusion_matrix)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Metrics {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            per_class: Vec<ClassMetrics>,
            #[serde(default)]
            confusion_matrix: Vec<Vec<u64>>,
            #[serde(flatten)]
            rest: std::collections::BTreeMap<String, serde_json::Value>,
        }
        let raw = Raw::deserialize(d)?;
        // A file only ever holds one task's names: read them in that task's order (the first
        // task whose list holds them all), else in the tasks' combined order.
        let order: Vec<&'static str> = ALL_TASKS
            .iter()
            .map(|t| scalar_metrics(*t))
            .find(|list| raw.rest.keys().all(|k| list.iter().any(|(n, _)| n == k)))
            .map_or_else(all_names, |list| list.iter().map(|(n, _)| *n).collect());
        let mut values = Vec::new();
        for name in order {
            if let Some(v) = raw.rest.get(name).and_then(|v| v.as_f64()) {
                values.push((name, v));
            }
        }
        for key in raw.rest.keys() {
            if known(key).is_none() {
                return Err(serde::de::Error::custom(format!("unknown metric `{key}`")));
            }
        }
        Ok(Metrics {
            values,
            per_class: raw.per_class,
            confusion_matrix: raw.confusion_matrix,
        })
    }
}

/// ROC AUC of `scores` against `truths` (true = positive): the probability that a random positive
/// scores above a random negative, ties counting one half (the Mann–Whitney statistic with
/// mid-ranks; equal to scikit-learn's trapezoidal `roc_auc_score`). 0 when either class is
/// absent (scikit-learn raises there).
pub fn roc_auc(scores: &[f32], truths: &[bool]) -> f64 {
    let n = scores.len().min(truths.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let positives = truths[..n].iter().filter(|&&t| t).count();
    let negatives = n - positives;
    if positives == 0 || negatives == 0 {
        return 0.0;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // ranks i+1 ..= j+1 share their mean
        let mid = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            if truths[o] {
                rank_sum += mid;
            }
        }
        i = j + 1;
    }
    let p = positives as f64;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64)
}

/// Average precision as scikit-learn defines it: Σₙ (Rₙ − Rₙ₋₁)·Pₙ over the distinct score
/// thresholds, highest first (no interpolation). 0 without positives.
pub fn average_precision(scores: &[f32], truths: &[bool]) -> f64 {
    let n = scores.len().min(truths.len());
    let positives = truths[..n].iter().filter(|&&t| t).count();
    if positives == 0 {
        return 0.0;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut ap, mut last_recall) = (0u64, 0u64, 0.0, 0.0);
    let mut i = 0;
    while i < n {
        let s = scores[order[i]];
        while i < n && scores[order[i]] == s {
            if truths[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let recall = tp as f64 / positives as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - last_recall) * precision;
        last_recall = recall;
    }
    ap
}

/// F1 of the positive class when `score >= threshold` predicts positive.
pub fn f1_at_threshold(scores: &[f32], truths: &[bool], threshold: f64) -> f64 {
    let (mut tp, mut predicted, mut support) = (0u64, 0u64, 0u64);
    for (&s, &t) in scores.iter().zip(truths) {
        let p = s as f64 >= threshold;
        tp += (p && t) as u64;
        predicted += p as u64;
        support += t as u64;
    }
    ratio(2 * tp, predicted + support)
}

/// The threshold maximising F1 (`score >= threshold` predicts positive) among the distinct
/// scores, and that F1. On a tie the highest threshold wins; with no scores or no positives, 0.5.
pub fn best_f1_threshold(scores: &[f32], truths: &[bool]) -> (f64, f64) {
    let n = scores.len().min(truths.len());
    let positives = truths[..n].iter().filter(|&&t| t).count() as u64;
    if n == 0 || positives == 0 {
        return (0.5, f1_at_threshold(scores, truths, 0.5));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut predicted) = (0u64, 0u64);
    let (mut best_t, mut best_f1) = (0.5, -1.0);
    let mut i = 0;
    while i < n {
        let s = scores[order[i]];
        while i < n && scores[order[i]] == s {
            tp += truths[order[i]] as u64;
            predicted += 1;
            i += 1;
        }
        let f1 = ratio(2 * tp, predicted + positives);
        if f1 > best_f1 {
            best_f1 = f1;
            best_t = s as f64;
        }
    }
    (best_t, best_f1)
}

/// Collects what a split's metrics need, batch by batch: the confusion matrix (multiclass), or
/// the scores and truths (binary, multilabel).
#[derive(Clone, Debug)]
pub enum Accumulator {
    Multiclass(ConfusionMatrix),
    /// Positive-class probabilities and truths.
    Binary {
        scores: Vec<f32>,
        truths: Vec<bool>,
    },
    /// Row-major N×K probabilities and multi-hot truths.
    Multilabel {
        probs: Vec<f32>,
        truths: Vec<u8>,
    },
}

impl Accumulator {
    pub fn new(task: Task, num_classes: usize) -> Self {
        match task {
            Task::Multiclass => Accumulator::Multiclass(ConfusionMatrix::new(num_classes)),
            Task::Binary => Accumulator::Binary {
                scores: Vec::new(),
                truths: Vec::new(),
            },
            Task::Multilabel => Accumulator::Multilabel {
                probs: Vec::new(),
                truths: Vec::new(),
            },
        }
    }

    /// The metrics: `positive` is the binary positive class; `threshold` the binary F1
    /// threshold to apply (`None`: chosen on this split).
    pub fn finish(
        &self,
        loss: f64,
        classes: &[String],
        positive: usize,
        threshold: Option<f64>,
    ) -> Metrics {
        match self {
            Accumulator::Multiclass(cm) => Metrics::from_confusion(cm, loss, classes),
            Accumulator::Binary { scores, truths } => {
                Metrics::binary(scores, truths, loss, classes, positive, threshold)
            }
            Accumulator::Multilabel { probs, truths } => {
                Metrics::multilabel(probs, truths, loss, classes)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        ["cat", "dog", "bird", "fish"][..n]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    fn from_rows(rows: &[&[u64]]) -> ConfusionMatrix {
        let mut cm = ConfusionMatrix::new(rows.len());
        for (t, row) in rows.iter().enumerate() {
            for (p, &k) in row.iter().enumerate() {
                for _ in 0..k {
                    cm.add(t, p);
                }
            }
        }
        cm
    }

    #[test]
    fn three_class_example() {
        //              predicted
        //              cat dog bird   support
        // true cat      5   2   1        8
        //      dog      1   6   3       10
        //      bird     0   2   4        6
        // predicted     6  10   8       24
        //
        // precision: cat 5/6, dog 6/10 = 0.6, bird 4/8 = 0.5
        // recall:    cat 5/8 = 0.625, dog 6/10 = 0.6, bird 4/6 = 2/3
        // f1 = 2·tp/(predicted + support): cat 10/14 = 5/7, dog 12/20 = 0.6, bird 8/14 = 4/7
        //   (check cat: 2·(5/6)·(5/8)/(5/6 + 5/8) = (25/24)/(35/24) = 5/7)
        // accuracy = (5 + 6 + 4)/24 = 15/24 = 0.625 = micro precision = micro recall = micro F1
        // precision_macro = (5/6 + 0.6 + 0.5)/3 = (1.9333…)/3 = 0.6444…
        // recall_macro    = (0.625 + 0.6 + 2/3)/3 = 1.891666…/3 = 0.630555…
        // f1_macro        = (5/7 + 0.6 + 4/7)/3 = (9/7 + 0.6)/3 = 1.885714…/3 = 0.628571…
        let cm = from_rows(&[&[5, 2, 1], &[1, 6, 3], &[0, 2, 4]]);
        assert_eq!(cm.total(), 24);
        let m = Metrics::from_confusion(&cm, 0.42, &names(3));
        assert_eq!(
            m.confusion_matrix,
            vec![vec![5, 2, 1], vec![1, 6, 3], vec![0, 2, 4]]
        );
        let want = [
            ("cat", 5.0 / 6.0, 0.625, 5.0 / 7.0, 8),
            ("dog", 0.6, 0.6, 0.6, 10),
            ("bird", 0.5, 2.0 / 3.0, 4.0 / 7.0, 6),
        ];
        for (got, (name, p, r, f, s)) in m.per_class.iter().zip(want) {
            assert_eq!(got.class, name);
            assert!(
                close(got.precision, p),
                "{name} precision {}",
                got.precision
            );
            assert!(close(got.recall, r), "{name} recall {}", got.recall);
            assert!(close(got.f1, f), "{name} f1 {}", got.f1);
            assert_eq!(got.support, s);
        }
        let g = |n: &str| m.get(n).unwrap();
        assert_eq!(m.loss(), 0.42);
        assert!(close(g("accuracy"), 0.625));
        assert!(close(g("precision_micro"), 0.625));
        assert!(close(g("recall_micro"), 0.625));
        assert!(close(g("f1_micro"), 0.625));
        assert!(close(g("precision_macro"), (5.0 / 6.0 + 0.6 + 0.5) / 3.0));
        assert!(close(g("precision_macro"), 0.644_444_444_444_444_4));
        assert!(close(g("recall_macro"), 0.630_555_555_555_555_6));
        assert!(close(g("f1_macro"), (9.0 / 7.0 + 0.6) / 3.0));
        assert!(close(g("f1_macro"), 0.628_571_428_571_428_6));
    }

    #[test]
    fn perfect_classifier() {
        let cm = from_rows(&[&[3, 0, 0], &[0, 5, 0], &[0, 0, 2]]);
        let m = Metrics::from_confusion(&cm, 0.0, &names(3));
        for (name, v) in m.scalars() {
            let want = if name == "loss" { 0.0 } else { 1.0 };
            assert_eq!(v, want, "{name}");
        }
        assert!(m
            .per_class
            .iter()
            .all(|c| c.precision == 1.0 && c.recall == 1.0 && c.f1 == 1.0));
    }

    #[test]
    fn class_never_predicted_and_class_without_support() {
        //              predicted
        //              cat dog bird   support
        // true cat      4   0   0        4
        //      dog      2   0   0        2     ← dog is never predicted: precision 0 (not NaN)
        //      bird     1   0   0        1
        // (nobody is "fish": support 0 → recall 0; never predicted → precision 0; f1 0)
        // cat: precision 4/7, recall 1, f1 = 8/(7 + 4) = 8/11
        // bird: precision 0 (never predicted), recall 0/1 = 0, f1 0
        // accuracy 4/7; macro over all 4 classes: precision (4/7)/4 = 1/7, recall 1/4, f1 (8/11)/4 = 2/11
        let cm = from_rows(&[&[4, 0, 0, 0], &[2, 0, 0, 0], &[1, 0, 0, 0], &[0, 0, 0, 0]]);
        let m = Metrics::from_confusion(&cm, 1.5, &names(4));
        let dog = &m.per_class[1];
        assert_eq!(
            (dog.precision, dog.recall, dog.f1, dog.support),
            (0.0, 0.0, 0.0, 2)
        );
        let fish = &m.per_class[3];
        assert_eq!(
            (fish.precision, fish.recall, fish.f1, fish.support),
            (0.0, 0.0, 0.0, 0)
        );
        assert!(close(m.per_class[0].precision, 4.0 / 7.0));
        assert!(close(m.per_class[0].f1, 8.0 / 11.0));
        let g = |n: &str| m.get(n).unwrap();
        assert!(close(g("accuracy"), 4.0 / 7.0));
        assert!(close(g("f1_micro"), 4.0 / 7.0));
        assert!(close(g("precision_macro"), 1.0 / 7.0));
        assert!(close(g("recall_macro"), 0.25));
        assert!(close(g("f1_macro"), 2.0 / 11.0));
    }

    #[test]
    fn empty_matrix() {
        let m = Metrics::from_confusion(&ConfusionMatrix::new(3), 0.0, &names(3));
        for (name, v) in m.scalars() {
            assert_eq!(v, 0.0, "{name}");
        }
        assert!(m
            .per_class
            .iter()
            .all(|c| c.precision == 0.0 && c.recall == 0.0 && c.f1 == 0.0));
        // no classes at all
        let m = Metrics::from_confusion(&ConfusionMatrix::new(0), 0.0, &[]);
        assert!(m.scalars().iter().all(|(_, v)| *v == 0.0));
        assert!(m.per_class.is_empty() && m.confusion_matrix.is_empty());
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = from_rows(&[&[1, 2], &[0, 3]]);
        let b = from_rows(&[&[4, 0], &[5, 6]]);
        a.merge(&b);
        assert_eq!(a.rows(), vec![vec![5, 2], vec![5, 9]]);
        assert_eq!(a.total(), 21);
        let mut all = ConfusionMatrix::new(2);
        all.merge(&from_rows(&[&[5, 2], &[5, 9]]));
        assert_eq!(a, all);
    }

    #[test]
    #[should_panic(expected = "different numbers of classes")]
    fn merge_rejects_other_sizes() {
        ConfusionMatrix::new(2).merge(&ConfusionMatrix::new(3));
    }

    #[test]
    #[should_panic(expected = "3 classes")]
    fn add_rejects_out_of_range() {
        ConfusionMatrix::new(3).add(0, 3);
    }

    #[test]
    fn names_and_lookup() {
        let m = Metrics::from_confusion(&from_rows(&[&[1, 1], &[0, 2]]), 0.3, &names(1));
        assert_eq!(m.per_class[1].class, "1"); // unnamed class falls back to its index
        let names: Vec<&str> = m.scalars().iter().map(|(n, _)| *n).collect();
        let want: Vec<&str> = SCALAR_METRICS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, want);
        for (name, v) in m.scalars() {
            assert_eq!(m.get(name), Some(v));
        }
        assert_eq!(m.get("nope"), None);
        assert_eq!(
            SCALAR_METRICS.iter().filter(|(_, higher)| !higher).count(),
            1
        );
        assert!(!SCALAR_METRICS[0].1 && SCALAR_METRICS[0].0 == "loss");
    }

    #[test]
    fn roc_auc_counts_ties_as_half() {
        // scikit-learn's documented example: roc_auc_score([0,0,1,1], [.1,.4,.35,.8]) = 0.75
        let t = [false, false, true, true];
        assert!(close(roc_auc(&[0.1, 0.4, 0.35, 0.8], &t), 0.75));
        // positives .35 .8 .4 against negatives .1 .4: pairs won 1+0, 1+1, 1+½ → 4.5/6
        let t = [false, false, true, true, true];
        assert!(close(roc_auc(&[0.1, 0.4, 0.35, 0.8, 0.4], &t), 0.75));
        // all tied: ½
        assert!(close(roc_auc(&[0.3; 4], &[true, false, true, false]), 0.5));
        // one class only: undefined, reported as 0
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), 0.0);
    }

    #[test]
    fn average_precision_follows_scikit_learn() {
        // average_precision_score([0,0,1,1], [.1,.4,.35,.8]) = 0.8333…: 0.5·1 + 0.5·(2/3)
        let t = [false, false, true, true];
        assert!(close(
            average_precision(&[0.1, 0.4, 0.35, 0.8], &t),
            5.0 / 6.0
        ));
        // a tie between a positive and a negative is one threshold: .9 (R .5, P 1), .5 (R 1, P 2/3)
        let t = [true, false, true, false];
        assert!(close(
            average_precision(&[0.5, 0.5, 0.9, 0.1], &t),
            0.5 + 0.5 * 2.0 / 3.0
        ));
        assert_eq!(average_precision(&[0.5, 0.2], &[false, false]), 0.0);
    }

    #[test]
    fn threshold_maximises_f1_and_is_applied_as_given() {
        // 3 positives; F1 at thresholds .9 .8 .7 .6 .3 .2 = 2/4, 2/5, 4/6, 6/7, 6/8, 6/9
        let s = [0.9, 0.8, 0.7, 0.6, 0.3, 0.2];
        let t = [true, false, true, true, false, false];
        let (th, f1) = best_f1_threshold(&s, &t);
        assert!(
            close(th, 0.6f32 as f64) && close(f1, 6.0 / 7.0),
            "{th} {f1}"
        );
        assert!(close(f1_at_threshold(&s, &t, 0.75), 0.4));
        let names = vec!["neg".to_string(), "pos".to_string()];
        let val = Metrics::binary(&s, &t, 0.3, &names, 1, None);
        assert!(close(val.get("threshold").unwrap(), 0.6f32 as f64));
        assert!(close(val.get("f1_at_threshold").unwrap(), 6.0 / 7.0));
        // on another split the chosen threshold is applied, not chosen again
        let test = Metrics::binary(&s, &t, 0.3, &names, 1, Some(0.75));
        assert!(close(test.get("f1_at_threshold").unwrap(), 0.4));
        assert_eq!(test.get("threshold"), Some(0.75));
    }

    #[test]
    fn binary_metrics_at_one_half() {
        // positive class is "a" (index 0): predicted positive when p ≥ 0.5
        // truths  T T F F T ; scores .7 .4 .6 .1 .5 → predictions T F T F T
        // tp 2, fp 1, fn 1, tn 1: accuracy 3/5, precision 2/3, recall 2/3, F1 2/3
        let names = vec!["a".to_string(), "b".to_string()];
        let s = [0.7, 0.4, 0.6, 0.1, 0.5];
        let t = [true, true, false, false, true];
        let m = Metrics::binary(&s, &t, 0.5, &names, 0, None);
        let names_got: Vec<&str> = m.scalars().iter().map(|(n, _)| *n).collect();
        let want: Vec<&str> = BINARY_METRICS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names_got, want);
        assert!(close(m.get("accuracy").unwrap(), 0.6));
        assert!(close(m.get("precision").unwrap(), 2.0 / 3.0));
        assert!(close(m.get("recall").unwrap(), 2.0 / 3.0));
        assert!(close(m.get("f1").unwrap(), 2.0 / 3.0));
        // rows true a, b; columns predicted a, b
        assert_eq!(m.confusion_matrix, vec![vec![2, 1], vec![1, 1]]);
        // positives .7 .4 .5 vs negatives .6 .1: 1+1, 0+1, 0+1 → 4/6
        assert!(close(m.get("roc_auc").unwrap(), 4.0 / 6.0));
    }

    #[test]
    fn multilabel_metrics_by_hand() {
        //        truths     probabilities     predictions (≥ .5)
        // r0     1 0 1      .9 .2  .6         1 0 1   exact
        // r1     0 1 0      .1 .7  .4         0 1 0   exact
        // r2     1 1 0      .8 .3  .1         1 0 0   misses label 1
        // r3     0 0 0      .6 .35 .2         1 0 0   false label 0
        let t = [1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0];
        let p = [0.9, 0.2, 0.6, 0.1, 0.7, 0.4, 0.8, 0.3, 0.1, 0.6, 0.35, 0.2];
        let m = Metrics::multilabel(&p, &t, 0.2, &names(3));
        let g = |n: &str| m.get(n).unwrap();
        assert!(close(g("hamming_loss"), 2.0 / 12.0));
        assert!(close(g("subset_accuracy"), 0.5));
        // label 0: tp 2, predicted 3, support 2; label 1: 1, 1, 2; label 2: 1, 1, 1
        let want = [
            (2.0 / 3.0, 1.0, 0.8, 2),
            (1.0, 0.5, 2.0 / 3.0, 2),
            (1.0, 1.0, 1.0, 1),
        ];
        for (c, (pr, re, f1, sup)) in m.per_class.iter().zip(want) {
            assert!(close(c.precision, pr) && close(c.recall, re) && close(c.f1, f1));
            assert_eq!(c.support, sup);
        }
        // micro: tp 4, predicted 5, support 5
        assert!(close(g("precision_micro"), 0.8));
        assert!(close(g("recall_micro"), 0.8));
        assert!(close(g("f1_micro"), 0.8));
        assert!(close(g("precision_macro"), 8.0 / 9.0));
        assert!(close(g("recall_macro"), 2.5 / 3.0));
        assert!(close(g("f1_macro"), (0.8 + 2.0 / 3.0 + 1.0) / 3.0));
        // per-label AUC 1, 3/4, 1; pooled: 31.5 of 35 positive/negative pairs
        assert!(close(g("roc_auc_macro"), 2.75 / 3.0));
        assert!(close(g("roc_auc_micro"), 0.9));
        assert!(m.confusion_matrix.is_empty());
    }

    #[test]
    fn multilabel_macro_auc_skips_labels_without_both_classes() {
        // label 1 is never present: left out of the macro mean
        let t = [1, 0, 0, 0];
        let p = [0.8, 0.1, 0.3, 0.2];
        let m = Metrics::multilabel(&p, &t, 0.0, &names(2));
        assert!(close(m.get("roc_auc_macro").unwrap(), 1.0));
    }

    #[test]
    fn serialises_flat_and_reads_back() {
        let m = Metrics::from_confusion(&from_rows(&[&[1, 1], &[0, 2]]), 0.3, &names(2));
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["accuracy"], 0.75);
        assert_eq!(json["confusion_matrix"][1][1], 2);
        let back: Metrics = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
        let b = Metrics::binary(&[0.2, 0.9], &[false, true], 0.1, &names(2), 1, None);
        let back: Metrics = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(back, b);
        // multilabel names read back in the multilabel order (its macro/micro order differs)
        let ml = Metrics::multilabel(&[0.9, 0.2, 0.4, 0.7], &[1, 0, 0, 1], 0.2, &names(2));
        let back: Metrics = serde_json::from_str(&serde_json::to_string(&ml).unwrap()).unwrap();
        assert_eq!(back, ml);
        assert!(serde_json::from_str::<Metrics>(r#"{"bogus": 1}"#).is_err());
    }

    #[test]
    fn task_metric_lists() {
        assert!(!higher_is_better("hamming_loss") && !higher_is_better("loss"));
        assert!(higher_is_better("roc_auc") && higher_is_better("subset_accuracy"));
        assert!(!selectable_metrics(Task::Binary).contains(&"threshold"));
        for t in ALL_TASKS {
            assert!(selectable_metrics(t).contains(&default_best_metric(t)));
            assert_eq!(scalar_metrics(t)[0].0, "loss");
        }
    }
}
