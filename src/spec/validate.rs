//! Builds a [`Spec`] from the spanned tree: the top level, `[data]`, `[split]` and
//! `[preprocess]` here, the other sections in their own modules; every key's type, range and
//! default and the cross-field rules, reporting each problem with its key path.

use std::path::{Path, PathBuf};

use super::diagnostic::Diagnostic;
use super::model_section::model;
use super::positive::{ambiguous_help, ambiguous_message, positive_index, PositiveClassError};
use super::reader::{self as r, index, At, Diags, TableReader};
use super::training::{optimizer, schedule, train};
use super::tree::{Node, Segment, Value};
use super::types::*;

/// Reads the whole spec; `base` is the folder relative data paths start from, `spec_dir` the
/// spec file's folder (where a relative `model.pretrained` starts from).
pub fn spec(root: &Node, base: &Path, spec_dir: &Path, d: &mut Diags) -> Option<Spec> {
    let mut top = TableReader::new(root, &[], d)?;
    let name = top
        .required("name", d, "\"my-experiment\"")
        .and_then(|n| experiment_name(at(n, &top.path_of("name")), d));
    let seed = match top.entry("seed") {
        Some(e) => r::integer(at(&e.node, &top.path_of("seed")), 0, i64::MAX, d).map(|s| s as u64),
        None => Some(0),
    };
    // [sweep] is read by the sweep module; declared here so typos of it get a suggestion.
    top.entry("sweep");
    let task = match top.entry("task") {
        Some(e) => task(at(&e.node, &top.path_of("task")), d),
        None => Some(Task::Multiclass),
    };
    let data = section(&mut top, "data", d, true).and_then(|t| data(t, base, task, d));
    let split = section(&mut top, "split", d, false).and_then(|t| split(t, data.as_ref(), d));
    let preprocess =
        section(&mut top, "preprocess", d, false).and_then(|t| preprocess(t, data.as_ref(), d));
    let augment = section(&mut top, "augment", d, false)
        .and_then(|t| super::augment::augment(t, data.as_ref(), d));
    let input = augment
        .as_ref()
        .zip(data.as_ref())
        .map(|(a, data)| super::augment::input_shape(a, data));
    let (transfer_keys, model) = match section(&mut top, "model", d, true) {
        Some(mut t) => (Some(super::transfer::take(&mut t)), model(t, input, d)),
        None => (None, None),
    };
    let transfer =
        transfer_keys.and_then(|k| super::transfer::read(k, model.as_ref(), input, spec_dir, d));
    let optimizer = section(&mut top, "optimizer", d, false).and_then(|t| optimizer(t, d));
    let train = section(&mut top, "train", d, false)
        .and_then(|t| train(t, task.unwrap_or(Task::Multiclass), data.as_ref(), d));
    let schedule = section(&mut top, "schedule", d, false)
        .and_then(|t| schedule(t, optimizer.as_ref(), train.as_ref(), split.as_ref(), d));
    let launch = super::launch::read(&mut top, d);
    let model_span = top.entry("model").map(|e| e.node.span);
    top.finish(d);
    if let (Some(model), Some(train), Some(input), Some(task), Some(span)) =
        (&model, &train, input, task, model_span)
    {
        let classes = data.as_ref().and_then(|d| d.classes.as_ref()).map(Vec::len);
        if !fits_in_memory(model, train, input, task, classes, span, d) {
            return None;
        }
    }
    Some(Spec {
        name: name?,
        seed: seed?,
        task: task?,
        data: data?,
        split: split?,
        preprocess: preprocess?,
        model: model?,
        transfer: transfer?,
        optimizer: optimizer?,
        schedule: schedule?,
        train: train?,
        augment: augment?,
        launch: launch?,
    })
}

/// The folder relative data paths start from: `data.root` (itself relative to `spec_dir`, the
/// spec file's folder) when the spec sets it as a string, else `spec_dir`. Its errors are
/// reported when `[data]` is read.
pub fn data_root(root: &Node, spec_dir: &Path) -> PathBuf {
    let Value::Table(top) = &root.value else {
        return spec_dir.to_path_buf();
    };
    let Some(Value::Table(data)) = top.get("data").map(|e| &e.node.value) else {
        return spec_dir.to_path_buf();
    };
    match data.get("root").map(|e| &e.node.value) {
        Some(Value::Str(s)) => spec_dir.join(s),
        _ => spec_dir.to_path_buf(),
    }
}

