//! Depthwise 2-D convolution (every channel its own `k × k` filter, symmetric zero padding,
//! any stride) as a candle custom op on the CPU: forward and backward by direct loops, plane
//! by plane in parallel; the weight gradient summed over the batch in a fixed order. The
//! device-generic twin made of candle ops is `layers::conv::depthwise`.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu;

const NAME: &str = "depthwise-conv2d";

struct Depthwise {
    padding: usize,
    stride: usize,
}

/// The geometry of one call.
#[derive(Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    oh: usize,
    ow: usize,
    p: usize,
    s: usize,
}

impl Depthwise {
    fn geometry(&self, x: &Shape, w: &Shape) -> Result<Geometry> {
        let (n, c, h, wd) = x.dims4()?;
        let (cw, one, k, k2) = w.dims4()?;
        if cw != c || one != 1 || k != k2 {
            bail!("{NAME}: a {c}-channel input needs {c}×1×k×k weights, got {cw}×{one}×{k}×{k2}")
        }
        let (p, s) = (self.padding, self.stride);
        if h + 2 * p < k || wd + 2 * p < k || s == 0 {
            bail!("{NAME}: the {h}×{wd} input is smaller than the {k}×{k} kernel")
        }
        Ok(Geometry {
            n,
            c,
            h,
            w: wd,
            k,
            oh: (h + 2 * p - k) / s + 1,
            ow: (wd + 2 * p - k) / s + 1,
            p,
            s,
        })
    }
}

/// The input row (or column) an output position reads at kernel offset `t`, if inside.
#[inline(always)]
fn source(o: usize, t: usize, g: &Geometry, len: usize) -> Option<usize> {
    (o * g.s + t).checked_sub(g.p).filter(|&i| i < len)
}

cpu::multiversion! {
fn forward_plane(x: &[f32], w: &[f32], out: &mut [f32], g: Geometry) {
    for oy in 0..g.oh {
        for ky in 0..g.k {
            let Some(iy) = source(oy, ky, &g, g.h) else { continue };
            let row = &x[iy * g.w..(iy + 1) * g.w];
            let o = &mut out[oy * g.ow..(oy + 1) * g.ow];
            for kx in 0..g.k {
                let wv = w[ky * g.k + kx];
                for (ox, ov) in o.iter_mut().enumerate() {
                    if let Some(ix) = source(ox, kx, &g, g.w) {
                        *ov += wv * row[ix];
                    }
                }
            }
        }
    }
}
}

cpu::multiversion! {
/// `dx` of one plane (accumulated) and this plane's share of `dw` (`k × k`).
fn backward_plane(x: &[f32], w: &[f32], gr: &[f32], dx: Option<&mut [f32]>, dw: &mut [f32], g: Geometry) {
    let mut dx = dx;
    for oy in 0..g.oh {
        let go = &gr[oy * g.ow..(oy + 1) * g.ow];
        for ky in 0..g.k {
            let Some(iy) = source(oy, ky, &g, g.h) else { continue };
            let row = &x[iy * g.w..(iy + 1) * g.w];
            for kx in 0..g.k {
                let wv = w[ky * g.k + kx];
                let mut acc = 0f32;
                for (ox, &gv) in go.iter().enumerate() {
                    if let Some(ix) = source(ox, kx, &g, g.w) {
                        acc += gv * row[ix];
                        if let Some(d) = dx.as_deref_mut() {
                            d[iy * g.w + ix] += gv * wv;
                        }
                    }
                }
                dw[ky * g.k + kx] += acc;
            }
        }
    }
}
}

impl CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry(xl.shape(), wl.shape())?;
        let x = cpu::storage_f32(xs, xl, NAME)?;
        let w = cpu::storage_f32(ws, wl, NAME)?;
        let planes = g.n * g.c;
        let mut out = vec![0f32; planes * g.oh * g.ow];
        let ranges = cpu::ranges(planes, 4 * cpu::MAX_CHUNKS);
        let outs = cpu::split_mut(&mut out, &ranges, g.oh * g.ow);
        let tasks: Vec<_> = ranges.into_iter().zip(outs).collect();
        cpu::run(tasks, |(r, out)| {
            for (i, plane) in r.enumerate() {
                let ch = plane % g.c;
                forward_plane(
                    &x[plane * g.h * g.w..(plane + 1) * g.h * g.w],
                    &w[ch * g.k * g.k..(ch + 1) * g.k * g.k],
                    &mut out[i * g.oh * g.ow..(i + 1) * g.oh * g.ow],
                    g,
                );
            }
            Ok(())
        })?;
        Ok((CpuStorage::F32(out), Shape::from((g.n, g.c, g.oh, g.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = self.geometry(x.shape(), w.shape())?;
        let (x, w, grad) = (x.contiguous()?, w.contiguous()?, grad.contiguous()?);
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let xd = cpu::tensor_f32(&xs, xl, NAME)?;
        let wd = cpu::tensor_f32(&ws, wl, NAME)?;
        let gd = cpu::tensor_f32(&gs, gl, NAME)?;
        let planes = g.n * g.c;
        let want_dx = x.track_op();
        let kk = g.k * g.k;
        let mut dx = vec![0f32; if want_dx { planes * g.h * g.w } else { 0 }];
        // Per plane, its k × k share of the weight gradient; summed over the batch below.
        let mut dw_planes = vec![0f32; planes * kk];
        let ranges = cpu::ranges(planes, 4 * cpu::MAX_CHUNKS);
        let dxs: Vec<Option<&mut [f32]>> = if want_dx {
            cpu::split_mut(&mut dx, &ranges, g.h * g.w)
                .into_iter()
                .map(Some)
                .collect()
        } else {
            (0..ranges.len()).map(|_| None).collect()
        };
        let dws = cpu::split_mut(&mut dw_planes, &ranges, kk);
        let tasks: Vec<_> = ranges.into_iter().zip(dxs).zip(dws).collect();
        cpu::run(tasks, |((r, mut dx), dw)| {
            for (i, plane) in r.enumerate() {
                let ch = plane % g.c;
                let hw = g.h * g.w;
                backward_plane(
                    &xd[plane * hw..(plane + 1) * hw],
                    &wd[ch * kk..(ch + 1) * kk],
                    &gd[plane * g.oh * g.ow..(plane + 1) * g.oh * g.ow],
                    dx.as_deref_mut().map(|d| &mut d[i * hw..(i + 1) * hw]),
                    &mut dw[i * kk..(i + 1) * kk],
                    g,
                );
            }
            Ok(())
        })?;
        let mut dw = vec![0f32; g.c * kk];
        for img in 0..g.n {
            for ch in 0..g.c {
                let part = &dw_planes[(img * g.c + ch) * kk..(img * g.c + ch + 1) * kk];
                for (d, &p) in dw[ch * kk..(ch + 1) * kk].iter_mut().zip(part) {
                    *d += p;
                }
            }
        }
        let dx = if want_dx {
            Some(Tensor::from_vec(dx, x.shape(), x.device())?)
        } else {
            None
        };
        Ok((dx, Some(Tensor::from_vec(dw, w.shape(), w.device())?)))
    }
}

/// Whether [`depthwise`] applies: f32 tensors on the CPU.
pub fn applies(x: &Tensor, w: &Tensor) -> bool {
    cpu::fast_path(&[x, w])
}

/// Depthwise convolution of `x` (`n × c × h × w`) with `w` (`c × 1 × k × k`), `padding`
/// zeros on every side, `stride`.
pub fn depthwise(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&w.contiguous()?, Depthwise { padding, stride })
}
