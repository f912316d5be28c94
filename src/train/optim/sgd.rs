//! Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay, as `torch.optim.SGD`.

use std::collections::{BTreeMap, HashMap};

use candle_core::{backprop::GradStore, Tensor};

use super::{
    check_unique_names, conform, counter_tensor, read_counter, required, value_and_grad, Optimizer,
    Param,
};

const PREFIX: &str = "sgd.";
const KEY_STEP: &str = "sgd.step";
const KEY_NUM: &str = "sgd.num_params";
const PREFIX_MOMENTUM: &str = "sgd.momentum.";

/// SGD exactly as PyTorch's `torch.optim.SGD` (with `maximize=False`):
///
/// ```text
/// g ← grad (+ weight_decay · p       if param.decay)
/// if momentum ≠ 0:
///     buf ← g                                        on the param's first step
///     buf ← momentum · buf + (1 − dampening) · g     afterwards
///     g ← g + momentum · buf   if nesterov,   else g ← buf
/// p ← p − lr · g
/// ```
///
/// State: `sgd.step` (number of `step` calls), `sgd.num_params` (number of momentum buffers) and
/// `sgd.momentum.<param name>` (one buffer per param that has had a gradient; none when
/// `momentum == 0`).
#[derive(Debug, Clone)]
pub struct Sgd {
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
    step: u64,
    buffers: BTreeMap<String, Tensor>,
}

impl Sgd {
    /// # Panics
    /// Like PyTorch, if `nesterov` is set without a positive momentum and zero dampening.
    pub fn new(momentum: f64, dampening: f64, nesterov: bool, weight_decay: f64) -> Self {
        assert!(
            !nesterov || (momentum > 0.0 && dampening == 0.0),
            "Nesterov momentum requires a momentum and zero dampening"
        );
        Self {
            momentum,
            dampening,
            nesterov,
            weight_decay,
            step: 0,
            buffers: BTreeMap::new(),
        }
    }

