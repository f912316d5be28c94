//! 2-D convolution with symmetric or TensorFlow "SAME" padding and channel groups (depthwise
//! included): the CPU fast op for ordinary convolutions, candle ops for the rest.

use candle_core::{Result, Tensor, Var};

use super::super::builder::{Builder, Fill};
use super::super::ops::batch_norm::Moments;
use super::super::ops::{self, ConvOptions};
use super::{shape_error, Chw};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// The same number of zeros on every side.
    Symmetric(usize),
    /// TensorFlow's "SAME": the output is `ceil(input / stride)`, any odd zero goes to the
    /// bottom and right (what EfficientNet-Lite's weights were trained with).
    Same,
}

#[derive(Clone, Copy, Debug)]
pub struct ConvConfig {
    pub filters: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: Padding,
    pub groups: usize,
    pub bias: bool,
    /// The weights' starting distribution; `None` is PyTorch's default (uniform ±1/√fan_in).
    pub fill: Option<Fill>,
}

impl ConvConfig {
    /// A `kernel`×`kernel` convolution to `filters` channels, stride 1, padding `kernel / 2`,
    /// no bias (it is followed by batch norm in every architecture here).
    pub fn new(filters: usize, kernel: usize) -> Self {
        Self {
            filters,
            kernel,
            stride: 1,
            padding: Padding::Symmetric(kernel / 2),
            groups: 1,
            bias: false,
            fill: None,
        }
    }

    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    pub fn fill(mut self, fill: Fill) -> Self {
        self.fill = Some(fill);
        self
    }
}

pub struct Conv2d {
    w: Var,
    b: Option<Var>,
    cfg: ConvConfig,
    /// Zeros added (top, bottom, left, right).
    pads: (usize, usize, usize, usize),
}

/// Kaiming-normal with fan-out, as torchvision initialises the convolutions of its ResNets
/// and MobileNets.
pub fn kaiming_fan_out(filters: usize, kernel: usize, groups: usize) -> Fill {
    Fill::Normal((2.0 / (filters * kernel * kernel / groups.max(1)).max(1) as f64).sqrt())
}

fn same_pads(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out.saturating_sub(1)) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

impl Conv2d {
    /// Creates the layer `name` for inputs of shape `input`; returns it with its output shape.
    pub fn new(b: &mut Builder, name: &str, cfg: ConvConfig, input: Chw) -> Result<(Self, Chw)> {
        let (c, h, w) = input;
        if cfg.groups == 0
            || !c.is_multiple_of(cfg.groups)
            || !cfg.filters.is_multiple_of(cfg.groups)
        {
            return Err(shape_error(
                name,
                format!(
                    "groups = {} must divide both the {c} input channels and the {} filters",
                    cfg.groups, cfg.filters
                ),
            ));
        }
        let (k, s) = (cfg.kernel, cfg.stride);
        let pads = match cfg.padding {
            Padding::Symmetric(p) => (p, p, p, p),
            Padding::Same => {
                let (t, bo) = same_pads(h, k, s);
                let (l, r) = same_pads(w, k, s);
                (t, bo, l, r)
            }
        };
        let (ph, pw) = (h + pads.0 + pads.1, w + pads.2 + pads.3);
        if ph < k || pw < k {
            return Err(shape_error(
                name,
                format!(
                    "the input is {c}×{h}×{w}, smaller than the {k}×{k} kernel even with its padding (use larger images or a model with fewer downsampling stages)"
                ),
            ));
        }
        let out = (cfg.filters, (ph - k) / s + 1, (pw - k) / s + 1);
        let fan_in = c / cfg.groups * k * k;
        let fill = cfg
            .fill
            .unwrap_or(Fill::Uniform(super::super::init::default_bound(fan_in)));
        let weight = b.param(
            &format!("{name}.weight"),
            &[cfg.filters, c / cfg.groups, k, k],
            fill,
            true,
        )?;
        let bias = if cfg.bias {
            let bound = super::super::init::default_bound(fan_in);
            Some(b.param(
                &format!("{name}.bias"),
                &[cfg.filters],
                Fill::Uniform(bound),
                false,
            )?)
        } else {
            None
        };
        let out_values = out.0 * out.1 * out.2;
        b.activation(out_values);
        b.flops(out_values.saturating_mul(2 * fan_in));
        if cfg.groups == 1 && !(k == 1 && s == 1) {
            b.lowering(fan_in.saturating_mul(out.1 * out.2));
        }
        Ok((
            Self {
                w: weight,
                b: bias,
                cfg,
                pads,
            },
            out,
        ))
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_fused(x, false)
    }

