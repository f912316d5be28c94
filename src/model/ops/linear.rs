//! A dense layer `y = x · Wᵀ + b` with an optional fused ReLU, as one candle custom op whose
//! forward and backward are three matrix products and a bias pass on the CPU.

use candle_core::{bail, CpuStorage, Layout, Result, Shape, Tensor};

use super::cpu;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::matmul::{gemm, Mat, MatMut, Parallelism};

/// `x` (`batch × inputs`, or `batch × …` flattened: a preceding flatten is fused in), `w`
/// (`units × inputs`), `b` (`units`); ReLU on the output if `relu`.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, relu: bool) -> Result<Tensor> {
    let w = &super::cast_like(w, x)?;
    let b = b.map(|b| super::cast_like(b, x)).transpose()?;
    let b = b.as_ref();
    let all: Vec<&Tensor> = [Some(x), Some(w), b].into_iter().flatten().collect();
    if !cpu::fast_path(&all) || x.rank() < 2 {
        return reference(x, w, b, relu);
    }
    let op = Linear { relu };
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, op),
        None => x.apply_op2(&w, op),
    }
}

/// The same computation with candle's own ops (used off the CPU, and by the tests).
pub fn reference(x: &Tensor, w: &Tensor, b: Option<&Tensor>, relu: bool) -> Result<Tensor> {
    let mut y = x.flatten_from(1)?.matmul(&w.t()?)?;
    if let Some(b) = b {
        y = y.broadcast_add(b)?;
    }
    if relu {
        y = y.relu()?;
    }
    Ok(y)
}

const NAME: &str = "linear";

/// The parts a product is split into along the rows of its result, to run in parallel. Fixed,
/// so that results are the same whatever the thread count.
const PARTS: usize = 4;

/// Products with fewer multiply-adds than this are computed in one piece.
const SMALL: usize = 1 << 20;

/// `dst (rows × cols, row-major) = lhs (rows × k) · rhs (k × cols)`, computed in [`PARTS`] row
/// blocks in parallel; `lhs(range)` is the view of those rows.
fn gemm_rows<'a>(
    (rows, cols, k): (usize, usize, usize),
    dst: &mut [f32],
    lhs: impl Fn(Range<usize>) -> Mat<'a> + Sync + Send,
    rhs: Mat<'_>,
) -> Result<()> {
    // Small products are not worth waking other threads for.
    let parts = if rows * cols * k < SMALL { 1 } else { PARTS };
    let ranges = cpu::ranges(rows, parts);
    let parts = cpu::split_mut(dst, &ranges, cols);
    let tasks: Vec<_> = ranges.into_iter().zip(parts).collect();
    cpu::run(tasks, |(r, part)| {
        let m = r.len();
        let dst = MatMut::rows(part, cols);
        gemm(m, cols, k, dst, false, lhs(r), rhs, Parallelism::None)
    })?;
    Ok(())
}

struct Linear {
    relu: bool,
}

cpu::multiversion! {
    /// `out = row + b`, through a ReLU if `relu`.
    fn bias_relu(row: &[f32], b: Option<&[f32]>, relu: bool, out: &mut [MaybeUninit<f32>]) {
        let act = |t: f32| if relu && t < 0.0 { 0.0 } else { t };
        match b {
            Some(b) => {
                for ((o, &v), &bu) in out.iter_mut().zip(row).zip(b) {
                    o.write(act(v + bu));
                }
            }
            None => {
                for (o, &v) in out.iter_mut().zip(row) {
                    o.write(act(v));
                }
            }
        }
    }
}

/// `x · Wᵀ + b` for many rows: row blocks of the product go to scratch, then to the output
/// with the bias and ReLU while they are still in cache.
fn by_rows(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    (n, inputs, units): (usize, usize, usize),
    relu: bool,
) -> Result<Vec<f32>> {
    let parts = if n * units * inputs < SMALL { 1 } else { PARTS };
    let ranges = cpu::ranges(n, parts);
    let mut scratch = cpu::take_scratch(n * units);
    let wt = Mat::transposed(w, inputs);
    // SAFETY: the ranges cover every row, and each task writes every value of its rows.
    let y = unsafe {
        cpu::written_vec(n * units, |y| {
            let products = cpu::split_mut(&mut scratch[..n * units], &ranges, units);
            let outs = cpu::split_mut(y, &ranges, units);
            let tasks: Vec<_> = ranges.iter().cloned().zip(products).zip(outs).collect();
            cpu::run(tasks, |((r, product), out)| {
                let xr = Mat::rows(&x[r.start * inputs..r.end * inputs], inputs);
                let dst = MatMut::rows(product, units);
                gemm(
                    r.len(),
                    units,
                    inputs,
                    dst,
                    false,
                    xr,
                    wt,
                    Parallelism::None,
                )?;
                let width = units.max(1);
                let rows = product.chunks_exact(width).zip(out.chunks_exact_mut(width));
                for (row, out) in rows {
                    bias_relu(row, b, relu, out);
                }
                Ok(())
            })?;
            Ok(())
        })
    };
    cpu::put_scratch(scratch);
    y
}

