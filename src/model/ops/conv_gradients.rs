//! Convolution whose gradients are themselves forward convolutions, on any device: candle
//! differentiates its conv2d into `conv_transpose2d`, a naive CUDA kernel many times slower
//! than its im2col + cuBLAS forward, so the device-generic path computes the value with candle's
//! conv2d on detached inputs and attaches both gradients through a custom op whose backward
//! is made of forward convolutions only.

use candle_core::backend::{BackendDevice, BackendStorage};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

const NAME: &str = "conv2d-forward-gradients";

/// `conv2d(x, w)` with no padding, stride `stride` and (h − kh), (w − kw) multiples of the
/// stride (the caller pads and crops): every window row and column is used, so the input
/// gradient has exactly the input's size. Gradients: input through `conv2d` of the
/// stride-dilated, (k − 1)-padded output gradient with the flipped, transposed kernel; kernel
/// through `conv2d` of the transposed input with the transposed gradient as kernel, dilated by
/// the stride (as candle does).
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize) -> Result<Tensor> {
    let (_, _, h, wd) = x.dims4()?;
    let (_, _, kh, kw) = w.dims4()?;
    if stride == 0 || h < kh || wd < kw || (h - kh) % stride != 0 || (wd - kw) % stride != 0 {
        bail!("{NAME}: a {h}×{wd} input does not tile into {kh}×{kw} windows at stride {stride}")
    }
    let y = x.detach().conv2d(&w.detach(), 0, stride, 1, 1)?;
    if !x.track_op() && !w.track_op() {
        return Ok(y);
    }
    y.apply_op3(x, w, Gradients { stride })
}

/// The custom op on (value, x, w): its value is the first argument, its gradients those of the
/// convolution of the other two.
struct Gradients {
    stride: usize,
}

/// A copy of the value (a custom op must return fresh storage), the same code on every backend.
fn copy_value<S>(s: &S, l: &Layout) -> Result<(S, Shape)>
where
    S: BackendStorage,
    S::Device: BackendDevice<Storage = S>,
{
    // SAFETY: every element is written by the strided copy that follows.
    let mut out = unsafe { s.device().alloc_uninit(l.shape(), s.dtype())? };
    s.copy_strided_src(&mut out, 0, l)?;
    Ok((out, l.shape().clone()))
}

impl CustomOp3 for Gradients {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        copy_value(s1, l1)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        copy_value(s1, l1)
    }

    #[allow(clippy::type_complexity)]
    fn bwd(
        &self,
        _: &Tensor,
        x: &Tensor,
        w: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = if x.track_op() {
            Some(input_gradient(grad, w, self.stride)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(kernel_gradient(x, w, grad, self.stride)?)
        } else {
            None
        };
        Ok((None, dx, dw))
    }
}

/// `∂L/∂x` as a forward convolution: the gradient with `stride − 1` zeros between its elements,
/// padded by `k − 1`, convolved with the kernel flipped in both spatial axes and with its
/// input and output channels swapped.
fn input_gradient(grad: &Tensor, w: &Tensor, stride: usize) -> Result<Tensor> {
    let (_, _, kh, kw) = w.dims4()?;
    let g = dilate(grad, stride)?
        .pad_with_zeros(2, kh - 1, kh - 1)?
        .pad_with_zeros(3, kw - 1, kw - 1)?;
    let flipped = reverse(&reverse(w, 2)?, 3)?.transpose(0, 1)?.contiguous()?;
    g.conv2d(&flipped, 0, 1, 1, 1)
}

/// `∂L/∂w`: per input channel, the input planes (batch as channels) convolved with the output
/// gradient planes, dilated by the stride.
fn kernel_gradient(x: &Tensor, w: &Tensor, grad: &Tensor, stride: usize) -> Result<Tensor> {
    let (_, _, kh, kw) = w.dims4()?;
    let dw = x
        .transpose(0, 1)?
        .conv2d(&grad.transpose(0, 1)?, 0, 1, stride, 1)?
        .transpose(0, 1)?;
    dw.narrow(2, 0, kh)?.narrow(3, 0, kw)
}