    /// The convolution followed by a ReLU (fused on the CPU fast path).
    pub fn forward_fused(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let (x, opts) = self.padded(x, relu)?;
        let b = self.b.as_ref().map(|b| b.as_tensor());
        convolve(&x, self.w.as_tensor(), b, opts, self.cfg.groups)
    }

    /// The convolution and, where the CPU fast op computes it (one group), its output's
    /// per-channel moments, for a batch norm that follows.
    pub fn forward_measured(&self, x: &Tensor) -> Result<(Tensor, Option<Moments>)> {
        if self.cfg.groups != 1 {
            return Ok((self.forward(x)?, None));
        }
        let (x, opts) = self.padded(x, false)?;
        let b = self.b.as_ref().map(|b| b.as_tensor());
        ops::conv2d::conv2d_measured(&x, self.w.as_tensor(), b, opts)
    }

    /// `x` with the padding the op cannot add itself (uneven sides) and the op's options.
    fn padded(&self, x: &Tensor, relu: bool) -> Result<(Tensor, ConvOptions)> {
        let (t, bo, l, r) = self.pads;
        let (x, padding) = if t == bo && l == r && t == l {
            (x.clone(), t)
        } else {
            (x.pad_with_zeros(2, t, bo)?.pad_with_zeros(3, l, r)?, 0)
        };
        let opts = ConvOptions {
            stride: self.cfg.stride,
            padding,
            relu,
            pool: None,
        };
        Ok((x, opts))
    }
}

/// `pool(relu(conv(x, w) + b))` with `groups` channel groups (`w`: `filters × c/groups × k × k`):
/// the fused CPU op for one group, [`depthwise`] when every channel is its own group, one
/// convolution per group otherwise.
pub fn convolve(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    opts: ConvOptions,
    groups: usize,
) -> Result<Tensor> {
    if groups == 1 {
        return ops::conv2d(x, w, b, opts);
    }
    let w = &ops::cast_like(w, x)?;
    let c = x.dim(1)?;
    let y = if groups == c && w.dim(0)? == c && ops::depthwise::applies(x, w) {
        ops::depthwise::depthwise(x, w, opts.padding, opts.stride)?
    } else if groups == c && w.dim(0)? == c {
        depthwise(x, w, opts.padding, opts.stride)?
    } else {
        let xs = x.chunk(groups, 1)?;
        let ws = w.chunk(groups, 0)?;
        let plain = ConvOptions {
            relu: false,
            pool: None,
            ..opts
        };
        let ys = xs
            .iter()
            .zip(&ws)
            .map(|(x, w)| ops::conv2d(x, w, None, plain))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&ys, 1)?
    };
    let y = match b {
        Some(b) => y.broadcast_add(&ops::cast_like(b, &y)?.reshape((1, (), 1, 1))?)?,
        None => y,
    };
    let y = if opts.relu { y.relu()? } else { y };
    match opts.pool {
        Some(win) => ops::max_pool2d(&y, win),
        None => Ok(y),
    }
}

/// Depthwise convolution (`w`: `c × 1 × k × k`) as a sum of `k²` shifted, strided views of the
/// input scaled per channel: only candle ops whose gradients are exact, on any device (the
/// twin of the CPU op `ops::depthwise`).
pub fn depthwise(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let k = w.dim(2)?;
    let x = if padding > 0 {
        x.pad_with_zeros(2, padding, padding)?
            .pad_with_zeros(3, padding, padding)?
    } else {
        x.clone()
    };
    let (h, wd) = (h + 2 * padding, wd + 2 * padding);
    let (oh, ow) = ((h - k) / stride + 1, (wd - k) / stride + 1);
    // The input split into stride² phases: phase (a, b) holds rows a, a+s, … and columns b, b+s, …
    let rows = (k - 1) / stride + oh;
    let cols = (k - 1) / stride + ow;
    let mut phases = Vec::with_capacity(stride * stride);
    for a in 0..stride {
        for bb in 0..stride {
            if stride == 1 {
                phases.push(x.clone());
                continue;
            }
            // Crop or pad so the plane is exactly (rows·s) × (cols·s) from the phase's offset.
            let plane = fit(&fit(&x, 2, a, rows * stride, h)?, 3, bb, cols * stride, wd)?;
            let p = plane
                .reshape((n, c, rows, stride, cols, stride))?
                .narrow(3, 0, 1)?
                .narrow(5, 0, 1)?
                .reshape((n, c, rows, cols))?;
            phases.push(p);
        }
    }
    let mut acc: Option<Tensor> = None;
    for i in 0..k {
        for j in 0..k {
            let phase = &phases[(i % stride) * stride + j % stride];
            let view = phase.narrow(2, i / stride, oh)?.narrow(3, j / stride, ow)?;
            let tap = w.narrow(2, i, 1)?.narrow(3, j, 1)?.reshape((1, c, 1, 1))?;
            let term = view.broadcast_mul(&tap)?;
            acc = Some(match acc {
                None => term,
                Some(a) => (a + term)?,
            });
        }
    }
    acc.ok_or_else(|| candle_core::Error::Msg("depthwise: empty kernel".into()))
}

