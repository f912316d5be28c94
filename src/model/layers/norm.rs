//! Batch norm (batch statistics in training, running statistics in evaluation) and layer norm,
//! both CPU ops with device-generic twins made of candle ops whose gradients flow (candle's
//! fused layer norm drops them).

use std::sync::Arc;

use candle_core::{DType, Result, Tensor, Var};

use super::super::builder::{Builder, Fill};
use super::super::ops::batch_norm as fast;
pub use super::super::ops::batch_norm::{Clamp, Then};
use super::super::ops::layer_norm::layer_norm;
use super::super::param::Training;
use super::super::Mode;
use super::activation::Activation;

pub struct BatchNorm {
    gamma: Var,
    beta: Var,
    mean: Var,
    var: Var,
    momentum: f64,
    eps: f64,
    /// The training flags of the scale and shift: while they are frozen the layer uses and
    /// keeps its running statistics, in training too.
    training: Arc<Training>,
}

impl BatchNorm {
    /// Over `channels` features, with PyTorch's meaning of `momentum` (the new batch's weight).
    pub fn new(
        b: &mut Builder,
        name: &str,
        channels: usize,
        momentum: f64,
        eps: f64,
    ) -> Result<Self> {
        let training = Arc::new(Training::default());
        let one = Fill::Constant(1.0);
        let zero = Fill::Constant(0.0);
        Ok(Self {
            gamma: b.param_sharing(
                &format!("{name}.weight"),
                &[channels],
                one,
                false,
                &training,
            )?,
            beta: b.param_sharing(&format!("{name}.bias"), &[channels], zero, false, &training)?,
            mean: b.buffer(&format!("{name}.running_mean"), &[channels], 0.0)?,
            var: b.buffer(&format!("{name}.running_var"), &[channels], 1.0)?,
            momentum,
            eps,
            training,
        })
    }

    /// From existing scale and shift parameters (whose training flags are `training`) and
    /// running-statistics buffers.
    pub fn from_parts(
        (gamma, beta, training): (Var, Var, Arc<Training>),
        mean: Var,
        var: Var,
        momentum: f64,
        eps: f64,
    ) -> Self {
        Self {
            gamma,
            beta,
            mean,
            var,
            momentum,
            eps,
            training,
        }
    }

    /// Starts the scale at zero (the last batch norm of a residual branch with
    /// `zero_init_residual`, so each block begins as the identity).
    pub fn zero_scale(&self) -> Result<()> {
        self.gamma.set(&self.gamma.as_tensor().zeros_like()?)
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_then(x, mode, Then::default())
    }

    /// `clamp(bn(x) + residual)` with `then`'s residual and clamp: one op on the CPU.
    pub fn forward_then(&self, x: &Tensor, mode: Mode, then: Then) -> Result<Tensor> {
        self.forward_measured(x, None, mode, then)
    }

    /// [`BatchNorm::forward_then`] of `x` whose per-channel moments, when given, were measured
    /// by the op that produced it (taken instead of the batch's in training).
    pub fn forward_measured(
        &self,
        x: &Tensor,
        measured: Option<fast::Moments>,
        mode: Mode,
        then: Then,
    ) -> Result<Tensor> {
        let mode = if self.training.frozen() {
            Mode::Eval
        } else {
            mode
        };
        batch_norm(
            x,
            &self.gamma,
            &self.beta,
            &self.mean,
            &self.var,
            self.momentum,
            self.eps,
            (mode, measured),
            then,
        )
    }
}

