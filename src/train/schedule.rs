//! Learning-rate schedules: the rate for a given optimizer step, from the spec. Pure.
//!
//! Each schedule runs on its own clock, which starts when the warm-up ends: with `W =
//! warmup_epochs` and `t` the fractional epochs elapsed (`step / steps_per_epoch`), the schedule
//! sees `τ = t − W` epochs, and the schedules that span the run (cosine, one_cycle) span the
//! `epochs − W` epochs left. During the warm-up (`t < W`) the rate rises linearly from 0 to the
//! schedule's rate at `τ = 0` over its `n = ⌈W · steps_per_epoch⌉` steps: step `k < n` gets
//! `lr(τ=0) · (k + 1) / n`, so the last warm-up step reaches the schedule's first rate.
//! The formulas are those of torch.optim.lr_scheduler where it has the schedule:
//! - constant: `base`.
//! - cosine: `min + (base − min) · (1 + cos(π τ / (epochs − W))) / 2` (CosineAnnealingLR, per step).
//! - step: `base · γ^⌊τ / every_epochs⌋` (StepLR).
//! - multistep: `base · γ^(number of milestones m ≤ τ)` (MultiStepLR).
//! - exponential: `base · γ^⌊τ⌋` (ExponentialLR, per epoch).
//! - cosine_restarts: CosineAnnealingWarmRestarts with fractional epochs: cycle `i` lasts
//!   `T_i = t0 · t_mult^i` epochs; within it, `min + (base − min) · (1 + cos(π T_cur / T_i)) / 2`.
//! - one_cycle: OneCycleLR (`three_phase = false`) over the `N` steps after the warm-up, from
//!   `max_lr / div_factor` up to `max_lr` until step `pct_start · N − 1`, then down to
//!   `max_lr / (div_factor · final_div_factor)` at step `N − 1`, each phase annealed by a half
//!   cosine or a straight line.
//! - reduce_on_plateau: the plateau's current rate (`crate::train::plateau`), passed as `base`.

use std::f64::consts::PI;

use crate::spec::{Anneal, ScheduleKind, ScheduleSpec};

/// The learning rate at `step` (0-based, counting optimizer steps over the whole run). `base_lr`
/// is the optimizer's rate, or for reduce_on_plateau the plateau's current rate.
pub fn learning_rate(
    schedule: &ScheduleSpec,
    base_lr: f64,
    step: usize,
    steps_per_epoch: usize,
    epochs: usize,
) -> f64 {
    let spe = steps_per_epoch.max(1) as f64;
    let t = step as f64 / spe; // epochs elapsed, fractional
    let warmup = schedule.warmup_epochs;
    // The warm-up's steps: those with t < W.
    let first = (warmup * spe).ceil() as usize;
    if step < first {
        let target = scheduled(schedule, base_lr, 0, 0.0, steps_per_epoch, epochs);
        // Divided by W·steps_per_epoch, not by the step count: with a fractional W·spe the last
        // warm-up step ends a little above the target (kept, so that earlier results stand).
        return target * (step as f64 + 1.0) / (warmup * spe).max(1.0);
    }
    scheduled(
        schedule,
        base_lr,
        step.saturating_sub(first),
        t - warmup,
        steps_per_epoch,
        epochs,
    )
}

/// The schedule's rate on its own clock: `s` steps and `tau` fractional epochs after warm-up.
fn scheduled(
    schedule: &ScheduleSpec,
    base_lr: f64,
    s: usize,
    tau: f64,
    steps_per_epoch: usize,
    epochs: usize,
) -> f64 {
    let warmup = schedule.warmup_epochs;
    match schedule.kind {
        ScheduleKind::Constant | ScheduleKind::ReduceOnPlateau { .. } => base_lr,
        ScheduleKind::Cosine { min_lr } => {
            let span = (epochs as f64 - warmup).max(f64::MIN_POSITIVE);
            let progress = (tau / span).clamp(0.0, 1.0);
            min_lr + (base_lr - min_lr) * 0.5 * (1.0 + (PI * progress).cos())
        }
        ScheduleKind::Step {
            every_epochs,
            gamma,
        } => {
            let drops = (tau / every_epochs as f64).floor().max(0.0);
            base_lr * gamma.powf(drops)
        }
        ScheduleKind::Multistep {
            ref milestones,
            gamma,
        } => {
            let passed = milestones.iter().filter(|&&m| m as f64 <= tau).count();
            base_lr * gamma.powi(passed as i32)
        }
        ScheduleKind::Exponential { gamma } => base_lr * gamma.powf(tau.floor().max(0.0)),
        ScheduleKind::CosineRestarts { t0, t_mult, min_lr } => {
            let (t_cur, t_i) = restart_cycle(tau.max(0.0), t0 as f64, t_mult);
            min_lr + (base_lr - min_lr) * 0.5 * (1.0 + (PI * t_cur / t_i).cos())
        }
        ScheduleKind::OneCycle {
            max_lr,
            pct_start,
            div_factor,
            final_div_factor,
            anneal,
        } => {
            let first = (warmup * steps_per_epoch.max(1) as f64).ceil() as usize;
            let total = (epochs * steps_per_epoch.max(1)).saturating_sub(first);
            one_cycle(
                s,
                total,
                max_lr,
                pct_start,
                div_factor,
                final_div_factor,
                anneal,
            )
        }
    }
}

