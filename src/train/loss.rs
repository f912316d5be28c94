//! Losses and batch targets: hard-label and soft-target cross entropy (optionally class-weighted)
//! for multiclass, BCE-with-logits with per-output positive/negative weights for binary and
//! multilabel, and the [`Objective`] that turns a spec and its training data into both.

use candle_core::{DType, Device, Result, Tensor, D};

use crate::data::image_set::ImageSet;
use crate::spec::positive::PositiveClassError;
use crate::spec::{ClassWeights, Spec, Task};

/// What a batch is trained towards.
#[derive(Clone, Debug)]
pub enum Targets {
    /// Class indices (u32, shape N): multiclass hard labels.
    Classes(Tensor),
    /// Class distributions (f32, N×K, rows summing to 1): label smoothing, mixup, cutmix.
    Soft(Tensor),
    /// Per-output targets in [0, 1] (f32, N×outputs): binary (one output) and multilabel (one
    /// output per label). Fractional values (mixed samples) are allowed.
    Binary(Tensor),
}

/// [`Targets`] in host memory, made on the batch loader's threads.
#[derive(Clone, Debug, PartialEq)]
pub enum HostTargets {
    Classes(Vec<u32>),
    Soft { rows: Vec<f32>, columns: usize },
    Binary { rows: Vec<f32>, columns: usize },
}

impl HostTargets {
    /// The rows of soft or per-output targets (to mix them); `None` for class indices.
    pub fn rows_mut(&mut self) -> Option<(&mut [f32], usize)> {
        match self {
            HostTargets::Classes(_) => None,
            HostTargets::Soft { rows, columns } | HostTargets::Binary { rows, columns } => {
                Some((rows, *columns))
            }
        }
    }

    pub fn into_targets(self, device: &Device) -> Result<Targets> {
        let matrix = |rows: Vec<f32>, columns: usize| {
            let n = rows.len() / columns.max(1);
            Tensor::from_vec(rows, (n, columns), device)
        };
        Ok(match self {
            HostTargets::Classes(labels) => {
                let n = labels.len();
                Targets::Classes(Tensor::from_vec(labels, n, device)?)
            }
            HostTargets::Soft { rows, columns } => Targets::Soft(matrix(rows, columns)?),
            HostTargets::Binary { rows, columns } => Targets::Binary(matrix(rows, columns)?),
        })
    }
}

/// The summed weights of a batch as a divisor: a batch whose samples all have weight 0 (a class
/// weighted 0) has loss 0, not 0/0.
fn positive(weight_sum: Tensor) -> Result<Tensor> {
    weight_sum.maximum(f32::MIN_POSITIVE as f64)
}

/// Mean cross entropy of `logits` (N×K) against class indices `labels` (u32, N). With `weights`
/// (f32, K) each sample counts with its class's weight and the sum is divided by the summed
/// weights (PyTorch's `CrossEntropyLoss(weight=…)`).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, weights: Option<&Tensor>) -> Result<Tensor> {
    match weights {
        None => candle_nn::loss::cross_entropy(logits, labels),
        Some(w) => {
            let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
            let picked = logp.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?;
            let w = w.index_select(labels, 0)?;
            let total = (picked * &w)?.sum_all()?.neg()?;
            total.broadcast_div(&positive(w.sum_all()?)?)
        }
    }
}

/// Cross entropy −Σₖ tₖ·log softmax(logits)ₖ for soft targets `targets` (f32, N×K), averaged
/// over the batch. With `weights` (f32, K) a weighted mean like [`cross_entropy`]'s: the sum of
/// −Σₖ wₖ·tₖ·log softmax(logits)ₖ divided by Σᵢ Σₖ wₖ·tᵢₖ, so that one-hot rows give exactly the
/// hard-label loss (label smoothing or mixing do not change the loss's scale).
pub fn soft_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    match weights {
        Some(w) => {
            let t = targets.broadcast_mul(&w.unsqueeze(0)?)?;
            let total = (&t * logp)?.sum_all()?.neg()?;
            total.broadcast_div(&positive(t.sum_all()?)?)
        }
        None => (targets * logp)?.sum(D::Minus1)?.mean_all()?.neg(),
    }
}

