//! EfficientNet-Lite 0–4, the layout of the published Lite weights (the lukemelas
//! EfficientNet-PyTorch names: `_conv_stem`, `_bn0`, `_blocks.N._expand_conv` … `_bn2`,
//! `_conv_head`, `_bn1`, `_fc`): inverted residual blocks without squeeze-excitation, ReLU6,
//! TensorFlow "SAME" padding, batch norm eps 1e-3 and momentum 0.01 (PyTorch's meaning). The
//! variant's width coefficient scales the blocks' channels (rounded to multiples of 8) but not
//! the stem (32) or the head (1280); its depth coefficient scales the repeats of every stage but
//! the first and the last. Dropout comes before `_fc`; drop-path (drop-connect) on block `i` of
//! `n` is `drop_path · i / n`, as the reference implementations do.

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use super::super::builder::{Builder, Fill};
use super::super::layers::conv::kaiming_fan_out;
use super::super::layers::{Chw, ConvConfig, Linear, Padding};
use super::super::Mode;
use super::inverted_residual::{
    too_small, BlockConfig, BlockNames, ConvBn, ConvBnNames, InvertedResidual, Style,
};
use super::{pooled_head, Forward};
use crate::spec::EfficientNetLiteSpec;

/// Repeats, kernel, stride of the first block, expansion, output channels, per stage (lite0).
const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
];

/// (width, depth) coefficients of lite0 … lite4.
const COEFFICIENTS: [(f64, f64); 5] = [(1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4), (1.4, 1.8)];

const STEM: usize = 32;
const HEAD: usize = 1280;
/// Five stride-2 layers: each needs an input of at least 2×2.
const MIN_SIDE: usize = 32;

const STYLE: Style = Style {
    padding: |_| Padding::Same,
    bn_momentum: 0.01,
    bn_eps: 1e-3,
    // TensorFlow's EfficientNet initialiser: normal with std √(2 / fan-out), where a depthwise
    // kernel's fan-out is k² (one output per channel).
    fill: kaiming_fan_out,
};

/// `c · width` rounded to the nearest multiple of 8 (at least 8), never more than 10 % below.
fn round_filters(c: usize, width: f64) -> usize {
    super::mobilenet_v2::make_divisible(c as f64 * width)
}

pub struct EfficientNetLite {
    stem: ConvBn,
    blocks: Vec<InvertedResidual>,
    head: ConvBn,
    dropout: f64,
    fc: Linear,
}

impl EfficientNetLite {
    pub fn new(
        b: &mut Builder,
        spec: &EfficientNetLiteSpec,
        input: Chw,
        classes: usize,
    ) -> Result<Self> {
        let Some(&(width, depth)) = COEFFICIENTS.get(spec.variant) else {
            candle_core::bail!("efficientnet_lite: no variant {} (0 to 4)", spec.variant)
        };
        let width = width * spec.width;
        let arch = format!("efficientnet_lite{}", spec.variant);
        if input.1 < 2 || input.2 < 2 {
            return Err(too_small("_conv_stem", input, 2, &arch, MIN_SIDE));
        }
        let stem_cfg = ConvConfig::new(STEM, 3).stride(2);
        b.part("stem");
        let (stem, mut shape) =
            STYLE.conv_bn(b, &ConvBnNames::new("_conv_stem", "_bn0"), stem_cfg, input)?;
        let last_stage = STAGES.len() - 1;
        let repeats: Vec<usize> = STAGES
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i == 0 || i == last_stage {
                    s.0
                } else {
                    (depth * s.0 as f64).ceil() as usize
                }
            })
            .collect();
        let total: usize = repeats.iter().sum();
        let mut blocks = Vec::with_capacity(total);
        for (stage, (&(_, kernel, stride, expansion, c), &n)) in
            STAGES.iter().zip(&repeats).enumerate()
        {
            b.part(format!("stages.{stage}"));
            let out = round_filters(c, width);
            for i in 0..n {
                let index = blocks.len();
                let p = format!("_blocks.{index}");
                let names = BlockNames {
                    block: p.clone(),
                    expand: ConvBnNames::new(format!("{p}._expand_conv"), format!("{p}._bn0")),
                    depthwise: ConvBnNames::new(
                        format!("{p}._depthwise_conv"),
                        format!("{p}._bn1"),
                    ),
                    project: ConvBnNames::new(format!("{p}._project_conv"), format!("{p}._bn2")),
                };
                let cfg = BlockConfig {
                    hidden: shape.0 * expansion,
                    expand: expansion != 1,
                    out,
                    kernel,
                    stride: if i == 0 { stride } else { 1 },
                    drop_path: spec.drop_path * index as f64 / total as f64,
                };
                let (block, next) =
                    InvertedResidual::new(b, &names, &STYLE, cfg, shape, (&arch, MIN_SIDE))?;
                blocks.push(block);
                shape = next;
            }
        }
        b.part("top");
        let (head, shape) = STYLE.conv_bn(
            b,
            &ConvBnNames::new("_conv_head", "_bn1"),
            ConvConfig::new(HEAD, 1),
            shape,
        )?;
        // TensorFlow's dense initialiser: uniform ±1/√outputs, bias zero.
        let bound = 1.0 / (classes.max(1) as f64).sqrt();
        b.part("head");
        let fc = Linear::new(b, "_fc", shape.0, classes, true, Some(Fill::Uniform(bound)))?;
        b.flops(2 * shape.0 * classes);
        Ok(Self {
            stem,
            blocks,
            head,
            dropout: spec.dropout,
            fc,
        })
    }
}

