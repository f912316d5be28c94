//! The `[augment]` section as data: transform lists for training and evaluation, and batch
//! mixing; plus what each transform does to the image shape and whether it is random.

use serde::{Deserialize, Serialize};

/// `[augment]`: per-sample transform lists and batch-level mixing. Empty by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AugmentSpec {
    /// Applied to each training sample, in order, with a fresh random draw per epoch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub train: Vec<TransformSpec>,
    /// Applied to validation and test samples (and shown as the original in previews);
    /// deterministic only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eval: Vec<TransformSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixup: Option<MixSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutmix: Option<MixSpec>,
}

impl AugmentSpec {
    /// True when nothing is configured (the section is then left out of the resolved spec).
    pub fn is_empty(&self) -> bool {
        self.train.is_empty()
            && self.eval.is_empty()
            && self.mixup.is_none()
            && self.cutmix.is_none()
    }
}

/// `[augment.mixup]` or `[augment.cutmix]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MixSpec {
    /// Beta(alpha, alpha) gives the mixing weight.
    pub alpha: f64,
    /// Probability that a batch is mixed.
    pub p: f64,
}

/// One entry of a transform list: the operation and the probability that it is applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransformSpec {
    #[serde(flatten)]
    pub op: Transform,
    pub p: f64,
}

/// What to fill with when erasing: a constant (written `value = 0`) or uniformly random bytes
/// (written `value = "random"`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EraseValue {
    Constant(u8),
    Random(RandomWord),
}

/// The word `"random"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RandomWord {
    Random,
}

/// A per-sample transform with its parameters resolved (ranges as `[min, max]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Transform {
    Resize {
        size: [usize; 2],
    },
    CenterCrop {
        size: [usize; 2],
    },
    RandomCrop {
        size: [usize; 2],
        padding: usize,
        fill: u8,
    },
    RandomResizedCrop {
        size: [usize; 2],
        scale: [f64; 2],
        ratio: [f64; 2],
    },
    HorizontalFlip {},
    VerticalFlip {},
    Rotation {
        degrees: [f64; 2],
        fill: u8,
    },
    Affine {
        degrees: [f64; 2],
        translate: [f64; 2],
        scale: [f64; 2],
        /// `[x_min, x_max, y_min, y_max]` in degrees.
        shear: [f64; 4],
        fill: u8,
    },
    Brightness {
        factor: [f64; 2],
    },
    Contrast {
        factor: [f64; 2],
    },
    Saturation {
        factor: [f64; 2],
    },
    Hue {
        factor: [f64; 2],
    },
    Grayscale {},
    Equalize {},
    Clahe {
        clip_limit: f64,
        tile_grid: [usize; 2],
    },
    GaussianBlur {
        kernel_size: [usize; 2],
        sigma: [f64; 2],
    },
    GaussianNoise {
        mean: f64,
        std: f64,
    },
    RandomErasing {
        scale: [f64; 2],
        ratio: [f64; 2],
        value: EraseValue,
    },
    RandAugment {
        num_ops: usize,
        magnitude: usize,
        num_magnitude_bins: usize,
        fill: u8,
    },
    TrivialAugment {
        num_magnitude_bins: usize,
        fill: u8,
    },
}

fn degenerate(r: &[f64]) -> bool {
    r.chunks(2).all(|c| c[0] == c[1])
}

impl Transform {
    /// The shape `(c, h, w)` this transform turns `input` into.
    pub fn output_shape(&self, input: (usize, usize, usize)) -> (usize, usize, usize) {
        match self {
            Transform::Resize { size }
            | Transform::CenterCrop { size }
            | Transform::RandomCrop { size, .. }
            | Transform::RandomResizedCrop { size, .. } => (input.0, size[0], size[1]),
            _ => input,
        }
    }

    /// True if the transform draws random numbers even when applied with probability 1.
    pub fn is_random(&self) -> bool {
        match self {
            Transform::Resize { .. }
            | Transform::CenterCrop { .. }
            | Transform::HorizontalFlip {}
            | Transform::VerticalFlip {}
            | Transform::Grayscale {}
            | Transform::Equalize {}
            | Transform::Clahe { .. } => false,
            Transform::RandomCrop { .. }
            | Transform::RandomResizedCrop { .. }
            | Transform::RandomErasing { .. }
            | Transform::RandAugment { .. }
            | Transform::TrivialAugment { .. } => true,
            Transform::GaussianNoise { std, .. } => *std > 0.0,
            Transform::Rotation { degrees, .. } => !degenerate(degrees),
            Transform::Affine {
                degrees,
                translate,
                scale,
                shear,
                ..
            } => {
                !degenerate(degrees)
                    || translate.iter().any(|&t| t > 0.0)
                    || !degenerate(scale)
                    || !degenerate(shear)
            }
            Transform::Brightness { factor }
            | Transform::Contrast { factor }
            | Transform::Saturation { factor }
            | Transform::Hue { factor } => !degenerate(factor),
            Transform::GaussianBlur { sigma, .. } => !degenerate(sigma),
        }
    }

    /// The `type` name as written in the spec.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Resize { .. } => "resize",
            Transform::CenterCrop { .. } => "center_crop",
            Transform::RandomCrop { .. } => "random_crop",
            Transform::RandomResizedCrop { .. } => "random_resized_crop",
            Transform::HorizontalFlip {} => "horizontal_flip",
            Transform::VerticalFlip {} => "vertical_flip",
            Transform::Rotation { .. } => "rotation",
            Transform::Affine { .. } => "affine",
            Transform::Brightness { .. } => "brightness",
            Transform::Contrast { .. } => "contrast",
            Transform::Saturation { .. } => "saturation",
            Transform::Hue { .. } => "hue",
            Transform::Grayscale {} => "grayscale",
            Transform::Equalize {} => "equalize",
            Transform::Clahe { .. } => "clahe",
            Transform::GaussianBlur { .. } => "gaussian_blur",
            Transform::GaussianNoise { .. } => "gaussian_noise",
            Transform::RandomErasing { .. } => "random_erasing",
            Transform::RandAugment { .. } => "rand_augment",
            Transform::TrivialAugment { .. } => "trivial_augment",
        }
    }
}

impl TransformSpec {
    /// True if applying it can give different results for different draws.
    pub fn is_random(&self) -> bool {
        self.p > 0.0 && (self.p < 1.0 || self.op.is_random())
    }
}

/// The shape a list of transforms turns `input` into.
pub fn output_shape(list: &[TransformSpec], input: (usize, usize, usize)) -> (usize, usize, usize) {
    list.iter().fold(input, |s, t| t.op.output_shape(s))
}
