//! Batch-level mixing on the normalised f32 batch (N×C×H×W) and its soft targets (N×K):
//! mixup and cutmix (timm's conventions: each sample is mixed with the batch reversed).

use super::sample::{below, beta, chance, Stream};
use super::spec::{AugmentSpec, MixSpec};
use crate::train::rng;

/// What was done to a batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mixed {
    None,
    /// `x = lam·x + (1 − lam)·x_reversed`, targets likewise.
    Mixup {
        lam: f32,
    },
    /// A box of the reversed batch pasted in; `lam` is the share of each image left unchanged.
    Cutmix {
        lam: f32,
        box_: CutBox,
    },
}

/// A rectangle of rows `y0..y1` and columns `x0..x1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CutBox {
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
}

/// How many whole samples both buffers hold (never more than `n`).
fn usable(x: &[f32], targets: &[f32], n: usize, sample_len: usize, classes: usize) -> usize {
    let by_x = x.len().checked_div(sample_len).unwrap_or(0);
    let by_t = targets.len().checked_div(classes).unwrap_or(0);
    n.min(by_x).min(by_t)
}

/// Mixes the targets of sample `i` with those of `n − 1 − i` by `lam`.
fn mix_targets(targets: &mut [f32], n: usize, classes: usize, lam: f32) {
    let orig = targets[..n * classes].to_vec();
    for i in 0..n {
        let j = n - 1 - i;
        for k in 0..classes {
            targets[i * classes + k] =
                lam * orig[i * classes + k] + (1.0 - lam) * orig[j * classes + k];
        }
    }
}

/// Mixup with weight `lam`: every sample and target row becomes `lam·own + (1 − lam)·partner`,
/// the partner of sample `i` being `n − 1 − i`.
pub fn mixup(
    x: &mut [f32],
    targets: &mut [f32],
    n: usize,
    sample_len: usize,
    classes: usize,
    lam: f32,
) {
    let n = usable(x, targets, n, sample_len, classes);
    let orig = x[..n * sample_len].to_vec();
    for i in 0..n {
        let j = n - 1 - i;
        let (own, partner) = (
            &orig[i * sample_len..(i + 1) * sample_len],
            &orig[j * sample_len..(j + 1) * sample_len],
        );
        for (k, v) in x[i * sample_len..(i + 1) * sample_len]
            .iter_mut()
            .enumerate()
        {
            *v = lam * own[k] + (1.0 - lam) * partner[k];
        }
    }
    mix_targets(targets, n, classes, lam);
}

/// timm's `rand_bbox`: a box of side `sqrt(1 − lam)` times the image's, centred uniformly,
/// clipped to the image.
pub fn cut_box(h: usize, w: usize, lam: f64, rng: &mut Stream) -> CutBox {
    let ratio = (1.0 - lam).max(0.0).sqrt();
    let (ch, cw) = ((h as f64 * ratio) as usize, (w as f64 * ratio) as usize);
    let cy = below(rng, h) as isize;
    let cx = below(rng, w) as isize;
    let clip = |v: isize, n: usize| v.clamp(0, n as isize) as usize;
    CutBox {
        y0: clip(cy - (ch / 2) as isize, h),
        y1: clip(cy + (ch / 2) as isize, h),
        x0: clip(cx - (cw / 2) as isize, w),
        x1: clip(cx + (cw / 2) as isize, w),
    }
}

/// Cutmix: pastes `b` of sample `n − 1 − i` into sample `i` (every channel) and mixes the
/// targets by the share of the image left unchanged, which it returns.
pub fn cutmix(
    x: &mut [f32],
    targets: &mut [f32],
    n: usize,
    (c, h, w): (usize, usize, usize),
    classes: usize,
    b: CutBox,
) -> f32 {
    let sample_len = c * h * w;
    let n = usable(x, targets, n, sample_len, classes);
    let (y1, x1) = (b.y1.min(h), b.x1.min(w));
    let area = y1.saturating_sub(b.y0) * x1.saturating_sub(b.x0);
    let lam = 1.0 - area as f32 / (h * w).max(1) as f32;
    let orig = x[..n * sample_len].to_vec();
    for i in 0..n {
        let j = n - 1 - i;
        for ch in 0..c {
            for y in b.y0..y1 {
                let row = (ch * h + y) * w;
                let (dst, src) = (i * sample_len + row, j * sample_len + row);
                x[dst + b.x0..dst + x1].copy_from_slice(&orig[src + b.x0..src + x1]);
            }
        }
    }
    mix_targets(targets, n, classes, lam);
    lam
}

/// Mixup and/or cutmix as the spec configures them; when both are given, each batch uses one
/// of them, chosen with even odds (timm's `switch_prob` of 0.5), then applied with its `p`.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchMix {
    mixup: Option<MixSpec>,
    cutmix: Option<MixSpec>,
    /// `(c, h, w)` of one sample.
    shape: (usize, usize, usize),
}

impl BatchMix {
    /// From `[augment]`; `shape` is one sample's `(c, h, w)` as the model sees it.
    pub fn new(spec: &AugmentSpec, shape: (usize, usize, usize)) -> BatchMix {
        BatchMix {
            mixup: spec.mixup.filter(|m| m.p > 0.0),
            cutmix: spec.cutmix.filter(|m| m.p > 0.0),
            shape,
        }
    }