/// Batch norm of `x` (`n × c` or `n × c × h × w`) followed by `then`'s residual addition and
/// clamp; in training it also moves the running statistics (the variance unbiased, as
/// PyTorch). The CPU fast op for f32, else [`batch_norm_reference`] and candle ops. In
/// training, moments measured by the op that produced `x` may come with the mode.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    x: &Tensor,
    gamma: &Var,
    beta: &Var,
    mean: &Var,
    var: &Var,
    momentum: f64,
    eps: f64,
    (mode, measured): (Mode, Option<fast::Moments>),
    then: Then,
) -> Result<Tensor> {
    if !fast::applies(x, gamma.as_tensor(), beta.as_tensor(), &then) {
        let mut y = batch_norm_reference(x, gamma, beta, mean, var, momentum, eps, mode)?;
        if let Some(r) = then.residual {
            y = (y + r)?;
        }
        return match then.clamp {
            None => Ok(y),
            Some(Clamp::Relu) => Activation::Relu.apply(&y),
            Some(Clamp::Relu6) => Activation::Relu6.apply(&y),
        };
    }
    let stats = match mode {
        Mode::Train => fast::Statistics::Batch(measured),
        Mode::Eval => fast::Statistics::Running {
            mean: mean.as_tensor().to_vec1::<f32>()?,
            var: var.as_tensor().to_vec1::<f32>()?,
        },
    };
    let (y, batch) = fast::batch_norm(x, gamma.as_tensor(), beta.as_tensor(), stats, eps, then)?;
    if let Some(b) = batch {
        let n = b.count as f64;
        let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        let moved = |running: &Var, batch: &[f64], factor: f64| -> Result<()> {
            let old = running.as_tensor().to_vec1::<f32>()?;
            let new: Vec<f32> = old
                .iter()
                .zip(batch)
                .map(|(&o, &b)| (o as f64 * (1.0 - momentum) + b * factor * momentum) as f32)
                .collect();
            running.set(&Tensor::from_vec(new, old.len(), running.device())?)
        };
        moved(mean, &b.mean, 1.0)?;
        moved(var, &b.var, unbiased)?;
    }
    Ok(y)
}

/// [`batch_norm`] made of candle ops (any device and dtype): the twin the fast op is tested
/// against.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_reference(
    x: &Tensor,
    gamma: &Var,
    beta: &Var,
    mean: &Var,
    var: &Var,
    momentum: f64,
    eps: f64,
    mode: Mode,
) -> Result<Tensor> {
    // Computed in f64 and returned in x's dtype: candle sums a channel's values one after
    // another, and in f32 over thousands of values (the statistics forward, the scale and
    // shift gradients backward) the rounding reaches the gradients tenfold.
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F64)?;
    let spatial = x.rank() == 4;
    let stat_shape: Vec<usize> = if spatial {
        vec![1, x.dim(1)?, 1, 1]
    } else {
        vec![1, x.dim(1)?]
    };
    let wide = |v: &Var| {
        v.as_tensor()
            .to_dtype(DType::F64)?
            .reshape(stat_shape.as_slice())
    };
    let (m, v) = if mode == Mode::Train {
        let dims: Vec<usize> = if spatial { vec![0, 2, 3] } else { vec![0] };
        let m = x.mean_keepdim(dims.as_slice())?;
        let v = x.broadcast_sub(&m)?.sqr()?.mean_keepdim(dims.as_slice())?;
        let n = (x.elem_count() / x.dim(1)?) as f64;
        let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        let m_flat = m.detach().flatten_all()?.to_dtype(mean.dtype())?;
        let v_flat = v.detach().flatten_all()?.to_dtype(var.dtype())?;
        mean.set(&((mean.as_tensor() * (1.0 - momentum))? + (m_flat * momentum)?)?)?;
        var.set(&((var.as_tensor() * (1.0 - momentum))? + (v_flat * (momentum * unbiased))?)?)?;
        (m, v)
    } else {
        (wide(mean)?, wide(var)?)
    };
    let xhat = x.broadcast_sub(&m)?.broadcast_div(&(v + eps)?.sqrt()?)?;
    xhat.broadcast_mul(&wide(gamma)?)?
        .broadcast_add(&wide(beta)?)?
        .to_dtype(dtype)
}

/// Layer norm over the last dimension, with a learned scale and shift (no weight decay).
pub struct LayerNorm {
    gamma: Var,
    beta: Var,
    eps: f64,
}

