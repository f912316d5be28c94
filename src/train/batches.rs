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

    /// Images `indices` of `set` through `pipeline`, normalised, into `out`; image `indices[k]`
    /// draws from (seed, epoch, `keys[k]`), or from its index when `keys` is `None`.
    fn fill(
        &self,
        pipeline: &Pipeline,
        set: &ImageSet,
        indices: &[usize],
        keys: Option<&[u64]>,
        at: (u64, u64),
        out: &mut [f32],
    ) {
        let (c, h, w) = pipeline.output_shape();
        let len = c * h * w;
        let (seed, epoch) = at;
        for (k, (chunk, &i)) in out.chunks_exact_mut(len).zip(indices).enumerate() {
            if pipeline.is_identity() {
                self.norm.apply(set.image(i), chunk);
            } else {
                let key = keys.and_then(|keys| keys.get(k).copied());
                let img = pipeline.apply(set.image(i), seed, epoch, key.unwrap_or(i as u64));
                self.norm.apply(&img.data, chunk);
            }
        }
    }

    /// Training batch `step` of `epoch`: images `indices` of `set` through the train list (image
    /// `indices[k]` drawing from (seed, epoch, `keys[k]`), see [`draw_keys`]), normalised, with
    /// their targets, then mixed (drawing from (seed, epoch, step)). A function of its
    /// arguments only.
    #[allow(clippy::too_many_arguments)]
    pub fn train_batch(
        &self,
        set: &ImageSet,
        indices: &[usize],
        keys: &[u64],
        objective: &Objective,
        seed: u64,
        epoch: usize,
        step: usize,
    ) -> HostBatch {
        let (c, h, w) = self.shape();
        let mut pixels = vec![0f32; indices.len() * c * h * w];
        let at = (seed, epoch as u64);
        self.fill(&self.train, set, indices, Some(keys), at, &mut pixels);
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
        self.fill(&self.eval, set, indices, None, (0, 0), &mut pixels);
        Tensor::from_vec(pixels, (indices.len(), c, h, w), device)
    }
}

