//! 2-D max-pooling (any window size and stride) that remembers each output's argmax for the
//! backward pass, as a candle custom op; the pooling kernel is shared with the fused convolution.

use std::sync::Mutex;

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::cpu;

/// A square pooling window and its stride, without padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub size: usize,
    pub stride: usize,
}

impl Window {
    /// Output height and width for an `h × w` input.
    pub fn output(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        if self.size == 0 || self.stride == 0 {
            bail!(
                "pooling window {} with stride {} must be positive",
                self.size,
                self.stride
            )
        }
        if h < self.size || w < self.size {
            bail!(
                "pooling window {} is larger than the input {h}×{w}",
                self.size
            )
        }
        Ok((
            (h - self.size) / self.stride + 1,
            (w - self.size) / self.stride + 1,
        ))
    }

    /// Every window of `x` (`n × c × h × w`) as a new last dimension, `n × c × oh × ow × size²`
    /// (row-major within the window), made of candle ops whose gradients are exact on every
    /// device: reshaped blocks when size = stride, else `size²` strided views picked by
    /// `index_select` (candle's own pooling backward refuses size ≠ stride).
    pub(super) fn windows(self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let (oh, ow) = self.output(h, w)?;
        let k = self.size;
        if k == self.stride {
            return x
                .narrow(2, 0, oh * k)?
                .narrow(3, 0, ow * k)?
                .reshape((n, c, oh, k, ow, k))?
                .permute((0, 1, 2, 4, 3, 5))?
                .reshape((n, c, oh, ow, k * k));
        }
        let picks = |offset: usize, len: usize| {
            let idx: Vec<u32> = (0..len)
                .map(|o| (o * self.stride + offset) as u32)
                .collect();
            Tensor::new(idx.as_slice(), x.device())
        };
        let x = x.contiguous()?;
        let mut views = Vec::with_capacity(k * k);
        for i in 0..k {
            let rows = x.index_select(&picks(i, oh)?, 2)?;
            for j in 0..k {
                views.push(rows.index_select(&picks(j, ow)?, 3)?);
            }
        }
        Tensor::stack(&views, 4)
    }
}

/// Max-pooling made of candle ops (the device-generic twin of [`max_pool2d`]'s CPU op): the
/// first maximum of each window by `argmax` and picked by `gather`, so the gradient goes to it
/// alone, as in the CPU op and PyTorch (candle's `max` would send it to every tied value).
pub fn max_pool2d_generic(x: &Tensor, win: Window) -> Result<Tensor> {
    let windows = win.windows(x)?.contiguous()?;
    let first = windows.argmax_keepdim(4)?;
    windows.gather(&first, 4)?.squeeze(4)
}

cpu::multiversion! {
/// Max-pools one `h × w` plane into `out` (`oh × ow`), writing the index within the plane of
/// each maximum (the first one on ties, as PyTorch) to `argmax`. With `relu` the outputs are
/// `max(0, ·)`, which equals pooling after a ReLU. A NaN in a window wins, so divergence shows.
pub(crate) fn pool_plane(
    z: &[f32],
    hw: (usize, usize),
    win: Window,
    relu: bool,
    out: &mut [f32],
    argmax: &mut [u32],
) {
    let ((h, w), (k, s)) = (hw, (win.size, win.stride));
    let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
    let finish = |best: f32| if relu && best < 0.0 { 0.0 } else { best };
    if k == 2 && s == 2 {
        for y in 0..oh {
            let top = 2 * y * w;
            let r0 = &z[top..top + 2 * ow];
            let r1 = &z[top + w..top + w + 2 * ow];
            let out = &mut out[y * ow..(y + 1) * ow];
            let arg = &mut argmax[y * ow..(y + 1) * ow];
            for (x, ((o, a), (p0, p1))) in out
                .iter_mut()
                .zip(arg.iter_mut())
                .zip(r0.chunks_exact(2).zip(r1.chunks_exact(2)))
                .enumerate()
            {
                let base = top + 2 * x;
                let (mut best, mut at) = (p0[0], base);
                if p0[1] > best {
                    (best, at) = (p0[1], base + 1);
                }
                if p1[0] > best {
                    (best, at) = (p1[0], base + w);
                }
                if p1[1] > best {
                    (best, at) = (p1[1], base + w + 1);
                }
                if (p0[0] + p0[1] + p1[0] + p1[1]).is_nan() {
                    (best, at) = first_nan(z, base, w, 2).unwrap_or((best, at));
                }
                *o = finish(best);
                *a = at as u32;
            }
        }
        return;
    }
    for y in 0..oh {
        for x in 0..ow {
            let top = y * s * w + x * s;
            let (mut best, mut at, mut sum) = (f32::NEG_INFINITY, top, 0f32);
            for i in 0..k {
                let row = top + i * w;
                for (j, &v) in z[row..row + k].iter().enumerate() {
                    if v > best {
                        (best, at) = (v, row + j);
                    }
                    sum += v;
                }
            }
            if sum.is_nan() {
                (best, at) = first_nan(z, top, w, k).unwrap_or((best, at));
            }
            out[y * ow + x] = finish(best);
            argmax[y * ow + x] = at as u32;
        }
    }
}
}

