//! The geometry of a 2-D convolution over one image, and the unfolding of an image into the
//! columns a convolution multiplies (im2col) and back with accumulation (col2im).
//!
//! The column matrix of one image has `K = c_in·kh·kw` rows and one column per position of
//! the output grid: row `(c, i, j)` holds, for every output position `(oh, ow)`, the input
//! pixel `x[c, oh·stride + i − pad, ow·stride + j − pad]`, or 0 outside the image.
//!
//! With stride 1 the grid is as wide as the zero-padded input (`w + 2·pad`), wider than the
//! output (`wo`): then each row of the column matrix is one contiguous run of the padded
//! image, copied (or added back) in one piece. The extra `grid_w − wo` columns of each grid
//! row are junk: the forward pass ignores them and the gradient there must be zero. There the
//! matrix can also be built and folded back a slice of grid positions at a time
//! ([`unfold_span`], [`fold_span`]), so that a slice stays in cache until it is multiplied.

use std::ops::Range;

use candle_core::{bail, Result};

use super::cpu;

/// Elements of one slice of a column matrix the padded path builds and multiplies at a time
/// (384 KiB: it stays in the core's L2 cache between being written and being read; on a
/// 2 MiB L2, vgg-bn trained about 3% faster than with 128 KiB).
pub(crate) const SLICE_ELEMENTS: usize = 96 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
    /// Width of the output grid: `w + 2·pad` on the padded path, else `wo`.
    pub grid_w: usize,
}

impl Geometry {
    pub fn new(
        (c_in, h, w): (usize, usize, usize),
        (kh, kw): (usize, usize),
        stride: usize,
        pad: usize,
    ) -> Result<Self> {
        if stride == 0 || kh == 0 || kw == 0 {
            bail!("conv2d: kernel {kh}×{kw} and stride {stride} must be positive")
        }
        if h + 2 * pad < kh || w + 2 * pad < kw {
            bail!(
                "conv2d: kernel {kh}×{kw} is larger than the padded input {h}×{w} (padding {pad})"
            )
        }
        let wo = (w + 2 * pad - kw) / stride + 1;
        let pointwise = kh == 1 && kw == 1 && stride == 1 && pad == 0;
        Ok(Geometry {
            c_in,
            h,
            w,
            kh,
            kw,
            stride,
            pad,
            ho: (h + 2 * pad - kh) / stride + 1,
            wo,
            grid_w: if stride == 1 && !pointwise {
                w + 2 * pad
            } else {
                wo
            },
        })
    }

    /// Rows of the column matrix (the reduction length of the product).
    pub fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Output positions per channel.
    pub fn p(&self) -> usize {
        self.ho * self.wo
    }

    /// Positions of the output grid (columns of the column matrix), junk columns included.
    pub fn grid(&self) -> usize {
        self.ho * self.grid_w
    }

    /// Whether the column matrix is built from a zero-padded copy of the image, over a grid
    /// `grid_w` wide (stride 1, not pointwise). Output `(oh, ow)` is grid column `oh·grid_w + ow`.
    pub fn is_padded(&self) -> bool {
        self.stride == 1 && !self.is_pointwise()
    }

    /// Grid positions per slice of the column matrix on the padded path: as many as keep a
    /// slice (`K × span`) within [`SLICE_ELEMENTS`], in whole multiples of 48 (the products'
    /// 6-column tiles then have no ragged edge inside the grid), else the whole grid.
    pub fn span(&self) -> usize {
        if self.is_padded() {
            (SLICE_ELEMENTS / self.k() / 48 * 48)
                .max(48)
                .min(self.grid())
        } else {
            self.grid()
        }
    }

    /// Elements of one input image.
    pub fn image(&self) -> usize {
        self.c_in * self.h * self.w
    }

    /// Scratch for the zero-padded image on the padded path (with room for the last row's
    /// overhang), else 0.
    pub fn padded_len(&self) -> usize {
        if self.is_padded() {
            self.c_in * (self.h + 2 * self.pad) * self.grid_w + self.kw
        } else {
            0
        }
    }

    /// A 1×1 kernel with stride 1 and no padding: the image already is its column matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }

