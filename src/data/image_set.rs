//! `ImageSet`: a decoded data set held as one contiguous u8 buffer (C×H×W per image) plus labels, class names and optional groups.

use sha2::{Digest, Sha256};

/// Decoded images in one contiguous u8 buffer, channel-major per image (C×H×W), plus labels.
///
/// Invariant (kept by every loader): `pixels.len() == labels.len() * channels * height * width`,
/// every label is `< classes.len()`, `groups`, when present, has one entry per image, and
/// `label_sets`, when present (multilabel data), has `classes.len()` 0/1 entries per image; then
/// `labels[i]` is the image's first label (0 for an image without labels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSet {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
    pub classes: Vec<String>,
    /// Per-image group (e.g. patient or session, for group k-fold), from a CSV manifest's `group`
    /// column; `None` for IDX files, image folders and manifests without that column.
    pub groups: Option<Vec<String>>,
    /// Multilabel data: row-major N×K multi-hot label sets (1 = the image has label k).
    pub label_sets: Option<Vec<u8>>,
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

    /// Image `i`'s multi-hot labels (`classes.len()` entries); for single-label data, the one-hot
    /// row of its label.
    pub fn label_set(&self, i: usize) -> Vec<u8> {
        let k = self.classes.len();
        match &self.label_sets {
            Some(sets) => sets[i * k..(i + 1) * k].to_vec(),
            None => {
                let mut row = vec![0u8; k];
                if let Some(v) = row.get_mut(self.labels[i] as usize) {
                    *v = 1;
                }
                row
            }
        }
    }

    /// Images carrying each label (multilabel); for single-label data, [`Self::class_counts`].
    pub fn label_counts(&self) -> Vec<usize> {
        let k = self.classes.len();
        match &self.label_sets {
            Some(sets) if k > 0 => {
                let mut counts = vec![0usize; k];
                for row in sets.chunks_exact(k) {
                    for (c, &v) in counts.iter_mut().zip(row) {
                        *c += v as usize;
                    }
                }
                counts
            }
            _ => self.class_counts(),
        }
    }

    /// A new set holding the images at `indices`, in that order (repeats allowed), with the same
    /// classes; groups and label sets, when present, follow their images.
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
            groups: self
                .groups
                .as_ref()
                .map(|g| indices.iter().map(|&i| g[i].clone()).collect()),
            label_sets: self.label_sets.as_ref().map(|s| {
                let k = self.classes.len();
                indices
                    .iter()
                    .flat_map(|&i| s[i * k..(i + 1) * k].iter().copied())
                    .collect()
            }),
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

    /// sha256 hex over (channels, height, width, classes, labels, pixels, groups) — identifies the data set.
    ///
    /// Encoding hashed: "assay-imageset-v1", then channels, height, width as u64 little-endian,
    /// the number of classes (u64 LE) and each class as its byte length (u64 LE) followed by its UTF-8
    /// bytes, the number of labels (u64 LE) and each label as u32 LE, the pixel byte count (u64 LE)
    /// and the pixels. Only when `groups` is present: then "groups", the number of groups (u64 LE)
    /// and each group as its byte length (u64 LE) followed by its UTF-8 bytes. Only when
    /// `label_sets` is present: "label_sets", their byte count (u64 LE) and the bytes. So a set
    /// without groups or label sets hashes as it did before they existed.
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
        if let Some(groups) = &self.groups {
            h.update(b"groups");
            h.update((groups.len() as u64).to_le_bytes());
            for g in groups {
                h.update((g.len() as u64).to_le_bytes());
                h.update(g.as_bytes());
            }
        }
        if let Some(sets) = &self.label_sets {
            h.update(b"label_sets");
            h.update((sets.len() as u64).to_le_bytes());
            h.update(sets);
        }
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
            groups: None,
            label_sets: None,
        }
    }

    fn grouped() -> ImageSet {
        ImageSet {
            groups: Some(vec!["p1".into(), "p2".into(), "p1".into()]),
            ..sample()
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
        assert_eq!(s.groups, None);
    }

    #[test]
    fn subset_keeps_groups() {
        let s = grouped().subset(&[1, 2, 1]);
        assert_eq!(s.labels, vec![1, 1, 1]);
        assert_eq!(
            s.groups,
            Some(vec!["p2".to_string(), "p1".into(), "p2".into()])
        );
        assert_eq!(grouped().subset(&[]).groups, Some(vec![]));
    }

    #[test]
    fn hash_without_groups_is_unchanged() {
        // the encoding as it was before groups existed (pins the v1 format)
        assert_eq!(
            sample().content_hash(),
            "c7925e34b0f8b7615a84aa4f9245fc78513866a12d16a79f76e88c993c595cd3"
        );
    }

    #[test]
    fn hash_covers_groups() {
        let h = sample().content_hash();
        let g = grouped().content_hash();
        assert_ne!(h, g);
        assert_eq!(g, grouped().content_hash());
        let mut t = grouped();
        t.groups.as_mut().unwrap()[2] = "p3".into();
        assert_ne!(g, t.content_hash());
        // group boundaries are part of the encoding
        let mut a = grouped();
        a.groups = Some(vec!["ab".into(), "c".into(), "".into()]);
        let mut b = grouped();
        b.groups = Some(vec!["a".into(), "bc".into(), "".into()]);
        assert_ne!(a.content_hash(), b.content_hash());
        // present but empty differs from absent
        let mut e = sample().subset(&[]);
        let none = e.content_hash();
        e.groups = Some(vec![]);
        assert_ne!(none, e.content_hash());
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

    #[test]
    fn label_sets_follow_subset_and_hash() {
        let mut s = sample();
        s.label_sets = Some(vec![1, 0, 1, 0, 1, 0, 0, 1, 1]);
        assert_eq!(s.label_counts(), vec![1, 2, 2]);
        let sub = s.subset(&[2, 0]);
        assert_eq!(sub.label_sets, Some(vec![0, 1, 1, 1, 0, 1]));
        assert_eq!(sub.label_set(1), vec![1, 0, 1]);
        assert_eq!(sample().label_set(1), vec![0, 1, 0]);
        assert_ne!(s.content_hash(), sample().content_hash());
    }
}
