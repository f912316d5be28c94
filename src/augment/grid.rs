//! The augmentation preview: one row per sample, the original (after the eval list) then
//! augmented versions for epochs 1..=K, separated by white lines.

use super::image::Image;
use super::pipeline::Pipeline;
use super::spec::AugmentSpec;
use crate::data::image_set::ImageSet;
use crate::data::resize::{resize_chw, ResizeMethod};

/// Pixels between cells (and around the grid).
pub const GAP: usize = 2;

/// The preview grid of `samples` (indices into `set`) with `variants` augmented versions each,
/// drawn with `seed`. An RGB image when the data has 3 channels, else grayscale.
pub fn preview(
    spec: &AugmentSpec,
    set: &ImageSet,
    samples: &[usize],
    variants: usize,
    seed: u64,
) -> Image {
    preview_with_cells_up_to(spec, set, samples, variants, seed, usize::MAX)
}

/// Like [`preview`], with every cell scaled down (bilinear, aspect kept) so that its longer side
/// is at most `max_side` pixels.
pub fn preview_with_cells_up_to(
    spec: &AugmentSpec,
    set: &ImageSet,
    samples: &[usize],
    variants: usize,
    seed: u64,
    max_side: usize,
) -> Image {
    let input = (set.channels, set.height, set.width);
    let train = Pipeline::new(&spec.train, input);
    let eval = Pipeline::new(&spec.eval, input);
    let rows: Vec<Vec<Image>> = samples
        .iter()
        .filter(|&&i| i < set.len())
        .map(|&i| {
            let px = set.image(i);
            std::iter::once(eval.apply(px, seed, 0, i as u64))
                .chain((1..=variants as u64).map(|e| train.apply(px, seed, e, i as u64)))
                .map(|img| fit(img, max_side))
                .collect()
        })
        .collect();
    tile(&rows, set.channels)
}

/// Samples and augmented versions per sample in the preview `assay run` logs to TensorBoard
/// (and the defaults of `assay preview`).
pub const DEFAULT_SAMPLES: usize = 8;
pub const DEFAULT_VARIANTS: usize = 5;

/// The longest side of a cell in the preview `assay run` logs (larger images are scaled down, so
/// that the logged grid stays small whatever the data).
pub const DEFAULT_MAX_CELL: usize = 256;

/// The preview of the first [`DEFAULT_SAMPLES`] images of `set`, [`DEFAULT_VARIANTS`] versions
/// each, cells at most [`DEFAULT_MAX_CELL`] pixels a side.
pub fn default_preview(spec: &AugmentSpec, set: &ImageSet, seed: u64) -> Image {
    let samples: Vec<usize> = (0..set.len().min(DEFAULT_SAMPLES)).collect();
    preview_with_cells_up_to(
        spec,
        set,
        &samples,
        DEFAULT_VARIANTS,
        seed,
        DEFAULT_MAX_CELL,
    )
}

/// `img` scaled down so that its longer side is at most `max_side` (at least 1 pixel a side).
fn fit(img: Image, max_side: usize) -> Image {
    let longer = img.height.max(img.width);
    if longer <= max_side.max(1) {
        return img;
    }
    let scale = max_side.max(1) as f64 / longer as f64;
    let h = ((img.height as f64 * scale).round() as usize).max(1);
    let w = ((img.width as f64 * scale).round() as usize).max(1);
    let data = resize_chw(
        &img.data,
        img.channels,
        img.height,
        img.width,
        h,
        w,
        ResizeMethod::Bilinear,
    );
    Image::new(img.channels, h, w, data)
}

