//! Loads the spec's data into the u8 cache once, carves out the test set, computes the
//! cross-validation folds, and cuts one job's train and validation sets from that, with
//! normalisation statistics from the job's training data only.

use rand::Rng;

use crate::data::error::DataError;
use crate::data::folds::{self, FoldError, FoldMethod, Folds};
use crate::data::image_set::ImageSet;
use crate::data::inventory::{Inventory, SplitInventory};
use crate::data::source::{self, LoadOptions, LoadReport, Source};
use crate::data::{split, stats};
use crate::spec::positive::{positive_index, PositiveClassError};
use crate::spec::{ClassWeights, DataFormat, Normalize, OnCorrupt, SourceSpec, Spec, Task};
use crate::train::rng;

/// The data set as loaded: the pool that training and validation are cut from, and the test set.
pub struct LoadedData {
    pub pool: ImageSet,
    pub test: Option<ImageSet>,
    /// Each pool image's name, `<split>/<name>` as in `data-inventory.json` (e.g. `train/cat/a.png`).
    pub pool_names: Vec<String>,
    /// Each test image's name, likewise.
    pub test_names: Option<Vec<String>>,
    pub classes: Vec<String>,
    /// Every image of the training source and of a separate test source: names, labels, sizes
    /// and pixel digests.
    pub inventory: Inventory,
    /// The inventory's hash: identifies the data (all files before cutting), recorded with
    /// every job.
    pub data_hash: String,
    /// Corrupt files skipped (with `on_corrupt = "skip"`), and load timings.
    pub reports: Vec<LoadReport>,
}