/// Refuses a model that cannot train in this machine's memory at its batch size, with the
/// numbers (see [`crate::model::cost`]); true when it fits or the memory is unknown.
fn fits_in_memory(
    model: &ModelSpec,
    train: &TrainSpec,
    (c, h, w): (usize, usize, usize),
    task: Task,
    classes: Option<usize>,
    span: super::source::Span,
    d: &mut Diags,
) -> bool {
    use crate::model::cost::{for_model, human_bytes, machine_memory};
    let (Some(cost), Some(memory)) = (for_model(model, (c, h, w), task, classes), machine_memory())
    else {
        return true;
    };
    let need = cost.training_bytes(train.batch_size);
    let have = memory / 10 * 9;
    if need <= have {
        return true;
    }
    d.error(
        span,
        &[Segment::Key("model".into())],
        format!(
            "the model cannot train in this machine's memory: about {} at train.batch_size = {} ({} parameters, {} of activations per image), but the machine has {}",
            human_bytes(need),
            train.batch_size,
            cost.parameters,
            human_bytes(cost.activations_per_image.saturating_mul(4)),
            human_bytes(memory)
        ),
        Some("use a smaller batch_size, data.image_size, or fewer or narrower layers".into()),
    );
    false
}

pub(super) fn at<'a>(node: &'a Node, path: &'a [Segment]) -> At<'a> {
    At { node, path }
}

/// A section's table reader; an absent optional section reads as an empty table.
pub(super) fn section<'a>(
    top: &mut TableReader<'a>,
    key: &'static str,
    d: &mut Diags,
    required: bool,
) -> Option<TableReader<'a>> {
    static EMPTY: std::sync::OnceLock<Node> = std::sync::OnceLock::new();
    let path = top.path_of(key);
    match top.entry(key) {
        Some(e) => TableReader::new(&e.node, &path, d),
        None if required => {
            let help = Some(format!(
                "add a [{key}] section (see the README's spec reference)"
            ));
            d.error(top.span(), &path, format!("missing section [{key}]"), help);
            None
        }
        None => {
            let empty = EMPTY.get_or_init(|| Node {
                value: Value::Table(Default::default()),
                span: super::source::Span {
                    source: 0,
                    start: 0,
                    end: 0,
                },
            });
            TableReader::new(empty, &path, d)
        }
    }
}

/// Reads an optional key with `read`, or returns `default`.
pub(super) fn opt<T>(
    t: &mut TableReader<'_>,
    key: &'static str,
    d: &mut Diags,
    default: T,
    read: impl for<'b> FnOnce(At<'b>, &mut Diags) -> Option<T>,
) -> Option<T> {
    let path = t.path_of(key);
    match t.entry(key) {
        Some(e) => read(
            At {
                node: &e.node,
                path: &path,
            },
            d,
        ),
        None => Some(default),
    }
}

/// The longest experiment name: it becomes a folder name, with room for `.<unix time>` beside it.
const MAX_NAME: usize = 100;

fn experiment_name(a: At, d: &mut Diags) -> Option<String> {
    let s = r::string(a, d)?;
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok {
        d.error(
            a.node.span,
            a.path,
            format!(
                "invalid experiment name \"{}\"",
                super::diagnostic::clip(&s, 60)
            ),
            Some(format!("use at most {MAX_NAME} letters, digits, '.', '_' and '-' (it becomes a folder name)")),
        );
        return None;
    }
    Some(s)
}

fn task(a: At, d: &mut Diags) -> Option<Task> {
    Some(
        match r::choice(a, &["multiclass", "binary", "multilabel"], d)?.as_str() {
            "binary" => Task::Binary,
            "multilabel" => Task::Multilabel,
            _ => Task::Multiclass,
        },
    )
}

