//! The common entry point: `load(source, options)` for image folders, IDX files and CSV manifests.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;

use super::csv_manifest::load_csv;
use super::idx::{read_idx_images, read_idx_labels};
use super::image_folder::load_image_folder;
use super::resize::resize_chw;
use super::{DataError, ImageSet, ResizeMethod};

/// How images are decoded into the cache.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// 1 (grayscale, Pillow's ITU-R 601 luma) or 3 (RGB).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub resize: ResizeMethod,
    /// Skip undecodable images (listed in [`LoadReport::skipped`]) instead of failing.
    pub skip_corrupt: bool,
    /// Fixed class list (label = position). `None`: derived from the data (sorted names, or 0..=max for IDX).
    pub classes: Option<Vec<String>>,
}

impl LoadOptions {
    /// Checks the options and returns the byte size of one image (c·h·w).
    /// The bytes `n` images decoded at this size take, refused (naming `path`) when two copies
    /// would not fit in 90% of the machine's memory: the run holds one and each job another.
    pub fn decoded_bytes(&self, n: usize, path: &std::path::Path) -> Result<usize, DataError> {
        let image_len = self.checked_image_len()?;
        let total = image_len.checked_mul(n);
        let memory = crate::machine::memory();
        let fits = match (total, memory) {
            (Some(t), Some(m)) => (t as u64).saturating_mul(2) <= m / 10 * 9,
            (Some(_), None) => true,
            (None, _) => false,
        };
        match total {
            Some(t) if fits => Ok(t),
            _ => Err(DataError::TooLarge {
                path: path.to_path_buf(),
                images: n,
                width: self.width,
                height: self.height,
                channels: self.channels,
                bytes: total.map_or("more than can be counted".into(), |t| {
                    crate::machine::human_bytes(t as u64)
                }),
                memory: memory.map_or("memory".into(), crate::machine::human_bytes),
            }),
        }
    }

    pub fn checked_image_len(&self) -> Result<usize, DataError> {
        if self.channels != 1 && self.channels != 3 {
            return Err(DataError::InvalidOptions(format!(
                "channels must be 1 or 3, not {}",
                self.channels
            )));
        }
        if self.height == 0 || self.width == 0 {
            return Err(DataError::InvalidOptions(format!(
                "image size must be positive, not {}x{}",
                self.width, self.height
            )));
        }
        if let Some(classes) = &self.classes {
            if classes.is_empty() {
                return Err(DataError::InvalidOptions("the class list is empty".into()));
            }
            let mut seen = HashSet::new();
            for c in classes {
                if !seen.insert(c.as_str()) {
                    return Err(DataError::InvalidOptions(format!(
                        "class {c:?} appears twice in the class list"
                    )));
                }
            }
        }
        self.channels
            .checked_mul(self.height)
            .and_then(|v| v.checked_mul(self.width))
            .ok_or_else(|| {
                DataError::InvalidOptions(format!(
                    "image size {}x{} is too large",
                    self.width, self.height
                ))
            })
    }
}

/// What happened during a load.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Corrupt files skipped (only with `skip_corrupt`), with the decoder's message.
    pub skipped: Vec<(PathBuf, String)>,
    /// Images in the resulting set.
    pub decoded: usize,
    /// Each kept image's name, in the set's order: for files the path relative to the image
    /// folder's root or the manifest's folder (`/`-separated; a path outside it is kept whole),
    /// for IDX `<images file name>[<index>]`.
    pub names: Vec<String>,
    /// Each kept image's size in bytes, in the set's order: the file's size, or for IDX the
    /// image's byte count (height × width).
    pub sizes: Vec<u64>,
    /// Wall-clock seconds the load took.
    pub seconds: f64,
}

/// Where a data set comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `root/<class>/**/*.{png,jpg,jpeg,bmp}`.
    ImageFolder { root: PathBuf },
    /// An IDX image file and an IDX label file (plain or gzip).
    Idx { images: PathBuf, labels: PathBuf },
    /// A CSV manifest with `path` and `label` columns (and optionally `group`).
    Csv { manifest: PathBuf },
}

/// Loads a data set into an [`ImageSet`] of `opts.channels`×`opts.height`×`opts.width` images.
pub fn load(source: &Source, opts: &LoadOptions) -> Result<(ImageSet, LoadReport), DataError> {
    opts.checked_image_len()?;
    let start = Instant::now();
    let (set, mut report) = match source {
        Source::ImageFolder { root } => load_image_folder(root, opts)?,
        Source::Idx { images, labels } => load_idx(images, labels, opts)?,
        Source::Csv { manifest } => load_csv(manifest, opts)?,
    };
    report.seconds = start.elapsed().as_secs_f64();
    Ok((set, report))
}