/// `len` entries of dimension `dim` starting at `start`, zero-padded past the end (`size`).
fn fit(x: &Tensor, dim: usize, start: usize, len: usize, size: usize) -> Result<Tensor> {
    let avail = size.saturating_sub(start).min(len);
    let part = x.narrow(dim, start, avail)?;
    if avail < len {
        part.pad_with_zeros(dim, 0, len - avail)
    } else {
        Ok(part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builder::Init;
    use candle_core::Device;

    fn grouped_reference(
        x: &Tensor,
        w: &Tensor,
        padding: usize,
        stride: usize,
        groups: usize,
    ) -> Tensor {
        // candle's grouped conv, on inputs where its backward is exact ((h + 2p − k) % s == 0).
        x.conv2d(w, padding, stride, 1, groups).unwrap()
    }

    #[test]
    fn depthwise_matches_candle_forward_and_backward() {
        let dev = Device::Cpu;
        for (h, k, s, p) in [
            (9, 3, 2, 1),
            (8, 3, 1, 1),
            (11, 5, 2, 2),
            (7, 3, 1, 0),
            (9, 5, 1, 2),
            (3, 5, 1, 2),
            (2, 5, 1, 2),
            (3, 3, 1, 1),
        ] {
            let c = if h <= 3 { 144 } else { 4 };
            let x = Var::randn(0f32, 1.0, (4, c, h, h), &dev).unwrap();
            let w = Var::randn(0f32, 1.0, (c, 1, k, k), &dev).unwrap();
            let ours = depthwise(x.as_tensor(), w.as_tensor(), p, s).unwrap();
            let theirs = grouped_reference(x.as_tensor(), w.as_tensor(), p, s, c);
            assert_eq!(ours.dims(), theirs.dims());
            let diff = (&ours - &theirs)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-4, "forward {h} {k} {s} {p}: {diff}");
            let g = Tensor::randn(0f32, 1.0, ours.dims(), &dev).unwrap();
            let ga = (ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (theirs * &g)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for v in [&x, &w] {
                let a = ga.get(v.as_tensor()).unwrap();
                let b = gb.get(v.as_tensor()).unwrap();
                let d = (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(d < 1e-3, "gradient {h} {k} {s} {p}: {d}");
            }
        }
    }

    #[test]
    fn same_padding_puts_the_odd_zero_last_and_shapes_are_checked() {
        assert_eq!(same_pads(224, 3, 2), (0, 1));
        assert_eq!(same_pads(56, 5, 2), (1, 2));
        assert_eq!(same_pads(7, 3, 1), (1, 1));
        let mut rng = crate::train::rng::stream(1, "init", 0);
        let mut b = Builder::new(Init::Seeded(&mut rng), &Device::Cpu);
        let cfg = ConvConfig::new(8, 3).stride(2).padding(Padding::Same);
        let (conv, out) = Conv2d::new(&mut b, "stem", cfg, (3, 10, 9)).unwrap();
        assert_eq!(out, (8, 5, 5));
        let x = Tensor::randn(0f32, 1.0, (2, 3, 10, 9), &Device::Cpu).unwrap();
        assert_eq!(conv.forward(&x).unwrap().dims(), &[2, 8, 5, 5]);
        let err = Conv2d::new(
            &mut b,
            "layer4.0.conv1",
            ConvConfig::new(8, 7).padding(Padding::Symmetric(0)),
            (3, 4, 4),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("layer4.0.conv1: the input is 3×4×4, smaller than the 7×7 kernel"),
            "{err}"
        );
        let err = Conv2d::new(&mut b, "c", ConvConfig::new(6, 3).groups(4), (8, 4, 4))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("groups = 4 must divide"), "{err}");
    }

    #[test]
    fn grouped_convolution_equals_separate_convolutions() {
        let dev = Device::Cpu;
        let mut rng = crate::train::rng::stream(2, "init", 0);
        let mut b = Builder::new(Init::Seeded(&mut rng), &dev);
        let (conv, _) = Conv2d::new(
            &mut b,
            "g",
            ConvConfig::new(6, 3).groups(2).bias(true),
            (4, 6, 6),
        )
        .unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 4, 6, 6), &dev).unwrap();
        let ours = conv.forward(&x).unwrap();
        let theirs = x
            .conv2d(conv.w.as_tensor(), 1, 1, 1, 2)
            .unwrap()
            .broadcast_add(
                &conv
                    .b
                    .as_ref()
                    .unwrap()
                    .as_tensor()
                    .reshape((1, 6, 1, 1))
                    .unwrap(),
            )
            .unwrap();
        let d = (ours - theirs)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-4, "{d}");
    }
}

