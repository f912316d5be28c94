//! Scheduling decisions, apart from side effects: how many jobs run side by side with how many
//! threads each, which job starts next, and successive-halving verdicts at rungs. Pure.

use crate::devices::JobDevice;
use crate::plan::Plan;
use crate::store::ledger::{JobState, Ledger, Rung, RungScore};

/// Parallel slots and the threads each job gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slots {
    pub jobs: usize,
    pub threads_per_job: usize,
}

/// `jobs` slots sharing `threads` CPU threads (at least one each). Without an explicit `jobs`,
/// as many single-threaded jobs run side by side as there are threads (at most `pending`): on a
/// few cores a small model gains little from a second thread (about 10–20%, see
/// `scripts/bench-sweep.sh`), while a second job nearly doubles a sweep's throughput.
pub fn slots(jobs: Option<usize>, threads: usize, pending: usize) -> Slots {
    let jobs = jobs.unwrap_or_else(|| threads.min(pending)).max(1);
    Slots {
        jobs,
        threads_per_job: (threads / jobs).max(1),
    }
}

/// Slots for jobs on GPUs: `capacity` device slots (devices × jobs per device), cut to `jobs`
/// when given and to the `pending` jobs; the CPU threads are split among them (each job's
/// batch loading and host work).
pub fn gpu_slots(jobs: Option<usize>, threads: usize, pending: usize, capacity: usize) -> Slots {
    let jobs = jobs
        .unwrap_or(capacity)
        .min(capacity)
        .min(pending.max(1))
        .max(1);
    Slots {
        jobs,
        threads_per_job: (threads / jobs).max(1),
    }
}

/// Which device each starting job goes to: every device takes at most `per_device` jobs at
/// once, and a job goes to the least busy one (the first listed on ties).
#[derive(Clone, Debug)]
pub struct DevicePool {
    per_device: usize,
    busy: Vec<(JobDevice, usize)>,
}

impl DevicePool {
    pub fn new(devices: &[JobDevice], per_device: usize) -> Self {
        DevicePool {
            per_device: per_device.max(1),
            busy: devices.iter().map(|&d| (d, 0)).collect(),
        }
    }

    /// Jobs that can start now.
    pub fn free(&self) -> usize {
        self.busy
            .iter()
            .map(|(_, n)| self.per_device.saturating_sub(*n))
            .sum()
    }

    /// A device for a starting job, or `None` when every device is full.
    pub fn take(&mut self) -> Option<JobDevice> {
        let per_device = self.per_device;
        let (device, n) = self
            .busy
            .iter_mut()
            .filter(|(_, n)| *n < per_device)
            .min_by_key(|(_, n)| *n)?;
        *n += 1;
        Some(*device)
    }

    /// A job on `device` ended.
    pub fn give_back(&mut self, device: JobDevice) {
        if let Some((_, n)) = self.busy.iter_mut().find(|(d, _)| *d == device) {
            *n = n.saturating_sub(1);
        }
    }
}

/// How many of `wanted` jobs can run side by side in `memory` bytes when each needs `per_job`
/// bytes and the orchestrator holds `shared` bytes (at most 90% of the machine is planned for);
/// `None` when not even one fits.
pub fn jobs_that_fit(wanted: usize, per_job: u64, shared: u64, memory: u64) -> Option<usize> {
    let budget = (memory / 10 * 9).checked_sub(shared)?;
    let fit = budget / per_job.max(1);
    (fit >= 1).then(|| wanted.min(fit.min(usize::MAX as u64) as usize))
}

/// The next pending jobs to start, in plan order (trial by trial, fold by fold), at most `free`;
/// jobs stopped on request wait for a user's `assay run`.
pub fn next_jobs(plan: &Plan, ledger: &Ledger, free: usize) -> Vec<String> {
    plan.jobs
        .iter()
        .filter(|j| {
            ledger
                .jobs
                .get(&j.id)
                .is_some_and(|e| e.state == JobState::Pending && !e.stopped)
        })
        .take(free)
        .map(|j| j.id.clone())
        .collect()
}

/// The mean score of each trial at a rung, over the jobs (folds, repeats) that reached it.
fn trial_means(rung: &Rung) -> Vec<(usize, f64)> {
    let mut sums: std::collections::BTreeMap<usize, (f64, usize)> = Default::default();
    for s in rung.values() {
        let e = sums.entry(s.trial).or_default();
        e.0 += s.score;
        e.1 += 1;
    }
    sums.into_iter()
        .map(|(t, (sum, n))| (t, sum / n as f64))
        .collect()
}

