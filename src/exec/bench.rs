//! `assay bench`: training-step and data-loading throughput of a spec's model and batch size.

use std::time::Instant;

use candle_core::Device;
use serde::Serialize;

use super::prepare;
use crate::model::Mode;
use crate::spec::Spec;
use crate::train::batches::{make_batch, Normalizer};
use crate::train::{rng, trainer};

#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub experiment: String,
    pub parameters: usize,
    pub batch_size: usize,
    pub threads: usize,
    pub steps: usize,
    /// Forward + backward + optimizer step on batches already in memory.
    pub train_images_per_sec: f64,
    /// Batches assembled from the u8 cache (gather, normalise, tensor).
    pub load_images_per_sec: f64,
    /// Decoding the data set into the cache (once per run).
    pub decode_images_per_sec: f64,
}

pub fn bench(spec: &Spec, steps: usize, threads: usize) -> anyhow::Result<BenchResult> {
    let loaded = prepare::load(spec)?;
    let decoded: usize = loaded.reports.iter().map(|r| r.decoded).sum();
    let decode_seconds: f64 = loaded.reports.iter().map(|r| r.seconds).sum();
    let data = prepare::for_job(spec, &loaded, None, None)?;
    let device = Device::Cpu;
    let norm = Normalizer::new(&data.mean, &data.std);
    let bs = spec.train.batch_size.min(data.train.len());
    let order: Vec<usize> = (0..data.train.len()).collect();
    let batches: Vec<&[usize]> = order.chunks_exact(bs).collect();
    anyhow::ensure!(
        !batches.is_empty(),
        "the training split has fewer images than one batch"
    );

    // Loading: assemble batches for at least half a second.
    let started = Instant::now();
    let mut loaded = 0usize;
    while started.elapsed().as_secs_f64() < 0.5 {
        for chunk in batches.iter().take(64) {
            let (x, _) = make_batch(&data.train, chunk, &norm, &device)?;
            loaded += x.dim(0)?;
        }
    }
    let load_images_per_sec = loaded as f64 / started.elapsed().as_secs_f64();

    // Training: a few warm-up steps, then `steps` timed ones on prepared batches.
    let net = prepare::build_network(spec, &data, spec.seed, &device)?;
    let objective = crate::train::loss::Objective::new(spec, &data.classes, &data.train);
    let prepared: Vec<_> = batches
        .iter()
        .take(16)
        .map(|c| {
            let (x, _) = make_batch(&data.train, c, &norm, &device)?;
            Ok((x, objective.targets(&data.train, c, &device)?))
        })
        .collect::<candle_core::Result<_>>()?;
    let mut optimizer = trainer::make_optimizer(&spec.optimizer);
    let mut dropout = rng::stream(spec.seed, "dropout", 0);
    let warmup = 3;
    let mut timed = Instant::now();
    for i in 0..warmup + steps {
        if i == warmup {
            timed = Instant::now();
        }
        let (x, y) = &prepared[i % prepared.len()];
        let logits = net.forward(x, Mode::Train, &mut dropout)?;
        let loss = objective.loss(&logits, y)?;
        let grads = loss.backward()?;
        optimizer.step(net.params(), &grads, spec.optimizer.lr())?;
    }
    let train_images_per_sec = (steps * bs) as f64 / timed.elapsed().as_secs_f64();
    Ok(BenchResult {
        experiment: spec.name.clone(),
        parameters: net.parameter_count(),
        batch_size: bs,
        threads,
        steps,
        train_images_per_sec,
        load_images_per_sec,
        decode_images_per_sec: decoded as f64 / decode_seconds.max(1e-9),
    })
}
