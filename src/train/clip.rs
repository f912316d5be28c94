//! Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_: when the L2 norm of all
//! gradients together exceeds `max_norm`, every gradient is scaled by `max_norm / (norm + 1e-6)`.

use candle_core::{backprop::GradStore, DType, Tensor};

use crate::model::Param;

/// Clips the gradients of `params` in `grads` (parameters without one are skipped) and returns
/// their global L2 norm before clipping. Only candle ops: works on any device.
pub fn clip_grad_norm(
    params: &[Param],
    grads: &mut GradStore,
    max_norm: f64,
) -> candle_core::Result<f64> {
    let mut squares = Vec::with_capacity(params.len());
    for p in params {
        if let Some(g) = grads.get(p.var.as_tensor()) {
            squares.push(g.to_dtype(DType::F32)?.sqr()?.sum_all()?);
        }
    }
    if squares.is_empty() {
        return Ok(0.0);
    }
    // One transfer from the device: the sum of every gradient's sum of squares.
    let norm = (Tensor::stack(&squares, 0)?.sum_all()?.to_scalar::<f32>()? as f64).sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for p in params {
            let t = p.var.as_tensor();
            if let Some(g) = grads.get(t) {
                let scaled = g.affine(coef, 0.0)?;
                grads.insert(t, scaled);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn param(name: &str, values: &[f32]) -> Param {
        let t = Tensor::from_slice(values, values.len(), &Device::Cpu).unwrap();
        Param::new(name, Var::from_tensor(&t).unwrap(), true)
    }

    /// Gradients of `loss = Σ c_i · p_i` are the coefficients `c`.
    fn grads_of(params: &[Param], coefs: &[&[f32]]) -> GradStore {
        let mut loss = Tensor::zeros((), DType::F32, &Device::Cpu).unwrap();
        for (p, c) in params.iter().zip(coefs) {
            let c = Tensor::from_slice(c, c.len(), &Device::Cpu).unwrap();
            loss = (loss + (p.var.as_tensor() * c).unwrap().sum_all().unwrap()).unwrap();
        }
        loss.backward().unwrap()
    }

    fn grad(grads: &GradStore, p: &Param) -> Vec<f32> {
        grads.get(p.var.as_tensor()).unwrap().to_vec1().unwrap()
    }

    #[test]
    fn clips_the_global_norm_keeping_the_direction() {
        // Gradients [3, 0] and [4]: global norm √(9 + 16) = 5. Clipped to 1: each × 1/(5 + 1e-6).
        let a = param("a", &[1.0, 1.0]);
        let b = param("b", &[1.0]);
        let untouched = param("c", &[1.0]); // not in the loss: no gradient, skipped
        let params = [a.clone(), b.clone(), untouched];
        let mut grads = grads_of(&params[..2], &[&[3.0, 0.0], &[4.0]]);
        let norm = clip_grad_norm(&params, &mut grads, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        let (ga, gb) = (grad(&grads, &a), grad(&grads, &b));
        let coef = 1.0 / (5.0 + 1e-6);
        assert!((ga[0] as f64 - 3.0 * coef).abs() < 1e-6 && ga[1] == 0.0);
        assert!((gb[0] as f64 - 4.0 * coef).abs() < 1e-6);
        let after = ((ga[0] * ga[0] + gb[0] * gb[0]) as f64).sqrt();
        assert!(after <= 1.0, "norm after clipping {after}");
        // Direction unchanged: the ratio of the components is still 3 : 4.
        assert!((ga[0] / gb[0] - 0.75).abs() < 1e-6);
    }

    #[test]
    fn leaves_gradients_under_the_limit_alone() {
        let a = param("a", &[1.0, 1.0]);
        let mut grads = grads_of(std::slice::from_ref(&a), &[&[0.3, -0.4]]);
        let norm = clip_grad_norm(std::slice::from_ref(&a), &mut grads, 1.0).unwrap();
        assert!((norm - 0.5).abs() < 1e-6);
        assert_eq!(grad(&grads, &a), vec![0.3, -0.4]);
    }
}
