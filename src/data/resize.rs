//! Resizing of channel-major (C×H×W) u8 images: bilinear (Pillow-compatible, antialiased when shrinking) or nearest.

use serde::{Deserialize, Serialize};

/// How images are brought to the target size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMethod {
    /// Bilinear with half-pixel centres; when shrinking, the triangle filter is widened by the
    /// scale factor (antialiasing), exactly as Pillow's `Image.resize(..., BILINEAR)` does.
    #[default]
    Bilinear,
    /// Nearest neighbour, sampling source pixel `floor((x + 0.5) * in / out)`, bit-exact with Pillow's `NEAREST`.
    Nearest,
    /// No resizing: the loaders report a size difference as an error.
    /// `resize_chw` itself treats it as `Bilinear` when the sizes differ.
    None,
}

/// Fixed-point precision of the filter coefficients, as in Pillow (32 - 8 - 2).
const PRECISION_BITS: u32 = 22;

/// Resize `c` planes of `h`×`w` u8 pixels (C×H×W) to `new_h`×`new_w`.
///
/// Bilinear and nearest results are bit-identical to Pillow ≤ 12 (`Image.resize` on an "L" image,
/// per channel), hence to torchvision's PIL-based `Resize`. Pillow 13 does the vertical pass first
/// when the height shrinks much more than the width, which can move some pixels by 1 there.
///
/// Returns a fresh `c × new_h × new_w` buffer. Equal sizes give a copy. Never panics: if `pixels`
/// is shorter than `c*h*w` the missing pixels read as 0, and an empty source gives zeros.
pub fn resize_chw(
    pixels: &[u8],
    c: usize,
    h: usize,
    w: usize,
    new_h: usize,
    new_w: usize,
    method: ResizeMethod,
) -> Vec<u8> {
    let in_len = c.saturating_mul(h).saturating_mul(w);
    let out_len = c.saturating_mul(new_h).saturating_mul(new_w);
    if out_len == 0 {
        return Vec::new();
    }
    if in_len == 0 {
        return vec![0; out_len];
    }
    let padded;
    let src: &[u8] = if pixels.len() >= in_len {
        &pixels[..in_len]
    } else {
        let mut p = pixels.to_vec();
        p.resize(in_len, 0);
        padded = p;
        &padded
    };
    if h == new_h && w == new_w {
        return src.to_vec();
    }
    match method {
        ResizeMethod::Nearest => nearest(src, c, h, w, new_h, new_w),
        ResizeMethod::Bilinear | ResizeMethod::None => bilinear(src, c, h, w, new_h, new_w),
    }
}

/// Source index per output index, computed as Pillow's `ImagingScaleAffine` does (a running f64
/// sum starting at half a step), so that results match Pillow even where rounding is borderline.
fn nearest_table(in_size: usize, out_size: usize) -> Vec<usize> {
    let step = in_size as f64 / out_size as f64;
    let mut pos = step * 0.5;
    (0..out_size)
        .map(|_| {
            let i = (pos.max(0.0) as usize).min(in_size - 1);
            pos += step;
            i
        })
        .collect()
}

fn nearest(src: &[u8], c: usize, h: usize, w: usize, new_h: usize, new_w: usize) -> Vec<u8> {
    let ys = nearest_table(h, new_h);
    let xs = nearest_table(w, new_w);
    let mut out = Vec::with_capacity(c * new_h * new_w);
    for plane in src.chunks_exact(h * w) {
        for &sy in &ys {
            let row = &plane[sy * w..(sy + 1) * w];
            out.extend(xs.iter().map(|&sx| row[sx]));
        }
    }
    out
}

/// Filter taps for one output coordinate: first source index and fixed-point weights.
struct Taps {
    start: usize,
    weights: Vec<i64>,
}

