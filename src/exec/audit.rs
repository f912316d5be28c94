//! A job's per-image outputs: `predictions.csv` (every validation and test image) and the
//! thumbnails of its most confident mistakes with `mistakes.json`, written from the images the
//! worker holds in memory.

use std::io::Cursor;

use anyhow::Context;

use crate::data::image_set::ImageSet;
use crate::spec::Task;
use crate::store::mistakes::{MistakeRecord, MistakesFile, MISTAKES_PER_CLASS, MISTAKES_VERSION};
use crate::store::{write_atomic, JobDir};
use crate::train::predictions::{csv_header, csv_record, Predictions};

/// Longest side of a thumbnail; larger images are scaled down to it.
const THUMBNAIL_SIDE: u32 = 64;

/// One evaluated split of a job: its images, their names and what the network said.
pub struct SplitPredictions<'a> {
    /// `val` or `test`.
    pub split: &'static str,
    pub set: &'a ImageSet,
    pub names: Option<&'a [String]>,
    pub predictions: Predictions,
    /// The binary F1 threshold the split's metrics applied.
    pub threshold: Option<f64>,
}

/// Writes `predictions.csv`, the mistakes' thumbnails and `mistakes.json` into `dir`, each
/// crash-safely (thumbnails first, so that `mistakes.json` never names a missing one).
pub fn write(
    dir: &JobDir,
    task: Task,
    classes: &[String],
    positive: usize,
    splits: &[SplitPredictions],
) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(csv_header(task, classes, positive))?;
    let mut mistakes = Vec::new();
    let thumbs = dir.mistakes_dir();
    match std::fs::remove_dir_all(&thumbs) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot clear {}", thumbs.display())),
    }
    for s in splits {
        let rows = s.predictions.rows(s.set, s.threshold);
        let name = |i: usize| {
            s.names
                .and_then(|n| n.get(i).cloned())
                .unwrap_or_else(|| format!("#{i}"))
        };
        for row in &rows {
            csv.write_record(csv_record(
                s.split,
                &name(row.index),
                row,
                classes,
                s.threshold,
            ))?;
        }
        let label = |c: usize| classes.get(c).cloned().unwrap_or_else(|| c.to_string());
        for m in s.predictions.mistakes(&rows, MISTAKES_PER_CLASS) {
            let file = format!("{}-{}.png", s.split, m.row.index);
            let path = thumbs.join(&file);
            if !path.exists() {
                let png = thumbnail(s.set, m.row.index)?;
                write_atomic(&path, &png)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            mistakes.push(MistakeRecord {
                split: s.split.to_string(),
                path: name(m.row.index),
                class: label(m.class),
                kind: m.kind,
                truth: m.row.truth.iter().map(|&c| label(c)).collect(),
                predicted: m.row.predicted.iter().map(|&c| label(c)).collect(),
                confidence: m.confidence,
                thumbnail: Some(format!("mistakes/{file}")),
            });
        }
    }
    let bytes = csv
        .into_inner()
        .context("cannot assemble predictions.csv")?;
    let file = MistakesFile {
        version: MISTAKES_VERSION,
        per_class: MISTAKES_PER_CLASS,
        mistakes,
    };
    write_atomic(&dir.mistakes(), &serde_json::to_vec_pretty(&file)?)
        .with_context(|| format!("cannot write {}", dir.mistakes().display()))?;
    write_atomic(&dir.predictions(), &bytes)
        .with_context(|| format!("cannot write {}", dir.predictions().display()))
}

/// Image `i` of `set` as a PNG (grayscale or RGB), at most [`THUMBNAIL_SIDE`] pixels a side.
pub fn thumbnail(set: &ImageSet, i: usize) -> anyhow::Result<Vec<u8>> {
    let (c, h, w) = (set.channels, set.height, set.width);
    let px = set.image(i);
    let plane = h * w;
    let img: image::DynamicImage = if c == 1 {
        image::GrayImage::from_raw(w as u32, h as u32, px.to_vec())
            .map(image::DynamicImage::ImageLuma8)
    } else {
        let mut rgb = Vec::with_capacity(plane * 3);
        for p in 0..plane {
            for k in 0..3 {
                rgb.push(px[k.min(c - 1) * plane + p]);
            }
        }
        image::RgbImage::from_raw(w as u32, h as u32, rgb).map(image::DynamicImage::ImageRgb8)
    }
    .context("an image of the cache does not match its shape")?;
    let img = if w.max(h) as u32 > THUMBNAIL_SIDE {
        img.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    } else {
        img
    };
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .context("cannot encode a thumbnail")?;
    Ok(out.into_inner())
}
