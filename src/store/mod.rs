//! The run folder on disk: its layout and crash-safe writes.

pub mod atomic;
pub mod layout;

pub use atomic::{write_atomic, write_atomic_with};
pub use layout::{ExperimentDir, JobDir};
