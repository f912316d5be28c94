//! The resolved spec as spec text: what `assay validate` prints and every job folder keeps
//! (`spec.toml`). It is valid input again and reproduces what it describes: every default is
//! written out, data paths are relative to `data.root`, and a sweep is written in the form the
//! reader takes.

use std::path::Path;

use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, TableLike, Value};

use super::sweep::{Domain, ParamValue, SweepMethod, SweepSpec};
use super::tree::Segment;
use super::types::Spec;

/// The spec text of `spec` (one trial's resolved spec, or an experiment's base), with data paths
/// written relative to `data_root` (the folder they started from), followed by `sweep` if given.
pub fn to_text(spec: &Spec, data_root: &Path, sweep: Option<&SweepSpec>) -> String {
    let mut doc = resolved_doc(spec, data_root);
    if let Some(sweep) = sweep {
        doc.insert("sweep", Item::Table(sweep_table(sweep)));
    }
    doc.to_string()
}

/// The text of a whole experiment: its base spec and its sweep. Where the sweep varies which
/// variant a table is (`optimizer.kind`, `schedule.type`, a layer's `type`), that table keeps only
/// the values every trial shares, so that each trial fills in its own variant's defaults again.
pub fn experiment_text(e: &super::Experiment) -> String {
    let mut doc = resolved_doc(&e.base, &e.spec_dir);
    let Some(sweep) = &e.sweep else {
        return doc.to_string();
    };
    let trials: Vec<DocumentMut> = e
        .trials
        .iter()
        .map(|t| resolved_doc(&t.spec, &e.spec_dir))
        .collect();
    for p in &sweep.parameters {
        let Some(path) = super::tree::parse_path(&p.path) else {
            continue;
        };
        let Some((Segment::Key(selector), parent)) = path.split_last() else {
            continue;
        };
        if selector != "kind" && selector != "type" {
            continue;
        }
        let shared = |key: &str, value: &str| {
            trials.iter().all(|t| {
                table_at(t.as_item(), parent)
                    .and_then(|tl| tl.get(key))
                    .is_some_and(|v| v.to_string().trim() == value)
            })
        };
        if let Some(table) = table_at_mut(doc.as_item_mut(), parent) {
            let drop: Vec<String> = table
                .iter()
                .filter(|(k, v)| *k != selector && !shared(k, v.to_string().trim()))
                .map(|(k, _)| k.to_string())
                .collect();
            for k in drop {
                table.remove(&k);
            }
        }
    }
    doc.insert("sweep", Item::Table(sweep_table(sweep)));
    doc.to_string()
}

fn table_at<'a>(item: &'a Item, path: &[Segment]) -> Option<&'a dyn TableLike> {
    let mut item = item;
    let mut value: Option<&Value> = None;
    for seg in path {
        match (value, seg) {
            (None, Segment::Key(k)) => match item.get(k.as_str())? {
                Item::Value(v) => value = Some(v),
                other => item = other,
            },
            (Some(v), Segment::Key(k)) => value = Some(v.as_inline_table()?.get(k)?),
            (Some(v), Segment::Index(i)) => value = Some(v.as_array()?.get(*i)?),
            (None, Segment::Index(_)) => return None,
        }
    }
    match value {
        Some(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
        None => item.as_table_like(),
    }
}

fn table_at_mut<'a>(item: &'a mut Item, path: &[Segment]) -> Option<&'a mut dyn TableLike> {
    let Some((first, rest)) = path.split_first() else {
        return item.as_table_like_mut();
    };
    let Segment::Key(k) = first else {
        return None;
    };
    match item.get_mut(k.as_str())? {
        Item::Value(v) => value_table_mut(v, rest),
        other => table_at_mut(other, rest),
    }
}

fn value_table_mut<'a>(v: &'a mut Value, path: &[Segment]) -> Option<&'a mut dyn TableLike> {
    let Some((first, rest)) = path.split_first() else {
        return v.as_inline_table_mut().map(|t| t as &mut dyn TableLike);
    };
    let next = match first {
        Segment::Key(k) => v.as_inline_table_mut()?.get_mut(k)?,
        Segment::Index(i) => v.as_array_mut()?.get_mut(*i)?,
    };
    value_table_mut(next, rest)
}

