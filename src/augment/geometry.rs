//! Geometric transforms: resize, crops, flips, and rotation/affine warps (torchvision's matrix).

use super::image::{to_u8, Image};
use super::sample::{below, uniform, Stream};
use crate::data::resize::{resize_chw, ResizeMethod};

/// Bilinear resize to `h`×`w` (Pillow-compatible, antialiased when shrinking).
pub fn resize(img: &Image, h: usize, w: usize) -> Image {
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

/// The `h`×`w` window whose top-left corner is at (`top`, `left`) (which may lie outside the
/// image); pixels outside the image read as `fill`.
pub fn crop(img: &Image, top: isize, left: isize, h: usize, w: usize, fill: u8) -> Image {
    let mut out = Image::filled(img.channels, h, w, fill);
    for c in 0..img.channels {
        for y in 0..h {
            let sy = top + y as isize;
            if sy < 0 || sy >= img.height as isize {
                continue;
            }
            for x in 0..w {
                let sx = left + x as isize;
                if sx >= 0 && sx < img.width as isize {
                    out.set(c, y, x, img.get(c, sy as usize, sx as usize));
                }
            }
        }
    }
    out
}

/// The central `h`×`w` window (offsets rounded half to even, like torchvision); zero padding
/// where the window is larger than the image.
pub fn center_crop(img: &Image, h: usize, w: usize) -> Image {
    let top = ((img.height as f64 - h as f64) / 2.0).round_ties_even() as isize;
    let left = ((img.width as f64 - w as f64) / 2.0).round_ties_even() as isize;
    crop(img, top, left, h, w, 0)
}

/// torchvision's `RandomCrop(size, padding, fill)`: pad every side by `padding`, then take an
/// `h`×`w` window at a uniformly random position.
pub fn random_crop(
    img: &Image,
    h: usize,
    w: usize,
    padding: usize,
    fill: u8,
    rng: &mut Stream,
) -> Image {
    let ph = img.height + 2 * padding;
    let pw = img.width + 2 * padding;
    let top = below(rng, ph.saturating_sub(h) + 1) as isize - padding as isize;
    let left = below(rng, pw.saturating_sub(w) + 1) as isize - padding as isize;
    crop(img, top, left, h, w, fill)
}

/// torchvision's `RandomResizedCrop.get_params`: `(top, left, height, width)` of the window.
pub fn resized_crop_window(
    height: usize,
    width: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut Stream,
) -> (usize, usize, usize, usize) {
    let (hh, ww) = (height as f64, width as f64);
    let area = hh * ww;
    let (lr0, lr1) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * uniform(rng, scale[0], scale[1]);
        let aspect = uniform(rng, lr0, lr1).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if w > 0 && w <= width && h > 0 && h <= height {
            let top = below(rng, height - h + 1);
            let left = below(rng, width - w + 1);
            return (top, left, h, w);
        }
    }
    // Python's round (half to even): a 5-pixel side over ratio 2 is 2 pixels, not 3
    let in_ratio = ww / hh;
    let (h, w) = if in_ratio < ratio[0] {
        ((ww / ratio[0]).round_ties_even() as usize, width)
    } else if in_ratio > ratio[1] {
        (height, (hh * ratio[1]).round_ties_even() as usize)
    } else {
        (height, width)
    };
    let (h, w) = (h.clamp(1, height.max(1)), w.clamp(1, width.max(1)));
    ((height - h) / 2, (width - w) / 2, h, w)
}

/// torchvision's `RandomResizedCrop`: a random window (area share in `scale`, aspect ratio in
/// `ratio`) resized bilinearly to `h`×`w`.
pub fn random_resized_crop(
    img: &Image,
    h: usize,
    w: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut Stream,
) -> Image {
    let (top, left, ch, cw) = resized_crop_window(img.height, img.width, scale, ratio, rng);
    let window = crop(img, top as isize, left as isize, ch, cw, 0);
    resize(&window, h, w)
}

