//! The stride-1 convolutions' operand without a column matrix: `kw` copies of the zero-padded
//! image, copy `j` shifted left by `j` and cut to the output's width ("shifted planes").
//!
//! Row `(c, j)` of the shifted planes holds `padded[c, y, x + j]` at `y·wo + x`, for every
//! padded row `y` and output column `x` ([`plane`] values). Output `(oy, ox)` reads, through
//! kernel offset `(i, j)`, `padded[c, oy + i, ox + j]` = row `(c, j)` at `oy·wo + ox + i·wo`:
//! the column matrix of kernel row `i` is the shifted planes viewed from offset `i·wo`, output
//! positions contiguous and rows a plane apart, which a matrix product reads in place, and the
//! product's positions are those of the output itself. A convolution is then `kh` products
//! over `kw·c_in` rows each, from `kw` copies of the image instead of the `kh·kw` of im2col,
//! and the input gradient comes back the same way ([`unshift`]). The weights are taken in the
//! matching order, `(i, c, j)` ([`rows_first`]).

use std::mem::MaybeUninit;

use super::cpu;
use super::im2col::Geometry;

/// Values of one shifted plane: the padded image's rows × the output's width.
pub(crate) fn plane(g: &Geometry) -> usize {
    (g.h + 2 * g.pad) * g.wo
}

/// Values of one image's shifted planes (`kw · c_in` rows).
pub(crate) fn len(g: &Geometry) -> usize {
    g.kw * g.c_in * plane(g)
}

/// The weights `w` (`c_out × c_in × kh × kw`) with their rows in the shifted planes' order,
/// `c_out × kh × c_in × kw`: kernel row `i`'s `kw·c_in` weights of an output channel are
/// contiguous, starting at `i·kw·c_in`.
pub(crate) fn rows_first(g: &Geometry, w: &[f32]) -> Vec<f32> {
    let (kh, kw, c_in, k) = (g.kh, g.kw, g.c_in, g.k());
    let mut out = Vec::with_capacity(w.len());
    for wo in w.chunks_exact(k) {
        for i in 0..kh {
            for c in 0..c_in {
                out.extend_from_slice(&wo[(c * kh + i) * kw..][..kw]);
            }
        }
    }
    out
}

/// The index in `c_in × kh × kw` order of index `r` in the shifted order `kh × c_in × kw`.
pub(crate) fn natural_index(g: &Geometry, r: usize) -> usize {
    let (i, rest) = (r / (g.c_in * g.kw), r % (g.c_in * g.kw));
    let (c, j) = (rest / g.kw, rest % g.kw);
    (c * g.kh + i) * g.kw + j
}

/// The output columns `lo..hi` whose input `x + j − pad` through kernel column `j` lies in the
/// image.
fn columns(g: &Geometry, j: usize) -> (usize, usize) {
    let lo = g.pad.saturating_sub(j).min(g.wo);
    let hi = (g.w + g.pad).saturating_sub(j).min(g.wo).max(lo);
    (lo, hi)
}

cpu::multiversion! {
/// The shifted planes (`len(g)` values) of one image `x` (`c_in × h × w`) into `out`, which
/// holds zeros or the shifted planes of another image of the same geometry: the padding, zero
/// in both, is not written again.
pub(crate) fn shift_image(g: &Geometry, x: &[f32], out: &mut [f32]) {
    let (wo, plane) = (g.wo, plane(g));
    if wo == g.w {
        // As wide as the image ("same" padding): copy j is the whole image moved by pad − j,
        // one contiguous copy, after which the columns that wrapped round from a neighbouring
        // row are cleared.
        let (hw, start) = (g.h * g.w, g.pad * wo);
        for c in 0..g.c_in {
            let image = &x[c * hw..][..hw];
            for j in 0..g.kw {
                let (lo, hi) = columns(g, j);
                let row = &mut out[(c * g.kw + j) * plane..][start..][..hw];
                if j <= g.pad {
                    let d = (g.pad - j).min(hw);
                    row[d..].copy_from_slice(&image[..hw - d]);
                } else {
                    let d = (j - g.pad).min(hw);
                    row[..hw - d].copy_from_slice(&image[d..]);
                }
                for r in row.chunks_exact_mut(wo) {
                    r[..lo].fill(0.0);
                    r[hi..].fill(0.0);
                }
            }
        }
        return;
    }
    for c in 0..g.c_in {
        let image = &x[c * g.h * g.w..][..g.h * g.w];
        for j in 0..g.kw {
            let (lo, hi) = columns(g, j);
            if lo == hi {
                continue;
            }
            let row = &mut out[(c * g.kw + j) * plane..][..plane];
            for (y, src) in image.chunks_exact(g.w).enumerate() {
                let at = (y + g.pad) * wo;
                cpu::copy_short(&mut row[at + lo..at + hi], &src[lo + j - g.pad..][..hi - lo]);
            }
        }
    }
}
}

