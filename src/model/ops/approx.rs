//! `exp` and `erf` in f32 from arithmetic alone, so that loops over them vectorise (the
//! library's functions are calls, one value at a time), accurate to a few units in the last
//! place over the ranges the ops use; and maxima, sums and dot products in eight lanes (a
//! float reduction written as one running value stays scalar).

/// log₂(e).
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln(2), split in a part exact in f32 and the rest (Cody and Waite's reduction).
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;

/// `eˣ` for `x ≤ 0` (below −87, where the result would leave f32's normal range, it is taken as
/// −87: about 1.6e-38). A NaN gives a NaN.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    let x = x.clamp(-87.0, 0.0);
    // x = n·ln2 + r with |r| ≤ ln2 / 2, eʳ by its Taylor polynomial to r⁷, times 2ⁿ.
    // Adding 1.5·2²³ rounds x·log₂e to the nearest integer n and leaves n in the low bits of
    // the sum (two's complement), from where 2ⁿ is built without a float-to-int conversion
    // (whose saturation would not vectorise).
    const SHIFTER: f32 = 12_582_912.0;
    let t = x * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // n + 127 (in 1..=127) as the exponent field.
    let scale = f32::from_bits(t.to_bits().wrapping_sub(SHIFTER.to_bits() - 127) << 23);
    p * scale
}

/// erf(x), by an odd rational function of x on [−4, 4] (±1 beyond, where f32 cannot tell erf
/// from 1); the coefficients are the published minimax fit used by Eigen and XLA.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_3e-4;
    p = p * x2 - 2.9546e-3;
    p = p * x2 - 1.609_603_3e-2;
    let mut q = -1.456_607_2e-5;
    q = q * x2 - 2.133_740_6e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329e-3;
    q = q * x2 - 1.426_474e-2;
    x * p / q
}

/// The largest value of `v` (−∞ for none; NaNs are passed over), in eight lanes.
#[inline(always)]
pub(crate) fn max(v: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = v.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = if x > *l { x } else { *l };
        }
    }
    let m = tail
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    lanes.iter().fold(m, |m, &x| if x > m { x } else { m })
}

/// Σ aᵢ·bᵢ, in eight lanes (an order fixed by the lengths alone).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((l, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *l += x * y;
        }
    }
    let tail: f32 = ta.iter().zip(tb).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Σ aᵢ, in eight lanes.
#[inline(always)]
pub(crate) fn sum(a: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(from: f32, to: f32, steps: usize) -> impl Iterator<Item = f32> {
        (0..=steps).map(move |i| from + (to - from) * i as f32 / steps as f32)
    }

    #[test]
    fn exp_is_within_a_few_ulp_of_f64() {
        let mut worst = 0f64;
        for x in grid(-87.0, 0.0, 200_000).chain([0.0, -0.0, -1e-30, -1e-7]) {
            let want = (x as f64).exp();
            let got = exp_nonpositive(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2e-7, "relative error {worst}");
        assert!(exp_nonpositive(f32::NAN).is_nan());
        assert!(exp_nonpositive(-1e4) < 2e-38);
    }

    #[test]
    fn lane_reductions_equal_plain_ones() {
        for len in [0usize, 1, 7, 8, 9, 65, 200] {
            let a: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) / 4.0)
                .collect();
            let b: Vec<f32> = (0..len)
                .map(|i| ((i * 13 % 7) as f32 - 3.0) / 2.0)
                .collect();
            let plain_max = a.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            assert_eq!(max(&a), plain_max, "{len}");
            // Quarters and halves: every sum is exact, whatever the order.
            assert_eq!(sum(&a), a.iter().sum::<f32>(), "{len}");
            assert_eq!(
                dot(&a, &b),
                a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>()
            );
        }
        assert_eq!(max(&[f32::NAN, 1.0, f32::NAN]), 1.0);
    }

    #[test]
    fn erf_is_within_a_few_ulp_of_libm() {
        let mut worst = 0f64;
        for x in grid(-6.0, 6.0, 200_000) {
            let want = libm::erf(x as f64);
            let got = erf(x) as f64;
            worst = worst.max((got - want).abs() / want.abs().max(1e-3));
        }
        assert!(worst < 6e-7, "error {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert!(erf(f32::NAN).is_nan());
    }
}