/// The first NaN of the `k × k` window at `top` (a sum that is NaN may also come from +∞ − ∞,
/// in which case there is none and the maximum stands).
#[cold]
fn first_nan(z: &[f32], top: usize, w: usize, k: usize) -> Option<(f32, usize)> {
    (0..k)
        .flat_map(|i| (0..k).map(move |j| top + i * w + j))
        .find(|&at| z[at].is_nan())
        .map(|at| (z[at], at))
}

/// Adds `grad` (one pooled plane) at the remembered maxima of `dz` (its input plane); with
/// `relu`, only where the pooled output `res` is positive.
pub(crate) fn unpool_plane(
    grad: &[f32],
    res: &[f32],
    argmax: &[u32],
    relu: bool,
    dz: &mut [f32],
) -> Result<()> {
    for (k, (&g, &at)) in grad.iter().zip(argmax).enumerate() {
        if relu && !matches!(res.get(k), Some(&r) if r > 0.0) {
            continue;
        }
        match dz.get_mut(at as usize) {
            Some(d) => *d += g,
            None => bail!("max-pool backward: remembered index {at} outside the plane"),
        }
    }
    Ok(())
}

struct MaxPool {
    win: Window,
    argmax: Mutex<Vec<u32>>,
}

const NAME: &str = "max-pool2d";

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu::storage_f32(s, l, NAME)?;
        let (n, c, h, w) = l.shape().dims4()?;
        let (oh, ow) = self.win.output(h, w)?;
        if h * w > u32::MAX as usize {
            bail!("{NAME}: planes of {h}×{w} are too large")
        }
        let planes = n * c;
        let mut out = vec![0f32; planes * oh * ow];
        let mut argmax = vec![0u32; planes * oh * ow];
        let ranges = cpu::ranges(planes, 4 * cpu::MAX_CHUNKS);
        let outs = cpu::split_mut(&mut out, &ranges, oh * ow);
        let args = cpu::split_mut(&mut argmax, &ranges, oh * ow);
        let tasks: Vec<_> = ranges.into_iter().zip(outs).zip(args).collect();
        let win = self.win;
        cpu::run(tasks, |((r, out), arg)| {
            for (i, p) in r.enumerate() {
                pool_plane(
                    &x[p * h * w..(p + 1) * h * w],
                    (h, w),
                    win,
                    false,
                    &mut out[i * oh * ow..(i + 1) * oh * ow],
                    &mut arg[i * oh * ow..(i + 1) * oh * ow],
                );
            }
            Ok(())
        })?;
        match self.argmax.lock() {
            Ok(mut a) => *a = argmax,
            Err(_) => bail!("{NAME}: argmax store poisoned"),
        }
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        if !arg.track_op() {
            return Ok(None);
        }
        let (n, c, h, w) = arg.dims4()?;
        let (_, _, oh, ow) = res.dims4()?;
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let g = cpu::tensor_f32(&gs, gl, NAME)?;
        let argmax = match self.argmax.lock() {
            Ok(a) => a,
            Err(_) => bail!("{NAME}: argmax store poisoned"),
        };
        if argmax.len() != g.len() || g.len() != n * c * oh * ow {
            bail!("{NAME}: backward without a matching forward pass")
        }
        let planes = n * c;
        let mut dx = vec![0f32; planes * h * w];
        let ranges = cpu::ranges(planes, 4 * cpu::MAX_CHUNKS);
        let dxs = cpu::split_mut(&mut dx, &ranges, h * w);
        let tasks: Vec<_> = ranges.into_iter().zip(dxs).collect();
        cpu::run(tasks, |(r, dx)| {
            for (i, p) in r.enumerate() {
                let o = p * oh * ow..(p + 1) * oh * ow;
                unpool_plane(
                    &g[o.clone()],
                    &[],
                    &argmax[o],
                    false,
                    &mut dx[i * h * w..(i + 1) * h * w],
                )?;
            }
            Ok(())
        })?;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// Max-pooling of `x` (`batch × channels × height × width`) with `win`: on the CPU (f32, fast
