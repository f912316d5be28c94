//! Shape inference through a layer list: what each layer receives and produces, and why a
//! stack is impossible (a kernel larger than its input, a conv after a dense layer, ...).

use std::fmt;

use crate::spec::LayerSpec;

/// The shape of one sample between layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Spatial { c: usize, h: usize, w: usize },
    Flat(usize),
}

impl Shape {
    pub fn numel(&self) -> usize {
        match *self {
            Shape::Spatial { c, h, w } => c.saturating_mul(h).saturating_mul(w),
            Shape::Flat(n) => n,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Spatial { c, h, w } => write!(f, "{c}×{h}×{w}"),
            Shape::Flat(n) => write!(f, "{n}"),
        }
    }
}

/// Why a layer cannot take the shape it receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    pub layer: usize,
    pub message: String,
    pub help: String,
}

/// The output shape of each layer, in order (the head is not included).
pub fn infer(layers: &[LayerSpec], input: Shape) -> Result<Vec<Shape>, ShapeError> {
    let mut shapes = Vec::with_capacity(layers.len());
    let mut shape = input;
    for (i, layer) in layers.iter().enumerate() {
        shape = next(layer, shape).map_err(|(message, help)| ShapeError {
            layer: i,
            message,
            help,
        })?;
        shapes.push(shape);
    }
    Ok(shapes)
}

fn window_out(len: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = padding.checked_mul(2)?.checked_add(len)?;
    (padded >= kernel && stride > 0).then(|| (padded - kernel) / stride + 1)
}

fn next(layer: &LayerSpec, shape: Shape) -> Result<Shape, (String, String)> {
    let spatial = |what: &str| -> Result<(usize, usize, usize), (String, String)> {
        match shape {
            Shape::Spatial { c, h, w } => Ok((c, h, w)),
            Shape::Flat(n) => Err((
                format!("a {what} layer needs an image-shaped input (channels×height×width), but it receives a flat vector of {n} values"),
                "put conv and pooling layers before any dense or flatten layer".to_string(),
            )),
        }
    };
    let windowed = |what: &str,
                    c: usize,
                    h: usize,
                    w: usize,
                    kernel: usize,
                    stride: usize,
                    padding: usize| {
        match (window_out(h, kernel, stride, padding), window_out(w, kernel, stride, padding)) {
            (Some(oh), Some(ow)) => Ok((oh, ow)),
            _ => Err((
                format!(
                    "this {what} (size {kernel}, padding {padding}) receives a {c}×{h}×{w} feature map, smaller than its window, so nothing would be left"
                ),
                "use padding, a smaller kernel, a larger data.image_size, or fewer downsampling layers before it".to_string(),
            )),
        }
    };
    Ok(match *layer {
        LayerSpec::Conv {
            filters,
            kernel,
            stride,
            padding,
            groups,
            ..
        } => {
            let (c, h, w) = spatial("conv")?;
            if groups == 0 || c % groups != 0 || filters % groups != 0 {
                return Err((
                    format!("groups = {groups} must divide both the {c} input channels and the {filters} filters"),
                    "use groups = 1, or groups equal to the input channels for a depthwise convolution".to_string(),
                ));
            }
            let (oh, ow) = windowed("conv", c, h, w, kernel, stride, padding)?;
            Shape::Spatial {
                c: filters,
                h: oh,
                w: ow,
            }
        }
        LayerSpec::MaxPool { size, stride } | LayerSpec::AvgPool { size, stride } => {
            let what = if matches!(layer, LayerSpec::MaxPool { .. }) {
                "max_pool"
            } else {
                "avg_pool"
            };
            let (c, h, w) = spatial(what)?;
            let (oh, ow) = windowed(what, c, h, w, size, stride, 0)?;
            Shape::Spatial { c, h: oh, w: ow }
        }
        LayerSpec::GlobalAvgPool => {
            let (c, _, _) = spatial("global_avg_pool")?;
            Shape::Flat(c)
        }
        LayerSpec::Flatten => Shape::Flat(shape.numel()),
        LayerSpec::Dense { units, .. } => Shape::Flat(units),
        LayerSpec::BatchNorm { .. }
        | LayerSpec::LayerNorm { .. }
        | LayerSpec::Relu
        | LayerSpec::Relu6
        | LayerSpec::Silu
        | LayerSpec::HardSwish
        | LayerSpec::Gelu
        | LayerSpec::Dropout { .. } => shape,
        LayerSpec::Residual { ref layers } => {
            let out = infer(layers, shape)
                .map_err(|e| (format!("layers[{}]: {}", e.layer, e.message), e.help))?;
            let out = out.last().copied().unwrap_or(shape);
            projection(shape, out)?;
            out
        }
    })
}

