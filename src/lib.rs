//! assay: a declarative experiment runner for image classification.
//!
//! spec (TOML) → [`spec::load`] → [`plan::expand`] → [`exec`] runs each job (data → model →
//! train → evaluate) and emits [`report::events::Event`]s to the console and TensorBoard;
//! every job leaves its outputs under [`store::ExperimentDir`].

pub mod augment;
pub mod data;
pub mod devices;
pub mod exec;
pub mod infer;
pub mod machine;
pub mod memory;
pub mod model;
pub mod plan;
pub mod report;
pub mod shell;
pub mod slurm;
pub mod spec;
pub mod store;
pub mod train;
