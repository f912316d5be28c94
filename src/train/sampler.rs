//! Each epoch's training order: a seeded shuffle of the training set, or (`sampler =
//! "balanced"`) as many draws with replacement, weighted by inverse class frequency.

use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::seq::SliceRandom;

use super::rng;
use crate::data::image_set::ImageSet;
use crate::spec::Sampler;

/// The order in which epoch `epoch` visits `set` (indices), seeded from `(seed, epoch)`.
pub fn epoch_order(set: &ImageSet, sampler: Sampler, seed: u64, epoch: usize) -> Vec<usize> {
    match sampler {
        Sampler::Shuffle => {
            let mut order: Vec<usize> = (0..set.len()).collect();
            order.shuffle(&mut rng::stream(seed, "shuffle", epoch as u64));
            order
        }
        Sampler::Balanced => {
            let weights = balanced_weights(set);
            let Ok(dist) = WeightedIndex::new(&weights) else {
                return (0..set.len()).collect();
            };
            let mut r = rng::stream(seed, "sampler", epoch as u64);
            (0..set.len()).map(|_| dist.sample(&mut r)).collect()
        }
    }
}

/// Per-image sampling weights that give every class the same expected share of draws:
/// 1 / (images of its class). Multilabel: the largest 1 / (images carrying the label) over the
/// image's labels (so an image is drawn as often as its rarest label asks); images without any
/// label count as one more class.
pub fn balanced_weights(set: &ImageSet) -> Vec<f64> {
    let k = set.classes.len();
    match &set.label_sets {
        Some(sets) if k > 0 => {
            let counts = set.label_counts();
            let empty = sets
                .chunks_exact(k)
                .filter(|r| r.iter().all(|&v| v == 0))
                .count();
            sets.chunks_exact(k)
                .map(|row| {
                    let w = row
                        .iter()
                        .zip(&counts)
                        .filter(|(&v, _)| v != 0)
                        .map(|(_, &c)| 1.0 / c as f64)
                        .fold(0.0, f64::max);
                    if w > 0.0 {
                        w
                    } else {
                        1.0 / empty.max(1) as f64
                    }
                })
                .collect()
        }
        _ => {
            let counts = set.class_counts();
            set.labels
                .iter()
                .map(|&l| 1.0 / counts[l as usize].max(1) as f64)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(labels: Vec<u32>, k: usize) -> ImageSet {
        ImageSet {
            channels: 1,
            height: 1,
            width: 1,
            pixels: vec![0; labels.len()],
            labels,
            classes: (0..k).map(|c| c.to_string()).collect(),
            groups: None,
            label_sets: None,
        }
    }

    #[test]
    fn shuffle_is_a_permutation_and_balanced_evens_out_classes() {
        // 90 of class 0, 10 of class 1
        let mut labels = vec![0u32; 90];
        labels.extend([1; 10]);
        let s = set(labels, 2);
        let mut o = epoch_order(&s, Sampler::Shuffle, 3, 1);
        o.sort_unstable();
        assert_eq!(o, (0..100).collect::<Vec<_>>());
        let mut ones = 0;
        for epoch in 1..=20 {
            let o = epoch_order(&s, Sampler::Balanced, 3, epoch);
            assert_eq!(o.len(), 100);
            ones += o.iter().filter(|&&i| i >= 90).count();
        }
        // expected half of 2000 draws
        assert!((850..1150).contains(&ones), "{ones}");
        assert_eq!(
            epoch_order(&s, Sampler::Balanced, 3, 1),
            epoch_order(&s, Sampler::Balanced, 3, 1)
        );
        assert_ne!(
            epoch_order(&s, Sampler::Balanced, 3, 1),
            epoch_order(&s, Sampler::Balanced, 3, 2)
        );
    }

    #[test]
    fn multilabel_weights_follow_the_rarest_label() {
        let mut s = set(vec![0, 0, 1, 0], 2);
        // rows: {0}, {0}, {0,1}, {}
        s.label_sets = Some(vec![1, 0, 1, 0, 1, 1, 0, 0]);
        let w = balanced_weights(&s);
        assert_eq!(w, vec![1.0 / 3.0, 1.0 / 3.0, 1.0, 1.0]);
    }
}
