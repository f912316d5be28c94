//! Builds the HParams plugin's summary values (experiment, session start, session end) as TensorBoard's own Python writer does.
//!
//! Each value has tag `_hparams_/experiment`, `_hparams_/session_start_info` or
//! `_hparams_/session_end_info`, metadata `plugin_data { plugin_name: "hparams", content }` with
//! `content` a serialized [`HParamsPluginData`] of version 0, and as its value the same "null"
//! tensor `tensorboard.plugins.hparams.metadata.NULL_TENSOR` holds (`DT_FLOAT`, shape `[0]`).
//!
//! Write them with [`super::EventWriter::add_values`] at step 0: the experiment once in the log
//! directory's root, a session start (and later a session end) in each session's run directory.
//! A metric `(group, tag)` is read from the scalar `tag` in the session's `group` subdirectory.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use prost::Message;

use super::proto::hparams::{
    h_param_info, h_params_plugin_data, DataType, Experiment, HParamInfo, HParamsPluginData,
    Interval, MetricInfo, MetricName, SessionEndInfo, SessionStartInfo, Status,
};
use super::proto::protobuf::{self, value::Kind};
use super::proto::{summary, tensor_shape_proto, TensorProto, TensorShapeProto};
use super::writer::plugin_metadata;

/// Plugin name in the summary metadata.
pub const PLUGIN_NAME: &str = "hparams";
/// `HParamsPluginData.version` TensorBoard accepts.
pub const PLUGIN_DATA_VERSION: i32 = 0;
/// Tag of the experiment summary.
pub const EXPERIMENT_TAG: &str = "_hparams_/experiment";
/// Tag of the session start summary.
pub const SESSION_START_INFO_TAG: &str = "_hparams_/session_start_info";
/// Tag of the session end summary.
pub const SESSION_END_INFO_TAG: &str = "_hparams_/session_end_info";

/// The value of one hyperparameter in a session.
#[derive(Clone, Debug, PartialEq)]
pub enum HParamValue {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl HParamValue {
    /// As a `google.protobuf.Value`.
    pub fn to_proto(&self) -> protobuf::Value {
        let kind = match self {
            HParamValue::Number(n) => Kind::NumberValue(*n),
            HParamValue::Text(s) => Kind::StringValue(s.clone()),
            HParamValue::Bool(b) => Kind::BoolValue(*b),
        };
        protobuf::Value { kind: Some(kind) }
    }

    /// The hparams data type of this value.
    pub fn data_type(&self) -> DataType {
        match self {
            HParamValue::Number(_) => DataType::Float64,
            HParamValue::Text(_) => DataType::String,
            HParamValue::Bool(_) => DataType::Bool,
        }
    }

    /// Total order: by kind (number, text, bool), then by value (numbers by `f64::total_cmp`).
    fn cmp_total(&self, other: &Self) -> Ordering {
        use HParamValue::*;
        match (self, other) {
            (Number(a), Number(b)) => a.total_cmp(b),
            (Text(a), Text(b)) => a.cmp(b),
            (Bool(a), Bool(b)) => a.cmp(b),
            _ => self.kind_rank().cmp(&other.kind_rank()),
        }
    }

    fn kind_rank(&self) -> u8 {
        match self {
            HParamValue::Number(_) => 0,
            HParamValue::Text(_) => 1,
            HParamValue::Bool(_) => 2,
        }
    }
}

impl From<f64> for HParamValue {
    fn from(v: f64) -> Self {
        HParamValue::Number(v)
    }
}
impl From<f32> for HParamValue {
    fn from(v: f32) -> Self {
        HParamValue::Number(f64::from(v))
    }
}
impl From<i32> for HParamValue {
    fn from(v: i32) -> Self {
        HParamValue::Number(f64::from(v))
    }
}
impl From<u32> for HParamValue {
    fn from(v: u32) -> Self {
        HParamValue::Number(f64::from(v))
    }
}
impl From<i64> for HParamValue {
    fn from(v: i64) -> Self {
        HParamValue::Number(v as f64)
    }
}
impl From<u64> for HParamValue {
    fn from(v: u64) -> Self {
        HParamValue::Number(v as f64)
    }
}
impl From<usize> for HParamValue {
    fn from(v: usize) -> Self {
        HParamValue::Number(v as f64)
    }
}
impl From<bool> for HParamValue {
    fn from(v: bool) -> Self {
        HParamValue::Bool(v)
    }
}
impl From<&str> for HParamValue {
    fn from(v: &str) -> Self {
        HParamValue::Text(v.to_string())
    }
}
impl From<String> for HParamValue {
    fn from(v: String) -> Self {
        HParamValue::Text(v)
    }
}

/// The values a hyperparameter can take.
#[derive(Clone, Debug, PartialEq)]
pub enum HParamDomain {
    /// A finite set of values (all of one kind, or the type is left unset).
    Discrete(Vec<HParamValue>),
    /// A real interval `[min, max]`.
    Interval { min: f64, max: f64 },
}

/// One hyperparameter of the experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct HParamSpec {
    pub name: String,
    /// Shown instead of `name` when not empty.
    pub display_name: String,
    /// Markdown shown as a tooltip; may be empty.
    pub description: String,
    pub domain: HParamDomain,
}