/// Lays out rows of images with [`GAP`] white pixels between and around them; every cell is
/// as large as the largest image.
pub fn tile(rows: &[Vec<Image>], channels: usize) -> Image {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let cells = rows.iter().flatten();
    let ch = cells.clone().map(|i| i.height).max().unwrap_or(0);
    let cw = cells.map(|i| i.width).max().unwrap_or(0);
    let height = rows.len() * (ch + GAP) + GAP;
    let width = cols * (cw + GAP) + GAP;
    let mut out = Image::filled(channels, height, width, 255);
    for (r, row) in rows.iter().enumerate() {
        for (k, img) in row.iter().enumerate() {
            let (y0, x0) = (GAP + r * (ch + GAP), GAP + k * (cw + GAP));
            for c in 0..channels {
                let src_c = c.min(img.channels.saturating_sub(1));
                for y in 0..img.height {
                    for x in 0..img.width {
                        out.set(c, y0 + y, x0 + x, img.get(src_c, y, x));
                    }
                }
            }
        }
    }
    out
}

/// Interleaved RGB bytes (H×W×3) of `img`; a 1-channel image is repeated into all three.
pub fn to_rgb(img: &Image) -> Vec<u8> {
    let n = img.plane_len();
    let mut out = Vec::with_capacity(n * 3);
    for i in 0..n {
        for c in 0..3 {
            out.push(img.data[c.min(img.channels.saturating_sub(1)) * n + i]);
        }
    }
    out
}

/// Writes `img` as a PNG (grayscale for 1 channel, RGB otherwise).
pub fn save_png(img: &Image, path: &std::path::Path) -> image::ImageResult<()> {
    let (w, h) = (img.width as u32, img.height as u32);
    if img.channels == 1 {
        image::save_buffer(path, &img.data, w, h, image::ExtendedColorType::L8)
    } else {
        image::save_buffer(path, &to_rgb(img), w, h, image::ExtendedColorType::Rgb8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::spec::{Transform, TransformSpec};

    #[test]
    fn the_logged_preview_scales_large_images_down() {
        let set = ImageSet {
            channels: 3,
            height: 600,
            width: 300,
            pixels: vec![40; 2 * 3 * 600 * 300],
            labels: vec![0, 1],
            classes: vec!["a".into(), "b".into()],
            groups: None,
            label_sets: None,
        };
        let spec = AugmentSpec {
            train: vec![TransformSpec {
                op: Transform::HorizontalFlip {},
                p: 0.5,
            }],
            ..AugmentSpec::default()
        };
        let grid = default_preview(&spec, &set, 1);
        // Cells of 256×128: 2 rows, 1 + 5 columns, 2-pixel gaps.
        assert_eq!(
            (grid.channels, grid.height, grid.width),
            (3, 2 * 258 + 2, 6 * 130 + 2)
        );
        assert_eq!(grid.get(0, 2, 2), 40, "a cell keeps its pixels' value");
        let full = preview(&spec, &set, &[0], 1, 1);
        assert_eq!(
            (full.height, full.width),
            (604, 2 * 302 + 2),
            "assay preview keeps the size"
        );
    }

    #[test]
    fn grid_has_one_row_per_sample_and_white_separators() {
        let set = ImageSet {
            channels: 1,
            height: 4,
            width: 3,
            pixels: vec![10; 3 * 12],
            labels: vec![0, 1, 0],
            classes: vec!["a".into(), "b".into()],
            groups: None,
            label_sets: None,
        };
        let spec = AugmentSpec {
            train: vec![TransformSpec {
                op: Transform::HorizontalFlip {},
                p: 0.5,
            }],
            ..AugmentSpec::default()
        };
        let g = preview(&spec, &set, &[0, 2, 99], 5, 1);
        // 2 rows (index 99 does not exist) × 6 columns of 4×3 cells, 2-pixel gaps
        assert_eq!((g.height, g.width), (2 * 6 + 2, 6 * 5 + 2));
        assert_eq!(g.get(0, 0, 0), 255);
        assert_eq!(g.get(0, 2, 2), 10);
        assert_eq!(g.get(0, 2, 5), 255, "separator column");
        assert_eq!(to_rgb(&g).len(), g.height * g.width * 3);
    }
}
