//! Single-label multiclass classification metrics (accuracy, per-class/macro/micro precision, recall, F1) from a confusion matrix.
//!
//! Conventions follow scikit-learn with `zero_division=0`: a class that is never predicted has
//! precision 0, a class with no support has recall 0, F1 is 0 when precision + recall is 0,
//! macro averages are unweighted means over *all* classes, and an empty matrix gives zeros
//! (never NaN).

use serde::{Deserialize, Serialize};

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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MulticlassMetrics {
    pub loss: f64,
    pub accuracy: f64,
    pub precision_macro: f64,
    pub recall_macro: f64,
    pub f1_macro: f64,
    pub precision_micro: f64,
    pub recall_micro: f64,
    pub f1_micro: f64,
    pub per_class: Vec<ClassMetrics>,
    /// Row = true class, column = predicted class.
    pub confusion_matrix: Vec<Vec<u64>>,
}

/// The scalar metric names, and whether larger is better for each.
pub const SCALAR_METRICS: &[(&str, bool)] = &[
    ("loss", false),
    ("accuracy", true),
    ("precision_macro", true),
    ("recall_macro", true),
    ("f1_macro", true),
    ("precision_micro", true),
    ("recall_micro", true),
    ("f1_micro", true),
];

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

impl MulticlassMetrics {
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
            per_class.push(ClassMetrics {
                class: classes.get(c).cloned().unwrap_or_else(|| c.to_string()),
                precision: ratio(tp, predicted),
                recall: ratio(tp, support),
                // 2·tp / (2·tp + fp + fn) = 2·P·R / (P + R), and 0 when both are 0.
                f1: ratio(2 * tp, predicted + support),
                support,
            });
        }
        // Micro averages pool tp, fp and fn over the classes; for single-label data every
        // sample is one prediction and one true label, so all three equal the accuracy.
        let precision_micro = ratio(tp_sum, pred_sum);
        let recall_micro = ratio(tp_sum, support_sum);
        let f1_micro = ratio(2 * tp_sum, pred_sum + support_sum);
        Self {
            loss,
            accuracy: ratio(tp_sum, cm.total()),
            precision_macro: mean(per_class.iter().map(|m| m.precision)),
            recall_macro: mean(per_class.iter().map(|m| m.recall)),
            f1_macro: mean(per_class.iter().map(|m| m.f1)),
            precision_micro,
            recall_micro,
            f1_micro,
            per_class,
            confusion_matrix: cm.rows(),
        }
    }

    /// The scalar metrics by name, in the order of [`SCALAR_METRICS`] — the names used in
    /// metrics.json and TensorBoard.
    pub fn scalars(&self) -> Vec<(&'static str, f64)> {
        SCALAR_METRICS
            .iter()
            .map(|&(name, _)| {
                (
                    name,
                    self.get(name).expect("every scalar metric has a value"),
                )
            })
            .collect()
    }

    /// A scalar metric by name (see [`SCALAR_METRICS`]).
    pub fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "loss" => self.loss,
            "accuracy" => self.accuracy,
            "precision_macro" => self.precision_macro,
            "recall_macro" => self.recall_macro,
            "f1_macro" => self.f1_macro,
            "precision_micro" => self.precision_micro,
            "recall_micro" => self.recall_micro,
            "f1_micro" => self.f1_micro,
            _ => return None,
        })
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
        let m = MulticlassMetrics::from_confusion(&cm, 0.42, &names(3));
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
        assert_eq!(m.loss, 0.42);
        assert!(close(m.accuracy, 0.625));
        assert!(close(m.precision_micro, 0.625));
        assert!(close(m.recall_micro, 0.625));
        assert!(close(m.f1_micro, 0.625));
        assert!(close(m.precision_macro, (5.0 / 6.0 + 0.6 + 0.5) / 3.0));
        assert!(close(m.precision_macro, 0.644_444_444_444_444_4));
        assert!(close(m.recall_macro, 0.630_555_555_555_555_6));
        assert!(close(m.f1_macro, (9.0 / 7.0 + 0.6) / 3.0));
        assert!(close(m.f1_macro, 0.628_571_428_571_428_6));
    }

    #[test]
    fn perfect_classifier() {
        let cm = from_rows(&[&[3, 0, 0], &[0, 5, 0], &[0, 0, 2]]);
        let m = MulticlassMetrics::from_confusion(&cm, 0.0, &names(3));
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
        let m = MulticlassMetrics::from_confusion(&cm, 1.5, &names(4));
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
        assert!(close(m.accuracy, 4.0 / 7.0));
        assert!(close(m.f1_micro, 4.0 / 7.0));
        assert!(close(m.precision_macro, 1.0 / 7.0));
        assert!(close(m.recall_macro, 0.25));
        assert!(close(m.f1_macro, 2.0 / 11.0));
    }

    #[test]
    fn empty_matrix() {
        let m = MulticlassMetrics::from_confusion(&ConfusionMatrix::new(3), 0.0, &names(3));
        for (name, v) in m.scalars() {
            assert_eq!(v, 0.0, "{name}");
        }
        assert!(m
            .per_class
            .iter()
            .all(|c| c.precision == 0.0 && c.recall == 0.0 && c.f1 == 0.0));
        // no classes at all
        let m = MulticlassMetrics::from_confusion(&ConfusionMatrix::new(0), 0.0, &[]);
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
        let m = MulticlassMetrics::from_confusion(&from_rows(&[&[1, 1], &[0, 2]]), 0.3, &names(1));
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
}
