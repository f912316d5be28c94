//! `Pipeline`: a transform list applied to one cached image, each random draw coming from a
//! generator seeded by (run seed, epoch, sample index). Pure and `Send + Sync`.

use super::auto::{rand_augment, trivial_augment};
use super::color;
use super::erasing::random_erasing;
use super::filter::{gaussian_blur, gaussian_noise};
use super::geometry::{self, random_affine_params, Interpolation};
use super::histogram::{clahe, equalize};
use super::image::Image;
use super::sample::{chance, uniform, Stream};
use super::spec::{output_shape, Transform, TransformSpec};
use crate::train::rng;

/// A list of transforms for images of one input shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    steps: Vec<TransformSpec>,
    input: (usize, usize, usize),
    output: (usize, usize, usize),
}

impl Pipeline {
    /// The list `steps` for images of `input = (channels, height, width)`.
    pub fn new(steps: &[TransformSpec], input: (usize, usize, usize)) -> Pipeline {
        Pipeline {
            steps: steps.to_vec(),
            input,
            output: output_shape(steps, input),
        }
    }

    pub fn input_shape(&self) -> (usize, usize, usize) {
        self.input
    }

    /// `(channels, height, width)` of every image [`Pipeline::apply`] returns.
    pub fn output_shape(&self) -> (usize, usize, usize) {
        self.output
    }

    /// True when applying it returns the input unchanged (no steps, or all with `p = 0`).
    pub fn is_identity(&self) -> bool {
        self.steps.iter().all(|s| s.p <= 0.0)
    }

    /// True when the result depends on the seed, epoch or index.
    pub fn is_random(&self) -> bool {
        self.steps.iter().any(TransformSpec::is_random)
    }

    /// Transforms the C×H×W bytes `pixels` of sample `index` for `epoch`: the same arguments
    /// always give the same image, whatever thread calls it.
    pub fn apply(&self, pixels: &[u8], seed: u64, epoch: u64, index: u64) -> Image {
        let (c, h, w) = self.input;
        let img = Image::new(c, h, w, pixels.to_vec());
        if self.is_identity() {
            return img;
        }
        let mut rng = rng::sample_stream(seed, "augment", epoch, index);
        self.apply_image(img, &mut rng)
    }

    /// Like [`Pipeline::apply`], writing the result into `out` (the first
    /// `c × h × w` of [`Pipeline::output_shape`]; a shorter buffer gets what fits).
    pub fn apply_into(&self, pixels: &[u8], seed: u64, epoch: u64, index: u64, out: &mut [u8]) {
        let img = self.apply(pixels, seed, epoch, index);
        let n = out.len().min(img.data.len());
        out[..n].copy_from_slice(&img.data[..n]);
    }

    /// Runs every step on `img`, drawing from `rng`.
    pub fn apply_image(&self, mut img: Image, rng: &mut Stream) -> Image {
        for step in &self.steps {
            if chance(rng, step.p) {
                img = apply_transform(&step.op, &img, rng);
            }
        }
        img
    }
}

fn range(rng: &mut Stream, r: [f64; 2]) -> f64 {
    uniform(rng, r[0], r[1])
}

