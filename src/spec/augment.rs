//! Reads `[augment]`: the train and eval transform lists (inline tables or `[[augment.train]]`),
//! `[augment.mixup]` and `[augment.cutmix]`, checking every parameter against the image shape
//! at its point of the list.

use super::reader::{self as r, index, At, Diags, TableReader};
use super::tree::{Node, Segment, Value};
use super::types::{DataSpec, Spec};
use super::validate::{at, height_width, opt};
use crate::augment::{
    output_shape, AugmentSpec, BatchMix, EraseValue, MixSpec, Pipeline, RandomWord, Transform,
    TransformSpec,
};

/// The transform `type`s, as written in the spec.
pub const TRANSFORM_TYPES: &[&str] = &[
    "resize",
    "center_crop",
    "random_crop",
    "random_resized_crop",
    "horizontal_flip",
    "vertical_flip",
    "rotation",
    "affine",
    "brightness",
    "contrast",
    "saturation",
    "hue",
    "grayscale",
    "equalize",
    "clahe",
    "gaussian_blur",
    "gaussian_noise",
    "random_erasing",
    "rand_augment",
    "trivial_augment",
];

/// `(channels, height, width)` as decoded: `data.channels` × `data.image_size`.
fn decoded_shape(data: &DataSpec) -> (usize, usize, usize) {
    (data.channels, data.image_size[0], data.image_size[1])
}

/// The model's input shape: the decoded shape after the train list.
pub fn input_shape(a: &AugmentSpec, data: &DataSpec) -> (usize, usize, usize) {
    output_shape(&a.train, decoded_shape(data))
}

impl Spec {
    /// `(channels, height, width)` of what the model sees: `data.image_size` after the
    /// `[augment]` lists (train and eval give the same size; the spec checks that).
    pub fn input_shape(&self) -> (usize, usize, usize) {
        input_shape(&self.augment, &self.data)
    }

    /// The `augment.train` list for the decoded images.
    pub fn train_pipeline(&self) -> Pipeline {
        Pipeline::new(&self.augment.train, decoded_shape(&self.data))
    }

    /// The `augment.eval` list for the decoded images (validation, test, prediction).
    pub fn eval_pipeline(&self) -> Pipeline {
        Pipeline::new(&self.augment.eval, decoded_shape(&self.data))
    }

    /// Batch-level mixing (`[augment.mixup]`, `[augment.cutmix]`) for batches of the model's input shape.
    pub fn batch_mix(&self) -> BatchMix {
        BatchMix::new(&self.augment, self.input_shape())
    }
}

pub fn augment(mut t: TableReader, data: Option<&DataSpec>, d: &mut Diags) -> Option<AugmentSpec> {
    let input = data.map(decoded_shape);
    let train_path = t.path_of("train");
    let train_node = t.entry("train").map(|e| &e.node);
    let eval_path = t.path_of("eval");
    let eval_node = t.entry("eval").map(|e| &e.node);
    let train = match train_node {
        Some(n) => list(at(n, &train_path), input, false, d),
        None => Some(Vec::new()),
    };
    let eval = match eval_node {
        Some(n) => list(at(n, &eval_path), input, true, d),
        None => Some(Vec::new()),
    };
    let mixup = opt(&mut t, "mixup", d, None, |a, d| mix(a, 0.2, d).map(Some));
    let cutmix = opt(&mut t, "cutmix", d, None, |a, d| mix(a, 1.0, d).map(Some));
    t.finish(d);
    let (train, eval, mixup, cutmix) = (train?, eval?, mixup?, cutmix?);
    if let Some(input) = input {
        let (a, b) = (output_shape(&train, input), output_shape(&eval, input));
        if a != b {
            let (node, path) = match (eval_node, train_node) {
                (Some(n), _) => (n, &eval_path),
                (None, Some(n)) => (n, &train_path),
                (None, None) => unreachable!("two empty lists give the same shape"),
            };
            d.error(
                node.span,
                path,
                format!(
                    "the train list gives {}×{} images but the eval list gives {}×{}: the model takes one input size",
                    a.1, a.2, b.1, b.2
                ),
                Some("end both lists at the same size, e.g. random_crop in train and center_crop in eval".into()),
            );
            return None;
        }
    }
    Some(AugmentSpec {
        train,
        eval,
        mixup,
        cutmix,
    })
}