impl LayerNorm {
    pub fn new(b: &mut Builder, name: &str, features: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            gamma: b.param(
                &format!("{name}.weight"),
                &[features],
                Fill::Constant(1.0),
                false,
            )?,
            beta: b.param(
                &format!("{name}.bias"),
                &[features],
                Fill::Constant(0.0),
                false,
            )?,
            eps,
        })
    }

    /// From existing parameters (scale and shift of `features` values).
    pub fn from_parts(gamma: Var, beta: Var, eps: f64) -> Self {
        Self { gamma, beta, eps }
    }

    /// Over the channels at each position of `n × c × h × w` images.
    pub fn forward_channels(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(&x.permute((0, 2, 3, 1))?)?
            .permute((0, 3, 1, 2))
    }

    /// Computed in f32 at least (a bf16 or f16 input is widened, the result narrowed back).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x = match dtype {
            DType::F32 | DType::F64 => x.clone(),
            _ => x.to_dtype(DType::F32)?,
        };
        let gamma = self.gamma.as_tensor().to_dtype(x.dtype())?;
        let beta = self.beta.as_tensor().to_dtype(x.dtype())?;
        layer_norm(&x, &gamma, &beta, self.eps)?.to_dtype(dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builder::Init;
    use candle_core::Device;

    /// Seeded normal values (Box–Muller), so that a test's draws are the same every run.
    fn normal(rng: &mut rand_chacha::ChaCha8Rng, mean: f32, std: f32, dims: &[usize]) -> Tensor {
        use rand::Rng;
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                let (u1, u2) = (1.0 - rng.random::<f32>(), rng.random::<f32>());
                mean + std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
            })
            .collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    fn uniform(rng: &mut rand_chacha::ChaCha8Rng, lo: f32, hi: f32, dims: &[usize]) -> Tensor {
        use rand::Rng;
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| lo + (hi - lo) * rng.random::<f32>())
            .collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let scale = b
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .max(1e-12);
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            / scale
    }

    #[test]
    fn the_fast_op_equals_the_candle_twin() {
        let dev = Device::Cpu;
        for (dims, mode) in [
            (vec![4usize, 3, 5, 7], Mode::Train),
            (vec![2, 6, 3, 3], Mode::Eval),
            (vec![9, 5], Mode::Train),
            (vec![3, 4], Mode::Eval),
            (vec![1, 2, 4, 4], Mode::Train),
            (vec![4, 80, 2, 2], Mode::Train),
            (vec![3, 70, 3, 3], Mode::Train),
            (vec![2, 40, 5, 5], Mode::Eval),
        ] {
            let c = dims[1];
            let x = Var::randn(0.5f32, 2.0, dims.as_slice(), &dev).unwrap();
            let up = Tensor::randn(0f32, 1.0, dims.as_slice(), &dev).unwrap();
            let make = || {
                let gamma = Var::randn(1f32, 0.3, c, &dev).unwrap();
                let beta = Var::randn(0f32, 0.3, c, &dev).unwrap();
                (gamma, beta)
            };
            let (gamma, beta) = make();
            let running = || {
                (
                    Var::from_tensor(&Tensor::randn(0f32, 0.2, c, &dev).unwrap()).unwrap(),
                    Var::from_tensor(&(Tensor::rand(0.5f32, 1.5, c, &dev).unwrap())).unwrap(),
                )
            };
            let (m1, v1) = running();
            let (m2, v2) = (
                Var::from_tensor(&m1.as_tensor().copy().unwrap()).unwrap(),
                Var::from_tensor(&v1.as_tensor().copy().unwrap()).unwrap(),
            );
            let fast = batch_norm(
                x.as_tensor(),
                &gamma,
                &beta,
                &m1,
                &v1,
                0.1,
                1e-5,
                (mode, None),
                Then::default(),
            )
            .unwrap();
            let twin =
                batch_norm_reference(x.as_tensor(), &gamma, &beta, &m2, &v2, 0.1, 1e-5, mode)
                    .unwrap();
            assert!(max_rel(&fast, &twin) < 1e-6, "{dims:?} {mode:?} output");
            assert!(
                max_rel(m1.as_tensor(), m2.as_tensor()) < 1e-6,
                "{dims:?} running mean"
            );
            assert!(
                max_rel(v1.as_tensor(), v2.as_tensor()) < 1e-6,
                "{dims:?} running var"
            );
            let gf = (fast * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let gt = (twin * &up).unwrap().sum_all().unwrap().backward().unwrap();
            for (what, v) in [
                ("x", x.as_tensor()),
                ("gamma", gamma.as_tensor()),
                ("beta", beta.as_tensor()),
            ] {
                let d = max_rel(gf.get(v).unwrap(), gt.get(v).unwrap());
                assert!(d < 1e-5, "{dims:?} {mode:?} gradient of {what}: {d}");
            }
        }
    }

    /// The fused residual addition and clamps against batch norm, `+` and the activation as
    /// candle ops (forced with the generic kernels), outputs and every gradient.
    #[test]
    fn batch_norm_fused_with_residual_and_clamp_equals_the_ops_one_by_one() {
        use crate::model::ops::kernels::{self, Kernels};
        use rand::SeedableRng;
        // Seeded: with fresh draws each run, the clamp now and then cut under 5% of the values.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        let cases = [
            (vec![4usize, 3, 5, 7], Mode::Train),
            (vec![2, 6, 3, 3], Mode::Eval),
            (vec![9, 5], Mode::Train),
            (vec![3, 40, 4, 4], Mode::Train),
        ];
        for (dims, mode) in cases {
            for clamp in [None, Some(Clamp::Relu), Some(Clamp::Relu6)] {
                for with_residual in [false, true] {
                    let c = dims[1];
                    let d = dims.as_slice();
                    let x = Var::from_tensor(&normal(&mut rng, 0.5, 2.0, d)).unwrap();
                    let r = Var::from_tensor(&normal(&mut rng, 0.0, 2.0, d)).unwrap();
                    let up = normal(&mut rng, 0.0, 1.0, d);
                    // Wide scales, so that ReLU6 cuts at both ends.
                    let gamma = Var::from_tensor(&normal(&mut rng, 1.0, 3.0, &[c])).unwrap();
                    let beta = Var::from_tensor(&normal(&mut rng, 1.0, 1.0, &[c])).unwrap();
                    let mean = normal(&mut rng, 0.0, 0.2, &[c]);
                    let var = uniform(&mut rng, 0.5, 1.5, &[c]);
                    let then = Then {
                        residual: with_residual.then_some(r.as_tensor()),
                        clamp,
                    };
                    let run = |k: Kernels| {
                        let (m, v) = (
                            Var::from_tensor(&mean.copy().unwrap()).unwrap(),
                            Var::from_tensor(&var.copy().unwrap()).unwrap(),
                        );
                        let y = kernels::with(k, || {
                            batch_norm(
                                x.as_tensor(),
                                &gamma,
                                &beta,
                                &m,
                                &v,
                                0.1,
                                1e-5,
                                (mode, None),
                                then,
                            )
                        })
                        .unwrap();
                        let g = (&y * &up).unwrap().sum_all().unwrap().backward().unwrap();
                        (y, g, m, v)
                    };
                    let (yf, gf, mf, vf) = run(Kernels::Fast);
                    let (yg, gg, mg, vg) = run(Kernels::Generic);
                    let what = format!("{dims:?} {mode:?} {clamp:?} residual {with_residual}");
                    assert!(max_rel(&yf, &yg) < 1e-6, "{what}: output");
                    assert!(
                        max_rel(mf.as_tensor(), mg.as_tensor()) < 1e-6,
                        "{what}: mean"
                    );
                    assert!(
                        max_rel(vf.as_tensor(), vg.as_tensor()) < 1e-6,
                        "{what}: var"
                    );
                    let mut inputs = vec![
                        ("x", x.as_tensor()),
                        ("gamma", gamma.as_tensor()),
                        ("beta", beta.as_tensor()),
                    ];
                    if with_residual {
                        inputs.push(("residual", r.as_tensor()));
                    }
                    for (name, v) in inputs {
                        let d = max_rel(gf.get(v).unwrap(), gg.get(v).unwrap());
                        assert!(d < 1e-5, "{what}: gradient of {name}: {d}");
                    }
                    if clamp.is_some() {
                        let zeros = yf.eq(0f32).unwrap().to_dtype(DType::F32).unwrap();
                        let share = zeros.mean_all().unwrap().to_scalar::<f32>().unwrap();
                        assert!(share > 0.05, "{what}: the clamp cut {share} of the values");
                    }
                }
            }
        }
    }

    #[test]
    fn layer_norm_normalises_and_every_input_gets_a_gradient() {
        let dev = Device::Cpu;
        let mut b = Builder::new(Init::Dry, &dev);
        let ln = LayerNorm::new(&mut b, "norm", 4, 1e-6).unwrap();
        ln.gamma
            .set(&Tensor::new(&[1f32, 2.0, 1.0, 1.0], &dev).unwrap())
            .unwrap();
        let x = Var::new(&[[1f32, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 3.0]], &dev).unwrap();
        let y = ln.forward(x.as_tensor()).unwrap();
        let row = y.get(0).unwrap().to_vec1::<f32>().unwrap();
        let want = [-1.3416408f32, -0.8944272, 0.4472136, 1.3416408];
        for (a, w) in row.iter().zip(want) {
            assert!((a - w).abs() < 1e-4, "{row:?}");
        }
        let weights = Tensor::new(&[[1f32, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], &dev).unwrap();
        let grads = (y * weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [x.as_tensor(), ln.gamma.as_tensor(), ln.beta.as_tensor()] {
            let g = grads.get(v).expect("gradient reaches every input");
            assert!(
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
            );
        }
    }
}
