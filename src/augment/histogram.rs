//! Histogram equalization: global per channel (torchvision's `equalize`, i.e. PIL's) and
//! contrast-limited adaptive (CLAHE, OpenCV's algorithm) per channel.

use super::image::Image;

/// torchvision's `F.equalize`, channel by channel.
pub fn equalize(img: &Image) -> Image {
    let mut out = img.clone();
    for c in 0..img.channels {
        equalize_plane(out.plane_mut(c));
    }
    out
}

fn equalize_plane(plane: &mut [u8]) {
    let mut hist = [0u64; 256];
    for &v in plane.iter() {
        hist[v as usize] += 1;
    }
    let nonzero: Vec<u64> = hist.iter().copied().filter(|&n| n > 0).collect();
    let all_but_last: u64 = nonzero[..nonzero.len().saturating_sub(1)].iter().sum();
    let step = all_but_last / 255;
    if step == 0 {
        return;
    }
    let mut lut = [0u8; 256];
    let mut cum = 0u64;
    for v in 0..256 {
        // lut is the cumulative histogram shifted by one bin
        lut[v] = ((cum + step / 2) / step).min(255) as u8;
        cum += hist[v];
    }
    for v in plane.iter_mut() {
        *v = lut[*v as usize];
    }
}

/// CLAHE on each channel: `tiles = [rows, cols]` of local histograms, each clipped at
/// `clip_limit` × (its mean bin count) with the excess spread evenly (0 = no clipping), mapped
/// through its cumulative histogram, and blended bilinearly between tile centres.
pub fn clahe(img: &Image, clip_limit: f64, tiles: [usize; 2]) -> Image {
    let mut out = img.clone();
    let (h, w) = (img.height, img.width);
    if h == 0 || w == 0 {
        return out;
    }
    let gy = tiles[0].clamp(1, h);
    let gx = tiles[1].clamp(1, w);
    for c in 0..img.channels {
        let src = img.plane(c).to_vec();
        clahe_plane(&src, out.plane_mut(c), h, w, clip_limit, gy, gx);
    }
    out
}

fn clahe_plane(src: &[u8], dst: &mut [u8], h: usize, w: usize, clip: f64, gy: usize, gx: usize) {
    let bounds = |i: usize, n: usize, g: usize| (i * n / g, (i + 1) * n / g);
    let mut luts = vec![[0u8; 256]; gy * gx];
    for ty in 0..gy {
        for tx in 0..gx {
            let (y0, y1) = bounds(ty, h, gy);
            let (x0, x1) = bounds(tx, w, gx);
            let mut hist = [0u64; 256];
            for y in y0..y1 {
                for &v in &src[y * w + x0..y * w + x1] {
                    hist[v as usize] += 1;
                }
            }
            let n = ((y1 - y0) * (x1 - x0)) as u64;
            if clip > 0.0 {
                let limit = ((clip * n as f64 / 256.0) as u64).max(1);
                let mut excess = 0u64;
                for b in hist.iter_mut() {
                    if *b > limit {
                        excess += *b - limit;
                        *b = limit;
                    }
                }
                let (each, mut rest) = (excess / 256, (excess % 256) as usize);
                for b in hist.iter_mut() {
                    *b += each;
                }
                // the remainder goes to every (256 / rest)-th bin, as OpenCV does
                let step = 256usize.checked_div(rest).unwrap_or(1).max(1);
                let mut i = 0;
                while i < 256 && rest > 0 {
                    hist[i] += 1;
                    i += step;
                    rest -= 1;
                }
            }
            let lut = &mut luts[ty * gx + tx];
            let scale = 255.0 / n.max(1) as f64;
            let mut cum = 0u64;
            for v in 0..256 {
                cum += hist[v];
                lut[v] = (cum as f64 * scale).round().min(255.0) as u8;
            }
        }
    }
    let (th, tw) = (h as f64 / gy as f64, w as f64 / gx as f64);
    let axis = |p: usize, t: f64, g: usize| {
        let f = p as f64 / t - 0.5;
        let i0 = f.floor();
        let a = f - i0;
        let i1 = ((i0 + 1.0).max(0.0) as usize).min(g - 1);
        let i0 = (i0.max(0.0) as usize).min(g - 1);
        (i0, i1, a)
    };
    for y in 0..h {
        let (ty0, ty1, ya) = axis(y, th, gy);
        for x in 0..w {
            let (tx0, tx1, xa) = axis(x, tw, gx);
            let v = src[y * w + x] as usize;
            let l = |ty: usize, tx: usize| luts[ty * gx + tx][v] as f64;
            let top = l(ty0, tx0) * (1.0 - xa) + l(ty0, tx1) * xa;
            let bottom = l(ty1, tx0) * (1.0 - xa) + l(ty1, tx1) * xa;
            dst[y * w + x] = (top * (1.0 - ya) + bottom * ya).round().clamp(0.0, 255.0) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equalize_spreads_a_known_histogram() {
        // 255 pixels of 10, 255 of 20, one of 30: step = 510 / 255 = 2
        let mut data = vec![10u8; 255];
        data.extend(vec![20u8; 255]);
        data.push(30);
        let img = Image::new(1, 1, 511, data);
        let out = equalize(&img);
        assert_eq!(out.data[0], 0);
        assert_eq!(out.data[255], 128); // (255 + 1) / 2
        assert_eq!(out.data[510], 255); // (510 + 1) / 2
                                        // too few distinct levels: unchanged, like torchvision
        let flat = Image::new(1, 1, 3, vec![5, 5, 9]);
        assert_eq!(equalize(&flat), flat);
    }

    #[test]
    fn clahe_without_clipping_is_local_equalization() {
        let mut data = vec![0u8; 32];
        data.extend(vec![255u8; 32]);
        let img = Image::new(1, 8, 8, data);
        let out = clahe(&img, 0.0, [1, 1]);
        // one tile, half the pixels at 0: the cumulative share of 0 is 1/2
        assert_eq!(out.get(0, 0, 0), 128);
        assert_eq!(out.get(0, 7, 7), 255);
        // clipping limits how far a level moves
        let clipped = clahe(&img, 1.0, [1, 1]);
        assert!(clipped.get(0, 0, 0) < 128);
        // many tiles: shape kept, no panic even with more tiles than pixels
        let out = clahe(
            &Image::new(3, 5, 7, (0..105).map(|v| v as u8).collect()),
            2.0,
            [8, 8],
        );
        assert_eq!(out.shape(), (3, 5, 7));
    }
}
