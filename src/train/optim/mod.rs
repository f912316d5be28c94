//! Optimizers with checkpointable state (SGD with momentum/Nesterov, Adam, AdamW), following PyTorch's update rules.
//!
//! candle-nn's optimizers keep their state private (and its SGD has no momentum), so exact
//! resume from a checkpoint needs our own. Every optimizer here:
//! - updates parameters in place with [`Var::set`], using only candle tensor ops on detached
//!   tensors (works on any device, builds no autograd graph);
//! - skips parameters that have no gradient in the [`GradStore`] and frozen ones
//!   ([`Param::frozen`]): their value and state are untouched, no weight decay either;
//! - scales the learning rate of each parameter by its [`Param::lr_scale`];
//! - applies weight decay only to parameters with [`Param::decay`] set;
//! - exposes all of its state as named tensors ([`Optimizer::state`]) that can be written to a
//!   safetensors file and restored bit-exactly with [`Optimizer::load_state`].
//!
//! State entries are keyed by [`Param::name`], so names must be unique and stable across runs.
//! Counters are stored as 1-element `u32` tensors on the CPU; when loading, any dtype and any
//! 1-element shape holding a non-negative integer is accepted. Loaded tensors may live on any
//! device/dtype: they are moved to the parameter's device and dtype at the next step.

mod adam;
mod sgd;

pub use adam::Adam;
pub use sgd::Sgd;

use std::collections::{HashMap, HashSet};

use candle_core::{backprop::GradStore, DType, Device, Tensor};

pub use crate::model::Param;

pub trait Optimizer: Send {
    /// One update of every param that has a gradient in `grads`, with learning rate `lr` (the schedule is applied by the caller).
    fn step(&mut self, params: &[Param], grads: &GradStore, lr: f64) -> candle_core::Result<()>;
    /// Every piece of state as named tensors (e.g. "sgd.momentum.<param name>", "adam.m.<name>",
    /// "adam.v.<name>", counters as 1-element u32 tensors), so the caller can save it in a
    /// safetensors checkpoint…
    fn state(&self) -> Vec<(String, Tensor)>;
    /// …and restore it exactly (errors clearly on a missing/mis-shaped entry). Entries whose
    /// names do not start with this optimizer's prefix are ignored, so the whole checkpoint map
    /// may be passed. The previous state is replaced only if loading succeeds.
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> candle_core::Result<()>;
}

/// A counter as a 1-element u32 tensor on the CPU (saturating at `u32::MAX`).
pub(crate) fn counter_tensor(n: u64) -> Tensor {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    Tensor::from_slice(&[n], 1, &Device::Cpu).expect("creating a 1-element CPU tensor cannot fail")
}

/// Reads a counter written by [`counter_tensor`] (any dtype, any 1-element shape).
pub(crate) fn read_counter(key: &str, t: &Tensor) -> candle_core::Result<u64> {
    if t.elem_count() != 1 {
        candle_core::bail!(
            "optimizer state entry '{key}' should hold one number, but has shape {:?}",
            t.dims()
        );
    }
    let x = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?[0];
    if !(x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= u64::MAX as f64) {
        candle_core::bail!(
            "optimizer state entry '{key}' should be a non-negative integer, got {x}"
        );
    }
    Ok(x as u64)
}

/// Fetches a required entry, with an error naming it.
pub(crate) fn required<'a>(
    state: &'a HashMap<String, Tensor>,
    key: &str,
) -> candle_core::Result<&'a Tensor> {
    state.get(key).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "optimizer state entry '{key}' is missing (was the checkpoint written by a different optimizer?)"
        ))
        .bt()
    })
}