/// Where `tau` epochs fall in CosineAnnealingWarmRestarts' cycles: (epochs into the cycle, its
/// length).
fn restart_cycle(tau: f64, t0: f64, t_mult: usize) -> (f64, f64) {
    if t_mult == 1 {
        return (tau % t0, t0);
    }
    let (mut t_cur, mut t_i) = (tau, t0);
    while t_cur >= t_i {
        t_cur -= t_i;
        t_i *= t_mult as f64;
    }
    (t_cur, t_i)
}

/// torch's OneCycleLR (two phases) at step `s` of `total`.
fn one_cycle(
    s: usize,
    total: usize,
    max_lr: f64,
    pct_start: f64,
    div_factor: f64,
    final_div_factor: f64,
    anneal: Anneal,
) -> f64 {
    let initial = max_lr / div_factor;
    let min = initial / final_div_factor;
    let s = s as f64;
    let peak = pct_start * total as f64 - 1.0;
    let last = total as f64 - 1.0;
    let (start, end, from, to) = if s <= peak {
        (0.0, peak, initial, max_lr)
    } else {
        (peak, last, max_lr, min)
    };
    let pct = if end > start {
        ((s - start) / (end - start)).min(1.0)
    } else {
        1.0
    };
    match anneal {
        Anneal::Cos => to + (from - to) / 2.0 * ((PI * pct).cos() + 1.0),
        Anneal::Linear => (to - from) * pct + from,
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

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12 * b.abs().max(1e-3)
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

    #[test]
    fn one_cycle_rises_to_max_then_falls_to_min() {
        // 10 epochs × 10 steps = 100 steps; max 1.0, div 25 → initial 0.04; final div 1e4 →
        // min 4e-6. pct_start 0.3: the peak is at step 0.3·100 − 1 = 29.
        let kind = |anneal| ScheduleKind::OneCycle {
            max_lr: 1.0,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            anneal,
        };
        let s = spec(kind(Anneal::Cos), 0.0);
        assert!(close(learning_rate(&s, 0.5, 0, 10, 10), 0.04));
        assert!(close(learning_rate(&s, 0.5, 29, 10, 10), 1.0));
        assert!(close(learning_rate(&s, 0.5, 99, 10, 10), 4e-6));
        // Step 14.5 would be half-way up; step 64 is half-way down: (29 + 99) / 2 = 64 →
        // 4e-6 + (1 − 4e-6)/2 · (cos(π/2) + 1) = 0.500002.
        assert!(close(learning_rate(&s, 0.5, 64, 10, 10), 0.500002));
        // Step 10 on the way up: pct = 10/29; 1 + (0.04 − 1)/2 · (cos(π·10/29) + 1).
        let up = 1.0 + (0.04 - 1.0) / 2.0 * ((PI * 10.0 / 29.0).cos() + 1.0);
        assert!(close(learning_rate(&s, 0.5, 10, 10, 10), up));
        // Linear: step 10 is 10/29 of the way from 0.04 to 1.
        let lin = spec(kind(Anneal::Linear), 0.0);
        assert!(close(
            learning_rate(&lin, 0.5, 10, 10, 10),
            0.04 + 0.96 * 10.0 / 29.0
        ));
        // Step 64 of the linear fall: 1 + (4e-6 − 1) · 35/70 = 0.500002.
        assert!(close(learning_rate(&lin, 0.5, 64, 10, 10), 0.500002));
    }

    #[test]
    fn one_cycle_after_warmup_starts_its_cycle_at_the_end_of_it() {
        // 2 warm-up epochs of 10 steps, then 8 · 10 = 80 steps of cycle: peak at 0.3·80 − 1 = 23.
        let s = spec(
            ScheduleKind::OneCycle {
                max_lr: 1.0,
                pct_start: 0.3,
                div_factor: 25.0,
                final_div_factor: 1e4,
                anneal: Anneal::Linear,
            },
            2.0,
        );
        // Warm-up to the cycle's first rate, 0.04: step 4 is 5/20 of it → 0.01.
        assert!(close(learning_rate(&s, 0.5, 4, 10, 10), 0.01));
        assert!(close(learning_rate(&s, 0.5, 19, 10, 10), 0.04));
        assert!(close(learning_rate(&s, 0.5, 20, 10, 10), 0.04));
        assert!(close(learning_rate(&s, 0.5, 20 + 23, 10, 10), 1.0));
        assert!(close(learning_rate(&s, 0.5, 99, 10, 10), 4e-6));
    }

    #[test]
    fn multistep_drops_at_each_milestone() {
        let s = spec(
            ScheduleKind::Multistep {
                milestones: vec![2, 5],
                gamma: 0.1,
            },
            0.0,
        );
        // 4 steps an epoch: epoch 2 begins at step 8, epoch 5 at step 20.
        assert_eq!(learning_rate(&s, 0.5, 7, 4, 8), 0.5);
        assert!(close(learning_rate(&s, 0.5, 8, 4, 8), 0.05));
        assert!(close(learning_rate(&s, 0.5, 19, 4, 8), 0.05));
        assert!(close(learning_rate(&s, 0.5, 20, 4, 8), 0.005));
        // With 1 warm-up epoch the milestones count from its end: epoch 2 after it is step 12.
        let w = spec(s.kind.clone(), 1.0);
        assert!(close(learning_rate(&w, 0.5, 1, 4, 8), 0.5 * 2.0 / 4.0));
        assert_eq!(learning_rate(&w, 0.5, 11, 4, 8), 0.5);
        assert!(close(learning_rate(&w, 0.5, 12, 4, 8), 0.05));
    }

    #[test]
    fn exponential_multiplies_every_epoch() {
        let s = spec(ScheduleKind::Exponential { gamma: 0.5 }, 0.0);
        // 0.2 · 0.5^⌊t⌋ with 5 steps an epoch: step 4 → epoch 0, step 5 → 1, step 17 → 3.
        assert_eq!(learning_rate(&s, 0.2, 4, 5, 6), 0.2);
        assert_eq!(learning_rate(&s, 0.2, 5, 5, 6), 0.1);
        assert_eq!(learning_rate(&s, 0.2, 17, 5, 6), 0.025);
        // Half an epoch of warm-up: t < 0.5 for ⌈2.5⌉ = 3 steps, step k at 0.2 · (k + 1) / 2.5:
        // step 1 is 0.16, step 2 is 0.24 (the ramp divides by W·spe = 2.5, so its last step ends
        // above the target); from step 3 (t = 0.6, τ = 0.1) the schedule's epoch 0; step 18
        // (t = 3.6, τ = 3.1) → 0.2 · 0.5³ = 0.025.
        let w = spec(ScheduleKind::Exponential { gamma: 0.5 }, 0.5);
        assert!(close(learning_rate(&w, 0.2, 1, 5, 6), 0.16));
        assert!(close(learning_rate(&w, 0.2, 2, 5, 6), 0.24));
        assert_eq!(learning_rate(&w, 0.2, 3, 5, 6), 0.2);
        assert_eq!(learning_rate(&w, 0.2, 18, 5, 6), 0.025);
    }

    #[test]
    fn cosine_restarts_follow_growing_cycles() {
        // t0 = 2, t_mult = 2: cycles of 2, 4, 8 epochs starting at epochs 0, 2, 6.
        let s = spec(
            ScheduleKind::CosineRestarts {
                t0: 2,
                t_mult: 2,
                min_lr: 0.0,
            },
            0.0,
        );
        // 10 steps an epoch. Step 10: 1 epoch into the 2-epoch cycle → 1·(1 + cos(π/2))/2 = 0.5.
        assert!(close(learning_rate(&s, 1.0, 10, 10, 14), 0.5));
        // Step 20: epoch 2, a restart → 1.
        assert!(close(learning_rate(&s, 1.0, 20, 10, 14), 1.0));
        // Step 50: epoch 5, 3 epochs into the 4-epoch cycle → (1 + cos(3π/4))/2.
        let v = (1.0 + (3.0 * PI / 4.0).cos()) / 2.0;
        assert!(close(learning_rate(&s, 1.0, 50, 10, 14), v));
        // Step 65: epoch 6.5, 0.5 into the 8-epoch cycle → (1 + cos(π/16))/2.
        let v = (1.0 + (PI / 16.0).cos()) / 2.0;
        assert!(close(learning_rate(&s, 1.0, 65, 10, 14), v));
        // t_mult = 1 with a floor: cycles of 3 epochs; epoch 4.5 is 1.5 into the second one →
        // 0.1 + 0.9 · (1 + cos(π/2))/2 = 0.55.
        let flat = spec(
            ScheduleKind::CosineRestarts {
                t0: 3,
                t_mult: 1,
                min_lr: 0.1,
            },
            0.0,
        );
        assert!(close(learning_rate(&flat, 1.0, 45, 10, 9), 0.55));
    }

    #[test]
    fn reduce_on_plateau_takes_the_plateau_rate_and_warms_up_to_it() {
        let s = spec(
            ScheduleKind::ReduceOnPlateau {
                patience: 1,
                factor: 0.5,
                threshold: 1e-4,
                cooldown: 0,
                min_lr: 0.0,
            },
            1.0,
        );
        // Warm-up over 4 steps to the plateau's rate 0.02: step 0 → 0.005.
        assert!(close(learning_rate(&s, 0.02, 0, 4, 5), 0.005));
        assert_eq!(learning_rate(&s, 0.02, 9, 4, 5), 0.02);
    }
}
