//! The building blocks architectures are made of, one kind per file: each creates its
//! parameters through a [`Builder`](super::builder::Builder), checks the shape it receives and
//! runs forward on the CPU fast path where one exists and on candle's own ops otherwise.

pub mod activation;
pub mod attention;
pub mod conv;
pub mod linear;
pub mod norm;
pub mod regularize;

pub use activation::Activation;
pub use attention::SelfAttention;
pub use conv::{Conv2d, ConvConfig, Padding};
pub use linear::Linear;
pub use norm::{BatchNorm, LayerNorm};

use candle_core::{Result, Tensor};

use super::Mode;
use norm::Then;

/// `bn(conv(x))` and then `then`'s residual and clamp. In training the convolution measures its
/// output's per-channel moments as it writes it, and the batch norm takes them rather than
/// reading the output once more for its statistics.
pub fn conv_bn_forward(
    conv: &Conv2d,
    bn: &BatchNorm,
    x: &Tensor,
    mode: Mode,
    then: Then,
) -> Result<Tensor> {
    if mode != Mode::Train {
        return bn.forward_then(&conv.forward(x)?, mode, then);
    }
    let (z, moments) = conv.forward_measured(x)?;
    bn.forward_measured(&z, moments, mode, then)
}

/// `(channels, height, width)` of one image's feature map.
pub type Chw = (usize, usize, usize);

/// A shape error at build time, naming the part of the model (e.g. `layer3.1.conv2`).
pub fn shape_error(name: &str, message: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{name}: {message}"))
}
