//! The convolutions' moves between channels-first planes and their channels-last grid (grid
//! positions × channels, rows `grid width` apart), carrying the bias and ReLU: in AVX2
//! registers, 8 × 8 blocks at a time, where the CPU has them, equal to the plain loops exactly.

use std::mem::MaybeUninit;

/// Writes `z` (grid positions × `c`, channels last; `grid` = (ho, wo, grid width)) to `out`
/// (`c × ho·wo`, channels first) with the bias and ReLU applied.
pub(crate) fn store_channels_first(
    z: &[f32],
    c: usize,
    grid: (usize, usize, usize),
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [MaybeUninit<f32>],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { avx2::store_channels_first(z, c, grid, bias, relu, out) };
    }
    store_plain(z, (0, c), c, grid, bias, relu, out);
}

/// The gradient before a fused ReLU (or the plain gradient; `res` is the ReLU's output), from
/// `c × ho·wo` channels first to grid positions × channels, zero on the junk columns.
pub(crate) fn load_channels_last(
    grad: &[f32],
    res: &[f32],
    c: usize,
    grid: (usize, usize, usize),
    relu: bool,
    gz: &mut [f32],
) {
    let (_, wo, gw) = grid;
    if gw > wo {
        gz.fill(0.0);
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { avx2::load_channels_last(grad, res, c, grid, relu, gz) };
    }
    load_plain(grad, res, (0, c), c, grid, relu, gz);
}

/// [`store_channels_first`] of the channels `from..to`, one value at a time.
#[allow(clippy::too_many_arguments)]
fn store_plain(
    z: &[f32],
    (from, to): (usize, usize),
    c: usize,
    (ho, wo, gw): (usize, usize, usize),
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [MaybeUninit<f32>],
) {
    for ch in from..to {
        let b = bias.map_or(0.0, |b| b[ch]);
        for y in 0..ho {
            let dst = &mut out[(ch * ho + y) * wo..][..wo];
            for (x, o) in dst.iter_mut().enumerate() {
                o.write(activate(z[(y * gw + x) * c + ch] + b, relu));
            }
        }
    }
}

/// [`load_channels_last`] of the channels `from..to`, one value at a time (junk columns not
/// written).
#[allow(clippy::too_many_arguments)]
fn load_plain(
    grad: &[f32],
    res: &[f32],
    (from, to): (usize, usize),
    c: usize,
    (ho, wo, gw): (usize, usize, usize),
    relu: bool,
    gz: &mut [f32],
) {
    for ch in from..to {
        for y in 0..ho {
            let src = (ch * ho + y) * wo;
            let (gs, rs) = (&grad[src..src + wo], &res[src..src + wo]);
            for (x, (&g, &r)) in gs.iter().zip(rs).enumerate() {
                gz[(y * gw + x) * c + ch] = gate(g, r, relu);
            }
        }
    }
}

/// The ReLU as the forward applies it (a NaN stays).
#[inline(always)]
fn activate(t: f32, relu: bool) -> f32 {
    if relu && t < 0.0 {
        0.0
    } else {
        t
    }
}

