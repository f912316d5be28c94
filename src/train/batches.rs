//! Turns cached u8 images into normalised f32 batch tensors (a lookup table per channel, so
//! normalisation costs one table read per pixel).

use candle_core::{Device, Result, Tensor};

use crate::data::image_set::ImageSet;

/// Per-channel `(pixel / 255 - mean) / std` as 256-entry tables.
#[derive(Clone, Debug)]
pub struct Normalizer {
    tables: Vec<[f32; 256]>,
}

impl Normalizer {
    pub fn new(mean: &[f64], std: &[f64]) -> Self {
        let tables = mean
            .iter()
            .zip(std)
            .map(|(&m, &s)| std::array::from_fn(|v| ((v as f64 / 255.0 - m) / s) as f32))
            .collect();
        Normalizer { tables }
    }

    /// Fills `out` (length C×H×W) from one image's pixels.
    pub fn apply(&self, pixels: &[u8], out: &mut [f32]) {
        let plane = pixels.len() / self.tables.len().max(1);
        for (c, table) in self.tables.iter().enumerate() {
            let range = c * plane..(c + 1) * plane;
            for (o, &p) in out[range.clone()].iter_mut().zip(&pixels[range]) {
                *o = table[p as usize];
            }
        }
    }
}

/// A training batch prepared away from the trainer's thread: the images' indices in the set
/// and their normalised pixels (`indices.len()` × C×H×W).
pub struct HostBatch {
    pub indices: Vec<usize>,
    pub pixels: Vec<f32>,
}

impl HostBatch {
    /// Gathers and normalises images `indices` of `set`.
    pub fn gather(set: &ImageSet, indices: &[usize], norm: &Normalizer) -> Self {
        let len = set.image_len();
        let mut pixels = vec![0f32; indices.len() * len];
        for (chunk, &i) in pixels.chunks_exact_mut(len).zip(indices) {
            norm.apply(set.image(i), chunk);
        }
        HostBatch {
            indices: indices.to_vec(),
            pixels,
        }
    }

    /// The pixels as a `(batch, C, H, W)` tensor and the labels as u32, on `device`.
    pub fn to_tensors(self, set: &ImageSet, device: &Device) -> Result<(Tensor, Tensor)> {
        let n = self.indices.len();
        let labels: Vec<u32> = self.indices.iter().map(|&i| set.labels[i]).collect();
        let x = Tensor::from_vec(
            self.pixels,
            (n, set.channels, set.height, set.width),
            device,
        )?;
        Ok((x, Tensor::from_vec(labels, n, device)?))
    }
}

/// Images `indices` of `set` as a `(batch, C, H, W)` f32 tensor and their labels as u32.
pub fn make_batch(
    set: &ImageSet,
    indices: &[usize],
    norm: &Normalizer,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    HostBatch::gather(set, indices, norm).to_tensors(set, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_each_channel_with_its_own_stats() {
        let n = Normalizer::new(&[0.0, 0.5], &[1.0, 0.5]);
        let mut out = [0f32; 4];
        n.apply(&[0, 255, 0, 255], &mut out);
        assert_eq!(out, [0.0, 1.0, -1.0, 1.0]);
    }
}
