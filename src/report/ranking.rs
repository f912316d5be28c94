//! Ranking trials by their mean selection score and pairing each trial's per-job scores with the
//! best trial's, by (fold, repeat), for the corrected resampled t-test. Pure arithmetic.

use std::collections::BTreeMap;

use serde::Serialize;

use super::stats::corrected_resampled_t_test;

/// p-values at or above this are "not distinguishable from the best".
pub const SIGNIFICANCE: f64 = 0.05;

/// Where a score was measured: (fold, repeat); the fold is `None` without cross-validation.
pub type Slot = (Option<usize>, usize);

/// A trial's standing for ranking: whether it finished (only finished trials can be best) and
/// its mean selection score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Standing {
    pub finished: bool,
    pub mean: Option<f64>,
}

/// The order of `standings`, best first: finished trials before unfinished ones, then by mean
/// (higher first unless `higher_is_better` is false; no mean last), ties by position.
pub fn rank(standings: &[Standing], higher_is_better: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..standings.len()).collect();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (standings[a], standings[b]);
        sb.finished
            .cmp(&sa.finished)
            .then_with(|| match (sa.mean, sb.mean) {
                (Some(x), Some(y)) => {
                    if higher_is_better {
                        y.total_cmp(&x)
                    } else {
                        x.total_cmp(&y)
                    }
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .then(a.cmp(&b))
    });
    order
}

/// The scores of `a` and `b` measured in the same slots, in slot order.
pub fn pair(a: &BTreeMap<Slot, f64>, b: &BTreeMap<Slot, f64>) -> (Vec<f64>, Vec<f64>) {
    a.iter()
        .filter_map(|(slot, x)| b.get(slot).map(|y| (*x, *y)))
        .unzip()
}

/// A trial's paired test against the best trial (difference = trial − best).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Comparison {
    /// The t statistic of the corrected resampled t-test; null without a test.
    pub t: Option<f64>,
    pub df: Option<f64>,
    /// Two-sided p-value; null without a test.
    pub p_value: Option<f64>,
    /// p < 0.05: the trial differs from the best; null without a test.
    pub distinguishable: Option<bool>,
    /// Paired scores the test used.
    pub n: usize,
    /// Why there is no test, or "best" for the best trial itself.
    pub note: Option<String>,
}

impl Comparison {
    pub fn note(note: impl Into<String>) -> Self {
        Comparison {
            note: Some(note.into()),
            ..Comparison::default()
        }
    }
}

/// The corrected resampled t-test of `trial` against `best`, paired by slot, for `folds`-fold
/// cross-validation (test/train ratio `1/(folds − 1)`).
pub fn compare(
    trial: &BTreeMap<Slot, f64>,
    best: &BTreeMap<Slot, f64>,
    folds: usize,
) -> Comparison {
    if folds < 2 {
        return Comparison::note(
            "no test: it needs folds (a single validation split gives one score per trial)",
        );
    }
    if trial.is_empty() {
        return Comparison::note("no test: the trial has no finished job");
    }
    let (a, b) = pair(trial, best);
    if a.len() < 2 {
        return Comparison::note(format!(
            "no test: {} paired score(s), at least 2 needed",
            a.len()
        ));
    }
    match corrected_resampled_t_test(&a, &b, 1.0 / (folds as f64 - 1.0)) {
        Some(test) => Comparison {
            t: Some(test.t),
            df: Some(test.df),
            p_value: Some(test.p_value),
            distinguishable: Some(test.p_value < SIGNIFICANCE),
            n: test.n,
            note: None,
        },
        None => Comparison::note("no test: scores are not finite"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(finished: bool, mean: Option<f64>) -> Standing {
        Standing { finished, mean }
    }

    #[test]
    fn ranks_finished_trials_first_then_by_mean_in_the_metric_direction() {
        let st = [
            s(true, Some(0.90)),
            s(false, Some(0.99)),
            s(true, Some(0.95)),
            s(true, None),
            s(true, Some(0.95)),
        ];
        assert_eq!(rank(&st, true), vec![2, 4, 0, 3, 1]);
        // For loss, lower is better.
        assert_eq!(rank(&st, false), vec![0, 2, 4, 3, 1]);
        assert!(rank(&[], true).is_empty());
    }

    #[test]
    fn pairs_by_fold_and_repeat_whatever_the_order() {
        let a: BTreeMap<Slot, f64> = [
            ((Some(1), 0), 0.2),
            ((Some(0), 0), 0.1),
            ((Some(2), 0), 0.3),
        ]
        .into();
        let b: BTreeMap<Slot, f64> = [((Some(2), 0), 3.0), ((Some(0), 0), 1.0)].into();
        assert_eq!(pair(&a, &b), (vec![0.1, 0.3], vec![1.0, 3.0]));
    }

    #[test]
    fn compares_with_the_corrected_test_and_the_fold_ratio() {
        // The worked example of report::stats: 5 folds, ratio 1/4, t = 2.0919, p > 0.05.
        let best = [0.91, 0.93, 0.90, 0.94, 0.92];
        let other = [0.89, 0.92, 0.90, 0.91, 0.90];
        let slots = |v: &[f64]| -> BTreeMap<Slot, f64> {
            v.iter()
                .enumerate()
                .map(|(i, x)| ((Some(i), 0), *x))
                .collect()
        };
        let c = compare(&slots(&best), &slots(&other), 5);
        assert!((c.t.unwrap() - 2.091905).abs() < 1e-6);
        assert_eq!(c.df, Some(4.0));
        assert_eq!(c.n, 5);
        assert_eq!(c.distinguishable, Some(false));
        // A clearly worse trial is distinguishable.
        let worse = [0.50, 0.52, 0.49, 0.51, 0.50];
        let c = compare(&slots(&worse), &slots(&best), 5);
        assert!(c.t.unwrap() < 0.0 && c.p_value.unwrap() < 0.05);
        assert_eq!(c.distinguishable, Some(true));
        // Without folds there is no test.
        let single: BTreeMap<Slot, f64> = [((None, 0), 0.9)].into();
        let c = compare(&single, &single, 1);
        assert!(c.p_value.is_none() && c.note.unwrap().contains("needs folds"));
    }
}
