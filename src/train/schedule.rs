//! Learning-rate schedules: the rate for a given optimizer step, from the spec. Pure.

use crate::spec::{ScheduleKind, ScheduleSpec};

/// The learning rate at `step` (0-based, counting optimizer steps over the whole run).
pub fn learning_rate(
    schedule: &ScheduleSpec,
    base_lr: f64,
    step: usize,
    steps_per_epoch: usize,
    epochs: usize,
) -> f64 {
    let steps_per_epoch = steps_per_epoch.max(1) as f64;
    let t = step as f64 / steps_per_epoch; // epochs elapsed, fractional
    let warmup = schedule.warmup_epochs;
    if t < warmup {
        return base_lr * (step as f64 + 1.0) / (warmup * steps_per_epoch).max(1.0);
    }
    match schedule.kind {
        ScheduleKind::Constant => base_lr,
        ScheduleKind::Cosine { min_lr } => {
            let span = (epochs as f64 - warmup).max(f64::MIN_POSITIVE);
            let progress = ((t - warmup) / span).clamp(0.0, 1.0);
            min_lr + (base_lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
        ScheduleKind::Step {
            every_epochs,
            gamma,
        } => {
            let drops = ((t - warmup) / every_epochs as f64).floor().max(0.0);
            base_lr * gamma.powf(drops)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ScheduleKind, warmup: f64) -> ScheduleSpec {
        ScheduleSpec {
            kind,
            warmup_epochs: warmup,
        }
    }

    #[test]
    fn constant_with_warmup_ramps_linearly() {
        let s = spec(ScheduleKind::Constant, 1.0);
        assert!((learning_rate(&s, 0.1, 0, 10, 5) - 0.01).abs() < 1e-12);
        assert!((learning_rate(&s, 0.1, 9, 10, 5) - 0.1).abs() < 1e-12);
        assert_eq!(learning_rate(&s, 0.1, 30, 10, 5), 0.1);
    }

    #[test]
    fn cosine_goes_from_base_to_min() {
        let s = spec(ScheduleKind::Cosine { min_lr: 0.001 }, 0.0);
        assert!((learning_rate(&s, 0.1, 0, 10, 4) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&s, 0.1, 20, 10, 4) - 0.0505).abs() < 1e-12);
        assert!((learning_rate(&s, 0.1, 40, 10, 4) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn step_decays_every_n_epochs() {
        let s = spec(
            ScheduleKind::Step {
                every_epochs: 2,
                gamma: 0.5,
            },
            0.0,
        );
        assert_eq!(learning_rate(&s, 0.1, 19, 10, 6), 0.1);
        assert_eq!(learning_rate(&s, 0.1, 20, 10, 6), 0.05);
        assert_eq!(learning_rate(&s, 0.1, 45, 10, 6), 0.025);
    }
}
