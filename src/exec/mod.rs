//! Running work: data preparation, the orchestrator and its scheduler, the worker that runs one
//! job, progress and status display, the benchmark, the augmentation preview.

pub mod audit;
pub mod bench;
pub mod crash;
pub mod orchestrator;
pub mod prepare;
pub mod preview;
pub mod progress;
pub mod scheduler;
pub mod status;
pub mod worker;