/// Mirror left–right.
pub fn flip_horizontal(img: &Image) -> Image {
    let mut out = img.clone();
    for row in out.data.chunks_exact_mut(img.width.max(1)) {
        row.reverse();
    }
    out
}

/// Mirror top–bottom.
pub fn flip_vertical(img: &Image) -> Image {
    let mut out = img.clone();
    let w = img.width;
    for c in 0..img.channels {
        for y in 0..img.height {
            let src = (c * img.height + (img.height - 1 - y)) * w;
            let dst = (c * img.height + y) * w;
            out.data[dst..dst + w].copy_from_slice(&img.data[src..src + w]);
        }
    }
    out
}

/// How a warp reads between pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    Nearest,
    Bilinear,
}

/// Parameters of an affine warp about the image centre, as torchvision's `F.affine`:
/// `angle` clockwise in degrees, `translate` in pixels, `shear` `[x, y]` in degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineParams {
    pub angle: f64,
    pub translate: [f64; 2],
    pub scale: f64,
    pub shear: [f64; 2],
}

/// torchvision's `_get_inverse_affine_matrix`: maps output coordinates (relative to `center`)
/// to input coordinates.
fn inverse_matrix(center: [f64; 2], p: &AffineParams) -> [f64; 6] {
    let rot = p.angle.to_radians();
    let (sx, sy) = (p.shear[0].to_radians(), p.shear[1].to_radians());
    let (cx, cy) = (center[0], center[1]);
    let (tx, ty) = (p.translate[0], p.translate[1]);
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let s = if p.scale == 0.0 { 1.0 } else { p.scale };
    let mut m = [d / s, -b / s, 0.0, -c / s, a / s, 0.0];
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
    m
}

/// Warps `img` by the affine transform `p` about its centre; pixels from outside read as `fill`.
pub fn warp(img: &Image, p: &AffineParams, fill: u8, interp: Interpolation) -> Image {
    let centre = [img.width as f64 / 2.0, img.height as f64 / 2.0];
    warp_about(img, centre, p, fill, interp)
}

/// Like [`warp`] about `centre` (`[x, y]` in pixels; `[0, 0]` is the top-left corner).
pub fn warp_about(
    img: &Image,
    centre: [f64; 2],
    p: &AffineParams,
    fill: u8,
    interp: Interpolation,
) -> Image {
    let (h, w) = (img.height, img.width);
    let m = inverse_matrix(centre, p);
    let mut out = Image::filled(img.channels, h, w, fill);
    let read = |c: usize, y: isize, x: isize| -> f64 {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
            fill as f64
        } else {
            img.get(c, y as usize, x as usize) as f64
        }
    };
    // Two pixels beyond the border every read is `fill` already; clamping there keeps the index
    // arithmetic below in range for any matrix (huge or non-finite after extreme zooms).
    let limit = |v: f64, n: usize| {
        if v.is_nan() {
            -2.0
        } else {
            v.clamp(-2.0, n as f64 + 1.0)
        }
    };
    for y in 0..h {
        for x in 0..w {
            let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
            // input position in pixel-index space (pixel centres at integers)
            let ix = limit(m[0] * px + m[1] * py + m[2] - 0.5, w);
            let iy = limit(m[3] * px + m[4] * py + m[5] - 0.5, h);
            for c in 0..img.channels {
                let v = match interp {
                    Interpolation::Nearest => read(c, iy.round() as isize, ix.round() as isize),
                    Interpolation::Bilinear => {
                        let (x0, y0) = (ix.floor(), iy.floor());
                        let (fx, fy) = (ix - x0, iy - y0);
                        let (x0, y0) = (x0 as isize, y0 as isize);
                        let top = read(c, y0, x0) * (1.0 - fx) + read(c, y0, x0 + 1) * fx;
                        let bottom =
                            read(c, y0 + 1, x0) * (1.0 - fx) + read(c, y0 + 1, x0 + 1) * fx;
                        top * (1.0 - fy) + bottom * fy
                    }
                };
                out.set(c, y, x, to_u8(v as f32));
            }
        }
    }
    out
}