/// `stride − 1` zeros between neighbouring elements of the last two dimensions.
fn dilate(t: &Tensor, stride: usize) -> Result<Tensor> {
    if stride == 1 {
        return Ok(t.clone());
    }
    let (n, c, h, w) = t.dims4()?;
    t.reshape((n, c, h, 1, w, 1))?
        .pad_with_zeros(3, 0, stride - 1)?
        .pad_with_zeros(5, 0, stride - 1)?
        .reshape((n, c, h * stride, w * stride))?
        .narrow(2, 0, (h - 1) * stride + 1)?
        .narrow(3, 0, (w - 1) * stride + 1)
}

/// `t` in reverse order along `dim`.
fn reverse(t: &Tensor, dim: usize) -> Result<Tensor> {
    let len = t.dim(dim)?;
    if len == 1 {
        return Ok(t.clone());
    }
    let order: Vec<u32> = (0..len as u32).rev().collect();
    t.index_select(&Tensor::new(order.as_slice(), t.device())?, dim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testutil::{rel_diff, rng, var};
    use rand::Rng;

    /// Value and both gradients equal candle's own convolution (whose input gradient is
    /// `conv_transpose2d`) on random shapes, strides and rectangular kernels.
    #[test]
    fn gradients_equal_candles_convolution() {
        let mut rng = rng(41);
        let mut cases = 0;
        while cases < 60 {
            let (n, ci, co) = (
                rng.random_range(1..4),
                rng.random_range(1..5),
                rng.random_range(1..5),
            );
            let (kh, kw) = (rng.random_range(1..5), rng.random_range(1..5));
            let s = rng.random_range(1..4);
            let (oh, ow) = (rng.random_range(1..6), rng.random_range(1..6));
            let (h, wd) = ((oh - 1) * s + kh, (ow - 1) * s + kw);
            let vx = var(&mut rng, &[n, ci, h, wd]);
            let vw = var(&mut rng, &[co, ci, kh, kw]);
            let ours = conv2d(vx.as_tensor(), vw.as_tensor(), s).unwrap();
            let theirs = vx.as_tensor().conv2d(vw.as_tensor(), 0, s, 1, 1).unwrap();
            let what = format!("n {n} {ci}->{co} {h}×{wd} k {kh}×{kw} s {s}");
            assert_eq!(ours.dims(), &[n, co, oh, ow], "{what}");
            assert!(rel_diff(&ours, &theirs) < 1e-6, "{what}");
            let g = super::super::testutil::random(&mut rng, ours.dims());
            let ga = (&ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (&theirs * &g)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (v, name) in [(&vx, "input"), (&vw, "kernel")] {
                let (a, b) = (
                    ga.get(v.as_tensor()).unwrap(),
                    gb.get(v.as_tensor()).unwrap(),
                );
                let d = rel_diff(a, b);
                assert!(d < 1e-5, "{what}: {name} gradient differs by {d}");
            }
            cases += 1;
        }
    }

    #[test]
    fn inputs_without_gradients_get_none_and_untracked_inputs_skip_the_op() {
        let mut rng = rng(42);
        let x = super::super::testutil::random(&mut rng, &[2, 3, 7, 7]);
        let vw = var(&mut rng, &[4, 3, 3, 3]);
        let y = conv2d(&x, vw.as_tensor(), 2).unwrap();
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&x).is_none());
        assert!(grads.get(vw.as_tensor()).is_some());
        let plain = conv2d(&x, &vw.as_tensor().detach(), 2).unwrap();
        assert!(!plain.track_op());
        assert!(rel_diff(&plain, &y) < 1e-7);
    }

    #[test]
    fn inputs_that_leave_rows_unread_are_refused() {
        let mut rng = rng(43);
        let x = super::super::testutil::random(&mut rng, &[1, 1, 6, 7]);
        let w = super::super::testutil::random(&mut rng, &[1, 1, 3, 3]);
        assert!(conv2d(&x, &w, 2).is_err());
        assert!(conv2d(&x, &w, 0).is_err());
    }
}