    /// True when no batch is ever mixed.
    pub fn is_identity(&self) -> bool {
        self.mixup.is_none() && self.cutmix.is_none()
    }

    /// Mixes the batch `x` (`n` samples of the shape given to [`BatchMix::new`], normalised) and
    /// its `targets` (`n` rows of `classes` one-hot or multi-hot values) in place. Every random
    /// choice comes from `(seed, epoch, step)`, so it is reproducible.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &self,
        x: &mut [f32],
        targets: &mut [f32],
        n: usize,
        classes: usize,
        seed: u64,
        epoch: u64,
        step: u64,
    ) -> Mixed {
        if self.is_identity() || n < 2 {
            return Mixed::None;
        }
        let mut rng = rng::sample_stream(seed, "mix", epoch, step);
        let use_cutmix = match (self.mixup, self.cutmix) {
            (Some(_), Some(_)) => chance(&mut rng, 0.5),
            (None, Some(_)) => true,
            _ => false,
        };
        let m = if use_cutmix { self.cutmix } else { self.mixup };
        let Some(m) = m else { return Mixed::None };
        if !chance(&mut rng, m.p) {
            return Mixed::None;
        }
        let lam = beta(&mut rng, m.alpha, m.alpha);
        let (c, h, w) = self.shape;
        if use_cutmix {
            let b = cut_box(h, w, lam, &mut rng);
            let lam = cutmix(x, targets, n, (c, h, w), classes, b);
            Mixed::Cutmix { lam, box_: b }
        } else {
            let lam = lam as f32;
            mixup(x, targets, n, c * h * w, classes, lam);
            Mixed::Mixup { lam }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixup_of_two_one_hot_rows() {
        let mut x = vec![1.0, 1.0, 3.0, 3.0];
        let mut t = vec![1.0, 0.0, 0.0, 1.0];
        mixup(&mut x, &mut t, 2, 2, 2, 0.75);
        assert_eq!(x, vec![1.5, 1.5, 2.5, 2.5]);
        assert_eq!(t, vec![0.75, 0.25, 0.25, 0.75]);
    }

    #[test]
    fn cutmix_corrects_lambda_by_the_pasted_area() {
        // two 1×4×4 samples of 0s and 1s; a 2×2 box: 4 of 16 pixels replaced
        let mut x = [vec![0.0; 16], vec![1.0; 16]].concat();
        let mut t = vec![1.0, 0.0, 0.0, 1.0];
        let b = CutBox {
            y0: 1,
            y1: 3,
            x0: 0,
            x1: 2,
        };
        let lam = cutmix(&mut x, &mut t, 2, (1, 4, 4), 2, b);
        assert_eq!(lam, 0.75);
        assert_eq!(t, vec![0.75, 0.25, 0.25, 0.75]);
        let ones: f32 = x[..16].iter().sum();
        assert_eq!(ones, 4.0);
        assert_eq!(x[4], 1.0); // row 1, column 0
        assert_eq!(x[16 + 4], 0.0);
        assert_eq!(x[16 + 15], 1.0);
    }

    #[test]
    fn cut_boxes_stay_inside() {
        let mut r = rng::stream(0, "t", 0);
        for _ in 0..100 {
            let b = cut_box(10, 12, 0.3, &mut r);
            assert!(b.y0 <= b.y1 && b.y1 <= 10 && b.x0 <= b.x1 && b.x1 <= 12);
        }
    }

    #[test]
    fn batch_mix_is_reproducible_and_keeps_target_mass() {
        let spec = AugmentSpec {
            mixup: Some(MixSpec { alpha: 0.4, p: 1.0 }),
            cutmix: Some(MixSpec { alpha: 1.0, p: 1.0 }),
            ..AugmentSpec::default()
        };
        let mix = BatchMix::new(&spec, (1, 4, 4));
        let x0: Vec<f32> = (0..64).map(|v| v as f32).collect();
        let t0 = vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        let mut kinds = std::collections::BTreeSet::new();
        for step in 0..20 {
            let (mut x1, mut t1) = (x0.clone(), t0.clone());
            let (mut x2, mut t2) = (x0.clone(), t0.clone());
            let a = mix.apply(&mut x1, &mut t1, 4, 2, 9, 1, step);
            let b = mix.apply(&mut x2, &mut t2, 4, 2, 9, 1, step);
            assert_eq!(a, b);
            assert_eq!((x1, &t1), (x2, &t2));
            for row in t1.chunks(2) {
                assert!((row[0] + row[1] - 1.0).abs() < 1e-6);
            }
            kinds.insert(matches!(a, Mixed::Cutmix { .. }));
        }
        assert_eq!(kinds.len(), 2, "both kinds are used");
        let none = BatchMix::new(&AugmentSpec::default(), (1, 4, 4));
        let mut x = x0.clone();
        let mut t = t0.clone();
        assert_eq!(none.apply(&mut x, &mut t, 4, 2, 0, 0, 0), Mixed::None);
        assert_eq!(x, x0);
    }
}