    /// For kernel offset `j` along a row of length `len` (output length `out`), the output
    /// positions whose input `o·stride + j − pad` lies inside `0..len`.
    fn valid(&self, j: usize, len: usize, out: usize) -> (usize, usize) {
        let s = self.stride;
        // first o with o·s + j ≥ pad
        let lo = if j >= self.pad {
            0
        } else {
            (self.pad - j).div_ceil(s)
        };
        // last o with o·s + j − pad ≤ len − 1, i.e. o·s ≤ len − 1 + pad − j
        let hi = if len + self.pad > j {
            ((len - 1 + self.pad - j) / s + 1).min(out)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
}

cpu::multiversion! {
/// The padded path's first step: `padded` (of `padded_len()` elements) becomes the image `x`
/// with a border of `pad` zeros, rows `grid_w` wide.
pub(crate) fn pad_image(g: &Geometry, x: &[f32], padded: &mut [f32]) {
    let (hp, wp) = (g.h + 2 * g.pad, g.grid_w);
    let xp = &mut padded[..g.padded_len()];
    xp.fill(0.0);
    for c in 0..g.c_in {
        for y in 0..g.h {
            let at = (c * hp + y + g.pad) * wp + g.pad;
            xp[at..at + g.w].copy_from_slice(&x[(c * g.h + y) * g.w..][..g.w]);
        }
    }
}
}

cpu::multiversion! {
/// The columns `span` of the padded path's column matrix, from the image [`pad_image`] left
/// in `padded`, into `col` (`K × span.len()`, row-major).
pub(crate) fn unfold_span(g: &Geometry, padded: &[f32], span: Range<usize>, col: &mut [f32]) {
    let (hp, wp, len) = (g.h + 2 * g.pad, g.grid_w, span.len());
    let mut rows = col[..g.k() * len].chunks_exact_mut(len);
    for c in 0..g.c_in {
        for i in 0..g.kh {
            for j in 0..g.kw {
                if let Some(row) = rows.next() {
                    row.copy_from_slice(&padded[(c * hp + i) * wp + j + span.start..][..len]);
                }
            }
        }
    }
}
}

cpu::multiversion! {
/// Adds the columns `span` of a padded-path column matrix (`col`, `K × span.len()`) onto the
/// padded image gradient `padded`; junk columns must be zero.
pub(crate) fn fold_span(g: &Geometry, col: &[f32], span: Range<usize>, padded: &mut [f32]) {
    let (hp, wp, len) = (g.h + 2 * g.pad, g.grid_w, span.len());
    let mut rows = col[..g.k() * len].chunks_exact(len);
    for c in 0..g.c_in {
        for i in 0..g.kh {
            for j in 0..g.kw {
                if let Some(row) = rows.next() {
                    let dst = &mut padded[(c * hp + i) * wp + j + span.start..][..len];
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d += v;
                    }
                }
            }
        }
    }
}
}

cpu::multiversion! {
/// Adds the inside of the padded image gradient `padded` (all [`fold_span`]s done) onto the
/// image gradient `dx` (`c_in × h × w`).
pub(crate) fn unpad_add(g: &Geometry, padded: &[f32], dx: &mut [f32]) {
    let (hp, wp) = (g.h + 2 * g.pad, g.grid_w);
    for c in 0..g.c_in {
        for y in 0..g.h {
            let at = (c * hp + y + g.pad) * wp + g.pad;
            let dst = &mut dx[(c * g.h + y) * g.w..][..g.w];
            for (d, &v) in dst.iter_mut().zip(&padded[at..at + g.w]) {
                *d += v;
            }
        }
    }
}
}

cpu::multiversion! {
/// Fills `col` (`K × grid`, row-major) from one image `x` (`c_in × h × w`); `padded` is scratch
/// of `padded_len()` elements.
pub(crate) fn im2col(g: &Geometry, x: &[f32], col: &mut [f32], padded: &mut [f32]) {
    if g.is_padded() {
        pad_image(g, x, padded);
        unfold_span(g, padded, 0..g.grid(), col);
        return;
    }
    let (p, s) = (g.p(), g.stride);
    let mut rows = col[..g.k() * p].chunks_exact_mut(p);
    for c in 0..g.c_in {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            let (oh_lo, oh_hi) = g.valid(i, g.h, g.ho);
            for j in 0..g.kw {
                let Some(row) = rows.next() else { return };
                let (ow_lo, ow_hi) = g.valid(j, g.w, g.wo);
                row[..oh_lo * g.wo].fill(0.0);
                row[oh_hi * g.wo..].fill(0.0);
                for oh in oh_lo..oh_hi {
                    let ih = oh * s + i - g.pad;
                    let out = &mut row[oh * g.wo..(oh + 1) * g.wo];
                    out[..ow_lo].fill(0.0);
                    out[ow_hi..].fill(0.0);
                    if ow_lo == ow_hi {
                        continue;
                    }
                    let start = ih * g.w + ow_lo * s + j - g.pad;
                    for (o, v) in out[ow_lo..ow_hi].iter_mut().zip(plane[start..].iter().step_by(s)) {
                        *o = *v;
                    }
                }
            }
        }
    }
}
}

