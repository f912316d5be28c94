//! Deterministic seeded cross-validation folds: plain k-fold, stratified k-fold and group k-fold (ChaCha8).

use std::collections::{BTreeMap, HashMap};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// How folds are formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FoldMethod {
    #[serde(rename = "kfold")]
    KFold,
    #[serde(rename = "stratified-kfold")]
    StratifiedKFold,
    #[serde(rename = "group-kfold")]
    GroupKFold,
}

/// The validation indices of each fold (each sorted ascending); every index appears in exactly one fold.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Folds {
    pub method: FoldMethod,
    pub k: usize,
    pub seed: u64,
    pub validation: Vec<Vec<usize>>,
}

impl Folds {
    /// Training indices of fold `i` (all indices `0..n` not in `validation[i]`), sorted.
    /// For `i >= validation.len()` that is all of `0..n`; validation indices `>= n` are ignored.
    pub fn train(&self, i: usize, n: usize) -> Vec<usize> {
        let mut held = vec![false; n];
        if let Some(val) = self.validation.get(i) {
            for &j in val {
                if let Some(h) = held.get_mut(j) {
                    *h = true;
                }
            }
        }
        (0..n).filter(|&j| !held[j]).collect()
    }
}

/// Why folds cannot be formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    /// Fewer than two folds asked for.
    #[error("cross-validation needs at least 2 folds, not {k}")]
    TooFewFolds { k: usize },

    /// More folds than items: some fold would be empty.
    #[error("cannot form {k} folds from {n} item(s): every fold needs at least one item")]
    TooFewItems { k: usize, n: usize },

    /// Stratified folds over fewer items than folds: some fold would be empty.
    #[error("cannot form {k} stratified folds from {n} item(s): every fold needs at least one item (classes with fewer than {k} members: {small})")]
    TooFewItemsStratified { k: usize, n: usize, small: String },

    /// Group k-fold with fewer distinct groups than folds.
    #[error("cannot form {k} group folds from {groups} distinct group(s) ({n} item(s)): a group is never split across folds, so at least {k} groups are needed")]
    TooFewGroups { k: usize, groups: usize, n: usize },
}

fn check_k(k: usize, n: usize) -> Result<(), FoldError> {
    if k < 2 {
        return Err(FoldError::TooFewFolds { k });
    }
    if k > n {
        return Err(FoldError::TooFewItems { k, n });
    }
    Ok(())
}

/// Sorts every fold and wraps them up.
fn finish(method: FoldMethod, k: usize, seed: u64, mut validation: Vec<Vec<usize>>) -> Folds {
    for fold in &mut validation {
        fold.sort_unstable();
    }
    Folds {
        method,
        k,
        seed,
        validation,
    }
}

/// Plain k-fold over `0..n`: the indices are shuffled (ChaCha8 seeded with `seed`) and cut into
/// `k` consecutive runs; the first `n % k` folds hold one item more than the others.
pub fn kfold(n: usize, k: usize, seed: u64) -> Result<Folds, FoldError> {
    check_k(k, n)?;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    order.shuffle(&mut rng);
    let (base, extra) = (n / k, n % k);
    let mut validation = Vec::with_capacity(k);
    let mut rest = order.as_slice();
    for f in 0..k {
        let size = base + usize::from(f < extra);
        let (fold, tail) = rest.split_at(size);
        validation.push(fold.to_vec());
        rest = tail;
    }
    Ok(finish(FoldMethod::KFold, k, seed, validation))
}

/// Members per class, by label (ascending), indices in ascending order.
fn per_class(labels: &[u32]) -> BTreeMap<u32, Vec<usize>> {
    let mut classes: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        classes.entry(l).or_default().push(i);
    }
    classes
}

/// The classes (label, member count) that have at least one but fewer than `k` members: in
/// stratified k-fold they cannot appear in every fold (scikit-learn warns about this). Labels are
/// ascending; every label present counts, whatever the class list.
pub fn small_classes(labels: &[u32], k: usize) -> Vec<(u32, usize)> {
    per_class(labels)
        .into_iter()
        .map(|(l, members)| (l, members.len()))
        .filter(|&(_, count)| count < k)
        .collect()
}

