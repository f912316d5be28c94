//! Adam (L2 weight decay) and AdamW (decoupled weight decay), as `torch.optim.Adam` / `torch.optim.AdamW`.

use std::collections::{BTreeMap, HashMap};

use candle_core::{backprop::GradStore, DType, Storage, Tensor};

use super::{
    check_unique_names, conform, counter_tensor, read_counter, required, value_and_grad, Optimizer,
    Param,
};

const PREFIX: &str = "adam.";
const KEY_STEP: &str = "adam.step";
const KEY_NUM: &str = "adam.num_params";
const PREFIX_M: &str = "adam.m.";
const PREFIX_V: &str = "adam.v.";
const PREFIX_PARAM_STEP: &str = "adam.step.";

/// Per-parameter state. As in PyTorch the step count (used for bias correction) is kept per
/// parameter, so a parameter that first gets a gradient late starts its own count at 1.
#[derive(Debug, Clone)]
struct Moments {
    step: u64,
    m: Tensor,
    v: Tensor,
}

/// Adam / AdamW exactly as PyTorch (`amsgrad=False`, `maximize=False`), with `t` the param's
/// own step count:
///
/// ```text
/// p ← p · (1 − lr · weight_decay)         AdamW, if param.decay
/// g ← grad (+ weight_decay · p)           Adam,  if param.decay
/// m ← β1 · m + (1 − β1) · g
/// v ← β2 · v + (1 − β2) · g²
/// p ← p − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
/// ```
///
/// State (the same layout for Adam and AdamW): `adam.step` (number of `step` calls),
/// `adam.num_params` (number of params with moments), and per param `adam.m.<name>`,
/// `adam.v.<name>`, `adam.step.<name>`.
#[derive(Debug, Clone)]
pub struct Adam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    step: u64,
    state: BTreeMap<String, Moments>,
}

impl Adam {
    /// Adam with L2 weight decay (added to the gradient), as `torch.optim.Adam`.
    #[allow(clippy::self_named_constructors)]
    pub fn adam(beta1: f64, beta2: f64, eps: f64, weight_decay: f64) -> Self {
        Self::with(beta1, beta2, eps, weight_decay, false)
    }

    /// AdamW: decoupled weight decay `p ← p · (1 − lr · wd)` before the Adam update, as `torch.optim.AdamW`.
    pub fn adamw(beta1: f64, beta2: f64, eps: f64, weight_decay: f64) -> Self {
        Self::with(beta1, beta2, eps, weight_decay, true)
    }

    fn with(beta1: f64, beta2: f64, eps: f64, weight_decay: f64, decoupled: bool) -> Self {
        Self {
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
            step: 0,
            state: BTreeMap::new(),
        }
    }

    /// Number of `step` calls so far (restored by `load_state`).
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Whether this is AdamW (decoupled weight decay).
    pub fn is_decoupled(&self) -> bool {
        self.decoupled
    }
}

enum Decay {
    /// AdamW: `p ← p · mul` before the update.
    Decoupled(f64),
    /// Adam: `g ← g + wd · p`.
    L2(f64),
}

/// The scalars of one parameter's update.
struct Coefs {
    decay: Option<Decay>,
    b1: f64,
    b2: f64,
    rsqrt_bias2: f64,
    eps: f64,
    step_size: f64,
}

/// The update of one parameter with candle tensor ops (any device and dtype): the new value
/// and moments.
fn with_tensor_ops(
    mut p: Tensor,
    mut g: Tensor,
    moments: Option<(&Tensor, &Tensor)>,
    k: &Coefs,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let (b1, b2) = (k.b1, k.b2);
    match k.decay {
        Some(Decay::Decoupled(mul)) => p = p.affine(mul, 0.0)?,
        Some(Decay::L2(wd)) => g = p.affine(wd, 0.0)?.add(&g)?,
        None => {}
    }
    let (m, v) = match moments {
        // From zero moments: m = (1 − β1)·g, v = (1 − β2)·g² (bit-identical to β·0 + …).
        None => (g.affine(1.0 - b1, 0.0)?, g.sqr()?.affine(1.0 - b2, 0.0)?),
        Some((m, v)) => (
            m.affine(b1, 0.0)?.add(&g.affine(1.0 - b1, 0.0)?)?,
            v.affine(b2, 0.0)?.add(&g.sqr()?.affine(1.0 - b2, 0.0)?)?,
        ),
    };
    let denom = v.sqrt()?.affine(k.rsqrt_bias2, k.eps)?;
    let update = m.div(&denom)?.affine(k.step_size, 0.0)?;
    Ok((p.sub(&update)?, m, v))
}

