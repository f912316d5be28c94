//! Running work: data preparation, the orchestrator and its scheduler, the job runner and the
//! worker process around it, progress and status display, the benchmark, the augmentation preview.

pub mod audit;
pub mod bench;
pub mod cancel;
pub mod crash;
pub mod job_runner;
pub mod launch;
pub mod memory_fit;
pub mod orchestrator;
pub mod prepare;
pub mod preview;
pub mod progress;
pub mod refused;
pub mod resume;
pub mod scheduler;
pub mod status;
pub mod worker;
