//! A bounds-checked wrapper over the `gemm` crate's f32 kernel (the one candle itself uses), for
//! row-major and transposed operands given by strides.

use std::marker::PhantomData;
use std::mem::MaybeUninit;

pub(crate) use ::gemm::Parallelism;
use candle_core::{bail, Result};

/// A read-only matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            rs: 1,
            cs: cols,
        }
    }

    /// This matrix transposed.
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// A writable matrix view: element `(i, j)` is value `i * rs + j * cs` of its data, which may be
/// uninitialised memory that a product writes (and does not accumulate into).
pub(crate) struct MatMut<'a> {
    data: *mut f32,
    len: usize,
    pub rs: usize,
    pub cs: usize,
    uninit: bool,
    _data: PhantomData<&'a mut [f32]>,
}

impl<'a> MatMut<'a> {
    /// A matrix with strides `rs` and `cs` over `data`.
    pub fn strided(data: &'a mut [f32], rs: usize, cs: usize) -> Self {
        MatMut {
            data: data.as_mut_ptr(),
            len: data.len(),
            rs,
            cs,
            uninit: false,
            _data: PhantomData,
        }
    }

    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a mut [f32], cols: usize) -> Self {
        Self::strided(data, cols, 1)
    }

    /// A column-major matrix with `rows` rows (the transpose of a row-major `cols × rows`).
    pub fn cols(data: &'a mut [f32], rows: usize) -> Self {
        Self::strided(data, 1, rows)
    }

    /// [`MatMut::cols`] over uninitialised memory, which a product then writes in full.
    pub fn uninit_cols(data: &'a mut [MaybeUninit<f32>], rows: usize) -> Self {
        MatMut {
            data: data.as_mut_ptr().cast::<f32>(),
            len: data.len(),
            rs: 1,
            cs: rows,
            uninit: true,
            _data: PhantomData,
        }
    }
}

/// `dst (m×n) = [dst +] lhs (m×k) · rhs (k×n)` (not `+` into uninitialised memory).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: MatMut<'_>,
    accumulate: bool,
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    parallelism: Parallelism,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    let dst_fits = (m - 1) * dst.rs + (n - 1) * dst.cs < dst.len;
    if !dst_fits || !lhs.fits(m, k) || !rhs.fits(k, n) {
        bail!("gemm {m}×{k}·{k}×{n}: an operand is smaller than its shape and strides")
    }
    if accumulate && dst.uninit {
        bail!("gemm {m}×{k}·{k}×{n}: accumulating into uninitialised memory")
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    // SAFETY: inside `dst`'s data, checked above.
                    unsafe { dst.data.add(i * dst.rs + j * dst.cs).write(0.0) };
                }
            }
        }
        return Ok(());
    }
    // SAFETY: every index the kernel touches, (i, j) ↦ i·rs + j·cs with i, j below the shape,
    // was checked above to lie inside the slices; `dst` is borrowed mutably, so it cannot alias
    // `lhs` or `rhs`; without `accumulate` the kernel writes `dst` without reading it, so it
    // may be uninitialised.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            dst.data,
            dst.cs as isize,
            dst.rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: Mat, b: Mat) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| a.data[i * a.rs + p * a.cs] * b.data[p * b.rs + j * b.cs])
                    .sum();
            }
        }
        out
    }

    #[test]
    fn matches_a_naive_product_with_transposes_and_accumulation() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 - 1.0).collect();
        for (la, lb) in [
            (Mat::rows(&a, k), Mat::rows(&b, n)),
            (Mat::transposed(&a, m), Mat::transposed(&b, k)),
        ] {
            let want = naive(m, n, k, la, lb);
            let mut got = vec![1.0; m * n];
            gemm(
                m,
                n,
                k,
                MatMut::rows(&mut got, n),
                false,
                la,
                lb,
                Parallelism::None,
            )
            .unwrap();
            assert_eq!(got, want);
            gemm(
                m,
                n,
                k,
                MatMut::rows(&mut got, n),
                true,
                la,
                lb,
                Parallelism::None,
            )
            .unwrap();
            let twice: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
            assert_eq!(got, twice);
            // Column-major destination: the transpose of the row-major result.
            let mut t = vec![0.0; m * n];
            gemm(
                m,
                n,
                k,
                MatMut::cols(&mut t, m),
                false,
                la,
                lb,
                Parallelism::None,
            )
            .unwrap();
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(t[j * m + i], want[i * n + j]);
                }
            }
        }
    }

    /// Shapes large enough for every microkernel and cache block of the widest kernels the
    /// CPU has (AVX-512 where it has them), in all the layouts the convolutions use: each
    /// value within f32 rounding of the f64 product, relative to `Σ |a·b|`.
    #[test]
    fn large_random_products_are_exact_to_rounding_in_every_layout() {
        use rand::Rng;
        let mut r = crate::model::ops::testutil::rng(5);
        for &(m, n, k) in &[
            (64, 48, 300),
            (97, 130, 1100),
            (33, 700, 77),
            (300, 17, 2500),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| r.random::<f32>() - 0.5).collect();
            let b: Vec<f32> = (0..k * n).map(|_| r.random::<f32>() - 0.5).collect();
            let start: Vec<f32> = (0..m * n).map(|_| r.random::<f32>() - 0.5).collect();
            for (la, lb) in [
                (Mat::rows(&a, k), Mat::rows(&b, n)),
                (Mat::transposed(&a, m), Mat::rows(&b, n)),
                (Mat::rows(&a, k), Mat::transposed(&b, k)),
                (Mat::transposed(&a, m), Mat::transposed(&b, k)),
            ] {
                for (cols, accumulate) in [(false, false), (true, true), (true, false)] {
                    let mut got = start.clone();
                    let dst = if cols {
                        MatMut::cols(&mut got, m)
                    } else {
                        MatMut::rows(&mut got, n)
                    };
                    gemm(m, n, k, dst, accumulate, la, lb, Parallelism::None).unwrap();
                    for i in 0..m {
                        for j in 0..n {
                            let terms = (0..k).map(|p| {
                                la.data[i * la.rs + p * la.cs] as f64
                                    * lb.data[p * lb.rs + j * lb.cs] as f64
                            });
                            let (want, size) =
                                terms.fold((0f64, 0f64), |(s, t), v| (s + v, t + v.abs()));
                            let at = if cols { j * m + i } else { i * n + j };
                            let want = want + if accumulate { start[at] as f64 } else { 0.0 };
                            let err = (got[at] as f64 - want).abs();
                            assert!(
                                err <= 1e-6 * (size + 1.0),
                                "{m}×{n}×{k} cols {cols} accumulate {accumulate}: ({i}, {j}) is \
                                 {} against {want}",
                                got[at]
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn rejects_operands_too_small() {
        let a = vec![0.0; 5];
        let mut d = vec![0.0; 4];
        let (l, r) = (Mat::rows(&a, 3), Mat::rows(&a, 2));
        assert!(gemm(
            2,
            2,
            3,
            MatMut::rows(&mut d, 2),
            false,
            l,
            r,
            Parallelism::None
        )
        .is_err());
    }
}
