//! What a model costs before it is built (a layer list by arithmetic, a built-in
//! architecture by a dry build): parameters, activations and floating-point
//! operations per image, and the memory training needs at a batch size — so that a model that
//! cannot fit is refused at validation, with the numbers, instead of aborting a worker.

use super::shapes::{infer, Shape};
pub use crate::machine::{human_bytes, memory as machine_memory};
use crate::spec::LayerSpec;

/// The estimate for one model; all counts saturate instead of overflowing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Weights and biases, the head included.
    pub parameters: u64,
    /// Values every layer outputs for one image (what the backward pass keeps).
    pub activations_per_image: u64,
    /// Multiply-adds × 2 of one image's forward pass.
    pub forward_flops_per_image: u64,
    /// The largest convolution lowering buffer (im2col) for one image, in values.
    pub largest_lowering: u64,
}

impl Cost {
    /// Bytes training takes at `batch` images a step, by this estimate: 4 bytes a value for
    /// the weights, their gradients, two optimizer moments and the best epoch's copy
    /// (5 × parameters), the activations and their gradients plus the loader's batches ahead
    /// (3 × batch × activations), and two lowering buffers.
    pub fn training_bytes(&self, batch: usize) -> u64 {
        let values = self
            .parameters
            .saturating_mul(5)
            .saturating_add(
                self.activations_per_image
                    .saturating_mul(batch as u64)
                    .saturating_mul(3),
            )
            .saturating_add(self.largest_lowering.saturating_mul(2));
        values.saturating_mul(4)
    }
}

/// The cost of `layers` on `input`, with a head of `outputs` logits; `None` when the layers do
/// not fit the input (shape errors are reported by [`infer`]).
pub fn estimate(layers: &[LayerSpec], input: Shape, outputs: usize) -> Option<Cost> {
    let shapes = infer(layers, input).ok()?;
    let mut cost = Cost::default();
    let mut shape = input;
    let m = |a: u64, b: u64| a.saturating_mul(b);
    for (layer, &out) in layers.iter().zip(&shapes) {
        let n_in = numel(shape);
        let n_out = numel(out);
        match (layer, shape) {
            (
                LayerSpec::Conv {
                    filters,
                    kernel,
                    bias,
                    groups,
                    ..
                },
                Shape::Spatial { c, .. },
            ) => {
                let (filters, kernel, bias) = (*filters, *kernel, *bias);
                let per_filter = m(
                    m((c / (*groups).max(1)) as u64, kernel as u64),
                    kernel as u64,
                );
                cost.parameters = cost
                    .parameters
                    .saturating_add(m(per_filter, filters as u64))
                    .saturating_add(if bias { filters as u64 } else { 0 });
                cost.forward_flops_per_image = cost
                    .forward_flops_per_image
                    .saturating_add(m(m(n_out, per_filter), 2));
                let positions = n_out / (filters.max(1) as u64);
                cost.largest_lowering = cost.largest_lowering.max(m(per_filter, positions));
            }
            (LayerSpec::Dense { units, bias }, _) => {
                let (units, bias) = (*units, *bias);
                cost.parameters = cost
                    .parameters
                    .saturating_add(m(n_in, units as u64))
                    .saturating_add(if bias { units as u64 } else { 0 });
                cost.forward_flops_per_image = cost
                    .forward_flops_per_image
                    .saturating_add(m(m(n_in, units as u64), 2));
            }
            (LayerSpec::BatchNorm { .. }, Shape::Spatial { c, .. }) => {
                cost.parameters = cost.parameters.saturating_add(m(c as u64, 2));
            }
            (LayerSpec::BatchNorm { .. }, Shape::Flat(n))
            | (LayerSpec::LayerNorm { .. }, Shape::Flat(n)) => {
                cost.parameters = cost.parameters.saturating_add(m(n as u64, 2));
            }
            (LayerSpec::LayerNorm { .. }, Shape::Spatial { c, .. }) => {
                cost.parameters = cost.parameters.saturating_add(m(c as u64, 2));
            }
            (LayerSpec::Residual { layers }, _) => {
                // The block's own layers (the head estimate() adds is taken back out), and its
                // projection when the shape changes.
                let inner = estimate(layers, shape, 0)?;
                cost.parameters = cost.parameters.saturating_add(inner.parameters);
                cost.forward_flops_per_image = cost
                    .forward_flops_per_image
                    .saturating_add(inner.forward_flops_per_image);
                cost.activations_per_image = cost
                    .activations_per_image
                    .saturating_add(inner.activations_per_image.saturating_sub(n_in));
                cost.largest_lowering = cost.largest_lowering.max(inner.largest_lowering);
                match super::shapes::projection(shape, out).ok()? {
                    Some(super::shapes::Projection::Conv { filters, .. }) => {
                        let c = match shape {
                            Shape::Spatial { c, .. } => c as u64,
                            Shape::Flat(_) => 0,
                        };
                        cost.parameters = cost
                            .parameters
                            .saturating_add(m(c, filters as u64))
                            .saturating_add(filters as u64);
                        cost.forward_flops_per_image = cost
                            .forward_flops_per_image
                            .saturating_add(m(m(n_out, c), 2));
                    }
                    Some(super::shapes::Projection::Dense { units }) => {
                        cost.parameters = cost
                            .parameters
                            .saturating_add(m(n_in, units as u64))
                            .saturating_add(units as u64);
                        cost.forward_flops_per_image = cost
                            .forward_flops_per_image
                            .saturating_add(m(m(n_in, units as u64), 2));
                    }
                    None => {}
                }
            }
            _ => {}
        }
        cost.activations_per_image = cost.activations_per_image.saturating_add(n_out);
        shape = out;
    }
    let last = numel(shape);
    cost.parameters = cost
        .parameters
        .saturating_add(m(last, outputs as u64))
        .saturating_add(outputs as u64);
    cost.forward_flops_per_image = cost
        .forward_flops_per_image
        .saturating_add(m(m(last, outputs as u64), 2));
    cost.activations_per_image = cost
        .activations_per_image
        .saturating_add(numel(input))
        .saturating_add(outputs as u64);
    Some(cost)
}

