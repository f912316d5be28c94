//! Random draws used by the transforms: uniform ranges, normal, gamma and beta variates.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The generator every transform draws from.
pub type Stream = ChaCha8Rng;

/// Uniform in `[lo, hi]` (exactly `lo` when the range is empty, without drawing).
pub fn uniform(rng: &mut Stream, lo: f64, hi: f64) -> f64 {
    if hi <= lo {
        return lo;
    }
    let u = rng.random::<f64>();
    let v = lo + (hi - lo) * u;
    if v.is_finite() {
        v
    } else {
        // `hi - lo` overflowed (e.g. degrees = 1e308, meaning [-1e308, 1e308])
        lo * (1.0 - u) + hi * u
    }
}

/// True with probability `p` (draws nothing when `p` is 0 or 1).
pub fn chance(rng: &mut Stream, p: f64) -> bool {
    if p >= 1.0 {
        true
    } else if p <= 0.0 {
        false
    } else {
        rng.random::<f64>() < p
    }
}

/// An integer in `0..n` (0 when `n` is 0).
pub fn below(rng: &mut Stream, n: usize) -> usize {
    if n <= 1 {
        0
    } else {
        rng.random_range(0..n)
    }
}

/// A standard normal variate (Box–Muller).
pub fn normal(rng: &mut Stream) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // in (0, 1]
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A Gamma(shape, 1) variate (Marsaglia–Tsang; boosted for shape < 1) and its logarithm, which
/// stays finite where the variate itself underflows to 0 (shapes near 0, e.g. `alpha = 0.001`).
fn gamma_and_ln(rng: &mut Stream, shape: f64) -> (f64, f64) {
    if shape < 1.0 {
        let u = 1.0 - rng.random::<f64>();
        let (g, ln_g) = gamma_and_ln(rng, shape + 1.0);
        return (g * u.powf(1.0 / shape), ln_g + u.ln() / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = 1.0 - rng.random::<f64>();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return (d * v, (d * v).ln());
        }
    }
}

/// A Beta(a, b) variate in [0, 1].
pub fn beta(rng: &mut Stream, a: f64, b: f64) -> f64 {
    let (x, ln_x) = gamma_and_ln(rng, a);
    let (y, ln_y) = gamma_and_ln(rng, b);
    if x + y > 0.0 {
        (x / (x + y)).clamp(0.0, 1.0)
    } else {
        // both underflowed (small shapes): x / (x + y) from the logarithms
        1.0 / (1.0 + (ln_y - ln_x).exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::rng;

    #[test]
    fn beta_with_a_tiny_alpha_is_near_0_or_1() {
        // Beta(0.001, 0.001) puts 99.5% of its mass within 0.01 of 0 and 1; both gamma
        // variates often underflow to 0, which must not turn into 0.5
        let mut r = rng::stream(2, "test", 0);
        let n = 2000;
        let middle = (0..n)
            .map(|_| beta(&mut r, 0.001, 0.001))
            .filter(|v| (0.01..0.99).contains(v))
            .count();
        assert!(middle < n / 100, "{middle} of {n} draws away from 0 and 1");
    }

    #[test]
    fn beta_has_the_right_mean() {
        let mut r = rng::stream(1, "test", 0);
        for (a, b) in [(0.2, 0.2), (1.0, 1.0), (2.0, 5.0)] {
            let n = 20_000;
            let mean: f64 = (0..n).map(|_| beta(&mut r, a, b)).sum::<f64>() / n as f64;
            assert!((mean - a / (a + b)).abs() < 0.02, "{a},{b}: {mean}");
        }
        assert_eq!(uniform(&mut r, 2.0, 2.0), 2.0);
        // a range wider than the largest f64 still gives finite values inside it
        for _ in 0..1000 {
            let v = uniform(&mut r, -f64::MAX, f64::MAX);
            assert!(v.is_finite(), "{v}");
        }
        assert!(chance(&mut r, 1.0) && !chance(&mut r, 0.0));
    }
}