/// Pillow's `precompute_coeffs` for the bilinear (triangle) filter, then its 8-bit fixed-point
/// normalisation, so results match Pillow bit for bit.
fn bilinear_taps(in_size: usize, out_size: usize) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support 1.0 × filterscale
    let inv = 1.0 / filterscale;
    (0..out_size)
        .map(|x| {
            let center = (x as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize; // `as` truncates like C
            let xmax = ((center + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
            let xmax = xmax.max(xmin);
            let raw: Vec<f64> = (xmin..xmax)
                .map(|i| {
                    let t = ((i as f64 - center + 0.5) * inv).abs();
                    if t < 1.0 {
                        1.0 - t
                    } else {
                        0.0
                    }
                })
                .collect();
            let total: f64 = raw.iter().sum();
            let weights = raw
                .iter()
                .map(|&k| {
                    let k = if total != 0.0 { k / total } else { k };
                    let f = k * (1u64 << PRECISION_BITS) as f64;
                    (if f < 0.0 { f - 0.5 } else { f + 0.5 }) as i64
                })
                .collect();
            Taps {
                start: xmin,
                weights,
            }
        })
        .collect()
}

#[inline]
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

fn bilinear(src: &[u8], c: usize, h: usize, w: usize, new_h: usize, new_w: usize) -> Vec<u8> {
    let half = 1i64 << (PRECISION_BITS - 1);
    // Horizontal pass first (as Pillow), with an 8-bit intermediate.
    let horiz: Vec<u8> = if new_w != w {
        let taps = bilinear_taps(w, new_w);
        let mut out = Vec::with_capacity(c * h * new_w);
        for row in src.chunks_exact(w) {
            for t in &taps {
                let mut acc = half;
                for (k, &wt) in t.weights.iter().enumerate() {
                    acc += row.get(t.start + k).copied().unwrap_or(0) as i64 * wt;
                }
                out.push(clip8(acc));
            }
        }
        out
    } else {
        src.to_vec()
    };
    if new_h == h {
        return horiz;
    }
    let taps = bilinear_taps(h, new_h);
    let mut out = vec![0u8; c * new_h * new_w];
    let mut acc_row = vec![0i64; new_w];
    for (plane_in, plane_out) in horiz
        .chunks_exact(h * new_w)
        .zip(out.chunks_exact_mut(new_h * new_w))
    {
        for (t, row_out) in taps.iter().zip(plane_out.chunks_exact_mut(new_w)) {
            acc_row.iter_mut().for_each(|a| *a = half);
            for (k, &wt) in t.weights.iter().enumerate() {
                let y = t.start + k;
                if let Some(row_in) = plane_in.get(y * new_w..(y + 1) * new_w) {
                    for (a, &p) in acc_row.iter_mut().zip(row_in) {
                        *a += p as i64 * wt;
                    }
                }
            }
            for (o, &a) in row_out.iter_mut().zip(&acc_row) {
                *o = clip8(a);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_when_size_equal() {
        let px: Vec<u8> = (0..2 * 3 * 4).map(|v| (v * 7) as u8).collect();
        for m in [
            ResizeMethod::Bilinear,
            ResizeMethod::Nearest,
            ResizeMethod::None,
        ] {
            assert_eq!(resize_chw(&px, 2, 3, 4, 3, 4, m), px);
        }
    }

    #[test]
    fn nearest_2x2_to_4x4() {
        let px = [10u8, 20, 30, 40];
        let out = resize_chw(&px, 1, 2, 2, 4, 4, ResizeMethod::Nearest);
        #[rustfmt::skip]
        let want = vec![
            10, 10, 20, 20,
            10, 10, 20, 20,
            30, 30, 40, 40,
            30, 30, 40, 40,
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn nearest_downscale_picks_centres() {
        let px = [0u8, 1, 2, 3, 4, 5];
        assert_eq!(
            resize_chw(&px, 1, 1, 6, 1, 3, ResizeMethod::Nearest),
            vec![1, 3, 5]
        );
    }

    #[test]
    fn bilinear_gradient_1x2_to_1x4() {
        let px = [0u8, 100];
        let out = resize_chw(&px, 1, 1, 2, 1, 4, ResizeMethod::Bilinear);
        assert_eq!(out, vec![0, 25, 75, 100]);
    }

    #[test]
    fn bilinear_gradient_vertical_2x1_to_4x1() {
        let px = [0u8, 200];
        let out = resize_chw(&px, 1, 2, 1, 4, 1, ResizeMethod::Bilinear);
        assert_eq!(out, vec![0, 50, 150, 200]);
    }

    #[test]
    fn bilinear_downscale_is_antialiased() {
        // 1x4 -> 1x2: triangle filter widened to support 2 (Pillow): weights 3/7, 3/7, 1/7.
        let px = [0u8, 100, 200, 255];
        let out = resize_chw(&px, 1, 1, 4, 1, 2, ResizeMethod::Bilinear);
        assert_eq!(out, vec![71, 209]);
    }

    #[test]
    fn constant_images_stay_constant() {
        let px = vec![123u8; 3 * 5 * 7];
        for (nh, nw) in [(2, 3), (11, 13), (5, 2), (1, 1)] {
            for m in [ResizeMethod::Bilinear, ResizeMethod::Nearest] {
                let out = resize_chw(&px, 3, 5, 7, nh, nw, m);
                assert_eq!(out.len(), 3 * nh * nw);
                assert!(out.iter().all(|&v| v == 123), "{nh}x{nw} {m:?}");
            }
        }
    }

    #[test]
    fn channels_are_independent() {
        let mut px = vec![0u8; 4];
        px.extend([255u8; 4]);
        let out = resize_chw(&px, 2, 2, 2, 3, 3, ResizeMethod::Bilinear);
        assert_eq!(&out[..9], &[0; 9]);
        assert_eq!(&out[9..], &[255; 9]);
    }

    #[test]
    fn short_or_empty_input_does_not_panic() {
        assert_eq!(
            resize_chw(&[1, 2], 1, 2, 2, 2, 2, ResizeMethod::Bilinear),
            vec![1, 2, 0, 0]
        );
        assert_eq!(
            resize_chw(&[], 1, 0, 0, 2, 2, ResizeMethod::Bilinear),
            vec![0; 4]
        );
        assert!(resize_chw(&[1], 1, 1, 1, 0, 3, ResizeMethod::Nearest).is_empty());
    }

    #[test]
    fn serde_lowercase() {
        let s = serde_json::to_string(&ResizeMethod::Bilinear).unwrap();
        assert_eq!(s, "\"bilinear\"");
        let m: ResizeMethod = serde_json::from_str("\"none\"").unwrap();
        assert_eq!(m, ResizeMethod::None);
        let m: ResizeMethod = serde_json::from_str("\"nearest\"").unwrap();
        assert_eq!(m, ResizeMethod::Nearest);
    }
}
