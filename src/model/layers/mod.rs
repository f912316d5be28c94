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

/// `(channels, height, width)` of one image's feature map.
pub type Chw = (usize, usize, usize);

/// A shape error at build time, naming the part of the model (e.g. `layer3.1.conv2`).
pub fn shape_error(name: &str, message: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{name}: {message}"))
}