cpu::multiversion! {
/// Adds the columns `col` (`K × grid`) back onto the image gradient `dx` (`c_in × h × w`);
/// `padded` is scratch of `padded_len()` elements. Junk grid columns must be zero.
pub(crate) fn col2im(g: &Geometry, col: &[f32], dx: &mut [f32], padded: &mut [f32]) {
    if g.is_padded() {
        padded[..g.padded_len()].fill(0.0);
        fold_span(g, col, 0..g.grid(), padded);
        unpad_add(g, padded, dx);
        return;
    }
    let (p, s) = (g.p(), g.stride);
    let mut rows = col[..g.k() * p].chunks_exact(p);
    for c in 0..g.c_in {
        let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            let (oh_lo, oh_hi) = g.valid(i, g.h, g.ho);
            for j in 0..g.kw {
                let Some(row) = rows.next() else { return };
                let (ow_lo, ow_hi) = g.valid(j, g.w, g.wo);
                if ow_lo == ow_hi {
                    continue;
                }
                for oh in oh_lo..oh_hi {
                    let ih = oh * s + i - g.pad;
                    let src = &row[oh * g.wo + ow_lo..oh * g.wo + ow_hi];
                    let start = ih * g.w + ow_lo * s + j - g.pad;
                    for (d, v) in plane[start..].iter_mut().step_by(s).zip(src) {
                        *d += *v;
                    }
                }
            }
        }
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_im2col(g: &Geometry, x: &[f32]) -> Vec<f32> {
        let n = g.grid();
        let mut col = vec![0.0; g.k() * n];
        for c in 0..g.c_in {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let r = (c * g.kh + i) * g.kw + j;
                    for oh in 0..g.ho {
                        for ow in 0..g.wo {
                            let ih = (oh * g.stride + i) as isize - g.pad as isize;
                            let iw = (ow * g.stride + j) as isize - g.pad as isize;
                            if ih >= 0 && iw >= 0 && (ih as usize) < g.h && (iw as usize) < g.w {
                                col[r * n + oh * g.grid_w + ow] =
                                    x[(c * g.h + ih as usize) * g.w + iw as usize];
                            }
                        }
                    }
                }
            }
        }
        col
    }

    /// Zeroes the junk columns of a `K × grid` matrix.
    fn clear_junk(g: &Geometry, col: &mut [f32]) {
        for row in col.chunks_exact_mut(g.grid()) {
            for line in row.chunks_exact_mut(g.grid_w) {
                line[g.wo..].fill(0.0);
            }
        }
    }

    #[test]
    fn im2col_and_col2im_match_the_definition() {
        for (c, h, w, kh, kw, s, p) in [
            (1, 5, 5, 3, 3, 1, 1),
            (2, 7, 6, 3, 2, 2, 1),
            (3, 4, 9, 1, 1, 1, 0),
            (1, 6, 6, 5, 5, 3, 2),
            (2, 3, 3, 3, 3, 1, 2),
            (1, 8, 5, 2, 4, 3, 0),
            (2, 6, 7, 3, 3, 1, 0),
            (2, 5, 4, 2, 3, 1, 1),
        ] {
            let g = Geometry::new((c, h, w), (kh, kw), s, p).unwrap();
            let x: Vec<f32> = (0..g.image()).map(|i| i as f32 + 1.0).collect();
            let mut col = vec![f32::NAN; g.k() * g.grid()];
            let mut scratch = vec![f32::NAN; g.padded_len()];
            im2col(&g, &x, &mut col, &mut scratch);
            clear_junk(&g, &mut col);
            let want = naive_im2col(&g, &x);
            assert_eq!(col, want, "{g:?}");
            // col2im is the adjoint: <im2col(x), y> = <x, col2im(y)> for y zero on junk.
            let mut y: Vec<f32> = (0..col.len()).map(|i| (i % 7) as f32 - 3.0).collect();
            clear_junk(&g, &mut y);
            let mut dx = vec![0.0; g.image()];
            col2im(&g, &y, &mut dx, &mut scratch);
            let lhs: f32 = want.iter().zip(&y).map(|(a, b)| a * b).sum();
            let rhs: f32 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
            assert_eq!(lhs, rhs, "{g:?}");
        }
    }

    #[test]
    fn slices_of_the_padded_path_make_up_the_whole_matrix() {
        for (c, h, w, k, p, span) in [(2, 5, 6, 3, 1, 7), (3, 8, 8, 3, 1, 64), (1, 4, 9, 5, 2, 5)] {
            let g = Geometry::new((c, h, w), (k, k), 1, p).unwrap();
            assert!(g.is_padded());
            let x: Vec<f32> = (0..g.image()).map(|i| i as f32 + 1.0).collect();
            let (rows, n) = (g.k(), g.grid());
            let mut whole = vec![0.0; rows * n];
            let mut scratch = vec![f32::NAN; g.padded_len()];
            im2col(&g, &x, &mut whole, &mut scratch);
            let mut y: Vec<f32> = (0..whole.len()).map(|i| (i % 5) as f32 - 2.0).collect();
            clear_junk(&g, &mut y);
            let mut want_dx = vec![0.0; g.image()];
            col2im(&g, &y, &mut want_dx, &mut scratch.clone());

            let mut padded = vec![f32::NAN; g.padded_len()];
            pad_image(&g, &x, &mut padded);
            let mut grad = vec![0.0; g.padded_len()];
            let mut slice = vec![f32::NAN; rows * span];
            for start in (0..n).step_by(span) {
                let piece = start..(start + span).min(n);
                let len = piece.len();
                unfold_span(&g, &padded, piece.clone(), &mut slice);
                for r in 0..rows {
                    assert_eq!(slice[r * len..(r + 1) * len], whole[r * n + start..][..len]);
                    slice[r * len..(r + 1) * len].copy_from_slice(&y[r * n + start..][..len]);
                }
                fold_span(&g, &slice, piece, &mut grad);
            }
            let mut dx = vec![0.0; g.image()];
            unpad_add(&g, &grad, &mut dx);
            assert_eq!(dx, want_dx, "{g:?}");
        }
    }
}
