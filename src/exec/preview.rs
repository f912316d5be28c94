//! `assay preview`: loads the training data and writes the augmentation preview grid as a PNG.

use std::path::Path;

use anyhow::Context;

use super::prepare;
use crate::augment::grid;
use crate::spec::Spec;

/// What was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preview {
    pub samples: usize,
    pub variants: usize,
    pub width: usize,
    pub height: usize,
}

/// Renders the first `samples` training images (the spec's data before any split) with
/// `variants` augmented versions each, drawn with `seed`, into the PNG `out`.
pub fn write(
    spec: &Spec,
    out: &Path,
    samples: usize,
    variants: usize,
    seed: u64,
) -> anyhow::Result<Preview> {
    let data = prepare::load(spec)?;
    let set = &data.pool;
    let rows: Vec<usize> = (0..set.len().min(samples)).collect();
    let image = grid::preview(&spec.augment, set, &rows, variants, seed);
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    grid::save_png(&image, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(Preview {
        samples: rows.len(),
        variants,
        width: image.width,
        height: image.height,
    })
}
