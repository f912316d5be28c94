//! The image files a command is given: files as they are, folders searched for images at any
//! depth, and glob patterns (`'photos/**/*.jpg'`, for shells that do not expand them).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::data::image_folder::has_image_extension;

#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error("no such file or folder: {}", path.display())]
    Missing { path: PathBuf },
    #[error("no image file matches {pattern}")]
    NoMatch { pattern: String },
    #[error("{pattern} is not a valid glob pattern: {message}")]
    BadPattern { pattern: String, message: String },
    #[error("cannot read the folder {}", path.display())]
    Walk {
        path: PathBuf,
        #[source]
        source: walkdir::Error,
    },
    #[error("no image given")]
    Nothing,
}

/// Whether `arg` holds a glob metacharacter.
fn is_pattern(arg: &str) -> bool {
    arg.contains(['*', '?', '['])
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// Every image file below `root`, sorted by path, hidden entries left out.
fn images_below(root: &Path) -> Result<Vec<PathBuf>, ImagesError> {
    let mut out = Vec::new();
    let walk = WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !is_hidden(e.path()));
    for entry in walk {
        let entry = entry.map_err(|source| ImagesError::Walk {
            path: root.to_path_buf(),
            source,
        })?;
        if entry.file_type().is_file() && has_image_extension(entry.path()) {
            out.push(entry.into_path());
        }
    }
    Ok(out)
}

/// The image files `args` name, in the order given (a folder's images sorted by path), each
/// once. A file is taken whatever its extension; a folder or pattern contributes its files with
/// an image extension (png, jpg, jpeg, bmp).
pub fn collect(args: &[PathBuf]) -> Result<Vec<PathBuf>, ImagesError> {
    let mut files = Vec::new();
    for arg in args {
        if arg.is_dir() {
            files.extend(images_below(arg)?);
        } else if arg.exists() {
            files.push(arg.clone());
        } else {
            let text = arg.to_string_lossy();
            if !is_pattern(&text) {
                return Err(ImagesError::Missing { path: arg.clone() });
            }
            let matches = glob::glob(&text).map_err(|e| ImagesError::BadPattern {
                pattern: text.to_string(),
                message: e.to_string(),
            })?;
            let mut found: Vec<PathBuf> = matches
                .filter_map(Result::ok)
                .filter(|p| p.is_file() && has_image_extension(p))
                .collect();
            if found.is_empty() {
                return Err(ImagesError::NoMatch {
                    pattern: text.to_string(),
                });
            }
            found.sort();
            files.extend(found);
        }
    }
    let mut seen = HashSet::new();
    files.retain(|f| seen.insert(f.clone()));
    if files.is_empty() {
        return Err(ImagesError::Nothing);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn folders_patterns_and_files_each_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "a/2.png",
            "a/1.JPG",
            "a/sub/3.bmp",
            "a/notes.txt",
            "a/.hidden/4.png",
            "b/5.png",
        ] {
            touch(&d.join(f));
        }
        let got = collect(&[
            d.join("b/5.png"),
            d.join("a"),
            PathBuf::from(format!("{}/*/5.png", d.display())),
        ])
        .unwrap();
        let names: Vec<String> = got
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["b/5.png", "a/1.JPG", "a/2.png", "a/sub/3.bmp"]);
    }

    #[test]
    fn a_missing_path_and_an_empty_pattern_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.png");
        let e = collect(std::slice::from_ref(&missing)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("no such file or folder: {}", missing.display())
        );
        let pattern = format!("{}/*.png", dir.path().display());
        let e = collect(&[PathBuf::from(&pattern)]).unwrap_err();
        assert_eq!(e.to_string(), format!("no image file matches {pattern}"));
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let e = collect(&[dir.path().join("empty")]).unwrap_err();
        assert_eq!(e.to_string(), "no image given");
    }
}
