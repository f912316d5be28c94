//! Image-folder data sets (`root/<class>/**/*.{png,jpg,jpeg,bmp}`) and the shared parallel decoder used by every file-based source.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use walkdir::WalkDir;

use super::resize::resize_chw;
use super::source::{LoadOptions, LoadReport};
use super::{DataError, ImageSet, ResizeMethod};

/// Image files with their labels, in data-set order.
pub type LabeledFiles = Vec<(PathBuf, u32)>;

/// File extensions recognised as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

pub(crate) fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
        .unwrap_or(false)
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// Lists an image-folder data set without decoding it.
///
/// Each sub-directory of `root` is a class (named after the folder); every image file below it,
/// at any depth, belongs to that class. Files directly in `root` are ignored, and so are hidden
/// entries (names starting with '.', e.g. `.ipynb_checkpoints`, macOS `._x.png`).
/// Without `classes`, the classes are the folder names sorted; with `classes`, labels are
/// positions in that list, a folder outside it is an error, and a listed class may have no folder.
/// Returns the class names and `(file, label)` pairs ordered by label, then path.
pub fn list_image_folder(
    root: &Path,
    classes: Option<&[String]>,
) -> Result<(Vec<String>, LabeledFiles), DataError> {
    let meta = std::fs::metadata(root).map_err(|e| DataError::io(root, e))?;
    if !meta.is_dir() {
        return Err(DataError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let mut class_dirs: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| DataError::io(root, e))? {
        let entry = entry.map_err(|e| DataError::io(root, e))?;
        if is_hidden(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        // follows symlinks, so a linked class folder counts
        let is_dir = std::fs::metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if is_dir {
            class_dirs.push((entry.file_name().to_string_lossy().into_owned(), path));
        }
    }
    class_dirs.sort();
    if class_dirs.is_empty() {
        return Err(DataError::NoImages {
            path: root.to_path_buf(),
        });
    }
    let class_names: Vec<String> = match classes {
        Some(list) => list.to_vec(),
        None => class_dirs.iter().map(|(n, _)| n.clone()).collect(),
    };
    let mut files: Vec<(PathBuf, u32)> = Vec::new();
    for (name, dir) in &class_dirs {
        let label = match class_names.iter().position(|c| c == name) {
            Some(i) => i as u32,
            None => {
                return Err(DataError::UnknownClassFolder {
                    path: dir.clone(),
                    class: name.clone(),
                    allowed: class_names.clone(),
                })
            }
        };
        let mut found: Vec<PathBuf> = Vec::new();
        let walker = WalkDir::new(dir)
            .follow_links(true)
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !is_hidden(e.file_name()));
        for entry in walker {
            let entry = entry.map_err(|e| {
                let path = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| dir.clone());
                DataError::Io {
                    path,
                    source: std::io::Error::other(e.to_string()),
                }
            })?;
            if entry.file_type().is_file() && has_image_extension(entry.path()) {
                found.push(entry.into_path());
            }
        }
        if found.is_empty() {
            return Err(DataError::EmptyClass { path: dir.clone() });
        }
        found.sort();
        files.extend(found.into_iter().map(|p| (p, label)));
    }
    files.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok((class_names, files))
}

/// Loads `root/<class>/...` as an [`ImageSet`]; see [`list_image_folder`] for the layout rules.
/// Returns the set and a report: the kept files' names (relative to `root`) and sizes, and the
/// corrupt files skipped (only when `opts.skip_corrupt`). The report's `seconds` is left at 0.
pub fn load_image_folder(
    root: &Path,
    opts: &LoadOptions,
) -> Result<(ImageSet, LoadReport), DataError> {
    let (classes, files) = list_image_folder(root, opts.classes.as_deref())?;
    decode_files(&files, None, classes, root, opts)
}

/// `path` relative to `base`, with `/` between components; the whole path when it is not
/// below `base`.
pub(crate) fn relative_name(path: &Path, base: &Path) -> String {
    match path.strip_prefix(base) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        _ => path.display().to_string(),
    }
}