#[cfg(test)]
mod depthwise_input_gradient {
    use super::*;
    use candle_core::{DType, Device};

    /// Direct loops: dx[n,c,y,x] = Σ g[n,c,oy,ox] · w[c,ky,kx] over taps that read (y, x).
    fn reference_dx(
        g: &[f64],
        w: &[f64],
        (n, c, h, wd): (usize, usize, usize, usize),
        k: usize,
        p: usize,
        s: usize,
    ) -> Vec<f64> {
        let oh = (h + 2 * p - k) / s + 1;
        let ow = (wd + 2 * p - k) / s + 1;
        let mut dx = vec![0.0; n * c * h * wd];
        for b in 0..n {
            for ch in 0..c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let go = g[((b * c + ch) * oh + oy) * ow + ox];
                        for ky in 0..k {
                            for kx in 0..k {
                                let y = (oy * s + ky) as isize - p as isize;
                                let x = (ox * s + kx) as isize - p as isize;
                                if y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < wd {
                                    dx[((b * c + ch) * h + y as usize) * wd + x as usize] +=
                                        go * w[(ch * k + ky) * k + kx];
                                }
                            }
                        }
                    }
                }
            }
        }
        dx
    }

    #[test]
    fn the_cpu_op_equals_the_candle_twin() {
        let dev = Device::Cpu;
        for (n, c, h, w, k, s, p) in [
            (2, 3, 7, 9, 3, 1, 1),
            (3, 5, 8, 8, 3, 2, 1),
            (1, 4, 3, 3, 5, 1, 2),
            (2, 2, 11, 6, 5, 2, 2),
            (2, 3, 6, 6, 3, 2, 0),
        ] {
            let x = Var::randn(0f32, 1.0, (n, c, h, w), &dev).unwrap();
            let wt = Var::randn(0f32, 1.0, (c, 1, k, k), &dev).unwrap();
            let fast = crate::model::ops::depthwise::depthwise(x.as_tensor(), wt.as_tensor(), p, s)
                .unwrap();
            let twin = depthwise(x.as_tensor(), wt.as_tensor(), p, s).unwrap();
            assert_eq!(fast.dims(), twin.dims());
            let rel = |a: &Tensor, b: &Tensor| {
                let scale = b
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    / scale
            };
            assert!(
                rel(&fast, &twin) < 1e-6,
                "forward {n} {c} {h} {w} {k} {s} {p}"
            );
            let up = Tensor::randn(0f32, 1.0, fast.dims(), &dev).unwrap();
            let gf = (fast * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let gt = (twin * &up).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &wt] {
                let d = rel(
                    gf.get(v.as_tensor()).unwrap(),
                    gt.get(v.as_tensor()).unwrap(),
                );
                assert!(d < 1e-5, "gradient {n} {c} {h} {w} {k} {s} {p}: {d}");
            }
        }
    }

    #[test]
    fn input_gradient_equals_direct_loops() {
        let dev = Device::Cpu;
        for (h, k, s, p) in [
            (3, 5, 1, 2),
            (2, 5, 1, 2),
            (6, 3, 2, 1),
            (7, 5, 2, 2),
            (5, 3, 1, 1),
        ] {
            let x = Var::randn(0f64, 1.0, (2, 3, h, h), &dev).unwrap();
            let w = Tensor::randn(0f64, 1.0, (3, 1, k, k), &dev).unwrap();
            let y = depthwise(x.as_tensor(), &w, p, s).unwrap();
            let g = Tensor::randn(0f64, 1.0, y.dims(), &dev).unwrap();
            let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let dx = grads
                .get(x.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let want = reference_dx(
                &g.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
                &w.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
                (2, 3, h, h),
                k,
                p,
                s,
            );
            let diff = dx
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(diff < 1e-9, "h {h} k {k} s {s} p {p}: {diff}");
            let _ = DType::F64;
        }
    }
}
