//! The network built from `[model]`: layers with our own parameters, a forward pass for
//! training and evaluation, and named state for checkpoints.

use std::sync::Arc;

use candle_core::{Device, Result, Tensor, Var, D};
use rand_chacha::ChaCha8Rng;

use super::init;
use super::layers::conv::convolve;
use super::layers::norm::{Clamp, Then};
use super::layers::regularize::dropout;
use super::layers::{Activation, BatchNorm, LayerNorm};
use super::ops::{self, ConvOptions, Window};
use super::param::Training;
use super::shapes::{self, Shape};
use super::{Mode, Model, Param};
use crate::spec::{Architecture, LayerSpec};

enum Layer {
    Conv {
        w: Var,
        b: Option<Var>,
        stride: usize,
        padding: usize,
        groups: usize,
    },
    Dense {
        w: Var,
        b: Option<Var>,
    },
    BatchNorm(BatchNorm),
    LayerNorm(LayerNorm),
    Activation(Activation),
    Relu,
    MaxPool {
        win: Window,
    },
    AvgPool {
        win: Window,
    },
    GlobalAvgPool,
    Dropout {
        rate: f64,
    },
    Flatten,
    Residual {
        body: Vec<Layer>,
        projection: Option<Box<Layer>>,
    },
}

pub struct Network {
    layers: Vec<Layer>,
    params: Vec<Param>,
    /// Non-trainable state (batch-norm running statistics), saved with the weights.
    buffers: Vec<(String, Var)>,
    input: Shape,
    device: Device,
}

impl Network {
    /// Builds `layers` for images of `input` shape and a head of `num_classes` outputs.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        architecture: Architecture,
        layers: &[LayerSpec],
        channels: usize,
        height: usize,
        width: usize,
        num_classes: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Result<Self> {
        let input = match architecture {
            Architecture::Cnn => Shape::Spatial {
                c: channels,
                h: height,
                w: width,
            },
            Architecture::Mlp => Shape::Flat(channels * height * width),
        };
        let out_shapes = shapes::infer(layers, input)
            .map_err(|e| candle_core::Error::Msg(format!("layers[{}]: {}", e.layer, e.message)))?;
        let mut net = Network {
            layers: Vec::new(),
            params: Vec::new(),
            buffers: Vec::new(),
            input,
            device: device.clone(),
        };
        let _ = out_shapes;
        let (built, shape) = net.build_list("layers", layers, input, rng)?;
        net.layers = built;
        if matches!(shape, Shape::Spatial { .. }) {
            net.layers.push(Layer::Flatten);
        }
        let head = net.dense("head", shape.numel(), num_classes, true, rng)?;
        net.layers.push(head);
        Ok(net)
    }

    /// The layers of `specs` named `prefix.0`, `prefix.1`, …, with the flatten a dense layer
    /// needs after an image-shaped input; returns them with their output shape.
    fn build_list(
        &mut self,
        prefix: &str,
        specs: &[LayerSpec],
        input: Shape,
        rng: &mut ChaCha8Rng,
    ) -> Result<(Vec<Layer>, Shape)> {
        let out_shapes = shapes::infer(specs, input).map_err(|e| {
            candle_core::Error::Msg(format!("{prefix}[{}]: {}", e.layer, e.message))
        })?;
        let mut layers = Vec::with_capacity(specs.len());
        let mut shape = input;
        for (i, (layer, out)) in specs.iter().zip(out_shapes).enumerate() {
            if matches!(layer, LayerSpec::Dense { .. }) && matches!(shape, Shape::Spatial { .. }) {
                layers.push(Layer::Flatten);
            }
            let built = self.build_layer(&format!("{prefix}.{i}"), layer, shape, out, rng)?;
            layers.push(built);
            shape = out;
        }
        Ok((layers, shape))
    }

    fn param(&mut self, name: String, var: Var, decay: bool) -> Var {
        self.param_sharing(name, var, decay, &Arc::default())
    }

    /// A parameter whose training flags are `training`; its part is its top-level layer
    /// (`layers.3`, a residual's inner layers included) or `head`.
    fn param_sharing(
        &mut self,
        name: String,
        var: Var,
        decay: bool,
        training: &Arc<Training>,
    ) -> Var {
        let part = match name.split('.').take(2).collect::<Vec<_>>()[..] {
            ["layers", i] => format!("layers.{i}"),
            _ => "head".to_string(),
        };
        self.params
            .push(Param::new(name, var.clone(), decay).in_part(&part, training.clone()));
        var
    }

