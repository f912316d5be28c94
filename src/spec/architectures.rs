//! The keys of the built-in architectures in `[model]` (`resnet`, `efficientnet_lite`,
//! `mobilenet_v2`, `vit`), their defaults and ranges, and the shape check that a dry build of
//! the model makes at validation time (a shape error names the stage or block).

use super::reader::{self as r, At, Diags, TableReader};
use super::types::*;
use super::validate::{at, opt};

/// Every value `[model] architecture` takes.
pub const ARCHITECTURES: &[&str] = &[
    "mlp",
    "cnn",
    "resnet",
    "efficientnet_lite",
    "mobilenet_v2",
    "vit",
];

const RESNET_DEPTHS: &[i64] = &[18, 34, 50, 20, 32, 44, 56, 110];

/// Reads the keys of architecture `kind` (not `mlp` or `cnn`) from `[model]`.
pub(super) fn read(kind: &str, mut t: TableReader, d: &mut Diags) -> Option<ModelSpec> {
    let model = match kind {
        "resnet" => resnet(&mut t, d),
        "efficientnet_lite" => efficientnet_lite(&mut t, d),
        "mobilenet_v2" => mobilenet_v2(&mut t, d),
        _ => vit(&mut t, d),
    };
    t.finish(d);
    model
}

fn rate(t: &mut TableReader, key: &'static str, default: f64, d: &mut Diags) -> Option<f64> {
    opt(t, key, d, default, |a, d| {
        r::number(a, "at least 0 and below 1", |v| (0.0..1.0).contains(&v), d)
    })
}

fn multiplier(t: &mut TableReader, key: &'static str, d: &mut Diags) -> Option<f64> {
    opt(t, key, d, 1.0, |a, d| {
        r::number(a, "from 0.0625 to 16", |v| (0.0625..=16.0).contains(&v), d)
    })
}

fn one_of(a: At, allowed: &[i64], d: &mut Diags) -> Option<usize> {
    let v = r::integer(a, i64::MIN, i64::MAX, d)?;
    if allowed.contains(&v) {
        return Some(v as usize);
    }
    let list: Vec<String> = allowed.iter().map(i64::to_string).collect();
    d.error(
        a.node.span,
        a.path,
        format!("{v} is not an available depth"),
        Some(format!("allowed: {}", list.join(", "))),
    );
    None
}

fn resnet(t: &mut TableReader, d: &mut Diags) -> Option<ModelSpec> {
    let depth_path = t.path_of("depth");
    let depth = t
        .required("depth", d, "18")
        .and_then(|n| one_of(at(n, &depth_path), RESNET_DEPTHS, d));
    let width = multiplier(t, "width", d);
    let imagenet_depth = depth.is_some_and(|v| matches!(v, 18 | 34 | 50));
    let default_stem = if imagenet_depth {
        ResnetStem::Imagenet
    } else {
        ResnetStem::Small
    };
    let stem = opt(t, "stem", d, default_stem, |a, d| {
        Some(match r::choice(a, &["imagenet", "small"], d)?.as_str() {
            "imagenet" => ResnetStem::Imagenet,
            _ => ResnetStem::Small,
        })
    });
    let zero_init_residual = opt(t, "zero_init_residual", d, false, r::boolean);
    let dropout = rate(t, "dropout", 0.0, d);
    let drop_path = rate(t, "drop_path", 0.0, d);
    Some(ModelSpec::Resnet(ResnetSpec {
        depth: depth?,
        width: width?,
        stem: stem?,
        zero_init_residual: zero_init_residual?,
        dropout: dropout?,
        drop_path: drop_path?,
    }))
}

fn efficientnet_lite(t: &mut TableReader, d: &mut Diags) -> Option<ModelSpec> {
    let variant = opt(t, "variant", d, 0, |a, d| {
        r::integer(a, 0, 4, d).map(|v| v as usize)
    });
    // Each variant's own dropout before the head (0.2, 0.2, 0.3, 0.3, 0.3).
    let default_dropout = match variant {
        Some(v) if v >= 2 => 0.3,
        _ => 0.2,
    };
    let dropout = rate(t, "dropout", default_dropout, d);
    let drop_path = rate(t, "drop_path", 0.0, d);
    let width = multiplier(t, "width", d);
    Some(ModelSpec::EfficientnetLite(EfficientNetLiteSpec {
        variant: variant?,
        width: width?,
        dropout: dropout?,
        drop_path: drop_path?,
    }))
}

fn mobilenet_v2(t: &mut TableReader, d: &mut Diags) -> Option<ModelSpec> {
    let width = multiplier(t, "width", d);
    let dropout = rate(t, "dropout", 0.2, d);
    Some(ModelSpec::MobilenetV2(MobileNetV2Spec {
        width: width?,
        dropout: dropout?,
    }))
}

/// `(patch, depth, width, heads)` of the named ViT sizes (DeiT's tiny and small).
fn vit_size(name: &str) -> (usize, usize, usize, usize) {
    match name {
        "small" => (16, 12, 384, 6),
        _ => (16, 12, 192, 3),
    }
}

fn vit(t: &mut TableReader, d: &mut Diags) -> Option<ModelSpec> {
    let size = opt(t, "size", d, "tiny".to_string(), |a, d| {
        r::choice(a, &["tiny", "small"], d)
    })?;
    let (patch, depth, width, heads) = vit_size(&size);
    let int = |t: &mut TableReader, key: &'static str, default: usize, max: i64, d: &mut Diags| {
        opt(t, key, d, default, |a, d| {
            r::integer(a, 1, max, d).map(|v| v as usize)
        })
    };
    let patch = int(t, "patch", patch, 256, d);
    let depth = int(t, "depth", depth, 256, d);
    let width_path = t.path_of("width");
    let width = int(t, "width", width, 16_384, d);
    let heads = int(t, "heads", heads, 256, d);
    let mlp_ratio = opt(t, "mlp_ratio", d, 4.0, |a, d| {
        r::number(a, "from 0.25 to 16", |v| (0.25..=16.0).contains(&v), d)
    });
    let dropout = rate(t, "dropout", 0.0, d);
    let drop_path = rate(t, "drop_path", 0.0, d);
    let (width, heads) = (width?, heads?);
    if width % heads != 0 {
        d.error(
            t.span(),
            &width_path,
            format!("width = {width} is not a multiple of heads = {heads}"),
            Some("each attention head gets width / heads features".into()),
        );
        return None;
    }
    Some(ModelSpec::Vit(VitSpec {
        patch: patch?,
        depth: depth?,
        width,
        heads,
        mlp_ratio: mlp_ratio?,
        dropout: dropout?,
        drop_path: drop_path?,
    }))
}
