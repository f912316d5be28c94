//! Automatic augmentation policies: RandAugment and TrivialAugmentWide, with torchvision's
//! operation lists and magnitude ranges.

use super::color;
use super::geometry::{rotate, warp_about, AffineParams, Interpolation};
use super::histogram::equalize;
use super::image::Image;
use super::sample::{below, Stream};

/// The operations both policies choose from, in torchvision's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Identity,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Rotate,
    Brightness,
    Color,
    Contrast,
    Sharpness,
    Posterize,
    Solarize,
    AutoContrast,
    Equalize,
}

pub const OPS: [Op; 14] = [
    Op::Identity,
    Op::ShearX,
    Op::ShearY,
    Op::TranslateX,
    Op::TranslateY,
    Op::Rotate,
    Op::Brightness,
    Op::Color,
    Op::Contrast,
    Op::Sharpness,
    Op::Posterize,
    Op::Solarize,
    Op::AutoContrast,
    Op::Equalize,
];

/// Which policy's magnitude table to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    RandAugment,
    TrivialAugmentWide,
}

fn linspace(lo: f64, hi: f64, bins: usize, i: usize) -> f64 {
    if bins <= 1 {
        lo
    } else {
        lo + (hi - lo) * i as f64 / (bins - 1) as f64
    }
}

/// The magnitude of `op` at bin `i` of `bins`, and whether it takes a random sign.
pub fn magnitude(
    policy: Policy,
    op: Op,
    bins: usize,
    i: usize,
    (h, w): (usize, usize),
) -> (f64, bool) {
    let wide = policy == Policy::TrivialAugmentWide;
    let l = |lo: f64, hi: f64| linspace(lo, hi, bins, i);
    match op {
        Op::Identity | Op::AutoContrast | Op::Equalize => (0.0, false),
        Op::ShearX | Op::ShearY => (l(0.0, if wide { 0.99 } else { 0.3 }), true),
        Op::TranslateX => (
            l(0.0, if wide { 32.0 } else { 150.0 / 331.0 * w as f64 }),
            true,
        ),
        Op::TranslateY => (
            l(0.0, if wide { 32.0 } else { 150.0 / 331.0 * h as f64 }),
            true,
        ),
        Op::Rotate => (l(0.0, if wide { 135.0 } else { 30.0 }), true),
        Op::Brightness | Op::Color | Op::Contrast | Op::Sharpness => {
            (l(0.0, if wide { 0.99 } else { 0.9 }), true)
        }
        Op::Posterize => {
            let div = (bins.max(2) - 1) as f64 / if wide { 6.0 } else { 4.0 };
            (8.0 - (i as f64 / div).round_ties_even(), false)
        }
        Op::Solarize => (l(255.0, 0.0), false),
    }
}

/// torchvision's `_apply_op` (nearest-neighbour warps, as its default).
pub fn apply_op(img: &Image, op: Op, m: f64, fill: u8) -> Image {
    let shear = |sx: f64, sy: f64| AffineParams {
        angle: 0.0,
        translate: [0.0, 0.0],
        scale: 1.0,
        shear: [sx, sy],
    };
    let shift = |tx: f64, ty: f64| AffineParams {
        angle: 0.0,
        translate: [tx, ty],
        scale: 1.0,
        shear: [0.0, 0.0],
    };
    let nearest = Interpolation::Nearest;
    match op {
        Op::Identity => img.clone(),
        Op::ShearX => warp_about(
            img,
            [0.0, 0.0],
            &shear(m.atan().to_degrees(), 0.0),
            fill,
            nearest,
        ),
        Op::ShearY => warp_about(
            img,
            [0.0, 0.0],
            &shear(0.0, m.atan().to_degrees()),
            fill,
            nearest,
        ),
        Op::TranslateX => {
            let c = [img.width as f64 / 2.0, img.height as f64 / 2.0];
            warp_about(img, c, &shift(m.trunc(), 0.0), fill, nearest)
        }
        Op::TranslateY => {
            let c = [img.width as f64 / 2.0, img.height as f64 / 2.0];
            warp_about(img, c, &shift(0.0, m.trunc()), fill, nearest)
        }
        Op::Rotate => rotate(img, m, fill, nearest),
        Op::Brightness => color::brightness(img, 1.0 + m),
        Op::Color => color::saturation(img, 1.0 + m),
        Op::Contrast => color::contrast(img, 1.0 + m),
        Op::Sharpness => color::sharpness(img, 1.0 + m),
        Op::Posterize => color::posterize(img, m as u32),
        Op::Solarize => color::solarize(img, m),
        Op::AutoContrast => color::autocontrast(img),
        Op::Equalize => equalize(img),
    }
}