fn mix(a: At, default_alpha: f64, d: &mut Diags) -> Option<MixSpec> {
    let mut t = TableReader::new(a.node, a.path, d)?;
    let alpha = opt(&mut t, "alpha", d, default_alpha, |a, d| {
        r::number(a, "above 0", |v| v > 0.0, d)
    });
    let p = opt(&mut t, "p", d, 1.0, probability);
    t.finish(d);
    Some(MixSpec {
        alpha: alpha?,
        p: p?,
    })
}

fn probability(a: At, d: &mut Diags) -> Option<f64> {
    r::number(a, "between 0 and 1", |v| (0.0..=1.0).contains(&v), d)
}

/// A transform list; `shape` is the image shape at its start (unknown if the data section is
/// broken). In `eval` only deterministic transforms are allowed.
fn list(
    a: At,
    input: Option<(usize, usize, usize)>,
    eval: bool,
    d: &mut Diags,
) -> Option<Vec<TransformSpec>> {
    let items = r::array(a, d)?;
    let mut out = Vec::with_capacity(items.len());
    // the size is unknown after a transform that failed; the channel count never changes
    let channels = input.map(|s| s.0);
    let mut shape = input;
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = index(a.path, i);
        match transform(at(item, &p), channels, shape, d) {
            Some(t) => {
                if eval && t.is_random() {
                    d.error(
                        item.span,
                        &p,
                        format!(
                            "`{}` here is random, but the eval list must give the same image every time",
                            t.op.name()
                        ),
                        Some("move it to augment.train, or make it fixed (p = 1 and a single value, not a range)".into()),
                    );
                    ok = false;
                }
                shape = shape.map(|s| t.op.output_shape(s));
                out.push(t);
            }
            None => {
                ok = false;
                shape = None;
            }
        }
    }
    ok.then_some(out)
}

/// The default `p` of each type (torchvision's for the `Random…` classes).
fn default_p(kind: &str) -> f64 {
    match kind {
        "horizontal_flip" | "vertical_flip" | "random_erasing" => 0.5,
        _ => 1.0,
    }
}

/// Types that change the image size: they always apply (`p` can only be 1).
fn resizes(kind: &str) -> bool {
    matches!(
        kind,
        "resize" | "center_crop" | "random_crop" | "random_resized_crop"
    )
}

