//! Everything that turns events into output: the event type, the console, TensorBoard.

pub mod console;
pub mod events;
pub mod images;
pub mod stats;
pub mod tb_sink;
pub mod tensorboard;
