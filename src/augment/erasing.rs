//! Random erasing (torchvision's `RandomErasing`): a random rectangle set to a value or noise.

use rand::Rng;

use super::image::Image;
use super::sample::{below, uniform, Stream};
use super::spec::EraseValue;

/// torchvision's `RandomErasing.get_params`: `(top, left, height, width)` of the rectangle, or
/// `None` when ten tries found none that fits.
pub fn erase_window(
    height: usize,
    width: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut Stream,
) -> Option<(usize, usize, usize, usize)> {
    let area = (height * width) as f64;
    let (lr0, lr1) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * uniform(rng, scale[0], scale[1]);
        let aspect = uniform(rng, lr0, lr1).exp();
        let h = (target * aspect).sqrt().round() as usize;
        let w = (target / aspect).sqrt().round() as usize;
        if !(h < height && w < width) {
            continue;
        }
        let top = below(rng, height - h + 1);
        let left = below(rng, width - w + 1);
        return Some((top, left, h, w));
    }
    None
}

/// Erases one random rectangle of every channel.
pub fn random_erasing(
    img: &Image,
    scale: [f64; 2],
    ratio: [f64; 2],
    value: EraseValue,
    rng: &mut Stream,
) -> Image {
    let mut out = img.clone();
    let Some((top, left, h, w)) = erase_window(img.height, img.width, scale, ratio, rng) else {
        return out;
    };
    for c in 0..img.channels {
        for y in top..top + h {
            for x in left..left + w {
                let v = match value {
                    EraseValue::Constant(v) => v,
                    EraseValue::Random(_) => rng.random::<u8>(),
                };
                out.set(c, y, x, v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::rng;

    #[test]
    fn erased_rectangle_lies_inside_and_has_the_value() {
        let img = Image::filled(2, 20, 30, 200);
        for i in 0..50 {
            let mut r = rng::stream(5, "t", i);
            let (t, l, h, w) = erase_window(20, 30, [0.02, 0.33], [0.3, 3.3], &mut r).unwrap();
            assert!(t + h <= 20 && l + w <= 30 && h > 0 && w > 0);
            let share = (h * w) as f64 / 600.0;
            assert!(share < 0.4, "{share}");
            let mut r = rng::stream(5, "t", i);
            let out = random_erasing(
                &img,
                [0.02, 0.33],
                [0.3, 3.3],
                EraseValue::Constant(7),
                &mut r,
            );
            let erased = out.data.iter().filter(|&&v| v == 7).count();
            assert_eq!(erased, 2 * h * w);
            assert_eq!(out.get(0, t, l), 7);
            assert_eq!(out.get(1, t + h - 1, l + w - 1), 7);
        }
        // a rectangle that cannot fit leaves the image alone
        let mut r = rng::stream(5, "t", 0);
        let out = random_erasing(
            &img,
            [1.0, 1.0],
            [1.0, 1.0],
            EraseValue::Constant(7),
            &mut r,
        );
        assert_eq!(out, img);
    }
}