fn transform(
    a: At,
    channels: Option<usize>,
    shape: Option<(usize, usize, usize)>,
    d: &mut Diags,
) -> Option<TransformSpec> {
    let mut t = TableReader::new(a.node, a.path, d)?;
    let type_path = t.path_of("type");
    let type_node = t.required("type", d, "\"random_crop\"")?;
    let kind = r::choice(at(type_node, &type_path), TRANSFORM_TYPES, d)?;
    let p = if resizes(&kind) {
        opt(&mut t, "p", d, 1.0, |a, d| {
            let p = probability(a, d)?;
            if p != 1.0 {
                d.error(
                    a.node.span,
                    a.path,
                    format!("`{kind}` changes the image size, so it always applies: p must be 1"),
                    None,
                );
                return None;
            }
            Some(p)
        })
    } else {
        opt(&mut t, "p", d, default_p(&kind), probability)
    };
    let (h, w) = shape.map_or((None, None), |s| (Some(s.1), Some(s.2)));
    let fill = |t: &mut TableReader, d: &mut Diags| {
        opt(t, "fill", d, 0u8, |a, d| {
            r::integer(a, 0, 255, d).map(|v| v as u8)
        })
    };
    let colour_ok = !(matches!(kind.as_str(), "saturation" | "hue") && channels == Some(1));
    if !colour_ok {
        d.error(
            type_node.span,
            &type_path,
            format!("`{kind}` needs 3-channel (RGB) images, but these have 1 channel"),
            Some("set data.channels = 3, or leave it out for grayscale data".into()),
        );
    }
    let op = match kind.as_str() {
        "resize" => {
            let size = required(&mut t, "size", "[28, 28]", d, size);
            Transform::Resize { size: size? }
        }
        "center_crop" => {
            let sp = t.path_of("size");
            let node = t.entry("size").map(|e| &e.node);
            let size = required(&mut t, "size", "[24, 24]", d, size)?;
            if let (Some(h), Some(w), Some(node)) = (h, w, node) {
                if size[0] > h || size[1] > w {
                    d.error(
                        node.span,
                        &sp,
                        format!(
                            "a {}×{} crop is larger than the {h}×{w} image at this point of the list",
                            size[0], size[1]
                        ),
                        None,
                    );
                    return None;
                }
            }
            Transform::CenterCrop { size }
        }
        "random_crop" => {
            let sp = t.path_of("size");
            let node = t.entry("size").map(|e| &e.node);
            let size = required(&mut t, "size", "[24, 24]", d, size);
            let padding = opt(&mut t, "padding", d, 0, |a, d| {
                r::integer(a, 0, 4096, d).map(|v| v as usize)
            });
            let fill = fill(&mut t, d);
            let (size, padding) = (size?, padding?);
            if let (Some(h), Some(w), Some(node)) = (h, w, node) {
                let (ph, pw) = (h + 2 * padding, w + 2 * padding);
                if size[0] > ph || size[1] > pw {
                    let what = if padding > 0 {
                        format!("the {ph}×{pw} padded image ({h}×{w} with padding {padding})")
                    } else {
                        format!("the {h}×{w} image at this point of the list")
                    };
                    d.error(
                        node.span,
                        &sp,
                        format!("a {}×{} crop is larger than {what}", size[0], size[1]),
                        Some("use a smaller size or more padding".into()),
                    );
                    return None;
                }
            }
            Transform::RandomCrop {
                size,
                padding,
                fill: fill?,
            }
        }
        "random_resized_crop" => {
            let size = required(&mut t, "size", "[24, 24]", d, size);
            let scale = opt(&mut t, "scale", d, [0.08, 1.0], |a, d| {
                pair(a, "above 0 and at most 1", |v| v > 0.0 && v <= 1.0, d)
            });
            let ratio = opt(&mut t, "ratio", d, [3.0 / 4.0, 4.0 / 3.0], |a, d| {
                pair(a, "above 0", |v| v > 0.0, d)
            });
            Transform::RandomResizedCrop {
                size: size?,
                scale: scale?,
                ratio: ratio?,
            }
        }
        "horizontal_flip" => Transform::HorizontalFlip {},
        "vertical_flip" => Transform::VerticalFlip {},
        "grayscale" => Transform::Grayscale {},
        "equalize" => Transform::Equalize {},
        "rotation" => {
            let degrees = required(&mut t, "degrees", "10", d, symmetric);
            Transform::Rotation {
                degrees: degrees?,
                fill: fill(&mut t, d)?,
            }
        }
        "affine" => {
            let degrees = required(&mut t, "degrees", "10", d, symmetric);
            let translate = opt(&mut t, "translate", d, [0.0, 0.0], |a, d| {
                let v = r::numbers(a, "between 0 and 1", |v| (0.0..=1.0).contains(&v), d)?;
                exactly_two(a, v, "[x_fraction, y_fraction]", d)
            });
            let scale = opt(&mut t, "scale", d, [1.0, 1.0], |a, d| {
                pair(a, "above 0", |v| v > 0.0, d)
            });
            let shear = opt(&mut t, "shear", d, [0.0; 4], shear);
            Transform::Affine {
                degrees: degrees?,
                translate: translate?,
                scale: scale?,
                shear: shear?,
                fill: fill(&mut t, d)?,
            }
        }
        "brightness" | "contrast" | "saturation" => {
            let factor = required(&mut t, "factor", "0.2", d, factor);
            let factor = factor?;
            match kind.as_str() {
                "brightness" => Transform::Brightness { factor },
                "contrast" => Transform::Contrast { factor },
                _ => Transform::Saturation { factor },
            }
        }
        "hue" => {
            let factor = required(&mut t, "factor", "0.1", d, hue);
            Transform::Hue { factor: factor? }
        }
        "clahe" => {
            let clip_limit = opt(&mut t, "clip_limit", d, 4.0, |a, d| {
                r::number(a, "at least 0", |v| v >= 0.0, d)
            });
            let gp = t.path_of("tile_grid");
            let node = t.entry("tile_grid").map(|e| &e.node);
            let tile_grid = opt(&mut t, "tile_grid", d, [8, 8], size)?;
            if let (Some(h), Some(w), Some(node)) = (h, w, node) {
                if tile_grid[0] > h || tile_grid[1] > w {
                    d.error(
                        node.span,
                        &gp,
                        format!(
                            "a {}×{} tile grid has more tiles than the {h}×{w} image has pixels",
                            tile_grid[0], tile_grid[1]
                        ),
                        None,
                    );
                    return None;
                }
            }
            Transform::Clahe {
                clip_limit: clip_limit?,
                tile_grid,
            }
        }
        "gaussian_blur" => {
            let kernel_size = required(&mut t, "kernel_size", "3", d, kernel);
            let sigma = opt(&mut t, "sigma", d, [0.1, 2.0], |a, d| match &a.node.value {
                Value::Array(_) => pair(a, "above 0", |v| v > 0.0, d),
                _ => r::number(a, "above 0", |v| v > 0.0, d).map(|s| [s, s]),
            });
            Transform::GaussianBlur {
                kernel_size: kernel_size?,
                sigma: sigma?,
            }
        }
        "gaussian_noise" => {
            let mean = opt(&mut t, "mean", d, 0.0, |a, d| {
                r::number(a, "between -1 and 1", |v| (-1.0..=1.0).contains(&v), d)
            });
            let std = opt(&mut t, "std", d, 0.1, |a, d| {
                r::number(a, "at least 0", |v| v >= 0.0, d)
            });
            Transform::GaussianNoise {
                mean: mean?,
                std: std?,
            }
        }
        "random_erasing" => {
            let scale = opt(&mut t, "scale", d, [0.02, 0.33], |a, d| {
                pair(a, "above 0 and at most 1", |v| v > 0.0 && v <= 1.0, d)
            });
            let ratio = opt(&mut t, "ratio", d, [0.3, 3.3], |a, d| {
                pair(a, "above 0", |v| v > 0.0, d)
            });
            let value = opt(&mut t, "value", d, EraseValue::Constant(0), erase_value);
            Transform::RandomErasing {
                scale: scale?,
                ratio: ratio?,
                value: value?,
            }
        }
        "rand_augment" => {
            let num_ops = opt(&mut t, "num_ops", d, 2, |a, d| {
                r::integer(a, 0, 100, d).map(|v| v as usize)
            });
            let bins = opt(&mut t, "num_magnitude_bins", d, 31, |a, d| {
                r::integer(a, 2, 1000, d).map(|v| v as usize)
            });
            let mp = t.path_of("magnitude");
            let node = t.entry("magnitude").map(|e| &e.node);
            let magnitude = opt(&mut t, "magnitude", d, 9, |a, d| {
                r::integer(a, 0, 999, d).map(|v| v as usize)
            });
            let fill = fill(&mut t, d);
            let (bins, magnitude) = (bins?, magnitude?);
            if magnitude >= bins {
                d.error(
                    node.map_or(t.span(), |n| n.span),
                    &mp,
                    format!("magnitude {magnitude} is out of range: must be below num_magnitude_bins ({bins})"),
                    None,
                );
                return None;
            }
            Transform::RandAugment {
                num_ops: num_ops?,
                magnitude,
                num_magnitude_bins: bins,
                fill: fill?,
            }
        }
        _ => {
            let bins = opt(&mut t, "num_magnitude_bins", d, 31, |a, d| {
                r::integer(a, 2, 1000, d).map(|v| v as usize)
            });
            Transform::TrivialAugment {
                num_magnitude_bins: bins?,
                fill: fill(&mut t, d)?,
            }
        }
    };
    t.finish(d);
    if !colour_ok {
        return None;
    }
    Some(TransformSpec { op, p: p? })
}

