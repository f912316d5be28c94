//! The convolutions' moves between their output grid's planes (rows `grid width` apart, the
//! columns past the output width junk) and the dense `c × ho·wo` planes of the tensors,
//! carrying the bias and the fused ReLU.

use std::mem::MaybeUninit;

use super::{approx, cpu};

cpu::multiversion! {
/// Writes `z` (`c` planes of the output grid, channels first, each `ho` rows `grid width`
/// apart) to `out` (`c × ho·wo`) without the junk columns, with the bias and ReLU applied.
pub(crate) fn store_planes(
    z: &[f32],
    c: usize,
    grid: (usize, usize, usize),
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [MaybeUninit<f32>],
) {
    let (ho, wo, gw) = grid;
    let (zc, oc) = (z.chunks_exact(ho * gw), out.chunks_exact_mut(ho * wo));
    for (ch, (zp, op)) in zc.zip(oc).take(c).enumerate() {
        let b = bias.map_or(0.0, |b| b[ch]);
        for (zr, or) in zp.chunks_exact(gw).zip(op.chunks_exact_mut(wo)) {
            for (o, &v) in or.iter_mut().zip(&zr[..wo]) {
                o.write(activate(v + b, relu));
            }
        }
    }
}
}

cpu::multiversion! {
/// The gradient before a fused ReLU (or the plain gradient; `res` is the ReLU's output), from
/// `c × ho·wo` to `c` planes of the output grid (rows `grid width` apart; the junk columns are
/// not written and must be zero); adds each plane's sum to `sums` unless that is empty.
pub(crate) fn load_planes(
    grad: &[f32],
    res: &[f32],
    c: usize,
    grid: (usize, usize, usize),
    relu: bool,
    gz: &mut [f32],
    sums: &mut [f32],
) {
    let (ho, wo, gw) = grid;
    let planes = grad.chunks_exact(ho * wo).zip(res.chunks_exact(ho * wo));
    for (ch, ((gp, rp), zp)) in planes.zip(gz.chunks_exact_mut(ho * gw)).take(c).enumerate() {
        let rows = gp.chunks_exact(wo).zip(rp.chunks_exact(wo));
        for ((gr, rr), zr) in rows.zip(zp.chunks_exact_mut(gw)) {
            if relu {
                for ((z, &g), &r) in zr.iter_mut().zip(gr).zip(rr) {
                    *z = gate(g, r, true);
                }
            } else {
                cpu::copy_short(&mut zr[..wo], gr);
            }
        }
        if let Some(s) = sums.get_mut(ch) {
            *s += approx::sum(zp);
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

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::model::ops::testutil::rng;

    /// Every shape, with NaNs, signed zeros and junk columns: both moves equal a loop that
    /// indexes each value, bit for bit, and the plane sums are the sums of the moved planes.
    #[test]
    fn plane_moves_equal_an_indexed_loop_bit_for_bit() {
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
                let z: Vec<f32> = (0..c * ho * gw).map(|_| pick(&mut r)).collect();
                let b: Vec<f32> = (0..c).map(|_| pick(&mut r)).collect();
                let bias = bias.then_some(b.as_slice());
                let grid = (ho, wo, gw);
                let mut moved = vec![MaybeUninit::new(7f32); c * ho * wo];
                store_planes(&z, c, grid, bias, relu, &mut moved);
                // SAFETY: every value was initialised (to 7) before the move wrote it.
                let moved: Vec<u32> = moved
                    .iter()
                    .map(|v| unsafe { v.assume_init() }.to_bits())
                    .collect();
                let mut want = Vec::new();
                for ch in 0..c {
                    for y in 0..ho {
                        for x in 0..wo {
                            let t = z[(ch * ho + y) * gw + x] + bias.map_or(0.0, |b| b[ch]);
                            want.push(activate(t, relu).to_bits());
                        }
                    }
                }
                assert_eq!(moved, want, "store {c} {ho}×{wo} in {gw}");

                let g: Vec<f32> = (0..c * ho * wo).map(|_| pick(&mut r)).collect();
                let res: Vec<f32> = (0..c * ho * wo).map(|_| pick(&mut r)).collect();
                // junk columns zero, the rest stale
                let mut gz: Vec<f32> = (0..c * ho * gw)
                    .map(|at| if at % gw < wo { 7.0 } else { 0.0 })
                    .collect();
                let mut sums = vec![1f32; c];
                load_planes(&g, &res, c, grid, relu, &mut gz, &mut sums);
                let mut want = vec![0f32; c * ho * gw];
                for ch in 0..c {
                    for y in 0..ho {
                        for x in 0..wo {
                            let at = (ch * ho + y) * wo + x;
                            want[(ch * ho + y) * gw + x] = gate(g[at], res[at], relu);
                        }
                    }
                }
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&gz), bits(&want), "load {c} {ho}×{wo} in {gw}");
                for (ch, s) in sums.iter().enumerate() {
                    let plane = &want[ch * ho * gw..][..ho * gw];
                    let expected = 1.0 + approx::sum(plane);
                    assert_eq!(s.to_bits(), expected.to_bits(), "sum {ch} of {c} {ho}×{wo}");
                }
                load_planes(&g, &res, c, grid, relu, &mut gz, &mut []);
                assert_eq!(bits(&gz), bits(&want));
            }
        }
    }
}