/// Mean over every element of the binary cross entropy with logits, computed stably as
/// wₚ·y·softplus(−x) + wₙ·(1−y)·softplus(x) with softplus(x) = max(x, 0) + log(1 + e^−|x|).
/// `logits` and `targets` are f32 N×O; `weights` = (positive, negative) weights, f32 O each.
pub fn bce_with_logits(
    logits: &Tensor,
    targets: &Tensor,
    weights: Option<(&Tensor, &Tensor)>,
) -> Result<Tensor> {
    let log1p = logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    let softplus_pos = (logits.relu()? + &log1p)?; // −log(1 − σ(x))
                                                   // softplus(−x) = softplus(x) − x. Written as relu(−x) + log1p, its gradient at x = 0 would be
                                                   // −1.5 instead of σ(0) − 1 = −0.5: candle takes both relu′(0) and |·|′(0) as 1.
    let softplus_neg = (&softplus_pos - logits)?; // −log σ(x)
    let negatives = targets.affine(-1.0, 1.0)?;
    let (p, n) = match weights {
        Some((wp, wn)) => (
            targets.broadcast_mul(&wp.unsqueeze(0)?)?,
            negatives.broadcast_mul(&wn.unsqueeze(0)?)?,
        ),
        None => (targets.clone(), negatives),
    };
    ((p * softplus_neg)? + (n * softplus_pos)?)?.mean_all()
}

/// One-hot rows for `labels` over `k` classes, smoothed: (1 − ε)·onehot + ε/k (row-major N×K).
pub fn smoothed_one_hot(labels: &[u32], k: usize, smoothing: f32) -> Vec<f32> {
    let mut out = vec![smoothing / k as f32; labels.len() * k];
    for (row, &l) in out.chunks_exact_mut(k).zip(labels) {
        if let Some(v) = row.get_mut(l as usize) {
            *v += 1.0 - smoothing;
        }
    }
    out
}

/// The task's head and loss: how many outputs the network has, how a batch's targets are built,
/// and the loss (with the spec's class weights and label smoothing).
#[derive(Clone, Debug, PartialEq)]
pub struct Objective {
    pub task: Task,
    pub num_classes: usize,
    /// The binary task's positive class (index into the classes); 0 otherwise.
    pub positive: usize,
    /// Multiclass label smoothing ε.
    pub smoothing: f32,
    /// Multiclass: one weight per class.
    pub class_weights: Option<Vec<f32>>,
    /// Binary and multilabel: (positive, negative) weights per output.
    pub bce_weights: Option<(Vec<f32>, Vec<f32>)>,
}

