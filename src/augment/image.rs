//! `Image`: one channel-major (C×H×W) u8 image, the cache format that augmentation works on.

/// One image, channel-major: `data[c * height * width + y * width + x]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<u8>,
}

impl Image {
    /// Wraps `data`; a buffer of the wrong length is cut or padded with zeros (never panics).
    pub fn new(channels: usize, height: usize, width: usize, mut data: Vec<u8>) -> Image {
        data.resize(channels * height * width, 0);
        Image {
            channels,
            height,
            width,
            data,
        }
    }

    /// An image of one value everywhere.
    pub fn filled(channels: usize, height: usize, width: usize, value: u8) -> Image {
        Image::new(
            channels,
            height,
            width,
            vec![value; channels * height * width],
        )
    }

    /// `(channels, height, width)`.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }

    /// Pixels per channel.
    pub fn plane_len(&self) -> usize {
        self.height * self.width
    }

    /// The pixels of channel `c`.
    pub fn plane(&self, c: usize) -> &[u8] {
        let n = self.plane_len();
        &self.data[c * n..(c + 1) * n]
    }

    pub fn plane_mut(&mut self, c: usize) -> &mut [u8] {
        let n = self.plane_len();
        &mut self.data[c * n..(c + 1) * n]
    }

    pub fn get(&self, c: usize, y: usize, x: usize) -> u8 {
        self.data[(c * self.height + y) * self.width + x]
    }

    pub fn set(&mut self, c: usize, y: usize, x: usize, v: u8) {
        self.data[(c * self.height + y) * self.width + x] = v;
    }

    /// Luminance per pixel (ITU-R 601-2, as torchvision's `rgb_to_grayscale`), as f32 in 0..=255;
    /// a 1-channel image is its own luminance.
    pub fn luminance(&self) -> Vec<f32> {
        if self.channels < 3 {
            return self.plane(0).iter().map(|&v| v as f32).collect();
        }
        let (r, g, b) = (self.plane(0), self.plane(1), self.plane(2));
        (0..self.plane_len())
            .map(|i| 0.2989 * r[i] as f32 + 0.587 * g[i] as f32 + 0.114 * b[i] as f32)
            .collect()
    }
}

/// Rounds and clamps a value to a pixel.
pub fn to_u8(v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        v.round().clamp(0.0, 255.0) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexing_is_channel_major() {
        let img = Image::new(2, 1, 2, vec![1, 2, 3, 4]);
        assert_eq!(img.get(1, 0, 0), 3);
        assert_eq!(img.plane(1), &[3, 4]);
        assert_eq!(Image::new(1, 2, 2, vec![7]).data, vec![7, 0, 0, 0]);
        assert_eq!(to_u8(-3.0), 0);
        assert_eq!(to_u8(254.6), 255);
        assert_eq!(to_u8(f32::NAN), 0);
    }
}
