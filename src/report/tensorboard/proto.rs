//! Hand-written `prost` messages for the parts of TensorBoard's protobuf schema that event files use.
//!
//! Field numbers follow the upstream `.proto` files exactly:
//! `tensorflow/core/util/event.proto` (as `tensorboard/compat/proto/event.proto`),
//! `tensorflow/core/framework/summary.proto`, `tensor.proto`, `tensor_shape.proto`, `types.proto`,
//! `tensorboard/plugins/hparams/api.proto` and `plugin_data.proto`, and
//! `google/protobuf/struct.proto`. Only the fields this crate can write (or may want to read back)
//! are declared; anything else in a decoded message is skipped as an unknown field.

/// `tensorflow.Event` (event.proto): one record of an event file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the UNIX epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "event::What", tags = "3, 4, 5")]
    pub what: Option<event::What>,
}

/// Nested types of [`Event`].
pub mod event {
    /// `oneof what` of `tensorflow.Event` (log_message, session_log, ... are not declared).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum What {
        /// `"brain.Event:2"` in the first event of every file.
        #[prost(string, tag = "3")]
        FileVersion(String),
        /// A serialized `GraphDef`.
        #[prost(bytes, tag = "4")]
        GraphDef(Vec<u8>),
        #[prost(message, tag = "5")]
        Summary(super::Summary),
    }
}

/// `tensorflow.DataClass` (summary.proto).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataClass {
    Unknown = 0,
    Scalar = 1,
    Tensor = 2,
    BlobSequence = 3,
}

/// `tensorflow.SummaryMetadata` (summary.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<summary_metadata::PluginData>,
    #[prost(string, tag = "2")]
    pub display_name: String,
    #[prost(string, tag = "3")]
    pub summary_description: String,
    #[prost(enumeration = "DataClass", tag = "4")]
    pub data_class: i32,
}

/// Nested types of [`SummaryMetadata`].
pub mod summary_metadata {
    /// `tensorflow.SummaryMetadata.PluginData`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PluginData {
        /// The plugin that owns the value, e.g. `"text"` or `"hparams"`.
        #[prost(string, tag = "1")]
        pub plugin_name: String,
        /// Plugin-specific serialized content.
        #[prost(bytes = "vec", tag = "2")]
        pub content: Vec<u8>,
    }
}

/// `tensorflow.HistogramProto` (summary.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramProto {
    #[prost(double, tag = "1")]
    pub min: f64,
    #[prost(double, tag = "2")]
    pub max: f64,
    #[prost(double, tag = "3")]
    pub num: f64,
    #[prost(double, tag = "4")]
    pub sum: f64,
    #[prost(double, tag = "5")]
    pub sum_squares: f64,
    #[prost(double, repeated, tag = "6")]
    pub bucket_limit: Vec<f64>,
    #[prost(double, repeated, tag = "7")]
    pub bucket: Vec<f64>,
}

/// `tensorflow.Summary` (summary.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<summary::Value>,
}

/// Nested types of [`Summary`].
pub mod summary {
    /// `tensorflow.Summary.Image`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Image {
        #[prost(int32, tag = "1")]
        pub height: i32,
        #[prost(int32, tag = "2")]
        pub width: i32,
        /// Number of channels: 1 grayscale, 2 grayscale + alpha, 3 RGB, 4 RGBA.
        #[prost(int32, tag = "3")]
        pub colorspace: i32,
        /// PNG (or other) encoded image.
        #[prost(bytes = "vec", tag = "4")]
        pub encoded_image_string: Vec<u8>,
    }

    /// `tensorflow.Summary.Audio`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Audio {
        #[prost(float, tag = "1")]
        pub sample_rate: f32,
        #[prost(int64, tag = "2")]
        pub num_channels: i64,
        #[prost(int64, tag = "3")]
        pub length_frames: i64,
        #[prost(bytes = "vec", tag = "4")]
        pub encoded_audio_string: Vec<u8>,
        #[prost(string, tag = "5")]
        pub content_type: String,
    }

    /// `tensorflow.Summary.Value`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        #[prost(string, tag = "7")]
        pub node_name: String,
        #[prost(string, tag = "1")]
        pub tag: String,
        #[prost(message, optional, tag = "9")]
        pub metadata: Option<super::SummaryMetadata>,
        #[prost(oneof = "value::Value", tags = "2, 3, 4, 5, 6, 8")]
        pub value: Option<value::Value>,
    }

    /// Nested types of [`Value`].
    pub mod value {
        /// `oneof value` of `tensorflow.Summary.Value`.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(float, tag = "2")]
            SimpleValue(f32),
            #[prost(bytes, tag = "3")]
            ObsoleteOldStyleHistogram(Vec<u8>),
            #[prost(message, tag = "4")]
            Image(super::Image),
            #[prost(message, tag = "5")]
            Histo(super::super::HistogramProto),
            #[prost(message, tag = "6")]
            Audio(super::Audio),
            #[prost(message, tag = "8")]
            Tensor(super::super::TensorProto),
        }
    }
}

