//! Layer norm over the last dimension, `y = (x − mean) / √(var + eps) · γ + β` row by row: on
//! the CPU one op whose forward and backward each read a row once it is in cache (the mean
//! and variance are recomputed in the backward, not stored), with the scale's and shift's
//! gradients summed in a fixed number of chunks.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};

use super::cpu;
use std::mem::MaybeUninit;

const NAME: &str = "layer-norm";

/// `x` (`… × features`) normalised over its last dimension, scaled by `gamma` and shifted by
/// `beta` (both `features`), in `x`'s dtype.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let features = x.dim(D::Minus1)?;
    if gamma.dims() != [features] || beta.dims() != [features] {
        bail!(
            "{NAME}: {features} features, but scale {:?} and shift {:?}",
            gamma.dims(),
            beta.dims()
        )
    }
    if cpu::fast_path(&[x, gamma, beta]) {
        let (gamma, beta) = (gamma.contiguous()?, beta.contiguous()?);
        return x.contiguous()?.apply_op3(&gamma, &beta, LayerNorm { eps });
    }
    layer_norm_generic(x, gamma, beta, eps)
}

/// The same computation with candle's own ops (other devices and dtypes; the twin of the CPU
/// op).
pub fn layer_norm_generic(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let m = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&m)?;
    let v = centered.sqr()?.mean_keepdim(D::Minus1)?;
    centered
        .broadcast_div(&(v + eps)?.sqrt()?)?
        .broadcast_mul(gamma)?
        .broadcast_add(beta)
}

struct LayerNorm {
    eps: f64,
}

/// The mean of `row` and the reciprocal of its standard deviation (with `eps`).
#[inline(always)]
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let len = row.len().max(1) as f32;
    let mean = row.iter().sum::<f32>() / len;
    let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / len;
    (mean, 1.0 / (var + eps).sqrt())
}

cpu::multiversion! {
    /// `y = (x − mean) · rstd · γ + β` for every row of `x` (rows of `gamma.len()`).
    fn normalise_rows(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, y: &mut [MaybeUninit<f32>]) {
        let f = gamma.len().max(1);
        for (row, out) in x.chunks_exact(f).zip(y.chunks_exact_mut(f)) {
            let (mean, rstd) = moments(row, eps);
            for (((o, &v), &g), &b) in out.iter_mut().zip(row).zip(gamma).zip(beta) {
                o.write((v - mean) * rstd * g + b);
            }
        }
    }
}