impl HParamSpec {
    /// A hyperparameter with a discrete domain.
    pub fn discrete<V: Into<HParamValue>>(
        name: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        HParamSpec {
            name: name.into(),
            display_name: String::new(),
            description: String::new(),
            domain: HParamDomain::Discrete(values.into_iter().map(Into::into).collect()),
        }
    }

    /// A real-valued hyperparameter in `[min, max]`.
    pub fn interval(name: impl Into<String>, min: f64, max: f64) -> Self {
        HParamSpec {
            name: name.into(),
            display_name: String::new(),
            description: String::new(),
            domain: HParamDomain::Interval { min, max },
        }
    }

    /// As an `HParamInfo`: a discrete domain is sorted and deduplicated (as TensorBoard's
    /// `Discrete` sorts it) and typed by its values; an interval is `DATA_TYPE_FLOAT64`.
    pub fn to_proto(&self) -> HParamInfo {
        let (data_type, domain) = match &self.domain {
            HParamDomain::Discrete(values) => {
                let mut values = values.clone();
                values.sort_by(HParamValue::cmp_total);
                values.dedup_by(|a, b| a.cmp_total(b) == Ordering::Equal);
                let data_type = match values.first() {
                    Some(first) if values.iter().all(|v| v.kind_rank() == first.kind_rank()) => {
                        first.data_type()
                    }
                    _ => DataType::Unset,
                };
                let list = protobuf::ListValue {
                    values: values.iter().map(HParamValue::to_proto).collect(),
                };
                (data_type, h_param_info::Domain::DomainDiscrete(list))
            }
            HParamDomain::Interval { min, max } => (
                DataType::Float64,
                h_param_info::Domain::DomainInterval(Interval {
                    min_value: *min,
                    max_value: *max,
                }),
            ),
        };
        HParamInfo {
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            description: self.description.clone(),
            r#type: data_type as i32,
            domain: Some(domain),
            differs: false,
        }
    }
}

