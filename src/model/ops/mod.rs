//! CPU fast paths for the network's hot layers, as candle custom ops with forward and backward
//! (convolution with fused bias/ReLU/max-pool, pooling, dense layers). Other devices and dtypes
//! fall back to candle's own ops, so CUDA and the rest of candle keep working.

mod cpu;
mod im2col;
mod matmul;
#[cfg(test)]
mod testutil;

pub mod avg_pool;
pub mod conv2d;
pub mod linear;
pub mod max_pool;

pub use avg_pool::avg_pool2d;
pub use conv2d::{conv2d, ConvOptions};
pub use linear::linear;
pub use max_pool::{max_pool2d, Window};
