//! EfficientNet-Lite (placeholder until its blocks land).

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use super::super::builder::Builder;
use super::super::layers::Chw;
use super::super::Mode;
use super::Forward;
use crate::spec::EfficientNetLiteSpec;

pub struct EfficientNetLite;

impl EfficientNetLite {
    pub fn new(_b: &mut Builder, _spec: &EfficientNetLiteSpec, _input: Chw, _classes: usize) -> Result<Self> {
        candle_core::bail!("efficientnet_lite is not built yet")
    }
}

impl Forward for EfficientNetLite {
    fn forward(&self, _x: &Tensor, _mode: Mode, _rng: &mut ChaCha8Rng) -> Result<Tensor> {
        candle_core::bail!("efficientnet_lite is not built yet")
    }
}
