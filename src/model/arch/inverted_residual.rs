//! The inverted residual block (MBConv without squeeze-excitation) that MobileNetV2 and
//! EfficientNet-Lite are made of: an optional 1×1 expansion (conv, batch norm, ReLU6), a
//! depthwise k×k convolution carrying the stride (conv, batch norm, ReLU6), a linear 1×1
//! projection (conv, batch norm) and, when the stride is 1 and the channels are unchanged, the
//! input added back (the branch drop-pathed in training). Each architecture names the layers
//! its own way and chooses the padding, the batch-norm constants and the weight fill.

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use super::super::builder::{Builder, Fill};
use super::super::layers::norm::{Clamp, Then};
use super::super::layers::regularize::drop_path;
use super::super::layers::{
    conv_bn_forward, shape_error, BatchNorm, Chw, Conv2d, ConvConfig, Padding,
};
use super::super::Mode;

/// A convolution and the batch norm after it, by their parameter-name prefixes.
#[derive(Clone, Debug)]
pub struct ConvBnNames {
    pub conv: String,
    pub bn: String,
}

impl ConvBnNames {
    pub fn new(conv: impl Into<String>, bn: impl Into<String>) -> Self {
        Self {
            conv: conv.into(),
            bn: bn.into(),
        }
    }
}

/// The names of one block's layers; `expand` is used only when the block expands.
#[derive(Clone, Debug)]
pub struct BlockNames {
    /// The block itself, for shape errors (e.g. `features.14`, `_blocks.12`).
    pub block: String,
    pub expand: ConvBnNames,
    pub depthwise: ConvBnNames,
    pub project: ConvBnNames,
}

/// What an architecture fixes for all its convolutions and batch norms.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// Padding of the k×k convolutions (1×1 convolutions have none).
    pub padding: fn(kernel: usize) -> Padding,
    pub bn_momentum: f64,
    pub bn_eps: f64,
    /// The starting weights of a convolution of `filters` outputs, `kernel`, `groups`.
    pub fill: fn(filters: usize, kernel: usize, groups: usize) -> Fill,
}

impl Style {
    /// A convolution followed by batch norm, recording the batch norm's output activations.
    pub fn conv_bn(
        &self,
        b: &mut Builder,
        names: &ConvBnNames,
        cfg: ConvConfig,
        input: Chw,
    ) -> Result<(ConvBn, Chw)> {
        let padding = if cfg.kernel == 1 {
            Padding::Symmetric(0)
        } else {
            (self.padding)(cfg.kernel)
        };
        let cfg = cfg
            .padding(padding)
            .fill((self.fill)(cfg.filters, cfg.kernel, cfg.groups));
        let (conv, out) = Conv2d::new(b, &names.conv, cfg, input)?;
        let bn = BatchNorm::new(b, &names.bn, out.0, self.bn_momentum, self.bn_eps)?;
        b.activation(out.0 * out.1 * out.2);
        Ok((ConvBn { conv, bn }, out))
    }
}

/// A convolution and its batch norm.
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        conv_bn_forward(&self.conv, &self.bn, x, mode, Then::default())
    }

    /// Followed by ReLU6 (fused into the batch norm).
    pub fn forward_relu6(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let then = Then {
            residual: None,
            clamp: Some(Clamp::Relu6),
        };
        conv_bn_forward(&self.conv, &self.bn, x, mode, then)
    }

    /// With `residual` added after the batch norm (fused into it).
    pub fn forward_plus(&self, x: &Tensor, residual: &Tensor, mode: Mode) -> Result<Tensor> {
        let then = Then {
            residual: Some(residual),
            clamp: None,
        };
        conv_bn_forward(&self.conv, &self.bn, x, mode, then)
    }
}

/// The shape of one block.
#[derive(Clone, Copy, Debug)]
pub struct BlockConfig {
    /// Channels after the expansion; equal to the input's channels for a block that does not
    /// expand (expansion ratio 1).
    pub hidden: usize,
    pub expand: bool,
    pub out: usize,
    pub kernel: usize,
    pub stride: usize,
    /// Drop-path rate of the residual branch in training (0 for none).
    pub drop_path: f64,
}

pub struct InvertedResidual {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
    drop_path: f64,
}

/// The error for a stride-`stride` layer `name` whose input `input` is smaller than its stride:
/// the images are too small for the architecture's downsamplings (`min_side` at least).
pub fn too_small(
    name: &str,
    input: Chw,
    stride: usize,
    arch: &str,
    min_side: usize,
) -> candle_core::Error {
    let (c, h, w) = input;
    shape_error(
        name,
        format!(
            "the input is {c}×{h}×{w}, too small for this stride-{stride} downsampling ({arch} needs images of at least {min_side}×{min_side})"
        ),
    )
}

impl InvertedResidual {
    /// The block for `input`, with its output shape; `arch` and `min_side` word the error when
    /// the input is smaller than the stride.
    pub fn new(
        b: &mut Builder,
        names: &BlockNames,
        style: &Style,
        cfg: BlockConfig,
        input: Chw,
        (arch, min_side): (&str, usize),
    ) -> Result<(Self, Chw)> {
        if cfg.stride > 1 && (input.1 < cfg.stride || input.2 < cfg.stride) {
            return Err(too_small(&names.block, input, cfg.stride, arch, min_side));
        }
        if !cfg.expand && cfg.hidden != input.0 {
            return Err(shape_error(
                &names.block,
                format!(
                    "a block without expansion keeps its {} channels, not {}",
                    input.0, cfg.hidden
                ),
            ));
        }
        let mut shape = input;
        let expand = if cfg.expand {
            let (layer, out) =
                style.conv_bn(b, &names.expand, ConvConfig::new(cfg.hidden, 1), shape)?;
            shape = out;
            Some(layer)
        } else {
            None
        };
        let dw = ConvConfig::new(cfg.hidden, cfg.kernel)
            .stride(cfg.stride)
            .groups(cfg.hidden);
        let (depthwise, out) = style.conv_bn(b, &names.depthwise, dw, shape)?;
        let (project, out) = style.conv_bn(b, &names.project, ConvConfig::new(cfg.out, 1), out)?;
        Ok((
            Self {
                expand,
                depthwise,
                project,
                residual: cfg.stride == 1 && input.0 == cfg.out,
                drop_path: cfg.drop_path,
            },
            out,
        ))
    }

    pub fn forward(&self, x: &Tensor, mode: Mode, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let mut y = match &self.expand {
            Some(layer) => layer.forward_relu6(x, mode)?,
            None => x.clone(),
        };
        y = self.depthwise.forward_relu6(&y, mode)?;
        if !self.residual {
            return self.project.forward(&y, mode);
        }
        if mode == Mode::Train && self.drop_path > 0.0 {
            return drop_path(&self.project.forward(&y, mode)?, self.drop_path, rng)? + x;
        }
        self.project.forward_plus(&y, x, mode)
    }
}
