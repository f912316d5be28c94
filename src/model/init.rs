//! Seeded weight initialisation (PyTorch's defaults for conv and dense layers), so the same
//! seed gives the same starting weights on every machine.

use candle_core::{Device, Result, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Uniform in `[-bound, bound]`, drawn from `rng`.
pub fn uniform(rng: &mut ChaCha8Rng, shape: &[usize], bound: f64, device: &Device) -> Result<Var> {
    let n: usize = shape.iter().product();
    let b = bound as f32;
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-b..=b)).collect();
    Var::from_tensor(&Tensor::from_vec(values, shape, device)?)
}

/// PyTorch's default for `Conv2d`/`Linear` weights and biases (kaiming-uniform with a = √5):
/// both uniform in ±1/√fan_in.
pub fn default_bound(fan_in: usize) -> f64 {
    1.0 / (fan_in.max(1) as f64).sqrt()
}

pub fn constant(value: f32, shape: &[usize], device: &Device) -> Result<Var> {
    Var::from_tensor(&Tensor::full(value, shape, device)?)
}