fn data(mut t: TableReader, base: &Path, task: Option<Task>, d: &mut Diags) -> Option<DataSpec> {
    let format_path = t.path_of("format");
    let format = t.required("format", d, "\"image-folder\"").and_then(|n| {
        let s = r::choice(at(n, &format_path), &["image-folder", "idx", "csv"], d)?;
        Some(match s.as_str() {
            "idx" => DataFormat::Idx,
            "csv" => DataFormat::Csv,
            _ => DataFormat::ImageFolder,
        })
    });
    // `root` was read before validation (see [`data_root`]): `base` is already that folder.
    let root_path = t.path_of("root");
    if let Some(e) = t.entry("root") {
        let a = at(&e.node, &root_path);
        r::string(a, d)?;
        if !base.is_dir() {
            d.error(
                e.node.span,
                a.path,
                format!("no such folder: {}", base.display()),
                Some("data.root is relative to the spec file's folder".into()),
            );
            return None;
        }
    }
    let train_path = t.path_of("train");
    let train_node = t.required("train", d, "\"path/to/train\"");
    let test_path = t.path_of("test");
    let test_node = t.entry("test").map(|e| &e.node);
    let default_channels = if format == Some(DataFormat::Idx) {
        1
    } else {
        3
    };
    let channels = opt(&mut t, "channels", d, default_channels, |a, d| {
        let c = r::integer(a, 1, 3, d)?;
        if c == 2 {
            d.error(
                a.node.span,
                a.path,
                "channels must be 1 (grayscale) or 3 (RGB)",
                None,
            );
            return None;
        }
        Some(c as usize)
    });
    let size_path = t.path_of("image_size");
    let image_size = t
        .required("image_size", d, "[28, 28]")
        .and_then(|n| image_size(at(n, &size_path), d));
    let on_corrupt = opt(&mut t, "on_corrupt", d, OnCorrupt::Error, |a, d| {
        Some(if r::choice(a, &["error", "skip"], d)? == "skip" {
            OnCorrupt::Skip
        } else {
            OnCorrupt::Error
        })
    });
    let classes_span = t.entry("classes").map(|e| e.node.span);
    let classes_path = t.path_of("classes");
    let format_span = t.entry("format").map(|e| e.node.span);
    let classes = opt(&mut t, "classes", d, None, |a, d| {
        names(a, "class", 2, d).map(Some)
    });
    let positive_path = t.path_of("positive_class");
    let positive_node = t.entry("positive_class").map(|e| &e.node);
    let labels_path = t.path_of("labels");
    let labels_span = t.entry("labels").map(|e| e.key_span);
    let labels = opt(&mut t, "labels", d, None, |a, d| {
        names(a, "label", 1, d).map(Some)
    });
    t.finish(d);
    let classes = classes?;
    let labels = labels?;
    if let Some(span) = labels_span {
        if task != Some(Task::Multilabel) || format != Some(DataFormat::Csv) {
            d.error(
                span,
                &labels_path,
                "labels applies only to task = \"multilabel\" with format = \"csv\" (a manifest with one 0/1 column per label)",
                None,
            );
            return None;
        }
        if classes.is_some() {
            d.error(
                span,
                &labels_path,
                "labels conflicts with classes: the label columns are the classes",
                Some("remove classes; the order of labels is the class order".into()),
            );
            return None;
        }
    }
    if let (Some(Task::Binary), Some(list), Some(span)) = (task, &classes, classes_span) {
        if list.len() != 2 {
            d.error(
                span,
                &classes_path,
                format!(
                    "task \"binary\" needs exactly 2 classes, found {}",
                    list.len()
                ),
                Some("use task = \"multiclass\" for more classes".into()),
            );
            return None;
        }
    }
    if task == Some(Task::Multilabel) && format != Some(DataFormat::Csv) {
        if let Some(f) = format {
            let name = if f == DataFormat::Idx {
                "idx"
            } else {
                "image-folder"
            };
            d.error(
                t_span_fallback_or(format_span),
                &format_path,
                format!("task \"multilabel\" needs a CSV manifest, not format \"{name}\""),
                Some("use format = \"csv\" with `label` cells like \"cat;dog\"".into()),
            );
            return None;
        }
    }
    let positive_class = match positive_node {
        None => None,
        Some(n) => {
            let a = at(n, &positive_path);
            let s = r::string(a, d)?;
            if task != Some(Task::Binary) {
                d.error(
                    n.span,
                    &positive_path,
                    "positive_class applies only to task = \"binary\"",
                    None,
                );
                return None;
            }
            if let Some(list) = &classes {
                if !list.contains(&s) {
                    let names: Vec<&str> = list.iter().map(String::as_str).collect();
                    r::choice(a, &names, d);
                    return None;
                }
            }
            Some(s)
        }
    };
    // With the classes in the spec, a missing positive class is known now, not after loading.
    if let (Some(Task::Binary), Some(list), Some(span), None) =
        (task, &classes, classes_span, &positive_class)
    {
        if let Err(PositiveClassError::Ambiguous { classes }) = positive_index(list, None) {
            d.error(
                span,
                &positive_path,
                ambiguous_message(&classes),
                Some(ambiguous_help(&classes)),
            );
            return None;
        }
    }
    let format = format?;
    let train = source(at(train_node?, &train_path), format, base, d);
    let test = match test_node {
        Some(n) => Some(source(at(n, &test_path), format, base, d)?),
        None => None,
    };
    Some(DataSpec {
        format,
        train: train?,
        test,
        channels: channels?,
        image_size: image_size?,
        on_corrupt: on_corrupt?,
        classes,
        positive_class,
        labels,
    })
}

