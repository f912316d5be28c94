//! A dense layer over the last dimension (the CPU fast op on 2-D inputs; tokens of a
//! transformer are folded into the batch).

use candle_core::{Result, Tensor, Var};

use super::super::builder::{Builder, Fill};
use super::super::init;
use super::super::ops;

pub struct Linear {
    w: Var,
    b: Option<Var>,
}

impl Linear {
    /// `weight_fill` `None` is PyTorch's default (uniform ±1/√inputs, the bias too); otherwise
    /// the weights take that fill and the bias starts at zero.
    pub fn new(
        b: &mut Builder,
        name: &str,
        inputs: usize,
        outputs: usize,
        bias: bool,
        weight_fill: Option<Fill>,
    ) -> Result<Self> {
        let bound = init::default_bound(inputs);
        let (wf, bf) = match weight_fill {
            None => (Fill::Uniform(bound), Fill::Uniform(bound)),
            Some(f) => (f, Fill::Constant(0.0)),
        };
        let w = b.param(&format!("{name}.weight"), &[outputs, inputs], wf, true)?;
        let bias = if bias {
            Some(b.param(&format!("{name}.bias"), &[outputs], bf, false)?)
        } else {
            None
        };
        Ok(Self { w, b: bias })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = self.b.as_ref().map(|b| b.as_tensor());
        if x.rank() <= 2 {
            return ops::linear(x, self.w.as_tensor(), b, false);
        }
        let dims = x.dims().to_vec();
        let last = dims[dims.len() - 1];
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let y = ops::linear(&x.reshape((rows, last))?, self.w.as_tensor(), b, false)?;
        let mut out = dims;
        let n = out.len();
        out[n - 1] = self.w.dim(0)?;
        y.reshape(out)
    }
}