cpu::multiversion! {
/// The image gradient `dx` (`c_in × h × w`, every value written) from the gradient of one
/// image's shifted planes `dq`: `dx[c, y, x]` is the sum over `j` of row `(c, j)` at
/// `(y + pad)·wo + x + pad − j`, for the `j` whose output column `x + pad − j` exists.
pub(crate) fn unshift(g: &Geometry, dq: &[f32], dx: &mut [MaybeUninit<f32>]) {
    let (wo, plane, w, kw) = (g.wo, plane(g), g.w, g.kw);
    // Columns every kernel column reaches: x + pad − j within 0..wo for all j.
    let mid_lo = (kw - 1).saturating_sub(g.pad).min(w);
    let mid_hi = wo.saturating_sub(g.pad).min(w).max(mid_lo);
    if wo == w {
        // As wide as the image: row (c, j)'s values for the whole image are contiguous, from
        // pad·wo + pad − j on, so the sum runs over the image at once; the columns some kernel
        // column does not reach read a neighbouring row there and are computed again.
        let hw = g.h * w;
        for c in 0..g.c_in {
            let dxc = &mut dx[c * hw..][..hw];
            let base = c * kw * plane + g.pad * wo + g.pad;
            let dxc = sum_columns(dxc, kw, |j| &dq[base - j + j * plane..][..hw]);
            for (y, row) in dxc.chunks_exact_mut(w).enumerate() {
                for x in (0..mid_lo).chain(mid_hi..w) {
                    row[x] = edge_value(g, dq, base + y * wo, x);
                }
            }
        }
        return;
    }
    for c in 0..g.c_in {
        let rows = dx[c * g.h * w..][..g.h * w].chunks_exact_mut(w);
        for (y, row) in rows.enumerate() {
            // row (c, j)'s value for column x is at base + j·(plane − 1) + x
            let base = c * kw * plane + (y + g.pad) * wo + g.pad;
            for x in (0..mid_lo).chain(mid_hi..w) {
                row[x].write(edge_value(g, dq, base, x));
            }
            let mid = &mut row[mid_lo..mid_hi];
            sum_columns(mid, kw, |j| &dq[base + j * plane + mid_lo - j..][..mid_hi - mid_lo]);
        }
    }
}
}

/// `dst` = the sum of the `kw` slices `at(j)` (each as long), up to three of them in one write
/// and the rest added after; every value written.
#[inline(always)]
fn sum_columns<'d, 's>(
    dst: &'d mut [MaybeUninit<f32>],
    kw: usize,
    at: impl Fn(usize) -> &'s [f32],
) -> &'d mut [f32] {
    match kw {
        1 => cpu::map_short(dst, [at(0)], |[a]| a),
        2 => cpu::map_short(dst, [at(0), at(1)], |[a, b]| a + b),
        _ => cpu::map_short(dst, [at(0), at(1), at(2)], |[a, b, c]| a + b + c),
    }
    // SAFETY: every value of `dst` was just written.
    let dst = unsafe { cpu::assume_init_mut(dst) };
    for j in 3..kw {
        for (d, &v) in dst.iter_mut().zip(at(j)) {
            *d += v;
        }
    }
    dst
}

