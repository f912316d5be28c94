//! Per-image predictions of one evaluated split, gathered from the same logits as its metrics:
//! the rows of a job's `predictions.csv` and the most confident mistakes.

use crate::data::image_set::ImageSet;
use crate::spec::Task;

/// What the network said about each image of a split, in the split's order.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    pub task: Task,
    /// The binary positive class (its probability is the one binary column).
    pub positive: usize,
    /// Per image: multiclass, the arg-max class the metrics count; unused otherwise.
    pub argmax: Vec<usize>,
    /// Row-major probabilities, `width()` per image: multiclass the softmax over the classes,
    /// binary the positive class's sigmoid, multilabel each label's sigmoid. Each is the f32 the
    /// metrics used, widened to f64 (exact).
    pub probs: Vec<f64>,
    classes: usize,
}

/// One image's prediction, ready to write.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Position of the image in its split.
    pub index: usize,
    pub truth: Vec<usize>,
    /// Multiclass: the arg-max; binary: positive when its probability is ≥ 0.5; multilabel: every
    /// label with probability ≥ 0.5.
    pub predicted: Vec<usize>,
    /// The probability of the predicted class (multiclass, binary); none for multilabel.
    pub confidence: Option<f64>,
    pub probs: Vec<f64>,
    /// Binary: the class predicted at the F1 threshold.
    pub predicted_at_threshold: Option<usize>,
}

/// What kind of mistake a [`Mistake`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MistakeKind {
    /// Single-label: another class was predicted.
    Wrong,
    /// Multilabel: the label was predicted but the image does not have it.
    FalsePositive,
    /// Multilabel: the image has the label but it was not predicted.
    FalseNegative,
}

/// A wrong prediction and how sure the network was of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Mistake {
    pub row: Row,
    /// The class the mistake is filed under: the true class, or the label got wrong.
    pub class: usize,
    pub kind: MistakeKind,
    /// The probability of the wrong decision: of the predicted class, of the label (false
    /// positive), or 1 − that (false negative).
    pub confidence: f64,
}

impl Predictions {
    pub fn new(task: Task, classes: usize, positive: usize) -> Self {
        Predictions {
            task,
            positive,
            argmax: Vec::new(),
            probs: Vec::new(),
            classes,
        }
    }

    /// Probabilities per image.
    pub fn width(&self) -> usize {
        match self.task {
            Task::Binary => 1,
            _ => self.classes,
        }
    }

