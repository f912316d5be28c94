//! MobileNetV2 (placeholder until its blocks land).

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use super::super::builder::Builder;
use super::super::layers::Chw;
use super::super::Mode;
use super::Forward;
use crate::spec::MobileNetV2Spec;

pub struct MobileNetV2;

impl MobileNetV2 {
    pub fn new(_b: &mut Builder, _spec: &MobileNetV2Spec, _input: Chw, _classes: usize) -> Result<Self> {
        candle_core::bail!("mobilenet_v2 is not built yet")
    }
}

impl Forward for MobileNetV2 {
    fn forward(&self, _x: &Tensor, _mode: Mode, _rng: &mut ChaCha8Rng) -> Result<Tensor> {
        candle_core::bail!("mobilenet_v2 is not built yet")
    }
}
