//! Starting weights from a safetensors file (`[model] pretrained`): the file's tensor names
//! mapped to assay's by the file's layout, every name and shape checked against the model, and a
//! classification head that does not fit the task replaced by the model's own fresh one.
//!
//! The name tables (file name → assay name) are listed in the README. assay's architectures use
//! the parameter names of the reference implementations (torchvision's ResNets and MobileNetV2,
//! timm's ViT, the lukemelas EfficientNet-PyTorch layout of the published EfficientNet-Lite
//! weights), so most names map to themselves; PyTorch's `num_batches_tracked` counters are
//! ignored, and torchvision's ViT names are renamed to timm's.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};

use super::Model;
use crate::spec::{PretrainedLayout, PretrainedSpec};

/// The part whose tensors may differ from the file's (it is then replaced).
pub const HEAD: &str = "head";

/// At most this many names are listed per kind of mismatch.
const LISTED: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum PretrainedError {
    #[error("cannot read weights file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("weights file {path} is not a safetensors file: {message}")]
    Format { path: PathBuf, message: String },
    #[error("weights file {path} changed since the job was planned (its SHA-256 is now {now}, the job was planned with {planned}); run the spec again to plan jobs for the new weights")]
    Changed {
        path: PathBuf,
        now: String,
        planned: String,
    },
    #[error("weights file {path} does not fit the model ({layout} layout): {details}")]
    Mismatch {
        path: PathBuf,
        layout: &'static str,
        details: String,
    },
    #[error("cannot load the weights: {0}")]
    Candle(#[from] candle_core::Error),
}

/// What a weights file holds: its hash and its tensors' names (as in the file) and shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct FileSummary {
    pub sha256: String,
    pub tensors: Vec<(String, Vec<usize>)>,
}

/// The SHA-256 and tensor list of the safetensors file at `path` (read once per process while
/// the file's size and modification time stay the same: a sweep validates every trial).
pub fn inspect(path: &Path) -> Result<FileSummary, PretrainedError> {
    type Key = (PathBuf, u64, Option<std::time::SystemTime>);
    static SEEN: OnceLock<Mutex<HashMap<Key, FileSummary>>> = OnceLock::new();
    let read_err = |source| PretrainedError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(std::io::Error::other("not a regular file")));
    }
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let seen = SEEN.get_or_init(Default::default);
    if let Some(s) = seen.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(s);
    }
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let mut hasher = Sha256::new();
    let mut head = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if head.len() < (16 << 20) {
            head.extend_from_slice(&buf[..n]);
        }
    }
    let summary = FileSummary {
        sha256: hex(&hasher.finalize()),
        tensors: header(path, &head)?,
    };
    if let Ok(mut m) = seen.lock() {
        m.insert(key, summary.clone());
    }
    Ok(summary)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The tensor names and shapes of a safetensors header at the start of `bytes`, in file order.
fn header(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Vec<usize>)>, PretrainedError> {
    let bad = |message: String| PretrainedError::Format {
        path: path.to_path_buf(),
        message,
    };
    let Some(len) = bytes.get(..8) else {
        return Err(bad("shorter than its 8-byte header length".into()));
    };
    let len = u64::from_le_bytes(len.try_into().unwrap_or_default()) as usize;
    let text = bytes
        .get(8..8usize.saturating_add(len))
        .ok_or_else(|| bad(format!("its header of {len} bytes is cut off")))?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(text).map_err(|e| bad(format!("its header is not JSON: {e}")))?;
    let mut tensors: Vec<(usize, String, Vec<usize>)> = Vec::new();
    for (name, info) in json {
        if name == "__metadata__" {
            continue;
        }
        let shape = info
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|s| s.iter().map(|d| d.as_u64().map(|d| d as usize)).collect());
        let start = info
            .get("data_offsets")
            .and_then(|o| o.get(0))
            .and_then(|o| o.as_u64());
        match (shape, start) {
            (Some(shape), Some(start)) => tensors.push((start as usize, name, shape)),
            _ => return Err(bad(format!("tensor `{name}` has no shape or offsets"))),
        }
    }
    tensors.sort();
    Ok(tensors.into_iter().map(|(_, n, s)| (n, s)).collect())
}