/// `spec` as a spec document (see [`to_text`]).
fn resolved_doc(spec: &Spec, data_root: &Path) -> DocumentMut {
    let mut doc = match toml::to_string(spec)
        .ok()
        .and_then(|t| t.parse::<DocumentMut>().ok())
    {
        Some(doc) => doc,
        // Serialising plain data to TOML and reading it back cannot fail; keep going regardless.
        None => DocumentMut::new(),
    };
    let root = std::path::absolute(data_root).unwrap_or_else(|_| data_root.to_path_buf());
    let top = doc.as_table_mut();
    top.remove("transfer");
    if let Some(t) = top.get_mut("model").and_then(Item::as_table_mut) {
        transfer(t, &spec.transfer);
    }
    if let Some(t) = top.get_mut("data").and_then(Item::as_table_mut) {
        data(t, &root);
    }
    if let Some(t) = top.get_mut("split").and_then(Item::as_table_mut) {
        split(t, spec);
    }
    if let Some(t) = top.get_mut("preprocess").and_then(Item::as_table_mut) {
        untag(t, "normalize", "fixed");
    }
    if let Some(t) = top.get_mut("optimizer").and_then(Item::as_table_mut) {
        betas(t);
    }
    if let Some(t) = top.get_mut("schedule").and_then(Item::as_table_mut) {
        schedule(t);
    }
    if let Some(t) = top.get_mut("train").and_then(Item::as_table_mut) {
        untag(t, "class_weights", "fixed");
    }
    for (_, item) in top.iter_mut() {
        if let Some(t) = item.as_table_mut() {
            inline_lists(t);
        }
    }
    doc
}

/// `root` (absolute) first after `format`, and `train`/`test` relative to it, as inline tables.
fn data(t: &mut Table, root: &Path) {
    let relative = |v: &mut Value| {
        if let Some(s) = v.as_str() {
            if let Ok(rel) = Path::new(s).strip_prefix(root) {
                *v = Value::from(rel.display().to_string());
            }
        }
    };
    for split in ["train", "test"] {
        let Some(item) = t.remove(split) else {
            continue;
        };
        let mut value = match item.into_value() {
            Ok(v) => v,
            Err(_) => continue,
        };
        match &mut value {
            Value::InlineTable(it) => it.iter_mut().for_each(|(_, v)| relative(v)),
            v => relative(v),
        }
        t.insert(split, Item::Value(value));
    }
    t.insert("root", Item::Value(Value::from(root.display().to_string())));
    reorder(t, &["format", "root", "train", "test"]);
}

/// Keys that only apply with cross-validation are left out without it, and the validation
/// fraction (always 0) is left out with it.
fn split(t: &mut Table, spec: &Spec) {
    if spec.split.folds >= 2 {
        t.remove("validation_fraction");
    } else {
        t.remove("folds");
        t.remove("fold_method");
        t.remove("refit");
    }
}

/// `key = { tag = value }` (an externally tagged variant) becomes `key = value`.
fn untag(t: &mut Table, key: &str, tag: &str) {
    let Some(item) = t.get_mut(key) else {
        return;
    };
    let inner = match item {
        Item::Table(sub) => sub.remove(tag),
        Item::Value(Value::InlineTable(sub)) => sub.remove(tag).map(Item::Value),
        _ => None,
    };
    if let Some(inner) = inner {
        *item = match inner.into_value() {
            Ok(v) => Item::Value(v),
            Err(i) => i,
        };
    }
}

/// `[model]`'s transfer keys, as the reader takes them (the weights file's path absolute; its
/// hash is read again from the file).
fn transfer(t: &mut Table, s: &super::types::TransferSpec) {
    if let Some(p) = &s.pretrained {
        t.insert(
            "pretrained",
            Item::Value(p.path.display().to_string().into()),
        );
        t.insert("pretrained_layout", Item::Value(p.layout.name().into()));
    }
    if !s.freeze.is_empty() {
        let parts: Array = s.freeze.iter().map(String::as_str).collect();
        t.insert("freeze", Item::Value(Value::Array(parts)));
    }
    if let Some(n) = s.unfreeze_at_epoch {
        t.insert("unfreeze_at_epoch", Item::Value((n as i64).into()));
    }
    if s.backbone_lr_scale != 1.0 {
        t.insert("backbone_lr_scale", Item::Value(s.backbone_lr_scale.into()));
    }
}

/// `beta1` and `beta2` become `betas = [beta1, beta2]`, where `beta1` stood.
fn betas(t: &mut Table) {
    let b1 = t.get("beta1").and_then(Item::as_float);
    let b2 = t.get("beta2").and_then(Item::as_float);
    let (Some(b1), Some(b2)) = (b1, b2) else {
        return;
    };
    let entries: Vec<(String, Item)> = t
        .iter()
        .filter(|(k, _)| *k != "beta2")
        .map(|(k, v)| {
            if k == "beta1" {
                let pair: Array = [b1, b2].into_iter().collect();
                ("betas".to_string(), Item::Value(Value::Array(pair)))
            } else {
                (k.to_string(), v.clone())
            }
        })
        .collect();
    replace_entries(t, entries);
}

