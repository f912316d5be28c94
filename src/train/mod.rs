//! Training: batches, optimizers with saveable state, schedules, metrics, the loop itself.

pub mod batches;
pub mod clip;
pub mod ema;
pub mod evaluate;
pub mod loader;
pub mod loss;
pub mod loss_scale;
pub mod metrics;
pub mod oom;
pub mod optim;
pub mod plateau;
pub mod predictions;
pub mod rng;
pub mod sampler;
pub mod schedule;
pub mod trainer;
