//! Runs batch preparation ahead of the trainer: background threads make batches `0..count` in
//! parallel, at most `ahead` beyond the one being consumed, and hand them over in order.
//!
//! Each batch is a pure function of its number (the caller derives every random choice from the
//! seed, epoch and sample index), so the batches do not depend on the number of threads.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How many threads prepare batches and how far ahead of the trainer they may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoaderConfig {
    pub threads: usize,
    /// Batches prepared beyond the one the trainer is using (at least 1).
    pub ahead: usize,
}

impl LoaderConfig {
    /// `threads` threads, each allowed two batches ahead.
    pub fn for_threads(threads: usize) -> Self {
        LoaderConfig {
            threads: threads.max(1),
            ahead: 2 * threads.max(1),
        }
    }
}

struct State<T> {
    /// The next batch number a thread may take.
    next: usize,
    /// Batches handed to the consumer so far.
    consumed: usize,
    ready: BTreeMap<usize, T>,
    stop: bool,
    /// A thread panicked while making this batch.
    panicked: Option<usize>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled when a batch is ready or a thread panicked.
    made: Condvar,
    /// Signalled when the consumer takes a batch or asks the threads to stop.
    taken: Condvar,
}

/// The batches in order, as they become ready.
pub struct Batches<'s, T> {
    shared: &'s Shared<T>,
    count: usize,
    waited: Duration,
}

impl<T> Batches<'_, T> {
    /// How long the consumer has waited for batches that were not ready yet.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl<T> Iterator for Batches<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        let mut s = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.consumed >= self.count {
            return None;
        }
        let wanted = s.consumed;
        let started = Instant::now();
        let mut waited = false;
        loop {
            if let Some(batch) = s.ready.remove(&wanted) {
                s.consumed += 1;
                self.shared.taken.notify_all();
                if waited {
                    self.waited += started.elapsed();
                }
                return Some(batch);
            }
            if let Some(k) = s.panicked {
                drop(s);
                panic!("the batch loader thread preparing batch {k} panicked");
            }
            waited = true;
            s = self.shared.made.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Calls `body` with the batches `make(0), make(1), …, make(count - 1)` in order, made on
/// `config.threads` background threads. When `body` returns (also early), the threads stop after
/// the batch they are making; nothing is left running.
///
/// # Panics
/// If `make` panics, the panic is reported to `body` as a panic of its own when it reaches that
/// batch.
pub fn with_batches<T, R>(
    count: usize,
    config: LoaderConfig,
    make: impl Fn(usize) -> T + Sync,
    body: impl FnOnce(&mut Batches<'_, T>) -> R,
) -> R
where
    T: Send,
{
    let shared = Shared {
        state: Mutex::new(State {
            next: 0,
            consumed: 0,
            ready: BTreeMap::new(),
            stop: false,
            panicked: None,
        }),
        made: Condvar::new(),
        taken: Condvar::new(),
    };
    let ahead = config.ahead.max(1);
    let worker = || loop {
        let k = {
            let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while !s.stop && s.next < count && s.next > s.consumed + ahead {
                s = shared.taken.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            if s.stop || s.next >= count {
                return;
            }
            s.next += 1;
            s.next - 1
        };
        let made = panic::catch_unwind(AssertUnwindSafe(|| make(k)));
        let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        match made {
            Ok(batch) => {
                s.ready.insert(k, batch);
            }
            Err(_) => {
                s.panicked.get_or_insert(k);
                s.stop = true;
            }
        }
        shared.made.notify_all();
    };
    std::thread::scope(|scope| {
        for _ in 0..config.threads.max(1).min(count.max(1)) {
            scope.spawn(worker);
        }
        let mut batches = Batches {
            shared: &shared,
            count,
            waited: Duration::ZERO,
        };
        // Stop the threads however `body` ends, a panic included, so the scope can join them.
        struct StopOnDrop<'a, T>(&'a Shared<T>);
        impl<T> Drop for StopOnDrop<'_, T> {
            fn drop(&mut self) {
                let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
                s.stop = true;
                self.0.taken.notify_all();
            }
        }
        let _stop = StopOnDrop(&shared);
        body(&mut batches)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn config(threads: usize, ahead: usize) -> LoaderConfig {
        LoaderConfig { threads, ahead }
    }

    #[test]
    fn batches_arrive_in_order_whatever_the_thread_count() {
        // Later batches are quicker to make, so threads finish out of order.
        let make = |k: usize| {
            std::thread::sleep(Duration::from_micros(((20 - k % 20) * 50) as u64));
            (k, k * k)
        };
        for threads in [1, 2, 4, 7] {
            let got: Vec<_> = with_batches(50, config(threads, 3), make, |b| b.collect());
            let want: Vec<_> = (0..50).map(|k| (k, k * k)).collect();
            assert_eq!(got, want, "{threads} thread(s)");
        }
    }

    #[test]
    fn threads_run_at_most_ahead_batches_beyond_the_consumer() {
        let made = AtomicUsize::new(0);
        let ahead = 2;
        with_batches(
            100,
            config(4, ahead),
            |k| {
                made.fetch_add(1, Ordering::SeqCst);
                k
            },
            |b| {
                for k in 0..10 {
                    assert_eq!(b.next(), Some(k));
                    std::thread::sleep(Duration::from_millis(2));
                    // Taken: 0..=k; in the making at most up to consumed + ahead.
                    let m = made.load(Ordering::SeqCst);
                    assert!(m <= k + 2 + ahead, "made {m} after taking {}", k + 1);
                }
            },
        );
    }

    #[test]
    fn stopping_early_leaves_nothing_running() {
        let made = AtomicUsize::new(0);
        let first: Vec<usize> = with_batches(
            1000,
            config(3, 4),
            |k| {
                made.fetch_add(1, Ordering::SeqCst);
                k
            },
            |b| b.take(5).collect(),
        );
        assert_eq!(first, vec![0, 1, 2, 3, 4]);
        let m = made.load(Ordering::SeqCst);
        assert!(
            m < 20,
            "the threads stopped soon after the consumer ({m} made)"
        );
    }

    #[test]
    fn no_batches_and_an_empty_body_are_fine() {
        let got: Vec<usize> = with_batches(0, config(4, 2), |k| k, |b| b.collect());
        assert!(got.is_empty());
        with_batches(10, config(2, 2), |k| k, |_| ());
    }

    #[test]
    fn a_panic_while_making_a_batch_reaches_the_consumer() {
        let result = panic::catch_unwind(|| {
            with_batches(
                10,
                config(2, 2),
                |k| {
                    assert!(k != 3, "bad batch");
                    k
                },
                |b| b.collect::<Vec<_>>(),
            )
        });
        let message = result.unwrap_err();
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(text.contains("batch 3"), "{text}");
    }

    #[test]
    fn waiting_for_slow_batches_is_measured() {
        with_batches(
            3,
            config(1, 1),
            |k| {
                std::thread::sleep(Duration::from_millis(20));
                k
            },
            |b| {
                let all: Vec<_> = b.by_ref().collect();
                assert_eq!(all, vec![0, 1, 2]);
                assert!(b.waited() >= Duration::from_millis(20));
            },
        );
    }
}