    pub fn len(&self) -> usize {
        self.probs.len().checked_div(self.width()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a multiclass batch: the arg-max classes and the row-major logits they came from.
    pub fn add_multiclass(&mut self, argmax: &[u32], logits: &[f32]) {
        let k = self.classes.max(1);
        for (row, &p) in logits.chunks(k).zip(argmax) {
            self.argmax.push(p as usize);
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
            let exp: Vec<f64> = row.iter().map(|&x| (x as f64 - max).exp()).collect();
            let sum: f64 = exp.iter().sum();
            self.probs.extend(exp.iter().map(|e| e / sum));
        }
    }

    /// Adds sigmoid probabilities (binary: one per image; multilabel: one per label).
    pub fn add_probabilities(&mut self, probs: &[f32]) {
        self.probs.extend(probs.iter().map(|&p| p as f64));
    }

    /// The row of image `i` of `set` (the split these predictions are of); `threshold` is the
    /// binary F1 threshold the split's metrics applied.
    pub fn row(&self, set: &ImageSet, i: usize, threshold: Option<f64>) -> Row {
        let w = self.width();
        let probs = self.probs[i * w..(i + 1) * w].to_vec();
        let truth: Vec<usize> = match self.task {
            Task::Multilabel => set
                .label_set(i)
                .iter()
                .enumerate()
                .filter(|(_, &v)| v != 0)
                .map(|(c, _)| c)
                .collect(),
            _ => vec![set.labels[i] as usize],
        };
        let negative = 1 - self.positive.min(1);
        match self.task {
            Task::Multiclass => {
                let p = self.argmax[i];
                Row {
                    index: i,
                    truth,
                    predicted: vec![p],
                    confidence: probs.get(p).copied(),
                    probs,
                    predicted_at_threshold: None,
                }
            }
            Task::Binary => {
                let s = probs[0];
                let (predicted, confidence) = if s >= 0.5 {
                    (self.positive, s)
                } else {
                    (negative, 1.0 - s)
                };
                let at = threshold.map(|t| if s >= t { self.positive } else { negative });
                Row {
                    index: i,
                    truth,
                    predicted: vec![predicted],
                    confidence: Some(confidence),
                    probs,
                    predicted_at_threshold: at,
                }
            }
            Task::Multilabel => Row {
                index: i,
                truth,
                predicted: (0..w).filter(|&c| probs[c] >= 0.5).collect(),
                confidence: None,
                probs,
                predicted_at_threshold: None,
            },
        }
    }

    /// Every image's row, in the split's order.
    pub fn rows(&self, set: &ImageSet, threshold: Option<f64>) -> Vec<Row> {
        (0..self.len().min(set.len()))
            .map(|i| self.row(set, i, threshold))
            .collect()
    }

    /// The `per` most confident mistakes of each class (single-label: by true class; multilabel:
    /// per label, the false positives and the false negatives), most confident first; ties by
    /// position.
    pub fn mistakes(&self, rows: &[Row], per: usize) -> Vec<Mistake> {
        let mut all: Vec<Mistake> = Vec::new();
        for row in rows {
            match self.task {
                Task::Multilabel => {
                    for (c, &p) in row.probs.iter().enumerate() {
                        let (has, said) = (row.truth.contains(&c), row.predicted.contains(&c));
                        let kind = match (has, said) {
                            (false, true) => MistakeKind::FalsePositive,
                            (true, false) => MistakeKind::FalseNegative,
                            _ => continue,
                        };
                        let confidence = if said { p } else { 1.0 - p };
                        all.push(Mistake {
                            row: row.clone(),
                            class: c,
                            kind,
                            confidence,
                        });
                    }
                }
                _ => {
                    if row.predicted != row.truth {
                        all.push(Mistake {
                            row: row.clone(),
                            class: row.truth.first().copied().unwrap_or(0),
                            kind: MistakeKind::Wrong,
                            confidence: row.confidence.unwrap_or(0.0),
                        });
                    }
                }
            }
        }
        all.sort_by(|a, b| {
            (a.class, kind_order(a.kind))
                .cmp(&(b.class, kind_order(b.kind)))
                .then(b.confidence.total_cmp(&a.confidence))
                .then(a.row.index.cmp(&b.row.index))
        });
        let mut out: Vec<Mistake> = Vec::new();
        let mut taken = 0;
        for m in all {
            match out.last() {
                Some(last) if last.class == m.class && last.kind == m.kind => {}
                _ => taken = 0,
            }
            if taken < per {
                taken += 1;
                out.push(m);
            }
        }
        out
    }
}

fn kind_order(k: MistakeKind) -> u8 {
    match k {
        MistakeKind::Wrong => 0,
        MistakeKind::FalsePositive => 1,
        MistakeKind::FalseNegative => 2,
    }
}

/// The header of `predictions.csv` for `task` and its classes (`positive`: the binary positive
/// class).
pub fn csv_header(task: Task, classes: &[String], positive: usize) -> Vec<String> {
    let mut head: Vec<String> = ["split", "path", "true", "predicted"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match task {
        Task::Multiclass => {
            head.push("confidence".into());
            head.extend(classes.iter().map(|c| format!("p_{c}")));
        }
        Task::Binary => {
            head.push("confidence".into());
            let pos = classes.get(positive).cloned().unwrap_or_default();
            head.extend([
                format!("p_{pos}"),
                "threshold".into(),
                "predicted_at_threshold".into(),
            ]);
        }
        Task::Multilabel => head.extend(classes.iter().map(|c| format!("p_{c}"))),
    }
    head
}

/// A probability in the shortest text that reads back as the same f64 (`1e-7` style when tiny).
fn number(x: f64) -> String {
    format!("{x:?}")
}

/// The CSV record of `row` (as [`csv_header`] orders it); labels are joined by `;`.
pub fn csv_record(
    split: &str,
    path: &str,
    row: &Row,
    classes: &[String],
    threshold: Option<f64>,
) -> Vec<String> {
    let name = |c: &usize| classes.get(*c).cloned().unwrap_or_else(|| c.to_string());
    let join = |v: &[usize]| v.iter().map(name).collect::<Vec<_>>().join(";");
    let mut rec = vec![
        split.to_string(),
        path.to_string(),
        join(&row.truth),
        join(&row.predicted),
    ];
    if let Some(c) = row.confidence {
        rec.push(number(c));
    }
    rec.extend(row.probs.iter().map(|&p| number(p)));
    if let Some(at) = row.predicted_at_threshold {
        rec.push(threshold.map_or_else(String::new, number));
        rec.push(name(&at));
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(labels: Vec<u32>, k: usize, label_sets: Option<Vec<u8>>) -> ImageSet {
        let n = labels.len();
        ImageSet {
            channels: 1,
            height: 1,
            width: 1,
            pixels: vec![0; n],
            labels,
            classes: (0..k).map(|c| format!("c{c}")).collect(),
            groups: None,
            label_sets,
        }
    }

    #[test]
    fn multiclass_rows_are_the_argmax_with_softmax_probabilities() {
        let mut p = Predictions::new(Task::Multiclass, 3, 1);
        p.add_multiclass(&[2, 0], &[0.0, 0.0, 1.0, 5.0, 0.0, 0.0]);
        let s = set(vec![2, 1], 3, None);
        let rows = p.rows(&s, None);
        assert_eq!(rows[0].predicted, vec![2]);
        let e = std::f64::consts::E;
        assert!((rows[0].probs[2] - e / (e + 2.0)).abs() < 1e-15);
        assert_eq!(rows[0].confidence, Some(rows[0].probs[2]));
        let m = p.mistakes(&rows, 5);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!((m[0].class, m[0].row.index), (1, 1));
        let classes = s.classes.clone();
        assert_eq!(
            csv_header(Task::Multiclass, &classes, 1),
            [
                "split",
                "path",
                "true",
                "predicted",
                "confidence",
                "p_c0",
                "p_c1",
                "p_c2"
            ]
        );
        let rec = csv_record("val", "train/x.png", &rows[1], &classes, None);
        assert_eq!(&rec[..4], ["val", "train/x.png", "c1", "c0"]);
    }

    #[test]
    fn binary_rows_predict_at_one_half_and_at_the_threshold() {
        let mut p = Predictions::new(Task::Binary, 2, 1);
        p.add_probabilities(&[0.7, 0.2, 0.9]);
        let s = set(vec![0, 0, 1], 2, None);
        let rows = p.rows(&s, Some(0.8));
        assert_eq!(rows[0].predicted, vec![1]);
        assert_eq!(rows[0].predicted_at_threshold, Some(0));
        assert!((rows[1].confidence.unwrap() - 0.8).abs() < 1e-7);
        let rec = csv_record("test", "a", &rows[2], &s.classes, Some(0.8));
        assert_eq!(rec.len(), 8);
        assert_eq!(
            rec[5],
            (0.9f32 as f64).to_string(),
            "the f32 the metrics used"
        );
        assert_eq!(&rec[6..], ["0.8", "c1"]);
        let m = p.mistakes(&rows, 5);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].row.index, 0);
    }

    #[test]
    fn multilabel_mistakes_are_false_positives_and_negatives_per_label() {
        let mut p = Predictions::new(Task::Multilabel, 2, 1);
        p.add_probabilities(&[0.9, 0.1, 0.6, 0.3, 0.95, 0.8]);
        let s = set(vec![0, 0, 1], 2, Some(vec![0, 1, 0, 1, 1, 1]));
        let rows = p.rows(&s, None);
        assert_eq!(rows[0].predicted, vec![0]);
        assert_eq!(rows[0].truth, vec![1]);
        let m = p.mistakes(&rows, 1);
        let got: Vec<(usize, MistakeKind, usize)> =
            m.iter().map(|m| (m.class, m.kind, m.row.index)).collect();
        // label 0: false positives at 0.9 (image 0) and 0.6 (image 1), one kept
        // label 1: false negatives at 1 − 0.1 (image 0) and 1 − 0.3 (image 1), one kept
        assert_eq!(
            got,
            [
                (0, MistakeKind::FalsePositive, 0),
                (1, MistakeKind::FalseNegative, 0)
            ]
        );
        let rec = csv_record("val", "a", &rows[2], &s.classes, None);
        assert_eq!(&rec[2..4], ["c0;c1", "c0;c1"]);
    }
}
