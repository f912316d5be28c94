//! Test helpers for the custom ops: seeded random tensors, pooling written with candle's
//! differentiable primitives only, and gradient comparison against those references.

use candle_core::{Device, Result, Tensor, Var, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Uniform values in (-1, 1): ties and exact zeros have probability ~0.
pub fn random(rng: &mut ChaCha8Rng, dims: &[usize]) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

pub fn var(rng: &mut ChaCha8Rng, dims: &[usize]) -> Var {
    Var::from_tensor(&random(rng, dims)).unwrap()
}

/// Every pooling window as a new last dimension: `(n, c, oh, ow, size²)`, built from
/// `index_select`, so candle can differentiate through it for any size and stride.
fn windows(x: &Tensor, size: usize, stride: usize) -> Result<Tensor> {
    let x = &x.contiguous()?;
    let (_, _, h, w) = x.dims4()?;
    let (oh, ow) = ((h - size) / stride + 1, (w - size) / stride + 1);
    let mut parts = Vec::new();
    for i in 0..size {
        for j in 0..size {
            let rows: Vec<u32> = (0..oh).map(|o| (o * stride + i) as u32).collect();
            let cols: Vec<u32> = (0..ow).map(|o| (o * stride + j) as u32).collect();
            let rows = Tensor::new(rows.as_slice(), x.device())?;
            let cols = Tensor::new(cols.as_slice(), x.device())?;
            parts.push(x.index_select(&rows, 2)?.index_select(&cols, 3)?);
        }
    }
    Tensor::stack(&parts, 4)
}

pub fn candle_max_pool(x: &Tensor, size: usize, stride: usize) -> Result<Tensor> {
    windows(x, size, stride)?.max(D::Minus1)
}

pub fn candle_avg_pool(x: &Tensor, size: usize, stride: usize) -> Result<Tensor> {
    windows(x, size, stride)?.mean(D::Minus1)
}

/// Largest absolute difference, relative to the larger magnitude (at least 1).
pub fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let scale = a.iter().chain(&b).fold(1f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
        / scale
}

/// Runs `f` (the op under test) and `g` (its reference) on `vars`, then compares the outputs and
/// the gradients of `sum(out · r)` with respect to every var, for a random `r`.
pub fn check_against(
    vars: &[&Var],
    rng: &mut ChaCha8Rng,
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    g: impl Fn(&[Tensor]) -> Result<Tensor>,
    what: &str,
) {
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let got = f(&ts).unwrap();
    let want = g(&ts).unwrap();
    assert_eq!(got.dims(), want.dims(), "{what}: output shapes");
    assert!(
        rel_diff(&got, &want) < 1e-5,
        "{what}: outputs differ by {}",
        rel_diff(&got, &want)
    );
    let r = random(rng, got.dims());
    let got_grads = (&got * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let want_grads = (&want * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for (i, v) in vars.iter().enumerate() {
        let a = got_grads.get(v.as_tensor());
        let b = want_grads.get(v.as_tensor());
        match (a, b) {
            (Some(a), Some(b)) => {
                let d = rel_diff(a, b);
                assert!(d < 1e-5, "{what}: gradient {i} differs by {d}");
            }
            (None, None) => {}
            (a, b) => panic!(
                "{what}: gradient {i} present in op: {}, in reference: {}",
                a.is_some(),
                b.is_some()
            ),
        }
    }
}

/// A pooling op as the layers call it.
pub type Pool = fn(&Tensor, super::max_pool::Window) -> Result<Tensor>;

/// `pool`'s outputs and gradients against `reference` (written with candle's differentiable
/// ops) on 40 random shapes, window sizes and strides.
pub fn pool_matches_reference(
    seed: u64,
    pool: Pool,
    reference: fn(&Tensor, usize, usize) -> Result<Tensor>,
) {
    use super::max_pool::Window;
    let mut rng = rng(seed);
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
            |t| pool(&t[0], win),
            |t| reference(&t[0], win.size, win.stride),
            &format!("{n}×{c}×{h}×{w} {win:?}"),
        );
    }
}

/// `pool` on f64 input (candle's ops, not the f32 fast path) gives f64 results and the same
/// outputs and gradients as on f32, for size = stride and size ≠ stride.
pub fn other_dtypes_match_f32(seed: u64, pool: Pool) {
    use super::max_pool::Window;
    use candle_core::DType;
    let mut rng = rng(seed);
    let x = random(&mut rng, &[2, 3, 7, 6]);
    for win in [Window { size: 2, stride: 2 }, Window { size: 3, stride: 2 }] {
        let xv = Var::from_tensor(&x.to_dtype(DType::F64).unwrap()).unwrap();
        let y = pool(xv.as_tensor(), win).unwrap();
        assert_eq!(y.dtype(), DType::F64);
        let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let g = g.get(xv.as_tensor()).unwrap().to_dtype(DType::F32).unwrap();
        let xf = Var::from_tensor(&x).unwrap();
        let yf = pool(xf.as_tensor(), win).unwrap();
        let gf = yf.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let y = y.to_dtype(DType::F32).unwrap();
        assert!(rel_diff(&y, &yf) < 1e-6, "{win:?}");
        assert!(
            rel_diff(&g, gf.get(xf.as_tensor()).unwrap()) < 1e-6,
            "{win:?}"
        );
    }
}
