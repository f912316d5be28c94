//! Multi-head self-attention over tokens (`batch × tokens × width`): one packed
//! query/key/value projection, the attention op, the output projection.

use candle_core::{Result, Tensor};

use super::super::builder::{Builder, Fill};
use super::super::ops;
use super::linear::Linear;
use super::shape_error;

pub struct SelfAttention {
    qkv: Linear,
    proj: Linear,
    heads: usize,
}

impl SelfAttention {
    pub fn new(
        b: &mut Builder,
        name: &str,
        width: usize,
        heads: usize,
        fill: Option<Fill>,
    ) -> Result<Self> {
        if heads == 0 || !width.is_multiple_of(heads) {
            return Err(shape_error(
                name,
                format!("width {width} is not a multiple of heads = {heads}"),
            ));
        }
        Ok(Self {
            qkv: Linear::new(b, &format!("{name}.qkv"), width, 3 * width, true, fill)?,
            proj: Linear::new(b, &format!("{name}.proj"), width, width, true, fill)?,
            heads,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = ops::attention::attention(&self.qkv.forward(x)?, self.heads)?;
        self.proj.forward(&y)
    }
}