fn image_size(a: At, d: &mut Diags) -> Option<[usize; 2]> {
    let items = r::array(a, d)?;
    height_width(a, items, d)
}

/// `[height, width]`, each 1..=4096, from the two `items` of the array at `a`.
pub(super) fn height_width(a: At, items: &[Node], d: &mut Diags) -> Option<[usize; 2]> {
    if items.len() != 2 {
        d.error(
            a.node.span,
            a.path,
            format!("expected [height, width], found {} values", items.len()),
            None,
        );
        return None;
    }
    let h = r::integer(at(&items[0], &index(a.path, 0)), 1, 4096, d);
    let w = r::integer(at(&items[1], &index(a.path, 1)), 1, 4096, d);
    Some([h? as usize, w? as usize])
}

/// A list of distinct strings (`what`: "class" or "label"), at least `min` of them.
fn names(a: At, what: &str, min: usize, d: &mut Diags) -> Option<Vec<String>> {
    let items = r::array(a, d)?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = index(a.path, i);
        let s = r::string(at(item, &p), d)?;
        if out.contains(&s) {
            d.error(
                item.span,
                &p,
                format!("{what} \"{s}\" is listed twice"),
                None,
            );
            return None;
        }
        out.push(s);
    }
    if out.len() < min {
        let message = match min {
            1 => format!("at least one {what} is needed"),
            _ => format!("a classification task needs at least {min} classes"),
        };
        d.error(a.node.span, a.path, message, None);
        return None;
    }
    Some(out)
}

/// The message that starts the error of a data path that does not exist.
const NO_SUCH_PATH: &str = "no such file or folder: ";

/// Points the errors of missing data paths at the command that makes the data, when a comment
/// of the spec names one: a comment line `<command>  # writes <folder>` whose folder holds the
/// missing path (as the example specs say how their derived data is made).
pub(super) fn with_setup_hints(mut list: Vec<Diagnostic>, spec_text: &str) -> Vec<Diagnostic> {
    let makers: Vec<(&str, &str)> = spec_text
        .lines()
        .filter_map(|l| {
            let comment = l.trim_start().strip_prefix('#')?;
            let (command, note) = comment.split_once('#')?;
            let folder = note
                .trim()
                .strip_prefix("writes ")?
                .split_whitespace()
                .next()?;
            Some((command.trim(), folder.trim_end_matches('/')))
        })
        .filter(|(command, folder)| !command.is_empty() && !folder.is_empty())
        .collect();
    for d in &mut list {
        let Some(span) = d.span.filter(|s| s.source == 0) else {
            continue;
        };
        if !d.message.starts_with(NO_SUCH_PATH) {
            continue;
        }
        let Some(value) = spec_text.get(span.start..span.end) else {
            continue;
        };
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        if let Some((command, folder)) = makers
            .iter()
            .find(|(_, folder)| Path::new(value).starts_with(folder))
        {
            d.help = Some(format!(
                "the spec's comment says `{command}` writes {folder}/: run it first"
            ));
        }
    }
    list
}