/// A required key read with `read`.
fn required<T>(
    t: &mut TableReader,
    key: &'static str,
    example: &str,
    d: &mut Diags,
    read: impl FnOnce(At, &mut Diags) -> Option<T>,
) -> Option<T> {
    let path = t.path_of(key);
    let node = t.required(key, d, example)?;
    read(at(node, &path), d)
}

fn exactly_two(a: At, v: Vec<f64>, what: &str, d: &mut Diags) -> Option<[f64; 2]> {
    if v.len() != 2 {
        d.error(
            a.node.span,
            a.path,
            format!("expected {what}, found {} values", v.len()),
            None,
        );
        return None;
    }
    Some([v[0], v[1]])
}

/// `[min, max]` with both accepted by `check` and min ≤ max.
fn pair(a: At, rule: &str, check: impl Fn(f64) -> bool + Copy, d: &mut Diags) -> Option<[f64; 2]> {
    let v = r::numbers(a, rule, check, d)?;
    let v = exactly_two(a, v, "[min, max]", d)?;
    if v[0] > v[1] {
        d.error(
            a.node.span,
            a.path,
            format!("[{}, {}] is not a range: min is above max", v[0], v[1]),
            None,
        );
        return None;
    }
    Some(v)
}

/// `d` (meaning `[-d, d]`, d ≥ 0) or `[min, max]`.
fn symmetric(a: At, d: &mut Diags) -> Option<[f64; 2]> {
    match &a.node.value {
        Value::Array(_) => pair(a, "a finite number", |_| true, d),
        _ => r::number(a, "at least 0", |v| v >= 0.0, d).map(|v| [-v, v]),
    }
}