/// The data one job trains and evaluates on.
pub struct PreparedData {
    pub train: ImageSet,
    pub val: Option<ImageSet>,
    pub test: Option<ImageSet>,
    /// Each validation image's name (`<split>/<name>`, as in `data-inventory.json`).
    pub val_names: Option<Vec<String>>,
    /// Each test image's name, likewise.
    pub test_names: Option<Vec<String>>,
    pub classes: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub data_hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("cannot form cross-validation folds: {0}")]
    Folds(#[from] FoldError),
    #[error("the test set's classes {test:?} differ from the training set's {train:?}")]
    ClassMismatch {
        train: Vec<String>,
        test: Vec<String>,
    },
    #[error("the training data has only {0} image(s); too few to train on")]
    TooFew(usize),
    #[error("{0}")]
    EmptySplit(String),
    #[error("the stored folds cover {stored} images but the data has {actual}: the data changed since the run started")]
    FoldsMismatch { stored: usize, actual: usize },
    #[error("group-kfold needs a `group` column in the CSV manifest")]
    NoGroups,
    #[error("{0}")]
    Task(String),
    #[error(transparent)]
    PositiveClass(#[from] PositiveClassError),
}

/// Loads one source: multilabel CSV manifests keep every row's label set.
fn load_source(
    spec: &Spec,
    s: &SourceSpec,
    opts: &LoadOptions,
) -> Result<(ImageSet, LoadReport), PrepareError> {
    if spec.task == Task::Multilabel {
        if let SourceSpec::Path(p) = s {
            opts.checked_image_len()?;
            let start = std::time::Instant::now();
            let (set, mut report) = crate::data::csv_manifest::load_csv_multilabel(
                p,
                opts,
                spec.data.labels.as_deref(),
            )?;
            report.seconds = start.elapsed().as_secs_f64();
            return Ok((set, report));
        }
    }
    Ok(source::load(&to_source(s, spec.data.format), opts)?)
}

/// The task's demands on the classes found in the data: multilabel needs at least one label,
/// binary exactly 2 classes and a positive class (given, or found by [`positive_index`]), and
/// fixed class weights need one per class; a classifier needs images of at least 2 classes.
fn check_task(spec: &Spec, classes: &[String], labels: &[u32]) -> Result<(), PrepareError> {
    let k = classes.len();
    if spec.task != Task::Multilabel {
        let mut present: Vec<u32> = labels.to_vec();
        present.sort_unstable();
        present.dedup();
        if present.len() < 2 {
            let only = present
                .first()
                .and_then(|&l| classes.get(l as usize))
                .map_or(String::new(), |c| format!(" (\"{c}\")"));
            return Err(PrepareError::Task(format!(
                "the training data has images of {} class{only}: a classifier needs at least 2",
                if present.is_empty() { "no" } else { "only one" }
            )));
        }
    }
    if spec.task == Task::Multilabel && k == 0 {
        return Err(PrepareError::Task(
            "task \"multilabel\" needs at least one label, but every label cell of the manifest is empty"
                .into(),
        ));
    }
    if spec.task == Task::Binary && k != 2 {
        return Err(PrepareError::Task(format!(
            "task \"binary\" needs exactly 2 classes, but the data has {k}: [{}]",
            classes.join(", ")
        )));
    }
    if spec.task == Task::Binary {
        positive_index(classes, spec.data.positive_class.as_deref())?;
    }
    if let ClassWeights::Fixed(w) = &spec.train.class_weights {
        if w.len() != k {
            return Err(PrepareError::Task(format!(
                "train.class_weights has {} weights but the data has {k} classes [{}]",
                w.len(),
                classes.join(", ")
            )));
        }
    }
    Ok(())
}

/// How `spec`'s images are decoded into the cache: its channels, size, resize method, corrupt
/// files' fate and class list.
pub fn load_options(spec: &Spec) -> LoadOptions {
    let d = &spec.data;
    LoadOptions {
        channels: d.channels,
        height: d.image_size[0],
        width: d.image_size[1],
        resize: spec.preprocess.resize,
        skip_corrupt: d.on_corrupt == OnCorrupt::Skip,
        classes: d.classes.clone(),
    }
}

/// Another data set for a model trained on `spec`: `source` in `format`, decoded as the
/// training data was, its labels positions in the model's `classes` (a class outside them is an
/// error naming it).
pub fn load_evaluation_set(
    spec: &Spec,
    source: &SourceSpec,
    format: DataFormat,
    classes: &[String],
) -> Result<(ImageSet, LoadReport), PrepareError> {
    let opts = LoadOptions {
        classes: Some(classes.to_vec()),
        ..load_options(spec)
    };
    let mut spec = spec.clone();
    spec.data.format = format;
    load_source(&spec, source, &opts)
}

fn to_source(s: &SourceSpec, format: DataFormat) -> Source {
    match (s, format) {
        (SourceSpec::Idx { images, labels }, _) => Source::Idx {
            images: images.clone(),
            labels: labels.clone(),
        },
        (SourceSpec::Path(p), DataFormat::Csv) => Source::Csv {
            manifest: p.clone(),
        },
        (SourceSpec::Path(p), _) => Source::ImageFolder { root: p.clone() },
    }
}

/// Loads every file of `spec`'s data and sets the test set apart.
pub fn load(spec: &Spec) -> Result<LoadedData, PrepareError> {
    let d = &spec.data;
    let mut opts = load_options(spec);
    let (full, train_report) = load_source(spec, &d.train, &opts)?;
    let mut reports = vec![train_report];
    let classes = full.classes.clone();
    check_task(spec, &classes, &full.labels)?;
    let mut inventory = Inventory::new((&full, &reports[0]), None);
    let full_names = names("train", &full, &reports[0]);
    let (pool, test, pool_names, test_names) = match &d.test {
        Some(test_source) => {
            opts.classes = Some(classes.clone());
            let (test, report) = load_source(spec, test_source, &opts)?;
            if test.classes != classes {
                return Err(PrepareError::ClassMismatch {
                    train: classes,
                    test: test.classes,
                });
            }
            inventory
                .splits
                .push(SplitInventory::of("test", &test, &report));
            let test_names = names("test", &test, &report);
            reports.push(report);
            (full, Some(test), full_names, Some(test_names))
        }
        None if spec.split.test_fraction > 0.0 => {
            let (keep, held) = cut(
                &full,
                spec.split.test_fraction,
                spec.split.stratify,
                spec.seed,
                "split-test",
            );
            (
                full.subset(&keep),
                Some(full.subset(&held)),
                pick(&full_names, &keep),
                Some(pick(&full_names, &held)),
            )
        }
        None => (full, None, full_names, None),
    };
    let data_hash = inventory.hash();
    Ok(LoadedData {
        pool,
        test,
        pool_names,
        test_names,
        classes,
        inventory,
        data_hash,
        reports,
    })
}

/// What `assay validate --data` found: the data as `assay run` would load it.
#[derive(Debug)]
pub struct DataCheck {
    /// Images the training and validation sets are cut from.
    pub pool: usize,
    /// Test images (a separate source or the held-out fraction).
    pub test: usize,
    /// The first job's training and validation images.
    pub train: usize,
    pub val: usize,
    pub classes: Vec<String>,
    pub shape: [usize; 3],
    pub data_hash: String,
    /// Corrupt files skipped (`on_corrupt = "skip"`): path and reason.
    pub skipped: Vec<(std::path::PathBuf, String)>,
    /// What the data allows but a user may not mean (see [`check_splits`]).
    pub warnings: Vec<String>,
}

/// Loads `spec`'s data and cuts its folds and the first job's sets, as `assay run` and its
/// workers do, so that every data error they would meet is met here, with the same message.
pub fn check(spec: &Spec) -> Result<DataCheck, PrepareError> {
    let data = load(spec)?;
    let folds = make_folds(spec, &data.pool)?;
    let warnings = check_splits(spec, &data, folds.as_ref())?;
    let first = for_job(spec, &data, folds.as_ref(), folds.as_ref().map(|_| 0))?;
    Ok(DataCheck {
        pool: data.pool.len(),
        test: data.test.as_ref().map_or(0, ImageSet::len),
        train: first.train.len(),
        val: first.val.as_ref().map_or(0, ImageSet::len),
        shape: [data.pool.channels, data.pool.height, data.pool.width],
        classes: data.classes,
        data_hash: data.data_hash,
        skipped: data
            .reports
            .iter()
            .flat_map(|r| r.skipped.iter().cloned())
            .collect(),
        warnings,
    })
}

/// Refuses splits that leave a set empty — a test set or validation set without an image, a
/// fold or training set too small to train on — for every fold, before anything is written.
/// Returns warnings about what a user may mean (a class with fewer images than folds).
pub fn check_splits(
    spec: &Spec,
    data: &LoadedData,
    folds: Option<&Folds>,
) -> Result<Vec<String>, PrepareError> {
    let mut warnings = Vec::new();
    let n = data.pool.len();
    if data.test.as_ref().is_some_and(ImageSet::is_empty) {
        return Err(PrepareError::EmptySplit(if spec.data.test.is_some() {
            "the test set (data.test) has no image".to_string()
        } else {
            format!(
                "split.test_fraction = {} of {} images holds out no test image",
                spec.split.test_fraction,
                n + data.test.as_ref().map_or(0, ImageSet::len)
            )
        }));
    }
    match folds {
        Some(folds) => {
            for (i, held) in folds.validation.iter().enumerate() {
                if held.is_empty() {
                    return Err(PrepareError::EmptySplit(format!(
                        "fold {i} of {} has no validation image",
                        folds.validation.len()
                    )));
                }
                if n - held.len() < 2 {
                    return Err(PrepareError::TooFew(n - held.len()));
                }
            }
            let k = folds.validation.len();
            let stratified = spec.split.fold_method == FoldMethod::StratifiedKFold;
            if stratified && data.pool.label_sets.is_none() {
                let mut counts = vec![0usize; data.classes.len()];
                for &l in &data.pool.labels {
                    counts[l as usize] += 1;
                }
                for (class, &c) in data.classes.iter().zip(&counts) {
                    if c > 0 && c < k {
                        warnings.push(format!(
                            "class \"{class}\" has {c} image(s), fewer than the {k} folds: the validation sets of {} fold(s) have none of it",
                            k - c
                        ));
                    }
                }
            }
        }
        None if spec.split.validation_fraction > 0.0 => {
            let (keep, held) = cut(
                &data.pool,
                spec.split.validation_fraction,
                spec.split.stratify,
                spec.seed,
                "split-validation",
            );
            if held.is_empty() {
                return Err(PrepareError::EmptySplit(format!(
                    "split.validation_fraction = {} of {n} images holds out no validation image",
                    spec.split.validation_fraction
                )));
            }
            if keep.len() < 2 {
                return Err(PrepareError::TooFew(keep.len()));
            }
        }
        None if n < 2 => return Err(PrepareError::TooFew(n)),
        None => {}
    }
    Ok(warnings)
}

/// The cross-validation folds of the pool, if the spec asks for them (seeded by the spec's seed,
/// so every trial and repeat shares them).
pub fn make_folds(spec: &Spec, pool: &ImageSet) -> Result<Option<Folds>, PrepareError> {
    let k = spec.split.folds;
    if k < 2 {
        return Ok(None);
    }
    let seed = rng::stream(spec.seed, "folds", 0).random::<u64>();
    let folds = match spec.split.fold_method {
        FoldMethod::KFold => folds::kfold(pool.len(), k, seed)?,
        FoldMethod::StratifiedKFold => match &pool.label_sets {
            Some(sets) => folds::multilabel_stratified_kfold(sets, pool.classes.len(), k, seed)?,
            None => folds::stratified_kfold(&pool.labels, pool.classes.len(), k, seed)?,
        },
        FoldMethod::GroupKFold => folds::group_kfold(
            pool.groups.as_deref().ok_or(PrepareError::NoGroups)?,
            k,
            seed,
        )?,
    };
    Ok(Some(folds))
}

/// One job's train/validation/test sets: fold `fold` of `folds`, or the spec's hold-out split.
pub fn for_job(
    spec: &Spec,
    data: &LoadedData,
    folds: Option<&Folds>,
    fold: Option<usize>,
) -> Result<PreparedData, PrepareError> {
    let pool = &data.pool;
    let (train, val, val_names) = match (folds, fold) {
        (Some(folds), Some(i)) => {
            let stored: usize = folds.validation.iter().map(Vec::len).sum();
            let held = folds
                .validation
                .get(i)
                .filter(|_| stored == pool.len())
                .ok_or(PrepareError::FoldsMismatch {
                    stored,
                    actual: pool.len(),
                })?;
            (
                pool.subset(&folds.train(i, pool.len())),
                Some(pool.subset(held)),
                Some(pick(&data.pool_names, held)),
            )
        }
        _ if spec.split.validation_fraction > 0.0 => {
            let (keep, held) = cut(
                pool,
                spec.split.validation_fraction,
                spec.split.stratify,
                spec.seed,
                "split-validation",
            );
            (
                pool.subset(&keep),
                Some(pool.subset(&held)),
                Some(pick(&data.pool_names, &held)),
            )
        }
        _ => (pool.clone(), None, None),
    };
    if train.len() < 2 {
        return Err(PrepareError::TooFew(train.len()));
    }
    let channels = spec.data.channels;
    let (mean, std) = match &spec.preprocess.normalize {
        Normalize::Auto => {
            let (m, s) = stats::channel_mean_std(&train);
            (
                m.iter().map(|&v| v as f64).collect(),
                s.iter().map(|&v| (v as f64).max(1e-6)).collect(),
            )
        }
        Normalize::None => (vec![0.0; channels], vec![1.0; channels]),
        Normalize::Fixed { mean, std } => (mean.clone(), std.clone()),
    };
    Ok(PreparedData {
        train,
        val,
        test: data.test.clone(),
        val_names,
        test_names: data.test_names.clone(),
        classes: data.classes.clone(),
        mean,
        std,
        data_hash: data.data_hash.clone(),
    })
}

/// Each image's name in `set` as `data-inventory.json` lists it, prefixed by its inventory split
/// (`train/cat/a.png`); `#<index>` where the load report has no name.
fn names(split: &str, set: &ImageSet, report: &LoadReport) -> Vec<String> {
    (0..set.len())
        .map(|i| match report.names.get(i) {
            Some(n) => format!("{split}/{n}"),
            None => format!("{split}/#{i}"),
        })
        .collect()
}

/// The entries of `names` at `indices`, in that order.
fn pick(names: &[String], indices: &[usize]) -> Vec<String> {
    indices
        .iter()
        .map(|&i| names.get(i).cloned().unwrap_or_else(|| format!("#{i}")))
        .collect()
}

fn cut(
    set: &ImageSet,
    fraction: f64,
    stratify: bool,
    seed: u64,
    purpose: &str,
) -> (Vec<usize>, Vec<usize>) {
    let split_seed = rng::stream(seed, purpose, 0).random::<u64>();
    if let (true, Some(sets)) = (stratify, &set.label_sets) {
        // multilabel: iterative stratification into (held out, kept)
        let parts = folds::iterative_stratification(
            sets,
            set.classes.len(),
            &[fraction, 1.0 - fraction],
            split_seed,
        );
        let (mut keep, mut held) = (Vec::new(), Vec::new());
        for (i, p) in parts.into_iter().enumerate() {
            if p == 0 {
                held.push(i);
            } else {
                keep.push(i);
            }
        }
        (keep, held)
    } else if stratify {
        split::stratified_split(&set.labels, set.classes.len(), fraction, split_seed)
    } else {
        split::random_split(set.len(), fraction, split_seed)
    }
}

/// The spec's model for this data (input shape, one output per class), initialised from `seed`.
/// What starting from a weights file did (see [`load_pretrained`]).
#[derive(Debug, Default)]
pub struct PretrainedStart {
    /// Lines for the job's log (what was loaded, missing, unexpected, the head).
    pub report: Vec<String>,
    /// Whether the head is the file's own; `None` without a weights file (or when a resumed
    /// job's file can no longer be read).
    pub head: Option<bool>,
}

/// Loads `spec`'s weights file into `net` when `fresh` (a job not resumed from a checkpoint);
/// a resumed job only learns whether its head was the file's.
pub fn load_pretrained(
    spec: &Spec,
    net: &dyn crate::model::Model,
    fresh: bool,
) -> anyhow::Result<PretrainedStart> {
    use crate::model::pretrained;
    let Some(p) = &spec.transfer.pretrained else {
        return Ok(PretrainedStart::default());
    };
    if fresh {
        let loaded = pretrained::load(net, p)?;
        return Ok(PretrainedStart {
            head: Some(loaded.head_from_file()),
            report: loaded.report,
        });
    }
    let head = pretrained::inspect(&p.path).ok().map(|s| {
        !pretrained::Comparison::new(&pretrained::expected(net), &s.tensors, p.layout).head_replaced
    });
    Ok(PretrainedStart {
        report: Vec::new(),
        head,
    })
}

pub fn build_network(
    spec: &Spec,
    data: &PreparedData,
    seed: u64,
    device: &candle_core::Device,
) -> anyhow::Result<Box<dyn crate::model::Model>> {
    // the model sees the images after the augment lists, not as decoded
    let classes = if spec.task == crate::spec::Task::Binary {
        1
    } else {
        data.classes.len()
    };
    let model = crate::model::build(
        &spec.model,
        spec.input_shape(),
        classes,
        &mut rng::stream(seed, "init", 0),
        device,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot build the model: {}",
            crate::model::without_backtrace(e)
        )
    })?;
    let compute = match spec.train.precision {
        crate::spec::Precision::F32 => return Ok(model),
        crate::spec::Precision::Bf16 => candle_core::DType::BF16,
        crate::spec::Precision::F16 => candle_core::DType::F16,
    };
    Ok(Box::new(crate::model::precision::MixedPrecision::new(
        model, compute,
    )))
}
