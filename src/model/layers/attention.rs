//! Multi-head self-attention over tokens (`batch × tokens × width`), with one packed
//! query/key/value projection, built from candle ops that keep their gradients
//! (`candle_nn::ops::softmax`, not the fused `softmax_last_dim`).

use candle_core::{DType, Result, Tensor, D};

use super::super::builder::{Builder, Fill};
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
        let (n, t, width) = x.dims3()?;
        let dh = width / self.heads;
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((n, t, 3, self.heads, dh))?
            .permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (dh as f64).sqrt()))?;
        // The softmax in f32 under mixed precision.
        let attn = match scores.dtype() {
            DType::BF16 | DType::F16 => {
                candle_nn::ops::softmax(&scores.to_dtype(DType::F32)?, D::Minus1)?
                    .to_dtype(scores.dtype())?
            }
            _ => candle_nn::ops::softmax(&scores, D::Minus1)?,
        };
        let y = attn.matmul(&v)?.transpose(1, 2)?.reshape((n, t, width))?;
        self.proj.forward(&y)
    }
}
