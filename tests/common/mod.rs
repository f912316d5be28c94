//! Helpers shared by integration tests (`mod common;`).
#![allow(dead_code)]

pub mod cli;
pub mod predictions;
pub mod tensorboard;
