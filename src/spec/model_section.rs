//! The `[model]` section: the architecture and its layers, checked against the input shape.

use super::architectures::{self, ARCHITECTURES};
use super::reader::{self as r, index, At, Diags, TableReader};
use super::tree::Segment;
use super::types::*;
use super::validate::{at, opt};
use crate::model::shapes::{self, Shape};

const LAYER_TYPES: &[&str] = &[
    "conv",
    "batch_norm",
    "layer_norm",
    "relu",
    "relu6",
    "silu",
    "hard_swish",
    "gelu",
    "max_pool",
    "avg_pool",
    "global_avg_pool",
    "dropout",
    "flatten",
    "dense",
    "residual",
];

/// `input` is the `(channels, height, width)` the model receives (after the train transforms).
pub(super) fn model(
    mut t: TableReader,
    input: Option<(usize, usize, usize)>,
    d: &mut Diags,
) -> Option<ModelSpec> {
    let arch_path = t.path_of("architecture");
    let kind = t
        .required("architecture", d, "\"cnn\"")
        .and_then(|n| r::choice(at(n, &arch_path), ARCHITECTURES, d));
    let architecture = match kind.as_deref() {
        Some("mlp") => Some(Architecture::Mlp),
        Some("cnn") => Some(Architecture::Cnn),
        Some(other) => {
            let span = t.span();
            let spec = architectures::read(other, t, d)?;
            return match input {
                Some(input) => checked(spec, input, span, d),
                None => Some(spec),
            };
        }
        None => None,
    };
    let layers_path = t.path_of("layers");
    let layers_node = t.required(
        "layers",
        d,
        "[{ type = \"dense\", units = 128 }, { type = \"relu\" }]",
    );
    t.finish(d);
    let items = r::array(at(layers_node?, &layers_path), d)?;
    let layers = layer_list(items, &layers_path, architecture, d);
    let (architecture, layers) = (architecture?, layers?);
    if let Some((c, h, w)) = input {
        let input = match architecture {
            Architecture::Cnn => Shape::Spatial { c, h, w },
            Architecture::Mlp => Shape::Flat(c * h * w),
        };
        if let Err(e) = shapes::infer(&layers, input) {
            let shapes = shapes::infer(&layers[..e.layer], input).unwrap_or_default();
            let trace: Vec<String> = std::iter::once(input)
                .chain(shapes)
                .map(|s| s.to_string())
                .collect();
            d.error(
                items[e.layer].span,
                &index(&layers_path, e.layer),
                format!(
                    "impossible model: layers[{}]: {} (shapes so far: {})",
                    e.layer,
                    e.message,
                    trace.join(" → ")
                ),
                Some(e.help),
            );
            return None;
        }
    }
    Some(match architecture {
        Architecture::Mlp => ModelSpec::Mlp { layers },
        Architecture::Cnn => ModelSpec::Cnn { layers },
    })
}

/// A built-in architecture after a dry build for `input`: a size that cannot work (an image
/// too small for its downsampling, a patch that does not tile it) is an error naming the part.
fn checked(
    spec: ModelSpec,
    input: (usize, usize, usize),
    span: super::source::Span,
    d: &mut Diags,
) -> Option<ModelSpec> {
    match crate::model::check(&spec, input) {
        Ok(_) => Some(spec),
        Err(message) => {
            let (c, h, w) = input;
            let help = if message.contains("parameters, beyond") {
                "use a smaller width, depth or size"
            } else {
                "use larger images (data.image_size or a resize transform) or a smaller model"
            };
            d.error(
                span,
                &[Segment::Key("model".into())],
                format!("impossible model for {c}×{h}×{w} images: {message}"),
                Some(help.into()),
            );
            None
        }
    }
}

/// The smallest and largest value of each layer size key (the README lists them): far beyond
/// any model that trains on one machine, and small enough that no size arithmetic overflows.
fn size_bounds(key: &str) -> (i64, i64) {
    match key {
        "filters" => (1, 16_384),
        "units" => (1, 1 << 20),
        "padding" => (0, 64),
        "kernel" | "stride" => (1, 64),
        "groups" => (1, 16_384),
        _ => (1, 4096), // pooling size
    }
}

/// Every layer of `items` (at `path`), each checked and reported on; `None` if any is wrong.
fn layer_list(
    items: &[super::tree::Node],
    path: &[Segment],
    arch: Option<Architecture>,
    d: &mut Diags,
) -> Option<Vec<LayerSpec>> {
    let mut layers = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = index(path, i);
        match layer(at(item, &p), arch, d) {
            Some(l) => layers.push(l),
            None => ok = false,
        }
    }
    ok.then_some(layers)
}