impl Objective {
    /// The objective of `spec` with class weights computed from `train` ("balanced"); an error
    /// when the binary task's positive class cannot be determined.
    pub fn new(
        spec: &Spec,
        classes: &[String],
        train: &ImageSet,
    ) -> std::result::Result<Objective, PositiveClassError> {
        let task = spec.task;
        let k = classes.len();
        let positive = positive_index(spec, classes)?;
        let mut o = Objective {
            task,
            num_classes: k,
            positive,
            smoothing: spec.train.label_smoothing as f32,
            class_weights: None,
            bce_weights: None,
        };
        let n = train.len() as f64;
        let balanced = |count: f64, parts: f64| {
            if count > 0.0 {
                (n / (parts * count)) as f32
            } else {
                1.0
            }
        };
        match (&spec.train.class_weights, task) {
            (ClassWeights::None, _) => {}
            (ClassWeights::Balanced, Task::Multiclass) => {
                let counts = train.class_counts();
                o.class_weights = Some(
                    (0..k)
                        .map(|c| balanced(counts.get(c).copied().unwrap_or(0) as f64, k as f64))
                        .collect(),
                );
            }
            (ClassWeights::Fixed(w), Task::Multiclass) => {
                o.class_weights = Some(w.iter().map(|&v| v as f32).collect());
            }
            (ClassWeights::Balanced, Task::Binary) => {
                let pos = train
                    .labels
                    .iter()
                    .filter(|&&l| l as usize == positive)
                    .count() as f64;
                o.bce_weights = Some((vec![balanced(pos, 2.0)], vec![balanced(n - pos, 2.0)]));
            }
            (ClassWeights::Fixed(w), Task::Binary) => {
                let at = |i: usize| w.get(i).copied().unwrap_or(1.0) as f32;
                o.bce_weights = Some((vec![at(positive)], vec![at(1 - positive.min(1))]));
            }
            (ClassWeights::Balanced, Task::Multilabel) => {
                let pos = train.label_counts();
                o.bce_weights = Some((
                    pos.iter().map(|&p| balanced(p as f64, 2.0)).collect(),
                    pos.iter().map(|&p| balanced(n - p as f64, 2.0)).collect(),
                ));
            }
            (ClassWeights::Fixed(w), Task::Multilabel) => {
                o.bce_weights = Some((w.iter().map(|&v| v as f32).collect(), vec![1.0; k]));
            }
        }
        Ok(o)
    }

    /// The objective a trained model is evaluated with: [`Objective::unweighted`] needs neither
    /// the training data's class counts nor the smoothing.
    pub fn for_evaluation(
        spec: &Spec,
        classes: &[String],
    ) -> std::result::Result<Objective, PositiveClassError> {
        Ok(Objective {
            task: spec.task,
            num_classes: classes.len(),
            positive: positive_index(spec, classes)?,
            smoothing: 0.0,
            class_weights: None,
            bce_weights: None,
        })
    }

    /// The same objective without class weights or smoothing: the loss reported on evaluation.
    pub fn unweighted(&self) -> Objective {
        Objective {
            smoothing: 0.0,
            class_weights: None,
            bce_weights: None,
            ..self.clone()
        }
    }

    /// Outputs of the network's head: 1 for binary, one per class otherwise.
    pub fn outputs(&self) -> usize {
        match self.task {
            Task::Binary => 1,
            _ => self.num_classes,
        }
    }

    /// The targets of images `indices` of `set`: class indices (multiclass; smoothed one-hot
    /// rows with label smoothing), or 0/1 per output (binary: the positive class; multilabel:
    /// the image's labels).
    pub fn targets(&self, set: &ImageSet, indices: &[usize], device: &Device) -> Result<Targets> {
        self.host_targets(set, indices, false).into_targets(device)
    }

    /// The columns of a row of soft or per-output targets: the classes, or 1 for binary.
    pub fn target_columns(&self) -> usize {
        match self.task {
            Task::Binary => 1,
            Task::Multiclass | Task::Multilabel => self.num_classes,
        }
    }

    /// Like [`Objective::targets`], in host memory. With `rows`, multiclass targets are always
    /// rows of class probabilities (one-hot, or smoothed), so that batches can be mixed.
    pub fn host_targets(&self, set: &ImageSet, indices: &[usize], rows: bool) -> HostTargets {
        let n = indices.len();
        let labels: Vec<u32> = indices.iter().map(|&i| set.labels[i]).collect();
        let k = self.num_classes;
        match self.task {
            Task::Multiclass if self.smoothing > 0.0 || rows => HostTargets::Soft {
                rows: smoothed_one_hot(&labels, k, self.smoothing),
                columns: k,
            },
            Task::Multiclass => HostTargets::Classes(labels),
            Task::Binary => HostTargets::Binary {
                rows: labels
                    .iter()
                    .map(|&l| (l as usize == self.positive) as u8 as f32)
                    .collect(),
                columns: 1,
            },
            Task::Multilabel => {
                let mut rows = Vec::with_capacity(n * k);
                for &i in indices {
                    rows.extend(set.label_set(i).iter().map(|&v| v as f32));
                }
                HostTargets::Binary { rows, columns: k }
            }
        }
    }