/// Checks that a stored state tensor fits `param` and returns it on the param's device and dtype
/// (a no-op clone when it already does).
pub(crate) fn conform(key: &str, t: &Tensor, param: &Tensor) -> candle_core::Result<Tensor> {
    if t.shape() != param.shape() {
        candle_core::bail!(
            "optimizer state entry '{key}' has shape {:?} but the parameter has shape {:?}",
            t.dims(),
            param.dims()
        );
    }
    let mut t = t.clone();
    if !t.device().same_device(param.device()) {
        t = t.to_device(param.device())?;
    }
    if t.dtype() != param.dtype() {
        t = t.to_dtype(param.dtype())?;
    }
    Ok(t)
}

/// Errors if two params share a name (their optimizer state would collide).
pub(crate) fn check_unique_names(params: &[Param]) -> candle_core::Result<()> {
    let mut seen = HashSet::with_capacity(params.len());
    for p in params {
        if !seen.insert(p.name.as_str()) {
            candle_core::bail!(
                "two parameters are named '{}': optimizer state is keyed by name",
                p.name
            );
        }
    }
    Ok(())
}

/// The current value and gradient of `param`, both detached, or `None` if it has no gradient
/// (or no elements) or is frozen.
pub(crate) fn value_and_grad(
    param: &Param,
    grads: &GradStore,
) -> candle_core::Result<Option<(Tensor, Tensor)>> {
    let p = param.var.as_tensor();
    if param.frozen() {
        return Ok(None);
    }
    let Some(g) = grads.get(p) else {
        return Ok(None);
    };
    if p.elem_count() == 0 {
        return Ok(None);
    }
    if g.shape() != p.shape() {
        candle_core::bail!(
            "gradient of '{}' has shape {:?} but the parameter has shape {:?}",
            param.name,
            g.dims(),
            p.dims()
        );
    }
    Ok(Some((param.var.as_detached_tensor(), g.detach())))
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;
    use candle_core::Var;

    /// A loss whose gradient with respect to each param is the given constant: sum_i (p_i * c_i).
    pub fn grads_for(params: &[(&Param, &[f64])]) -> GradStore {
        let mut loss: Option<Tensor> = None;
        for (p, c) in params {
            let t = p.var.as_tensor();
            let c = Tensor::from_slice(c, t.shape(), t.device())
                .unwrap()
                .to_dtype(t.dtype())
                .unwrap();
            let term = t.mul(&c).unwrap().sum_all().unwrap();
            loss = Some(match loss {
                None => term,
                Some(l) => l.add(&term).unwrap(),
            });
        }
        loss.unwrap().backward().unwrap()
    }

    pub fn param(name: &str, values: &[f64], decay: bool) -> Param {
        Param::new(
            name,
            Var::from_slice(values, values.len(), &Device::Cpu).unwrap(),
            decay,
        )
    }

    pub fn values(p: &Param) -> Vec<f64> {
        p.var
            .as_tensor()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    pub fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol,
                "{what}: element {i}: got {g}, want {w} (tol {tol})"
            );
        }
    }

    /// Runs `opt` over a sequence of (gradient, lr) steps for a single param, returning the
    /// param's values after each step.
    pub fn run_single(
        opt: &mut dyn Optimizer,
        p: &Param,
        steps: &[([f64; 2], f64)],
    ) -> Vec<Vec<f64>> {
        let mut out = Vec::new();
        for (g, lr) in steps {
            let grads = grads_for(&[(p, g)]);
            opt.step(std::slice::from_ref(p), &grads, *lr).unwrap();
            out.push(values(p));
        }
        out
    }

    /// Bit patterns of a param's values.
    pub fn bits(p: &Param) -> Vec<u64> {
        values(p).iter().map(|x| x.to_bits()).collect()
    }

    /// Round-trips a state through a real safetensors file.
    pub fn through_safetensors(state: Vec<(String, Tensor)>, tag: &str) -> HashMap<String, Tensor> {
        let map: HashMap<String, Tensor> = state.into_iter().collect();
        let path = std::env::temp_dir().join(format!(
            "assay-optim-test-{tag}-{}.safetensors",
            std::process::id()
        ));
        candle_core::safetensors::save(&map, &path).unwrap();
        let loaded = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        let _ = std::fs::remove_file(&path);
        loaded
    }
}