    fn dense(
        &mut self,
        name: &str,
        inputs: usize,
        units: usize,
        bias: bool,
        rng: &mut ChaCha8Rng,
    ) -> Result<Layer> {
        let bound = init::default_bound(inputs);
        let w = init::uniform(rng, &[units, inputs], bound, &self.device)?;
        let w = self.param(format!("{name}.weight"), w, true);
        let b = if bias {
            let b = init::uniform(rng, &[units], bound, &self.device)?;
            Some(self.param(format!("{name}.bias"), b, false))
        } else {
            None
        };
        Ok(Layer::Dense { w, b })
    }

    fn build_layer(
        &mut self,
        name: &str,
        layer: &LayerSpec,
        input: Shape,
        output: Shape,
        rng: &mut ChaCha8Rng,
    ) -> Result<Layer> {
        Ok(match *layer {
            LayerSpec::Conv {
                filters,
                kernel,
                stride,
                padding,
                bias,
                groups,
            } => {
                let Shape::Spatial { c, .. } = input else {
                    candle_core::bail!("{name}: conv needs a spatial input")
                };
                let fan_in = c / groups * kernel * kernel;
                let bound = init::default_bound(fan_in);
                let w = init::uniform(
                    rng,
                    &[filters, c / groups, kernel, kernel],
                    bound,
                    &self.device,
                )?;
                let w = self.param(format!("{name}.weight"), w, true);
                let b = if bias {
                    let b = init::uniform(rng, &[filters], bound, &self.device)?;
                    Some(self.param(format!("{name}.bias"), b, false))
                } else {
                    None
                };
                Layer::Conv {
                    w,
                    b,
                    stride,
                    padding,
                    groups,
                }
            }
            LayerSpec::Dense { units, bias } => {
                self.dense(name, input.numel(), units, bias, rng)?
            }
            LayerSpec::BatchNorm { momentum, eps } => {
                let n = match input {
                    Shape::Spatial { c, .. } => c,
                    Shape::Flat(n) => n,
                };
                let training = Arc::new(Training::default());
                let gamma = init::constant(1.0, &[n], &self.device)?;
                let gamma = self.param_sharing(format!("{name}.weight"), gamma, false, &training);
                let beta = init::constant(0.0, &[n], &self.device)?;
                let beta = self.param_sharing(format!("{name}.bias"), beta, false, &training);
                let mean = init::constant(0.0, &[n], &self.device)?;
                let var = init::constant(1.0, &[n], &self.device)?;
                self.buffers
                    .push((format!("{name}.running_mean"), mean.clone()));
                self.buffers
                    .push((format!("{name}.running_var"), var.clone()));
                Layer::BatchNorm(BatchNorm::from_parts(
                    (gamma, beta, training),
                    mean,
                    var,
                    momentum,
                    eps,
                ))
            }
            LayerSpec::LayerNorm { eps } => {
                let n = match input {
                    Shape::Spatial { c, .. } => c,
                    Shape::Flat(n) => n,
                };
                let gamma = self.param(
                    format!("{name}.weight"),
                    init::constant(1.0, &[n], &self.device)?,
                    false,
                );
                let beta = self.param(
                    format!("{name}.bias"),
                    init::constant(0.0, &[n], &self.device)?,
                    false,
                );
                Layer::LayerNorm(LayerNorm::from_parts(gamma, beta, eps))
            }
            LayerSpec::Relu => Layer::Relu,
            LayerSpec::Relu6 => Layer::Activation(Activation::Relu6),
            LayerSpec::Silu => Layer::Activation(Activation::Silu),
            LayerSpec::HardSwish => Layer::Activation(Activation::HardSwish),
            LayerSpec::Gelu => Layer::Activation(Activation::Gelu),
            LayerSpec::Residual { ref layers } => {
                let (body, _) = self.build_list(&format!("{name}.layers"), layers, input, rng)?;
                let projection = match shapes::projection(input, output)
                    .map_err(|(m, _)| candle_core::Error::Msg(format!("{name}: {m}")))?
                {
                    None => None,
                    Some(shapes::Projection::Conv { filters, stride }) => {
                        let spec = LayerSpec::Conv {
                            filters,
                            kernel: 1,
                            stride,
                            padding: 0,
                            bias: true,
                            groups: 1,
                        };
                        Some(Box::new(self.build_layer(
                            &format!("{name}.projection"),
                            &spec,
                            input,
                            output,
                            rng,
                        )?))
                    }
                    Some(shapes::Projection::Dense { units }) => Some(Box::new(self.dense(
                        &format!("{name}.projection"),
                        input.numel(),
                        units,
                        true,
                        rng,
                    )?)),
                };
                Layer::Residual { body, projection }
            }
            LayerSpec::MaxPool { size, stride } => Layer::MaxPool {
                win: Window { size, stride },
            },
            LayerSpec::AvgPool { size, stride } => Layer::AvgPool {
                win: Window { size, stride },
            },
            LayerSpec::GlobalAvgPool => Layer::GlobalAvgPool,
            LayerSpec::Dropout { rate } => Layer::Dropout { rate },
            LayerSpec::Flatten => Layer::Flatten,
        })
    }