/// The gradient `g` through a ReLU whose output was `r`.
#[inline(always)]
fn gate(g: f32, r: f32, relu: bool) -> f32 {
    if !relu || r > 0.0 {
        g
    } else {
        0.0
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::{activate, gate, load_plain, store_plain};

    /// Values `at..at + 8` of `xs`.
    #[target_feature(enable = "avx2")]
    fn load(xs: &[f32], at: usize) -> __m256 {
        let eight = &xs[at..at + 8];
        // SAFETY: `eight` holds 8 f32 values (unaligned loads are allowed).
        unsafe { _mm256_loadu_ps(eight.as_ptr()) }
    }

    /// `v` into values `at..at + 8` of `xs`.
    #[target_feature(enable = "avx2")]
    fn store<T>(xs: &mut [T], at: usize, v: __m256)
    where
        T: F32Slot,
    {
        let eight = &mut xs[at..at + 8];
        // SAFETY: `eight` holds 8 values laid out as f32 (`F32Slot`).
        unsafe { _mm256_storeu_ps(eight.as_mut_ptr().cast::<f32>(), v) }
    }

    /// Element types stored as an f32.
    trait F32Slot {}
    impl F32Slot for f32 {}
    impl F32Slot for MaybeUninit<f32> {}

    /// Rows `r[0..8]` become the columns.
    #[target_feature(enable = "avx2")]
    fn transpose(r: &mut [__m256; 8]) {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        r[0] = _mm256_permute2f128_ps::<0x20>(s0, s4);
        r[1] = _mm256_permute2f128_ps::<0x20>(s1, s5);
        r[2] = _mm256_permute2f128_ps::<0x20>(s2, s6);
        r[3] = _mm256_permute2f128_ps::<0x20>(s3, s7);
        r[4] = _mm256_permute2f128_ps::<0x31>(s0, s4);
        r[5] = _mm256_permute2f128_ps::<0x31>(s1, s5);
        r[6] = _mm256_permute2f128_ps::<0x31>(s2, s6);
        r[7] = _mm256_permute2f128_ps::<0x31>(s3, s7);
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn store_channels_first(
        z: &[f32],
        c: usize,
        grid: (usize, usize, usize),
        bias: Option<&[f32]>,
        relu: bool,
        out: &mut [MaybeUninit<f32>],
    ) {
        let (ho, wo, gw) = grid;
        let (c8, w8, plane) = (c / 8 * 8, wo / 8 * 8, ho * wo);
        let zero = _mm256_setzero_ps();
        for cb in (0..c8).step_by(8) {
            let b = bias.map_or(zero, |b| load(b, cb));
            for y in 0..ho {
                for xb in (0..w8).step_by(8) {
                    let mut r = [zero; 8];
                    for (j, r) in r.iter_mut().enumerate() {
                        let t = _mm256_add_ps(load(z, (y * gw + xb + j) * c + cb), b);
                        // max(0, t) returns t when t is a NaN or either zero, as `activate`.
                        *r = if relu { _mm256_max_ps(zero, t) } else { t };
                    }
                    transpose(&mut r);
                    for (i, &r) in r.iter().enumerate() {
                        store(out, (cb + i) * plane + y * wo + xb, r);
                    }
                }
                for ch in cb..cb + 8 {
                    let bc = bias.map_or(0.0, |b| b[ch]);
                    for x in w8..wo {
                        let t = z[(y * gw + x) * c + ch] + bc;
                        out[ch * plane + y * wo + x].write(activate(t, relu));
                    }
                }
            }
        }
        store_plain(z, (c8, c), c, grid, bias, relu, out);
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn load_channels_last(
        grad: &[f32],
        res: &[f32],
        c: usize,
        grid: (usize, usize, usize),
        relu: bool,
        gz: &mut [f32],
    ) {
        let (ho, wo, gw) = grid;
        let (c8, w8, plane) = (c / 8 * 8, wo / 8 * 8, ho * wo);
        let zero = _mm256_setzero_ps();
        for cb in (0..c8).step_by(8) {
            for y in 0..ho {
                for xb in (0..w8).step_by(8) {
                    let mut r = [zero; 8];
                    for (i, r) in r.iter_mut().enumerate() {
                        let at = (cb + i) * plane + y * wo + xb;
                        let g = load(grad, at);
                        // r > 0 is false for a NaN, as in `gate`.
                        let open = _mm256_cmp_ps::<_CMP_GT_OQ>(load(res, at), zero);
                        *r = if relu { _mm256_and_ps(open, g) } else { g };
                    }
                    transpose(&mut r);
                    for (j, &r) in r.iter().enumerate() {
                        store(gz, (y * gw + xb + j) * c + cb, r);
                    }
                }
                for ch in cb..cb + 8 {
                    for x in w8..wo {
                        let at = ch * plane + y * wo + x;
                        gz[(y * gw + x) * c + ch] = gate(grad[at], res[at], relu);
                    }
                }
            }
        }
        load_plain(grad, res, (c8, c), c, grid, relu, gz);
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::model::ops::testutil::rng;

    /// Every shape of blocks and tails, with NaNs, signed zeros and a junk column: the vector
    /// path's values equal the plain loops' bit for bit.
    #[test]
    fn vector_moves_equal_the_plain_loops_bit_for_bit() {
        let mut r = rng(3);
        for &(c, ho, wo) in &[(8, 8, 8), (16, 3, 16), (13, 5, 11), (3, 2, 7), (24, 9, 17)] {
            for (gw, bias, relu) in [
                (wo, false, false),
                (wo + 2, true, true),
                (wo + 1, true, false),
            ] {
                let pick = |r: &mut rand_chacha::ChaCha8Rng| match r.random_range(0..10) {
                    0 => f32::NAN,
                    1 => -0.0,
                    2 => 0.0,
                    _ => r.random::<f32>() * 2.0 - 1.0,
                };
                let z: Vec<f32> = (0..ho * gw * c).map(|_| pick(&mut r)).collect();
                let b: Vec<f32> = (0..c).map(|_| pick(&mut r)).collect();
                let bias = bias.then_some(b.as_slice());
                let grid = (ho, wo, gw);
                let bits = |v: &[MaybeUninit<f32>]| -> Vec<u32> {
                    // SAFETY: every value was initialised (to 7) before either path wrote it.
                    v.iter()
                        .map(|v| unsafe { v.assume_init() }.to_bits())
                        .collect()
                };
                let mut fast = vec![MaybeUninit::new(7f32); c * ho * wo];
                store_channels_first(&z, c, grid, bias, relu, &mut fast);
                let mut plain = vec![MaybeUninit::new(7f32); c * ho * wo];
                store_plain(&z, (0, c), c, grid, bias, relu, &mut plain);
                assert_eq!(bits(&fast), bits(&plain), "store {c} {ho}×{wo} in {gw}");

                let g: Vec<f32> = (0..c * ho * wo).map(|_| pick(&mut r)).collect();
                let res: Vec<f32> = (0..c * ho * wo).map(|_| pick(&mut r)).collect();
                let mut fast = vec![7f32; ho * gw * c];
                load_channels_last(&g, &res, c, grid, relu, &mut fast);
                let mut plain = vec![if gw > wo { 0.0 } else { 7.0 }; ho * gw * c];
                load_plain(&g, &res, (0, c), c, grid, relu, &mut plain);
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&plain), "load {c} {ho}×{wo} in {gw}");
            }
        }
    }
}
