//! Per-channel statistics of an `ImageSet` (mean and std of pixel/255), e.g. for input normalisation.

use rayon::prelude::*;

use super::ImageSet;

/// Per-channel mean and population standard deviation of pixel/255 over all images.
/// Sums are accumulated exactly in integers and finished in f64. An empty set gives zeros.
pub fn channel_mean_std(set: &ImageSet) -> (Vec<f32>, Vec<f32>) {
    let c = set.channels;
    let plane = set.height * set.width;
    let image_len = set.image_len();
    if c == 0 || plane == 0 || set.pixels.len() < image_len {
        return (vec![0.0; c], vec![0.0; c]);
    }
    let images = (set.pixels.len() / image_len).min(set.len());
    let zero = || vec![(0u64, 0u64); c];
    let sums = set.pixels[..images * image_len]
        .par_chunks_exact(image_len)
        .fold(zero, |mut acc, img| {
            for (a, ch) in acc.iter_mut().zip(img.chunks_exact(plane)) {
                for &v in ch {
                    let v = v as u64;
                    a.0 += v;
                    a.1 += v * v;
                }
            }
            acc
        })
        .reduce(zero, |mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                x.0 += y.0;
                x.1 += y.1;
            }
            a
        });
    let count = (images * plane) as f64;
    let mut means = Vec::with_capacity(c);
    let mut stds = Vec::with_capacity(c);
    for (s, s2) in sums {
        if count == 0.0 {
            means.push(0.0);
            stds.push(0.0);
            continue;
        }
        let mean = s as f64 / count / 255.0;
        let var = (s2 as f64 / count / (255.0 * 255.0) - mean * mean).max(0.0);
        means.push(mean as f32);
        stds.push(var.sqrt() as f32);
    }
    (means, stds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_made_set() {
        // 2 images, 2 channels, 1x2: channel 0 values {0, 255, 255, 0}, channel 1 values {51, 51, 51, 51}
        let set = ImageSet {
            channels: 2,
            height: 1,
            width: 2,
            pixels: vec![0, 255, 51, 51, 255, 0, 51, 51],
            labels: vec![0, 0],
            classes: vec!["a".into()],
            groups: None,
            label_sets: None,
        };
        let (m, s) = channel_mean_std(&set);
        assert!(
            (m[0] - 0.5).abs() < 1e-6 && (s[0] - 0.5).abs() < 1e-6,
            "{m:?} {s:?}"
        );
        assert!(
            (m[1] - 0.2).abs() < 1e-6 && s[1].abs() < 1e-6,
            "{m:?} {s:?}"
        );
    }

    #[test]
    fn gray_values() {
        // values 0, 51, 102, 153 /255 = 0, .2, .4, .6 -> mean .3, population std sqrt(.05)
        let set = ImageSet {
            channels: 1,
            height: 2,
            width: 1,
            pixels: vec![0, 51, 102, 153],
            labels: vec![0, 1],
            classes: vec!["a".into(), "b".into()],
            groups: None,
            label_sets: None,
        };
        let (m, s) = channel_mean_std(&set);
        assert!((m[0] - 0.3).abs() < 1e-6);
        assert!((s[0] - 0.05f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn empty_set() {
        let set = ImageSet {
            channels: 3,
            height: 2,
            width: 2,
            pixels: vec![],
            labels: vec![],
            classes: vec![],
            groups: None,
            label_sets: None,
        };
        assert_eq!(channel_mean_std(&set), (vec![0.0; 3], vec![0.0; 3]));
    }
}