/// ColorJitter's form: `b` (meaning `[max(0, 1 - b), 1 + b]`) or `[min, max]` with min ≥ 0.
fn factor(a: At, d: &mut Diags) -> Option<[f64; 2]> {
    match &a.node.value {
        Value::Array(_) => pair(a, "at least 0", |v| v >= 0.0, d),
        _ => r::number(a, "at least 0", |v| v >= 0.0, d).map(|b| [(1.0 - b).max(0.0), 1.0 + b]),
    }
}

/// `h` in [0, 0.5] (meaning `[-h, h]`) or `[min, max]` within [-0.5, 0.5].
fn hue(a: At, d: &mut Diags) -> Option<[f64; 2]> {
    match &a.node.value {
        Value::Array(_) => pair(a, "between -0.5 and 0.5", |v| (-0.5..=0.5).contains(&v), d),
        _ => r::number(a, "between 0 and 0.5", |v| (0.0..=0.5).contains(&v), d).map(|h| [-h, h]),
    }
}

/// A shear angle in degrees: at ±90 the image is sheared to a line (the warp's matrix divides
/// by cos 90°), so only angles strictly between them are accepted.
fn shear_angle(v: f64) -> bool {
    v > -90.0 && v < 90.0
}

/// torchvision's shear forms: `s` (x in `[-s, s]`), `[min, max]` (x), or
/// `[x_min, x_max, y_min, y_max]`; every angle strictly between -90 and 90 degrees.
fn shear(a: At, d: &mut Diags) -> Option<[f64; 4]> {
    const RULE: &str = "above -90 and below 90 (degrees)";
    match &a.node.value {
        Value::Array(items) if items.len() == 4 => {
            let v = r::numbers(a, RULE, shear_angle, d)?;
            let ok = v[0] <= v[1] && v[2] <= v[3];
            if !ok {
                d.error(
                    a.node.span,
                    a.path,
                    "each of [x_min, x_max, y_min, y_max] needs min ≤ max",
                    None,
                );
                return None;
            }
            Some([v[0], v[1], v[2], v[3]])
        }
        Value::Array(_) => pair(a, RULE, shear_angle, d).map(|[x0, x1]| [x0, x1, 0.0, 0.0]),
        _ => r::number(
            a,
            "at least 0 and below 90 (degrees)",
            |v| (0.0..90.0).contains(&v),
            d,
        )
        .map(|s| [-s, s, 0.0, 0.0]),
    }
}

/// `n` (meaning n×n) or `[height, width]`, each 1..=4096.
fn size(a: At, d: &mut Diags) -> Option<[usize; 2]> {
    match &a.node.value {
        Value::Array(items) => height_width(a, items, d),
        _ => r::integer(a, 1, 4096, d).map(|v| [v as usize, v as usize]),
    }
}

/// An odd kernel size `k` (k×k) or `[kh, kw]`.
fn kernel(a: At, d: &mut Diags) -> Option<[usize; 2]> {
    let k = size(a, d)?;
    let items: Vec<(&Node, Vec<Segment>)> = match &a.node.value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| (n, index(a.path, i)))
            .collect(),
        _ => vec![(a.node, a.path.to_vec()), (a.node, a.path.to_vec())],
    };
    for (v, (node, path)) in k.iter().zip(&items) {
        if v % 2 == 0 {
            d.error(
                node.span,
                path,
                format!("the blur kernel size must be odd, found {v}"),
                Some(format!("use {} or {}", v - 1, v + 1)),
            );
            return None;
        }
    }
    Some(k)
}

