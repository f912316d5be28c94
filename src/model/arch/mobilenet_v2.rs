//! MobileNetV2 with torchvision's structure, parameter names and initialisation: a 3×3
//! stride-2 stem, 17 inverted residual blocks (`features.1` … `features.17`), a 1×1 convolution
//! to 1280·max(1, width) channels (`features.18`), global average pooling, dropout and the
//! linear head (`classifier.1`). Channels are `width` times the paper's, rounded to multiples
//! of 8 as torchvision's `_make_divisible`; padding is symmetric (k / 2), batch norm eps 1e-5
//! and momentum 0.1.

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
use crate::spec::MobileNetV2Spec;

/// Expansion, output channels, repeats, stride of the first block, per stage.
const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Five stride-2 layers: each needs an input of at least 2×2.
const MIN_SIDE: usize = 32;

const STYLE: Style = Style {
    padding: |k| Padding::Symmetric(k / 2),
    bn_momentum: 0.1,
    bn_eps: 1e-5,
    // torchvision's kaiming_normal_(mode="fan_out") counts a depthwise kernel's fan-out as
    // channels × k², not k² (PyTorch ignores groups there).
    fill: |filters, kernel, _groups| kaiming_fan_out(filters, kernel, 1),
};

/// torchvision's `_make_divisible(v, 8)`: the nearest multiple of 8 (at least 8), never more
/// than 10 % below `v`.
pub fn make_divisible(v: f64) -> usize {
    let rounded = (((v + 4.0) as usize) / 8 * 8).max(8);
    if (rounded as f64) < 0.9 * v {
        rounded + 8
    } else {
        rounded
    }
}

pub struct MobileNetV2 {
    stem: ConvBn,
    blocks: Vec<InvertedResidual>,
    last: ConvBn,
    dropout: f64,
    classifier: Linear,
}

impl MobileNetV2 {
    pub fn new(
        b: &mut Builder,
        spec: &MobileNetV2Spec,
        input: Chw,
        classes: usize,
    ) -> Result<Self> {
        if input.1 < 2 || input.2 < 2 {
            return Err(too_small("features.0", input, 2, "mobilenet_v2", MIN_SIDE));
        }
        let stem_cfg = ConvConfig::new(make_divisible(32.0 * spec.width), 3).stride(2);
        b.part("stem");
        let (stem, mut shape) = STYLE.conv_bn(
            b,
            &ConvBnNames::new("features.0.0", "features.0.1"),
            stem_cfg,
            input,
        )?;
        let mut blocks = Vec::new();
        for (stage, &(t, c, n, s)) in STAGES.iter().enumerate() {
            b.part(format!("stages.{stage}"));
            let out = make_divisible(c as f64 * spec.width);
            for i in 0..n {
                let index = blocks.len() + 1;
                let prefix = format!("features.{index}.conv");
                let expand = t != 1;
                // The layers are numbered in order inside `conv`: (expand,) depthwise, project, bn.
                let first = usize::from(expand);
                let names = BlockNames {
                    block: format!("features.{index}"),
                    expand: ConvBnNames::new(format!("{prefix}.0.0"), format!("{prefix}.0.1")),
                    depthwise: ConvBnNames::new(
                        format!("{prefix}.{first}.0"),
                        format!("{prefix}.{first}.1"),
                    ),
                    project: ConvBnNames::new(
                        format!("{prefix}.{}", first + 1),
                        format!("{prefix}.{}", first + 2),
                    ),
                };
                let cfg = BlockConfig {
                    hidden: shape.0 * t,
                    expand,
                    out,
                    kernel: 3,
                    stride: if i == 0 { s } else { 1 },
                    drop_path: 0.0,
                };
                let (block, next) = InvertedResidual::new(
                    b,
                    &names,
                    &STYLE,
                    cfg,
                    shape,
                    ("mobilenet_v2", MIN_SIDE),
                )?;
                blocks.push(block);
                shape = next;
            }
        }
        let last_channels = make_divisible(1280.0 * spec.width.max(1.0));
        let index = blocks.len() + 1;
        b.part("top");
        let (last, shape) = STYLE.conv_bn(
            b,
            &ConvBnNames::new(format!("features.{index}.0"), format!("features.{index}.1")),
            ConvConfig::new(last_channels, 1),
            shape,
        )?;
        b.part("head");
        let classifier = Linear::new(
            b,
            "classifier.1",
            shape.0,
            classes,
            true,
            Some(Fill::Normal(0.01)),
        )?;
        b.flops(2 * shape.0 * classes);
        Ok(Self {
            stem,
            blocks,
            last,
            dropout: spec.dropout,
            classifier,
        })
    }
}

impl Forward for MobileNetV2 {
    fn forward(&self, x: &Tensor, mode: Mode, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let mut y = self.stem.forward_relu6(x, mode)?;
        for block in &self.blocks {
            y = block.forward(&y, mode, rng)?;
        }
        y = self.last.forward_relu6(&y, mode)?;
        pooled_head(&y, self.dropout, &self.classifier, mode, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch::build;
    use crate::model::Init;
    use crate::spec::ModelSpec;
    use candle_core::Device;

    fn spec(width: f64, dropout: f64) -> ModelSpec {
        ModelSpec::MobilenetV2(MobileNetV2Spec { width, dropout })
    }

    #[test]
    fn parameter_counts_equal_torchvision() {
        // torchvision.models.mobilenet_v2(num_classes=1000), and width_mult=0.25 with 10 classes.
        let s = crate::model::summary(&spec(1.0, 0.2), (3, 224, 224), 1000).unwrap();
        assert_eq!(s.parameters, 3_504_872);
        let s = crate::model::summary(&spec(0.25, 0.2), (3, 64, 64), 10).unwrap();
        assert_eq!(s.parameters, 250_922);
        assert_eq!(
            (
                make_divisible(8.0),
                make_divisible(4.0),
                make_divisible(20.0),
                make_divisible(0.75 * 24.0)
            ),
            (8, 8, 24, 24)
        );
    }

    #[test]
    fn every_parameter_receives_a_gradient() {
        let dev = Device::Cpu;
        let mut rng = crate::train::rng::stream(1, "init", 0);
        let (model, _) = build(
            &spec(0.25, 0.2),
            (3, 32, 32),
            3,
            Init::Seeded(&mut rng),
            &dev,
        )
        .unwrap();
        crate::model::arch::tests::assert_every_parameter_learns(model.as_ref(), (3, 32, 32), 3);
    }

    #[test]
    fn images_too_small_name_the_block() {
        let err = crate::model::check(&spec(1.0, 0.2), (3, 16, 16)).unwrap_err();
        assert!(
            err.contains("features.14: the input is 96×1×1, too small for this stride-2 downsampling (mobilenet_v2 needs images of at least 32×32)"),
            "{err}"
        );
        let err = crate::model::check(&spec(1.0, 0.2), (3, 1, 8)).unwrap_err();
        assert!(err.starts_with("features.0: the input is 3×1×8"), "{err}");
        assert!(crate::model::check(&spec(1.0, 0.2), (3, 32, 32)).is_ok());
    }

    #[test]
    fn the_generic_kernels_match_the_fast_ones() {
        crate::model::arch::tests::assert_generic_matches_fast(&spec(0.25, 0.2), (3, 33, 31), 3);
    }
}
