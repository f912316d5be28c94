//! Seeded random streams: every random choice (initial weights, shuffling, dropout) is drawn
//! from a generator derived from the run seed and a named purpose, so runs are reproducible.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A generator for `purpose` (e.g. "init", "shuffle") and an index such as the epoch.
pub fn stream(seed: u64, purpose: &str, index: u64) -> ChaCha8Rng {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in purpose.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(splitmix(seed ^ splitmix(h ^ splitmix(index))))
}

/// A generator for one sample (or batch) `index` of `epoch`: augmentation draws from
/// `sample_stream(seed, "augment", epoch, sample)` and batch mixing from
/// `sample_stream(seed, "mix", epoch, step)`, so a sample's augmentation depends on nothing
/// else (not on threads, batch order or what was drawn before).
pub fn sample_stream(seed: u64, purpose: &str, epoch: u64, index: u64) -> ChaCha8Rng {
    stream(seed ^ splitmix(epoch ^ 0x005e_ed0f_e70c), purpose, index)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: u64 = stream(1, "shuffle", 3).random();
        assert_eq!(a, stream(1, "shuffle", 3).random::<u64>());
        assert_ne!(a, stream(1, "shuffle", 4).random::<u64>());
        assert_ne!(a, stream(2, "shuffle", 3).random::<u64>());
        assert_ne!(a, stream(1, "dropout", 3).random::<u64>());
        let s: u64 = sample_stream(1, "augment", 2, 3).random();
        assert_eq!(s, sample_stream(1, "augment", 2, 3).random::<u64>());
        assert_ne!(s, sample_stream(1, "augment", 3, 2).random::<u64>());
        assert_ne!(s, sample_stream(1, "augment", 2, 4).random::<u64>());
        assert_ne!(s, sample_stream(1, "augment", 1, 3).random::<u64>());
    }
}