/// `x · Wᵀ + b` for fewer rows than units: the product is computed transposed (units × n,
/// row-major), the orientation the gemm kernel runs fastest in at this shape, then written
/// out row-major with the bias and ReLU.
fn by_units(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    (n, inputs, units): (usize, usize, usize),
    relu: bool,
) -> Result<Vec<f32>> {
    let mut yt = cpu::take_scratch(n * units);
    let w_rows = |r: Range<usize>| Mat::rows(&w[r.start * inputs..r.end * inputs], inputs);
    let xt = Mat::transposed(x, inputs);
    gemm_rows((units, n, inputs), &mut yt[..n * units], w_rows, xt)?;
    let mut y = vec![0f32; n * units];
    for (u, col) in yt[..n * units].chunks_exact(n.max(1)).enumerate() {
        let bu = b.map_or(0.0, |b| b[u]);
        for (i, &v) in col.iter().enumerate() {
            let t = v + bu;
            y[i * units + u] = if relu && t < 0.0 { 0.0 } else { t };
        }
    }
    cpu::put_scratch(yt);
    Ok(y)
}

fn dims(x: &Shape, w: &Shape, b: Option<usize>) -> Result<(usize, usize, usize)> {
    let (n, inputs) = match x.dims() {
        [n, rest @ ..] if !rest.is_empty() => (*n, rest.iter().product()),
        _ => bail!(
            "{NAME}: expects a batch of vectors, got shape {:?}",
            x.dims()
        ),
    };
    let (units, w_inputs) = w.dims2()?;
    if inputs != w_inputs {
        bail!("{NAME}: inputs of size {inputs} but weights for {w_inputs}")
    }
    if let Some(len) = b {
        if len != units {
            bail!("{NAME}: {len} biases for {units} units")
        }
    }
    Ok((n, inputs, units))
}

impl Linear {
    fn forward(
        &self,
        (xs, xl): (&CpuStorage, &Layout),
        (ws, wl): (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu::storage_f32(xs, xl, NAME)?;
        let w = cpu::storage_f32(ws, wl, NAME)?;
        let b = match bias {
            Some((s, l)) => Some(cpu::storage_f32(s, l, NAME)?),
            None => None,
        };
        let (n, inputs, units) = dims(xl.shape(), wl.shape(), b.map(|b| b.len()))?;
        let y = if n >= units {
            by_rows(x, w, b, (n, inputs, units), self.relu)?
        } else {
            by_units(x, w, b, (n, inputs, units), self.relu)?
        };
        Ok((CpuStorage::F32(y), Shape::from((n, units))))
    }

    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let need_dx = x.track_op();
        let need_dw = w.track_op();
        let need_db = b.is_some_and(|b| b.track_op());
        let (n, inputs, units) = dims(x.shape(), w.shape(), b.map(|b| b.elem_count()))?;
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let gd = cpu::tensor_f32(&gs, gl, NAME)?;
        if gd.len() != n * units {
            bail!("{NAME}: gradient of the wrong size")
        }
        // The gradient before the ReLU.
        let masked;
        let g: &[f32] = if self.relu {
            let res = res.contiguous()?;
            let (rs, rl) = res.storage_and_layout();
            let rd = cpu::tensor_f32(&rs, rl, NAME)?;
            masked = gd
                .iter()
                .zip(rd)
                .map(|(&g, &r)| if r > 0.0 { g } else { 0.0 })
                .collect::<Vec<f32>>();
            &masked
        } else {
            gd
        };
        let dx = if need_dx {
            let w = w.contiguous()?;
            let (ws, wl) = w.storage_and_layout();
            let wd = cpu::tensor_f32(&ws, wl, NAME)?;
            let mut dx = vec![0f32; n * inputs];
            let g_rows = |r: Range<usize>| Mat::rows(&g[r.start * units..r.end * units], units);
            gemm_rows((n, inputs, units), &mut dx, g_rows, Mat::rows(wd, inputs))?;
            Some(Tensor::from_vec(dx, x.shape(), x.device())?)
        } else {
            None
        };
        let dw = if need_dw {
            let x = x.contiguous()?;
            let (xs, xl) = x.storage_and_layout();
            let xd = cpu::tensor_f32(&xs, xl, NAME)?;
            let mut dw = vec![0f32; units * inputs];
            // Rows of Gᵀ: columns of G.
            let gt_rows = |r: Range<usize>| Mat {
                data: &g[r.start..],
                rs: 1,
                cs: units,
            };
            gemm_rows((units, inputs, n), &mut dw, gt_rows, Mat::rows(xd, inputs))?;
            Some(Tensor::from_vec(dw, w.shape(), w.device())?)
        } else {
            None
        };
        let db = match b {
            Some(b) if need_db => {
                let mut db = vec![0f32; units];
                for row in g.chunks_exact(units.max(1)) {
                    for (a, &v) in db.iter_mut().zip(row) {
                        *a += v;
                    }
                }
                Some(Tensor::from_vec(db, b.shape(), b.device())?)
            }
            _ => None,
        };
        Ok((dx, dw, db))
    }
}