    /// The input shape one sample must have (without the batch dimension).
    pub fn input_shape(&self) -> Shape {
        self.input
    }
}

impl Model for Network {
    /// Logits for a batch `x` of shape `(batch, channels, height, width)`. `rng` draws dropout masks.
    fn forward(&self, x: &Tensor, mode: Mode, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let x = match self.input {
            Shape::Flat(_) => x.flatten_from(1)?,
            Shape::Spatial { .. } => x.clone(),
        };
        run(&self.layers, x, mode, rng)
    }

    fn params(&self) -> &[Param] {
        &self.params
    }

    fn buffers(&self) -> &[(String, Var)] {
        &self.buffers
    }

    fn device(&self) -> &Device {
        &self.device
    }
}

/// `layers` applied in order to `x`, a convolution fused with the ReLU and max-pool after it,
/// a batch norm with its ReLU or ReLU6 and a dense layer with its ReLU (and the flatten before
/// it).
fn run(layers: &[Layer], mut x: Tensor, mode: Mode, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let mut i = 0;
    // The moments a convolution measured of `x` for the batch norm right after it.
    let mut measured = None;
    while let Some(layer) = layers.get(i) {
        i += 1;
        x = match layer {
            Layer::Conv {
                w,
                b,
                stride,
                padding,
                groups,
            } => {
                let relu = matches!(layers.get(i), Some(Layer::Relu));
                i += usize::from(relu);
                let pool = match layers.get(i) {
                    Some(Layer::MaxPool { win }) => Some(*win),
                    _ => None,
                };
                i += usize::from(pool.is_some());
                let opts = ConvOptions {
                    stride: *stride,
                    padding: *padding,
                    relu,
                    pool,
                };
                let (w, b) = (w.as_tensor(), b.as_ref().map(|b| b.as_tensor()));
                let to_bn = matches!(layers.get(i), Some(Layer::BatchNorm(_)));
                if to_bn && mode == Mode::Train && *groups == 1 {
                    let (y, moments) = ops::conv2d::conv2d_measured(&x, w, b, opts)?;
                    measured = moments;
                    y
                } else {
                    convolve(&x, w, b, opts, *groups)?
                }
            }
            Layer::Dense { w, b } => {
                let relu = matches!(layers.get(i), Some(Layer::Relu));
                i += usize::from(relu);
                ops::linear(&x, w.as_tensor(), b.as_ref().map(|b| b.as_tensor()), relu)?
            }
            Layer::BatchNorm(bn) => {
                let clamp = match layers.get(i) {
                    Some(Layer::Relu) => Some(Clamp::Relu),
                    Some(Layer::Activation(Activation::Relu6)) => Some(Clamp::Relu6),
                    _ => None,
                };
                i += usize::from(clamp.is_some());
                let then = Then {
                    residual: None,
                    clamp,
                };
                bn.forward_measured(&x, measured.take(), mode, then)?
            }
            Layer::LayerNorm(ln) if x.rank() == 4 => ln.forward_channels(&x)?,
            Layer::LayerNorm(ln) => ln.forward(&x)?,
            Layer::Relu => x.relu()?,
            Layer::Activation(a) => a.apply(&x)?,
            Layer::MaxPool { win } => ops::max_pool2d(&x, *win)?,
            Layer::AvgPool { win } => ops::avg_pool2d(&x, *win)?,
            Layer::GlobalAvgPool => x.mean(D::Minus1)?.mean(D::Minus1)?,
            Layer::Dropout { rate } if mode == Mode::Train && *rate > 0.0 => {
                dropout(&x, *rate, rng)?
            }
            Layer::Dropout { .. } => x,
            // A dense layer flattens its input itself.
            Layer::Flatten if matches!(layers.get(i), Some(Layer::Dense { .. })) => x,
            Layer::Flatten => x.flatten_from(1)?,
            Layer::Residual { body, projection } => {
                let y = run(body, x.clone(), mode, rng)?;
                let shortcut = match projection {
                    Some(p) => run(std::slice::from_ref(p), x, mode, rng)?,
                    None => x,
                };
                (y + shortcut)?
            }
        };
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::LayerSpec as L;
    use std::collections::HashMap;

    fn every_layer() -> Vec<LayerSpec> {
        vec![
            L::Conv {
                filters: 4,
                kernel: 3,
                stride: 1,
                padding: 1,
                bias: true,
                groups: 1,
            },
            L::BatchNorm {
                momentum: 0.1,
                eps: 1e-5,
            },
            L::Relu,
            L::MaxPool { size: 2, stride: 2 },
            L::Conv {
                filters: 6,
                kernel: 3,
                stride: 2,
                padding: 1,
                bias: false,
                groups: 1,
            },
            L::Gelu,
            L::AvgPool { size: 2, stride: 2 },
            L::Flatten,
            L::Dense {
                units: 8,
                bias: true,
            },
            L::BatchNorm {
                momentum: 0.1,
                eps: 1e-5,
            },
            L::Dropout { rate: 0.3 },
        ]
    }

    #[test]
    fn every_parameter_receives_a_gradient() {
        let dev = Device::Cpu;
        let net = Network::build(
            Architecture::Cnn,
            &every_layer(),
            2,
            8,
            8,
            3,
            &mut crate::train::rng::stream(1, "init", 0),
            &dev,
        )
        .unwrap();
        let x = Tensor::randn(0f32, 1.0, (5, 2, 8, 8), &dev).unwrap();
        let y = Tensor::new(&[0u32, 1, 2, 1, 0], &dev).unwrap();
        let logits = net
            .forward(
                &x,
                Mode::Train,
                &mut crate::train::rng::stream(1, "dropout", 0),
            )
            .unwrap();
        assert_eq!(logits.dims(), &[5, 3]);
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        let grads = loss.backward().unwrap();
        assert_eq!(net.params().len(), 11);
        for p in net.params() {
            let g = grads
                .get(p.var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {}", p.name));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{} has gradient norm {norm}",
                p.name
            );
        }
    }

    #[test]
    fn same_seed_same_weights_and_state_round_trips() {
        let dev = Device::Cpu;
        let build = |seed| {
            Network::build(
                Architecture::Cnn,
                &every_layer(),
                2,
                8,
                8,
                3,
                &mut crate::train::rng::stream(seed, "init", 0),
                &dev,
            )
            .unwrap()
        };
        let (a, b, c) = (build(1), build(1), build(2));
        let flat = |n: &Network| -> Vec<f32> {
            n.state()
                .unwrap()
                .iter()
                .flat_map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect()
        };
        assert_eq!(flat(&a), flat(&b));
        assert_ne!(flat(&a), flat(&c));
        let state: HashMap<String, Tensor> = a.state().unwrap().into_iter().collect();
        c.load_state(&state).unwrap();
        assert_eq!(flat(&a), flat(&c));
        let mut missing = state.clone();
        missing.remove("head.weight");
        assert!(c
            .load_state(&missing)
            .unwrap_err()
            .to_string()
            .contains("head.weight"));
    }

    #[test]
    fn batch_norm_updates_running_statistics_only_in_training() {
        let dev = Device::Cpu;
        let layers = vec![L::BatchNorm {
            momentum: 0.5,
            eps: 1e-5,
        }];
        let net = Network::build(
            Architecture::Mlp,
            &layers,
            1,
            1,
            2,
            2,
            &mut crate::train::rng::stream(1, "init", 0),
            &dev,
        )
        .unwrap();
        let x = Tensor::new(&[[[[1f32, 2.0]]], [[[3.0, 6.0]]]], &dev).unwrap();
        let mut r = crate::train::rng::stream(0, "x", 0);
        net.forward(&x, Mode::Eval, &mut r).unwrap();
        let running = |n: &Network| {
            n.state()
                .unwrap()
                .into_iter()
                .filter(|(k, _)| k.contains("running"))
                .map(|(k, t)| (k, t.to_vec1::<f32>().unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            running(&net),
            vec![
                ("layers.0.running_mean".to_string(), vec![0.0, 0.0]),
                ("layers.0.running_var".to_string(), vec![1.0, 1.0])
            ]
        );
        net.forward(&x, Mode::Train, &mut r).unwrap();
        // mean (2, 4); unbiased var (2, 8); momentum 0.5 from (0, 0) and (1, 1).
        assert_eq!(
            running(&net),
            vec![
                ("layers.0.running_mean".to_string(), vec![1.0, 2.0]),
                ("layers.0.running_var".to_string(), vec![1.5, 4.5])
            ]
        );
    }

    #[test]
    fn new_layers_and_residual_blocks_learn() {
        let conv = |filters, kernel, stride, padding, groups| L::Conv {
            filters,
            kernel,
            stride,
            padding,
            bias: false,
            groups,
        };
        let layers = vec![
            conv(4, 3, 1, 1, 1),
            L::LayerNorm { eps: 1e-5 },
            L::Relu6,
            L::Residual {
                layers: vec![conv(4, 3, 1, 1, 4), L::HardSwish, conv(8, 1, 2, 0, 2)],
            },
            L::Silu,
            L::Residual {
                layers: vec![
                    conv(8, 3, 1, 1, 1),
                    L::BatchNorm {
                        momentum: 0.1,
                        eps: 1e-5,
                    },
                    L::Relu,
                ],
            },
            L::GlobalAvgPool,
            L::Residual {
                layers: vec![
                    L::Dense {
                        units: 5,
                        bias: true,
                    },
                    L::LayerNorm { eps: 1e-5 },
                    L::Gelu,
                ],
            },
        ];
        let dev = Device::Cpu;
        let net = Network::build(
            Architecture::Cnn,
            &layers,
            2,
            8,
            8,
            3,
            &mut crate::train::rng::stream(1, "init", 0),
            &dev,
        )
        .unwrap();
        let names: Vec<&str> = net.params().iter().map(|p| p.name.as_str()).collect();
        assert!(names.contains(&"layers.3.layers.0.weight"), "{names:?}");
        assert!(names.contains(&"layers.3.projection.weight"), "{names:?}");
        assert!(names.contains(&"layers.7.projection.weight"), "{names:?}");
        assert!(
            !names.iter().any(|n| n.starts_with("layers.5.projection")),
            "{names:?}"
        );
        // depthwise: 4 filters of 1 channel; grouped 1×1: 8 filters of 2 channels
        let dims = |name: &str| {
            net.params()
                .iter()
                .find(|p| p.name == name)
                .unwrap()
                .var
                .dims()
                .to_vec()
        };
        assert_eq!(dims("layers.3.layers.0.weight"), vec![4, 1, 3, 3]);
        assert_eq!(dims("layers.3.layers.2.weight"), vec![8, 2, 1, 1]);
        crate::model::arch::tests::assert_every_parameter_learns(&net, (2, 8, 8), 3);
        let estimate =
            crate::model::cost::estimate(&layers, Shape::Spatial { c: 2, h: 8, w: 8 }, 3).unwrap();
        assert_eq!(estimate.parameters, net.parameter_count() as u64);
    }

    #[test]
    fn the_generic_kernels_match_the_fast_ones() {
        use crate::model::arch::tests::assert_generic_matches_fast;
        use crate::spec::ModelSpec;
        assert_generic_matches_fast(
            &ModelSpec::Cnn {
                layers: every_layer(),
            },
            (2, 8, 8),
            3,
        );
        // Windows and strides that leave rows unread, grouped and depthwise convolutions, layer
        // norm over channels, a fused conv + ReLU + max-pool.
        let conv = |filters, kernel, stride, padding, groups| L::Conv {
            filters,
            kernel,
            stride,
            padding,
            bias: true,
            groups,
        };
        let layers = vec![
            conv(4, 3, 2, 0, 1),
            L::Relu,
            L::MaxPool { size: 3, stride: 2 },
            conv(4, 3, 1, 1, 2),
            L::LayerNorm { eps: 1e-5 },
            conv(4, 3, 2, 1, 4),
            L::BatchNorm {
                momentum: 0.1,
                eps: 1e-5,
            },
            L::Silu,
            L::AvgPool { size: 2, stride: 1 },
            L::GlobalAvgPool,
            L::Dense {
                units: 5,
                bias: false,
            },
        ];
        assert_generic_matches_fast(&ModelSpec::Cnn { layers }, (3, 23, 21), 3);
        let mlp = vec![
            L::Dense {
                units: 7,
                bias: true,
            },
            L::Relu,
            L::Dense {
                units: 6,
                bias: true,
            },
        ];
        assert_generic_matches_fast(&ModelSpec::Mlp { layers: mlp }, (1, 4, 4), 3);
    }
}