    /// Number of `step` calls so far (restored by `load_state`).
    pub fn steps(&self) -> u64 {
        self.step
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &[Param], grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        check_unique_names(params)?;
        for param in params {
            let Some((p, mut g)) = value_and_grad(param, grads)? else {
                continue;
            };
            let lr = lr * param.lr_scale();
            if param.decay && self.weight_decay != 0.0 {
                g = p.affine(self.weight_decay, 0.0)?.add(&g)?;
            }
            if self.momentum != 0.0 {
                let buf = match self.buffers.get(&param.name) {
                    // candle tensors are immutable, so sharing the gradient's storage is safe.
                    None => g.clone(),
                    Some(buf) => {
                        let buf = conform(&format!("{PREFIX_MOMENTUM}{}", param.name), buf, &p)?;
                        let g_part = if self.dampening == 0.0 {
                            g.clone()
                        } else {
                            g.affine(1.0 - self.dampening, 0.0)?
                        };
                        buf.affine(self.momentum, 0.0)?.add(&g_part)?
                    }
                };
                g = if self.nesterov {
                    buf.affine(self.momentum, 0.0)?.add(&g)?
                } else {
                    buf.clone()
                };
                self.buffers.insert(param.name.clone(), buf);
            }
            param.var.set(&p.sub(&g.affine(lr, 0.0)?)?)?;
        }
        self.step += 1;
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(self.buffers.len() + 2);
        out.push((KEY_STEP.to_string(), counter_tensor(self.step)));
        out.push((
            KEY_NUM.to_string(),
            counter_tensor(self.buffers.len() as u64),
        ));
        for (name, buf) in &self.buffers {
            out.push((format!("{PREFIX_MOMENTUM}{name}"), buf.clone()));
        }
        out
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> candle_core::Result<()> {
        let step = read_counter(KEY_STEP, required(state, KEY_STEP)?)?;
        let num = read_counter(KEY_NUM, required(state, KEY_NUM)?)?;
        let mut buffers = BTreeMap::new();
        for (key, t) in state {
            if let Some(name) = key.strip_prefix(PREFIX_MOMENTUM) {
                buffers.insert(name.to_string(), t.clone());
            } else if key.starts_with(PREFIX) && key != KEY_STEP && key != KEY_NUM {
                candle_core::bail!("unknown SGD state entry '{key}'");
            }
        }
        if buffers.len() as u64 != num {
            candle_core::bail!(
                "SGD state should hold {num} momentum buffers ('{PREFIX_MOMENTUM}<param>') but holds {}",
                buffers.len()
            );
        }
        self.step = step;
        self.buffers = buffers;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    const P0: [f64; 2] = [1.0, -2.0];
    const G: [[f64; 2]; 3] = [[1.0, 2.0], [0.5, -1.0], [-1.0, 0.25]];

    fn steps(lrs: [f64; 3]) -> Vec<([f64; 2], f64)> {
        G.iter().copied().zip(lrs).collect()
    }

    /// PyTorch's SGD written out in f64, element by element.
    fn reference(
        momentum: f64,
        dampening: f64,
        nesterov: bool,
        wd: f64,
        lrs: [f64; 3],
    ) -> Vec<Vec<f64>> {
        let mut p = P0.to_vec();
        let mut buf: Option<Vec<f64>> = None;
        let mut out = Vec::new();
        for (g, lr) in G.iter().zip(lrs) {
            let mut d: Vec<f64> = (0..2).map(|i| g[i] + wd * p[i]).collect();
            if momentum != 0.0 {
                let b: Vec<f64> = match &buf {
                    None => d.clone(),
                    Some(b) => (0..2)
                        .map(|i| momentum * b[i] + (1.0 - dampening) * d[i])
                        .collect(),
                };
                d = if nesterov {
                    (0..2).map(|i| d[i] + momentum * b[i]).collect()
                } else {
                    b.clone()
                };
                buf = Some(b);
            }
            for i in 0..2 {
                p[i] -= lr * d[i];
            }
            out.push(p.clone());
        }
        out
    }

    fn check(opt: &mut Sgd, lrs: [f64; 3], want: &[[f64; 2]; 3], what: &str) {
        let p = param("w", &P0, true);
        let got = run_single(opt, &p, &steps(lrs));
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            assert_close(g, w, 1e-6, &format!("{what}, step {}", k + 1));
        }
    }

    #[test]
    fn plain() {
        // lr 0.1, p0 = [1, -2]
        // p1 = [1 - 0.1·1,      -2 - 0.1·2   ] = [0.9,  -2.2  ]
        // p2 = [0.9 - 0.1·0.5,  -2.2 + 0.1·1 ] = [0.85, -2.1  ]
        // p3 = [0.85 + 0.1·1,   -2.1 - 0.1·0.25] = [0.95, -2.125]
        let want = [[0.9, -2.2], [0.85, -2.1], [0.95, -2.125]];
        check(
            &mut Sgd::new(0.0, 0.0, false, 0.0),
            [0.1; 3],
            &want,
            "plain",
        );
    }

    #[test]
    fn momentum() {
        // momentum 0.9, lr 0.1
        // buf1 = g1 = [1, 2]                                  p1 = [0.9,   -2.2  ]
        // buf2 = 0.9·[1, 2] + [0.5, -1]      = [1.4, 0.8]     p2 = [0.76,  -2.28 ]
        // buf3 = 0.9·[1.4, 0.8] + [-1, 0.25] = [0.26, 0.97]   p3 = [0.734, -2.377]
        let want = [[0.9, -2.2], [0.76, -2.28], [0.734, -2.377]];
        check(
            &mut Sgd::new(0.9, 0.0, false, 0.0),
            [0.1; 3],
            &want,
            "momentum",
        );
    }

    #[test]
    fn nesterov() {
        // momentum 0.9, lr 0.1, buffers as in `momentum`; d = g + 0.9·buf
        // d1 = [1 + 0.9, 2 + 1.8]          = [1.9, 3.8]       p1 = [0.81,   -2.38  ]
        // d2 = [0.5 + 1.26, -1 + 0.72]     = [1.76, -0.28]    p2 = [0.634,  -2.352 ]
        // d3 = [-1 + 0.234, 0.25 + 0.873]  = [-0.766, 1.123]  p3 = [0.7106, -2.4643]
        let want = [[0.81, -2.38], [0.634, -2.352], [0.7106, -2.4643]];
        check(
            &mut Sgd::new(0.9, 0.0, true, 0.0),
            [0.1; 3],
            &want,
            "nesterov",
        );
    }

    #[test]
    fn weight_decay() {
        // wd 0.1, lr 0.1, d = g + 0.1·p
        // d1 = [1 + 0.1, 2 - 0.2]             = [1.1, 1.8]          p1 = [0.89,     -2.18    ]
        // d2 = [0.5 + 0.089, -1 - 0.218]      = [0.589, -1.218]     p2 = [0.8311,   -2.0582  ]
        // d3 = [-1 + 0.08311, 0.25 - 0.20582] = [-0.91689, 0.04418] p3 = [0.922789, -2.062618]
        let want = [[0.89, -2.18], [0.8311, -2.0582], [0.922789, -2.062618]];
        check(
            &mut Sgd::new(0.0, 0.0, false, 0.1),
            [0.1; 3],
            &want,
            "weight decay",
        );
    }

    #[test]
    fn against_reference_formula() {
        let lrs = [0.1, 0.05, 0.2];
        for (m, d, n, wd) in [
            (0.0, 0.0, false, 0.0),
            (0.9, 0.0, false, 0.0),
            (0.9, 0.5, false, 0.0), // dampening (not applied on the first step)
            (0.9, 0.0, true, 0.0),
            (0.9, 0.0, false, 0.01),
            (0.8, 0.0, true, 0.05),
            (0.0, 0.0, false, 0.3),
        ] {
            let want = reference(m, d, n, wd, lrs);
            let want: Vec<[f64; 2]> = want.iter().map(|v| [v[0], v[1]]).collect();
            check(
                &mut Sgd::new(m, d, n, wd),
                lrs,
                &[want[0], want[1], want[2]],
                &format!("momentum {m} dampening {d} nesterov {n} wd {wd}"),
            );
        }
    }

    #[test]
    fn no_decay_params_get_no_decay() {
        let mut opt = Sgd::new(0.9, 0.0, false, 0.5);
        let a = param("a", &P0, true);
        let b = param("b", &P0, false);
        for g in G {
            let grads = grads_for(&[(&a, &g), (&b, &g)]);
            opt.step(&[a.clone(), b.clone()], &grads, 0.1).unwrap();
        }
        let plain = reference(0.9, 0.0, false, 0.0, [0.1; 3]);
        let decayed = reference(0.9, 0.0, false, 0.5, [0.1; 3]);
        assert_close(&values(&b), &plain[2], 1e-12, "no-decay param");
        assert_close(&values(&a), &decayed[2], 1e-12, "decay param");
    }

    #[test]
    fn params_without_gradient_are_skipped() {
        let mut opt = Sgd::new(0.9, 0.0, false, 0.1);
        let a = param("a", &P0, true);
        let frozen = param("frozen", &[3.0, 4.0], true);
        let grads = grads_for(&[(&a, &G[0])]);
        opt.step(&[a.clone(), frozen.clone()], &grads, 0.1).unwrap();
        assert_eq!(values(&frozen), vec![3.0, 4.0]);
        let keys: Vec<String> = opt.state().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["sgd.step", "sgd.num_params", "sgd.momentum.a"]);
    }

