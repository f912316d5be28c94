//! The network built from `[model]`: layers with our own parameters, a forward pass for
//! training and evaluation, and named state for checkpoints.


use candle_core::{Device, Result, Tensor, Var, D};
use rand_chacha::ChaCha8Rng;

use super::init;
use super::layers::norm::batch_norm;
use super::layers::regularize::dropout;
use super::ops::{self, ConvOptions, Window};
use super::shapes::{self, Shape};
use super::{Mode, Model, Param};
use crate::spec::{Architecture, LayerSpec};

enum Layer {
    Conv {
        w: Var,
        b: Option<Var>,
        stride: usize,
        padding: usize,
    },
    Dense {
        w: Var,
        b: Option<Var>,
    },
    BatchNorm {
        gamma: Var,
        beta: Var,
        mean: Var,
        var: Var,
        momentum: f64,
        eps: f64,
    },
    Relu,
    Gelu,
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
        let mut shape = input;
        for (i, (layer, out)) in layers.iter().zip(out_shapes).enumerate() {
            if matches!(layer, LayerSpec::Dense { .. }) && matches!(shape, Shape::Spatial { .. }) {
                net.layers.push(Layer::Flatten);
            }
            let built = net.build_layer(&format!("layers.{i}"), layer, shape, rng)?;
            net.layers.push(built);
            shape = out;
        }
        if matches!(shape, Shape::Spatial { .. }) {
            net.layers.push(Layer::Flatten);
        }
        let head = net.dense("head", shape.numel(), num_classes, true, rng)?;
        net.layers.push(head);
        Ok(net)
    }

    fn param(&mut self, name: String, var: Var, decay: bool) -> Var {
        self.params.push(Param {
            name,
            var: var.clone(),
            decay,
        });
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
        rng: &mut ChaCha8Rng,
    ) -> Result<Layer> {
        Ok(match *layer {
            LayerSpec::Conv {
                filters,
                kernel,
                stride,
                padding,
                bias,
            } => {
                let Shape::Spatial { c, .. } = input else {
                    candle_core::bail!("{name}: conv needs a spatial input")
                };
                let fan_in = c * kernel * kernel;
                let bound = init::default_bound(fan_in);
                let w = init::uniform(rng, &[filters, c, kernel, kernel], bound, &self.device)?;
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
                let gamma = init::constant(1.0, &[n], &self.device)?;
                let gamma = self.param(format!("{name}.weight"), gamma, false);
                let beta = init::constant(0.0, &[n], &self.device)?;
                let beta = self.param(format!("{name}.bias"), beta, false);
                let mean = init::constant(0.0, &[n], &self.device)?;
                let var = init::constant(1.0, &[n], &self.device)?;
                self.buffers
                    .push((format!("{name}.running_mean"), mean.clone()));
                self.buffers
                    .push((format!("{name}.running_var"), var.clone()));
                Layer::BatchNorm {
                    gamma,
                    beta,
                    mean,
                    var,
                    momentum,
                    eps,
                }
            }
            LayerSpec::Relu => Layer::Relu,
            LayerSpec::Gelu => Layer::Gelu,
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
        let mut x = match self.input {
            Shape::Flat(_) => x.flatten_from(1)?,
            Shape::Spatial { .. } => x.clone(),
        };
        let mut i = 0;
        while let Some(layer) = self.layers.get(i) {
            i += 1;
            x = match layer {
                Layer::Conv {
                    w,
                    b,
                    stride,
                    padding,
                } => {
                    // A following ReLU and max-pool are fused into the convolution.
                    let relu = matches!(self.layers.get(i), Some(Layer::Relu));
                    i += usize::from(relu);
                    let pool = match self.layers.get(i) {
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
                    ops::conv2d(&x, w.as_tensor(), b.as_ref().map(|b| b.as_tensor()), opts)?
                }
                Layer::Dense { w, b } => {
                    let relu = matches!(self.layers.get(i), Some(Layer::Relu));
                    i += usize::from(relu);
                    ops::linear(&x, w.as_tensor(), b.as_ref().map(|b| b.as_tensor()), relu)?
                }
                Layer::BatchNorm {
                    gamma,
                    beta,
                    mean,
                    var,
                    momentum,
                    eps,
                } => batch_norm(&x, gamma, beta, mean, var, *momentum, *eps, mode)?,
                Layer::Relu => x.relu()?,
                Layer::Gelu => x.gelu_erf()?,
                Layer::MaxPool { win } => ops::max_pool2d(&x, *win)?,
                Layer::AvgPool { win } => ops::avg_pool2d(&x, *win)?,
                Layer::GlobalAvgPool => x.mean(D::Minus1)?.mean(D::Minus1)?,
                Layer::Dropout { rate } if mode == Mode::Train && *rate > 0.0 => {
                    dropout(&x, *rate, rng)?
                }
                Layer::Dropout { .. } => x,
                // A dense layer flattens its input itself.
                Layer::Flatten if matches!(self.layers.get(i), Some(Layer::Dense { .. })) => x,
                Layer::Flatten => x.flatten_from(1)?,
            };
        }
        Ok(x)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use crate::spec::LayerSpec as L;

    fn every_layer() -> Vec<LayerSpec> {
        vec![
                L::Conv {
                    filters: 4,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                    bias: true,
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
}