/// Stratified k-fold over `0..labels.len()`, like scikit-learn's `StratifiedKFold(shuffle=True)`:
/// each class's members are shuffled (ChaCha8 seeded with `seed`, one stream per label as in
/// [`stratified_split`](super::split::stratified_split), so a class's order does not depend on the
/// other classes), then the classes are dealt in label order, one item at a time, round-robin over
/// the folds, the dealing continuing from one class to the next. So every fold holds
/// ⌊count/k⌋ or ⌈count/k⌉ of each class and fold sizes differ by at most 1.
///
/// A class with fewer than `k` members is allowed (it is missing from some folds; see
/// [`small_classes`] to warn about it). It is an error only when some fold would be empty, which
/// happens exactly when there are fewer items than folds. Every label present is stratified,
/// including labels `>= num_classes` (as classes of their own, as `stratified_split` does), so
/// `num_classes` does not change the result.
pub fn stratified_kfold(
    labels: &[u32],
    num_classes: usize,
    k: usize,
    seed: u64,
) -> Result<Folds, FoldError> {
    let _ = num_classes;
    let n = labels.len();
    if k < 2 {
        return Err(FoldError::TooFewFolds { k });
    }
    if k > n {
        let small = small_classes(labels, k);
        let small = if small.is_empty() {
            "none".to_string()
        } else {
            small
                .iter()
                .map(|(l, c)| format!("class {l}: {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(FoldError::TooFewItemsStratified { k, n, small });
    }
    let mut validation: Vec<Vec<usize>> = vec![Vec::with_capacity(n / k + 1); k];
    let mut next = 0usize;
    for (label, mut members) in per_class(labels) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(label as u64);
        members.shuffle(&mut rng);
        for i in members {
            validation[next].push(i);
            next = (next + 1) % k;
        }
    }
    Ok(finish(FoldMethod::StratifiedKFold, k, seed, validation))
}

/// Iterative stratification (Sechidis, Tsoumakas & Vlahavas 2011) of the N×K multi-hot
/// `label_sets` into subsets of relative sizes `proportions`: returns each item's subset.
///
/// Every subset wants `proportion × n` items and, per label, `proportion × (items with it)`.
/// Repeatedly the label with the fewest unassigned items is taken; its items (in a seeded
/// shuffle) each go to the subset that most wants that label, ties broken by the subset that most
/// wants items, then by the lowest index; each assignment lowers the wants of all the item's
/// labels. Items without labels go last, to the subset that most wants items.
pub fn iterative_stratification(
    label_sets: &[u8],
    num_labels: usize,
    proportions: &[f64],
    seed: u64,
) -> Vec<usize> {
    let k = num_labels;
    let n = label_sets.len().checked_div(k).unwrap_or(0);
    let m = proportions.len();
    let mut assigned: Vec<Option<usize>> = vec![None; n];
    let mut want_items: Vec<f64> = proportions.iter().map(|p| p * n as f64).collect();
    let counts: Vec<usize> = (0..k)
        .map(|l| (0..n).filter(|&i| label_sets[i * k + l] != 0).count())
        .collect();
    let mut want_label: Vec<Vec<f64>> = proportions
        .iter()
        .map(|p| counts.iter().map(|&c| p * c as f64).collect())
        .collect();
    let mut members: Vec<Vec<usize>> = (0..k)
        .map(|l| (0..n).filter(|&i| label_sets[i * k + l] != 0).collect())
        .collect();
    for (l, list) in members.iter_mut().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(l as u64);
        list.shuffle(&mut rng);
    }
    let best = |scores: &dyn Fn(usize) -> (f64, f64)| -> usize {
        let mut pick = 0;
        for j in 1..m {
            let (a, b) = scores(j);
            let (pa, pb) = scores(pick);
            if a > pa || (a == pa && b > pb) {
                pick = j;
            }
        }
        pick
    };
    loop {
        // the label with the fewest unassigned items (at least one)
        let mut label = None;
        let mut fewest = usize::MAX;
        for (l, list) in members.iter().enumerate() {
            let left = list.iter().filter(|&&i| assigned[i].is_none()).count();
            if left > 0 && left < fewest {
                fewest = left;
                label = Some(l);
            }
        }
        let Some(l) = label else { break };
        let items: Vec<usize> = members[l]
            .iter()
            .copied()
            .filter(|&i| assigned[i].is_none())
            .collect();
        for i in items {
            let j = best(&|j| (want_label[j][l], want_items[j]));
            assigned[i] = Some(j);
            want_items[j] -= 1.0;
            for (c, w) in want_label[j].iter_mut().enumerate() {
                if label_sets[i * k + c] != 0 {
                    *w -= 1.0;
                }
            }
        }
        members[l].clear();
    }
    let mut rest: Vec<usize> = (0..n).filter(|&i| assigned[i].is_none()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::MAX);
    rest.shuffle(&mut rng);
    for i in rest {
        let j = best(&|j| (want_items[j], 0.0));
        assigned[i] = Some(j);
        want_items[j] -= 1.0;
    }
    assigned.into_iter().map(|a| a.unwrap_or(0)).collect()
}

/// Stratified k-fold for multilabel data: [`iterative_stratification`] into `k` equal parts.
pub fn multilabel_stratified_kfold(
    label_sets: &[u8],
    num_labels: usize,
    k: usize,
    seed: u64,
) -> Result<Folds, FoldError> {
    let n = label_sets.len().checked_div(num_labels).unwrap_or(0);
    check_k(k, n)?;
    let parts = iterative_stratification(label_sets, num_labels, &vec![1.0 / k as f64; k], seed);
    let mut validation = vec![Vec::new(); k];
    for (i, j) in parts.into_iter().enumerate() {
        validation[j].push(i);
    }
    if validation.iter().any(Vec::is_empty) {
        return Err(FoldError::TooFewItems { k, n });
    }
    Ok(finish(FoldMethod::StratifiedKFold, k, seed, validation))
}

/// Group k-fold over `0..groups.len()`, like scikit-learn's `GroupKFold`: no group is split across
/// folds. The distinct groups are taken largest first and each goes to the fold that currently
/// holds the fewest items (the lowest-numbered such fold on a tie).
///
/// Ties between groups of equal size are broken by the seed: the distinct groups are listed in
/// name order, shuffled (ChaCha8 seeded with `seed`), then stably sorted by size, largest first.
/// The result therefore does not depend on the order of the rows, only on their groups; when all
/// group sizes differ, the seed has no effect.
pub fn group_kfold(groups: &[String], k: usize, seed: u64) -> Result<Folds, FoldError> {
    let n = groups.len();
    if k < 2 {
        return Err(FoldError::TooFewFolds { k });
    }
    let mut members: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, g) in groups.iter().enumerate() {
        members.entry(g.as_str()).or_default().push(i);
    }
    if members.len() < k {
        return Err(FoldError::TooFewGroups {
            k,
            groups: members.len(),
            n,
        });
    }
    let mut names: Vec<&str> = members.keys().copied().collect();
    names.sort_unstable();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    names.shuffle(&mut rng);
    names.sort_by_key(|g| std::cmp::Reverse(members[g].len()));
    let mut validation: Vec<Vec<usize>> = vec![Vec::new(); k];
    for g in names {
        // min_by_key returns the first minimum: the lowest-numbered of the smallest folds
        let target = (0..k).min_by_key(|&f| validation[f].len()).unwrap_or(0);
        validation[target].extend_from_slice(&members[g]);
    }
    Ok(finish(FoldMethod::GroupKFold, k, seed, validation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_partition(folds: &Folds, n: usize) {
        assert_eq!(folds.validation.len(), folds.k);
        let mut seen = vec![0usize; n];
        for fold in &folds.validation {
            assert!(!fold.is_empty(), "empty fold in {folds:?}");
            assert!(fold.windows(2).all(|w| w[0] < w[1]), "not sorted: {fold:?}");
            for &i in fold {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "not a partition: {seen:?}");
        for i in 0..folds.k {
            let train = folds.train(i, n);
            assert!(train.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(train.len() + folds.validation[i].len(), n);
            assert!(train
                .iter()
                .all(|t| folds.validation[i].binary_search(t).is_err()));
        }
    }

    fn sizes(folds: &Folds) -> Vec<usize> {
        folds.validation.iter().map(Vec::len).collect()
    }

    fn balanced(folds: &Folds) -> bool {
        let s = sizes(folds);
        s.iter().max().unwrap() - s.iter().min().unwrap() <= 1
    }

    /// 3 classes of 30/20/10, interleaved so classes are not contiguous.
    fn labels_30_20_10() -> Vec<u32> {
        let mut l = Vec::new();
        for (c, n) in [(0u32, 30), (1, 20), (2, 10)] {
            l.extend(std::iter::repeat_n(c, n));
        }
        l.shuffle(&mut ChaCha8Rng::seed_from_u64(99));
        l
    }

    #[test]
    fn kfold_partition_and_balance() {
        for (n, k) in [(10, 2), (10, 3), (11, 5), (5, 5), (100, 7), (2, 2)] {
            let f = kfold(n, k, 3).unwrap();
            check_partition(&f, n);
            assert!(balanced(&f), "{n} {k}: {:?}", sizes(&f));
            assert_eq!((f.method, f.k, f.seed), (FoldMethod::KFold, k, 3));
        }
        assert_eq!(sizes(&kfold(11, 3, 0).unwrap()), vec![4, 4, 3]);
    }

    #[test]
    fn kfold_deterministic_per_seed() {
        assert_eq!(kfold(50, 5, 42).unwrap(), kfold(50, 5, 42).unwrap());
        assert_ne!(
            kfold(50, 5, 42).unwrap().validation,
            kfold(50, 5, 43).unwrap().validation
        );
    }

    #[test]
    fn stratified_proportions() {
        let l = labels_30_20_10();
        let f = stratified_kfold(&l, 3, 5, 11).unwrap();
        check_partition(&f, l.len());
        for fold in &f.validation {
            let count = |c: u32| fold.iter().filter(|&&i| l[i] == c).count();
            assert_eq!((count(0), count(1), count(2)), (6, 4, 2), "{fold:?}");
        }
        assert_eq!(f.method, FoldMethod::StratifiedKFold);
    }

    #[test]
    fn stratified_uneven_counts_balance() {
        // 7/5/3/1 items in 4 folds: per class floor/ceil of count/4, fold sizes 4/4/4/4
        let mut l = Vec::new();
        for (c, n) in [(0u32, 7), (1, 5), (2, 3), (3, 1)] {
            l.extend(std::iter::repeat_n(c, n));
        }
        l.shuffle(&mut ChaCha8Rng::seed_from_u64(1));
        let f = stratified_kfold(&l, 4, 4, 5).unwrap();
        check_partition(&f, l.len());
        assert!(balanced(&f), "{:?}", sizes(&f));
        for c in 0..4u32 {
            let total = l.iter().filter(|&&x| x == c).count();
            for fold in &f.validation {
                let got = fold.iter().filter(|&&i| l[i] == c).count();
                assert!(
                    got == total / 4 || got == total.div_ceil(4),
                    "class {c}: {got}"
                );
            }
        }
        // 17 items in 5 folds
        let l: Vec<u32> = (0..17).map(|i| (i % 3) as u32).collect();
        let f = stratified_kfold(&l, 3, 5, 0).unwrap();
        check_partition(&f, 17);
        assert!(balanced(&f), "{:?}", sizes(&f));
    }

    #[test]
    fn stratified_small_classes_allowed() {
        // class 1 has 2 members < k = 3: allowed, it is missing from one fold; no fold is empty
        let l = vec![0, 0, 0, 0, 1, 1];
        let f = stratified_kfold(&l, 2, 3, 0).unwrap();
        check_partition(&f, 6);
        assert!(balanced(&f));
        assert_eq!(small_classes(&l, 3), vec![(1, 2)]);
        assert!(small_classes(&l, 2).is_empty());
        // one member per class, as many items as folds
        let l = vec![0, 1, 2];
        check_partition(&stratified_kfold(&l, 3, 3, 9).unwrap(), 3);
        // labels beyond num_classes are classes of their own
        let l = vec![0, 0, 7, 7, 7, 7];
        let f = stratified_kfold(&l, 1, 2, 0).unwrap();
        check_partition(&f, 6);
        for fold in &f.validation {
            assert_eq!(fold.iter().filter(|&&i| l[i] == 7).count(), 2);
        }
        // huge labels do not allocate per label value
        let l = vec![u32::MAX, 0, u32::MAX, 0];
        check_partition(&stratified_kfold(&l, 2, 2, 0).unwrap(), 4);
    }

    #[test]
    fn stratified_deterministic_per_seed() {
        let l = labels_30_20_10();
        assert_eq!(
            stratified_kfold(&l, 3, 5, 42).unwrap(),
            stratified_kfold(&l, 3, 5, 42).unwrap()
        );
        assert_ne!(
            stratified_kfold(&l, 3, 5, 42).unwrap().validation,
            stratified_kfold(&l, 3, 5, 43).unwrap().validation
        );
    }

    fn group_names(sizes: &[(&str, usize)]) -> Vec<String> {
        let mut g = Vec::new();
        for &(name, n) in sizes {
            g.extend(std::iter::repeat_n(name.to_string(), n));
        }
        g.shuffle(&mut ChaCha8Rng::seed_from_u64(7));
        g
    }

    fn check_groups_whole(f: &Folds, groups: &[String]) {
        let mut fold_of: HashMap<&str, usize> = HashMap::new();
        for (fi, fold) in f.validation.iter().enumerate() {
            for &i in fold {
                let prev = fold_of.insert(groups[i].as_str(), fi);
                assert!(
                    prev.is_none() || prev == Some(fi),
                    "group {} split",
                    groups[i]
                );
            }
        }
    }

    #[test]
    fn group_kfold_never_splits_groups() {
        let g = group_names(&[
            ("a", 10),
            ("b", 7),
            ("c", 6),
            ("d", 4),
            ("e", 3),
            ("f", 3),
            ("g", 1),
        ]);
        for k in 2..=7 {
            let f = group_kfold(&g, k, 1).unwrap();
            check_partition(&f, g.len());
            check_groups_whole(&f, &g);
            assert_eq!(f.method, FoldMethod::GroupKFold);
        }
        // largest first to the smallest fold: a(10)→0, b(7)→1, c(6)→2, d(4)→2, e/f(3)→1 then 0,
        // g(1)→1: sizes 13/11/10
        let f = group_kfold(&g, 3, 1).unwrap();
        assert_eq!(sizes(&f), vec![13, 11, 10]);
    }

    #[test]
    fn group_kfold_ties_use_the_seed() {
        // 12 groups of equal size: which groups share a fold depends on the seed only
        let names: Vec<String> = (0..12).map(|i| format!("g{i:02}")).collect();
        let g = group_names(&names.iter().map(|s| (s.as_str(), 3)).collect::<Vec<_>>());
        let a = group_kfold(&g, 4, 1).unwrap();
        check_partition(&a, g.len());
        check_groups_whole(&a, &g);
        assert_eq!(sizes(&a), vec![9, 9, 9, 9]);
        assert_eq!(a, group_kfold(&g, 4, 1).unwrap());
        let differs = (2..20).any(|s| group_kfold(&g, 4, s).unwrap().validation != a.validation);
        assert!(differs);
        // the row order does not matter, only the groups
        let mut rev = g.clone();
        rev.reverse();
        let b = group_kfold(&rev, 4, 1).unwrap();
        let n = g.len();
        let mapped: Vec<Vec<usize>> = b
            .validation
            .iter()
            .map(|fold| {
                let mut v: Vec<usize> = fold.iter().map(|&i| n - 1 - i).collect();
                v.sort_unstable();
                v
            })
            .collect();
        assert_eq!(mapped, a.validation);
    }

    #[test]
    fn errors() {
        assert_eq!(
            kfold(10, 1, 0).unwrap_err(),
            FoldError::TooFewFolds { k: 1 }
        );
        assert_eq!(
            kfold(10, 0, 0).unwrap_err(),
            FoldError::TooFewFolds { k: 0 }
        );
        assert_eq!(
            kfold(3, 4, 0).unwrap_err(),
            FoldError::TooFewItems { k: 4, n: 3 }
        );
        assert_eq!(
            kfold(0, 2, 0).unwrap_err(),
            FoldError::TooFewItems { k: 2, n: 0 }
        );
        assert!(kfold(3, usize::MAX, 0).is_err());

        assert_eq!(
            stratified_kfold(&[0, 1], 2, 1, 0).unwrap_err(),
            FoldError::TooFewFolds { k: 1 }
        );
        let e = stratified_kfold(&[0, 0, 1], 2, 4, 0).unwrap_err();
        assert!(
            matches!(e, FoldError::TooFewItemsStratified { k: 4, n: 3, .. }),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains("4 stratified folds from 3 item(s)"), "{msg}");
        assert!(msg.contains("class 0: 2, class 1: 1"), "{msg}");
        assert!(stratified_kfold(&[], 0, 2, 0).is_err());

        let g: Vec<String> = ["a", "a", "b", "b", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let e = group_kfold(&g, 3, 0).unwrap_err();
        assert_eq!(
            e,
            FoldError::TooFewGroups {
                k: 3,
                groups: 2,
                n: 5
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("3 group folds from 2 distinct group(s) (5 item(s))"),
            "{msg}"
        );
        assert_eq!(
            group_kfold(&g, 1, 0).unwrap_err(),
            FoldError::TooFewFolds { k: 1 }
        );
        assert!(matches!(
            group_kfold(&[], 2, 0),
            Err(FoldError::TooFewGroups { groups: 0, .. })
        ));
        check_partition(&group_kfold(&g, 2, 0).unwrap(), 5);
    }

    #[test]
    fn train_out_of_range_does_not_panic() {
        let f = kfold(6, 3, 0).unwrap();
        assert_eq!(f.train(3, 6), (0..6).collect::<Vec<_>>());
        assert_eq!(f.train(0, 0), Vec::<usize>::new());
        assert_eq!(
            f.train(0, 2).len() + f.validation[0].iter().filter(|&&i| i < 2).count(),
            2
        );
    }

    #[test]
    fn serde_names() {
        let f = kfold(4, 2, 9).unwrap();
        let json = serde_json::to_string(&f).unwrap();
        assert!(json.contains("\"method\":\"kfold\""), "{json}");
        assert_eq!(serde_json::from_str::<Folds>(&json).unwrap(), f);
        assert_eq!(
            serde_json::to_string(&FoldMethod::StratifiedKFold).unwrap(),
            "\"stratified-kfold\""
        );
        assert_eq!(
            serde_json::to_string(&FoldMethod::GroupKFold).unwrap(),
            "\"group-kfold\""
        );
    }

    #[test]
    fn iterative_stratification_keeps_label_frequencies() {
        // 600 items, 5 labels of frequencies from 5% to 50%, drawn from a fixed generator
        let (n, k) = (600, 5);
        let freq = [0.05, 0.1, 0.2, 0.35, 0.5];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut sets = vec![0u8; n * k];
        for i in 0..n {
            for l in 0..k {
                sets[i * k + l] = (rand::Rng::random::<f64>(&mut rng) < freq[l]) as u8;
            }
        }
        let folds = multilabel_stratified_kfold(&sets, k, 5, 3).unwrap();
        let mut seen = vec![false; n];
        for fold in &folds.validation {
            assert!(
                (115..=125).contains(&fold.len()),
                "fold size {}",
                fold.len()
            );
            for l in 0..k {
                let overall = (0..n).filter(|&i| sets[i * k + l] == 1).count() as f64 / n as f64;
                let here = fold.iter().filter(|&&i| sets[i * k + l] == 1).count() as f64
                    / fold.len() as f64;
                assert!(
                    (here - overall).abs() < 0.02,
                    "label {l}: {here} vs {overall}"
                );
            }
            for &i in fold {
                assert!(!seen[i]);
                seen[i] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(folds, multilabel_stratified_kfold(&sets, k, 5, 3).unwrap());
        // a 20% split holds about 20% of every label
        let parts = iterative_stratification(&sets, k, &[0.2, 0.8], 1);
        let held = parts.iter().filter(|&&p| p == 0).count();
        assert!((115..=125).contains(&held), "{held}");
        for l in 0..k {
            let total = (0..n).filter(|&i| sets[i * k + l] == 1).count() as f64;
            let h = (0..n)
                .filter(|&i| sets[i * k + l] == 1 && parts[i] == 0)
                .count() as f64;
            assert!((h / total - 0.2).abs() < 0.03, "label {l}: {}", h / total);
        }
    }
}
