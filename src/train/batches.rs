//! Turns cached u8 images into model inputs: augmented (train and eval lists, batch mixing),
//! normalised f32 batches with their targets (a lookup table per channel, so normalisation costs
//! one table read per pixel).

use candle_core::{Device, Result, Tensor};

use super::loss::{HostTargets, Objective, Targets};
use crate::augment::{BatchMix, Pipeline};
use crate::data::image_set::ImageSet;
use crate::spec::Spec;

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

/// How cached images become model inputs: the `[augment]` lists, batch mixing and the
/// normalisation.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub norm: Normalizer,
    pub train: Pipeline,
    pub eval: Pipeline,
    pub mix: BatchMix,
}

/// A training batch prepared away from the trainer's thread: the images' indices in the set,
/// their augmented and normalised pixels (`indices.len()` × C×H×W of the model's input) and
/// their targets (mixed with the pixels when mixup or cutmix applies).
pub struct HostBatch {
    pub indices: Vec<usize>,
    pub pixels: Vec<f32>,
    pub targets: HostTargets,
}

impl Inputs {
    /// The inputs of `spec`, normalised with per-channel `mean` and `std`.
    pub fn new(spec: &Spec, mean: &[f64], std: &[f64]) -> Self {
        Inputs {
            norm: Normalizer::new(mean, std),
            train: spec.train_pipeline(),
            eval: spec.eval_pipeline(),
            mix: spec.batch_mix(),
        }
    }

    /// `(channels, height, width)` of what the model sees.
    pub fn shape(&self) -> (usize, usize, usize) {
        self.train.output_shape()
    }

    /// Images `indices` of `set` through `pipeline`, normalised, into `out`.
    fn fill(
        &self,
        pipeline: &Pipeline,
        set: &ImageSet,
        indices: &[usize],
        at: (u64, u64),
        out: &mut [f32],
    ) {
        let (c, h, w) = pipeline.output_shape();
        let len = c * h * w;
        let (seed, epoch) = at;
        for (chunk, &i) in out.chunks_exact_mut(len).zip(indices) {
            if pipeline.is_identity() {
                self.norm.apply(set.image(i), chunk);
            } else {
                let img = pipeline.apply(set.image(i), seed, epoch, i as u64);
                self.norm.apply(&img.data, chunk);
            }
        }
    }

    /// Training batch `step` of `epoch`: images `indices` of `set` through the train list (each
    /// drawing from (seed, epoch, index)), normalised, with their targets, then mixed (drawing
    /// from (seed, epoch, step)). A function of its arguments only.
    #[allow(clippy::too_many_arguments)]
    pub fn train_batch(
        &self,
        set: &ImageSet,
        indices: &[usize],
        objective: &Objective,
        seed: u64,
        epoch: usize,
        step: usize,
    ) -> HostBatch {
        let (c, h, w) = self.shape();
        let mut pixels = vec![0f32; indices.len() * c * h * w];
        self.fill(&self.train, set, indices, (seed, epoch as u64), &mut pixels);
        let mixing = !self.mix.is_identity();
        let mut targets = objective.host_targets(set, indices, mixing);
        if let (true, Some((rows, columns))) = (mixing, targets.rows_mut()) {
            self.mix.apply(
                &mut pixels,
                rows,
                indices.len(),
                columns,
                seed,
                epoch as u64,
                step as u64,
            );
        }
        HostBatch {
            indices: indices.to_vec(),
            pixels,
            targets,
        }
    }

    /// Evaluation input: images `indices` of `set` through the eval list, normalised, as a
    /// `(batch, C, H, W)` tensor.
    pub fn eval_batch(&self, set: &ImageSet, indices: &[usize], device: &Device) -> Result<Tensor> {
        let (c, h, w) = self.eval.output_shape();
        let mut pixels = vec![0f32; indices.len() * c * h * w];
        self.fill(&self.eval, set, indices, (0, 0), &mut pixels);
        Tensor::from_vec(pixels, (indices.len(), c, h, w), device)
    }
}

impl HostBatch {
    /// The pixels as a `(batch, C, H, W)` tensor of `shape` and the targets, on `device`.
    pub fn into_tensors(
        self,
        shape: (usize, usize, usize),
        device: &Device,
    ) -> Result<(Tensor, Targets)> {
        let (c, h, w) = shape;
        let x = Tensor::from_vec(self.pixels, (self.indices.len(), c, h, w), device)?;
        Ok((x, self.targets.into_targets(device)?))
    }
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