/// The assay name of the file's tensor `name` in `layout`; `None` for a tensor assay does not
/// keep (PyTorch's batch-norm `num_batches_tracked` counters).
pub fn assay_name(layout: PretrainedLayout, name: &str) -> Option<String> {
    if layout != PretrainedLayout::Assay && name.ends_with(".num_batches_tracked") {
        return None;
    }
    Some(match layout {
        PretrainedLayout::Torchvision => torchvision_vit(name).unwrap_or_else(|| name.to_string()),
        PretrainedLayout::Assay | PretrainedLayout::EfficientnetLite => name.to_string(),
    })
}

/// torchvision's ViT names in timm's terms (which assay's ViT uses); `None` for other names.
fn torchvision_vit(name: &str) -> Option<String> {
    let fixed = [
        ("conv_proj.", "patch_embed.proj."),
        ("encoder.ln.", "norm."),
        ("heads.head.", "head."),
    ];
    for (from, to) in fixed {
        if let Some(rest) = name.strip_prefix(from) {
            return Some(format!("{to}{rest}"));
        }
    }
    match name {
        "class_token" => return Some("cls_token".into()),
        "encoder.pos_embedding" => return Some("pos_embed".into()),
        _ => {}
    }
    let rest = name.strip_prefix("encoder.layers.encoder_layer_")?;
    let (index, inner) = rest.split_once('.')?;
    index.parse::<usize>().ok()?;
    let inner = match inner {
        "self_attention.in_proj_weight" => "attn.qkv.weight".to_string(),
        "self_attention.in_proj_bias" => "attn.qkv.bias".to_string(),
        _ => {
            let renames = [
                ("ln_1.", "norm1."),
                ("ln_2.", "norm2."),
                ("self_attention.out_proj.", "attn.proj."),
                ("mlp.0.", "mlp.fc1."),
                ("mlp.linear_1.", "mlp.fc1."),
                ("mlp.3.", "mlp.fc2."),
                ("mlp.linear_2.", "mlp.fc2."),
            ];
            let (from, to) = renames.iter().find(|(from, _)| inner.starts_with(from))?;
            format!("{to}{}", &inner[from.len()..])
        }
    };
    Some(format!("blocks.{index}.{inner}"))
}

/// A tensor the model has: name, shape, whether it belongs to the classification head.
pub type Expected = (String, Vec<usize>, bool);

/// The names and shapes of every parameter and buffer of `model`, the head's marked.
pub fn expected(model: &dyn Model) -> Vec<Expected> {
    let params = model
        .params()
        .iter()
        .map(|p| (p.name.clone(), p.var.dims().to_vec(), p.part == HEAD));
    let buffers = model
        .buffers()
        .iter()
        .map(|(n, v)| (n.clone(), v.dims().to_vec(), false));
    params.chain(buffers).collect()
}

/// How a weights file's tensors match the model's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparison {
    /// Model names found in the file with the right shape.
    pub loaded: Vec<String>,
    /// Model names the file lacks.
    pub missing: Vec<String>,
    /// File names (as in the file) that map to no model tensor.
    pub unexpected: Vec<String>,
    /// Model name, shape in the file, shape in the model.
    pub wrong_shape: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// File tensors assay does not keep (`num_batches_tracked`).
    pub ignored: usize,
    /// The head's tensors are among the missing or wrong-shaped ones: it is not loaded.
    pub head_replaced: bool,
    /// The file's name of each model name found in it.
    pub file_names: BTreeMap<String, String>,
}

