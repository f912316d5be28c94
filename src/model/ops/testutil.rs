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
