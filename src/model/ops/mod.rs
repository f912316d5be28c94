//! CPU fast paths for the network's hot layers, as candle custom ops with forward and backward
//! (convolution with fused bias/ReLU/max-pool, depthwise convolution, batch norm, pooling,
//! dense layers, layer norm, attention, GELU), each with a device-generic twin made of candle
//! ops that other devices and dtypes (and `ASSAY_KERNELS=generic`) use.

/// Implements candle's `CustomOp2` (input, weights) and `CustomOp3` (input, weights, bias) for
/// `$op` by its `forward((x, layout), (w, layout), Option<(b, layout)>)` and
/// `backward(x, w, Option<b>, result, grad)`, named `$name`: the bias is optional either way.
macro_rules! custom_op_with_optional_bias {
    ($op:ty, $name:expr) => {
        impl candle_core::CustomOp2 for $op {
            fn name(&self) -> &'static str {
                $name
            }

            fn cpu_fwd(
                &self,
                s1: &candle_core::CpuStorage,
                l1: &candle_core::Layout,
                s2: &candle_core::CpuStorage,
                l2: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                self.forward((s1, l1), (s2, l2), None)
            }

            fn bwd(
                &self,
                x: &candle_core::Tensor,
                w: &candle_core::Tensor,
                res: &candle_core::Tensor,
                grad: &candle_core::Tensor,
            ) -> candle_core::Result<(Option<candle_core::Tensor>, Option<candle_core::Tensor>)>
            {
                let (dx, dw, _) = self.backward(x, w, None, res, grad)?;
                Ok((dx, dw))
            }
        }

        impl candle_core::CustomOp3 for $op {
            fn name(&self) -> &'static str {
                $name
            }

            fn cpu_fwd(
                &self,
                s1: &candle_core::CpuStorage,
                l1: &candle_core::Layout,
                s2: &candle_core::CpuStorage,
                l2: &candle_core::Layout,
                s3: &candle_core::CpuStorage,
                l3: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                self.forward((s1, l1), (s2, l2), Some((s3, l3)))
            }

            #[allow(clippy::type_complexity)]
            fn bwd(
                &self,
                x: &candle_core::Tensor,
                w: &candle_core::Tensor,
                b: &candle_core::Tensor,
                res: &candle_core::Tensor,
                grad: &candle_core::Tensor,
            ) -> candle_core::Result<(
                Option<candle_core::Tensor>,
                Option<candle_core::Tensor>,
                Option<candle_core::Tensor>,
            )> {
                self.backward(x, w, Some(b), res, grad)
            }
        }
    };
}

mod approx;
mod conv_gradients;
mod cpu;
mod epilogue;
mod im2col;
mod matmul;
mod shifted;
#[cfg(test)]
mod testutil;

pub mod attention;
pub mod avg_pool;
pub mod batch_norm;
pub mod conv2d;
pub mod depthwise;
pub mod gelu;
pub mod kernels;
pub mod layer_norm;
pub mod linear;
pub mod max_pool;

/// `t` in `like`'s dtype (itself when they match): the f32 parameters of a layer as the
/// compute dtype of its input under mixed precision; gradients flow back to them in f32.
pub fn cast_like(t: &Tensor, like: &Tensor) -> candle_core::Result<Tensor> {
    if t.dtype() == like.dtype() {
        Ok(t.clone())
    } else {
        t.to_dtype(like.dtype())
    }
}

use candle_core::Tensor;

pub use avg_pool::avg_pool2d;
pub use conv2d::{conv2d, ConvOptions};
pub use kernels::Kernels;
pub use linear::linear;
pub use max_pool::{max_pool2d, Window};