impl Comparison {
    /// Compares the model's tensors with the file's, in `layout`.
    pub fn new(
        model: &[Expected],
        file: &[(String, Vec<usize>)],
        layout: PretrainedLayout,
    ) -> Self {
        let mut c = Comparison::default();
        let mut in_file: HashMap<String, (&str, &[usize])> = HashMap::new();
        for (name, shape) in file {
            match assay_name(layout, name) {
                Some(assay) => {
                    in_file.insert(assay, (name.as_str(), shape.as_slice()));
                }
                None => c.ignored += 1,
            }
        }
        let known: std::collections::HashSet<&str> =
            model.iter().map(|(n, _, _)| n.as_str()).collect();
        for (name, _) in file {
            if assay_name(layout, name).is_some_and(|a| !known.contains(a.as_str())) {
                c.unexpected.push(name.clone());
            }
        }
        for (name, shape, _) in model {
            match in_file.get(name) {
                None => c.missing.push(name.clone()),
                Some((file_name, s)) => {
                    c.file_names.insert(name.clone(), file_name.to_string());
                    if *s == shape.as_slice() {
                        c.loaded.push(name.clone());
                    } else {
                        c.wrong_shape
                            .push((name.clone(), s.to_vec(), shape.clone()));
                    }
                }
            }
        }
        let is_head = |n: &str| model.iter().any(|(m, _, h)| m == n && *h);
        c.head_replaced = c.missing.iter().any(|n| is_head(n))
            || c.wrong_shape.iter().any(|(n, _, _)| is_head(n));
        if c.head_replaced {
            c.loaded.retain(|n| !is_head(n));
        }
        c
    }

    /// The mismatches that are not the head's, worded with the names; `None` when the file
    /// fits (but for the head).
    pub fn problems(&self, model: &[Expected]) -> Option<String> {
        let is_head = |n: &str| model.iter().any(|(m, _, h)| m == n && *h);
        let missing: Vec<String> = self
            .missing
            .iter()
            .filter(|n| !is_head(n))
            .cloned()
            .collect();
        let wrong: Vec<String> = self
            .wrong_shape
            .iter()
            .filter(|(n, _, _)| !is_head(n))
            .map(|(n, file, ours)| {
                format!(
                    "{n} ({} in the file, {} in the model)",
                    dims(file),
                    dims(ours)
                )
            })
            .collect();
        let mut parts = Vec::new();
        for (what, list) in [
            ("missing from the file", &missing),
            ("not in the model", &self.unexpected),
            ("of the wrong shape", &wrong),
        ] {
            if !list.is_empty() {
                parts.push(format!("{} {what}: {}", list.len(), listed(list)));
            }
        }
        if parts.is_empty() {
            return None;
        }
        Some(format!(
            "{}; {} of the model's {} tensors match",
            parts.join("; "),
            self.loaded.len(),
            model.len()
        ))
    }
}

/// `a×b×c` (`scalar` for none).
pub fn dims(d: &[usize]) -> String {
    if d.is_empty() {
        return "scalar".into();
    }
    d.iter().map(usize::to_string).collect::<Vec<_>>().join("×")
}

fn listed(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(LISTED).map(String::as_str).collect();
    let more = names.len().saturating_sub(LISTED);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Checks a weights file against a model without loading it: the error words every mismatch
/// outside the head (what spec validation reports).
pub fn check(
    model: &[Expected],
    path: &Path,
    layout: PretrainedLayout,
) -> Result<FileSummary, PretrainedError> {
    let summary = inspect(path)?;
    let c = Comparison::new(model, &summary.tensors, layout);
    match c.problems(model) {
        None => Ok(summary),
        Some(details) => Err(PretrainedError::Mismatch {
            path: path.to_path_buf(),
            layout: layout.name(),
            details,
        }),
    }
}

/// What loading did, for the job's log.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub comparison: Comparison,
    /// Lines for the job's log.
    pub report: Vec<String>,
}

impl Loaded {
    /// Whether the model's head is the file's own (not replaced).
    pub fn head_from_file(&self) -> bool {
        !self.comparison.head_replaced
    }
}