/// Rotation by `degrees` counter-clockwise about the centre (torchvision's `F.rotate`).
pub fn rotate(img: &Image, degrees: f64, fill: u8, interp: Interpolation) -> Image {
    let p = AffineParams {
        angle: -degrees,
        translate: [0.0, 0.0],
        scale: 1.0,
        shear: [0.0, 0.0],
    };
    warp(img, &p, fill, interp)
}

/// torchvision's `RandomAffine.get_params`: angle, whole-pixel translation, scale and shear.
pub fn random_affine_params(
    degrees: [f64; 2],
    translate: [f64; 2],
    scale: [f64; 2],
    shear: [f64; 4],
    size: (usize, usize),
    rng: &mut Stream,
) -> AffineParams {
    let angle = uniform(rng, degrees[0], degrees[1]);
    let max_dx = translate[0] * size.1 as f64;
    let max_dy = translate[1] * size.0 as f64;
    let tx = uniform(rng, -max_dx, max_dx).round();
    let ty = uniform(rng, -max_dy, max_dy).round();
    let s = uniform(rng, scale[0], scale[1]);
    let shx = uniform(rng, shear[0], shear[1]);
    let shy = uniform(rng, shear[2], shear[3]);
    AffineParams {
        angle,
        translate: [tx, ty],
        scale: s,
        shear: [shx, shy],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::rng;

    fn img(c: usize, h: usize, w: usize) -> Image {
        Image::new(c, h, w, (1..=(c * h * w) as u8).collect())
    }

    #[test]
    fn flips_mirror_each_plane() {
        let a = img(2, 2, 3); // planes [1..6] and [7..12]
        assert_eq!(
            flip_horizontal(&a).data,
            vec![3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10]
        );
        assert_eq!(
            flip_vertical(&a).data,
            vec![4, 5, 6, 1, 2, 3, 10, 11, 12, 7, 8, 9]
        );
    }

    #[test]
    fn crops_take_the_right_window() {
        let a = img(1, 4, 4);
        assert_eq!(crop(&a, 1, 2, 2, 2, 0).data, vec![7, 8, 11, 12]);
        assert_eq!(crop(&a, -1, -1, 2, 2, 9).data, vec![9, 9, 9, 1]);
        assert_eq!(center_crop(&a, 2, 2).data, vec![6, 7, 10, 11]);
        // odd difference: (5 - 2) / 2 = 1.5 rounds to 2, as Python's round
        let b = img(1, 5, 1);
        assert_eq!(center_crop(&b, 2, 1).data, vec![3, 4]);
        assert_eq!(center_crop(&img(1, 1, 1), 3, 3).data[4], 1);
    }

    #[test]
    fn random_crop_windows_stay_inside_the_padded_image() {
        let a = img(1, 4, 4);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            let mut r = rng::stream(0, "t", i);
            let c = random_crop(&a, 4, 4, 1, 0, &mut r);
            assert_eq!(c.shape(), (1, 4, 4));
            // the window is the image shifted by at most one pixel: 9 positions
            seen.insert(c.data.clone());
            let kept: usize = c.data.iter().filter(|&&v| v != 0).count();
            assert!(kept >= 9, "at least a 3×3 part of the image remains");
        }
        assert_eq!(seen.len(), 9);
        let mut r = rng::stream(0, "t", 0);
        assert_eq!(
            random_crop(&a, 4, 4, 0, 0, &mut r),
            a,
            "no padding, full size"
        );
    }

    #[test]
    fn resized_crop_windows_follow_scale_and_ratio() {
        for i in 0..100 {
            let mut r = rng::stream(1, "t", i);
            let (t, l, h, w) = resized_crop_window(32, 48, [0.25, 0.5], [0.75, 1.333], &mut r);
            assert!(t + h <= 32 && l + w <= 48);
            let share = (h * w) as f64 / (32.0 * 48.0);
            assert!((0.2..=0.56).contains(&share), "{share}");
        }
        let mut r = rng::stream(1, "t", 0);
        let out = random_resized_crop(&img(3, 8, 8), 4, 6, [0.08, 1.0], [0.75, 1.333], &mut r);
        assert_eq!(out.shape(), (3, 4, 6));
        // an impossible ratio falls back to the central crop
        let mut r = rng::stream(1, "t", 0);
        assert_eq!(
            resized_crop_window(10, 40, [1.0, 1.0], [1.0, 1.0], &mut r),
            (0, 15, 10, 10)
        );
        // the fallback rounds like Python: round(5 / 2) = 2, round(5 × 0.5) = 2
        let mut r = rng::stream(1, "t", 0);
        assert_eq!(
            resized_crop_window(10, 5, [1.0, 1.0], [2.0, 2.0], &mut r),
            (4, 0, 2, 5)
        );
        let mut r = rng::stream(1, "t", 0);
        assert_eq!(
            resized_crop_window(5, 10, [1.0, 1.0], [0.5, 0.5], &mut r),
            (0, 4, 5, 2)
        );
    }

    #[test]
    fn rotation_by_90_degrees_of_a_square_is_exact() {
        let a = img(1, 3, 3); // 1 2 3 / 4 5 6 / 7 8 9
        let r = rotate(&a, 90.0, 0, Interpolation::Bilinear);
        // counter-clockwise: the right column becomes the top row
        assert_eq!(r.data, vec![3, 6, 9, 2, 5, 8, 1, 4, 7]);
        let r = rotate(&a, -90.0, 0, Interpolation::Nearest);
        assert_eq!(r.data, vec![7, 4, 1, 8, 5, 2, 9, 6, 3]);
        let even = img(1, 4, 4);
        let back = rotate(
            &rotate(&even, 90.0, 0, Interpolation::Bilinear),
            -90.0,
            0,
            Interpolation::Bilinear,
        );
        assert_eq!(back, even);
    }

    #[test]
    fn rotation_fills_the_corners() {
        let a = Image::filled(1, 9, 9, 100);
        let r = rotate(&a, 45.0, 7, Interpolation::Bilinear);
        assert_eq!(r.get(0, 0, 0), 7);
        assert_eq!(r.get(0, 4, 4), 100);
    }

    #[test]
    fn affine_translation_shifts_whole_pixels() {
        let a = img(1, 3, 3);
        let p = AffineParams {
            angle: 0.0,
            translate: [1.0, 0.0],
            scale: 1.0,
            shear: [0.0, 0.0],
        };
        assert_eq!(
            warp(&a, &p, 0, Interpolation::Bilinear).data,
            vec![0, 1, 2, 0, 4, 5, 0, 7, 8]
        );
        let p = AffineParams {
            scale: 2.0,
            ..AffineParams {
                angle: 0.0,
                translate: [0.0, 0.0],
                scale: 1.0,
                shear: [0.0, 0.0],
            }
        };
        // zooming in by 2 keeps the centre pixel
        assert_eq!(warp(&a, &p, 0, Interpolation::Nearest).get(0, 1, 1), 5);
    }

    #[test]
    fn extreme_zooms_read_the_fill_without_overflow() {
        // a scale near 0 maps output pixels ~1e300 pixels away (or to infinity and NaN): every
        // read is outside, and the index arithmetic must not overflow
        let a = img(1, 4, 4);
        for scale in [1e-300, 1e-308] {
            let p = AffineParams {
                angle: 0.0,
                translate: [0.0, 0.0],
                scale,
                shear: [0.0, 0.0],
            };
            for interp in [Interpolation::Bilinear, Interpolation::Nearest] {
                let out = warp(&a, &p, 9, interp);
                assert_eq!(out.data, vec![9; 16], "{scale} {interp:?}");
            }
        }
    }
}
