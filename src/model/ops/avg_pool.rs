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

/// Average pooling of `x` (`batch × channels × height × width`) with `win`. On the CPU (f32) a
/// custom op. Other devices and dtypes use candle's own ops: windows as reshaped blocks when
/// size = stride (not candle's `avg_pool2d`, whose backward needs size = stride), else
/// the CPU op on an f32 copy.
pub fn avg_pool2d(x: &Tensor, win: Window) -> Result<Tensor> {
    if cpu::fast_path(&[x]) {
        return x.contiguous()?.apply_op1(AvgPool { win });
    }
    if win.size == win.stride {
        // Windows as reshaped blocks, reduced with candle's differentiable `mean`.
        let (n, c, h, w) = x.dims4()?;
        let (oh, ow) = win.output(h, w)?;
        let k = win.size;
        return x
            .narrow(2, 0, oh * k)?
            .narrow(3, 0, ow * k)?
            .reshape((n, c, oh, k, ow, k))?
            .mean(5)?
            .mean(3);
    }
    let device = x.device().clone();
    let dtype = x.dtype();
    let on_cpu = x
        .to_device(&candle_core::Device::Cpu)?
        .to_dtype(candle_core::DType::F32)?;
    avg_pool2d(&on_cpu, win)?
        .to_dtype(dtype)?
        .to_device(&device)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use rand::Rng;

    #[test]
    fn outputs_and_gradients_match_candle_for_any_size_and_stride() {
        let mut rng = rng(31);
        for _ in 0..40 {
            let (n, c) = (rng.random_range(1..4), rng.random_range(1..4));
            let (h, w) = (rng.random_range(1..12), rng.random_range(1..12));
            let win = Window {
                size: rng.random_range(1..5),
                stride: rng.random_range(1..5),
            };
            if win.output(h, w).is_err() {
                continue;
            }
            let vx = var(&mut rng, &[n, c, h, w]);
            check_against(
                &[&vx],
                &mut rng,
                |t| avg_pool2d(&t[0], win),
                |t| candle_avg_pool(&t[0], win.size, win.stride),
                &format!("{n}×{c}×{h}×{w} {win:?}"),
            );
        }
    }

    #[test]
    fn other_dtypes_take_candles_ops_with_the_same_results() {
        let mut rng = rng(9);
        let x = random(&mut rng, &[2, 3, 7, 6]);
        for win in [Window { size: 2, stride: 2 }, Window { size: 3, stride: 2 }] {
            let xv = candle_core::Var::from_tensor(&x.to_dtype(candle_core::DType::F64).unwrap())
                .unwrap();
            let y = avg_pool2d(xv.as_tensor(), win).unwrap();
            let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let g = g
                .get(xv.as_tensor())
                .unwrap()
                .to_dtype(candle_core::DType::F32)
                .unwrap();
            let xf = candle_core::Var::from_tensor(&x).unwrap();
            let yf = avg_pool2d(xf.as_tensor(), win).unwrap();
            let gf = yf.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let y = y.to_dtype(candle_core::DType::F32).unwrap();
            assert!(rel_diff(&y, &yf) < 1e-6, "{win:?}");
            assert!(
                rel_diff(&g, gf.get(xf.as_tensor()).unwrap()) < 1e-6,
                "{win:?}"
            );
        }
    }
}
