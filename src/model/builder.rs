//! Creates an architecture's parameters and state in order, seeded or as zeros (a dry build for
//! validation: parameter counts and shape checks without drawing weights), and tallies the
//! activations one image produces.

use std::sync::Arc;

use candle_core::{Device, Result, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::init;
use super::param::Training;
use super::{Param, Summary};

/// How new parameters get their values.
pub enum Init<'a> {
    /// Drawn from this stream, in creation order.
    Seeded(&'a mut ChaCha8Rng),
    /// Zeros (allocated lazily by the OS, so even a large model costs almost nothing).
    Dry,
}

/// The starting distribution of one weight tensor.
#[derive(Clone, Copy, Debug)]
pub enum Fill {
    /// Uniform in ±bound.
    Uniform(f64),
    /// Normal with this standard deviation.
    Normal(f64),
    /// Truncated normal (redrawn outside ±2 std), as ViTs use.
    TruncNormal(f64),
    Constant(f32),
}

pub struct Builder<'a> {
    init: Init<'a>,
    device: Device,
    params: Vec<Param>,
    buffers: Vec<(String, Var)>,
    activations: usize,
    flops: usize,
    lowering: usize,
    /// Values created so far (parameters and buffers).
    values: usize,
    /// The part new parameters belong to (see [`Builder::part`]).
    part: String,
}

/// The most parameter and buffer values a build creates (4 GiB of f32): a size key beyond it
/// is an error before anything is allocated.
pub const MAX_VALUES: usize = 1 << 30;

impl<'a> Builder<'a> {
    pub fn new(init: Init<'a>, device: &Device) -> Self {
        Self {
            init,
            device: device.clone(),
            params: Vec::new(),
            buffers: Vec::new(),
            activations: 0,
            flops: 0,
            lowering: 0,
            values: 0,
            part: String::new(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn tensor(&mut self, shape: &[usize], fill: Fill) -> Result<Var> {
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX);
        self.values = self.values.saturating_add(n);
        if self.values > MAX_VALUES {
            candle_core::bail!(
                "the model has more than {MAX_VALUES} parameters, beyond what any machine here trains"
            )
        }
        let rng = match &mut self.init {
            Init::Dry => return Var::zeros(shape, candle_core::DType::F32, &self.device),
            Init::Seeded(rng) => rng,
        };
        let values: Vec<f32> = match fill {
            Fill::Constant(v) => return init::constant(v, shape, &self.device),
            Fill::Uniform(bound) => {
                let b = bound as f32;
                (0..n).map(|_| rng.random_range(-b..=b)).collect()
            }
            Fill::Normal(std) => (0..n).map(|_| (normal(rng) * std) as f32).collect(),
            Fill::TruncNormal(std) => (0..n)
                .map(|_| loop {
                    let z = normal(rng);
                    if z.abs() <= 2.0 {
                        break (z * std) as f32;
                    }
                })
                .collect(),
        };
        Var::from_tensor(&Tensor::from_vec(values, shape, &self.device)?)
    }

    /// The parameters created from now on belong to part `name` (`stem`, `stages.0`, `head`,
    /// …): the names `[model] freeze` takes.
    pub fn part(&mut self, name: impl Into<String>) {
        self.part = name.into();
    }

    /// A trainable tensor named `name`; `decay` puts it in the weight-decay group.
    pub fn param(&mut self, name: &str, shape: &[usize], fill: Fill, decay: bool) -> Result<Var> {
        self.param_sharing(name, shape, fill, decay, &Arc::default())
    }

    /// [`Builder::param`] whose training flags are `training` (shared with other parameters).
    pub fn param_sharing(
        &mut self,
        name: &str,
        shape: &[usize],
        fill: Fill,
        decay: bool,
        training: &Arc<Training>,
    ) -> Result<Var> {
        let var = self.tensor(shape, fill)?;
        self.params
            .push(Param::new(name, var.clone(), decay).in_part(&self.part, training.clone()));
        Ok(var)
    }

    /// Non-trainable state saved with the weights (batch-norm running statistics).
    pub fn buffer(&mut self, name: &str, shape: &[usize], value: f32) -> Result<Var> {
        let var = match self.init {
            Init::Dry => self.tensor(shape, Fill::Constant(0.0))?,
            Init::Seeded(_) => {
                self.values = self.values.saturating_add(shape.iter().product());
                init::constant(value, shape, &self.device)?
            }
        };
        self.buffers.push((name.to_string(), var.clone()));
        Ok(var)
    }

    /// Records that a layer's output holds `elements` values per image (kept for the backward
    /// pass), for the memory estimate.
    pub fn activation(&mut self, elements: usize) {
        self.activations = self.activations.saturating_add(elements);
    }

    /// Records `n` floating-point operations of one image's forward pass.
    pub fn flops(&mut self, n: usize) {
        self.flops = self.flops.saturating_add(n);
    }

    /// Records a convolution's lowering buffer of `values` per image (the largest is kept).
    pub fn lowering(&mut self, values: usize) {
        self.lowering = self.lowering.max(values);
    }

    pub fn finish(self) -> Built {
        let parameters = self.params.iter().map(|p| p.var.elem_count()).sum();
        Built {
            params: self.params,
            buffers: self.buffers,
            device: self.device,
            summary: Summary {
                parameters,
                activations_per_image: self.activations,
                forward_flops_per_image: self.flops,
                largest_lowering: self.lowering,
            },
        }
    }
}

/// What a build produced, for the model that owns it.
pub struct Built {
    pub params: Vec<Param>,
    pub buffers: Vec<(String, Var)>,
    pub device: Device,
    pub summary: Summary,
}

/// A standard normal draw (Box–Muller), from the seeded stream.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_builds_repeat_and_dry_builds_are_zeros() {
        let draw = |seed| {
            let mut rng = crate::train::rng::stream(seed, "init", 0);
            let mut b = Builder::new(Init::Seeded(&mut rng), &Device::Cpu);
            let w = b
                .param("w", &[1000], Fill::TruncNormal(0.02), true)
                .unwrap();
            w.as_tensor().to_vec1::<f32>().unwrap()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        let v = draw(1);
        assert!(v.iter().all(|x| x.abs() <= 0.04 + 1e-6));
        let std = (v.iter().map(|x| x * x).sum::<f32>() / 1000.0).sqrt();
        assert!((0.013..0.022).contains(&std), "std {std}");
        let mut b = Builder::new(Init::Dry, &Device::Cpu);
        let err = b
            .param("huge", &[1 << 20, 1 << 11], Fill::Normal(1.0), true)
            .unwrap_err();
        assert!(
            err.to_string().contains("more than 1073741824 parameters"),
            "{err}"
        );
        let mut b = Builder::new(Init::Dry, &Device::Cpu);
        let w = b.param("w", &[3, 3], Fill::Normal(1.0), true).unwrap();
        assert_eq!(
            w.as_tensor().sum_all().unwrap().to_scalar::<f32>().unwrap(),
            0.0
        );
        assert_eq!(b.finish().params.len(), 1);
    }
}