fn existing_path(a: At, base: &Path, d: &mut Diags) -> Option<PathBuf> {
    let s = r::string(a, d)?;
    let p = base.join(&s);
    if !p.exists() && !d.paths_may_be_missing {
        d.error(
            a.node.span,
            a.path,
            format!("{NO_SUCH_PATH}{}", p.display()),
            Some("relative paths start from the spec file's folder".into()),
        );
        return None;
    }
    Some(std::path::absolute(&p).unwrap_or(p))
}

fn source(a: At, format: DataFormat, base: &Path, d: &mut Diags) -> Option<SourceSpec> {
    match format {
        DataFormat::Idx => {
            let Value::Table(_) = &a.node.value else {
                r::type_error(
                    a,
                    "a table { images = \"...\", labels = \"...\" } for format \"idx\"",
                    d,
                );
                return None;
            };
            let mut t = TableReader::new(a.node, a.path, d)?;
            let ip = t.path_of("images");
            let lp = t.path_of("labels");
            let images = t
                .required("images", d, "\"train-images-idx3-ubyte.gz\"")
                .and_then(|n| existing_path(at(n, &ip), base, d));
            let labels = t
                .required("labels", d, "\"train-labels-idx1-ubyte.gz\"")
                .and_then(|n| existing_path(at(n, &lp), base, d));
            t.finish(d);
            Some(SourceSpec::Idx {
                images: images?,
                labels: labels?,
            })
        }
        DataFormat::ImageFolder | DataFormat::Csv => {
            let Value::Str(_) = &a.node.value else {
                let what = if format == DataFormat::Csv {
                    "the path of a CSV manifest"
                } else {
                    "the path of a folder with one subfolder per class"
                };
                r::type_error(a, &format!("a string: {what}"), d);
                return None;
            };
            existing_path(a, base, d).map(SourceSpec::Path)
        }
    }
}

fn split(mut t: TableReader, data: Option<&DataSpec>, d: &mut Diags) -> Option<SplitSpec> {
    let fraction = |a: At, d: &mut Diags| {
        r::number(a, "at least 0 and below 1", |v| (0.0..1.0).contains(&v), d)
    };
    let vf_span = t.entry("validation_fraction").map(|e| e.key_span);
    let validation_fraction = opt(&mut t, "validation_fraction", d, 0.1, fraction);
    let test_span = t.entry("test_fraction").map(|e| e.node.span);
    let test_fraction = opt(&mut t, "test_fraction", d, 0.0, fraction);
    let stratify = opt(&mut t, "stratify", d, true, r::boolean);
    let folds = opt(&mut t, "folds", d, 0, |a, d| {
        let k = r::integer(a, 0, 1000, d)?;
        if k == 1 {
            d.error(
                a.node.span,
                a.path,
                "1 fold is not cross-validation",
                Some("use folds = 0 (a single validation split) or at least 2".into()),
            );
            return None;
        }
        Some(k as usize)
    });
    let method_span = t.entry("fold_method").map(|e| e.node.span);
    let fold_method = opt(
        &mut t,
        "fold_method",
        d,
        FoldMethod::StratifiedKFold,
        |a, d| {
            Some(
                match r::choice(a, &["stratified-kfold", "kfold", "group-kfold"], d)?.as_str() {
                    "kfold" => FoldMethod::KFold,
                    "group-kfold" => FoldMethod::GroupKFold,
                    _ => FoldMethod::StratifiedKFold,
                },
            )
        },
    );
    let refit_span = t.entry("refit").map(|e| e.node.span);
    let refit = opt(&mut t, "refit", d, false, r::boolean);
    let tf_path = t.path_of("test_fraction");
    let path = t.path.clone();
    t.finish(d);
    let (v, tf, folds, fold_method, refit) = (
        validation_fraction?,
        test_fraction?,
        folds?,
        fold_method?,
        refit?,
    );
    if let (Some(span), Some(data)) = (test_span, data) {
        if data.test.is_some() && tf > 0.0 {
            d.error(span, &tf_path, "test_fraction conflicts with data.test: the test set is either a separate path or a held-out fraction", Some("remove one of them".into()));
            return None;
        }
    }
    if folds >= 2 {
        if let (Some(span), true) = (vf_span, v > 0.0) {
            d.error(span, &r::child(&path, "validation_fraction"), "validation_fraction conflicts with folds: with cross-validation each fold is the validation set once", Some("remove one of them".into()));
            return None;
        }
    } else if let Some(span) = method_span.or(refit_span) {
        let key = if method_span.is_some() {
            "fold_method"
        } else {
            "refit"
        };
        d.error(
            span,
            &r::child(&path, key),
            format!("{key} needs cross-validation"),
            Some("set split.folds = 5 (or another k ≥ 2)".into()),
        );
        return None;
    }
    if fold_method == FoldMethod::GroupKFold
        && folds >= 2
        && data.is_some_and(|d| d.format != DataFormat::Csv)
    {
        d.error(method_span.unwrap_or(t_span_fallback()), &r::child(&path, "fold_method"), "group-kfold needs groups: a CSV manifest (data.format = \"csv\") with a `group` column", None);
        return None;
    }
    let v = if folds >= 2 { 0.0 } else { v };
    if v + tf >= 1.0 {
        d.error(
            test_span.unwrap_or(t_span_fallback()),
            &tf_path,
            format!(
                "validation_fraction + test_fraction = {} leaves no training data",
                v + tf
            ),
            None,
        );
        return None;
    }
    if refit && tf == 0.0 && data.is_some_and(|d| d.test.is_none()) {
        d.error(
            refit_span.unwrap_or(t_span_fallback()),
            &r::child(&path, "refit"),
            "refit evaluates the best trial on the test set, but there is none",
            Some("add data.test or split.test_fraction".into()),
        );
        return None;
    }
    Some(SplitSpec {
        validation_fraction: v,
        test_fraction: tf,
        stratify: stratify?,
        folds,
        fold_method,
        refit,
    })
}

