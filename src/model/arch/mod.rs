//! The built-in architectures, one file each. Each builds its layers through a
//! [`Builder`] (so a dry build checks shapes and counts parameters without drawing weights)
//! and supplies only its forward pass; [`Assembled`] makes it a [`Model`].

pub mod efficientnet_lite;
pub mod inverted_residual;
pub mod mobilenet_v2;
pub mod resnet;
pub mod vit;

use candle_core::{Device, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

use super::builder::{Builder, Init};
use super::layers::Chw;
use super::{Built, Mode, Model, Param, Summary};
use crate::spec::ModelSpec;

/// An architecture's forward pass over the layers it built.
pub trait Forward: Send + Sync {
    fn forward(&self, x: &Tensor, mode: Mode, rng: &mut ChaCha8Rng) -> Result<Tensor>;
}

/// An architecture with the parameters and state its build created.
pub struct Assembled<N> {
    net: N,
    parts: Built,
    input: Chw,
}

impl<N: Forward> Model for Assembled<N> {
    fn forward(&self, x: &Tensor, mode: Mode, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        if (c, h, w) != self.input {
            let (ec, eh, ew) = self.input;
            candle_core::bail!("the model was built for {ec}×{eh}×{ew} images, not {c}×{h}×{w}")
        }
        self.net.forward(x, mode, rng)
    }

    fn params(&self) -> &[Param] {
        &self.parts.params
    }

    fn buffers(&self) -> &[(String, Var)] {
        &self.parts.buffers
    }

    fn device(&self) -> &Device {
        &self.parts.device
    }
}

fn assemble<N: Forward + 'static>(
    b: Builder,
    input: Chw,
    make: impl FnOnce(&mut Builder) -> Result<N>,
) -> Result<(Box<dyn Model>, Summary)> {
    let mut b = b;
    let net = make(&mut b)?;
    let parts = b.finish();
    let summary = parts.summary;
    Ok((Box::new(Assembled { net, parts, input }), summary))
}

/// Builds the architecture `spec` names (not a layer list) for `input` images and `classes`
/// outputs.
pub fn build(
    spec: &ModelSpec,
    input: Chw,
    classes: usize,
    init: Init,
    device: &Device,
) -> Result<(Box<dyn Model>, Summary)> {
    let b = Builder::new(init, device);
    match spec {
        ModelSpec::Resnet(s) => assemble(b, input, |b| resnet::ResNet::new(b, s, input, classes)),
        ModelSpec::EfficientnetLite(s) => assemble(b, input, |b| {
            efficientnet_lite::EfficientNetLite::new(b, s, input, classes)
        }),
        ModelSpec::MobilenetV2(s) => assemble(b, input, |b| {
            mobilenet_v2::MobileNetV2::new(b, s, input, classes)
        }),
        ModelSpec::Vit(s) => assemble(b, input, |b| vit::Vit::new(b, s, input, classes)),
        ModelSpec::Mlp { .. } | ModelSpec::Cnn { .. } => {
            candle_core::bail!("a layer list is built by model::Network")
        }
    }
}

/// The drop-path rate of block `i` of `n`: rising linearly from 0 to `max` (the last block).
pub fn drop_path_rate(max: f64, i: usize, n: usize) -> f64 {
    if n <= 1 {
        max
    } else {
        max * i as f64 / (n - 1) as f64
    }
}

/// The global-average-pooled features of `x` (`n × c × h × w` → `n × c`).
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    x.mean(3)?.mean(2)
}

