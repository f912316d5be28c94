//! The error type of the data layer: every variant names the file (and the line, for CSV) it is about.

use std::path::PathBuf;

/// Everything that can go wrong while loading a data set. Bad input never panics; it ends up here.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A path given by the user does not exist.
    #[error("{}: no such file or directory", path.display())]
    Missing { path: PathBuf },

    /// A path that must be a directory (an image-folder root) is something else.
    #[error("{}: not a directory", path.display())]
    NotADirectory { path: PathBuf },

    /// An I/O error while reading or writing a file (also covers corrupt gzip streams).
    #[error("{}: I/O error: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file does not start with the expected IDX magic number.
    #[error("{}: not an IDX {kind} file: magic number is 0x{found:08x}, expected 0x{expected:08x}", path.display())]
    IdxMagic {
        path: PathBuf,
        kind: &'static str,
        expected: u32,
        found: u32,
    },

    /// The IDX header has impossible dimensions (zero image size, overflow, data/dimension mismatch).
    #[error("{}: bad IDX dimensions: {reason}", path.display())]
    IdxDimensions { path: PathBuf, reason: String },

    /// The IDX file ends before the header or the data it announces.
    #[error("{}: truncated IDX file: the header announces {expected} bytes of data but only {found} are present", path.display())]
    IdxTruncated {
        path: PathBuf,
        expected: u64,
        found: u64,
    },

    /// The IDX file has bytes after the data its header announces.
    #[error("{}: IDX file has unexpected bytes after the {expected} bytes of data its header announces", path.display())]
    IdxTrailingData { path: PathBuf, expected: u64 },

    /// Image and label files disagree on the number of items.
    #[error("image/label count mismatch: {} holds {images} images but {} holds {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        images_path: PathBuf,
        images: usize,
        labels_path: PathBuf,
        labels: usize,
    },

    /// An image file could not be decoded.
    #[error("{}: corrupt or undecodable image: {message}", path.display())]
    CorruptImage { path: PathBuf, message: String },

    /// A class folder holds no image files.
    #[error("{}: class folder contains no images (.png, .jpg, .jpeg, .bmp)", path.display())]
    EmptyClass { path: PathBuf },

    /// Nothing to load under a root / in a manifest / in an IDX file.
    #[error("{}: no images found", path.display())]
    NoImages { path: PathBuf },

    /// A class folder whose name is not in the class list given in the options.
    #[error("{}: class folder {class:?} is not one of the classes [{}]", path.display(), allowed.join(", "))]
    UnknownClassFolder {
        path: PathBuf,
        class: String,
        allowed: Vec<String>,
    },

    /// Malformed CSV.
    #[error("{}:{line}: CSV syntax error: {message}", path.display())]
    CsvSyntax {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// A wide multilabel manifest (one 0/1 column per label) whose label columns or cells are wrong.
    #[error("{}:{line}: {message}", path.display())]
    ManifestLabels {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// A manifest row refers to an image file that does not exist.
    #[error("{}:{line}: image file {} does not exist", manifest.display(), image.display())]
    CsvMissingImage {
        manifest: PathBuf,
        line: usize,
        image: PathBuf,
    },

    /// The same image listed on two rows of a manifest: it could land in both the training
    /// and the validation split (with two labels, one of them is wrong).
    #[error("{}:{line}: image {} is listed again (first on line {first_line}){}", manifest.display(), image.display(), conflict.as_ref().map_or(String::new(), |(a, b)| format!(" with another label: {a:?} there, {b:?} here")))]
    CsvDuplicate {
        manifest: PathBuf,
        line: usize,
        first_line: usize,
        image: PathBuf,
        /// The two labels, when they differ.
        conflict: Option<(String, String)>,
    },

    /// A label that is not in the class list.
    #[error("{}:{line}: label {label:?} is not one of the classes [{}]", path.display(), allowed.join(", "))]
    UnknownLabel {
        path: PathBuf,
        line: usize,
        label: String,
        allowed: Vec<String>,
    },

    /// A numeric (IDX) label that is out of range for the class list.
    #[error("{}: label {label} of item {index} is out of range for the {num_classes} classes given", path.display())]
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        label: u32,
        num_classes: usize,
    },

    /// An image whose size differs from the target size while resizing is disabled.
    #[error("{}: image is {width}x{height} (WxH) but {expected_width}x{expected_height} is expected and resizing is disabled (resize = \"none\")", path.display())]
    SizeMismatch {
        path: PathBuf,
        width: usize,
        height: usize,
        expected_width: usize,
        expected_height: usize,
    },

    /// The decoded images would not fit in the machine's memory beside a second copy.
    #[error("{}: {images} images of {width}×{height}×{channels} take {bytes} decoded, more than this machine's {memory} can hold twice (the run keeps one copy of the data and each job another); use a smaller data.image_size or fewer images", path.display())]
    TooLarge {
        path: PathBuf,
        images: usize,
        width: usize,
        height: usize,
        channels: usize,
        bytes: String,
        memory: String,
    },

    /// Load options that cannot work (channels not 1 or 3, zero size, bad class list).
    #[error("invalid data options: {0}")]
    InvalidOptions(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing { path }
        } else {
            DataError::Io { path, source }
        }
    }
}
