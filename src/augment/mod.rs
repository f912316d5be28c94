//! Data augmentation on the u8 image cache: per-sample transform pipelines (seeded by run seed,
//! epoch and sample index), batch-level mixup/cutmix, and the preview grid.

mod auto;
mod color;
mod erasing;
mod filter;
mod geometry;
pub mod grid;
mod histogram;
mod image;
mod mix;
mod pipeline;
mod sample;
mod spec;

pub use image::Image;
pub use mix::{cut_box, cutmix, mixup, BatchMix, CutBox, Mixed};
pub use pipeline::{apply_transform, Pipeline};
pub use spec::{
    output_shape, AugmentSpec, EraseValue, MixSpec, RandomWord, Transform, TransformSpec,
};
