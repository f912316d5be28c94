//! Photometric transforms with torchvision's semantics: brightness, contrast, saturation, hue,
//! grayscale, and the extra operations RandAugment uses (sharpness, posterize, solarize,
//! autocontrast). Results are rounded to the nearest level and clamped to 0..=255.

use super::image::{to_u8, Image};

/// Every pixel times `factor`.
pub fn brightness(img: &Image, factor: f64) -> Image {
    let f = factor as f32;
    map(img, |v| to_u8(v as f32 * f))
}

/// Blends with the mean luminance: `factor * pixel + (1 - factor) * mean`.
pub fn contrast(img: &Image, factor: f64) -> Image {
    let lum = img.luminance();
    let mean = lum.iter().map(|&v| v as f64).sum::<f64>() / lum.len().max(1) as f64;
    let (f, m) = (factor as f32, ((1.0 - factor) * mean) as f32);
    map(img, |v| to_u8(f * v as f32 + m))
}

/// Blends each pixel with its luminance: 0 gives gray, 1 the image, 2 doubles the saturation.
/// Needs 3 channels (a 1-channel image is returned unchanged).
pub fn saturation(img: &Image, factor: f64) -> Image {
    if img.channels < 3 {
        return img.clone();
    }
    let lum = img.luminance();
    let f = factor as f32;
    let mut out = img.clone();
    for c in 0..3 {
        for (v, l) in out.plane_mut(c).iter_mut().zip(&lum) {
            *v = to_u8(f * *v as f32 + (1.0 - f) * l);
        }
    }
    out
}

/// Turns the hue by `shift` of a full turn (in [-0.5, 0.5]) in HSV space. Needs 3 channels.
pub fn hue(img: &Image, shift: f64) -> Image {
    if img.channels < 3 {
        return img.clone();
    }
    let mut out = img.clone();
    let n = img.plane_len();
    for i in 0..n {
        let rgb = [0, 1, 2].map(|c| img.data[c * n + i] as f64 / 255.0);
        let (h, s, v) = rgb_to_hsv(rgb);
        let rgb = hsv_to_rgb((h + shift).rem_euclid(1.0), s, v);
        for (c, v) in rgb.iter().enumerate() {
            out.data[c * n + i] = to_u8((v * 255.0) as f32);
        }
    }
    out
}

fn rgb_to_hsv([r, g, b]: [f64; 3]) -> (f64, f64, f64) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let s = if max > 0.0 { delta / max } else { 0.0 };
    let h = if delta == 0.0 {
        0.0
    } else if max == r {
        ((g - b) / delta).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / delta + 2.0) / 6.0
    } else {
        ((r - g) / delta + 4.0) / 6.0
    };
    (h, s, max)
}

fn hsv_to_rgb(h: f64, s: f64, v: f64) -> [f64; 3] {
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match (i as i64).rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// Every channel set to the luminance (the channel count is kept).
pub fn grayscale(img: &Image) -> Image {
    if img.channels < 3 {
        return img.clone();
    }
    let lum: Vec<u8> = img.luminance().into_iter().map(to_u8).collect();
    let mut out = img.clone();
    for c in 0..img.channels {
        out.plane_mut(c).copy_from_slice(&lum);
    }
    out
}

/// torchvision's `adjust_sharpness`: blend with a 3×3 smoothed image (kernel 1 1 1 / 1 5 1 /
/// 1 1 1, over 13; border pixels not smoothed). 0 blurs, 1 is the image, 2 sharpens.
pub fn sharpness(img: &Image, factor: f64) -> Image {
    let (h, w) = (img.height, img.width);
    if h < 3 || w < 3 {
        return img.clone();
    }
    let f = factor as f32;
    let mut out = img.clone();
    for c in 0..img.channels {
        let src = img.plane(c);
        let dst = out.plane_mut(c);
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                let mut sum = 0u32;
                for dy in 0..3 {
                    for dx in 0..3 {
                        sum += src[(y + dy - 1) * w + x + dx - 1] as u32;
                    }
                }
                sum += 4 * src[y * w + x] as u32;
                let smooth = (sum as f32 / 13.0).round();
                let v = src[y * w + x] as f32;
                dst[y * w + x] = to_u8(f * v + (1.0 - f) * smooth);
            }
        }
    }
    out
}

