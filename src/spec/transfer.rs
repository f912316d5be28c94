//! The `[model]` keys about starting weights and freezing: `pretrained` (a safetensors file,
//! relative to the spec file's folder, hashed and checked against the model), `pretrained_layout`,
//! `freeze` (part names), `unfreeze_at_epoch` and `backbone_lr_scale`.

use std::path::Path;

use super::reader::{self as r, At, Diags, TableReader};
use super::tree::{Node, Segment, Value};
use super::types::*;
use crate::model::parts;

/// The transfer keys of `[model]`, taken before the architecture's keys are read.
pub(super) struct Keys<'a> {
    pretrained: Option<(&'a Node, Vec<Segment>)>,
    layout: Option<(&'a Node, Vec<Segment>)>,
    freeze: Option<(&'a Node, Vec<Segment>)>,
    unfreeze_at_epoch: Option<(&'a Node, Vec<Segment>)>,
    backbone_lr_scale: Option<(&'a Node, Vec<Segment>)>,
}

/// Declares the transfer keys of the `[model]` table `t` and keeps their values.
pub(super) fn take<'a>(t: &mut TableReader<'a>) -> Keys<'a> {
    let mut get = |key: &'static str| t.entry(key).map(|e| (&e.node, t.path_of(key)));
    Keys {
        pretrained: get("pretrained"),
        layout: get("pretrained_layout"),
        freeze: get("freeze"),
        unfreeze_at_epoch: get("unfreeze_at_epoch"),
        backbone_lr_scale: get("backbone_lr_scale"),
    }
}

fn at<'a>((node, path): &'a (&'a Node, Vec<Segment>)) -> At<'a> {
    At { node, path }
}

/// Reads the transfer keys for `model` (when it was read) on `input` images; the weights file
/// is relative to `spec_dir`, the spec file's folder.
pub(super) fn read(
    keys: Keys,
    model: Option<&ModelSpec>,
    input: Option<(usize, usize, usize)>,
    spec_dir: &Path,
    d: &mut Diags,
) -> Option<TransferSpec> {
    let layout = match &keys.layout {
        Some(k) => r::choice(at(k), PretrainedLayout::NAMES, d).map(|s| match s.as_str() {
            "torchvision" => PretrainedLayout::Torchvision,
            "efficientnet-lite" => PretrainedLayout::EfficientnetLite,
            _ => PretrainedLayout::Assay,
        }),
        None => Some(PretrainedLayout::Assay),
    };
    let pretrained = match (&keys.pretrained, layout) {
        (Some(k), Some(layout)) => pretrained(at(k), layout, model, input, spec_dir, d).map(Some),
        (Some(_), None) => None,
        (None, _) => Some(None),
    };
    let model_parts = match (model, input) {
        (Some(m), Some(input)) => parts::names(m, input).ok(),
        _ => None,
    };
    let freeze = match &keys.freeze {
        Some(k) => match &model_parts {
            Some(names) => freeze(at(k), names, d),
            None => None,
        },
        None => Some(Vec::new()),
    };
    let unfreeze_at_epoch = match &keys.unfreeze_at_epoch {
        Some(k) => r::integer(at(k), 1, i64::MAX, d).map(|v| Some(v as usize)),
        None => Some(None),
    };
    let backbone_lr_scale = match &keys.backbone_lr_scale {
        Some(k) => r::number(at(k), "from 0 to 1000", |v| (0.0..=1000.0).contains(&v), d),
        None => Some(1.0),
    };
    let freeze = freeze?;
    // Without frozen parts there is nothing to unfreeze: the key changes nothing (and no job id).
    let unfreeze_at_epoch = unfreeze_at_epoch?.filter(|_| !freeze.is_empty());
    Some(TransferSpec {
        pretrained: pretrained?,
        freeze,
        unfreeze_at_epoch,
        backbone_lr_scale: backbone_lr_scale?,
    })
}

/// The weights file at `a` (relative to `spec_dir`): readable, hashed, and (for a built-in
/// architecture) fitting the model but for its head.
fn pretrained(
    a: At,
    layout: PretrainedLayout,
    model: Option<&ModelSpec>,
    input: Option<(usize, usize, usize)>,
    spec_dir: &Path,
    d: &mut Diags,
) -> Option<PretrainedSpec> {
    let text = r::string(a, d)?;
    let joined = spec_dir.join(&text);
    let path = std::path::absolute(&joined).unwrap_or(joined);
    if d.paths_may_be_missing && !path.exists() {
        // A job's spec read to use its model: the job's own weights replace the file's.
        return Some(PretrainedSpec {
            path,
            layout,
            sha256: String::new(),
        });
    }
    let help = || {
        Some("the path is relative to the spec file's folder; scripts/fetch-pretrained.sh fetches the ImageNet EfficientNet-Lite0 weights (efficientnet-lite0.safetensors, pretrained_layout = \"efficientnet-lite\")".to_string())
    };
    let dry = match (model, input) {
        (Some(m), Some(input)) if m.layer_list().is_none() => crate::model::arch::build(
            m,
            input,
            2,
            crate::model::Init::Dry,
            &candle_core::Device::Cpu,
        )
        .ok()
        .map(|(m, _)| crate::model::pretrained::expected(m.as_ref())),
        _ => None,
    };
    let result = match &dry {
        Some(expected) => crate::model::pretrained::check(expected, &path, layout),
        None => crate::model::pretrained::inspect(&path),
    };
    match result {
        Ok(summary) => Some(PretrainedSpec {
            path,
            layout,
            sha256: summary.sha256,
        }),
        Err(e) => {
            let help = match e {
                crate::model::pretrained::PretrainedError::Mismatch { .. } => Some(
                    "check [model] (architecture, variant, width, depth) and pretrained_layout against the file (the README lists the layouts' names)".to_string(),
                ),
                _ => help(),
            };
            d.error(a.node.span, a.path, e.to_string(), help);
            None
        }
    }
}

/// `freeze`: a list of part names, or one name (`"none"` for no part), `backbone` standing
/// for every part but the head; returned in the model's order.
fn freeze(a: At, names: &[String], d: &mut Diags) -> Option<Vec<String>> {
    let mut allowed: Vec<&str> = names.iter().map(String::as_str).collect();
    allowed.push(parts::BACKBONE);
    let mut chosen = Vec::new();
    let mut ok = true;
    match &a.node.value {
        Value::Str(s) if s == "none" => {}
        Value::Str(_) => match r::choice(a, &allowed, d) {
            Some(s) => chosen.push(s),
            None => ok = false,
        },
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = r::index(a.path, i);
                match r::choice(
                    At {
                        node: item,
                        path: &path,
                    },
                    &allowed,
                    d,
                ) {
                    Some(s) => chosen.push(s),
                    None => ok = false,
                }
            }
        }
        _ => {
            r::type_error(a, "a list of part names (or one name)", d);
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    let frozen = |part: &str| {
        chosen.iter().any(|c| c == part)
            || (part != parts::HEAD && chosen.iter().any(|c| c == parts::BACKBONE))
    };
    Some(names.iter().filter(|n| frozen(n)).cloned().collect())
}