/// The update of one f32 parameter on the CPU in a single pass, without the dozen
/// intermediate tensors of the tensor-op path (the same f32 operations in the same order,
/// so bit-identical to it): the new value and moments, or `None` for other dtypes or devices
/// and under the generic kernels.
fn fused_cpu(
    p: &Tensor,
    g: &Tensor,
    moments: Option<(&Tensor, &Tensor)>,
    k: &Coefs,
) -> candle_core::Result<Option<(Tensor, Tensor, Tensor)>> {
    let mut all = vec![p, g];
    if let Some((m, v)) = moments {
        all.extend([m, v]);
    }
    let fast = crate::model::ops::kernels::current() == crate::model::ops::Kernels::Fast;
    if !fast
        || !all
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
    {
        return Ok(None);
    }
    let contiguous: Vec<Tensor> = all
        .iter()
        .map(|t| t.contiguous())
        .collect::<candle_core::Result<_>>()?;
    let guards: Vec<_> = contiguous.iter().map(|t| t.storage_and_layout()).collect();
    let mut data = Vec::with_capacity(guards.len());
    for (storage, layout) in &guards {
        let (Storage::Cpu(cpu), Some((start, end))) = (&**storage, layout.contiguous_offsets())
        else {
            return Ok(None);
        };
        data.push(&cpu.as_slice::<f32>()?[start..end]);
    }
    let (pd, gd) = (data[0], data[1]);
    let n = pd.len();
    if gd.len() != n || data.iter().any(|d| d.len() != n) {
        candle_core::bail!("Adam: parameter, gradient and moments differ in size");
    }
    let f = |x: f64| x as f32;
    let c = Consts {
        b1: f(k.b1),
        b2: f(k.b2),
        one_b1: f(1.0 - k.b1),
        one_b2: f(1.0 - k.b2),
        rsqrt_bias2: f(k.rsqrt_bias2),
        eps: f(k.eps),
        step_size: f(k.step_size),
    };
    let (mut new_p, mut new_m, mut new_v) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    let out = (&mut new_p[..], &mut new_m[..], &mut new_v[..]);
    let mv = moments.map(|_| (data[2], data[3]));
    // One monomorphic loop per kind of decay, so that each vectorises.
    match k.decay {
        None => fused_loop(pd, gd, mv, out, &c, |p, g| (p, g)),
        Some(Decay::Decoupled(mul)) => {
            let mul = f(mul);
            fused_loop(pd, gd, mv, out, &c, move |p, g| (p * mul + 0.0, g))
        }
        Some(Decay::L2(wd)) => {
            let wd = f(wd);
            fused_loop(pd, gd, mv, out, &c, move |p, g| (p, (p * wd + 0.0) + g))
        }
    }
    let (shape, device) = (p.shape(), p.device());
    Ok(Some((
        Tensor::from_vec(new_p, shape, device)?,
        Tensor::from_vec(new_m, shape, device)?,
        Tensor::from_vec(new_v, shape, device)?,
    )))
}

/// The f32 scalars of [`Coefs`].
struct Consts {
    b1: f32,
    b2: f32,
    one_b1: f32,
    one_b2: f32,
    rsqrt_bias2: f32,
    eps: f32,
    step_size: f32,
}