/// The `_hparams_/experiment` value: the hyperparameters and the metrics, as `(group, tag)`
/// pairs (group = subdirectory of each session's run, e.g. `("val", "accuracy")`).
///
/// Once written, it is authoritative: hyperparameters and metrics not listed are hidden.
pub fn experiment_value<G: AsRef<str>, T: AsRef<str>>(
    hparams: &[HParamSpec],
    metrics: &[(G, T)],
) -> summary::Value {
    let experiment = Experiment {
        hparam_infos: hparams.iter().map(HParamSpec::to_proto).collect(),
        metric_infos: metrics
            .iter()
            .map(|(group, tag)| MetricInfo {
                name: Some(MetricName {
                    group: group.as_ref().to_string(),
                    tag: tag.as_ref().to_string(),
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    hparams_value(
        EXPERIMENT_TAG,
        h_params_plugin_data::Data::Experiment(experiment),
    )
}

/// The `_hparams_/session_start_info` value of one session (run). Sessions with the same
/// non-empty `group_name` are shown aggregated as one row.
pub fn session_start_value(
    hparams: &BTreeMap<String, HParamValue>,
    group_name: &str,
    start_time_secs: f64,
) -> summary::Value {
    let info = SessionStartInfo {
        hparams: hparams
            .iter()
            .map(|(k, v)| (k.clone(), v.to_proto()))
            .collect(),
        group_name: group_name.to_string(),
        start_time_secs,
        ..Default::default()
    };
    hparams_value(
        SESSION_START_INFO_TAG,
        h_params_plugin_data::Data::SessionStartInfo(info),
    )
}

/// The `_hparams_/session_end_info` value of one session (run).
pub fn session_end_value(status: Status, end_time_secs: f64) -> summary::Value {
    let info = SessionEndInfo {
        status: status as i32,
        end_time_secs,
    };
    hparams_value(
        SESSION_END_INFO_TAG,
        h_params_plugin_data::Data::SessionEndInfo(info),
    )
}

/// A summary value carrying `HParamsPluginData { version: 0, data }` under `tag`.
pub fn hparams_value(tag: &str, data: h_params_plugin_data::Data) -> summary::Value {
    let content = HParamsPluginData {
        version: PLUGIN_DATA_VERSION,
        data: Some(data),
    }
    .encode_to_vec();
    summary::Value {
        tag: tag.to_string(),
        metadata: Some(plugin_metadata(PLUGIN_NAME, content)),
        value: Some(summary::value::Value::Tensor(null_tensor())),
        ..Default::default()
    }
}

/// TensorBoard's `metadata.NULL_TENSOR`: an empty `DT_FLOAT` tensor of shape `[0]`.
pub fn null_tensor() -> TensorProto {
    TensorProto {
        dtype: super::proto::DataType::DtFloat as i32,
        tensor_shape: Some(TensorShapeProto {
            dim: vec![tensor_shape_proto::Dim::default()],
            unknown_rank: false,
        }),
        ..Default::default()
    }
}

/// Decodes the `content` of an hparams summary's plugin data.
pub fn decode_plugin_data(content: &[u8]) -> Result<HParamsPluginData, prost::DecodeError> {
    HParamsPluginData::decode(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(v: &summary::Value) -> HParamsPluginData {
        let md = v.metadata.as_ref().unwrap().plugin_data.as_ref().unwrap();
        assert_eq!(md.plugin_name, "hparams");
        decode_plugin_data(&md.content).unwrap()
    }

    #[test]
    fn null_tensor_matches_tensorboard_bytes() {
        // tensorboard.plugins.hparams.metadata.NULL_TENSOR.SerializeToString()
        assert_eq!(null_tensor().encode_to_vec(), b"\x08\x01\x12\x02\x12\x00");
    }

    #[test]
    fn experiment_types_and_sorts_domains() {
        let v = experiment_value(
            &[
                HParamSpec::discrete("lr", [0.1, 0.01, 0.1]),
                HParamSpec::discrete("model", ["resnet", "mlp"]),
                HParamSpec::discrete("aug", [true, false]),
                HParamSpec::interval("wd", 0.0, 1e-3),
            ],
            &[("val", "accuracy")],
        );
        assert_eq!(v.tag, EXPERIMENT_TAG);
        let data = content(&v);
        assert_eq!(data.version, 0);
        let Some(h_params_plugin_data::Data::Experiment(exp)) = data.data else {
            panic!("not an experiment");
        };
        let types: Vec<i32> = exp.hparam_infos.iter().map(|h| h.r#type).collect();
        assert_eq!(
            types,
            vec![
                DataType::Float64 as i32,
                DataType::String as i32,
                DataType::Bool as i32,
                DataType::Float64 as i32
            ]
        );
        match &exp.hparam_infos[0].domain {
            Some(h_param_info::Domain::DomainDiscrete(l)) => {
                assert_eq!(
                    l.values,
                    vec![
                        HParamValue::Number(0.01).to_proto(),
                        HParamValue::Number(0.1).to_proto()
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        let name = exp.metric_infos[0].name.as_ref().unwrap();
        assert_eq!(
            (name.group.as_str(), name.tag.as_str()),
            ("val", "accuracy")
        );
    }

    #[test]
    fn session_start_and_end() {
        let mut hp = BTreeMap::new();
        hp.insert("lr".to_string(), HParamValue::from(0.1));
        hp.insert("model".to_string(), HParamValue::from("mlp"));
        let v = session_start_value(&hp, "trial-1", 12.5);
        assert_eq!(v.tag, SESSION_START_INFO_TAG);
        assert_eq!(v.value, Some(summary::value::Value::Tensor(null_tensor())));
        let Some(h_params_plugin_data::Data::SessionStartInfo(info)) = content(&v).data else {
            panic!("not a session start");
        };
        assert_eq!(info.group_name, "trial-1");
        assert_eq!(info.start_time_secs, 12.5);
        assert_eq!(info.hparams["model"], HParamValue::from("mlp").to_proto());

        let v = session_end_value(Status::Success, 20.0);
        assert_eq!(v.tag, SESSION_END_INFO_TAG);
        let Some(h_params_plugin_data::Data::SessionEndInfo(info)) = content(&v).data else {
            panic!("not a session end");
        };
        assert_eq!(info.status, Status::Success as i32);
        assert_eq!(info.end_time_secs, 20.0);
    }
}
