//! Everything that turns events and results into output: the event type, the console,
//! TensorBoard, and the experiment reports and comparisons (JSON, Markdown, CSV, HTML).

pub mod console;
pub mod csv;
pub mod events;
pub mod files;
pub mod html;
pub mod images;
pub mod markdown;
pub mod plots;
pub mod ranking;
pub mod report_json;
pub mod run_end;
pub mod stats;
pub mod summary;
pub mod tb_sink;
pub mod tensorboard;

pub use files::{compare, write_report};
pub use summary::ReportError;
