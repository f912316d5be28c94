//! Models built from the spec's layer list: shape inference, seeded initialisation, the network.

pub mod cost;
pub mod init;
pub mod network;
pub mod ops;
pub mod shapes;

pub use network::{Mode, Network};