/// One transform on one image.
pub fn apply_transform(op: &Transform, img: &Image, rng: &mut Stream) -> Image {
    match op {
        Transform::Resize { size } => geometry::resize(img, size[0], size[1]),
        Transform::CenterCrop { size } => geometry::center_crop(img, size[0], size[1]),
        Transform::RandomCrop {
            size,
            padding,
            fill,
        } => geometry::random_crop(img, size[0], size[1], *padding, *fill, rng),
        Transform::RandomResizedCrop { size, scale, ratio } => {
            geometry::random_resized_crop(img, size[0], size[1], *scale, *ratio, rng)
        }
        Transform::HorizontalFlip {} => geometry::flip_horizontal(img),
        Transform::VerticalFlip {} => geometry::flip_vertical(img),
        Transform::Rotation { degrees, fill } => {
            let angle = range(rng, *degrees);
            geometry::rotate(img, angle, *fill, Interpolation::Bilinear)
        }
        Transform::Affine {
            degrees,
            translate,
            scale,
            shear,
            fill,
        } => {
            let size = (img.height, img.width);
            let p = random_affine_params(*degrees, *translate, *scale, *shear, size, rng);
            geometry::warp(img, &p, *fill, Interpolation::Bilinear)
        }
        Transform::Brightness { factor } => color::brightness(img, range(rng, *factor)),
        Transform::Contrast { factor } => color::contrast(img, range(rng, *factor)),
        Transform::Saturation { factor } => color::saturation(img, range(rng, *factor)),
        Transform::Hue { factor } => color::hue(img, range(rng, *factor)),
        Transform::Grayscale {} => color::grayscale(img),
        Transform::Equalize {} => equalize(img),
        Transform::Clahe {
            clip_limit,
            tile_grid,
        } => clahe(img, *clip_limit, *tile_grid),
        Transform::GaussianBlur { kernel_size, sigma } => {
            let s = range(rng, *sigma);
            gaussian_blur(img, kernel_size[0], kernel_size[1], s)
        }
        Transform::GaussianNoise { mean, std } => gaussian_noise(img, *mean, *std, rng),
        Transform::RandomErasing {
            scale,
            ratio,
            value,
        } => random_erasing(img, *scale, *ratio, *value, rng),
        Transform::RandAugment {
            num_ops,
            magnitude,
            num_magnitude_bins,
            fill,
        } => rand_augment(img, *num_ops, *magnitude, *num_magnitude_bins, *fill, rng),
        Transform::TrivialAugment {
            num_magnitude_bins,
            fill,
        } => trivial_augment(img, *num_magnitude_bins, *fill, rng),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::spec::EraseValue;

    fn t(op: Transform, p: f64) -> TransformSpec {
        TransformSpec { op, p }
    }

    fn every_transform() -> Vec<TransformSpec> {
        vec![
            t(
                Transform::RandomResizedCrop {
                    size: [12, 12],
                    scale: [0.5, 1.0],
                    ratio: [0.75, 1.333],
                },
                1.0,
            ),
            t(
                Transform::RandomCrop {
                    size: [10, 10],
                    padding: 2,
                    fill: 0,
                },
                1.0,
            ),
            t(Transform::HorizontalFlip {}, 0.5),
            t(Transform::VerticalFlip {}, 0.5),
            t(
                Transform::Rotation {
                    degrees: [-20.0, 20.0],
                    fill: 0,
                },
                0.5,
            ),
            t(
                Transform::Affine {
                    degrees: [-5.0, 5.0],
                    translate: [0.1, 0.1],
                    scale: [0.9, 1.1],
                    shear: [-5.0, 5.0, 0.0, 0.0],
                    fill: 0,
                },
                1.0,
            ),
            t(Transform::Brightness { factor: [0.8, 1.2] }, 1.0),
            t(Transform::Contrast { factor: [0.8, 1.2] }, 1.0),
            t(Transform::Saturation { factor: [0.8, 1.2] }, 1.0),
            t(
                Transform::Hue {
                    factor: [-0.1, 0.1],
                },
                1.0,
            ),
            t(Transform::Grayscale {}, 0.2),
            t(Transform::Equalize {}, 0.2),
            t(
                Transform::Clahe {
                    clip_limit: 4.0,
                    tile_grid: [2, 2],
                },
                0.2,
            ),
            t(
                Transform::GaussianBlur {
                    kernel_size: [3, 3],
                    sigma: [0.1, 2.0],
                },
                0.5,
            ),
            t(
                Transform::GaussianNoise {
                    mean: 0.0,
                    std: 0.05,
                },
                0.5,
            ),
            t(
                Transform::RandomErasing {
                    scale: [0.02, 0.33],
                    ratio: [0.3, 3.3],
                    value: EraseValue::Constant(0),
                },
                0.5,
            ),
            t(
                Transform::RandAugment {
                    num_ops: 2,
                    magnitude: 9,
                    num_magnitude_bins: 31,
                    fill: 0,
                },
                1.0,
            ),
            t(
                Transform::TrivialAugment {
                    num_magnitude_bins: 31,
                    fill: 0,
                },
                1.0,
            ),
            t(Transform::Resize { size: [8, 8] }, 1.0),
            t(Transform::CenterCrop { size: [6, 7] }, 1.0),
        ]
    }

    fn pixels() -> Vec<u8> {
        (0..3 * 16 * 16).map(|i| (i * 37 % 251) as u8).collect()
    }

    #[test]
    fn same_seed_epoch_and_index_give_the_same_image() {
        let p = Pipeline::new(&every_transform(), (3, 16, 16));
        assert_eq!(p.output_shape(), (3, 6, 7));
        assert!(p.is_random() && !p.is_identity());
        let px = pixels();
        let a = p.apply(&px, 7, 2, 5);
        assert_eq!(a.shape(), (3, 6, 7));
        assert_eq!(a, p.apply(&px, 7, 2, 5));
        // from another thread, too
        let b = std::thread::scope(|s| s.spawn(|| p.apply(&px, 7, 2, 5)).join().unwrap());
        assert_eq!(a, b);
        let differs = (0..8).filter(|&i| p.apply(&px, 7, 2, 6 + i) != a).count();
        assert!(differs >= 7, "another index gives another image");
        assert_ne!(p.apply(&px, 7, 3, 5), a, "another epoch");
        let mut out = vec![0u8; 3 * 6 * 7];
        p.apply_into(&px, 7, 2, 5, &mut out);
        assert_eq!(out, a.data);
    }

    #[test]
    fn empty_and_deterministic_lists() {
        let px = pixels();
        let id = Pipeline::new(&[], (3, 16, 16));
        assert!(id.is_identity() && !id.is_random());
        assert_eq!(id.apply(&px, 1, 2, 3).data, px);
        let eval = Pipeline::new(
            &[
                t(Transform::Resize { size: [10, 10] }, 1.0),
                t(Transform::CenterCrop { size: [8, 8] }, 1.0),
                t(Transform::HorizontalFlip {}, 1.0),
            ],
            (3, 16, 16),
        );
        assert!(!eval.is_random());
        assert_eq!(eval.apply(&px, 1, 2, 3), eval.apply(&px, 9, 8, 7));
    }

    #[test]
    fn the_widest_valid_ranges_still_transform() {
        // `degrees = 1e308` passes validation: [-1e308, 1e308] is wider than any f64, and the
        // angle drawn from it must still be a rotation (the centre of a flat image is kept)
        let flat = Image::filled(1, 9, 9, 100);
        let rotation = Transform::Rotation {
            degrees: [-1e308, 1e308],
            fill: 7,
        };
        for i in 0..20 {
            let mut r = rng::stream(4, "t", i);
            let out = apply_transform(&rotation, &flat, &mut r);
            assert_eq!(out.get(0, 4, 4), 100, "draw {i}");
        }
    }

    fn _send_sync<T: Send + Sync>() {}
    #[test]
    fn pipeline_is_send_and_sync() {
        _send_sync::<Pipeline>();
        _send_sync::<super::super::mix::BatchMix>();
    }
}
