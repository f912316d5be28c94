//! Mixed precision: a model whose forward pass computes in bf16 or f16 while its parameters,
//! batch-norm statistics and the logits it returns stay f32. Each layer casts its f32
//! parameters to the input's dtype where it uses them, so gradients reach them in f32 through
//! the casts, and the optimizers keep f32 master weights and state; batch norm and layer norm
//! compute in f32 or wider, as does the loss (on the f32 logits).

use candle_core::{DType, Device, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

use super::{Mode, Model, Param};

pub struct MixedPrecision {
    inner: Box<dyn Model>,
    compute: DType,
}

impl MixedPrecision {
    /// `inner` computing in `compute` (`BF16` or `F16`).
    pub fn new(inner: Box<dyn Model>, compute: DType) -> Self {
        MixedPrecision { inner, compute }
    }
}

impl Model for MixedPrecision {
    fn forward(&self, x: &Tensor, mode: Mode, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        self.inner
            .forward(&x.to_dtype(self.compute)?, mode, rng)?
            .to_dtype(DType::F32)
    }

    fn params(&self) -> &[Param] {
        self.inner.params()
    }

    fn buffers(&self) -> &[(String, Var)] {
        self.inner.buffers()
    }

    fn device(&self) -> &Device {
        self.inner.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::kernels::{self, Kernels};
    use crate::spec::ModelSpec;
    use crate::train::loss_scale::LossScaler;

    /// The gradient of every parameter, by name, after one training step on `x` (with the
    /// loss scaled by `scaler`, and the gradients unscaled, when there is one).
    fn step(
        model: &dyn Model,
        x: &Tensor,
        scaler: Option<&mut LossScaler>,
    ) -> (Tensor, Vec<(String, Tensor)>) {
        let y = Tensor::new(&[0u32, 1, 2, 0, 1, 2], x.device()).unwrap();
        let run = || {
            let mut rng = crate::train::rng::stream(1, "dropout", 0);
            let logits = model.forward(x, Mode::Train, &mut rng).unwrap();
            assert_eq!(logits.dtype(), DType::F32);
            let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
            (logits, loss)
        };
        let (logits, grads) = match scaler {
            // As training does: an overflowed step is skipped at half the scale, until one fits.
            Some(s) => loop {
                let (logits, loss) = run();
                let mut grads = s.scaled(&loss).unwrap().backward().unwrap();
                if s.unscale(model.params(), &mut grads).unwrap() {
                    break (logits, grads);
                }
                assert!(s.scale() > 1.0, "overflow at every scale");
            },
            None => {
                let (logits, loss) = run();
                (logits, loss.backward().unwrap())
            }
        };
        let grads = crate::model::arch::tests::named_gradients(model, &grads);
        for (name, g) in &grads {
            assert_eq!(g.dtype(), DType::F32, "{name}");
        }
        (logits, grads)
    }

    fn cosine(a: &Tensor, b: &Tensor) -> f32 {
        let (a, b) = (a.flatten_all().unwrap(), b.flatten_all().unwrap());
        let sum = |t: Tensor| t.sum_all().unwrap().to_scalar::<f32>().unwrap();
        let dot = sum((&a * &b).unwrap());
        let norms = (sum(a.sqr().unwrap()) * sum(b.sqr().unwrap())).sqrt();
        dot / norms.max(1e-30)
    }

    fn specs() -> Vec<(&'static str, ModelSpec)> {
        use crate::spec::*;
        let resnet = ModelSpec::Resnet(ResnetSpec {
            depth: 20,
            width: 1.0,
            stem: ResnetStem::Small,
            zero_init_residual: false,
            dropout: 0.0,
            drop_path: 0.0,
        });
        let vit = ModelSpec::Vit(VitSpec {
            patch: 4,
            depth: 2,
            width: 32,
            heads: 2,
            mlp_ratio: 4.0,
            dropout: 0.1,
            drop_path: 0.1,
        });
        let lite = ModelSpec::EfficientnetLite(EfficientNetLiteSpec {
            variant: 0,
            width: 0.25,
            dropout: 0.2,
            drop_path: 0.2,
        });
        let mobilenet = ModelSpec::MobilenetV2(MobileNetV2Spec {
            width: 0.25,
            dropout: 0.2,
        });
        vec![
            ("resnet20", resnet),
            ("vit", vit),
            ("lite0", lite),
            ("mobilenet_v2", mobilenet),
        ]
    }

    fn input(side: usize) -> Tensor {
        crate::model::arch::tests::seeded_images((3, side, side))
    }

    fn largest(t: &Tensor) -> f32 {
        crate::model::arch::tests::largest_magnitude(t)
    }

    /// The mechanism, exactly: computing in f64 (a dtype other than the parameters', as bf16
    /// and f16 are; candle's CPU convolution has no bf16 kernel) every architecture gives the
    /// fast f32 path's logits and, to its f32 parameters, its gradients, to float tolerance.
    #[test]
    fn every_architecture_computes_in_another_dtype_and_its_f32_parameters_learn() {
        let dev = Device::Cpu;
        // Large enough that batch norm late in the networks sees more than a handful of values
        // (few values make it ill-conditioned, and f32's rounding shows in the gradients).
        let x = input(64);
        for (name, spec) in specs() {
            let build = || {
                let mut init = crate::train::rng::stream(1, "init", 0);
                crate::model::build(&spec, (3, 64, 64), 3, &mut init, &dev).unwrap()
            };
            let (want, want_grads) =
                kernels::with(Kernels::Fast, || step(build().as_ref(), &x, None));
            let model = MixedPrecision::new(build(), DType::F64);
            let (got, grads) = step(&model, &x, None);
            let e = largest(&(&got - &want).unwrap()) / largest(&want);
            assert!(e < 1e-4, "{name}: logits differ by {e:e}");
            // Each gradient against f64's by the norm of the difference, as f32 itself is
            // off: single values of near-cancelling sums relatively far, and resnet20's batch
            // norms over few values amplify rounding through the backward (on a Sapphire
            // Rapids core its gradients differ from f64's by up to 2.5e-3 with the fast ops,
            // 8e-3 with the f32 candle-op twin; the other architectures by under 1e-4). A
            // wrong gradient is off by order one.
            let norm = |t: &Tensor| {
                let squares = t.sqr().unwrap().sum_all().unwrap();
                squares.to_scalar::<f32>().unwrap().sqrt()
            };
            let floor = want_grads.iter().map(|(_, g)| norm(g)).fold(0f32, f32::max);
            for ((p, g), (_, w)) in grads.iter().zip(&want_grads) {
                let scale = norm(w).max(1e-2 * floor);
                let e = norm(&(g - w).unwrap()) / scale;
                assert!(e < 1e-2, "{name}: gradient of {p} differs by {e:e}");
            }
        }
    }

    /// f16 with the loss scaled, as training does: the logits stay close to f32's and every
    /// parameter whose gradient is not rounding noise gets one pointing the way f32's does.
    #[test]
    fn f16_steps_follow_the_f32_ones() {
        let dev = Device::Cpu;
        let x = input(32);
        for (name, spec) in specs().into_iter().take(2) {
            let build = || {
                let mut init = crate::train::rng::stream(1, "init", 0);
                crate::model::build(&spec, (3, 32, 32), 3, &mut init, &dev).unwrap()
            };
            let (want, want_grads) =
                kernels::with(Kernels::Generic, || step(build().as_ref(), &x, None));
            let model = MixedPrecision::new(build(), DType::F16);
            let (got, grads) = step(&model, &x, Some(&mut LossScaler::default()));
            let e = largest(&(&got - &want).unwrap()) / largest(&want);
            assert!(e < 0.05, "{name}: f16 logits off by {e}");
            let floor = want_grads
                .iter()
                .map(|(_, g)| largest(g))
                .fold(0f32, f32::max);
            for ((p, g), (_, w)) in grads.iter().zip(&want_grads) {
                if largest(w) > 1e-2 * floor {
                    let c = cosine(g, w);
                    assert!(c > 0.9, "{name}: f16 gradient of {p} at cosine {c}");
                }
            }
        }
    }
}
