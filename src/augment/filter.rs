//! Gaussian blur (torchvision's `GaussianBlur`: separable kernel, reflect padding) and
//! additive Gaussian noise.

use super::image::{to_u8, Image};
use super::sample::{normal, Stream};

/// The normalised 1-D Gaussian kernel of `size` taps (torchvision's `_get_gaussian_kernel1d`).
pub fn kernel_1d(size: usize, sigma: f64) -> Vec<f32> {
    let half = (size as f64 - 1.0) / 2.0;
    let k: Vec<f64> = (0..size)
        .map(|i| {
            let x = i as f64 - half;
            (-0.5 * (x / sigma.max(1e-6)).powi(2)).exp()
        })
        .collect();
    let sum: f64 = k.iter().sum();
    k.iter().map(|v| (v / sum) as f32).collect()
}

/// Mirror an index into `0..n` without repeating the edge (PyTorch's "reflect").
fn reflect(i: isize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let mut i = i.rem_euclid(period);
    if i >= n as isize {
        i = period - i;
    }
    i as usize
}

/// Blurs one `h`×`w` plane of f32 values with a `kh`×`kw` kernel of std `sigma`.
pub fn blur_plane(src: &[f32], h: usize, w: usize, kh: usize, kw: usize, sigma: f64) -> Vec<f32> {
    let (ky, kx) = (kernel_1d(kh, sigma), kernel_1d(kw, sigma));
    let (ry, rx) = ((kh / 2) as isize, (kw / 2) as isize);
    let mut tmp = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            tmp[y * w + x] = kx
                .iter()
                .enumerate()
                .map(|(k, &f)| f * src[y * w + reflect(x as isize + k as isize - rx, w)])
                .sum();
        }
    }
    let mut out = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = ky
                .iter()
                .enumerate()
                .map(|(k, &f)| f * tmp[reflect(y as isize + k as isize - ry, h) * w + x])
                .sum();
        }
    }
    out
}

/// Gaussian blur of every channel, rounded back to pixels.
pub fn gaussian_blur(img: &Image, kh: usize, kw: usize, sigma: f64) -> Image {
    let mut out = img.clone();
    for c in 0..img.channels {
        let src: Vec<f32> = img.plane(c).iter().map(|&v| v as f32).collect();
        let blurred = blur_plane(&src, img.height, img.width, kh, kw, sigma);
        for (d, v) in out.plane_mut(c).iter_mut().zip(blurred) {
            *d = to_u8(v);
        }
    }
    out
}

/// Adds independent N(`mean`, `std`²) noise to every pixel, in units of the full range (so
/// `std = 0.1` is 25.5 levels), then rounds and clamps (torchvision's `GaussianNoise`, clip on).
pub fn gaussian_noise(img: &Image, mean: f64, std: f64, rng: &mut Stream) -> Image {
    let mut out = img.clone();
    for v in out.data.iter_mut() {
        let noise = 255.0 * (mean + std * normal(rng));
        *v = to_u8((*v as f64 + noise) as f32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::rng;

    #[test]
    fn blur_of_an_impulse_keeps_its_total() {
        let mut src = vec![0f32; 81];
        src[40] = 1000.0;
        let out = blur_plane(&src, 9, 9, 5, 5, 1.0);
        let total: f32 = out.iter().sum();
        assert!((total - 1000.0).abs() < 1e-2, "{total}");
        assert!(out[40] > out[41] && out[41] > out[42] && out[42] > 0.0);
        assert_eq!(out[40 + 1], out[40 - 1], "symmetric");
        assert_eq!(out[40 + 9], out[40 - 1], "same in both directions");
        // on pixels: total kept up to rounding
        let mut img = Image::filled(1, 9, 9, 0);
        img.set(0, 4, 4, 255);
        let b = gaussian_blur(&img, 3, 3, 1.0);
        let sum: i64 = b.data.iter().map(|&v| v as i64).sum();
        assert!((sum - 255).abs() <= 5, "{sum}");
        assert_eq!(kernel_1d(1, 1.0), vec![1.0]);
    }

    #[test]
    fn blur_of_a_constant_is_constant_and_small_images_are_safe() {
        let img = Image::filled(3, 4, 4, 77);
        assert_eq!(gaussian_blur(&img, 3, 5, 2.0), img);
        let tiny = Image::filled(1, 1, 2, 9);
        assert_eq!(gaussian_blur(&tiny, 7, 7, 3.0), tiny);
    }

    #[test]
    fn noise_has_the_requested_spread() {
        let img = Image::filled(1, 64, 64, 128);
        let mut r = rng::stream(3, "t", 0);
        let out = gaussian_noise(&img, 0.0, 0.1, &mut r);
        let n = out.data.len() as f64;
        let mean = out.data.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = out
            .data
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!((mean - 128.0).abs() < 1.5, "{mean}");
        assert!((var.sqrt() - 25.5).abs() < 1.5, "{}", var.sqrt());
        let mut r = rng::stream(3, "t", 0);
        assert_eq!(gaussian_noise(&img, 0.0, 0.0, &mut r), img);
    }
}
