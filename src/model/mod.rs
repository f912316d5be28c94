//! Models: the interface the trainer, optimizers, checkpoints, evaluation and `bench` use, and
//! [`build`], which picks the architecture the spec names (a layer list, a ResNet, an
//! EfficientNet-Lite, a MobileNetV2 or a ViT).

pub mod arch;
pub mod builder;
pub mod cost;
pub mod init;
pub mod layers;
pub mod network;
pub mod ops;
pub mod param;
pub mod parts;
pub mod precision;
pub mod pretrained;
pub mod shapes;

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

pub use builder::{Builder, Built, Init};
pub use network::Network;
pub use param::Param;

use crate::spec::ModelSpec;

/// Training uses batch statistics, dropout and drop-path; evaluation uses running statistics
/// and neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// A trainable classifier: logits for a batch of images, its named parameters (with their
/// weight-decay group) and named state (batch-norm statistics).
pub trait Model: Send + Sync {
    /// Logits for `x` (`batch × channels × height × width`); `rng` draws dropout and drop-path.
    fn forward(&self, x: &Tensor, mode: Mode, rng: &mut ChaCha8Rng) -> Result<Tensor>;
    fn params(&self) -> &[Param];
    /// Non-trainable state saved with the weights.
    fn buffers(&self) -> &[(String, Var)];
    fn device(&self) -> &Device;

    fn parameter_count(&self) -> usize {
        self.params().iter().map(|p| p.var.elem_count()).sum()
    }

    /// Every parameter and buffer by name, copied (safe to keep while training goes on).
    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let params = self.params().iter().map(|p| (p.name.clone(), &p.var));
        let buffers = self.buffers().iter().map(|(n, v)| (n.clone(), v));
        params
            .chain(buffers)
            .map(|(n, v)| Ok((n, v.as_tensor().copy()?)))
            .collect()
    }

    /// Restores what [`Model::state`] returned; every tensor must be present with the right shape.
    fn load_state(&self, state: &HashMap<String, Tensor>) -> Result<()> {
        let params = self.params().iter().map(|p| (&p.name, &p.var));
        let buffers = self.buffers().iter().map(|(n, v)| (n, v));
        for (name, var) in params.chain(buffers) {
            let t = state.get(name).ok_or_else(|| {
                candle_core::Error::Msg(format!("weights file has no tensor `{name}`"))
            })?;
            if t.dims() != var.dims() {
                candle_core::bail!(
                    "tensor `{name}` has shape {:?} in the weights file but {:?} in the model",
                    t.dims(),
                    var.dims()
                );
            }
            var.set(&t.to_dtype(DType::F32)?.to_device(self.device())?)?;
        }
        Ok(())
    }
}

/// The model `spec` describes, for images of shape `(channels, height, width)` and
/// `classes` outputs, its weights drawn from `rng`.
pub fn build(
    spec: &ModelSpec,
    input: (usize, usize, usize),
    classes: usize,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Result<Box<dyn Model>> {
    if let Some((arch, layers)) = spec.layer_list() {
        let (c, h, w) = input;
        return Ok(Box::new(Network::build(
            arch, layers, c, h, w, classes, rng, device,
        )?));
    }
    arch::build(spec, input, classes, Init::Seeded(rng), device).map(|(m, _)| m)
}

/// What a dry build of a built-in architecture tells before anything trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub parameters: usize,
    /// Values kept per image for the backward pass.
    pub activations_per_image: usize,
    pub forward_flops_per_image: usize,
    /// The largest convolution lowering buffer (im2col) of one image, in values.
    pub largest_lowering: usize,
}

/// A dry build of a built-in architecture for `input` (a 2-class head): its size, or the
/// shape error naming the stage or block. Layer lists are checked by [`shapes`] instead.
pub fn check(
    spec: &ModelSpec,
    input: (usize, usize, usize),
) -> std::result::Result<Summary, String> {
    summary(spec, input, 2)
}

/// [`check`] with the task's number of outputs.
pub fn summary(
    spec: &ModelSpec,
    input: (usize, usize, usize),
    classes: usize,
) -> std::result::Result<Summary, String> {
    arch::build(spec, input, classes, Init::Dry, &Device::Cpu)
        .map(|(_, s)| s)
        .map_err(|e| without_backtrace(e).to_string())
}

/// candle's error without the backtrace it may carry (for messages users read).
pub fn without_backtrace(e: candle_core::Error) -> candle_core::Error {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => without_backtrace(*inner),
        other => other,
    }
}