/// The element loop of [`fused_cpu`]; `decay` maps `(p, g)` before the update.
#[inline(always)]
fn fused_loop(
    pd: &[f32],
    gd: &[f32],
    moments: Option<(&[f32], &[f32])>,
    (new_p, new_m, new_v): (&mut [f32], &mut [f32], &mut [f32]),
    c: &Consts,
    decay: impl Fn(f32, f32) -> (f32, f32),
) {
    let finish =
        |p: f32, m: f32, v: f32| p - ((m / (v.sqrt() * c.rsqrt_bias2 + c.eps)) * c.step_size + 0.0);
    let outs = new_p.iter_mut().zip(new_m.iter_mut()).zip(new_v.iter_mut());
    match moments {
        None => {
            for (((np, nm), nv), (&p, &g)) in outs.zip(pd.iter().zip(gd)) {
                let (p, g) = decay(p, g);
                let (m, v) = (g * c.one_b1 + 0.0, (g * g) * c.one_b2 + 0.0);
                (*np, *nm, *nv) = (finish(p, m, v), m, v);
            }
        }
        Some((md, vd)) => {
            let ins = pd.iter().zip(gd).zip(md.iter().zip(vd));
            for (((np, nm), nv), ((&p, &g), (&m, &v))) in outs.zip(ins) {
                let (p, g) = decay(p, g);
                let m = (m * c.b1 + 0.0) + (g * c.one_b1 + 0.0);
                let v = (v * c.b2 + 0.0) + ((g * g) * c.one_b2 + 0.0);
                (*np, *nm, *nv) = (finish(p, m, v), m, v);
            }
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: &[Param], grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        check_unique_names(params)?;
        let (b1, b2) = (self.beta1, self.beta2);
        for param in params {
            let Some((p, g)) = value_and_grad(param, grads)? else {
                continue;
            };
            let lr = lr * param.lr_scale();
            let decay = param.decay && self.weight_decay != 0.0;
            let prev = match self.state.get(&param.name) {
                None => None,
                Some(s) => Some((
                    s.step,
                    conform(&format!("{PREFIX_M}{}", param.name), &s.m, &p)?,
                    conform(&format!("{PREFIX_V}{}", param.name), &s.v, &p)?,
                )),
            };
            let t = prev.as_ref().map_or(1, |(step, _, _)| step + 1);
            let exp = i32::try_from(t).unwrap_or(i32::MAX);
            let bias1 = 1.0 - b1.powi(exp);
            let bias2 = 1.0 - b2.powi(exp);
            let step_size = lr / bias1;
            let coefs = Coefs {
                decay: decay.then_some(if self.decoupled {
                    Decay::Decoupled(1.0 - lr * self.weight_decay)
                } else {
                    Decay::L2(self.weight_decay)
                }),
                b1,
                b2,
                rsqrt_bias2: 1.0 / bias2.sqrt(),
                eps: self.eps,
                step_size,
            };
            let moments = prev.as_ref().map(|(_, m, v)| (m, v));
            let (p, m, v) = match fused_cpu(&p, &g, moments, &coefs)? {
                Some(updated) => updated,
                None => with_tensor_ops(p, g, moments, &coefs)?,
            };
            param.var.set(&p)?;
            self.state
                .insert(param.name.clone(), Moments { step: t, m, v });
        }
        self.step += 1;
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(3 * self.state.len() + 2);
        out.push((KEY_STEP.to_string(), counter_tensor(self.step)));
        out.push((KEY_NUM.to_string(), counter_tensor(self.state.len() as u64)));
        for (name, s) in &self.state {
            out.push((format!("{PREFIX_M}{name}"), s.m.clone()));
            out.push((format!("{PREFIX_V}{name}"), s.v.clone()));
            out.push((format!("{PREFIX_PARAM_STEP}{name}"), counter_tensor(s.step)));
        }
        out
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> candle_core::Result<()> {
        let step = read_counter(KEY_STEP, required(state, KEY_STEP)?)?;
        let num = read_counter(KEY_NUM, required(state, KEY_NUM)?)?;
        let mut loaded = BTreeMap::new();
        for key in state.keys() {
            if let Some(name) = key.strip_prefix(PREFIX_M) {
                let v_key = format!("{PREFIX_V}{name}");
                let step_key = format!("{PREFIX_PARAM_STEP}{name}");
                let m = &state[key];
                let v = required(state, &v_key)?;
                let t = read_counter(&step_key, required(state, &step_key)?)?;
                if m.shape() != v.shape() {
                    candle_core::bail!(
                        "Adam state entries '{key}' and '{v_key}' have different shapes {:?} and {:?}",
                        m.dims(),
                        v.dims()
                    );
                }
                if t == 0 {
                    candle_core::bail!(
                        "Adam state entry '{step_key}' is 0 but moments are present"
                    );
                }
                loaded.insert(
                    name.to_string(),
                    Moments {
                        step: t,
                        m: m.clone(),
                        v: v.clone(),
                    },
                );
            }
        }
        for key in state.keys() {
            let name = key
                .strip_prefix(PREFIX_V)
                .or_else(|| key.strip_prefix(PREFIX_PARAM_STEP));
            match name {
                Some(name) if !loaded.contains_key(name) => {
                    candle_core::bail!(
                        "Adam state entry '{PREFIX_M}{name}' is missing (found '{key}')"
                    )
                }
                Some(_) => {}
                None if key.starts_with(PREFIX)
                    && !key.starts_with(PREFIX_M)
                    && key != KEY_STEP
                    && key != KEY_NUM =>
                {
                    candle_core::bail!("unknown Adam state entry '{key}'")
                }
                None => {}
            }
        }
        if loaded.len() as u64 != num {
            candle_core::bail!(
                "Adam state should hold moments for {num} params but holds {}",
                loaded.len()
            );
        }
        self.step = step;
        self.state = loaded;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use candle_core::{DType, Device};

    const P0: [f64; 2] = [1.0, -2.0];
    const G: [[f64; 2]; 3] = [[1.0, 2.0], [0.5, -1.0], [-1.0, 0.25]];

    fn steps(lrs: [f64; 3]) -> Vec<([f64; 2], f64)> {
        G.iter().copied().zip(lrs).collect()
    }

    /// PyTorch's Adam/AdamW written out in f64, element by element.
    fn reference(
        b1: f64,
        b2: f64,
        eps: f64,
        wd: f64,
        decoupled: bool,
        lrs: [f64; 3],
    ) -> Vec<Vec<f64>> {
        let (mut p, mut m, mut v) = (P0.to_vec(), [0.0; 2], [0.0; 2]);
        let mut out = Vec::new();
        for (t, (g, lr)) in G.iter().zip(lrs).enumerate() {
            let t = t as i32 + 1;
            for i in 0..2 {
                let mut gi = g[i];
                if decoupled {
                    p[i] *= 1.0 - lr * wd;
                } else {
                    gi += wd * p[i];
                }
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                let m_hat = m[i] / (1.0 - b1.powi(t));
                let v_hat = v[i] / (1.0 - b2.powi(t));
                p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
            }
            out.push(p.clone());
        }
        out
    }

    fn check(opt: &mut Adam, lrs: [f64; 3], want: &[Vec<f64>], what: &str) {
        let p = param("w", &P0, true);
        let got = run_single(opt, &p, &steps(lrs));
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            assert_close(g, w, 1e-6, &format!("{what}, step {}", k + 1));
        }
    }

    #[test]
    fn adam() {
        // β = (0.9, 0.999), eps 1e-8, lr 0.1, p0 = [1, -2]
        // t=1: m = [0.1, 0.2], v = [0.001, 0.004]; m̂ = [1, 2], v̂ = [1, 4]
        //      p1 = p0 − 0.1·[1/(1+1e-8), 2/(2+1e-8)] ≈ [0.900000001, -2.0999999995]
        // t=2: m = 0.9·[0.1, 0.2] + 0.1·[0.5, -1] = [0.14, 0.08], bc1 = 0.19 → m̂ = [0.7368421, 0.4210526]
        //      v = 0.999·[0.001, 0.004] + 0.001·[0.25, 1] = [0.001249, 0.004996], bc2 = 0.001999
        //      → v̂ = [0.6248124, 2.4992496], sqrt = [0.7904507, 1.5809015]
        //      p2 = p1 − 0.1·m̂/(sqrt v̂ + eps) ≈ [0.8067820383, -2.1266337033]
        // t=3: m = [0.026, 0.097], bc1 = 0.271 → m̂ = [0.0959410, 0.3579336]
        //      v = [0.002247751, 0.005053504], bc2 = 0.002997001 → v̂ = [0.7500001, 1.6861870]
        //      p3 ≈ [0.7957037313, -2.1541981689]
        let want = [
            vec![0.900000001, -2.0999999995],
            vec![0.8067820383, -2.1266337033],
            vec![0.7957037313, -2.1541981689],
        ];
        check(
            &mut Adam::adam(0.9, 0.999, 1e-8, 0.0),
            [0.1; 3],
            &want,
            "adam",
        );
        // AdamW without weight decay is Adam
        check(
            &mut Adam::adamw(0.9, 0.999, 1e-8, 0.0),
            [0.1; 3],
            &want,
            "adamw wd 0",
        );
    }

    #[test]
    fn adam_weight_decay() {
        // wd 0.1 (L2): g ← g + 0.1·p
        // t=1: g = [1.1, 1.8], m̂ = g, v̂ = g² → p1 ≈ p0 − 0.1·sign(g) = [0.9000000009, -2.0999999994]
        // t=2: g = [0.5 + 0.09, -1 − 0.21] = [0.5900000001, -1.2099999999]
        //      m = [0.158, 0.041], v = [0.00155689, 0.00470086] → p2 ≈ [0.8057717969, -2.1140717456]
        // t=3: g = [-0.9194228203, 0.0385928254] → p3 ≈ [0.7850508045, -2.1260849929]
        let want = [
            vec![0.9000000009, -2.0999999994],
            vec![0.8057717969, -2.1140717456],
            vec![0.7850508045, -2.1260849929],
        ];
        check(
            &mut Adam::adam(0.9, 0.999, 1e-8, 0.1),
            [0.1; 3],
            &want,
            "adam wd",
        );
    }

    #[test]
    fn adamw() {
        // wd 0.1 decoupled: p ← p·(1 − 0.1·0.1) = 0.99·p, then the Adam step with the raw gradient
        // (moments exactly as in `adam`)
        // t=1: p = [0.99, -1.98] − 0.1·[1, 1]·(1 − 1e-8) ≈ [0.890000001, -2.0799999995]
        // t=2: p = 0.99·p1 − 0.1·m̂/(sqrt v̂ + eps) ≈ [0.7878820383, -2.0858337033]
        // t=3: ≈ [0.7689249109, -2.0925398319]
        let want = [
            vec![0.890000001, -2.0799999995],
            vec![0.7878820383, -2.0858337033],
            vec![0.7689249109, -2.0925398319],
        ];
        check(
            &mut Adam::adamw(0.9, 0.999, 1e-8, 0.1),
            [0.1; 3],
            &want,
            "adamw",
        );
    }

    #[test]
    fn against_reference_formula() {
        let lrs = [0.1, 0.03, 0.2];
        for (b1, b2, eps, wd, dec) in [
            (0.9, 0.999, 1e-8, 0.0, false),
            (0.8, 0.99, 1e-3, 0.0, false),
            (0.9, 0.999, 1e-8, 0.05, false),
            (0.5, 0.9, 1e-6, 0.3, false),
            (0.9, 0.999, 1e-8, 0.05, true),
            (0.5, 0.9, 1e-6, 0.3, true),
        ] {
            let want = reference(b1, b2, eps, wd, dec, lrs);
            let mut opt = if dec {
                Adam::adamw(b1, b2, eps, wd)
            } else {
                Adam::adam(b1, b2, eps, wd)
            };
            check(
                &mut opt,
                lrs,
                &want,
                &format!("β=({b1},{b2}) eps {eps} wd {wd} decoupled {dec}"),
            );
        }
    }

    #[test]
    fn the_fused_cpu_update_is_bit_identical_to_the_tensor_ops() {
        let dev = Device::Cpu;
        let n = 1000;
        let vals = |seed: u32| -> Tensor {
            let v: Vec<f32> = (0..n)
                .map(|i| {
                    ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 2001) as f32 / 1000.0
                        - 1.0
                })
                .collect();
            Tensor::from_vec(v, n, &dev).unwrap()
        };
        for decay in [None, Some(Decay::Decoupled(0.999)), Some(Decay::L2(0.01))] {
            let k = Coefs {
                decay,
                b1: 0.9,
                b2: 0.999,
                rsqrt_bias2: 1.0 / (1.0f64 - 0.999f64.powi(3)).sqrt(),
                eps: 1e-8,
                step_size: 1e-3 / (1.0 - 0.9f64.powi(3)),
            };
            let (p, g, m, v) = (vals(1), vals(2), vals(3), vals(4).abs().unwrap());
            for moments in [None, Some((&m, &v))] {
                let fused = fused_cpu(&p, &g, moments, &k).unwrap().unwrap();
                let plain = with_tensor_ops(p.clone(), g.clone(), moments, &k).unwrap();
                let bits = |t: &Tensor| -> Vec<u32> {
                    t.to_vec1::<f32>()
                        .unwrap()
                        .iter()
                        .map(|x| x.to_bits())
                        .collect()
                };
                assert_eq!(bits(&fused.0), bits(&plain.0));
                assert_eq!(bits(&fused.1), bits(&plain.1));
                assert_eq!(bits(&fused.2), bits(&plain.2));
            }
        }
        // Other dtypes take the tensor ops.
        let p64 = vals(1).to_dtype(DType::F64).unwrap();
        let k = Coefs {
            decay: None,
            b1: 0.9,
            b2: 0.999,
            rsqrt_bias2: 1.0,
            eps: 1e-8,
            step_size: 1e-3,
        };
        assert!(fused_cpu(&p64, &p64, None, &k).unwrap().is_none());
    }

    #[test]
    fn f32_params() {
        let want = reference(0.9, 0.999, 1e-8, 0.01, true, [0.1; 3]);
        let mut opt = Adam::adamw(0.9, 0.999, 1e-8, 0.01);
        let var = candle_core::Var::from_tensor(
            &Tensor::from_slice(&P0, 2, &Device::Cpu)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap(),
        )
        .unwrap();
        let p = Param::new("w", var, true);
        let got = run_single(&mut opt, &p, &steps([0.1; 3]));
        assert_eq!(p.var.as_tensor().dtype(), DType::F32);
        assert_close(&got[2], &want[2], 1e-5, "f32");
    }

    #[test]
    fn no_decay_params_get_no_decay() {
        for dec in [false, true] {
            let mut opt = if dec {
                Adam::adamw(0.9, 0.999, 1e-8, 0.2)
            } else {
                Adam::adam(0.9, 0.999, 1e-8, 0.2)
            };
            let a = param("a", &P0, true);
            let b = param("b", &P0, false);
            for g in G {
                let grads = grads_for(&[(&a, &g), (&b, &g)]);
                opt.step(&[a.clone(), b.clone()], &grads, 0.1).unwrap();
            }
            let plain = reference(0.9, 0.999, 1e-8, 0.0, dec, [0.1; 3]);
            let decayed = reference(0.9, 0.999, 1e-8, 0.2, dec, [0.1; 3]);
            assert_close(&values(&b), &plain[2], 1e-12, "no-decay param");
            assert_close(&values(&a), &decayed[2], 1e-12, "decay param");
            assert!((values(&a)[0] - values(&b)[0]).abs() > 1e-3);
        }
    }

    #[test]
    fn params_without_gradient_are_skipped() {
        let mut opt = Adam::adamw(0.9, 0.999, 1e-8, 0.1);
        let a = param("a", &P0, true);
        let late = param("late", &P0, true);
        // `late` has no gradient for two steps: untouched, no state
        for g in &G[..2] {
            let grads = grads_for(&[(&a, g)]);
            opt.step(&[a.clone(), late.clone()], &grads, 0.1).unwrap();
        }
        assert_eq!(values(&late), P0.to_vec());
        let keys: Vec<String> = opt.state().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "adam.step",
                "adam.num_params",
                "adam.m.a",
                "adam.v.a",
                "adam.step.a"
            ]
        );
        // its first update uses its own step count t = 1 (as PyTorch), i.e. the first-step formula
        let grads = grads_for(&[(&a, &G[2]), (&late, &G[0])]);
        opt.step(&[a.clone(), late.clone()], &grads, 0.1).unwrap();
        let want = reference(0.9, 0.999, 1e-8, 0.1, true, [0.1; 3]);
        assert_close(&values(&late), &want[0], 1e-12, "late param");
        let state: HashMap<String, Tensor> = opt.state().into_iter().collect();
        assert_eq!(read_counter("", &state["adam.step.late"]).unwrap(), 1);
        assert_eq!(read_counter("", &state["adam.step.a"]).unwrap(), 3);
        assert_eq!(read_counter("", &state["adam.step"]).unwrap(), 3);
    }

    #[test]
    fn state_is_detached() {
        let mut opt = Adam::adam(0.9, 0.999, 1e-8, 0.1);
        let p = param("w", &P0, true);
        run_single(&mut opt, &p, &steps([0.1; 3]));
        for (k, t) in opt.state() {
            assert!(!t.track_op(), "{k} is part of an autograd graph");
        }
    }

    #[test]
    fn resume_is_bit_identical() {
        let lrs = [0.1, 0.05, 0.2];
        for dec in [false, true] {
            let new = || {
                if dec {
                    Adam::adamw(0.9, 0.999, 1e-8, 0.01)
                } else {
                    Adam::adam(0.9, 0.999, 1e-8, 0.01)
                }
            };
            let mut full = new();
            let p_full = param("w", &P0, true);
            run_single(&mut full, &p_full, &steps(lrs));

            let mut first = new();
            let p = param("w", &P0, true);
            run_single(&mut first, &p, &steps(lrs)[..1]);
            let state = through_safetensors(first.state(), if dec { "adamw" } else { "adam" });
            drop(first);

            let mut resumed = new();
            resumed.load_state(&state).unwrap();
            assert_eq!(resumed.steps(), 1);
            let p2 = param("w", &values(&p), true);
            run_single(&mut resumed, &p2, &steps(lrs)[1..]);
            assert_eq!(bits(&p2), bits(&p_full), "decoupled {dec}");
        }
    }

    #[test]
    fn missing_or_bad_state_is_an_error() {
        let mut opt = Adam::adam(0.9, 0.999, 1e-8, 0.0);
        let p = param("w", &P0, true);
        run_single(&mut opt, &p, &steps([0.1; 3])[..1]);
        let full: HashMap<String, Tensor> = opt.state().into_iter().collect();
        let fresh = || Adam::adam(0.9, 0.999, 1e-8, 0.0);

        for key in ["adam.v.w", "adam.step.w", "adam.step", "adam.num_params"] {
            let mut s = full.clone();
            s.remove(key);
            let err = fresh().load_state(&s).unwrap_err().to_string();
            assert!(
                err.contains(key) && err.contains("missing"),
                "removing {key}: {err}"
            );
        }
        let mut s = full.clone();
        s.remove("adam.m.w");
        let err = fresh().load_state(&s).unwrap_err().to_string();
        assert!(err.contains("adam.m.w") && err.contains("missing"), "{err}");

        // all of one param's entries missing: caught by the count
        let mut s = full.clone();
        for k in ["adam.m.w", "adam.v.w", "adam.step.w"] {
            s.remove(k);
        }
        let err = fresh().load_state(&s).unwrap_err().to_string();
        assert!(err.contains("1 params"), "{err}");

        // an SGD checkpoint
        let sgd: HashMap<String, Tensor> = super::super::Sgd::new(0.9, 0.0, false, 0.0)
            .state()
            .into_iter()
            .collect();
        assert!(fresh().load_state(&sgd).is_err());

        // failed loads leave the previous state alone
        let mut kept = opt.clone();
        assert!(kept.load_state(&HashMap::new()).is_err());
        assert_eq!(kept.state().len(), full.len());

        // m and v of different shapes
        let mut s = full.clone();
        s.insert(
            "adam.v.w".into(),
            Tensor::zeros(3, DType::F64, &Device::Cpu).unwrap(),
        );
        assert!(fresh()
            .load_state(&s)
            .unwrap_err()
            .to_string()
            .contains("shapes"));

        // moments that do not fit the param are reported at the next step, naming the entry
        let mut s = full.clone();
        s.insert(
            "adam.m.w".into(),
            Tensor::zeros((1, 2), DType::F64, &Device::Cpu).unwrap(),
        );
        s.insert(
            "adam.v.w".into(),
            Tensor::zeros((1, 2), DType::F64, &Device::Cpu).unwrap(),
        );
        let mut opt = fresh();
        opt.load_state(&s).unwrap();
        let grads = grads_for(&[(&p, &G[1])]);
        let err = opt
            .step(std::slice::from_ref(&p), &grads, 0.1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("adam.m.w") && err.contains("shape"), "{err}");
    }

    #[test]
    fn loaded_state_converts_dtype() {
        // f32 moments (e.g. written by an f32 run) into f64 params: converted, not rejected
        let mut opt = Adam::adam(0.9, 0.999, 1e-8, 0.0);
        let p = param("w", &P0, true);
        run_single(&mut opt, &p, &steps([0.1; 3])[..1]);
        let state: HashMap<String, Tensor> = opt
            .state()
            .into_iter()
            .map(|(k, t)| {
                (
                    k,
                    if t.dtype() == DType::F64 {
                        t.to_dtype(DType::F32).unwrap()
                    } else {
                        t
                    },
                )
            })
            .collect();
        let mut resumed = Adam::adam(0.9, 0.999, 1e-8, 0.0);
        resumed.load_state(&state).unwrap();
        run_single(&mut resumed, &p, &steps([0.1; 3])[1..]);
        let want = reference(0.9, 0.999, 1e-8, 0.0, false, [0.1; 3]);
        assert_close(&values(&p), &want[2], 1e-6, "converted state");
        let st: HashMap<String, Tensor> = resumed.state().into_iter().collect();
        assert_eq!(st["adam.m.w"].dtype(), DType::F64);
    }
}
