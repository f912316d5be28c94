//! The stride-1 convolutions' operand without a column matrix: `kw` copies of the zero-padded
//! image, copy `j` shifted left by `j` ("shifted planes").
//!
//! Row `(c, j)` of the shifted planes holds `padded[c, q + j]` at `q`, the padded plane read
//! flat (`(h + 2·pad) · grid_w` values, then zeros); rows are [`stride`] apart. For kernel row
//! `i`, output grid position `p` reads input `padded[c, p + i·grid_w + j]` = row `(c, j)` at
//! `p + i·grid_w`: the column matrix of kernel row `i` is the shifted planes viewed from offset
//! `i·grid_w`, positions contiguous and rows `stride` apart, which a matrix product reads in
//! place. A convolution is then `kh` products over `kw·c_in` rows each, from `kw` copies of
//! the image instead of the `kh·kw` of im2col, and the input gradient comes back the same way
//! ([`unshift`]). The weights are taken in the matching order, `(i, c, j)` ([`rows_first`]).
//!
//! Where a shifted copy runs past the end of a grid row it holds the start of the next row:
//! only junk grid columns (past the output width) read there, whose gradient is zero.

use std::mem::MaybeUninit;

use super::cpu;
use super::im2col::Geometry;

/// Values of the padded plane: its rows × `grid_w`.
pub(crate) fn plane(g: &Geometry) -> usize {
    (g.h + 2 * g.pad) * g.grid_w
}

/// The distance between rows of the shifted planes: the plane and `kw` zeros, which a copy
/// shifted by up to `kw − 1` and the [`unshift`] of the row after it read.
pub(crate) fn stride(g: &Geometry) -> usize {
    plane(g) + g.kw
}

/// Values of one image's shifted planes (`kw · c_in` rows).
pub(crate) fn len(g: &Geometry) -> usize {
    g.kw * g.c_in * stride(g)
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

cpu::multiversion! {
/// The shifted planes (`len(g)` values) of one image `x` (`c_in × h × w`) into `out`, which
/// holds zeros or the shifted planes of another image of the same geometry: the padding and
/// the tails, zero in both, are not written again.
pub(crate) fn shift_image(g: &Geometry, x: &[f32], out: &mut [f32]) {
    let (wp, plane, stride) = (g.grid_w, plane(g), stride(g));
    for c in 0..g.c_in {
        let image = &x[c * g.h * g.w..][..g.h * g.w];
        let (first, rest) = out[c * g.kw * stride..][..g.kw * stride].split_at_mut(stride);
        // row (c, 0): the padded plane, then zeros
        for (y, src) in image.chunks_exact(g.w).enumerate() {
            let at = (y + g.pad) * wp + g.pad;
            cpu::copy_short(&mut first[at..at + g.w], src);
        }
        for (j, row) in rest.chunks_exact_mut(stride).enumerate() {
            row[..plane].copy_from_slice(&first[j + 1..][..plane]);
        }
    }
}
}

cpu::multiversion! {
/// The image gradient `dx` (`c_in × h × w`, every value written) from the gradient of one
/// image's shifted planes `dq` (whose rows' tails past the plane are zero): `dx[c, y, x]` is
/// the sum over `j` of row `(c, j)` at the padded position of `(y, x)` less `j` (before the
/// row's start: the zero tail of the row before).
pub(crate) fn unshift(g: &Geometry, dq: &[f32], dx: &mut [MaybeUninit<f32>]) {
    let (wp, stride, w) = (g.grid_w, stride(g), g.w);
    for c in 0..g.c_in {
        let rows = dx[c * g.h * w..][..g.h * w].chunks_exact_mut(w);
        for (y, row) in rows.enumerate() {
            // row (c, j)'s value for (y, x) is at base + j·(stride − 1) + x
            let base = c * g.kw * stride + (y + g.pad) * wp + g.pad;
            let s0 = &dq[base..][..w];
            if g.kw == 1 {
                for (d, &v) in row.iter_mut().zip(s0) {
                    d.write(v);
                }
                continue;
            }
            let s1 = &dq[base + stride - 1..][..w];
            for ((d, &a), &b) in row.iter_mut().zip(s0).zip(s1) {
                d.write(a + b);
            }
            // SAFETY: every value of the row was just written.
            let row = unsafe { cpu::assume_init_mut(row) };
            for j in 2..g.kw {
                let sj = &dq[base + j * (stride - 1)..][..w];
                for (d, &v) in row.iter_mut().zip(sj) {
                    *d += v;
                }
            }
        }
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testutil::rng;
    use rand::Rng;

    const SHAPES: [(usize, usize, usize, usize, usize, usize); 5] = [
        (2, 5, 4, 3, 3, 1),
        (1, 4, 6, 1, 3, 0),
        (3, 3, 3, 3, 2, 2),
        (2, 6, 5, 5, 5, 2),
        (2, 9, 20, 3, 1, 1),
    ];

    /// Every shape of kernel and padding: row `(c, j)` of the shifted planes at `q` is the
    /// padded plane, read flat, at `q + j`, and 0 past it; the weights' order matches.
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
            let wp = g.grid_w;
            let padded = |ch: usize, at: usize| -> f32 {
                let (y, xx) = (at / wp, at % wp);
                let inside = (pad..pad + h).contains(&y) && (pad..pad + w).contains(&xx);
                if at < plane(&g) && inside {
                    x[(ch * h + y - pad) * w + xx - pad]
                } else {
                    0.0
                }
            };
            for ch in 0..c {
                for j in 0..kw {
                    for at in 0..stride(&g) {
                        let want = if at < plane(&g) {
                            padded(ch, at + j)
                        } else {
                            0.0
                        };
                        let got = q[(ch * kw + j) * stride(&g) + at];
                        assert_eq!(got, want, "{g:?} row ({ch}, {j}) at {at}");
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
    /// `dq` whose rows' tails are zero.
    #[test]
    fn unshift_is_the_adjoint_of_the_shift() {
        let mut r = rng(10);
        for &(c, h, w, kh, kw, pad) in &SHAPES {
            let g = Geometry::new((c, h, w), (kh, kw), 1, pad).unwrap();
            let x: Vec<f32> = (0..c * h * w).map(|_| r.random::<f32>() - 0.5).collect();
            let mut q = vec![0.0; len(&g)];
            shift_image(&g, &x, &mut q);
            let dq: Vec<f32> = (0..len(&g))
                .map(|at| {
                    if at % stride(&g) < plane(&g) {
                        r.random::<f32>() - 0.5
                    } else {
                        0.0
                    }
                })
                .collect();
            let mut dx = vec![MaybeUninit::new(f32::NAN); c * h * w];
            unshift(&g, &dq, &mut dx);
            // SAFETY: initialised above (and every value written by `unshift`).
            let dx = unsafe { cpu::assume_init_mut(&mut dx) };
            let lhs: f64 = q.iter().zip(&dq).map(|(&a, &b)| a as f64 * b as f64).sum();
            let rhs: f64 = x
                .iter()
                .zip(dx.iter())
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            assert!(
                dx.iter().all(|v| v.is_finite()),
                "{g:?}: a value left unwritten"
            );
            assert!((lhs - rhs).abs() < 1e-4, "{g:?}: {lhs} against {rhs}");
        }
    }
}