/// torchvision's `RandAugment`: `num_ops` operations drawn uniformly, each at the fixed
/// magnitude bin `magnitude` with a random sign where the operation has one.
pub fn rand_augment(
    img: &Image,
    num_ops: usize,
    magnitude_bin: usize,
    bins: usize,
    fill: u8,
    rng: &mut Stream,
) -> Image {
    let mut out = img.clone();
    for _ in 0..num_ops {
        let op = OPS[below(rng, OPS.len())];
        let (mut m, signed) = magnitude(
            Policy::RandAugment,
            op,
            bins,
            magnitude_bin,
            (out.height, out.width),
        );
        if signed && below(rng, 2) == 1 {
            m = -m;
        }
        out = apply_op(&out, op, m, fill);
    }
    out
}

/// torchvision's `TrivialAugmentWide`: one operation drawn uniformly at a uniformly drawn
/// magnitude bin, with a random sign where the operation has one.
pub fn trivial_augment(img: &Image, bins: usize, fill: u8, rng: &mut Stream) -> Image {
    let op = OPS[below(rng, OPS.len())];
    let (mut m, signed) = if op == Op::Identity || op == Op::AutoContrast || op == Op::Equalize {
        (0.0, false)
    } else {
        let i = below(rng, bins);
        magnitude(
            Policy::TrivialAugmentWide,
            op,
            bins,
            i,
            (img.height, img.width),
        )
    };
    if signed && below(rng, 2) == 1 {
        m = -m;
    }
    apply_op(img, op, m, fill)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::rng;

    #[test]
    fn magnitudes_follow_torchvision() {
        let size = (331, 331);
        assert_eq!(
            magnitude(Policy::RandAugment, Op::Rotate, 31, 30, size),
            (30.0, true)
        );
        assert_eq!(
            magnitude(Policy::RandAugment, Op::Rotate, 31, 0, size),
            (0.0, true)
        );
        assert!(
            (magnitude(Policy::RandAugment, Op::TranslateX, 31, 30, size).0 - 150.0).abs() < 1e-9
        );
        assert_eq!(
            magnitude(Policy::RandAugment, Op::Posterize, 31, 30, size).0,
            4.0
        );
        assert_eq!(
            magnitude(Policy::RandAugment, Op::Posterize, 31, 0, size).0,
            8.0
        );
        assert_eq!(
            magnitude(Policy::TrivialAugmentWide, Op::Posterize, 31, 30, size).0,
            2.0
        );
        assert_eq!(
            magnitude(Policy::RandAugment, Op::Solarize, 31, 30, size).0,
            0.0
        );
        assert_eq!(
            magnitude(Policy::TrivialAugmentWide, Op::Rotate, 31, 30, size).0,
            135.0
        );
    }

    #[test]
    fn ops_keep_the_shape_and_translate_moves_content() {
        let img = Image::new(3, 6, 5, (0..90).map(|v| v as u8 * 2).collect());
        for op in OPS {
            assert_eq!(apply_op(&img, op, 0.5, 0).shape(), (3, 6, 5), "{op:?}");
        }
        assert_eq!(apply_op(&img, Op::Identity, 3.0, 0), img);
        let moved = apply_op(&img, Op::TranslateX, 1.0, 9);
        assert_eq!(moved.get(0, 0, 0), 9);
        assert_eq!(moved.get(0, 0, 1), img.get(0, 0, 0));
        for i in 0..20 {
            let mut r = rng::stream(2, "t", i);
            assert_eq!(rand_augment(&img, 2, 9, 31, 0, &mut r).shape(), (3, 6, 5));
            assert_eq!(trivial_augment(&img, 31, 0, &mut r).shape(), (3, 6, 5));
        }
    }
}