/// `[schedule.kind] type = …, …` is written as keys of `[schedule]`, `type` first.
fn schedule(t: &mut Table) {
    let Some(Item::Table(kind)) = t.remove("kind") else {
        return;
    };
    let mut entries: Vec<(String, Item)> = kind
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    entries.extend(t.iter().map(|(k, v)| (k.to_string(), v.clone())));
    replace_entries(t, entries);
}

/// Lists of tables (`[[model.layers]]`, augmentation lists) are written as one inline table a
/// line, as people write them.
fn inline_lists(t: &mut Table) {
    let keys: Vec<String> = t
        .iter()
        .filter(|(_, v)| v.is_array_of_tables())
        .map(|(k, _)| k.to_string())
        .collect();
    for key in keys {
        let Some(Item::ArrayOfTables(list)) = t.remove(&key) else {
            continue;
        };
        t.insert(&key, Item::Value(Value::Array(one_a_line(list))));
    }
    reorder_tables_last(t);
}

fn one_a_line(list: ArrayOfTables) -> Array {
    let mut array = Array::new();
    for table in list {
        let mut inline: InlineTable = table.into_inline_table();
        inline.fmt();
        array.push(inline);
    }
    for v in array.iter_mut() {
        v.decor_mut().set_prefix("\n  ");
    }
    array.set_trailing("\n");
    array.set_trailing_comma(true);
    array
}

/// `[sweep]` in the form the reader takes: a list per parameter for listed values, a table
/// `{ uniform | loguniform | int = [...] }` for sampled ones.
fn sweep_table(s: &SweepSpec) -> Table {
    let mut t = Table::new();
    let method = match s.method {
        SweepMethod::Grid => "grid",
        SweepMethod::Random => "random",
    };
    t.insert("method", Item::Value(method.into()));
    if s.method == SweepMethod::Random {
        t.insert("trials", Item::Value((s.trials as i64).into()));
    }
    t.insert("repeats", Item::Value((s.repeats as i64).into()));
    if let Some(p) = &s.pruning {
        t.insert("pruning", Item::Value("asha".into()));
        t.insert("min_epochs", Item::Value((p.min_epochs as i64).into()));
        t.insert(
            "reduction_factor",
            Item::Value((p.reduction_factor as i64).into()),
        );
    }
    if !s.parameters.is_empty() {
        let mut params = Table::new();
        for p in &s.parameters {
            let value = match &p.domain {
                Domain::Values { values } => Value::Array(values.iter().map(param_value).collect()),
                Domain::Uniform { low, high } => sampled("uniform", [*low, *high]),
                Domain::LogUniform { low, high } => sampled("loguniform", [*low, *high]),
                Domain::Int { low, high, step } => {
                    let mut it = InlineTable::new();
                    let range: Array = [*low, *high, *step].into_iter().collect();
                    it.insert("int", Value::Array(range));
                    Value::InlineTable(it)
                }
            };
            params.insert(&p.path, Item::Value(value));
        }
        t.insert("parameters", Item::Table(params));
    }
    t
}

fn sampled(kind: &str, bounds: [f64; 2]) -> Value {
    let mut it = InlineTable::new();
    it.insert(kind, Value::Array(bounds.into_iter().collect()));
    Value::InlineTable(it)
}

fn param_value(v: &ParamValue) -> Value {
    match v {
        ParamValue::Bool(b) => (*b).into(),
        ParamValue::Int(i) => (*i).into(),
        ParamValue::Float(x) => (*x).into(),
        ParamValue::Text(s) => s.as_str().into(),
    }
}

/// Moves `first` (those present) to the front, in that order; the rest keep theirs.
fn reorder(t: &mut Table, first: &[&str]) {
    let mut entries: Vec<(String, Item)> = first
        .iter()
        .filter_map(|k| t.get(k).map(|v| (k.to_string(), v.clone())))
        .collect();
    entries.extend(
        t.iter()
            .filter(|(k, _)| !first.contains(k))
            .map(|(k, v)| (k.to_string(), v.clone())),
    );
    replace_entries(t, entries);
}

/// Sub-tables after plain values, so none of the values land inside a sub-table's header.
fn reorder_tables_last(t: &mut Table) {
    let (tables, values): (Vec<_>, Vec<_>) = t
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .partition(|(_, v)| v.is_table() || v.is_array_of_tables());
    replace_entries(t, values.into_iter().chain(tables).collect());
}

fn replace_entries(t: &mut Table, entries: Vec<(String, Item)>) {
    t.clear();
    for (k, v) in entries {
        t.insert(&k, v);
    }
}