    /// The mean loss of `logits` against `targets`, with this objective's weights.
    pub fn loss(&self, logits: &Tensor, targets: &Targets) -> Result<Tensor> {
        let device = logits.device();
        let vec = |v: &[f32]| Tensor::from_slice(v, v.len(), device);
        match targets {
            Targets::Classes(y) => match &self.class_weights {
                Some(w) => cross_entropy(logits, y, Some(&vec(w)?)),
                None => cross_entropy(logits, y, None),
            },
            Targets::Soft(t) => match &self.class_weights {
                Some(w) => soft_cross_entropy(logits, t, Some(&vec(w)?)),
                None => soft_cross_entropy(logits, t, None),
            },
            Targets::Binary(t) => {
                let t = t.to_dtype(DType::F32)?;
                match &self.bce_weights {
                    Some((wp, wn)) => bce_with_logits(logits, &t, Some((&vec(wp)?, &vec(wn)?))),
                    None => bce_with_logits(logits, &t, None),
                }
            }
        }
    }
}

/// The binary task's positive class (see [`crate::spec::positive`]); 0 for other tasks.
pub fn positive_index(
    spec: &Spec,
    classes: &[String],
) -> std::result::Result<usize, PositiveClassError> {
    if spec.task != Task::Binary {
        return Ok(0);
    }
    crate::spec::positive::positive_index(classes, spec.data.positive_class.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(v: &[f32], rows: usize) -> Tensor {
        Tensor::from_slice(v, (rows, v.len() / rows), &Device::Cpu).unwrap()
    }

    fn scalar(t: Tensor) -> f64 {
        t.to_scalar::<f32>().unwrap() as f64
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() < tol
    }

    #[test]
    fn bce_matches_hand_computed_values_and_stays_finite() {
        // −[y log σ(x) + (1−y) log(1−σ(x))] for (x, y) = (0, 1), (2, 0), (−1, 1), (3, 1)
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let want =
            (-(sig(0.0)).ln() - (1.0 - sig(2.0)).ln() - sig(-1.0).ln() - sig(3.0).ln()) / 4.0;
        let got = scalar(
            bce_with_logits(
                &t2(&[0.0, 2.0, -1.0, 3.0], 4),
                &t2(&[1.0, 0.0, 1.0, 1.0], 4),
                None,
            )
            .unwrap(),
        );
        assert!(close(got, want, 1e-6), "{got} vs {want}");
        // ln 2 at x = 0
        let got = scalar(bce_with_logits(&t2(&[0.0], 1), &t2(&[0.0], 1), None).unwrap());
        assert!(close(got, std::f64::consts::LN_2, 1e-6));
        // huge logits: no overflow; a confident mistake costs |x|
        let got =
            scalar(bce_with_logits(&t2(&[200.0, -200.0], 2), &t2(&[0.0, 1.0], 2), None).unwrap());
        assert!(close(got, 200.0, 1e-3), "{got}");
    }

    #[test]
    fn bce_weights_scale_positives_and_negatives() {
        // two outputs: positive weights (2, 1), negative weights (1, 3)
        let x = t2(&[0.0, 0.0, 0.0, 0.0], 2);
        let y = t2(&[1.0, 0.0, 0.0, 1.0], 2);
        let wp = Tensor::from_slice(&[2f32, 1.0], 2, &Device::Cpu).unwrap();
        let wn = Tensor::from_slice(&[1f32, 3.0], 2, &Device::Cpu).unwrap();
        let got = scalar(bce_with_logits(&x, &y, Some((&wp, &wn))).unwrap());
        // elements: y=1 w 2, y=0 w 3, y=0 w 1, y=1 w 1 → (2+3+1+1)·ln2/4
        assert!(close(got, 7.0 * std::f64::consts::LN_2 / 4.0, 1e-6));
    }

    #[test]
    fn bce_gradient_is_sigmoid_minus_target() {
        let x = candle_core::Var::from_slice(&[0.5f32, -1.0, 2.0], (3, 1), &Device::Cpu).unwrap();
        let y = t2(&[1.0, 0.0, 0.0], 3);
        let loss = bce_with_logits(x.as_tensor(), &y, None).unwrap();
        let g = loss.backward().unwrap();
        let grad: Vec<f32> = g
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for ((gv, xv), yv) in grad.iter().zip([0.5f64, -1.0, 2.0]).zip([1.0, 0.0, 0.0]) {
            let want = (1.0 / (1.0 + (-xv).exp()) - yv) / 3.0;
            assert!(close(*gv as f64, want, 1e-6), "{gv} vs {want}");
        }
    }

    #[test]
    fn bce_gradient_at_zero_logits() {
        // a zero logit (a zero-initialised head, dead features) is where relu and abs are kinked
        let x = candle_core::Var::from_slice(&[0.0f32, 0.0], (2, 1), &Device::Cpu).unwrap();
        let y = t2(&[1.0, 0.0], 2);
        let g = bce_with_logits(x.as_tensor(), &y, None)
            .unwrap()
            .backward()
            .unwrap();
        let grad: Vec<f32> = g
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // (σ(0) − y) / 2
        assert!(close(grad[0] as f64, -0.25, 1e-6), "{grad:?}");
        assert!(close(grad[1] as f64, 0.25, 1e-6), "{grad:?}");
    }

    #[test]
    fn soft_targets_agree_with_hard_labels_and_smoothing() {
        let logits = t2(&[1.0, 2.0, 0.5, 0.1, -1.0, 3.0], 2);
        let labels = Tensor::from_slice(&[1u32, 2], 2, &Device::Cpu).unwrap();
        let hard = scalar(cross_entropy(&logits, &labels, None).unwrap());
        let one_hot = t2(&smoothed_one_hot(&[1, 2], 3, 0.0), 2);
        let soft = scalar(soft_cross_entropy(&logits, &one_hot, None).unwrap());
        assert!(close(hard, soft, 1e-6));
        // smoothing ε = 0.1 over 3 classes: targets 0.0333…, 0.9333…
        let s = smoothed_one_hot(&[1], 3, 0.1);
        assert!(close(s[0] as f64, 0.1 / 3.0, 1e-7) && close(s[1] as f64, 0.9 + 0.1 / 3.0, 1e-7));
        // row 0 logits (1, 2, 0.5): −Σ t log softmax by hand
        let lse = (1f64.exp() + 2f64.exp() + 0.5f64.exp()).ln();
        let want =
            -(s[0] as f64 * (1.0 - lse) + s[1] as f64 * (2.0 - lse) + s[2] as f64 * (0.5 - lse));
        let got = scalar(soft_cross_entropy(&t2(&[1.0, 2.0, 0.5], 1), &t2(&s, 1), None).unwrap());
        assert!(close(got, want, 1e-6), "{got} vs {want}");
    }

    #[test]
    fn weighted_cross_entropy_is_a_weighted_mean() {
        let logits = t2(&[1.0, 2.0, 0.5, 0.1, -1.0, 3.0], 2);
        let labels = Tensor::from_slice(&[1u32, 2], 2, &Device::Cpu).unwrap();
        let per = |row: [f64; 3], l: usize| {
            let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            lse - row[l]
        };
        let (a, b) = (per([1.0, 2.0, 0.5], 1), per([0.1, -1.0, 3.0], 2));
        let w = Tensor::from_slice(&[1f32, 2.0, 0.5], 3, &Device::Cpu).unwrap();
        let got = scalar(cross_entropy(&logits, &labels, Some(&w)).unwrap());
        assert!(close(got, (2.0 * a + 0.5 * b) / 2.5, 1e-6));
        // one-hot rows (mixing on, label smoothing off) give the same weighted mean
        let one_hot = t2(&smoothed_one_hot(&[1, 2], 3, 0.0), 2);
        let soft = scalar(soft_cross_entropy(&logits, &one_hot, Some(&w)).unwrap());
        assert!(close(soft, got, 1e-6), "{soft} vs {got}");
        // smoothed rows: Σ wₖtₖ(−log pₖ) over Σ wₖtₖ
        let s = smoothed_one_hot(&[1, 2], 3, 0.3);
        let rows = [[1.0, 2.0, 0.5], [0.1, -1.0, 3.0]];
        let wv = [1.0, 2.0, 0.5];
        let (mut num, mut den) = (0.0, 0.0);
        for (i, row) in rows.iter().enumerate() {
            let lse = row.iter().map(|v: &f64| v.exp()).sum::<f64>().ln();
            for c in 0..3 {
                let wt = wv[c] * s[i * 3 + c] as f64;
                num += wt * (lse - row[c]);
                den += wt;
            }
        }
        let soft = scalar(soft_cross_entropy(&logits, &t2(&s, 2), Some(&w)).unwrap());
        assert!(close(soft, num / den, 1e-6), "{soft} vs {}", num / den);
    }

    #[test]
    fn a_batch_of_zero_weight_classes_has_loss_zero() {
        // class 0 weighted 0, and the batch holds only class 0 (e.g. batch_size = 1)
        let logits =
            candle_core::Var::from_slice(&[1.0f32, 2.0, 0.5], (1, 3), &Device::Cpu).unwrap();
        let labels = Tensor::from_slice(&[0u32], 1, &Device::Cpu).unwrap();
        let w = Tensor::from_slice(&[0f32, 1.0, 1.0], 3, &Device::Cpu).unwrap();
        let hard = cross_entropy(logits.as_tensor(), &labels, Some(&w)).unwrap();
        let soft = soft_cross_entropy(
            logits.as_tensor(),
            &t2(&smoothed_one_hot(&[0], 3, 0.0), 1),
            Some(&w),
        )
        .unwrap();
        for loss in [hard, soft] {
            assert_eq!(scalar(loss.clone()), 0.0);
            let g = loss.backward().unwrap();
            let grad: Vec<f32> = g
                .get(logits.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(grad.iter().all(|v| *v == 0.0), "{grad:?}");
        }
    }

    fn spec(task: &str, data: &str, train: &str) -> Spec {
        let text = format!(
            "name = \"t\"\ntask = \"{task}\"\n[data]\n{data}\nimage_size = [1, 1]\n[model]\narchitecture = \"mlp\"\nlayers = []\n[train]\n{train}\n"
        );
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        crate::spec::parse(&text, crate::spec::Origin::File("t.toml".into()), base, &[])
            .unwrap()
            .base
    }

    fn set(labels: Vec<u32>, classes: &[&str], label_sets: Option<Vec<u8>>) -> ImageSet {
        ImageSet {
            channels: 1,
            height: 1,
            width: 1,
            pixels: vec![0; labels.len()],
            labels,
            classes: classes.iter().map(|c| c.to_string()).collect(),
            groups: None,
            label_sets,
        }
    }

    const CSV: &str = "format = \"csv\"\ntrain = \"Cargo.toml\"";

    #[test]
    fn binary_targets_follow_the_positive_class_and_balanced_weights() {
        let s = set(vec![0, 0, 0, 1], &["a", "b"], None);
        let names = s.classes.clone();
        let o = Objective::new(
            &spec(
                "binary",
                &format!("{CSV}\npositive_class = \"b\""),
                "class_weights = \"balanced\"",
            ),
            &names,
            &s,
        )
        .unwrap();
        assert_eq!((o.positive, o.outputs()), (1, 1));
        // n / (2 · count): positives 4/2 = 2, negatives 4/6
        let (wp, wn) = o.bce_weights.clone().unwrap();
        assert_eq!(wp, vec![2.0]);
        assert!((wn[0] - 4.0 / 6.0).abs() < 1e-6);
        let Targets::Binary(t) = o.targets(&s, &[3, 0], &Device::Cpu).unwrap() else {
            panic!("binary targets")
        };
        assert_eq!(t.to_vec2::<f32>().unwrap(), vec![vec![1.0], vec![0.0]]);
        // positive class "a": the targets flip; fixed weights are given in class order
        let o = Objective::new(
            &spec(
                "binary",
                &format!("{CSV}\nclasses = [\"a\", \"b\"]\npositive_class = \"a\""),
                "class_weights = [3.0, 1.0]",
            ),
            &names,
            &s,
        )
        .unwrap();
        assert_eq!(o.positive, 0);
        assert_eq!(o.bce_weights, Some((vec![3.0], vec![1.0])));
        let Targets::Binary(t) = o.targets(&s, &[3, 0], &Device::Cpu).unwrap() else {
            panic!("binary targets")
        };
        assert_eq!(t.to_vec2::<f32>().unwrap(), vec![vec![0.0], vec![1.0]]);
    }

    #[test]
    fn multiclass_balanced_weights_and_smoothed_targets() {
        let s = set(vec![0, 0, 0, 1, 2, 2], &["a", "b", "c"], None);
        let names = s.classes.clone();
        let o = Objective::new(
            &spec(
                "multiclass",
                CSV,
                "class_weights = \"balanced\"\nlabel_smoothing = 0.3",
            ),
            &names,
            &s,
        )
        .unwrap();
        // n / (k · count) = 6 / (3 · count)
        assert_eq!(o.class_weights, Some(vec![6.0 / 9.0, 2.0, 1.0]));
        let Targets::Soft(t) = o.targets(&s, &[3], &Device::Cpu).unwrap() else {
            panic!("soft targets")
        };
        let row = &t.to_vec2::<f32>().unwrap()[0];
        assert!((row[0] - 0.1).abs() < 1e-6 && (row[1] - 0.8).abs() < 1e-6);
        let plain = Objective::new(&spec("multiclass", CSV, ""), &names, &s).unwrap();
        assert!(matches!(
            plain.targets(&s, &[3], &Device::Cpu).unwrap(),
            Targets::Classes(_)
        ));
    }

    #[test]
    fn multilabel_targets_and_weights() {
        // rows {a}, {a, b}, {}, {a}
        let s = set(
            vec![0, 0, 0, 0],
            &["a", "b"],
            Some(vec![1, 0, 1, 1, 0, 0, 1, 0]),
        );
        let names = s.classes.clone();
        let o = Objective::new(
            &spec("multilabel", CSV, "class_weights = \"balanced\""),
            &names,
            &s,
        )
        .unwrap();
        assert_eq!(o.outputs(), 2);
        // a: 3 positives → 4/6, negatives 1 → 2; b: 1 positive → 2, negatives 3 → 4/6
        let (wp, wn) = o.bce_weights.clone().unwrap();
        assert!((wp[0] - 4.0 / 6.0).abs() < 1e-6 && wp[1] == 2.0);
        assert!(wn[0] == 2.0 && (wn[1] - 4.0 / 6.0).abs() < 1e-6);
        let Targets::Binary(t) = o.targets(&s, &[1, 2], &Device::Cpu).unwrap() else {
            panic!("multi-hot targets")
        };
        assert_eq!(
            t.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 1.0], vec![0.0, 0.0]]
        );
        let logits = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
        let plain = scalar(o.unweighted().loss(&logits, &Targets::Binary(t)).unwrap());
        assert!((plain - std::f64::consts::LN_2).abs() < 1e-6);
    }
}
