//! 2-D average pooling (any window size and stride, no padding) as a candle custom op, so its
//! backward also works when windows overlap or leave gaps.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::cpu;
use super::max_pool::Window;

struct AvgPool {
    win: Window,
}

const NAME: &str = "avg-pool2d";

impl CustomOp1 for AvgPool {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu::storage_f32(s, l, NAME)?;
        let (n, c, h, w) = l.shape().dims4()?;
        let (oh, ow) = self.win.output(h, w)?;
        let (k, st) = (self.win.size, self.win.stride);
        let scale = 1.0 / (k * k) as f32;
        let planes = n * c;
        let mut out = vec![0f32; planes * oh * ow];
        let ranges = cpu::ranges(planes, 4 * cpu::MAX_CHUNKS);
        let outs = cpu::split_mut(&mut out, &ranges, oh * ow);
        let tasks: Vec<_> = ranges.into_iter().zip(outs).collect();
        cpu::run(tasks, |(r, out)| {
            for (i, p) in r.enumerate() {
                let z = &x[p * h * w..(p + 1) * h * w];
                for y in 0..oh {
                    for xo in 0..ow {
                        let top = y * st * w + xo * st;
                        let sum: f32 = (0..k)
                            .map(|i| z[top + i * w..top + i * w + k].iter().sum::<f32>())
                            .sum();
                        out[i * oh * ow + y * ow + xo] = sum * scale;
                    }
                }
            }
            Ok(())
        })?;
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        if !arg.track_op() {
            return Ok(None);
        }
        let (n, c, h, w) = arg.dims4()?;
        let (_, _, oh, ow) = res.dims4()?;
        let (k, st) = (self.win.size, self.win.stride);
        let scale = 1.0 / (k * k) as f32;
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let g = cpu::tensor_f32(&gs, gl, NAME)?;
        if g.len() != n * c * oh * ow {
            candle_core::bail!("{NAME}: gradient of the wrong size")
        }
        let planes = n * c;
        let mut dx = vec![0f32; planes * h * w];
        let ranges = cpu::ranges(planes, 4 * cpu::MAX_CHUNKS);
        let dxs = cpu::split_mut(&mut dx, &ranges, h * w);
        let tasks: Vec<_> = ranges.into_iter().zip(dxs).collect();
        cpu::run(tasks, |(r, dx)| {
            for (i, p) in r.enumerate() {
                let gp = &g[p * oh * ow..(p + 1) * oh * ow];
                let dz = &mut dx[i * h * w..(i + 1) * h * w];
                for y in 0..oh {
                    for xo in 0..ow {
                        let v = gp[y * ow + xo] * scale;
                        let top = y * st * w + xo * st;
                        for i in 0..k {
                            for d in &mut dz[top + i * w..top + i * w + k] {
                                *d += v;
                            }
                        }
                    }
                }
            }
            Ok(())
        })?;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// Average pooling of `x` (`batch × channels × height × width`) with `win`: on the CPU (f32,
/// fast kernels) a custom op, else [`avg_pool2d_generic`].
pub fn avg_pool2d(x: &Tensor, win: Window) -> Result<Tensor> {
    if cpu::fast_path(&[x]) {
        return x.contiguous()?.apply_op1(AvgPool { win });
    }
    avg_pool2d_generic(x, win)
}

/// Average pooling made of candle ops, exact on every device (the twin of the CPU op).
pub fn avg_pool2d_generic(x: &Tensor, win: Window) -> Result<Tensor> {
    win.windows(x)?.mean(4)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn outputs_and_gradients_match_candle_for_any_size_and_stride() {
        pool_matches_reference(31, avg_pool2d, candle_avg_pool);
    }

    #[test]
    fn the_generic_twin_matches_for_any_size_and_stride() {
        fn generic(x: &Tensor, size: usize, stride: usize) -> Result<Tensor> {
            avg_pool2d_generic(x, Window { size, stride })
        }
        pool_matches_reference(33, avg_pool2d, generic);
    }

    #[test]
    fn other_dtypes_take_candles_ops_with_the_same_results() {
        other_dtypes_match_f32(9, avg_pool2d);
    }
}