/// ASHA's rule, aware of folds: record `score` for `job` of `trial` at this rung, then let it go
/// on only if its trial's mean is among the best ⌈trials / reduction_factor⌉ trial means there.
/// A job that already has a verdict at this rung keeps it (decisions survive crashes).
pub fn rung_verdict(
    rung: &mut Rung,
    job: &str,
    trial: usize,
    score: f64,
    reduction_factor: usize,
    higher_is_better: bool,
) -> bool {
    if let Some(existing) = rung.get(job) {
        return existing.promoted;
    }
    rung.insert(
        job.to_string(),
        RungScore {
            trial,
            score,
            promoted: false,
        },
    );
    let mut means = trial_means(rung);
    means.sort_by(|a, b| {
        if higher_is_better {
            b.1.total_cmp(&a.1)
        } else {
            a.1.total_cmp(&b.1)
        }
    });
    let keep = means.len().div_ceil(reduction_factor.max(2));
    let promoted = means.iter().take(keep).any(|(t, _)| *t == trial);
    if let Some(entry) = rung.get_mut(job) {
        entry.promoted = promoted;
    }
    promoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_jobs_are_cut_to_what_fits_in_memory() {
        let gib = 1u64 << 30;
        assert_eq!(jobs_that_fit(4, gib, gib, 10 * gib), Some(4));
        assert_eq!(jobs_that_fit(8, 2 * gib, gib, 10 * gib), Some(4));
        assert_eq!(jobs_that_fit(8, 3 * gib, gib, 10 * gib), Some(2));
        assert_eq!(jobs_that_fit(2, 9 * gib, gib, 10 * gib), None);
        assert_eq!(jobs_that_fit(2, gib, 10 * gib, 10 * gib), None);
    }

    #[test]
    fn threads_are_divided_between_slots() {
        let s = |jobs, threads_per_job| Slots {
            jobs,
            threads_per_job,
        };
        assert_eq!(slots(Some(2), 2, 12), s(2, 1));
        assert_eq!(slots(Some(1), 2, 12), s(1, 2));
        assert_eq!(slots(Some(4), 2, 12), s(4, 1));
        assert_eq!(slots(Some(0), 8, 12), s(1, 8));
    }

    #[test]
    fn by_default_every_thread_runs_its_own_job() {
        let s = |jobs, threads_per_job| Slots {
            jobs,
            threads_per_job,
        };
        assert_eq!(slots(None, 2, 12), s(2, 1));
        assert_eq!(slots(None, 16, 4), s(4, 4), "no more slots than jobs");
        assert_eq!(slots(None, 2, 1), s(1, 2), "a single job gets every thread");
        assert_eq!(slots(None, 4, 0), s(1, 4));
    }

    #[test]
    fn gpu_jobs_fill_every_device_up_to_its_share_and_split_the_threads() {
        let s = |jobs, threads_per_job| Slots {
            jobs,
            threads_per_job,
        };
        assert_eq!(gpu_slots(None, 16, 12, 4), s(4, 4));
        assert_eq!(
            gpu_slots(Some(8), 16, 12, 4),
            s(4, 4),
            "no more than the devices take"
        );
        assert_eq!(gpu_slots(Some(2), 16, 12, 4), s(2, 8));
        assert_eq!(gpu_slots(None, 16, 1, 4), s(1, 16));
        assert_eq!(gpu_slots(None, 2, 12, 4), s(4, 1));
    }

    #[test]
    fn the_device_pool_places_jobs_on_the_least_busy_device_and_never_over_its_share() {
        use JobDevice::Cuda;
        let mut pool = DevicePool::new(&[Cuda(0), Cuda(1)], 2);
        assert_eq!(pool.free(), 4);
        let taken: Vec<_> = (0..4).map(|_| pool.take().unwrap()).collect();
        assert_eq!(taken, [Cuda(0), Cuda(1), Cuda(0), Cuda(1)]);
        assert_eq!((pool.take(), pool.free()), (None, 0));
        pool.give_back(Cuda(1));
        assert_eq!((pool.free(), pool.take()), (1, Some(Cuda(1))));
        pool.give_back(Cuda(0));
        pool.give_back(Cuda(0));
        assert_eq!(pool.take(), Some(Cuda(0)));
        assert_eq!(pool.take(), Some(Cuda(0)));
        assert_eq!(pool.take(), None);
    }

    #[test]
    fn asha_keeps_the_top_third_by_trial_mean_over_folds() {
        let mut rung = Rung::new();
        // The first trial to arrive always goes on.
        assert!(rung_verdict(&mut rung, "a0", 0, 0.5, 3, true));
        // A worse second trial: 2 trials, keep ⌈2/3⌉ = 1, trial 0 leads.
        assert!(!rung_verdict(&mut rung, "b0", 1, 0.4, 3, true));
        // A better third trial goes on.
        assert!(rung_verdict(&mut rung, "c0", 2, 0.9, 3, true));
        // Trial 0's second fold is poor: its mean drops to 0.3, below trial 2.
        assert!(!rung_verdict(&mut rung, "a1", 0, 0.1, 3, true));
        // A verdict once given is kept.
        assert!(rung_verdict(&mut rung, "a0", 0, 0.0, 3, true));
        // Lower is better for losses.
        let mut loss = Rung::new();
        assert!(rung_verdict(&mut loss, "x", 0, 1.0, 2, false));
        assert!(rung_verdict(&mut loss, "y", 1, 0.5, 2, false));
        assert!(!rung_verdict(&mut loss, "z", 2, 2.0, 2, false));
    }
}
