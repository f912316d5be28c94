//! `assay bench`: training-step and data-loading throughput of a spec's model and batch size.

use std::time::Instant;

use serde::Serialize;

use super::prepare;
use crate::model::Mode;
use crate::spec::Spec;
use crate::train::batches::Inputs;
use crate::train::loader::{self, LoaderConfig};
use crate::train::loss::Objective;
use crate::train::{rng, trainer};

#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub experiment: String,
    pub parameters: usize,
    pub batch_size: usize,
    /// `cpu` or `cuda:N`, and the kernels (`fast`, `generic`).
    pub device: String,
    pub kernels: &'static str,
    pub threads: usize,
    pub steps: usize,
    /// Forward + backward + optimizer step on batches already in memory.
    pub train_images_per_sec: f64,
    /// Threads of the batch loader.
    pub loader_threads: usize,
    /// Training batches the loader delivers from the u8 cache (gather, augment, normalise) with
    /// `loader_threads` threads and no trainer.
    pub load_images_per_sec: f64,
    /// `load_images_per_sec / train_images_per_sec`: how far the loader outruns the trainer.
    pub load_to_train_ratio: f64,
    /// The same training steps fed by the loader, as in a run.
    pub train_with_loader_images_per_sec: f64,
    /// The share of that time the trainer waited for a batch.
    pub data_wait_fraction: f64,
    /// Decoding the data set into the cache (once per run).
    pub decode_images_per_sec: f64,
    /// Resident memory (MiB) with the data decoded, before the network is built.
    pub rss_before_training_mib: f64,
    /// Peak resident memory (MiB) of the process when the training steps are done.
    pub max_rss_after_training_mib: f64,
    /// Page faults per timed training step (fresh memory the step touched).
    pub train_page_faults_per_step: f64,
}

/// The process's resident memory and peak resident memory in MiB, and its page faults so far.
struct Usage {
    rss_mib: f64,
    max_rss_mib: f64,
    page_faults: u64,
}

fn usage() -> Usage {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    Usage {
        rss_mib: rss_kib / 1024.0,
        max_rss_mib: u.ru_maxrss as f64 / 1024.0,
        page_faults: (u.ru_minflt + u.ru_majflt) as u64,
    }
}

pub fn bench(
    spec: &Spec,
    steps: usize,
    threads: usize,
    loader_threads: usize,
    on: crate::devices::JobDevice,
) -> anyhow::Result<BenchResult> {
    let loaded = prepare::load(spec)?;
    let decoded: usize = loaded.reports.iter().map(|r| r.decoded).sum();
    let decode_seconds: f64 = loaded.reports.iter().map(|r| r.seconds).sum();
    let data = prepare::for_job(spec, &loaded, None, None)?;
    let device = crate::devices::open(on, false)?;
    let inputs = Inputs::new(spec, &data.mean, &data.std);
    let objective = Objective::new(spec, &data.classes, &data.train)?;
    let shape = inputs.shape();
    let bs = spec.train.batch_size.min(data.train.len());
    let order: Vec<usize> = (0..data.train.len()).collect();
    let batches: Vec<&[usize]> = order.chunks_exact(bs).collect();
    anyhow::ensure!(
        !batches.is_empty(),
        "the training split has fewer images than one batch"
    );

    // Loading: the loader delivers whole epochs of batches for at least half a second.
    let loader = LoaderConfig::for_threads(loader_threads);
    // Batch k of "epoch 1": augmented and mixed as in training.
    let make = |k: usize| {
        let chunk = batches[k % batches.len()];
        let keys: Vec<u64> = chunk.iter().map(|&i| i as u64).collect();
        inputs.train_batch(&data.train, chunk, &keys, &objective, spec.seed, 1, k)
    };
    let started = Instant::now();
    let mut loaded = 0usize;
    while started.elapsed().as_secs_f64() < 0.5 {
        loaded += loader::with_batches(batches.len().max(64), loader, make, |ready| {
            ready.map(|b| b.indices.len()).sum::<usize>()
        });
    }
    let load_images_per_sec = loaded as f64 / started.elapsed().as_secs_f64();

    // Training: a few warm-up steps, then `steps` timed ones on prepared batches.
    let before_training = usage();
    let net = prepare::build_network(spec, &data, spec.seed, &device)?;
    let prepared: Vec<_> = (0..batches.len().min(16))
        .map(|k| make(k).into_tensors(shape, &device))
        .collect::<candle_core::Result<_>>()?;
    let mut optimizer = trainer::make_optimizer(&spec.optimizer);
    let mut dropout = rng::stream(spec.seed, "dropout", 0);
    let warmup = 3;
    let mut timed = Instant::now();
    let mut faults_at_start = 0;
    for i in 0..warmup + steps {
        if i == warmup {
            timed = Instant::now();
            faults_at_start = usage().page_faults;
        }
        let (x, y) = &prepared[i % prepared.len()];
        let logits = net.forward(x, Mode::Train, &mut dropout)?;
        let loss = objective.loss(&logits, y)?;
        let grads = loss.backward()?;
        optimizer.step(net.params(), &grads, spec.optimizer.lr())?;
    }
    // A GPU runs asynchronously: the clock stops when its queued work is done.
    device.synchronize()?;
    let train_images_per_sec = (steps * bs) as f64 / timed.elapsed().as_secs_f64();
    let after_training = usage();

    // The same steps fed by the loader, as in a run.
    let timed = Instant::now();
    let waited = loader::with_batches(
        steps,
        loader,
        make,
        |ready| -> anyhow::Result<std::time::Duration> {
            for batch in ready.by_ref() {
                let (x, y) = batch.into_tensors(shape, &device)?;
                let logits = net.forward(&x, Mode::Train, &mut dropout)?;
                let loss = objective.loss(&logits, &y)?;
                optimizer.step(net.params(), &loss.backward()?, spec.optimizer.lr())?;
            }
            device.synchronize()?;
            Ok(ready.waited())
        },
    )?;
    let with_loader_seconds = timed.elapsed().as_secs_f64();
    Ok(BenchResult {
        experiment: spec.name.clone(),
        parameters: net.parameter_count(),
        batch_size: bs,
        device: crate::devices::describe(on),
        kernels: crate::model::ops::kernels::on(&device).name(),
        threads,
        steps,
        train_images_per_sec,
        loader_threads: loader.threads,
        load_images_per_sec,
        load_to_train_ratio: load_images_per_sec / train_images_per_sec,
        train_with_loader_images_per_sec: (steps * bs) as f64 / with_loader_seconds,
        data_wait_fraction: waited.as_secs_f64() / with_loader_seconds,
        decode_images_per_sec: decoded as f64 / decode_seconds.max(1e-9),
        rss_before_training_mib: before_training.rss_mib,
        max_rss_after_training_mib: after_training.max_rss_mib,
        train_page_faults_per_step: (after_training.page_faults - faults_at_start) as f64
            / steps.max(1) as f64,
    })
}
