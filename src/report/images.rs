//! Pictures for TensorBoard: a grid of training samples and a confusion-matrix heatmap, as RGB
//! pixel buffers.

use crate::data::image_set::ImageSet;

/// An RGB image: width, height and `width × height × 3` bytes.
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// The first `count` images of `set` in a square-ish grid with 2-pixel gaps, as stored in the
/// cache (before normalisation).
pub fn sample_grid(set: &ImageSet, count: usize) -> Option<Rgb> {
    let n = count.min(set.len());
    if n == 0 {
        return None;
    }
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let gap = 2;
    let (h, w, c) = (set.height, set.width, set.channels);
    let width = cols * w + (cols + 1) * gap;
    let height = rows * h + (rows + 1) * gap;
    let mut pixels = vec![255u8; width * height * 3];
    for i in 0..n {
        let image = set.image(i);
        let (x0, y0) = (gap + (i % cols) * (w + gap), gap + (i / cols) * (h + gap));
        for y in 0..h {
            for x in 0..w {
                let o = ((y0 + y) * width + x0 + x) * 3;
                for k in 0..3 {
                    // Grayscale fills all three channels.
                    pixels[o + k] = image[(k.min(c - 1)) * h * w + y * w + x];
                }
            }
        }
    }
    Some(Rgb {
        width,
        height,
        pixels,
    })
}

/// A heatmap of a confusion matrix (rows true classes, columns predictions), each row scaled
/// by its total: white for 0, dark blue for the whole row. `cell` pixels per cell.
pub fn confusion_heatmap(matrix: &[Vec<u64>], cell: usize) -> Option<Rgb> {
    let n = matrix.len();
    if n == 0 || matrix.iter().any(|r| r.len() != n) {
        return None;
    }
    let side = n * cell;
    let mut pixels = vec![255u8; side * side * 3];
    for (i, row) in matrix.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (j, &v) in row.iter().enumerate() {
            let f = if total == 0 {
                0.0
            } else {
                v as f64 / total as f64
            };
            let color = [
                (255.0 * (1.0 - 0.9 * f)) as u8,
                (255.0 * (1.0 - 0.75 * f)) as u8,
                (255.0 * (1.0 - 0.35 * f)) as u8,
            ];
            for y in i * cell..(i + 1) * cell {
                for x in j * cell..(j + 1) * cell {
                    let o = (y * side + x) * 3;
                    pixels[o..o + 3].copy_from_slice(&color);
                }
            }
        }
    }
    Some(Rgb {
        width: side,
        height: side,
        pixels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_places_each_sample_and_keeps_gaps_white() {
        let set = ImageSet {
            channels: 1,
            height: 2,
            width: 2,
            pixels: vec![10, 10, 10, 10, 20, 20, 20, 20, 30, 30, 30, 30],
            labels: vec![0, 1, 0],
            classes: vec!["a".into(), "b".into()],
            groups: None,
            label_sets: None,
        };
        let g = sample_grid(&set, 16).unwrap();
        // 3 images → 2 columns × 2 rows of 2×2 with 2-pixel gaps.
        assert_eq!((g.width, g.height), (10, 10));
        let px = |x: usize, y: usize| g.pixels[(y * g.width + x) * 3];
        assert_eq!(px(2, 2), 10);
        assert_eq!(px(6, 2), 20);
        assert_eq!(px(2, 6), 30);
        assert_eq!(px(0, 0), 255);
        assert_eq!(px(6, 6), 255, "the empty fourth cell stays white");
    }

    #[test]
    fn heatmap_scales_rows() {
        let h = confusion_heatmap(&[vec![3, 0], vec![1, 1]], 2).unwrap();
        assert_eq!((h.width, h.height), (4, 4));
        let px = |x: usize, y: usize| {
            [
                h.pixels[(y * 4 + x) * 3],
                h.pixels[(y * 4 + x) * 3 + 1],
                h.pixels[(y * 4 + x) * 3 + 2],
            ]
        };
        assert_eq!(px(0, 0), [25, 63, 165]);
        assert_eq!(px(2, 0), [255, 255, 255]);
        assert_eq!(px(0, 2), px(2, 2));
        assert!(confusion_heatmap(&[vec![1, 2]], 2).is_none());
    }
}