/// Decodes `(file, label)` pairs in parallel into an [`ImageSet`] of `opts.channels`×`opts.height`×`opts.width`,
/// keeping the given order. Corrupt files are an error (the first one in order) or, with
/// `opts.skip_corrupt`, skipped and listed in the report with the decoder's message. `groups`,
/// when given, holds one group per file (a file's group is dropped with it when it is skipped).
/// The report names the kept files relative to `base` (see [`LoadReport::names`]), with their
/// sizes; its `seconds` is left at 0.
pub(crate) fn decode_files(
    files: &[(PathBuf, u32)],
    groups: Option<&[String]>,
    classes: Vec<String>,
    base: &Path,
    opts: &LoadOptions,
) -> Result<(ImageSet, LoadReport), DataError> {
    let image_len = opts.checked_image_len()?;
    if let Some(g) = groups {
        if g.len() != files.len() {
            return Err(DataError::InvalidOptions(format!(
                "{} groups given for {} files",
                g.len(),
                files.len()
            )));
        }
    }
    let total = opts.decoded_bytes(files.len(), base)?;
    let mut pixels = vec![0u8; total];
    let results: Vec<Result<u64, DataError>> = pixels
        .par_chunks_mut(image_len)
        .zip(files.par_iter())
        .map(|(slot, (path, _))| decode_into(path, opts, slot))
        .collect();
    let mut labels = Vec::with_capacity(files.len());
    let mut kept_groups: Option<Vec<String>> = groups.map(|g| Vec::with_capacity(g.len()));
    let mut skipped = Vec::new();
    let mut names = Vec::with_capacity(files.len());
    let mut sizes = Vec::with_capacity(files.len());
    let mut kept = 0usize;
    for (i, (result, (path, label))) in results.into_iter().zip(files).enumerate() {
        match result {
            Ok(size) => {
                names.push(relative_name(path, base));
                sizes.push(size);
                if kept != i {
                    pixels.copy_within(i * image_len..(i + 1) * image_len, kept * image_len);
                }
                labels.push(*label);
                if let (Some(out), Some(g)) = (kept_groups.as_mut(), groups) {
                    out.push(g[i].clone());
                }
                kept += 1;
            }
            Err(DataError::CorruptImage { path, message }) if opts.skip_corrupt => {
                skipped.push((path, message));
            }
            Err(e) => return Err(e),
        }
    }
    pixels.truncate(kept * image_len);
    let set = ImageSet {
        channels: opts.channels,
        height: opts.height,
        width: opts.width,
        pixels,
        labels,
        classes,
        groups: kept_groups,
        label_sets: None,
    };
    let report = LoadReport {
        skipped,
        decoded: set.len(),
        names,
        sizes,
        seconds: 0.0,
    };
    Ok((set, report))
}

fn corrupt(path: &Path, message: impl ToString) -> DataError {
    DataError::CorruptImage {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Pillow's RGB → L conversion (ITU-R 601-2 luma, fixed point), as used by torchvision's `Grayscale`.
#[inline]
fn luma601(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Decodes one file into `slot` (C×H×W at the target size); returns the file's size in bytes.
fn decode_into(path: &Path, opts: &LoadOptions, slot: &mut [u8]) -> Result<u64, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let size = bytes.len() as u64;
    let mut reader = image::ImageReader::new(Cursor::new(bytes));
    if let Ok(format) = image::ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    // The content decides the format when it is recognisable; the extension is the fallback.
    let reader = reader.with_guessed_format().map_err(|e| corrupt(path, e))?;
    let img = reader.decode().map_err(|e| corrupt(path, e))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let chw: Vec<u8> = if opts.channels == 1 {
        if img.color().has_color() {
            img.to_rgb8()
                .pixels()
                .map(|p| luma601(p.0[0], p.0[1], p.0[2]))
                .collect()
        } else {
            img.to_luma8().into_raw()
        }
    } else {
        let rgb = img.to_rgb8().into_raw();
        let plane = w * h;
        let mut out = vec![0u8; 3 * plane];
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                if let Some(o) = out.get_mut(c * plane + i) {
                    *o = v;
                }
            }
        }
        out
    };
    drop(img);
    let resized;
    let data: &[u8] = if h == opts.height && w == opts.width {
        &chw
    } else if opts.resize == ResizeMethod::None {
        return Err(DataError::SizeMismatch {
            path: path.to_path_buf(),
            width: w,
            height: h,
            expected_width: opts.width,
            expected_height: opts.height,
        });
    } else {
        resized = resize_chw(
            &chw,
            opts.channels,
            h,
            w,
            opts.height,
            opts.width,
            opts.resize,
        );
        &resized
    };
    if data.len() != slot.len() {
        return Err(corrupt(
            path,
            format!("decoded to {} bytes, expected {}", data.len(), slot.len()),
        ));
    }
    slot.copy_from_slice(data);
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_case_insensitive() {
        assert!(has_image_extension(Path::new("a/b.PNG")));
        assert!(has_image_extension(Path::new("a/b.JpEg")));
        assert!(has_image_extension(Path::new("b.bmp")));
        assert!(!has_image_extension(Path::new("b.gif")));
        assert!(!has_image_extension(Path::new("png")));
    }

    #[test]
    fn luma_matches_pillow() {
        assert_eq!(luma601(255, 255, 255), 255);
        assert_eq!(luma601(0, 0, 0), 0);
        assert_eq!(luma601(255, 0, 0), 76);
        assert_eq!(luma601(0, 255, 0), 150);
        assert_eq!(luma601(0, 0, 255), 29);
    }
}