/// Loads `spec`'s weights into `model` (built with the job's seed, so a head that does not fit is
/// left as the model's own fresh one): every name and shape is checked first, and nothing is
/// set unless the file fits but for the head.
pub fn load(model: &dyn Model, spec: &PretrainedSpec) -> Result<Loaded, PretrainedError> {
    let path = &spec.path;
    let bytes = std::fs::read(path).map_err(|source| PretrainedError::Read {
        path: path.clone(),
        source,
    })?;
    let now = hex(&Sha256::digest(&bytes));
    if now != spec.sha256 {
        return Err(PretrainedError::Changed {
            path: path.clone(),
            now,
            planned: spec.sha256.clone(),
        });
    }
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
        PretrainedError::Format {
            path: path.clone(),
            message: super::without_backtrace(e).to_string(),
        }
    })?;
    drop(bytes);
    let listing: Vec<(String, Vec<usize>)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.dims().to_vec()))
        .collect();
    let expected = expected(model);
    let c = Comparison::new(&expected, &listing, spec.layout);
    if let Some(details) = c.problems(&expected) {
        return Err(PretrainedError::Mismatch {
            path: path.clone(),
            layout: spec.layout.name(),
            details,
        });
    }
    let vars = model
        .params()
        .iter()
        .map(|p| (p.name.as_str(), &p.var))
        .chain(model.buffers().iter().map(|(n, v)| (n.as_str(), v)));
    let loaded: std::collections::HashSet<&str> = c.loaded.iter().map(String::as_str).collect();
    for (name, var) in vars {
        if !loaded.contains(name) {
            continue;
        }
        let t: &Tensor = &tensors[&c.file_names[name]];
        var.set(&t.to_dtype(DType::F32)?.to_device(model.device())?)?;
    }
    let report = report(model, spec, &c, &expected);
    Ok(Loaded {
        comparison: c,
        report,
    })
}

fn report(
    model: &dyn Model,
    spec: &PretrainedSpec,
    c: &Comparison,
    expected: &[Expected],
) -> Vec<String> {
    let buffers = model.buffers().len();
    let loaded_buffers = model
        .buffers()
        .iter()
        .filter(|(n, _)| c.loaded.contains(n))
        .count();
    let mut lines = vec![format!(
        "pretrained weights {} ({} layout, SHA-256 {}): loaded {} of the model's {} tensors ({} parameters, {loaded_buffers} of {buffers} batch-norm statistics); missing: {}; not in the model: {}; wrong shape: {}{}",
        spec.path.display(),
        spec.layout.name(),
        spec.sha256,
        c.loaded.len(),
        expected.len(),
        c.loaded.len() - loaded_buffers,
        none_or(&c.missing),
        none_or(&c.unexpected),
        none_or(&c.wrong_shape.iter().map(|(n, f, o)| format!("{n} ({} in the file, {} in the model)", dims(f), dims(o))).collect::<Vec<_>>()),
        if c.ignored > 0 { format!("; {} num_batches_tracked counters ignored", c.ignored) } else { String::new() },
    )];
    if c.head_replaced {
        let head: Vec<String> = model
            .params()
            .iter()
            .filter(|p| p.part == HEAD)
            .map(|p| format!("{} {}", p.name, dims(p.var.dims())))
            .collect();
        lines.push(format!(
            "the file's classification head does not fit this task: it is replaced by a fresh head seeded from the job's seed ({})",
            head.join(", ")
        ));
    } else {
        lines.push("the classification head is the file's own".into());
    }
    lines
}

fn none_or(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        listed(names)
    }
}

/// Whether a job's classification head is its weights file's own (not replaced), from its
/// `job.json`: `false` for a job without pretrained weights or with a replaced head.
pub fn job_head_from_file(job_json: &Path) -> anyhow::Result<bool> {
    let text = std::fs::read(job_json)?;
    let v: serde_json::Value = serde_json::from_slice(&text)?;
    Ok(v.get("pretrained_head").and_then(|h| h.as_str()) == Some("file"))
}
