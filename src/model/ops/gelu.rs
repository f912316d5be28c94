//! The exact (erf) GELU, `x · Φ(x)`: on the CPU one pass forward and one backward
//! (`Φ(x) + x · φ(x)` times the gradient), where candle's op takes several.

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::approx::{erf, exp_nonpositive};
use super::cpu;
use std::mem::MaybeUninit;
use std::ops::Range;

const NAME: &str = "gelu";

/// GELU of every value of `x`.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if cpu::fast_path(&[x]) {
        return x.contiguous()?.apply_op1(Gelu);
    }
    gelu_generic(x)
}

/// candle's own op (other devices and dtypes; the twin of the CPU op).
pub fn gelu_generic(x: &Tensor) -> Result<Tensor> {
    x.gelu_erf()
}

struct Gelu;

/// Φ(x), the standard normal distribution function.
#[inline(always)]
fn cdf(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// 1/√(2π).
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// Values per task: big enough that waking another thread pays.
const PER_TASK: usize = 1 << 16;

cpu::multiversion! {
    fn forward(x: &[f32], y: &mut [MaybeUninit<f32>]) {
        for (o, &v) in y.iter_mut().zip(x) {
            o.write(v * cdf(v));
        }
    }
}

cpu::multiversion! {
    fn backward(x: &[f32], g: &[f32], dx: &mut [MaybeUninit<f32>]) {
        for ((o, &v), &gv) in dx.iter_mut().zip(x).zip(g) {
            let pdf = INV_SQRT_2PI * exp_nonpositive(-0.5 * v * v);
            o.write(gv * (cdf(v) + v * pdf));
        }
    }
}

/// `len` values, written by `fill(range, out)` for consecutive ranges of about [`PER_TASK`]
/// values in parallel.
///
/// # Safety
/// `fill` writes every value of its `out`.
unsafe fn in_parts(
    len: usize,
    fill: impl Fn(Range<usize>, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Result<Vec<f32>> {
    let mut v = cpu::uninit_vec(len);
    let ranges = cpu::ranges(len, len.div_ceil(PER_TASK));
    let outs = cpu::split_mut(&mut v, &ranges, 1);
    let tasks: Vec<_> = ranges.into_iter().zip(outs).collect();
    cpu::run(tasks, |(r, out)| {
        fill(r, out);
        Ok(())
    })?;
    // SAFETY: the ranges cover every value, and the caller promises `fill` writes each of
    // its range.
    Ok(unsafe { cpu::assume_written(v) })
}

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu::storage_f32(s, l, NAME)?;
        // SAFETY: `forward` writes a value for every one it reads.
        let y = unsafe { in_parts(x.len(), |r, out| forward(&x[r], out))? };
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        if !arg.track_op() {
            return Ok(None);
        }
        let arg = arg.contiguous()?;
        let (xs, xl) = arg.storage_and_layout();
        let x = cpu::tensor_f32(&xs, xl, NAME)?;
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let g = cpu::tensor_f32(&gs, gl, NAME)?;
        if g.len() != x.len() {
            bail!("{NAME}: gradient of the wrong size")
        }
        // SAFETY: `backward` writes a value for every one it reads.
        let dx = unsafe { in_parts(x.len(), |r, out| backward(&x[r.clone()], &g[r], out))? };
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use rand::Rng;

    #[test]
    fn outputs_and_gradients_match_candle() {
        let mut rng = rng(81);
        for case in 0..10 {
            let len = if case == 0 {
                200_000
            } else {
                rng.random_range(1..500)
            };
            // Values in (-4, 4): both tails and the middle.
            let vx =
                candle_core::Var::from_tensor(&(random(&mut rng, &[len]) * 4.0).unwrap()).unwrap();
            check_against(
                &[&vx],
                &mut rng,
                |t| gelu(&t[0]),
                |t| gelu_generic(&t[0]),
                &format!("{len} values"),
            );
        }
    }

    #[test]
    fn other_dtypes_take_candles_op() {
        let mut rng = rng(82);
        let x = random(&mut rng, &[3, 7]);
        let fast = gelu(&x).unwrap();
        let slow = gelu(&x.to_dtype(candle_core::DType::F64).unwrap()).unwrap();
        assert_eq!(slow.dtype(), candle_core::DType::F64);
        assert!(rel_diff(&fast, &slow.to_dtype(candle_core::DType::F32).unwrap()) < 1e-6);
    }
}
