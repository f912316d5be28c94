//! Data layer: decoding image data sets (IDX, image folders, CSV manifests) into a compact u8 cache, plus splits, cross-validation folds and statistics.

pub mod csv_manifest;
pub mod error;
pub mod folds;
pub mod idx;
pub mod image_folder;
pub mod image_set;
pub mod inventory;
pub mod label_columns;
pub mod resize;
pub mod source;
pub mod split;
pub mod stats;

pub use error::DataError;
pub use folds::{
    group_kfold, kfold, small_classes, stratified_kfold, FoldError, FoldMethod, Folds,
};
pub use idx::{read_idx_images, read_idx_labels, write_idx_images_gz, write_idx_labels_gz};
pub use image_set::ImageSet;
pub use inventory::{Change, DataChanges, Inventory};
pub use resize::{resize_chw, ResizeMethod};
pub use source::{load, LoadOptions, LoadReport, Source};
pub use split::{random_split, stratified_split};
pub use stats::channel_mean_std;
