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
    use candle_core::{Device, Tensor};

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
