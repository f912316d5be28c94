//! Deterministic seeded train/held-out splits (stratified per class, or plain random) with ChaCha8.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// How many of `count` items to hold out: round(fraction × count), at least 1 when
/// fraction > 0 and count ≥ 2, never all of them (so a single item is always kept).
fn held_out_count(count: usize, fraction: f64) -> usize {
    if count < 2 || fraction.is_nan() || fraction <= 0.0 {
        return 0;
    }
    let k = (fraction.min(1.0) * count as f64).round() as usize;
    k.clamp(1, count - 1)
}

fn shuffle_and_cut(
    mut indices: Vec<usize>,
    fraction: f64,
    rng: &mut ChaCha8Rng,
) -> (Vec<usize>, Vec<usize>) {
    let k = held_out_count(indices.len(), fraction);
    indices.shuffle(rng);
    let kept = indices.split_off(k);
    (kept, indices)
}

/// Splits indices `0..labels.len()` per class: each class's indices are shuffled (ChaCha8 seeded
/// with `seed`, one stream per class so a class's split does not depend on the other classes) and
/// [`round(fraction × count)`, at least 1 when fraction > 0 and the class has ≥ 2 samples, never the
/// whole class] are held out. Returns `(kept, held_out)`, both sorted ascending. Labels
/// `>= num_classes` are split as classes of their own.
pub fn stratified_split(
    labels: &[u32],
    num_classes: usize,
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let groups = labels
        .iter()
        .map(|&l| l as usize + 1)
        .max()
        .unwrap_or(0)
        .max(num_classes);
    let mut per_class: Vec<Vec<usize>> = vec![Vec::new(); groups];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(g) = per_class.get_mut(l as usize) {
            g.push(i);
        }
    }
    let mut kept = Vec::with_capacity(labels.len());
    let mut held = Vec::new();
    for (class, indices) in per_class.into_iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(class as u64);
        let (k, h) = shuffle_and_cut(indices, fraction, &mut rng);
        kept.extend(k);
        held.extend(h);
    }
    kept.sort_unstable();
    held.sort_unstable();
    (kept, held)
}

/// Splits `0..n` ignoring classes: round(fraction × n) held out (at least 1 when fraction > 0 and
/// n ≥ 2, never all). Returns `(kept, held_out)`, both sorted ascending.
pub fn random_split(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut kept, mut held) = shuffle_and_cut((0..n).collect(), fraction, &mut rng);
    kept.sort_unstable();
    held.sort_unstable();
    (kept, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<u32> {
        // class 0: 100, class 1: 50, class 2: 10, class 3: 2, class 4: 1, class 5: 0
        let mut l = Vec::new();
        for (c, n) in [(0u32, 100), (1, 50), (2, 10), (3, 2), (4, 1)] {
            l.extend(std::iter::repeat_n(c, n));
        }
        // interleave deterministically so classes are not contiguous
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        l.shuffle(&mut rng);
        l
    }

    fn check_partition(n: usize, kept: &[usize], held: &[usize]) {
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        assert!(held.windows(2).all(|w| w[0] < w[1]));
        let mut all: Vec<usize> = kept.iter().chain(held).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn stratified_proportions_and_partition() {
        let l = labels();
        let (kept, held) = stratified_split(&l, 6, 0.2, 7);
        check_partition(l.len(), &kept, &held);
        let count = |idx: &[usize], c: u32| idx.iter().filter(|&&i| l[i] == c).count();
        assert_eq!(count(&held, 0), 20);
        assert_eq!(count(&held, 1), 10);
        assert_eq!(count(&held, 2), 2);
        assert_eq!(count(&held, 3), 1); // round(0.4) = 0, but at least 1
        assert_eq!(count(&kept, 3), 1);
        assert_eq!(count(&held, 4), 0); // a single sample is never held out
        assert_eq!(count(&kept, 4), 1);
    }

    #[test]
    fn never_the_whole_class() {
        let l = labels();
        let (kept, held) = stratified_split(&l, 6, 1.0, 1);
        check_partition(l.len(), &kept, &held);
        for c in 0..5u32 {
            assert_eq!(kept.iter().filter(|&&i| l[i] == c).count(), 1, "class {c}");
        }
        let (kept, held) = stratified_split(&l, 6, 0.0, 1);
        assert_eq!(kept.len(), l.len());
        assert!(held.is_empty());
        let (kept, held) = stratified_split(&l, 6, f64::NAN, 1);
        assert_eq!((kept.len(), held.len()), (l.len(), 0));
    }

    #[test]
    fn deterministic_per_seed() {
        let l = labels();
        assert_eq!(
            stratified_split(&l, 6, 0.3, 42),
            stratified_split(&l, 6, 0.3, 42)
        );
        assert_ne!(
            stratified_split(&l, 6, 0.3, 42),
            stratified_split(&l, 6, 0.3, 43)
        );
        assert_eq!(random_split(500, 0.1, 5), random_split(500, 0.1, 5));
        assert_ne!(random_split(500, 0.1, 5), random_split(500, 0.1, 6));
    }

    #[test]
    fn random_split_sizes() {
        let (kept, held) = random_split(1000, 0.25, 3);
        check_partition(1000, &kept, &held);
        assert_eq!(held.len(), 250);
        assert_eq!(random_split(2, 0.01, 0).1.len(), 1);
        assert_eq!(random_split(1, 0.5, 0), (vec![0], vec![]));
        assert_eq!(random_split(0, 0.5, 0), (vec![], vec![]));
        assert_eq!(random_split(10, 1.0, 0).0.len(), 1);
    }

    #[test]
    fn labels_beyond_num_classes_are_kept_track_of() {
        let l = vec![0, 0, 5, 5, 5, 5];
        let (kept, held) = stratified_split(&l, 2, 0.5, 0);
        check_partition(6, &kept, &held);
        assert_eq!(held.iter().filter(|&&i| l[i] == 5).count(), 2);
    }
}
