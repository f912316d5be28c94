//! How many jobs fit in memory side by side: on this machine (its memory) or in a Slurm task
//! (what `slurm.mem` asks for). Refused before anything is written when not one fits.

use super::prepare;
use super::refused::RunRefused;
use super::scheduler;
use crate::model::cost::{for_model, human_bytes, machine_memory};
use crate::plan::Plan;

/// How many jobs fit side by side in the machine's memory, and what each needs.
#[derive(Clone, Debug)]
pub struct MemoryFit {
    pub jobs: usize,
    pub each: String,
}

/// How many jobs fit in the machine's memory at once: each worker holds its own copy of the
/// decoded data beside what its model needs to train (the largest of the plan's), and the
/// orchestrator holds one more copy of the data. Refused before anything is written when not
/// even one job fits; `None` when the machine's memory is unknown.
pub fn fit_in_memory(
    plan: &Plan,
    data: &prepare::LoadedData,
) -> Result<Option<MemoryFit>, RunRefused> {
    let Some(memory) = machine_memory() else {
        return Ok(None);
    };
    let (training, data_bytes) = largest_job(plan, data);
    let per_job = training.saturating_add(data_bytes);
    let each = format!(
        "each needs about {} ({} to train its model, {} for its copy of the decoded data) of the machine's {}",
        human_bytes(per_job),
        human_bytes(training),
        human_bytes(data_bytes),
        human_bytes(memory)
    );
    match scheduler::jobs_that_fit(usize::MAX, per_job, data_bytes, memory) {
        Some(jobs) => Ok(Some(MemoryFit { jobs, each })),
        None => Err(RunRefused::Memory {
            need: human_bytes(per_job.saturating_add(data_bytes)),
            model: human_bytes(training),
            data: human_bytes(data_bytes),
            have: human_bytes(memory),
        }),
    }
}

/// The largest of the plan's jobs: bytes to train its model, and the decoded data's bytes.
fn largest_job(plan: &Plan, data: &prepare::LoadedData) -> (u64, u64) {
    let pool = &data.pool;
    let shape = (pool.channels, pool.height, pool.width);
    let data_bytes = [Some(pool), data.test.as_ref()]
        .into_iter()
        .flatten()
        .map(|s| s.pixels.len() as u64)
        .sum::<u64>();
    let training = plan
        .jobs
        .iter()
        .filter_map(|j| {
            let cost = for_model(&j.spec.model, shape, j.spec.task, Some(data.classes.len()))?;
            Some(cost.training_bytes(j.spec.train.batch_size.min(pool.len().max(1))))
        })
        .max()
        .unwrap_or(0);
    (training, data_bytes)
}

/// Refuses a plan whose largest job cannot train in the memory each Slurm task asks for
/// (`slurm.mem`; nothing is checked without it).
pub fn fit_in_slurm_task(
    plan: &Plan,
    data: &prepare::LoadedData,
    mem: Option<&str>,
) -> Result<(), RunRefused> {
    let Some(limit) = mem.and_then(crate::spec::launch::memory_bytes) else {
        return Ok(());
    };
    let (training, data_bytes) = largest_job(plan, data);
    let need = training.saturating_add(data_bytes);
    if need <= limit {
        return Ok(());
    }
    Err(RunRefused::SlurmMemory {
        need: human_bytes(need),
        model: human_bytes(training),
        data: human_bytes(data_bytes),
        mem: mem.unwrap_or_default().to_string(),
    })
}
