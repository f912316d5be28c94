//! Dynamic loss scaling for f16 training, as PyTorch's GradScaler: the loss is multiplied by a
//! scale before the backward pass so that small gradients do not underflow f16, the gradients
//! are divided by it before the optimizer step, and a step whose gradients overflowed is
//! skipped and halves the scale; after 2000 steps in a row without overflow the scale doubles.

use candle_core::{backprop::GradStore, DType, Device, Result, Tensor};

use crate::model::Param;

/// The scale a job starts with (2¹⁶).
pub const INITIAL: f64 = 65536.0;
/// Steps without overflow after which the scale doubles.
pub const GROWTH_INTERVAL: usize = 2000;
/// The name of the scaler's state among a checkpoint's schedule tensors.
const STATE: &str = "loss_scale";

#[derive(Clone, Debug, PartialEq)]
pub struct LossScaler {
    scale: f64,
    good_steps: usize,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: INITIAL,
            good_steps: 0,
        }
    }
}

impl LossScaler {
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// `loss` times the scale, to run the backward pass on.
    pub fn scaled(&self, loss: &Tensor) -> Result<Tensor> {
        loss.affine(self.scale, 0.0)
    }

    /// Divides every gradient of `params` by the scale. `false` when one of them overflowed (is
    /// not finite): the step must be skipped, and the scale is halved. One transfer from the
    /// device.
    pub fn unscale(&mut self, params: &[Param], grads: &mut GradStore) -> Result<bool> {
        let mut largest = Vec::with_capacity(params.len());
        for p in params {
            let t = p.var.as_tensor();
            if let Some(g) = grads.get(t) {
                let g = g.affine(1.0 / self.scale, 0.0)?;
                largest.push(g.to_dtype(DType::F32)?.abs()?.max_all()?);
                grads.insert(t, g);
            }
        }
        let finite = largest.is_empty()
            || Tensor::stack(&largest, 0)?
                .max_all()?
                .to_scalar::<f32>()?
                .is_finite();
        Ok(self.after_step(finite))
    }

    /// Moves the scale after a step whose gradients were `finite` (or not); returns `finite`.
    fn after_step(&mut self, finite: bool) -> bool {
        if finite {
            self.good_steps += 1;
            if self.good_steps >= GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale = (self.scale / 2.0).max(1.0);
            self.good_steps = 0;
        }
        finite
    }

    /// The state a checkpoint keeps (for an exact resume).
    pub fn state(&self) -> (String, Tensor) {
        let t = Tensor::from_slice(&[self.scale, self.good_steps as f64], 2, &Device::Cpu)
            .expect("creating a 2-element CPU tensor cannot fail");
        (STATE.to_string(), t)
    }

    /// The scaler kept among a checkpoint's schedule tensors; `None` when it has none (a fresh
    /// scaler then).
    pub fn from_state(state: &[(String, Tensor)]) -> Option<Self> {
        let (_, t) = state.iter().find(|(n, _)| n == STATE)?;
        let v = t.to_dtype(DType::F64).ok()?.to_vec1::<f64>().ok()?;
        match v[..] {
            [scale, good] if scale.is_finite() && scale >= 1.0 && good >= 0.0 => Some(Self {
                scale,
                good_steps: good as usize,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn param(values: &[f32]) -> Param {
        Param::new(
            "w",
            Var::from_slice(values, values.len(), &Device::Cpu).unwrap(),
            true,
        )
    }

    #[test]
    fn gradients_are_unscaled_and_an_overflow_skips_the_step_and_halves_the_scale() {
        let p = param(&[1.0, 2.0]);
        let mut s = LossScaler::default();
        let loss = (p.var.as_tensor().sqr().unwrap().sum_all().unwrap() * 0.5).unwrap();
        let mut grads = s.scaled(&loss).unwrap().backward().unwrap();
        assert!(s.unscale(std::slice::from_ref(&p), &mut grads).unwrap());
        let g = grads
            .get(p.var.as_tensor())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(g, vec![1.0, 2.0], "d(½w²)/dw = w, unscaled");

        let huge = param(&[1e35, 0.0]);
        let loss = huge.var.as_tensor().sqr().unwrap().sum_all().unwrap();
        let mut grads = s.scaled(&loss).unwrap().backward().unwrap();
        assert!(!s.unscale(std::slice::from_ref(&huge), &mut grads).unwrap());
        assert_eq!(s.scale(), INITIAL / 2.0);
    }

    #[test]
    fn the_scale_doubles_after_a_run_of_good_steps_and_survives_a_checkpoint() {
        let mut s = LossScaler::default();
        for _ in 0..GROWTH_INTERVAL - 1 {
            s.after_step(true);
        }
        assert_eq!(s.scale(), INITIAL);
        s.after_step(true);
        assert_eq!(s.scale(), 2.0 * INITIAL);
        s.after_step(true);
        let back = LossScaler::from_state(&[s.state()]).unwrap();
        assert_eq!(back, s);
        assert_eq!(LossScaler::from_state(&[]), None);
    }
}