/// `tensorflow.DataType` (types.proto); only the plain, non-reference types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataType {
    DtInvalid = 0,
    DtFloat = 1,
    DtDouble = 2,
    DtInt32 = 3,
    DtUint8 = 4,
    DtInt16 = 5,
    DtInt8 = 6,
    DtString = 7,
    DtComplex64 = 8,
    DtInt64 = 9,
    DtBool = 10,
    DtQint8 = 11,
    DtQuint8 = 12,
    DtQint32 = 13,
    DtBfloat16 = 14,
    DtQint16 = 15,
    DtQuint16 = 16,
    DtUint16 = 17,
    DtComplex128 = 18,
    DtHalf = 19,
    DtResource = 20,
    DtVariant = 21,
    DtUint32 = 22,
    DtUint64 = 23,
}

/// `tensorflow.TensorShapeProto` (tensor_shape.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// Dimensions, outermost first; empty for a scalar.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<tensor_shape_proto::Dim>,
    #[prost(bool, tag = "3")]
    pub unknown_rank: bool,
}

/// Nested types of [`TensorShapeProto`].
pub mod tensor_shape_proto {
    /// `tensorflow.TensorShapeProto.Dim`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dim {
        #[prost(int64, tag = "1")]
        pub size: i64,
        #[prost(string, tag = "2")]
        pub name: String,
    }
}

/// `tensorflow.TensorProto` (tensor.proto); resource/variant/complex/half fields are not declared.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    #[prost(enumeration = "DataType", tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    #[prost(int32, tag = "3")]
    pub version_number: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
    #[prost(int32, repeated, tag = "7")]
    pub int_val: Vec<i32>,
    /// Elements of a `DT_STRING` tensor (arbitrary bytes; UTF-8 for text summaries).
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
    #[prost(int64, repeated, tag = "10")]
    pub int64_val: Vec<i64>,
    #[prost(bool, repeated, tag = "11")]
    pub bool_val: Vec<bool>,
    #[prost(uint32, repeated, tag = "16")]
    pub uint32_val: Vec<u32>,
    #[prost(uint64, repeated, tag = "17")]
    pub uint64_val: Vec<u64>,
}

/// `google.protobuf` well-known types from `struct.proto`.
pub mod protobuf {
    use std::collections::BTreeMap;

    /// `google.protobuf.NullValue`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum NullValue {
        NullValue = 0,
    }

    /// `google.protobuf.Struct`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Struct {
        #[prost(btree_map = "string, message", tag = "1")]
        pub fields: BTreeMap<String, Value>,
    }

    /// `google.protobuf.Value`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        #[prost(oneof = "value::Kind", tags = "1, 2, 3, 4, 5, 6")]
        pub kind: Option<value::Kind>,
    }

    /// Nested types of [`Value`].
    pub mod value {
        /// `oneof kind` of `google.protobuf.Value`.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Kind {
            #[prost(enumeration = "super::NullValue", tag = "1")]
            NullValue(i32),
            #[prost(double, tag = "2")]
            NumberValue(f64),
            #[prost(string, tag = "3")]
            StringValue(String),
            #[prost(bool, tag = "4")]
            BoolValue(bool),
            #[prost(message, tag = "5")]
            StructValue(super::Struct),
            #[prost(message, tag = "6")]
            ListValue(super::ListValue),
        }
    }

    /// `google.protobuf.ListValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<Value>,
    }
}

/// Messages of the HParams plugin (`tensorboard.hparams`, api.proto and plugin_data.proto).
pub mod hparams {
    use super::protobuf;
    use std::collections::BTreeMap;

