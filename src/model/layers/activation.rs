//! Element-wise activations, all with gradients that reach their input.

use candle_core::{Result, Tensor};

use super::super::ops;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    /// `min(max(x, 0), 6)` (MobileNet, EfficientNet-Lite).
    Relu6,
    /// `x · sigmoid(x)`.
    Silu,
    /// `x · relu6(x + 3) / 6` (MobileNetV3).
    HardSwish,
    /// The exact (erf) GELU, as PyTorch's default.
    Gelu,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Relu6 => relu6(x),
            Activation::Silu => x.silu(),
            Activation::HardSwish => x.mul(&(relu6(&(x + 3.0)?)? / 6.0)?),
            Activation::Gelu => ops::gelu::gelu(x),
        }
    }
}

fn relu6(x: &Tensor) -> Result<Tensor> {
    x.relu()?.minimum(6f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn values_and_gradients_match_their_definitions() {
        let xs = [-4f32, -1.0, 0.5, 2.0, 7.0];
        let x = Var::new(&xs, &Device::Cpu).unwrap();
        type ValueAndSlope = fn(f32) -> (f32, f32);
        let cases: [(Activation, ValueAndSlope); 4] = [
            (Activation::Relu6, |v| {
                (
                    v.clamp(0.0, 6.0),
                    if v > 0.0 && v < 6.0 { 1.0 } else { 0.0 },
                )
            }),
            (Activation::Silu, |v| {
                let s = 1.0 / (1.0 + (-v).exp());
                (v * s, s * (1.0 + v * (1.0 - s)))
            }),
            (Activation::HardSwish, |v| {
                let r = (v + 3.0).clamp(0.0, 6.0);
                let d = if v + 3.0 > 0.0 && v + 3.0 < 6.0 {
                    1.0
                } else {
                    0.0
                };
                (v * r / 6.0, (r + v * d) / 6.0)
            }),
            (Activation::Relu, |v| {
                (v.max(0.0), if v > 0.0 { 1.0 } else { 0.0 })
            }),
        ];
        for (act, f) in cases {
            let y = act.apply(x.as_tensor()).unwrap();
            let g = y.sum_all().unwrap().backward().unwrap();
            let got = y.to_vec1::<f32>().unwrap();
            let grad = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
            for (i, &v) in xs.iter().enumerate() {
                let (want, want_grad) = f(v);
                assert!(
                    (got[i] - want).abs() < 1e-5,
                    "{act:?}({v}) = {} not {want}",
                    got[i]
                );
                assert!(
                    (grad[i] - want_grad).abs() < 1e-5,
                    "{act:?}'({v}) = {} not {want_grad}",
                    grad[i]
                );
            }
        }
    }
}