/// The cost of a spec's model on its input `(c, h, w)`: the head has one logit for a binary
/// task, else one per class (`classes`, counted as 2 when the data will tell).
pub fn for_model(
    model: &crate::spec::ModelSpec,
    (c, h, w): (usize, usize, usize),
    task: crate::spec::Task,
    classes: Option<usize>,
) -> Option<Cost> {
    let outputs = if task == crate::spec::Task::Binary {
        1
    } else {
        classes.unwrap_or(2)
    };
    let Some((architecture, layers)) = model.layer_list() else {
        let s = super::summary(model, (c, h, w), outputs).ok()?;
        return Some(Cost {
            parameters: s.parameters as u64,
            activations_per_image: s.activations_per_image as u64,
            forward_flops_per_image: s.forward_flops_per_image as u64,
            largest_lowering: s.largest_lowering as u64,
        });
    };
    let input = match architecture {
        crate::spec::Architecture::Cnn => Shape::Spatial { c, h, w },
        crate::spec::Architecture::Mlp => Shape::Flat(c.saturating_mul(h).saturating_mul(w)),
    };
    estimate(layers, input, outputs)
}

fn numel(s: Shape) -> u64 {
    match s {
        Shape::Spatial { c, h, w } => (c as u64).saturating_mul(h as u64).saturating_mul(w as u64),
        Shape::Flat(n) => n as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenet_counts_match_the_built_network() {
        // the reference LeNet: conv 1→16 3×3 pad 1, pool, conv 16→32, pool, dense 1568→128, head 10
        let layers = vec![
            LayerSpec::Conv {
                filters: 16,
                kernel: 3,
                stride: 1,
                padding: 1,
                bias: true,
                groups: 1,
            },
            LayerSpec::Relu,
            LayerSpec::MaxPool { size: 2, stride: 2 },
            LayerSpec::Conv {
                filters: 32,
                kernel: 3,
                stride: 1,
                padding: 1,
                bias: true,
                groups: 1,
            },
            LayerSpec::Relu,
            LayerSpec::MaxPool { size: 2, stride: 2 },
            LayerSpec::Dense {
                units: 128,
                bias: true,
            },
            LayerSpec::Relu,
        ];
        let c = estimate(&layers, Shape::Spatial { c: 1, h: 28, w: 28 }, 10).unwrap();
        assert_eq!(c.parameters, 160 + 4_640 + 200_832 + 1_290);
        let mut rng = crate::train::rng::stream(0, "init", 0);
        let net = crate::model::Network::build(
            crate::spec::Architecture::Cnn,
            &layers,
            1,
            28,
            28,
            10,
            &mut rng,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        use crate::model::Model;
        assert_eq!(c.parameters, net.parameter_count() as u64);
        // forward MACs: 16·9·784 + 32·144·196 + 1568·128 + 128·10
        assert_eq!(
            c.forward_flops_per_image,
            2 * (112_896 + 903_168 + 200_704 + 1_280)
        );
        assert_eq!(c.largest_lowering, 144 * 196);
        assert!(c.training_bytes(64) < 100_000_000);
    }

    #[test]
    fn absurd_sizes_saturate_instead_of_overflowing() {
        let layers = vec![LayerSpec::Dense {
            units: usize::MAX / 2,
            bias: true,
        }];
        let c = estimate(&layers, Shape::Flat(1 << 40), 10).unwrap();
        assert_eq!(c.training_bytes(64), u64::MAX);
    }
}
