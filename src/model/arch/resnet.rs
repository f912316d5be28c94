//! ResNets with torchvision's structure and parameter names: CIFAR-style depths 20–110 (three
//! stages of basic blocks, 16-32-64 channels) and ImageNet-style 18/34 (basic blocks) and 50
//! (bottlenecks, stride on the 3×3 convolution), projection shortcuts where the shape changes.

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use super::super::builder::Builder;
use super::super::layers::conv::kaiming_fan_out;
use super::super::layers::norm::{Clamp, Then};
use super::super::layers::regularize::drop_path;
use super::super::layers::{conv_bn_forward, BatchNorm, Chw, Conv2d, ConvConfig, Linear, Padding};
use super::super::ops::{self, Window};
use super::super::Mode;
use super::{drop_path_rate, pooled_head, Forward};
use crate::spec::{ResnetSpec, ResnetStem};

const BN_MOMENTUM: f64 = 0.1;
const BN_EPS: f64 = 1e-5;

/// Blocks per stage and whether they are bottlenecks, by depth.
fn layout(depth: usize) -> Result<(Vec<usize>, bool, [usize; 4])> {
    Ok(match depth {
        18 => (vec![2, 2, 2, 2], false, [64, 128, 256, 512]),
        34 => (vec![3, 4, 6, 3], false, [64, 128, 256, 512]),
        50 => (vec![3, 4, 6, 3], true, [64, 128, 256, 512]),
        20 | 32 | 44 | 56 | 110 => (vec![(depth - 2) / 6; 3], false, [16, 32, 64, 0]),
        other => candle_core::bail!("resnet: no depth {other}"),
    })
}

fn conv_bn(
    b: &mut Builder,
    conv_name: &str,
    bn_name: &str,
    cfg: ConvConfig,
    input: Chw,
) -> Result<(Conv2d, BatchNorm, Chw)> {
    let cfg = cfg.fill(kaiming_fan_out(cfg.filters, cfg.kernel, cfg.groups));
    let (conv, out) = Conv2d::new(b, conv_name, cfg, input)?;
    let bn = BatchNorm::new(b, bn_name, out.0, BN_MOMENTUM, BN_EPS)?;
    b.activation(out.0 * out.1 * out.2);
    Ok((conv, bn, out))
}

/// conv-bn pairs of a residual branch; the last has no ReLU before the addition.
struct Block {
    branch: Vec<(Conv2d, BatchNorm)>,
    shortcut: Option<(Conv2d, BatchNorm)>,
    drop_path: f64,
}

impl Block {
    fn new(
        b: &mut Builder,
        name: &str,
        planes: usize,
        stride: usize,
        bottleneck: bool,
        input: Chw,
        drop_path: f64,
    ) -> Result<(Self, Chw)> {
        let mut branch = Vec::new();
        let mut shape = input;
        let convs: Vec<ConvConfig> = if bottleneck {
            vec![
                ConvConfig::new(planes, 1),
                ConvConfig::new(planes, 3).stride(stride),
                ConvConfig::new(planes * 4, 1),
            ]
        } else {
            vec![
                ConvConfig::new(planes, 3).stride(stride),
                ConvConfig::new(planes, 3),
            ]
        };
        for (i, cfg) in convs.into_iter().enumerate() {
            let (conv, bn, out) = conv_bn(
                b,
                &format!("{name}.conv{}", i + 1),
                &format!("{name}.bn{}", i + 1),
                cfg,
                shape,
            )?;
            branch.push((conv, bn));
            shape = out;
        }
        let shortcut = if stride != 1 || input.0 != shape.0 {
            let cfg = ConvConfig::new(shape.0, 1)
                .stride(stride)
                .padding(Padding::Symmetric(0));
            let (conv, bn, _) = conv_bn(
                b,
                &format!("{name}.downsample.0"),
                &format!("{name}.downsample.1"),
                cfg,
                input,
            )?;
            Some((conv, bn))
        } else {
            None
        };
        Ok((
            Self {
                branch,
                shortcut,
                drop_path,
            },
            shape,
        ))
    }

    fn forward(&self, x: &Tensor, mode: Mode, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let relu = Then {
            residual: None,
            clamp: Some(Clamp::Relu),
        };
        let Some((last, inner)) = self.branch.split_last() else {
            candle_core::bail!("resnet: a block without convolutions")
        };
        let mut y = x.clone();
        for (conv, bn) in inner {
            y = conv_bn_forward(conv, bn, &y, mode, relu)?;
        }
        let identity = match &self.shortcut {
            Some((conv, bn)) => conv_bn_forward(conv, bn, x, mode, Then::default())?,
            None => x.clone(),
        };
        let (conv, bn) = last;
        if mode == Mode::Train && self.drop_path > 0.0 {
            let y = conv_bn_forward(conv, bn, &y, mode, Then::default())?;
            let y = drop_path(&y, self.drop_path, rng)?;
            return (y + identity)?.relu();
        }
        // relu(bn(conv(y)) + identity) in one op.
        let then = Then {
            residual: Some(&identity),
            ..relu
        };
        conv_bn_forward(conv, bn, &y, mode, then)
    }
}

pub struct ResNet {
    stem: (Conv2d, BatchNorm),
    pool: bool,
    blocks: Vec<Block>,
    dropout: f64,
    fc: Linear,
}

