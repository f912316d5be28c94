//! Loads the spec's data into the u8 cache and cuts it into train, validation and test sets,
//! with normalisation statistics from the training split only.

use sha2::{Digest, Sha256};

use crate::data::error::DataError;
use crate::data::image_set::ImageSet;
use crate::data::source::{self, LoadOptions, LoadReport, Source};
use crate::data::{split, stats};
use crate::spec::{Normalize, OnCorrupt, SourceSpec, Spec};
use crate::train::rng;

/// The data one job trains and evaluates on.
pub struct PreparedData {
    pub train: ImageSet,
    pub val: Option<ImageSet>,
    pub test: Option<ImageSet>,
    pub classes: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Identifies the data (all splits before cutting), recorded with every job.
    pub data_hash: String,
    /// Corrupt files skipped (with `on_corrupt = "skip"`), and load timings.
    pub reports: Vec<LoadReport>,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("the test set's classes {test:?} differ from the training set's {train:?}")]
    ClassMismatch {
        train: Vec<String>,
        test: Vec<String>,
    },
    #[error("the training data has only {0} image(s); too few to train on")]
    TooFew(usize),
}

fn to_source(s: &SourceSpec, format: crate::spec::DataFormat) -> Source {
    use crate::spec::DataFormat;
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

/// Loads and splits the data of `spec`.
pub fn prepare(spec: &Spec) -> Result<PreparedData, PrepareError> {
    let d = &spec.data;
    let mut opts = LoadOptions {
        channels: d.channels,
        height: d.image_size[0],
        width: d.image_size[1],
        resize: spec.preprocess.resize,
        skip_corrupt: d.on_corrupt == OnCorrupt::Skip,
        classes: d.classes.clone(),
    };
    let (full, train_report) = source::load(&to_source(&d.train, d.format), &opts)?;
    let mut reports = vec![train_report];
    let classes = full.classes.clone();
    let mut hasher = Sha256::new();
    hasher.update(full.content_hash());
    let (pool, test) = match &d.test {
        Some(test_source) => {
            opts.classes = Some(classes.clone());
            let (test, report) = source::load(&to_source(test_source, d.format), &opts)?;
            reports.push(report);
            if test.classes != classes {
                return Err(PrepareError::ClassMismatch {
                    train: classes,
                    test: test.classes,
                });
            }
            hasher.update(test.content_hash());
            (full, Some(test))
        }
        None if spec.split.test_fraction > 0.0 => {
            let (keep, held) = cut(
                &full,
                spec.split.test_fraction,
                spec.split.stratify,
                spec.seed,
                "split-test",
            );
            (full.subset(&keep), Some(full.subset(&held)))
        }
        None => (full, None),
    };
    let (train, val) = if spec.split.validation_fraction > 0.0 {
        let (keep, held) = cut(
            &pool,
            spec.split.validation_fraction,
            spec.split.stratify,
            spec.seed,
            "split-validation",
        );
        (pool.subset(&keep), Some(pool.subset(&held)))
    } else {
        (pool, None)
    };
    if train.len() < 2 {
        return Err(PrepareError::TooFew(train.len()));
    }
    let (mean, std) = match &spec.preprocess.normalize {
        Normalize::Auto => {
            let (m, s) = stats::channel_mean_std(&train);
            (
                m.iter().map(|&v| v as f64).collect(),
                s.iter().map(|&v| (v as f64).max(1e-6)).collect(),
            )
        }
        Normalize::None => (vec![0.0; d.channels], vec![1.0; d.channels]),
        Normalize::Fixed { mean, std } => (mean.clone(), std.clone()),
    };
    let data_hash = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(PreparedData {
        train,
        val,
        test,
        classes,
        mean,
        std,
        data_hash,
        reports,
    })
}

fn cut(
    set: &ImageSet,
    fraction: f64,
    stratify: bool,
    seed: u64,
    purpose: &str,
) -> (Vec<usize>, Vec<usize>) {
    use rand::Rng;
    let split_seed = rng::stream(seed, purpose, 0).random::<u64>();
    if stratify {
        split::stratified_split(&set.labels, set.classes.len(), fraction, split_seed)
    } else {
        split::random_split(set.len(), fraction, split_seed)
    }
}
