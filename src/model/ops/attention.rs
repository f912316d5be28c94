//! Multi-head scaled dot-product attention from packed queries, keys and values
//! (`batch × tokens × 3·width`, as one projection makes them) to the heads' outputs side by
//! side (`batch × tokens × width`): on the CPU one op that reads each head's queries, keys and
//! values in place by strides, with the softmax fused between its two products and recomputed
//! in the backward instead of stored.

use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, D};

use super::approx;
use super::cpu;
use super::matmul::{gemm, Mat, MatMut, Parallelism};

const NAME: &str = "attention";

/// `softmax(q·kᵀ / √dh) · v` per head of `qkv` (`batch × tokens × 3·width`: the queries, keys
/// and values of all heads, each `width` wide, head by head); the result is
/// `batch × tokens × width`, the heads in order. Under mixed precision the softmax is taken in
/// f32.
pub fn attention(qkv: &Tensor, heads: usize) -> Result<Tensor> {
    let (_, _, packed) = qkv.dims3()?;
    if heads == 0 || !packed.is_multiple_of(3 * heads) {
        bail!("{NAME}: {packed} packed features do not split into 3 × {heads} heads")
    }
    if cpu::fast_path(&[qkv]) {
        return qkv.contiguous()?.apply_op1(Attention { heads });
    }
    attention_generic(qkv, heads)
}

/// The same computation with candle's own ops (other devices and dtypes; the twin of the CPU
/// op).
pub fn attention_generic(qkv: &Tensor, heads: usize) -> Result<Tensor> {
    let (n, t, packed) = qkv.dims3()?;
    let width = packed / 3;
    let dh = width / heads;
    let qkv = qkv
        .reshape((n, t, 3, heads, dh))?
        .permute((2, 0, 3, 1, 4))?;
    let q = qkv.get(0)?.contiguous()?;
    let k = qkv.get(1)?.contiguous()?;
    let v = qkv.get(2)?.contiguous()?;
    let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (dh as f64).sqrt()))?;
    // `candle_nn::ops::softmax`, not the fused `softmax_last_dim`, which has no backward.
    let attn = match scores.dtype() {
        DType::BF16 | DType::F16 => {
            candle_nn::ops::softmax(&scores.to_dtype(DType::F32)?, D::Minus1)?
                .to_dtype(scores.dtype())?
        }
        _ => candle_nn::ops::softmax(&scores, D::Minus1)?,
    };
    attn.matmul(&v)?.transpose(1, 2)?.reshape((n, t, width))
}

struct Attention {
    heads: usize,
}

/// The sizes of one call: images, tokens, width, head width.
#[derive(Clone, Copy)]
struct Dims {
    n: usize,
    t: usize,
    w: usize,
    dh: usize,
}

impl Dims {
    fn of(shape: &Shape, heads: usize) -> Result<Self> {
        let (n, t, packed) = shape.dims3()?;
        let w = packed / 3;
        Ok(Self {
            n,
            t,
            w,
            dh: w / heads,
        })
    }

    fn scale(&self) -> f32 {
        1.0 / (self.dh as f32).sqrt()
    }
}

/// One image's packed `tokens × 3·width` values, and where head `h`'s queries, keys and values
/// start in them (rows `3·width` apart).
struct Packed<'a> {
    data: &'a [f32],
    d: Dims,
}

impl<'a> Packed<'a> {
    fn part(&self, which: usize, h: usize) -> &'a [f32] {
        &self.data[which * self.d.w + h * self.d.dh..]
    }

    /// Head `h`'s `tokens × dh` queries (0), keys (1) or values (2).
    fn mat(&self, which: usize, h: usize) -> Mat<'a> {
        Mat::rows(self.part(which, h), 3 * self.d.w)
    }

    /// Their transpose.
    fn mat_t(&self, which: usize, h: usize) -> Mat<'a> {
        Mat::transposed(self.part(which, h), 3 * self.d.w)
    }
}