/// The logits of a convolutional network's last feature map `x`: global average pooling,
/// dropout at `rate` in training, then the head.
pub fn pooled_head(
    x: &Tensor,
    rate: f64,
    head: &super::layers::Linear,
    mode: Mode,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor> {
    let mut features = global_avg_pool(x)?;
    if mode == Mode::Train {
        features = super::layers::regularize::dropout(&features, rate, rng)?;
    }
    head.forward(&features)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::Model;
    use crate::model::ops::kernels::{self, Kernels};
    use crate::spec::ModelSpec;
    use candle_core::{Device, Tensor};

    /// Six seeded random images of shape `(c, h, w)`, values in (-2, 2).
    pub fn seeded_images((c, h, w): (usize, usize, usize)) -> Tensor {
        use rand::Rng;
        let mut rng = crate::train::rng::stream(1, "input", 0);
        let values: Vec<f32> = (0..6 * c * h * w)
            .map(|_| rng.random::<f32>() * 4.0 - 2.0)
            .collect();
        Tensor::from_vec(values, (6, c, h, w), &Device::Cpu).unwrap()
    }

    /// Every parameter's gradient in `grads`, by name; panics naming one that got none.
    pub fn named_gradients(
        model: &dyn Model,
        grads: &candle_core::backprop::GradStore,
    ) -> Vec<(String, Tensor)> {
        model
            .params()
            .iter()
            .map(|p| {
                let g = grads
                    .get(p.var.as_tensor())
                    .unwrap_or_else(|| panic!("no gradient reaches {}", p.name));
                (p.name.clone(), g.clone())
            })
            .collect()
    }

    pub fn largest_magnitude(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Largest absolute difference relative to the larger tensor's largest magnitude, or to
    /// `floor` if that is larger.
    fn relative_error(a: &Tensor, b: &Tensor, floor: f32) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let scale = largest_magnitude(a)
            .max(largest_magnitude(b))
            .max(floor)
            .max(f32::MIN_POSITIVE);
        largest_magnitude(&(a - b).unwrap()) / scale
    }

    /// What one training step and one evaluation of a freshly built model give.
    struct Step {
        logits: Tensor,
        loss: f32,
        /// Every parameter's gradient, by name.
        grads: Vec<(String, Tensor)>,
        /// Batch-norm running statistics after the step.
        buffers: Vec<(String, Tensor)>,
        eval: Tensor,
    }

    fn step(spec: &ModelSpec, input: (usize, usize, usize), classes: usize, x: &Tensor) -> Step {
        let dev = Device::Cpu;
        let mut init = crate::train::rng::stream(1, "init", 0);
        let model = crate::model::build(spec, input, classes, &mut init, &dev).unwrap();
        let n = x.dim(0).unwrap();
        let y: Vec<u32> = (0..n).map(|i| (i % classes) as u32).collect();
        let y = Tensor::new(y.as_slice(), &dev).unwrap();
        let mut rng = crate::train::rng::stream(1, "dropout", 0);
        let logits = model.forward(x, super::Mode::Train, &mut rng).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        let grads = loss.backward().unwrap();
        let grads = named_gradients(model.as_ref(), &grads);
        let buffers = model
            .buffers()
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().copy().unwrap()))
            .collect();
        let eval = model.forward(x, super::Mode::Eval, &mut rng).unwrap();
        Step {
            logits,
            loss: loss.to_scalar::<f32>().unwrap(),
            grads,
            buffers,
            eval,
        }
    }

    /// The model `spec` describes gives the same training logits, loss, gradient of every
    /// parameter, running statistics and evaluation logits under the generic kernels (the
    /// candle ops a GPU runs) as under the fast CPU ops, to float tolerance.
    pub fn assert_generic_matches_fast(
        spec: &ModelSpec,
        (c, h, w): (usize, usize, usize),
        classes: usize,
    ) {
        let x = seeded_images((c, h, w));
        let fast = kernels::with(Kernels::Fast, || step(spec, (c, h, w), classes, &x));
        let generic = kernels::with(Kernels::Generic, || step(spec, (c, h, w), classes, &x));
        // Float tolerance for a deep network: the two paths sum in different orders, and
        // batch norm over the few values of a late, small feature map amplifies the rounding.
        let tol = 1e-3;
        let check = |what: &str, a: &Tensor, b: &Tensor, floor: f32| {
            let e = relative_error(a, b, floor);
            assert!(
                e < tol,
                "{what}: generic and fast differ by {e:e} (relative)"
            );
        };
        check("training logits", &fast.logits, &generic.logits, 0.0);
        assert!(
            (fast.loss - generic.loss).abs() <= tol * fast.loss.abs().max(1.0),
            "loss: fast {} generic {}",
            fast.loss,
            generic.loss
        );
        // A gradient that is zero in exact arithmetic (the bias or shift of a layer followed by
        // batch norm) is rounding noise on both paths: judged against the model's gradients.
        let largest = fast
            .grads
            .iter()
            .map(|(_, g)| largest_magnitude(g))
            .fold(0f32, f32::max);
        assert_eq!(fast.grads.len(), generic.grads.len());
        for ((name, a), (_, b)) in fast.grads.iter().zip(&generic.grads) {
            check(&format!("gradient of {name}"), a, b, 1e-2 * largest);
        }
        // So is a running mean after a convolution of a batch-normed, zero-mean input.
        let largest = fast
            .buffers
            .iter()
            .map(|(_, b)| largest_magnitude(b))
            .fold(0f32, f32::max);
        for ((name, a), (_, b)) in fast.buffers.iter().zip(&generic.buffers) {
            check(&format!("buffer {name}"), a, b, 1e-2 * largest);
        }
        check("evaluation logits", &fast.eval, &generic.eval, 0.0);
    }

    /// One training step's loss gradient reaches every parameter of `model`, finite and non-zero.
    pub fn assert_every_parameter_learns(
        model: &dyn Model,
        (c, h, w): (usize, usize, usize),
        classes: usize,
    ) {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (4, c, h, w), &dev).unwrap();
        let y: Vec<u32> = (0..4).map(|i| i % classes as u32).collect();
        let y = Tensor::new(y.as_slice(), &dev).unwrap();
        let mut rng = crate::train::rng::stream(1, "dropout", 0);
        let logits = model.forward(&x, super::Mode::Train, &mut rng).unwrap();
        assert_eq!(logits.dims(), &[4, classes]);
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        let grads = loss.backward().unwrap();
        for p in model.params() {
            let g = grads
                .get(p.var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient reaches {}", p.name));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{} has gradient norm {norm}",
                p.name
            );
        }
    }
}