/// Keeps the `bits` highest bits of every pixel.
pub fn posterize(img: &Image, bits: u32) -> Image {
    let mask = if bits >= 8 {
        0xff
    } else {
        !(0xffu8 >> bits.min(8))
    };
    map(img, |v| v & mask)
}

/// Inverts every pixel at or above `threshold`.
pub fn solarize(img: &Image, threshold: f64) -> Image {
    map(img, |v| if v as f64 >= threshold { 255 - v } else { v })
}

/// Stretches each channel so its darkest pixel becomes 0 and its brightest 255.
pub fn autocontrast(img: &Image) -> Image {
    let mut out = img.clone();
    for c in 0..img.channels {
        let plane = out.plane_mut(c);
        let (lo, hi) = plane
            .iter()
            .fold((255u8, 0u8), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if hi <= lo {
            continue;
        }
        let scale = 255.0 / (hi - lo) as f32;
        for v in plane.iter_mut() {
            *v = to_u8((*v - lo) as f32 * scale);
        }
    }
    out
}

fn map(img: &Image, f: impl Fn(u8) -> u8) -> Image {
    Image {
        data: img.data.iter().map(|&v| f(v)).collect(),
        ..img.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brightness_scales_exactly() {
        let a = Image::new(1, 1, 4, vec![0, 10, 100, 200]);
        assert_eq!(brightness(&a, 1.5).data, vec![0, 15, 150, 255]);
        assert_eq!(brightness(&a, 0.5).data, vec![0, 5, 50, 100]);
        assert_eq!(brightness(&a, 1.0), a);
    }

    #[test]
    fn contrast_blends_with_the_mean() {
        let a = Image::new(1, 1, 4, vec![0, 100, 100, 200]); // mean 100
        assert_eq!(contrast(&a, 0.0).data, vec![100; 4]);
        assert_eq!(contrast(&a, 2.0).data, vec![0, 100, 100, 255]);
        assert_eq!(contrast(&a, 0.5).data, vec![50, 100, 100, 150]);
    }

    #[test]
    fn saturation_and_grayscale_use_the_luminance() {
        let red = Image::new(3, 1, 1, vec![255, 0, 0]);
        let g = grayscale(&red);
        assert_eq!(g.data, vec![76, 76, 76]); // 0.2989 × 255 = 76.2
        assert_eq!(saturation(&red, 0.0).data, g.data);
        assert_eq!(saturation(&red, 1.0), red);
        let one = Image::new(1, 1, 2, vec![3, 4]);
        assert_eq!(saturation(&one, 0.0), one);
        assert_eq!(grayscale(&one), one);
    }

    #[test]
    fn hue_turns_the_colour_wheel() {
        let red = Image::new(3, 1, 1, vec![255, 0, 0]);
        assert_eq!(hue(&red, 1.0 / 3.0).data, vec![0, 255, 0]);
        assert_eq!(hue(&red, -1.0 / 3.0).data, vec![0, 0, 255]);
        assert_eq!(hue(&red, 0.0), red);
        let gray = Image::new(3, 1, 1, vec![90, 90, 90]);
        assert_eq!(hue(&gray, 0.25), gray);
    }

    #[test]
    fn posterize_solarize_autocontrast_sharpness() {
        let a = Image::new(1, 1, 3, vec![0b1011_0111, 100, 200]);
        assert_eq!(posterize(&a, 2).data, vec![0b1000_0000, 64, 192]);
        assert_eq!(posterize(&a, 8), a);
        assert_eq!(solarize(&a, 150.0).data, vec![255 - 0b1011_0111, 100, 55]);
        assert_eq!(
            autocontrast(&Image::new(1, 1, 3, vec![50, 100, 150])).data,
            vec![0, 128, 255]
        );
        let mut b = Image::filled(1, 3, 3, 0);
        b.set(0, 1, 1, 130);
        // centre: smoothed (5 × 130) / 13 = 50; factor 0 gives the smoothed value
        assert_eq!(sharpness(&b, 0.0).get(0, 1, 1), 50);
        assert_eq!(sharpness(&b, 1.0), b);
    }
}