/// How a residual block's input reaches its output's shape: `None` when they are equal, else
/// a 1×1 convolution with `stride` (images) or a dense layer (flat vectors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projection {
    Conv { filters: usize, stride: usize },
    Dense { units: usize },
}

pub fn projection(input: Shape, output: Shape) -> Result<Option<Projection>, (String, String)> {
    if input == output {
        return Ok(None);
    }
    match (input, output) {
        (Shape::Spatial { h, w, .. }, Shape::Spatial { c: oc, h: oh, w: ow }) => {
            let stride = h.div_ceil(oh.max(1));
            if stride >= 1 && (h - 1) / stride + 1 == oh && (w - 1) / stride + 1 == ow && w.div_ceil(ow.max(1)) == stride {
                Ok(Some(Projection::Conv { filters: oc, stride }))
            } else {
                Err((
                    format!("the block turns {input} into {output}, which no strided 1×1 projection of its input can match"),
                    "shrink height and width by the same whole factor inside a residual block".to_string(),
                ))
            }
        }
        (Shape::Flat(_), Shape::Flat(units)) => Ok(Some(Projection::Dense { units })),
        _ => Err((
            format!("the block turns {input} into {output}; its input cannot be added to that"),
            "keep a residual block's output image-shaped if its input is (no flatten, dense or global_avg_pool inside)".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(filters: usize, kernel: usize, padding: usize) -> LayerSpec {
        LayerSpec::Conv {
            filters,
            kernel,
            stride: 1,
            padding,
            bias: true,
            groups: 1,
        }
    }

    #[test]
    fn lenet_shapes() {
        let layers = vec![
            conv(16, 3, 1),
            LayerSpec::Relu,
            LayerSpec::MaxPool { size: 2, stride: 2 },
            conv(32, 3, 1),
            LayerSpec::MaxPool { size: 2, stride: 2 },
            LayerSpec::Dense {
                units: 128,
                bias: true,
            },
        ];
        let s = infer(&layers, Shape::Spatial { c: 1, h: 28, w: 28 }).unwrap();
        assert_eq!(
            s[2],
            Shape::Spatial {
                c: 16,
                h: 14,
                w: 14
            }
        );
        assert_eq!(s[4], Shape::Spatial { c: 32, h: 7, w: 7 });
        assert_eq!(s[5], Shape::Flat(128));
    }

    #[test]
    fn names_the_layer_that_leaves_nothing() {
        let pool = LayerSpec::MaxPool { size: 2, stride: 2 };
        let layers = vec![conv(8, 3, 0), pool.clone(), pool.clone(), pool];
        let e = infer(&layers, Shape::Spatial { c: 1, h: 8, w: 8 }).unwrap_err();
        assert_eq!(e.layer, 3);
        assert!(e.message.contains("8×1×1"), "{}", e.message);
    }

    #[test]
    fn conv_after_dense_is_rejected() {
        let layers = vec![
            LayerSpec::Dense {
                units: 10,
                bias: true,
            },
            conv(4, 3, 1),
        ];
        let e = infer(&layers, Shape::Spatial { c: 1, h: 8, w: 8 }).unwrap_err();
        assert_eq!(e.layer, 1);
    }

    #[test]
    fn residual_blocks_project_whole_strides_only() {
        let down = LayerSpec::Conv {
            filters: 8,
            kernel: 3,
            stride: 2,
            padding: 1,
            bias: false,
            groups: 1,
        };
        let block = LayerSpec::Residual {
            layers: vec![down, LayerSpec::Relu],
        };
        let s = infer(&[block], Shape::Spatial { c: 4, h: 9, w: 9 }).unwrap();
        assert_eq!(s[0], Shape::Spatial { c: 8, h: 5, w: 5 });
        assert_eq!(
            projection(Shape::Spatial { c: 4, h: 9, w: 9 }, s[0]).unwrap(),
            Some(Projection::Conv {
                filters: 8,
                stride: 2
            })
        );
        let shrink = LayerSpec::Residual {
            layers: vec![conv(4, 3, 0)],
        };
        let e = infer(&[shrink], Shape::Spatial { c: 4, h: 9, w: 9 }).unwrap_err();
        assert!(e.message.contains("4×9×9 into 4×7×7"), "{}", e.message);
        let flat = LayerSpec::Residual {
            layers: vec![LayerSpec::GlobalAvgPool],
        };
        assert!(infer(&[flat], Shape::Spatial { c: 4, h: 9, w: 9 }).is_err());
        let nested = LayerSpec::Residual {
            layers: vec![LayerSpec::Dense {
                units: 3,
                bias: true,
            }],
        };
        assert_eq!(infer(&[nested], Shape::Flat(5)).unwrap()[0], Shape::Flat(3));
    }
}