cpu::multiversion! {
    /// The input's gradient `dx` of every row, and the scale's and shift's gradients of these
    /// rows added to `dgamma` and `dbeta`.
    fn backward_rows(
        x: &[f32],
        g: &[f32],
        gamma: &[f32],
        eps: f32,
        dx: &mut [MaybeUninit<f32>],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
    ) {
        let f = gamma.len().max(1);
        let len = f as f32;
        for ((row, grow), drow) in x.chunks_exact(f).zip(g.chunks_exact(f)).zip(dx.chunks_exact_mut(f)) {
            let (mean, rstd) = moments(row, eps);
            // Σ g·γ and Σ g·γ·x̂ over the row.
            let (mut sum_gg, mut sum_ggx) = (0f32, 0f32);
            for (((&v, &gv), &gm), (dg, db)) in row
                .iter()
                .zip(grow)
                .zip(gamma)
                .zip(dgamma.iter_mut().zip(dbeta.iter_mut()))
            {
                let xhat = (v - mean) * rstd;
                let gg = gv * gm;
                sum_gg += gg;
                sum_ggx += gg * xhat;
                *dg += gv * xhat;
                *db += gv;
            }
            let (mean_gg, mean_ggx) = (sum_gg / len, sum_ggx / len);
            for (((d, &v), &gv), &gm) in drow.iter_mut().zip(row).zip(grow).zip(gamma) {
                let xhat = (v - mean) * rstd;
                d.write(rstd * (gv * gm - mean_gg - xhat * mean_ggx));
            }
        }
    }
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu::storage_f32(xs, xl, NAME)?;
        let gamma = cpu::storage_f32(gs, gl, NAME)?;
        let beta = cpu::storage_f32(bs, bl, NAME)?;
        let f = gamma.len();
        let rows = x.len().checked_div(f).unwrap_or(0);
        let eps = self.eps as f32;
        let mut y = cpu::uninit_vec(x.len());
        let ranges = cpu::ranges(rows, 4 * cpu::MAX_CHUNKS);
        let outs = cpu::split_mut(&mut y, &ranges, f);
        let tasks: Vec<_> = ranges.into_iter().zip(outs).collect();
        cpu::run(tasks, |(r, out)| {
            normalise_rows(&x[r.start * f..r.end * f], gamma, beta, eps, out);
            Ok(())
        })?;
        // SAFETY: the ranges cover every row, and `normalise_rows` writes each of its rows.
        let y = unsafe { cpu::assume_written(y) };
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    #[allow(clippy::type_complexity)]
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let f = gamma.elem_count();
        let rows = x.elem_count().checked_div(f).unwrap_or(0);
        let (x, gamma) = (&x.contiguous()?, &gamma.contiguous()?);
        let (xs, xl) = x.storage_and_layout();
        let xd = cpu::tensor_f32(&xs, xl, NAME)?;
        let (gms, gml) = gamma.storage_and_layout();
        let gm = cpu::tensor_f32(&gms, gml, NAME)?;
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let g = cpu::tensor_f32(&gs, gl, NAME)?;
        if g.len() != xd.len() {
            bail!("{NAME}: gradient of the wrong size")
        }
        let eps = self.eps as f32;
        let mut dx = cpu::uninit_vec(xd.len());
        // Fixed chunks, each with its partial sums of the scale's and shift's gradients, added
        // in order: the same sums whatever the thread count.
        let ranges = cpu::ranges(rows, cpu::MAX_CHUNKS);
        let dxs = cpu::split_mut(&mut dx, &ranges, f);
        let tasks: Vec<_> = ranges.into_iter().zip(dxs).collect();
        let partials = cpu::run(tasks, |(r, dx)| {
            let (mut dgamma, mut dbeta) = (vec![0f32; f], vec![0f32; f]);
            let (x, g) = (&xd[r.start * f..r.end * f], &g[r.start * f..r.end * f]);
            backward_rows(x, g, gm, eps, dx, &mut dgamma, &mut dbeta);
            Ok((dgamma, dbeta))
        })?;
        // SAFETY: the ranges cover every row, and `backward_rows` writes each of its rows.
        let dx = unsafe { cpu::assume_written(dx) };
        let (mut dgamma, mut dbeta) = (vec![0f32; f], vec![0f32; f]);
        for (pg, pb) in partials {
            for (a, v) in dgamma.iter_mut().zip(pg) {
                *a += v;
            }
            for (a, v) in dbeta.iter_mut().zip(pb) {
                *a += v;
            }
        }
        let dx = x
            .track_op()
            .then(|| Tensor::from_vec(dx, x.shape(), x.device()))
            .transpose()?;
        let dgamma = gamma
            .track_op()
            .then(|| Tensor::from_vec(dgamma, gamma.shape(), gamma.device()))
            .transpose()?;
        let dbeta = beta
            .track_op()
            .then(|| Tensor::from_vec(dbeta, beta.shape(), beta.device()))
            .transpose()?;
        Ok((dx, dgamma, dbeta))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use rand::Rng;

    #[test]
    fn outputs_and_gradients_match_candle_on_random_shapes() {
        let mut rng = rng(71);
        for case in 0..30 {
            let (rows, f) = if case == 0 {
                (130, 192)
            } else {
                (rng.random_range(1..40), rng.random_range(1..50))
            };
            let vx = var(&mut rng, &[rows, f]);
            let vg = var(&mut rng, &[f]);
            let vb = var(&mut rng, &[f]);
            let eps = if case % 2 == 0 { 1e-6 } else { 1e-5 };
            check_against(
                &[&vx, &vg, &vb],
                &mut rng,
                |t| layer_norm(&t[0], &t[1], &t[2], eps),
                |t| layer_norm_generic(&t[0], &t[1], &t[2], eps),
                &format!("{rows} rows of {f}"),
            );
        }
    }

    #[test]
    fn gradients_do_not_depend_on_the_thread_count() {
        let mut rng = rng(72);
        let vx = var(&mut rng, &[3, 37, 24]);
        let vg = var(&mut rng, &[24]);
        let vb = var(&mut rng, &[24]);
        let r = random(&mut rng, &[3, 37, 24]);
        let grads = || {
            let y = layer_norm(vx.as_tensor(), vg.as_tensor(), vb.as_tensor(), 1e-6).unwrap();
            let g = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            [vx.as_tensor(), vg.as_tensor(), vb.as_tensor()].map(|v| {
                g.get(v)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
        };
        assert_eq!(grads(), cpu::sequentially(grads));
    }

    #[test]
    fn a_scale_of_the_wrong_size_is_an_error() {
        let mut rng = rng(73);
        let x = random(&mut rng, &[2, 5]);
        let g = random(&mut rng, &[4]);
        let err = layer_norm(&x, &g, &g, 1e-6).unwrap_err().to_string();
        assert!(err.contains("5 features"), "{err}");
    }
}