custom_op_with_optional_bias!(Linear, NAME);

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use rand::Rng;

    #[test]
    fn outputs_and_gradients_match_candle_on_random_shapes() {
        let mut rng = rng(41);
        for case in 0..40 {
            let (n, inputs, units) = if case == 0 {
                (64, 1568, 128)
            } else {
                (
                    rng.random_range(1..70),
                    rng.random_range(1..300),
                    rng.random_range(1..40),
                )
            };
            let (relu, bias) = (rng.random_bool(0.5), rng.random_bool(0.7));
            let vx = var(&mut rng, &[n, inputs]);
            let vw = var(&mut rng, &[units, inputs]);
            let vb = var(&mut rng, &[units]);
            let mut vars = vec![&vx, &vw];
            if bias {
                vars.push(&vb);
            }
            check_against(
                &vars,
                &mut rng,
                |t| linear(&t[0], &t[1], t.get(2), relu),
                |t| reference(&t[0], &t[1], t.get(2), relu),
                &format!("{n}×{inputs} -> {units} relu {relu} bias {bias}"),
            );
        }
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let mut rng = rng(1);
        let x = random(&mut rng, &[2, 5]);
        let w = random(&mut rng, &[3, 4]);
        assert!(linear(&x, &w, None, false).is_err());
        let w = random(&mut rng, &[3, 5]);
        let b = random(&mut rng, &[4]);
        assert!(linear(&x, &w, Some(&b), false).is_err());
    }

    #[test]
    fn other_dtypes_take_candles_ops_with_the_same_results() {
        let mut rng = rng(11);
        let f64 = candle_core::DType::F64;
        let (x, w, b) = (
            random(&mut rng, &[5, 7]),
            random(&mut rng, &[3, 7]),
            random(&mut rng, &[3]),
        );
        let fast = linear(&x, &w, Some(&b), true).unwrap();
        let (x, w, b) = (
            x.to_dtype(f64).unwrap(),
            w.to_dtype(f64).unwrap(),
            b.to_dtype(f64).unwrap(),
        );
        let slow = linear(&x, &w, Some(&b), true)
            .unwrap()
            .to_dtype(candle_core::DType::F32)
            .unwrap();
        assert!(rel_diff(&fast, &slow) < 1e-5);
    }

    #[test]
    fn a_flatten_before_is_fused() {
        let mut rng = rng(12);
        let vx = var(&mut rng, &[6, 2, 3, 5]);
        let vw = var(&mut rng, &[4, 30]);
        let vb = var(&mut rng, &[4]);
        check_against(
            &[&vx, &vw, &vb],
            &mut rng,
            |t| linear(&t[0], &t[1], Some(&t[2]), true),
            |t| reference(&t[0].flatten_from(1)?, &t[1], Some(&t[2]), true),
            "4-d input",
        );
    }
}