    /// `tensorboard.hparams.DataType` (api.proto): the type of a hyperparameter.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum DataType {
        Unset = 0,
        String = 1,
        Bool = 2,
        Float64 = 3,
    }

    /// `tensorboard.hparams.DatasetType` (api.proto).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum DatasetType {
        Unknown = 0,
        Training = 1,
        Validation = 2,
    }

    /// `tensorboard.hparams.Status` (api.proto): how a session ended.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum Status {
        Unknown = 0,
        Success = 1,
        Failure = 2,
        Running = 3,
    }

    /// `tensorboard.hparams.Interval` (api.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Interval {
        #[prost(double, tag = "1")]
        pub min_value: f64,
        #[prost(double, tag = "2")]
        pub max_value: f64,
    }

    /// `tensorboard.hparams.HParamInfo` (api.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HParamInfo {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub display_name: String,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(enumeration = "DataType", tag = "4")]
        pub r#type: i32,
        #[prost(oneof = "h_param_info::Domain", tags = "5, 6")]
        pub domain: Option<h_param_info::Domain>,
        #[prost(bool, tag = "7")]
        pub differs: bool,
    }

    /// Nested types of [`HParamInfo`].
    pub mod h_param_info {
        /// `oneof domain` of `tensorboard.hparams.HParamInfo`.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Domain {
            #[prost(message, tag = "5")]
            DomainDiscrete(super::protobuf::ListValue),
            #[prost(message, tag = "6")]
            DomainInterval(super::Interval),
        }
    }

    /// `tensorboard.hparams.MetricName` (api.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricName {
        /// Sub-directory of the session's run holding the scalar (`""` = the run itself).
        #[prost(string, tag = "1")]
        pub group: String,
        /// Tag of the scalar summary.
        #[prost(string, tag = "2")]
        pub tag: String,
    }

    /// `tensorboard.hparams.MetricInfo` (api.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricInfo {
        #[prost(message, optional, tag = "1")]
        pub name: Option<MetricName>,
        #[prost(string, tag = "3")]
        pub display_name: String,
        #[prost(string, tag = "4")]
        pub description: String,
        #[prost(enumeration = "DatasetType", tag = "5")]
        pub dataset_type: i32,
    }

    /// `tensorboard.hparams.Experiment` (api.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Experiment {
        #[prost(string, tag = "6")]
        pub name: String,
        #[prost(string, tag = "1")]
        pub description: String,
        #[prost(string, tag = "2")]
        pub user: String,
        #[prost(double, tag = "3")]
        pub time_created_secs: f64,
        #[prost(message, repeated, tag = "4")]
        pub hparam_infos: Vec<HParamInfo>,
        #[prost(message, repeated, tag = "5")]
        pub metric_infos: Vec<MetricInfo>,
    }

    /// `tensorboard.hparams.SessionStartInfo` (plugin_data.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SessionStartInfo {
        #[prost(btree_map = "string, message", tag = "1")]
        pub hparams: BTreeMap<String, protobuf::Value>,
        #[prost(string, tag = "2")]
        pub model_uri: String,
        #[prost(string, tag = "3")]
        pub monitor_url: String,
        /// Sessions with the same group name are aggregated into one row.
        #[prost(string, tag = "4")]
        pub group_name: String,
        #[prost(double, tag = "5")]
        pub start_time_secs: f64,
    }

    /// `tensorboard.hparams.SessionEndInfo` (plugin_data.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SessionEndInfo {
        #[prost(enumeration = "Status", tag = "1")]
        pub status: i32,
        #[prost(double, tag = "2")]
        pub end_time_secs: f64,
    }

    /// `tensorboard.hparams.HParamsPluginData` (plugin_data.proto): the `content` of
    /// `SummaryMetadata.PluginData` for plugin `"hparams"`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HParamsPluginData {
        /// Always 0 (`PLUGIN_DATA_VERSION`); TensorBoard rejects anything else.
        #[prost(int32, tag = "1")]
        pub version: i32,
        #[prost(oneof = "h_params_plugin_data::Data", tags = "2, 3, 4")]
        pub data: Option<h_params_plugin_data::Data>,
    }

    /// Nested types of [`HParamsPluginData`].
    pub mod h_params_plugin_data {
        /// `oneof data` of `tensorboard.hparams.HParamsPluginData`.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Data {
            #[prost(message, tag = "2")]
            Experiment(super::Experiment),
            #[prost(message, tag = "3")]
            SessionStartInfo(super::SessionStartInfo),
            #[prost(message, tag = "4")]
            SessionEndInfo(super::SessionEndInfo),
        }
    }
}
