//! reduce_on_plateau's state and its once-an-epoch decision, as torch's ReduceLROnPlateau
//! (threshold mode "rel"), with its state as a tensor for checkpoints.

use candle_core::{Device, Tensor};

/// The name of the plateau's state tensor in a checkpoint's schedule group.
const STATE: &str = "plateau";

/// The rules: `ScheduleKind::ReduceOnPlateau`'s values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlateauRules {
    pub patience: usize,
    pub factor: f64,
    pub threshold: f64,
    pub cooldown: usize,
    pub min_lr: f64,
}

/// Where the plateau stands after an epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plateau {
    /// The rate the next epoch trains with.
    pub lr: f64,
    /// The best metric so far (±∞ before the first epoch, as torch's).
    pub best: f64,
    pub bad_epochs: usize,
    pub cooldown_left: usize,
}

/// Why a checkpoint's plateau state cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum PlateauStateError {
    #[error("the checkpoint has no reduce_on_plateau state (`{STATE}`)")]
    Missing,
    #[error("the checkpoint's reduce_on_plateau state is damaged: {0}")]
    Damaged(String),
}

impl Plateau {
    pub fn new(lr: f64, higher_is_better: bool) -> Self {
        Self {
            lr,
            best: if higher_is_better {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            },
            bad_epochs: 0,
            cooldown_left: 0,
        }
    }

    /// After an epoch's validation: `score` (`None`: the metric is undefined this epoch, which
    /// counts as no improvement).
    pub fn epoch_done(&mut self, rules: &PlateauRules, score: Option<f64>, higher_is_better: bool) {
        let better = score.is_some_and(|s| {
            if higher_is_better {
                s > self.best * (1.0 + rules.threshold)
            } else {
                s < self.best * (1.0 - rules.threshold)
            }
        });
        match score {
            Some(s) if better => {
                self.best = s;
                self.bad_epochs = 0;
            }
            _ => self.bad_epochs += 1,
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_epochs = 0;
        }
        if self.bad_epochs > rules.patience {
            let reduced = (self.lr * rules.factor).max(rules.min_lr);
            // torch's eps: changes smaller than 1e-8 are not made.
            if self.lr - reduced > 1e-8 {
                self.lr = reduced;
            }
            self.cooldown_left = rules.cooldown;
            self.bad_epochs = 0;
        }
    }

    /// The state as one f64 tensor: [lr, best, bad epochs, cooldown left].
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let values = [
            self.lr,
            self.best,
            self.bad_epochs as f64,
            self.cooldown_left as f64,
        ];
        let t = Tensor::from_slice(&values, 4, &Device::Cpu)
            .expect("creating a 4-element CPU tensor cannot fail");
        vec![(STATE.to_string(), t)]
    }

    /// Whether a checkpoint's schedule tensor named `name` is the plateau's state.
    pub fn holds(name: &str) -> bool {
        name == STATE
    }

    /// Restores what [`Plateau::state`] wrote.
    pub fn from_state(state: &[(String, Tensor)]) -> Result<Self, PlateauStateError> {
        let (_, t) = state
            .iter()
            .find(|(n, _)| n == STATE)
            .ok_or(PlateauStateError::Missing)?;
        let v = t
            .to_dtype(candle_core::DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .map_err(|e| PlateauStateError::Damaged(e.to_string()))?;
        let count = |x: f64| {
            (x.is_finite() && x >= 0.0 && x.fract() == 0.0)
                .then_some(x as usize)
                .ok_or_else(|| PlateauStateError::Damaged(format!("{x} is not a count")))
        };
        match v[..] {
            [lr, best, bad, cooldown] if lr.is_finite() && lr >= 0.0 && !best.is_nan() => {
                Ok(Self {
                    lr,
                    best,
                    bad_epochs: count(bad)?,
                    cooldown_left: count(cooldown)?,
                })
            }
            _ => Err(PlateauStateError::Damaged(format!(
                "expected [lr, best, bad epochs, cooldown], found {v:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: PlateauRules = PlateauRules {
        patience: 1,
        factor: 0.5,
        threshold: 0.1,
        cooldown: 1,
        min_lr: 0.03,
    };

    #[test]
    fn reduces_after_patience_bad_epochs_then_cools_down_and_stops_at_min_lr() {
        // Loss (lower is better), relative threshold 0.1: better means below best · 0.9.
        let mut p = Plateau::new(0.2, false);
        p.epoch_done(&RULES, Some(1.0), false); // best 1.0
        assert_eq!((p.lr, p.best, p.bad_epochs), (0.2, 1.0, 0));
        p.epoch_done(&RULES, Some(0.95), false); // 0.95 ≥ 0.9: bad 1 (≤ patience 1)
        assert_eq!((p.lr, p.best, p.bad_epochs), (0.2, 1.0, 1));
        p.epoch_done(&RULES, Some(0.92), false); // bad 2 > 1: 0.2 · 0.5 = 0.1, cooldown 1
        assert_eq!((p.lr, p.bad_epochs, p.cooldown_left), (0.1, 0, 1));
        p.epoch_done(&RULES, None, false); // bad 1, but cooling down: 0 bad, cooldown 0
        assert_eq!((p.lr, p.bad_epochs, p.cooldown_left), (0.1, 0, 0));
        p.epoch_done(&RULES, Some(0.8), false); // 0.8 < 0.9: best 0.8
        assert_eq!((p.best, p.bad_epochs), (0.8, 0));
        p.epoch_done(&RULES, Some(0.8), false);
        p.epoch_done(&RULES, Some(0.8), false); // reduce: 0.1 · 0.5 = 0.05
        assert_eq!(p.lr, 0.05);
        for _ in 0..3 {
            p.epoch_done(&RULES, Some(0.8), false);
        }
        assert_eq!(p.lr, 0.03, "0.05 · 0.5 = 0.025 stops at min_lr 0.03");
    }

    #[test]
    fn higher_is_better_needs_a_relative_gain_and_the_state_round_trips() {
        let mut p = Plateau::new(0.1, true);
        p.epoch_done(&RULES, Some(0.5), true);
        p.epoch_done(&RULES, Some(0.54), true); // 0.54 ≤ 0.5 · 1.1 = 0.55: bad
        assert_eq!((p.best, p.bad_epochs), (0.5, 1));
        p.epoch_done(&RULES, Some(0.56), true);
        assert_eq!((p.best, p.bad_epochs), (0.56, 0));
        let back = Plateau::from_state(&p.state()).unwrap();
        assert_eq!(back, p);
        let fresh = Plateau::new(0.1, true);
        assert_eq!(Plateau::from_state(&fresh.state()).unwrap(), fresh);
        assert!(matches!(
            Plateau::from_state(&[]),
            Err(PlateauStateError::Missing)
        ));
    }
}