/// [`unshift`]'s value for column `x` of the image row whose shifted values start at `base`
/// (row `(c, j)`'s value for column `x` is at `base + j·(plane − 1) + x`): the sum over the
/// kernel columns `j` that reach it.
#[inline(always)]
fn edge_value(g: &Geometry, dq: &[f32], base: usize, x: usize) -> f32 {
    let plane = plane(g);
    let mut sum = 0.0;
    for j in 0..g.kw {
        if x + g.pad >= j && x + g.pad - j < g.wo {
            sum += dq[base + j * plane + x - j];
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testutil::rng;
    use rand::Rng;

    const SHAPES: [(usize, usize, usize, usize, usize, usize); 11] = [
        (2, 5, 4, 3, 3, 1),
        (1, 4, 6, 1, 3, 0),
        (3, 3, 3, 3, 2, 2),
        (2, 6, 5, 5, 5, 2),
        (2, 9, 20, 3, 1, 1),
        (1, 3, 4, 2, 3, 0),
        (2, 4, 3, 1, 1, 2),
        (2, 7, 1, 3, 1, 0),
        (1, 1, 1, 3, 3, 1),
        (3, 2, 9, 1, 3, 1),
        (2, 3, 12, 3, 7, 3),
    ];

    /// Every shape of kernel and padding: row `(c, j)` of the shifted planes at `y·wo + x` is
    /// the padded image at `(y, x + j)`; the weights' order matches.
    #[test]
    fn shifted_planes_hold_the_padded_image_shifted() {
        let mut r = rng(9);
        for &(c, h, w, kh, kw, pad) in &SHAPES {
            let g = Geometry::new((c, h, w), (kh, kw), 1, pad).unwrap();
            let x: Vec<f32> = (0..c * h * w).map(|_| r.random::<f32>()).collect();
            // over the shift of another image, as a convolution's scratch holds
            let mut q = vec![0.0; len(&g)];
            let other: Vec<f32> = (0..c * h * w).map(|_| r.random::<f32>()).collect();
            shift_image(&g, &other, &mut q);
            shift_image(&g, &x, &mut q);
            let padded = |ch: usize, y: usize, xx: usize| -> f32 {
                let inside = (pad..pad + h).contains(&y) && (pad..pad + w).contains(&xx);
                if inside {
                    x[(ch * h + y - pad) * w + xx - pad]
                } else {
                    0.0
                }
            };
            for ch in 0..c {
                for j in 0..kw {
                    for y in 0..h + 2 * pad {
                        for xx in 0..g.wo {
                            let got = q[(ch * kw + j) * plane(&g) + y * g.wo + xx];
                            assert_eq!(got, padded(ch, y, xx + j), "{g:?} ({ch}, {j}) {y} {xx}");
                        }
                    }
                }
            }
            let wr = rows_first(&g, &(0..g.k()).map(|v| v as f32).collect::<Vec<_>>());
            for (r, &v) in wr.iter().enumerate() {
                assert_eq!(natural_index(&g, r), v as usize, "{g:?} weight {r}");
            }
        }
    }

    /// `unshift` is the adjoint of `shift_image`: ⟨shift(x), dq⟩ = ⟨x, unshift(dq)⟩ for any
    /// `dq`, and it writes every value.
    #[test]
    fn unshift_is_the_adjoint_of_the_shift() {
        let mut r = rng(10);
        for &(c, h, w, kh, kw, pad) in &SHAPES {
            let g = Geometry::new((c, h, w), (kh, kw), 1, pad).unwrap();
            let x: Vec<f32> = (0..c * h * w).map(|_| r.random::<f32>() - 0.5).collect();
            let mut q = vec![0.0; len(&g)];
            shift_image(&g, &x, &mut q);
            let dq: Vec<f32> = (0..len(&g)).map(|_| r.random::<f32>() - 0.5).collect();
            let mut dx = vec![MaybeUninit::new(f32::NAN); c * h * w];
            unshift(&g, &dq, &mut dx);
            // SAFETY: initialised above (and every value written by `unshift`).
            let dx = unsafe { cpu::assume_init_mut(&mut dx) };
            assert!(
                dx.iter().all(|v| v.is_finite()),
                "{g:?}: a value left unwritten"
            );
            let lhs: f64 = q.iter().zip(&dq).map(|(&a, &b)| a as f64 * b as f64).sum();
            let rhs: f64 = x
                .iter()
                .zip(dx.iter())
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            assert!((lhs - rhs).abs() < 1e-4, "{g:?}: {lhs} against {rhs}");
        }
    }
}