/// kernels) a custom op, else [`max_pool2d_generic`].
pub fn max_pool2d(x: &Tensor, win: Window) -> Result<Tensor> {
    if cpu::fast_path(&[x]) {
        let op = MaxPool {
            win,
            argmax: Mutex::new(Vec::new()),
        };
        return x.contiguous()?.apply_op1(op);
    }
    max_pool2d_generic(x, win)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn outputs_and_gradients_match_candle_for_any_size_and_stride() {
        pool_matches_reference(21, max_pool2d, candle_max_pool);
    }

    #[test]
    fn forward_equals_candles_own_max_pool() {
        // Only the forward: candle 0.11's max_pool2d backward multiplies the gradient by
        // 1/size² (0.25 for a unique maximum of a 2×2 window), unlike PyTorch and this op.
        let mut rng = rng(2);
        let x = random(&mut rng, &[4, 3, 8, 6]);
        let win = Window { size: 2, stride: 2 };
        let got = max_pool2d(&x, win).unwrap();
        let want = x.max_pool2d(2).unwrap();
        assert_eq!(rel_diff(&got, &want), 0.0);
    }

    #[test]
    fn ties_send_the_gradient_to_the_first_maximum_and_nan_wins() {
        let x = candle_core::Var::from_tensor(
            &Tensor::new(
                &[[[[1f32, 1.0], [0.5, f32::NAN]]]],
                &candle_core::Device::Cpu,
            )
            .unwrap(),
        )
        .unwrap();
        let win = Window { size: 1, stride: 1 };
        assert!(win.output(2, 2).is_ok());
        let y = max_pool2d(x.as_tensor(), Window { size: 2, stride: 1 }).unwrap();
        assert!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0].is_nan());
        let x2 = candle_core::Var::from_tensor(
            &Tensor::new(&[[[[1f32, 1.0], [0.5, 1.0]]]], &candle_core::Device::Cpu).unwrap(),
        )
        .unwrap();
        let y = max_pool2d(x2.as_tensor(), Window { size: 2, stride: 2 }).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g.get(x2.as_tensor()).unwrap().flatten_all().unwrap();
        assert_eq!(g.to_vec1::<f32>().unwrap(), vec![1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn the_generic_twin_sends_a_tied_gradient_to_the_first_maximum_too() {
        for win in [Window { size: 2, stride: 2 }, Window { size: 2, stride: 1 }] {
            let x = candle_core::Var::from_tensor(
                &Tensor::new(&[[[[1f32, 1.0], [0.5, 1.0]]]], &candle_core::Device::Cpu).unwrap(),
            )
            .unwrap();
            let y = max_pool2d_generic(x.as_tensor(), win).unwrap();
            let g = y.sum_all().unwrap().backward().unwrap();
            let g = g.get(x.as_tensor()).unwrap().flatten_all().unwrap();
            assert_eq!(g.to_vec1::<f32>().unwrap(), vec![1.0, 0.0, 0.0, 0.0]);
        }
    }

    #[test]
    fn a_window_larger_than_the_input_is_an_error() {
        let x = Tensor::zeros(
            (1, 1, 2, 2),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        assert!(max_pool2d(&x, Window { size: 3, stride: 1 }).is_err());
        assert!(max_pool2d(&x, Window { size: 1, stride: 0 }).is_err());
    }

    #[test]
    fn the_generic_twin_matches_for_any_size_and_stride() {
        fn generic(x: &Tensor, size: usize, stride: usize) -> Result<Tensor> {
            max_pool2d_generic(x, Window { size, stride })
        }
        pool_matches_reference(23, max_pool2d, generic);
    }

    #[test]
    fn other_dtypes_take_candles_ops_with_the_same_results() {
        other_dtypes_match_f32(8, max_pool2d);
    }
}
