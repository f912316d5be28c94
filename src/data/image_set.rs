//! `ImageSet`: a decoded data set held as one contiguous u8 buffer (C×H×W per image) plus labels and class names.

use sha2::{Digest, Sha256};

/// Decoded images in one contiguous u8 buffer, channel-major per image (C×H×W), plus labels.
///
/// Invariant (kept by every loader): `pixels.len() == labels.len() * channels * height * width`
/// and every label is `< classes.len()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSet {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
    pub classes: Vec<String>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image: channels × height × width.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The C×H×W bytes of image `i`.
    ///
    /// # Panics
    /// If `i >= self.len()` (like slice indexing).
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        assert!(
            i < self.len(),
            "image index {i} out of range for a set of {} images",
            self.len()
        );
        &self.pixels[i * n..(i + 1) * n]
    }

    /// A new set holding the images at `indices`, in that order (repeats allowed), with the same classes.
    ///
    /// # Panics
    /// If an index is `>= self.len()`.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let n = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        ImageSet {
            channels: self.channels,
            height: self.height,
            width: self.width,
            pixels,
            labels,
            classes: self.classes.clone(),
        }
    }

    /// Number of images per class, indexed by label. The vector has `classes.len()` entries
    /// (more if a label is out of range, so that nothing is lost).
    pub fn class_counts(&self) -> Vec<usize> {
        let max_label = self
            .labels
            .iter()
            .map(|&l| l as usize + 1)
            .max()
            .unwrap_or(0);
        let mut counts = vec![0usize; self.classes.len().max(max_label)];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// sha256 hex over (channels, height, width, classes, labels, pixels) — identifies the data set.
    ///
    /// Encoding hashed: "assay-imageset-v1", then channels, height, width as u64 little-endian,
    /// the number of classes (u64 LE) and each class as its byte length (u64 LE) followed by its UTF-8
    /// bytes, the number of labels (u64 LE) and each label as u32 LE, the pixel byte count (u64 LE)
    /// and the pixels.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"assay-imageset-v1");
        for v in [self.channels, self.height, self.width, self.classes.len()] {
            h.update((v as u64).to_le_bytes());
        }
        for c in &self.classes {
            h.update((c.len() as u64).to_le_bytes());
            h.update(c.as_bytes());
        }
        h.update((self.labels.len() as u64).to_le_bytes());
        let mut buf = Vec::with_capacity(self.labels.len() * 4);
        for &l in &self.labels {
            buf.extend_from_slice(&l.to_le_bytes());
        }
        h.update(&buf);
        h.update((self.pixels.len() as u64).to_le_bytes());
        h.update(&self.pixels);
        let digest = h.finalize();
        let mut hex = String::with_capacity(64);
        for b in digest.iter() {
            hex.push_str(&format!("{b:02x}"));
        }
        hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ImageSet {
        ImageSet {
            channels: 1,
            height: 1,
            width: 2,
            pixels: vec![1, 2, 3, 4, 5, 6],
            labels: vec![0, 1, 1],
            classes: vec!["a".into(), "b".into(), "c".into()],
        }
    }

    #[test]
    fn accessors() {
        let s = sample();
        assert_eq!(s.len(), 3);
        assert!(!s.is_empty());
        assert_eq!(s.image_len(), 2);
        assert_eq!(s.image(1), &[3, 4]);
        assert_eq!(s.class_counts(), vec![1, 2, 0]);
    }

    #[test]
    fn subset_copies_in_order() {
        let s = sample().subset(&[2, 0]);
        assert_eq!(s.pixels, vec![5, 6, 1, 2]);
        assert_eq!(s.labels, vec![1, 0]);
        assert_eq!(s.classes.len(), 3);
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        let s = sample();
        let h = s.content_hash();
        assert_eq!(h.len(), 64);
        assert_eq!(h, sample().content_hash());
        let mut t = sample();
        t.pixels[0] = 9;
        assert_ne!(h, t.content_hash());
        let mut t = sample();
        t.labels[0] = 2;
        assert_ne!(h, t.content_hash());
        let mut t = sample();
        t.classes[0] = "z".into();
        assert_ne!(h, t.content_hash());
        let mut t = sample();
        t.height = 2;
        t.width = 1;
        assert_ne!(h, t.content_hash());
    }

    #[test]
    fn class_counts_tolerates_bad_labels() {
        let mut s = sample();
        s.labels = vec![0, 5, 1];
        assert_eq!(s.class_counts(), vec![1, 1, 0, 0, 0, 1]);
    }
}