/// The augmentation key of each position of an epoch's `order` over a set of `n` images: the
/// image's index the first time the epoch draws it, `index + r·n` at its `r`-th repeat (the
/// balanced sampler draws with replacement), so every draw of an image is augmented afresh
/// while an order without repeats keys each image by its index alone.
pub fn draw_keys(order: &[usize], n: usize) -> Vec<u64> {
    let mut seen = vec![0u64; n];
    order
        .iter()
        .map(|&i| match seen.get_mut(i) {
            Some(r) => {
                let key = i as u64 + *r * n as u64;
                *r += 1;
                key
            }
            None => i as u64,
        })
        .collect()
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

    /// 40 random 1×12×12 images in 3 classes, with a random train list and mixup/cutmix.
    fn augmenting_inputs() -> (ImageSet, Inputs, Objective) {
        use crate::augment::{AugmentSpec, MixSpec, Transform, TransformSpec};
        use rand::Rng;
        let mut rng = crate::train::rng::stream(7, "test-images", 0);
        let n = 40;
        let set = ImageSet {
            channels: 1,
            height: 12,
            width: 12,
            pixels: (0..n * 144).map(|_| rng.random()).collect(),
            labels: (0..n as u32).map(|i| i % 3).collect(),
            classes: vec!["a".into(), "b".into(), "c".into()],
            groups: None,
            label_sets: None,
        };
        let step = |op, p| TransformSpec { op, p };
        let train = vec![
            step(
                Transform::RandomCrop {
                    size: [10, 10],
                    padding: 2,
                    fill: 0,
                },
                1.0,
            ),
            step(
                Transform::Rotation {
                    degrees: [-15.0, 15.0],
                    fill: 0,
                },
                0.5,
            ),
            step(Transform::HorizontalFlip {}, 0.5),
        ];
        let eval = vec![step(Transform::CenterCrop { size: [10, 10] }, 1.0)];
        let augment = AugmentSpec {
            train: train.clone(),
            eval: eval.clone(),
            mixup: Some(MixSpec { alpha: 0.4, p: 1.0 }),
            cutmix: Some(MixSpec { alpha: 1.0, p: 1.0 }),
        };
        let inputs = Inputs {
            norm: Normalizer::new(&[0.5], &[0.25]),
            train: Pipeline::new(&train, (1, 12, 12)),
            eval: Pipeline::new(&eval, (1, 12, 12)),
            mix: BatchMix::new(&augment, (1, 10, 10)),
        };
        let objective = Objective {
            task: crate::spec::Task::Multiclass,
            num_classes: 3,
            positive: 0,
            smoothing: 0.0,
            class_weights: None,
            bce_weights: None,
        };
        (set, inputs, objective)
    }

    #[test]
    fn augmented_batches_do_not_depend_on_the_number_of_loader_threads() {
        use crate::train::loader::{with_batches, LoaderConfig};
        let (set, inputs, objective) = augmenting_inputs();
        let order: Vec<usize> = (0..set.len()).rev().collect();
        let chunks: Vec<&[usize]> = order.chunks(8).collect();
        let keys = draw_keys(&order, set.len());
        let key_chunks: Vec<&[u64]> = keys.chunks(8).collect();
        let epoch_batches = |threads: usize, epoch: usize| {
            let config = LoaderConfig { threads, ahead: 3 };
            let make = |k: usize| {
                inputs.train_batch(&set, chunks[k], key_chunks[k], &objective, 11, epoch, k)
            };
            with_batches(chunks.len(), config, make, |b| {
                b.map(|b| (b.indices, b.pixels, b.targets))
                    .collect::<Vec<_>>()
            })
        };
        let one = epoch_batches(1, 2);
        assert_eq!(one.len(), 5);
        assert_eq!(
            one[0].1.len(),
            8 * 100,
            "pixels at the augmented 10×10 size"
        );
        assert_eq!(one, epoch_batches(4, 2), "1 and 4 loader threads");
        assert_ne!(one, epoch_batches(4, 3), "another epoch draws anew");
        // The batch of (seed, epoch, step) is the same made alone, outside any loader.
        let alone = inputs.train_batch(&set, chunks[3], key_chunks[3], &objective, 11, 2, 3);
        assert_eq!((alone.indices, alone.pixels, alone.targets), one[3].clone());
        // Mixed targets are soft rows summing to 1.
        let HostTargets::Soft { rows, columns: 3 } = &one[0].2 else {
            panic!("mixing gives soft targets: {:?}", one[0].2)
        };
        for row in rows.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
        }
    }

    #[test]
    fn an_image_drawn_twice_in_an_epoch_is_augmented_twice() {
        // the balanced sampler draws with replacement: image 4 at positions 0, 2 and 3
        let order = [4, 1, 4, 4, 0];
        assert_eq!(draw_keys(&order, 5), vec![4, 1, 9, 14, 0]);
        assert_eq!(
            draw_keys(&[2, 0, 1], 3),
            vec![2, 0, 1],
            "no repeats: the indices"
        );
        let (set, inputs, objective) = augmenting_inputs();
        let indices = [4, 4, 4];
        let keys = draw_keys(&indices, set.len());
        let b = inputs.train_batch(&set, &indices, &keys, &objective, 11, 1, 0);
        let n = 100;
        let (a, c, d) = (&b.pixels[..n], &b.pixels[n..2 * n], &b.pixels[2 * n..]);
        assert!(a != c && a != d && c != d, "three different versions");
    }

    #[test]
    fn evaluation_batches_take_the_eval_list() {
        let (set, inputs, _) = augmenting_inputs();
        let x = inputs.eval_batch(&set, &[0, 5], &Device::Cpu).unwrap();
        assert_eq!(x.dims(), &[2, 1, 10, 10]);
        // The centre 10×10 of image 5, normalised.
        let got = x
            .get(1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let img = set.image(5);
        let want: Vec<f32> = (1..11)
            .flat_map(|y| (1..11).map(move |x| (y, x)))
            .map(|(y, x)| (img[y * 12 + x] as f32 / 255.0 - 0.5) / 0.25)
            .collect();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5);
        }
    }
}
