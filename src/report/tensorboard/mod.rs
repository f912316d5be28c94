//! TensorBoard event-file output: protobuf messages, TFRecord framing, a non-panicking writer and HParams summaries.

pub mod hparams;
pub mod proto;
pub mod record;
mod writer;

pub use hparams::{
    experiment_value, session_end_value, session_start_value, HParamDomain, HParamSpec, HParamValue,
};
pub use proto::hparams::Status as SessionStatus;
pub use writer::{
    plugin_metadata, png_image_value, read_events, scalar_value, text_value, EventWriter,
    TensorBoardError, FILE_VERSION,
};