fn layer(a: At, arch: Option<Architecture>, d: &mut Diags) -> Option<LayerSpec> {
    let mut t = TableReader::new(a.node, a.path, d)?;
    let type_path = t.path_of("type");
    let kind = r::choice(
        at(t.required("type", d, "\"conv\"")?, &type_path),
        LAYER_TYPES,
        d,
    )?;
    let pos = |t: &mut TableReader,
               key: &'static str,
               default: Option<usize>,
               d: &mut Diags|
     -> Option<usize> {
        let p = t.path_of(key);
        match (t.entry(key), default) {
            (Some(e), _) => {
                let (min, max) = size_bounds(key);
                r::integer(at(&e.node, &p), min, max, d).map(|v| v as usize)
            }
            (None, Some(v)) => Some(v),
            (None, None) => {
                t.required(key, d, "3");
                None
            }
        }
    };
    let layer = match kind.as_str() {
        "conv" => {
            let filters = pos(&mut t, "filters", None, d);
            let kernel = pos(&mut t, "kernel", None, d);
            let stride = pos(&mut t, "stride", Some(1), d);
            let padding = pos(&mut t, "padding", Some(0), d);
            let bias = opt(&mut t, "bias", d, true, r::boolean);
            let groups = pos(&mut t, "groups", Some(1), d);
            LayerSpec::Conv {
                filters: filters?,
                kernel: kernel?,
                stride: stride?,
                padding: padding?,
                bias: bias?,
                groups: groups?,
            }
        }
        "max_pool" | "avg_pool" => {
            let size = pos(&mut t, "size", None, d)?;
            let stride = pos(&mut t, "stride", Some(size), d)?;
            if kind == "max_pool" {
                LayerSpec::MaxPool { size, stride }
            } else {
                LayerSpec::AvgPool { size, stride }
            }
        }
        "batch_norm" => {
            let momentum = opt(&mut t, "momentum", d, 0.1, |a, d| {
                r::number(a, "above 0 and at most 1", |v| v > 0.0 && v <= 1.0, d)
            });
            let eps = opt(&mut t, "eps", d, 1e-5, |a, d| {
                r::number(a, "above 0", |v| v > 0.0, d)
            });
            LayerSpec::BatchNorm {
                momentum: momentum?,
                eps: eps?,
            }
        }
        "dropout" => {
            let rate = opt(&mut t, "rate", d, 0.5, |a, d| {
                r::number(a, "at least 0 and below 1", |v| (0.0..1.0).contains(&v), d)
            });
            LayerSpec::Dropout { rate: rate? }
        }
        "dense" => {
            let units = pos(&mut t, "units", None, d);
            let bias = opt(&mut t, "bias", d, true, r::boolean);
            LayerSpec::Dense {
                units: units?,
                bias: bias?,
            }
        }
        "layer_norm" => {
            let eps = opt(&mut t, "eps", d, 1e-5, |a, d| {
                r::number(a, "above 0", |v| v > 0.0, d)
            });
            LayerSpec::LayerNorm { eps: eps? }
        }
        "residual" => {
            let path = t.path_of("layers");
            let node = t.required(
                "layers",
                d,
                "[{ type = \"conv\", filters = 16, kernel = 3, padding = 1 }]",
            );
            let items = r::array(at(node?, &path), d)?;
            let Some(layers) = layer_list(items, &path, arch, d) else {
                t.finish(d);
                return None;
            };
            LayerSpec::Residual { layers }
        }
        "relu" => LayerSpec::Relu,
        "relu6" => LayerSpec::Relu6,
        "silu" => LayerSpec::Silu,
        "hard_swish" => LayerSpec::HardSwish,
        "gelu" => LayerSpec::Gelu,
        "global_avg_pool" => LayerSpec::GlobalAvgPool,
        _ => LayerSpec::Flatten,
    };
    t.finish(d);
    let spatial = matches!(
        layer,
        LayerSpec::Conv { .. }
            | LayerSpec::MaxPool { .. }
            | LayerSpec::AvgPool { .. }
            | LayerSpec::GlobalAvgPool
    );
    if spatial && arch == Some(Architecture::Mlp) {
        d.error(a.node.span, a.path, format!("a {kind} layer needs architecture = \"cnn\"; an mlp sees each image as a flat vector"), None);
        return None;
    }
    Some(layer)
}
