//! An exponential moving average of a model's weights, as timm's ModelEmaV2 without warm-up:
//! after every optimizer step each parameter's average becomes `d · ema + (1 − d) · w`, and the
//! buffers (batch-norm running statistics) are copied. It starts as a copy of the weights.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::model::Model;

/// The averaged weights, named as [`Model::state`] names them.
pub struct Ema {
    decay: f64,
    /// Parameters first, then buffers, in the model's order.
    state: Vec<(String, Tensor)>,
}

impl Ema {
    /// The average of a model that has not trained yet: a copy of its weights.
    pub fn new(net: &dyn Model, decay: f64) -> candle_core::Result<Self> {
        Ok(Self {
            decay,
            state: net.state()?,
        })
    }

    /// The average saved by [`Ema::state`]; every tensor of the model must be there.
    pub fn from_state(
        net: &dyn Model,
        decay: f64,
        saved: Vec<(String, Tensor)>,
    ) -> candle_core::Result<Self> {
        let mut saved: HashMap<String, Tensor> = saved.into_iter().collect();
        let mut state = Vec::new();
        for (name, live) in net.state()? {
            let t = saved.remove(&name).ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "the checkpoint's weight average has no tensor `{name}`"
                ))
            })?;
            if t.dims() != live.dims() {
                candle_core::bail!(
                    "tensor `{name}` of the checkpoint's weight average has shape {:?}, the model {:?}",
                    t.dims(),
                    live.dims()
                );
            }
            state.push((name, t.to_device(live.device())?.to_dtype(live.dtype())?));
        }
        Ok(Self { decay, state })
    }

    /// One update after an optimizer step.
    pub fn update(&mut self, net: &dyn Model) -> candle_core::Result<()> {
        let d = self.decay;
        let params = net.params();
        for (slot, p) in self.state.iter_mut().zip(params) {
            let w = p.var.as_detached_tensor();
            slot.1 = (slot.1.affine(d, 0.0)? + w.affine(1.0 - d, 0.0)?)?;
        }
        for (slot, (_, b)) in self.state.iter_mut().skip(params.len()).zip(net.buffers()) {
            slot.1 = b.as_tensor().copy()?;
        }
        Ok(())
    }

    /// The averaged weights (cheap: the tensors are never changed in place).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.state.clone()
    }

    /// Runs `f` with the averaged weights in `net`, then puts the trained weights back.
    pub fn with_weights<R, E: From<candle_core::Error>>(
        &self,
        net: &dyn Model,
        f: impl FnOnce() -> Result<R, E>,
    ) -> Result<R, E> {
        let live: HashMap<String, Tensor> = net.state()?.into_iter().collect();
        let ema: HashMap<String, Tensor> = self.state.iter().cloned().collect();
        net.load_state(&ema)?;
        let result = f();
        net.load_state(&live)?;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mode, Param};
    use candle_core::{Device, Var};
    use rand_chacha::ChaCha8Rng;

    /// One parameter and one buffer, set by hand.
    struct Tiny {
        params: Vec<Param>,
        buffers: Vec<(String, Var)>,
        device: Device,
    }

    impl Model for Tiny {
        fn forward(&self, x: &Tensor, _: Mode, _: &mut ChaCha8Rng) -> candle_core::Result<Tensor> {
            x.broadcast_mul(self.params[0].var.as_tensor())
        }
        fn params(&self) -> &[Param] {
            &self.params
        }
        fn buffers(&self) -> &[(String, Var)] {
            &self.buffers
        }
        fn device(&self) -> &Device {
            &self.device
        }
    }

    fn tensor(v: &[f32]) -> Tensor {
        Tensor::from_slice(v, v.len(), &Device::Cpu).unwrap()
    }

    fn tiny() -> Tiny {
        Tiny {
            params: vec![Param::new(
                "w",
                Var::from_tensor(&tensor(&[1.0, -2.0])).unwrap(),
                true,
            )],
            buffers: vec![("bn.mean".into(), Var::from_tensor(&tensor(&[0.5])).unwrap())],
            device: Device::Cpu,
        }
    }

    fn get(state: &[(String, Tensor)], name: &str) -> Vec<f32> {
        state
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .to_vec1()
            .unwrap()
    }

    fn close(a: &[f32], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (*x as f64 - y).abs() < 1e-6)
    }

    #[test]
    fn averages_parameters_copies_buffers_and_swaps_weights_in_and_out() {
        let net = tiny();
        let mut ema = Ema::new(&net, 0.9).unwrap();
        // Step 1: w = [2, 0] → ema = 0.9·[1, −2] + 0.1·[2, 0] = [1.1, −1.8]; the buffer 0.7 is copied.
        net.params[0].var.set(&tensor(&[2.0, 0.0])).unwrap();
        net.buffers[0].1.set(&tensor(&[0.7])).unwrap();
        ema.update(&net).unwrap();
        assert!(close(&get(&ema.state(), "w"), &[1.1, -1.8]));
        assert!(close(&get(&ema.state(), "bn.mean"), &[0.7]));
        // Step 2: w = [4, 2] → ema = 0.9·[1.1, −1.8] + 0.1·[4, 2] = [1.39, −1.42].
        net.params[0].var.set(&tensor(&[4.0, 2.0])).unwrap();
        ema.update(&net).unwrap();
        assert!(close(&get(&ema.state(), "w"), &[1.39, -1.42]));
        // Later changes of the buffer do not reach the average until the next update.
        net.buffers[0].1.set(&tensor(&[0.9])).unwrap();
        assert!(close(&get(&ema.state(), "bn.mean"), &[0.7]));

        let seen = ema
            .with_weights(&net, || -> candle_core::Result<Vec<f32>> {
                net.params[0].var.as_tensor().to_vec1()
            })
            .unwrap();
        assert!(close(&seen, &[1.39, -1.42]), "evaluated with the average");
        assert_eq!(get(&net.state().unwrap(), "w"), vec![4.0, 2.0]);
        assert_eq!(get(&net.state().unwrap(), "bn.mean"), vec![0.9]);

        let back = Ema::from_state(&net, 0.9, ema.state()).unwrap();
        assert_eq!(get(&back.state(), "w"), get(&ema.state(), "w"));
        assert!(Ema::from_state(&net, 0.9, Vec::new()).is_err());
    }
}
