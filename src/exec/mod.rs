//! Running work: data preparation, the worker that runs one job, the run loop, the benchmark.

pub mod bench;
pub mod prepare;
pub mod run;
pub mod worker;