impl ResNet {
    pub fn new(b: &mut Builder, spec: &ResnetSpec, input: Chw, classes: usize) -> Result<Self> {
        let (blocks_per_stage, bottleneck, base) = layout(spec.depth)?;
        let scaled = |c: usize| ((c as f64 * spec.width).round() as usize).max(1);
        let stem_cfg = match spec.stem {
            ResnetStem::Imagenet => ConvConfig::new(scaled(base[0]), 7).stride(2),
            ResnetStem::Small => ConvConfig::new(scaled(base[0]), 3),
        };
        b.part("stem");
        let (conv1, bn1, mut shape) = conv_bn(b, "conv1", "bn1", stem_cfg, input)?;
        let pool = spec.stem == ResnetStem::Imagenet;
        if pool {
            let (c, h, w) = shape;
            let win = Window { size: 3, stride: 2 };
            let (oh, ow) = win.output(h + 2, w + 2).map_err(|_| {
                super::super::layers::shape_error(
                    "maxpool",
                    format!("the stem's output {c}×{h}×{w} is too small for the 3×3 max-pool"),
                )
            })?;
            shape = (c, oh, ow);
            b.activation(c * oh * ow);
        }
        let total: usize = blocks_per_stage.iter().sum();
        let mut blocks = Vec::with_capacity(total);
        for (stage, &count) in blocks_per_stage.iter().enumerate() {
            let planes = scaled(base[stage]);
            b.part(format!("stages.{stage}"));
            for i in 0..count {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let rate = drop_path_rate(spec.drop_path, blocks.len(), total);
                let (block, out) = Block::new(
                    b,
                    &format!("layer{}.{i}", stage + 1),
                    planes,
                    stride,
                    bottleneck,
                    shape,
                    rate,
                )?;
                blocks.push(block);
                shape = out;
            }
        }
        if spec.zero_init_residual {
            for block in &blocks {
                if let Some((_, bn)) = block.branch.last() {
                    bn.zero_scale()?;
                }
            }
        }
        b.part("head");
        let fc = Linear::new(b, "fc", shape.0, classes, true, None)?;
        b.flops(2 * shape.0 * classes);
        Ok(Self {
            stem: (conv1, bn1),
            pool,
            blocks,
            dropout: spec.dropout,
            fc,
        })
    }
}

impl Forward for ResNet {
    fn forward(&self, x: &Tensor, mode: Mode, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let (conv, bn) = &self.stem;
        let relu = Then {
            residual: None,
            clamp: Some(Clamp::Relu),
        };
        let mut y = conv_bn_forward(conv, bn, x, mode, relu)?;
        if self.pool {
            // Zero padding equals -∞ padding here: the input is a ReLU's output.
            let padded = y.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
            y = ops::max_pool2d(&padded, Window { size: 3, stride: 2 })?;
        }
        for block in &self.blocks {
            y = block.forward(&y, mode, rng)?;
        }
        pooled_head(&y, self.dropout, &self.fc, mode, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch::build;
    use crate::model::Init;
    use candle_core::Device;

    fn spec(depth: usize) -> ResnetSpec {
        ResnetSpec {
            depth,
            width: 1.0,
            stem: if matches!(depth, 18 | 34 | 50) {
                ResnetStem::Imagenet
            } else {
                ResnetStem::Small
            },
            zero_init_residual: false,
            dropout: 0.0,
            drop_path: 0.0,
        }
    }

    #[test]
    fn parameter_counts_equal_torchvision() {
        // torchvision.models.resnet18/34/50(num_classes=1000)
        for (depth, want) in [(18, 11_689_512), (34, 21_797_672), (50, 25_557_032)] {
            let s = crate::model::summary(
                &crate::spec::ModelSpec::Resnet(spec(depth)),
                (3, 224, 224),
                1000,
            )
            .unwrap();
            assert_eq!(s.parameters, want, "resnet{depth}");
        }
        // The CIFAR resnet20 with projection shortcuts: 0.27 M + two 1×1 projections.
        let s = crate::model::summary(&crate::spec::ModelSpec::Resnet(spec(20)), (3, 32, 32), 10)
            .unwrap();
        assert_eq!(s.parameters, 272_474);
    }

    #[test]
    fn every_parameter_receives_a_gradient() {
        let mut s = spec(20);
        s.drop_path = 0.1;
        s.dropout = 0.1;
        let dev = Device::Cpu;
        let mut rng = crate::train::rng::stream(1, "init", 0);
        let (model, _) = build(
            &crate::spec::ModelSpec::Resnet(s),
            (3, 16, 16),
            3,
            Init::Seeded(&mut rng),
            &dev,
        )
        .unwrap();
        crate::model::arch::tests::assert_every_parameter_learns(model.as_ref(), (3, 16, 16), 3);
    }

    #[test]
    fn the_generic_kernels_match_the_fast_ones() {
        use crate::model::arch::tests::assert_generic_matches_fast;
        // The CIFAR stem, and the ImageNet stem with its 7×7/2 convolution and 3×3/2 max-pool
        // (strides that leave rows unread), both with dropout and drop-path.
        for (depth, input) in [(20, (3, 16, 16)), (18, (3, 35, 33))] {
            let mut s = spec(depth);
            s.drop_path = 0.1;
            s.dropout = 0.1;
            assert_generic_matches_fast(&crate::spec::ModelSpec::Resnet(s), input, 3);
        }
    }
}
