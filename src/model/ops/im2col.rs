//! The geometry of a 2-D convolution over one image, and, where the stride is above 1, the
//! unfolding of an image into the columns a convolution multiplies (im2col) and back with
//! accumulation (col2im). Stride-1 convolutions read shifted copies of the padded image instead
//! (`shifted`).
//!
//! The column matrix of one image has `K = c_in·kh·kw` rows and one column per position of
//! the output grid: row `(c, i, j)` holds, for every output position `(oh, ow)`, the input
//! pixel `x[c, oh·stride + i − pad, ow·stride + j − pad]`, or 0 outside the image.

use candle_core::{bail, Result};

use super::cpu;

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
        Ok(Geometry {
            c_in,
            h,
            w,
            kh,
            kw,
            stride,
            pad,
            ho: (h + 2 * pad - kh) / stride + 1,
            wo: (w + 2 * pad - kw) / stride + 1,
        })
    }

    /// Rows of the column matrix (the reduction length of the product).
    pub fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Output positions per channel (columns of the column matrix).
    pub fn p(&self) -> usize {
        self.ho * self.wo
    }

    /// Whether the convolution reads shifted copies of the zero-padded image (stride 1, not
    /// pointwise; see `shifted`) rather than a column matrix.
    pub fn is_shifted(&self) -> bool {
        self.stride == 1 && !self.is_pointwise()
    }

    /// Elements of one input image.
    pub fn image(&self) -> usize {
        self.c_in * self.h * self.w
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
/// Fills `col` (`K × p`, row-major) from one image `x` (`c_in × h × w`); `col` holds zeros
/// or the columns of another image of the same geometry: the values that read the padding, zero
/// in both, are not written again. Not for stride 1 (see [`Geometry::is_shifted`]).
pub(crate) fn im2col(g: &Geometry, x: &[f32], col: &mut [f32]) {
    debug_assert!(!g.is_shifted());
    let (p, s) = (g.p(), g.stride);
    let mut rows = col[..g.k() * p].chunks_exact_mut(p);
    for c in 0..g.c_in {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
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
                    let out = &mut row[oh * g.wo + ow_lo..oh * g.wo + ow_hi];
                    let start = ih * g.w + ow_lo * s + j - g.pad;
                    let src = &plane[start..start + (out.len() - 1) * s + 1];
                    if let (2, Some((last, body))) = (s, out.split_last_mut()) {
                        // pairs, whose first values a vector loop takes two registers at a time
                        for (o, pair) in body.iter_mut().zip(src.chunks_exact(2)) {
                            *o = pair[0];
                        }
                        *last = src[src.len() - 1];
                    } else {
                        for (o, v) in out.iter_mut().zip(src.iter().step_by(s)) {
                            *o = *v;
                        }
                    }
                }
            }
        }
    }
}
}

cpu::multiversion! {
/// Adds the columns `col` (`K × p`) back onto the image gradient `dx` (`c_in × h × w`); not
/// for stride 1.
pub(crate) fn col2im(g: &Geometry, col: &[f32], dx: &mut [f32]) {
    debug_assert!(!g.is_shifted());
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
        let n = g.p();
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
                                col[r * n + oh * g.wo + ow] =
                                    x[(c * g.h + ih as usize) * g.w + iw as usize];
                            }
                        }
                    }
                }
            }
        }
        col
    }

    #[test]
    fn im2col_and_col2im_match_the_definition() {
        for (c, h, w, kh, kw, s, p) in [
            (1, 5, 5, 3, 3, 2, 1),
            (2, 7, 6, 3, 2, 2, 1),
            (3, 4, 9, 1, 1, 1, 0),
            (1, 6, 6, 5, 5, 3, 2),
            (2, 3, 3, 3, 3, 2, 2),
            (1, 8, 5, 2, 4, 3, 0),
            (2, 6, 7, 3, 3, 2, 0),
            (2, 9, 9, 1, 1, 2, 0),
        ] {
            let g = Geometry::new((c, h, w), (kh, kw), s, p).unwrap();
            let x: Vec<f32> = (0..g.image()).map(|i| i as f32 + 1.0).collect();
            // over the columns of another image, as a convolution's scratch holds
            let mut col = vec![0.0; g.k() * g.p()];
            let other: Vec<f32> = (0..g.image()).map(|i| i as f32 * 0.5 - 7.0).collect();
            im2col(&g, &other, &mut col);
            im2col(&g, &x, &mut col);
            let want = naive_im2col(&g, &x);
            assert_eq!(col, want, "{g:?}");
            // col2im is the adjoint: <im2col(x), y> = <x, col2im(y)>.
            let y: Vec<f32> = (0..col.len()).map(|i| (i % 7) as f32 - 3.0).collect();
            let mut dx = vec![0.0; g.image()];
            col2im(&g, &y, &mut dx);
            let lhs: f32 = want.iter().zip(&y).map(|(a, b)| a * b).sum();
            let rhs: f32 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
            assert_eq!(lhs, rhs, "{g:?}");
        }
    }
}