fn erase_value(a: At, d: &mut Diags) -> Option<EraseValue> {
    match &a.node.value {
        Value::Str(_) => {
            r::choice(a, &["random"], d)?;
            Some(EraseValue::Random(RandomWord::Random))
        }
        _ => r::integer(a, 0, 255, d).map(|v| EraseValue::Constant(v as u8)),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::spec::{parse, Origin};

    fn spec(augment: &str) -> Spec {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
        let text = format!(
            "name = \"a\"\n[data]\nformat = \"idx\"\ntrain = {{ images = \"data/mnist-subset/train-images-idx3-ubyte.gz\", labels = \"data/mnist-subset/train-labels-idx1-ubyte.gz\" }}\nimage_size = [28, 28]\n[model]\narchitecture = \"mlp\"\nlayers = []\n[augment]\n{augment}"
        );
        match parse(&text, Origin::File("a.toml".into()), &dir, &[]) {
            Ok(e) => e.base,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn short_forms_expand_to_ranges_and_defaults() {
        let s = spec(
            "train = [\n{ type = \"brightness\", factor = 0.2 },\n{ type = \"rotation\", degrees = 10 },\n{ type = \"affine\", degrees = [0, 5], shear = 3 },\n{ type = \"horizontal_flip\" },\n{ type = \"random_erasing\", value = \"random\" },\n{ type = \"gaussian_blur\", kernel_size = 3, sigma = 1.5 },\n{ type = \"random_crop\", size = 24, padding = 2 },\n]\neval = [{ type = \"center_crop\", size = [24, 24] }]\n[augment.cutmix]\n",
        );
        let t = &s.augment.train;
        assert_eq!(t[0].op, Transform::Brightness { factor: [0.8, 1.2] });
        assert_eq!(t[0].p, 1.0);
        assert_eq!(
            t[1].op,
            Transform::Rotation {
                degrees: [-10.0, 10.0],
                fill: 0
            }
        );
        assert!(matches!(
            t[2].op,
            Transform::Affine {
                shear: [-3.0, 3.0, 0.0, 0.0],
                scale: [1.0, 1.0],
                ..
            }
        ));
        assert_eq!(t[3].p, 0.5);
        assert_eq!(t[4].p, 0.5);
        assert!(matches!(
            t[4].op,
            Transform::RandomErasing {
                value: EraseValue::Random(_),
                ..
            }
        ));
        assert_eq!(
            t[5].op,
            Transform::GaussianBlur {
                kernel_size: [3, 3],
                sigma: [1.5, 1.5]
            }
        );
        assert_eq!(s.input_shape(), (1, 24, 24));
        assert_eq!(s.train_pipeline().output_shape(), (1, 24, 24));
        assert_eq!(s.eval_pipeline().output_shape(), (1, 24, 24));
        assert_eq!(s.augment.cutmix, Some(MixSpec { alpha: 1.0, p: 1.0 }));
        assert_eq!(s.augment.mixup, None);
        assert!(!s.batch_mix().is_identity());
    }

    #[test]
    fn no_section_means_no_augmentation() {
        let s = spec("");
        assert!(s.augment.is_empty());
        assert_eq!(s.input_shape(), (1, 28, 28));
        assert!(s.train_pipeline().is_identity() && s.batch_mix().is_identity());
        let json = serde_json::to_value(&s).unwrap();
        assert!(
            json.get("augment").is_none(),
            "left out of the resolved spec"
        );
    }

    #[test]
    fn the_resolved_spec_round_trips() {
        let s = spec(
            "train = [\n{ type = \"random_resized_crop\", size = 28 },\n{ type = \"random_erasing\", value = \"random\" },\n{ type = \"random_erasing\", value = 3 },\n{ type = \"horizontal_flip\" },\n{ type = \"trivial_augment\" },\n]\n[augment.mixup]\n",
        );
        // through JSON (plan.json, read back by the worker)
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Spec>(&json).unwrap(), s);
        // through the TOML `assay validate` prints: valid spec text again
        #[derive(serde::Serialize)]
        struct Section<'a> {
            augment: &'a AugmentSpec,
        }
        let text = toml::to_string_pretty(&Section {
            augment: &s.augment,
        })
        .unwrap();
        let again = spec(&text);
        assert_eq!(again.augment, s.augment);
    }
}