/// `p` (`t × t`) = the softmax of `scale · (q·kᵀ)` of head `h`, row by row.
fn probabilities(qkv: &Packed, h: usize, p: &mut [f32]) -> Result<()> {
    let t = qkv.d.t;
    let scores = MatMut::rows(p, t);
    gemm(
        t,
        t,
        qkv.d.dh,
        scores,
        false,
        qkv.mat(0, h),
        qkv.mat_t(1, h),
        Parallelism::None,
    )?;
    softmax_rows(p, t, qkv.d.scale());
    Ok(())
}

cpu::multiversion! {
    /// Each row of `p` (rows of `len`) becomes the softmax of `scale` times itself.
    fn softmax_rows(p: &mut [f32], len: usize, scale: f32) {
        for row in p.chunks_exact_mut(len.max(1)) {
            let max = approx::max(row);
            for v in row.iter_mut() {
                *v = approx::exp_nonpositive((*v - max) * scale);
            }
            let inv = 1.0 / approx::sum(row);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

cpu::multiversion! {
    /// The gradient of the scores from that of the probabilities `dp` (in place) and the
    /// probabilities `p`: `scale · p ⊙ (dp − Σ dp ⊙ p)` row by row.
    fn softmax_backward_rows(dp: &mut [f32], p: &[f32], len: usize, scale: f32) {
        let len = len.max(1);
        for (drow, prow) in dp.chunks_exact_mut(len).zip(p.chunks_exact(len)) {
            let dot = approx::dot(drow, prow);
            for (d, &p) in drow.iter_mut().zip(prow) {
                *d = scale * p * (*d - dot);
            }
        }
    }
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = cpu::storage_f32(s, l, NAME)?;
        let d = Dims::of(l.shape(), self.heads)?;
        let (t, w) = (d.t, d.w);
        // Every value is written: each head's product fills its dh columns of every row.
        let mut out = vec![0f32; d.n * t * w];
        let ranges = cpu::ranges(d.n, 4 * cpu::MAX_CHUNKS);
        let outs = cpu::split_mut(&mut out, &ranges, t * w);
        let tasks: Vec<_> = ranges.into_iter().zip(outs).collect();
        cpu::run(tasks, |(images, out)| {
            let mut p = vec![0f32; t * t];
            for (i, img) in images.enumerate() {
                let packed = Packed {
                    data: &qkv[img * t * 3 * w..(img + 1) * t * 3 * w],
                    d,
                };
                let out = &mut out[i * t * w..(i + 1) * t * w];
                for h in 0..self.heads {
                    probabilities(&packed, h, &mut p)?;
                    let dst = MatMut::rows(&mut out[h * d.dh..], w);
                    let probs = Mat::rows(&p, t);
                    gemm(
                        t,
                        d.dh,
                        t,
                        dst,
                        false,
                        probs,
                        packed.mat(2, h),
                        Parallelism::None,
                    )?;
                }
            }
            Ok(())
        })?;
        Ok((CpuStorage::F32(out), Shape::from((d.n, t, w))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        if !arg.track_op() {
            return Ok(None);
        }
        let d = Dims::of(arg.shape(), self.heads)?;
        let (t, w, dh) = (d.t, d.w, d.dh);
        let arg = arg.contiguous()?;
        let (xs, xl) = arg.storage_and_layout();
        let qkv = cpu::tensor_f32(&xs, xl, NAME)?;
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let g = cpu::tensor_f32(&gs, gl, NAME)?;
        if g.len() != d.n * t * w {
            bail!("{NAME}: gradient of the wrong size")
        }
        // Every value is written: the queries', keys' and values' gradients of every head.
        let mut dqkv = vec![0f32; d.n * t * 3 * w];
        let ranges = cpu::ranges(d.n, 4 * cpu::MAX_CHUNKS);
        let parts = cpu::split_mut(&mut dqkv, &ranges, t * 3 * w);
        let tasks: Vec<_> = ranges.into_iter().zip(parts).collect();
        cpu::run(tasks, |(images, dqkv)| {
            let mut p = vec![0f32; t * t];
            let mut dp = vec![0f32; t * t];
            for (i, img) in images.enumerate() {
                let packed = Packed {
                    data: &qkv[img * t * 3 * w..(img + 1) * t * 3 * w],
                    d,
                };
                let g = &g[img * t * w..(img + 1) * t * w];
                let dqkv = &mut dqkv[i * t * 3 * w..(i + 1) * t * 3 * w];
                for h in 0..self.heads {
                    probabilities(&packed, h, &mut p)?;
                    let dout = Mat::rows(&g[h * dh..], w);
                    let pt = Mat::transposed(&p, t);
                    // dv = pᵀ · dout; dp = dout · vᵀ.
                    let dv = MatMut::rows(&mut dqkv[2 * w + h * dh..], 3 * w);
                    gemm(t, dh, t, dv, false, pt, dout, Parallelism::None)?;
                    let dst = MatMut::rows(&mut dp, t);
                    gemm(
                        t,
                        t,
                        dh,
                        dst,
                        false,
                        dout,
                        packed.mat_t(2, h),
                        Parallelism::None,
                    )?;
                    softmax_backward_rows(&mut dp, &p, t, d.scale());
                    let (ds, ds_t) = (Mat::rows(&dp, t), Mat::transposed(&dp, t));
                    // dq = ds · k; dk = dsᵀ · q.
                    let dq = MatMut::rows(&mut dqkv[h * dh..], 3 * w);
                    gemm(t, dh, t, dq, false, ds, packed.mat(1, h), Parallelism::None)?;
                    let dk = MatMut::rows(&mut dqkv[w + h * dh..], 3 * w);
                    gemm(
                        t,
                        dh,
                        t,
                        dk,
                        false,
                        ds_t,
                        packed.mat(0, h),
                        Parallelism::None,
                    )?;
                }
            }
            Ok(())
        })?;
        Ok(Some(Tensor::from_vec(dqkv, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use rand::Rng;

    #[test]
    fn outputs_and_gradients_match_candle_on_random_shapes() {
        let mut rng = rng(61);
        for case in 0..30 {
            let (n, t, heads, dh) = if case == 0 {
                (3, 65, 3, 64)
            } else {
                (
                    rng.random_range(1..5),
                    rng.random_range(1..20),
                    rng.random_range(1..5),
                    rng.random_range(1..12),
                )
            };
            let vx = var(&mut rng, &[n, t, 3 * heads * dh]);
            check_against(
                &[&vx],
                &mut rng,
                |x| attention(&x[0], heads),
                |x| attention_generic(&x[0], heads),
                &format!("{n}×{t} tokens, {heads} heads of {dh}"),
            );
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let mut rng = rng(62);
        let x = random(&mut rng, &[9, 17, 3 * 2 * 8]);
        let a = attention(&x, 2).unwrap();
        let b = cpu::sequentially(|| attention(&x, 2).unwrap());
        assert_eq!(a.to_vec3::<f32>().unwrap(), b.to_vec3::<f32>().unwrap());
    }

    #[test]
    fn other_dtypes_take_candles_ops_and_a_bad_head_count_is_an_error() {
        let mut rng = rng(63);
        let x = random(&mut rng, &[2, 5, 3 * 2 * 4]);
        let fast = attention(&x, 2).unwrap();
        let slow = attention(&x.to_dtype(DType::F64).unwrap(), 2).unwrap();
        assert_eq!(slow.dtype(), DType::F64);
        assert!(rel_diff(&fast, &slow.to_dtype(DType::F32).unwrap()) < 1e-5);
        let err = attention(&x, 5).unwrap_err().to_string();
        assert!(err.contains("3 × 5 heads"), "{err}");
    }
}