    #[test]
    fn state_is_detached() {
        let mut opt = Sgd::new(0.9, 0.0, true, 0.1);
        let p = param("w", &P0, true);
        run_single(&mut opt, &p, &steps([0.1; 3]));
        for (k, t) in opt.state() {
            assert!(!t.track_op(), "{k} is part of an autograd graph");
        }
    }

    #[test]
    fn resume_is_bit_identical() {
        let lrs = [0.1, 0.05, 0.2];
        for nesterov in [false, true] {
            let mut full = Sgd::new(0.9, 0.0, nesterov, 0.01);
            let p_full = param("w", &P0, true);
            run_single(&mut full, &p_full, &steps(lrs));

            let mut first = Sgd::new(0.9, 0.0, nesterov, 0.01);
            let p = param("w", &P0, true);
            run_single(&mut first, &p, &steps(lrs)[..1]);
            let state = through_safetensors(first.state(), "sgd");
            drop(first);

            let mut resumed = Sgd::new(0.9, 0.0, nesterov, 0.01);
            resumed.load_state(&state).unwrap();
            assert_eq!(resumed.steps(), 1);
            let p2 = param("w", &values(&p), true);
            run_single(&mut resumed, &p2, &steps(lrs)[1..]);
            assert_eq!(bits(&p2), bits(&p_full), "nesterov {nesterov}");
            assert_eq!(resumed.steps(), 3);
        }
    }

    #[test]
    fn missing_or_bad_state_is_an_error() {
        let mut opt = Sgd::new(0.9, 0.0, false, 0.0);
        let p = param("w", &P0, true);
        run_single(&mut opt, &p, &steps([0.1; 3])[..1]);
        let full: HashMap<String, Tensor> = opt.state().into_iter().collect();

        // a missing momentum buffer
        let mut s = full.clone();
        s.remove("sgd.momentum.w");
        let err = Sgd::new(0.9, 0.0, false, 0.0)
            .load_state(&s)
            .unwrap_err()
            .to_string();
        assert!(err.contains("momentum buffers"), "{err}");

        // a missing counter, e.g. an empty map or another optimizer's checkpoint
        let err = Sgd::new(0.9, 0.0, false, 0.0)
            .load_state(&HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("sgd.step") && err.contains("missing"), "{err}");

        // an unknown entry
        let mut s = full.clone();
        s.insert(
            "sgd.velocity.w".into(),
            Tensor::zeros(2, candle_core::DType::F64, &candle_core::Device::Cpu).unwrap(),
        );
        assert!(Sgd::new(0.9, 0.0, false, 0.0).load_state(&s).is_err());

        // a mis-shaped buffer is reported at the next step, naming the entry
        let mut s = full.clone();
        s.insert(
            "sgd.momentum.w".into(),
            Tensor::zeros(3, candle_core::DType::F64, &candle_core::Device::Cpu).unwrap(),
        );
        let mut opt = Sgd::new(0.9, 0.0, false, 0.0);
        opt.load_state(&s).unwrap();
        let grads = grads_for(&[(&p, &G[1])]);
        let before = values(&p);
        let err = opt
            .step(std::slice::from_ref(&p), &grads, 0.1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sgd.momentum.w") && err.contains("shape"),
            "{err}"
        );
        assert_eq!(values(&p), before);
    }

    #[test]
    fn duplicate_names_are_an_error() {
        let a = param("w", &P0, true);
        let b = param("w", &P0, true);
        let grads = grads_for(&[(&a, &G[0]), (&b, &G[0])]);
        assert!(Sgd::new(0.9, 0.0, false, 0.0)
            .step(&[a, b], &grads, 0.1)
            .is_err());
    }

    #[test]
    #[should_panic(expected = "Nesterov")]
    fn nesterov_needs_momentum() {
        Sgd::new(0.0, 0.0, true, 0.0);
    }
}