impl Forward for EfficientNetLite {
    fn forward(&self, x: &Tensor, mode: Mode, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let mut y = self.stem.forward_relu6(x, mode)?;
        for block in &self.blocks {
            y = block.forward(&y, mode, rng)?;
        }
        y = self.head.forward_relu6(&y, mode)?;
        pooled_head(&y, self.dropout, &self.fc, mode, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch::build;
    use crate::model::Init;
    use crate::spec::ModelSpec;
    use candle_core::Device;

    fn spec(variant: usize, width: f64) -> ModelSpec {
        ModelSpec::EfficientnetLite(EfficientNetLiteSpec {
            variant,
            width,
            dropout: 0.2,
            drop_path: 0.2,
        })
    }

    #[test]
    fn parameter_counts_equal_the_reference() {
        // scripts/arch_fixtures/mobilenet.py's EfficientNetLite(variant, 1000); lite0 is also
        // the published efficientnet-lite0 weights' count.
        let want = [4_652_008, 5_416_680, 6_092_072, 8_197_096, 13_006_568];
        for (variant, want) in want.into_iter().enumerate() {
            let s = crate::model::summary(&spec(variant, 1.0), (3, 224, 224), 1000).unwrap();
            assert_eq!(s.parameters, want, "lite{variant}");
        }
        let s = crate::model::summary(&spec(0, 0.25), (3, 48, 48), 6).unwrap();
        assert_eq!(s.parameters, 366_502);
    }

    #[test]
    fn every_parameter_receives_a_gradient() {
        let dev = Device::Cpu;
        let mut rng = crate::train::rng::stream(1, "init", 0);
        let (model, _) =
            build(&spec(0, 0.25), (3, 32, 32), 3, Init::Seeded(&mut rng), &dev).unwrap();
        crate::model::arch::tests::assert_every_parameter_learns(model.as_ref(), (3, 32, 32), 3);
    }

    #[test]
    fn images_too_small_name_the_block() {
        let err = crate::model::check(&spec(0, 1.0), (3, 16, 16)).unwrap_err();
        assert!(
            err.contains("_blocks.11: the input is 112×1×1, too small for this stride-2 downsampling (efficientnet_lite0 needs images of at least 32×32)"),
            "{err}"
        );
        let err = crate::model::check(&spec(2, 1.0), (3, 8, 1)).unwrap_err();
        assert!(err.starts_with("_conv_stem: the input is 3×8×1"), "{err}");
        assert!(crate::model::check(&spec(4, 1.0), (3, 32, 32)).is_ok());
    }

    #[test]
    fn the_generic_kernels_match_the_fast_ones() {
        crate::model::arch::tests::assert_generic_matches_fast(&spec(0, 0.25), (3, 33, 31), 3);
    }
}