/// IDX images are grayscale: resized if needed, then replicated into RGB when 3 channels are asked for.
fn load_idx(
    images: &PathBuf,
    labels: &PathBuf,
    opts: &LoadOptions,
) -> Result<(ImageSet, LoadReport), DataError> {
    let (n, h, w, pixels) = read_idx_images(images)?;
    let raw_labels = read_idx_labels(labels)?;
    if raw_labels.len() != n {
        return Err(DataError::CountMismatch {
            images_path: images.clone(),
            images: n,
            labels_path: labels.clone(),
            labels: raw_labels.len(),
        });
    }
    if n == 0 {
        return Err(DataError::NoImages {
            path: images.clone(),
        });
    }
    let labels_u32: Vec<u32> = raw_labels.iter().map(|&l| l as u32).collect();
    let classes: Vec<String> = match &opts.classes {
        Some(list) => {
            if let Some((index, &label)) = labels_u32
                .iter()
                .enumerate()
                .find(|(_, &l)| l as usize >= list.len())
            {
                return Err(DataError::LabelOutOfRange {
                    path: labels.clone(),
                    index,
                    label,
                    num_classes: list.len(),
                });
            }
            list.clone()
        }
        None => {
            let max = labels_u32.iter().copied().max().unwrap_or(0);
            (0..=max).map(|l| l.to_string()).collect()
        }
    };
    opts.decoded_bytes(n, images)?;
    let (oh, ow) = (opts.height, opts.width);
    let gray = if (h, w) == (oh, ow) {
        pixels
    } else if opts.resize == ResizeMethod::None {
        return Err(DataError::SizeMismatch {
            path: images.clone(),
            width: w,
            height: h,
            expected_width: ow,
            expected_height: oh,
        });
    } else {
        let mut out = vec![0u8; n * oh * ow];
        out.par_chunks_mut(oh * ow)
            .zip(pixels.par_chunks(h * w))
            .for_each(|(dst, src)| {
                let r = resize_chw(src, 1, h, w, oh, ow, opts.resize);
                dst.iter_mut().zip(r).for_each(|(d, s)| *d = s);
            });
        out
    };
    let pixels = if opts.channels == 3 {
        let mut out = Vec::with_capacity(gray.len() * 3);
        for img in gray.chunks(oh * ow) {
            for _ in 0..3 {
                out.extend_from_slice(img);
            }
        }
        out
    } else {
        gray
    };
    let file_name = images
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| images.display().to_string());
    let report = LoadReport {
        decoded: n,
        names: (0..n).map(|i| format!("{file_name}[{i}]")).collect(),
        sizes: vec![(h * w) as u64; n],
        ..LoadReport::default()
    };
    let set = ImageSet {
        channels: opts.channels,
        height: oh,
        width: ow,
        pixels,
        labels: labels_u32,
        classes,
        groups: None,
        label_sets: None,
    };
    Ok((set, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn png(path: &Path, shade: u8) -> u64 {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::GrayImage::from_fn(4, 4, |x, y| {
            image::Luma([shade.wrapping_add((x * y) as u8)])
        })
        .save(path)
        .unwrap();
        std::fs::metadata(path).unwrap().len()
    }

    fn opts(skip_corrupt: bool) -> LoadOptions {
        LoadOptions {
            channels: 1,
            height: 4,
            width: 4,
            resize: ResizeMethod::Bilinear,
            skip_corrupt,
            classes: None,
        }
    }

    fn names(r: &LoadReport) -> Vec<&str> {
        r.names.iter().map(String::as_str).collect()
    }

    #[test]
    fn image_folder_names_the_kept_files_relative_to_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("images");
        let a = png(&root.join("cat/a.png"), 10);
        let b = png(&root.join("cat/sub/b.png"), 20);
        std::fs::write(root.join("cat/broken.png"), b"not a png").unwrap();
        let c = png(&root.join("dog/c.png"), 30);
        let (set, report) = load(&Source::ImageFolder { root: root.clone() }, &opts(true)).unwrap();
        assert_eq!(names(&report), ["cat/a.png", "cat/sub/b.png", "dog/c.png"]);
        assert_eq!(report.sizes, [a, b, c]);
        assert_eq!(report.decoded, set.len());
        assert_eq!(report.skipped.len(), 1);
        assert!(report.skipped[0].0.ends_with("cat/broken.png"));
    }

    #[test]
    fn csv_names_are_relative_to_the_manifest_folder() {
        let dir = tempfile::tempdir().unwrap();
        let a = png(&dir.path().join("img/a.png"), 10);
        let b = png(&dir.path().join("b.png"), 20);
        let outside = tempfile::tempdir().unwrap();
        let far = outside.path().join("far.png");
        let f = png(&far, 30);
        let manifest = dir.path().join("m.csv");
        std::fs::write(
            &manifest,
            format!(
                "path,label\nb.png,dog\nimg/a.png,cat\n{},cat\n",
                far.display()
            ),
        )
        .unwrap();
        let (set, report) = load(&Source::Csv { manifest }, &opts(false)).unwrap();
        assert_eq!(
            names(&report),
            ["b.png", "img/a.png", far.to_str().unwrap()]
        );
        assert_eq!(report.sizes, [b, a, f]);
        assert_eq!(set.labels, [1, 0, 0]);
    }

    #[test]
    fn idx_names_are_file_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("imgs.gz");
        let labels = dir.path().join("labels.gz");
        super::super::write_idx_images_gz(&images, 3, 2, 2, &[0; 12]).unwrap();
        super::super::write_idx_labels_gz(&labels, &[0, 1, 1]).unwrap();
        let mut o = opts(false);
        o.height = 4;
        o.width = 4;
        let (_, report) = load(&Source::Idx { images, labels }, &o).unwrap();
        assert_eq!(names(&report), ["imgs.gz[0]", "imgs.gz[1]", "imgs.gz[2]"]);
        assert_eq!(report.sizes, [4, 4, 4]);
    }
}