fn t_span_fallback_or(span: Option<super::source::Span>) -> super::source::Span {
    span.unwrap_or_else(t_span_fallback)
}

fn t_span_fallback() -> super::source::Span {
    super::source::Span {
        source: 0,
        start: 0,
        end: 0,
    }
}

fn preprocess(
    mut t: TableReader,
    data: Option<&DataSpec>,
    d: &mut Diags,
) -> Option<PreprocessSpec> {
    let resize = opt(&mut t, "resize", d, ResizeMethod::Bilinear, |a, d| {
        Some(
            match r::choice(a, &["bilinear", "nearest", "none"], d)?.as_str() {
                "nearest" => ResizeMethod::Nearest,
                "none" => ResizeMethod::None,
                _ => ResizeMethod::Bilinear,
            },
        )
    });
    let channels = data.map(|d| d.channels);
    let normalize = opt(&mut t, "normalize", d, Normalize::Auto, |a, d| {
        normalize(a, channels, d)
    });
    t.finish(d);
    Some(PreprocessSpec {
        resize: resize?,
        normalize: normalize?,
    })
}

fn normalize(a: At, channels: Option<usize>, d: &mut Diags) -> Option<Normalize> {
    match &a.node.value {
        Value::Str(_) => Some(if r::choice(a, &["auto", "none"], d)? == "auto" {
            Normalize::Auto
        } else {
            Normalize::None
        }),
        Value::Table(_) => {
            let mut t = TableReader::new(a.node, a.path, d)?;
            let (mp, sp) = (t.path_of("mean"), t.path_of("std"));
            let mean_node = t.required("mean", d, "[0.5]");
            let std_node = t.required("std", d, "[0.25]");
            t.finish(d);
            let mean = r::numbers(at(mean_node?, &mp), "a finite number", |_| true, d);
            let std = r::numbers(at(std_node?, &sp), "above 0", |v| v > 0.0, d);
            let (mean, std) = (mean?, std?);
            if let Some(c) = channels {
                for (vals, node, p, what) in [
                    (&mean, mean_node?, &mp, "mean"),
                    (&std, std_node?, &sp, "std"),
                ] {
                    if vals.len() != c {
                        d.error(
                            node.span,
                            p,
                            format!(
                                "normalize.{what} has {} values but data.channels is {c}",
                                vals.len()
                            ),
                            Some(format!("give one {what} per channel")),
                        );
                        return None;
                    }
                }
            }
            Some(Normalize::Fixed { mean, std })
        }
        _ => {
            r::type_error(
                a,
                "\"auto\", \"none\" or a table { mean = [...], std = [...] }",
                d,
            );
            None
        }
    }
}
