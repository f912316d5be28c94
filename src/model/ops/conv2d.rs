//! 2-D convolution with its bias, ReLU and max-pool fused, as one candle custom op lowered to
//! matrix products on the CPU: per image, the column matrix (stride 1: shifted copies of the
//! padded image, a kernel row's product at a time; else im2col), then `W · col` (forward),
//! `G · colᵀ` (weight gradient, summed over a fixed split of the batch) and the input gradient:
//! at stride 1 (square kernels, no pool) the convolution of `G` with the flipped kernel, else
//! `Wᵀ · G` folded back. On request the forward also measures its output's per-channel moments
//! for a batch norm that follows.

use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, Layout, Result, Shape, Tensor};

use super::batch_norm::{plane_moments, Moments};
use super::conv_gradients;
use super::cpu;
use super::epilogue::{add_plane_sums, bias_relu, relu_gradient};
use super::im2col::{col2im, im2col, Geometry};
use super::matmul::{gemm, Mat, MatMut, Parallelism};
use super::max_pool::{self, Window};
use super::shifted::{self, rows_first, shift_image, unshift};

/// Every product here runs on one thread: the ops split the batch across threads themselves.
const NONE: Parallelism = Parallelism::None;

/// What the convolution computes: `pool(relu(conv(x, w) + b))`, each stage optional.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvOptions {
    pub stride: usize,
    pub padding: usize,
    pub relu: bool,
    /// A max-pool applied to the (activated) convolution output.
    pub pool: Option<Window>,
}

/// `x` (`batch × c_in × h × w`), `w` (`c_out × c_in × kh × kw`), `b` (`c_out`).
pub fn conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, opts: ConvOptions) -> Result<Tensor> {
    Ok(convolve(x, w, b, opts, false)?.0)
}

/// [`conv2d`] and, on the CPU fast path without a pool, the per-channel moments of its output
/// (for a batch norm that follows), taken image by image while each output is in cache.
pub fn conv2d_measured(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    opts: ConvOptions,
) -> Result<(Tensor, Option<Moments>)> {
    convolve(x, w, b, opts, opts.pool.is_none())
}

fn convolve(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    opts: ConvOptions,
    measure: bool,
) -> Result<(Tensor, Option<Moments>)> {
    let w = &super::cast_like(w, x)?;
    let b = b.map(|b| super::cast_like(b, x)).transpose()?;
    let b = b.as_ref();
    let all: Vec<&Tensor> = [Some(x), Some(w), b].into_iter().flatten().collect();
    if !cpu::fast_path(&all) {
        return Ok((reference(x, w, b, opts)?, None));
    }
    let moments = measure.then(|| Arc::new(Mutex::new(None)));
    let op = ConvOp {
        opts,
        argmax: Mutex::new(Vec::new()),
        moments: moments.clone(),
    };
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    let y = match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, op)?,
        None => x.apply_op2(&w, op)?,
    };
    let moments = match moments {
        Some(m) => lock(&m)?.take(),
        None => None,
    };
    Ok((y, moments))
}

/// The same computation with candle's own ops (the device-generic twin: used off the CPU, under
/// `ASSAY_KERNELS=generic`, and by the tests). The padding is added explicitly and the rows and
/// columns no window reaches are cut off, so candle's convolution always sees
/// (h + 2p − k) divisible by the stride: its backward fails otherwise. Both gradients are
/// forward convolutions (`conv_gradients`), never candle's `conv_transpose2d`.
pub fn reference(x: &Tensor, w: &Tensor, b: Option<&Tensor>, opts: ConvOptions) -> Result<Tensor> {
    let (_, _, h, wd) = x.dims4()?;
    let (kh, kw) = (w.dim(2)?, w.dim(3)?);
    let (p, s) = (opts.padding, opts.stride);
    let (hp, wp) = (h + 2 * p, wd + 2 * p);
    if hp < kh || wp < kw || s == 0 {
        bail!("conv2d: a {kh}×{kw} kernel does not fit the padded {hp}×{wp} input (stride {s})");
    }
    let used = |size: usize, k: usize| (size - k) / s * s + k;
    let x = if p > 0 {
        x.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)?
    } else {
        x.clone()
    };
    let x = x.narrow(2, 0, used(hp, kh))?.narrow(3, 0, used(wp, kw))?;
    let mut y = conv_gradients::conv2d(&x, w, s)?;
    if let Some(b) = b {
        y = y.broadcast_add(&b.reshape((1, (), 1, 1))?)?;
    }
    if opts.relu {
        y = y.relu()?;
    }
    match opts.pool {
        Some(win) => max_pool::max_pool2d(&y, win),
        None => Ok(y),
    }
}

const NAME: &str = "conv2d";

struct ConvOp {
    opts: ConvOptions,
    /// With a fused max-pool: per output element, the index of its maximum in the plane.
    argmax: Mutex<Vec<u32>>,
    /// Where the forward leaves its output's moments, when asked to (and without a pool).
    moments: Option<Arc<Mutex<Option<Moments>>>>,
}

/// Shapes of one call: the convolution geometry, the batch, output channels and pooled size.
struct Dims {
    g: Geometry,
    n: usize,
    c_out: usize,
    oh: usize,
    ow: usize,
}

impl Dims {
    fn new(opts: &ConvOptions, x: &Shape, w: &Shape, b: Option<usize>) -> Result<Self> {
        let (n, c, h, wd) = x.dims4()?;
        let (c_out, c_in, kh, kw) = w.dims4()?;
        if c_in != c {
            bail!("{NAME}: the input has {c} channels but the kernel expects {c_in}")
        }
        if let Some(len) = b {
            if len != c_out {
                bail!("{NAME}: {len} biases for {c_out} output channels")
            }
        }
        let g = Geometry::new((c, h, wd), (kh, kw), opts.stride, opts.padding)?;
        let (oh, ow) = match opts.pool {
            Some(win) => win.output(g.ho, g.wo)?,
            None => (g.ho, g.wo),
        };
        if g.p() > u32::MAX as usize {
            bail!("{NAME}: output planes of {}×{} are too large", g.ho, g.wo)
        }
        Ok(Dims {
            g,
            n,
            c_out,
            oh,
            ow,
        })
    }

    /// Output elements per image.
    fn out(&self) -> usize {
        self.c_out * self.oh * self.ow
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    match m.lock() {
        Ok(g) => Ok(g),
        Err(_) => bail!("{NAME}: argmax store poisoned"),
    }
}

impl ConvOp {
    fn forward(
        &self,
        (xs, xl): (&CpuStorage, &Layout),
        (ws, wl): (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu::storage_f32(xs, xl, NAME)?;
        let w = cpu::storage_f32(ws, wl, NAME)?;
        let b = match bias {
            Some((s, l)) => Some(cpu::storage_f32(s, l, NAME)?),
            None => None,
        };
        let d = Dims::new(&self.opts, xl.shape(), wl.shape(), b.map(|b| b.len()))?;
        let (g, co) = (d.g, d.c_out);
        let (n, out_img) = (g.p(), d.out());
        let (relu, pool) = (self.opts.relu, self.opts.pool);
        let arg_img = if pool.is_some() { out_img } else { 0 };
        let mut argmax = cpu::uninit_vec::<u32>(d.n * arg_img);
        let mut out = cpu::uninit_vec::<f32>(d.n * out_img);
        // Per image and output channel, its plane's moments (mean, M2).
        let measure = self.moments.is_some() && pool.is_none();
        let mom_img = if measure { co } else { 0 };
        let mut moments = vec![(0f64, 0f64); d.n * mom_img];
        let ranges = cpu::ranges(d.n, 4 * cpu::MAX_CHUNKS);
        let outs = cpu::split_mut(&mut out, &ranges, out_img);
        let args = cpu::split_mut(&mut argmax, &ranges, arg_img);
        let moms = cpu::split_mut(&mut moments, &ranges, mom_img);
        let tasks: Vec<_> = ranges.into_iter().zip(outs).zip(args).zip(moms).collect();
        let w_rows = Columns::weights_in_order(&g, w);
        cpu::run(tasks, |(((images, out), arg), mom)| {
            let col_len = Columns::scratch_len(&g);
            // With a pool, the product and the pooling epilogue's scratch.
            let pool_len = match pool {
                Some(_) => co * n + 2 * g.wo * co + 2 * d.ow * co,
                None => 0,
            };
            let mut buf = cpu::take_scratch(col_len + pool_len);
            let (col, rest) = buf.split_at_mut(col_len);
            let (z, pool_scratch) = rest.split_at_mut(if pool.is_some() { co * n } else { 0 });
            // Zeros where the column matrix (or shifted planes) of every image is zero.
            col.fill(0.0);
            for (i, img) in images.enumerate() {
                let xn = &x[img * g.image()..(img + 1) * g.image()];
                let out_n = &mut out[i * out_img..(i + 1) * out_img];
                // The column matrix (or its kernel rows' views) for this image.
                let cols = Columns::of(&g, xn, col);
                let Some(win) = pool else {
                    let out_n = planes_product(&g, co, cols, (w, &w_rows), out_n)?;
                    bias_relu(out_n, co, b, relu);
                    if measure {
                        let planes = out_n.chunks_exact(n);
                        for (m, plane) in mom[i * co..(i + 1) * co].iter_mut().zip(planes) {
                            *m = plane_moments(plane);
                        }
                    }
                    continue;
                };
                // With a pool, z = (W · col)ᵀ: positions × channels, the orientation the
                // pooling epilogue vectorises over channels in.
                for p in cols.parts(&g, w, &w_rows) {
                    let dst = MatMut::cols(z, co);
                    gemm(co, n, p.rows, dst, !p.first, p.weights, p.cols, NONE)?;
                }
                let arg_n = &mut arg[i * out_img..(i + 1) * out_img];
                let scratch = &mut pool_scratch[..];
                pool_channels_last(z, co, (g.ho, g.wo), win, b, relu, out_n, arg_n, scratch);
            }
            cpu::put_scratch(buf);
            Ok(())
        })?;
        // SAFETY: the ranges cover every image, and both epilogues write every value of an
        // image's output (and, pooling, of its argmax).
        let (out, argmax) = unsafe { (cpu::assume_written(out), cpu::assume_written(argmax)) };
        if pool.is_some() {
            *lock(&self.argmax)? = argmax;
        }
        if let (true, Some(slot)) = (measure, &self.moments) {
            *lock(slot)? = Some(Moments::combine(&moments, co, n));
        }
        Ok((CpuStorage::F32(out), Shape::from((d.n, co, d.oh, d.ow))))
    }

    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let need_dx = x.track_op();
        let need_dw = w.track_op();
        let need_db = b.is_some_and(|b| b.track_op());
        if !(need_dx || need_dw || need_db) {
            return Ok((None, None, None));
        }
        let d = Dims::new(&self.opts, x.shape(), w.shape(), b.map(|b| b.elem_count()))?;
        let (g, co) = (d.g, d.c_out);
        let (k, n, out_img) = (g.k(), g.p(), d.out());
        let (relu, pool) = (self.opts.relu, self.opts.pool);
        let (x, w, res, grad) = (
            x.contiguous()?,
            w.contiguous()?,
            res.contiguous()?,
            grad.contiguous()?,
        );
        let (xs, xl) = x.storage_and_layout();
        let xd = cpu::tensor_f32(&xs, xl, NAME)?;
        let (ws, wl) = w.storage_and_layout();
        let wd = cpu::tensor_f32(&ws, wl, NAME)?;
        let (rs, rl) = res.storage_and_layout();
        let rd = cpu::tensor_f32(&rs, rl, NAME)?;
        let (gs, gl) = grad.storage_and_layout();
        let gd = cpu::tensor_f32(&gs, gl, NAME)?;
        let argmax = lock(&self.argmax)?;
        if gd.len() != d.n * out_img
            || rd.len() != gd.len()
            || (pool.is_some() && argmax.len() != gd.len())
        {
            bail!("{NAME}: backward without a matching forward pass")
        }
        let w_rows = Columns::weights_in_order(&g, wd);
        let flipped = match pool {
            None if need_dx => Flipped::of(&g, co, wd),
            _ => None,
        };

        let img = if need_dx { g.image() } else { 0 };
        let mut dx = cpu::uninit_vec::<f32>(d.n * img);
        let ranges = cpu::ranges(d.n, cpu::MAX_CHUNKS);
        let dxs = cpu::split_mut(&mut dx, &ranges, img);
        let tasks: Vec<_> = ranges.into_iter().zip(dxs).collect();
        let partials = cpu::run(tasks, |(images, dx)| {
            // Partial sums of this chunk: dWᵀ (K × c_out, rows in the parts' order) and db.
            let mut dwt = vec![0f32; if need_dw { k * co } else { 0 }];
            let mut db = vec![0f32; if need_db { co } else { 0 }];
            // The column matrix (for the weight gradient) and the gradient of the column
            // matrix (for the input gradient), unless pointwise.
            let col_len = if need_dw { Columns::scratch_len(&g) } else { 0 };
            let dcol_len = match (&flipped, need_dx) {
                (_, false) => 0,
                (Some(t), true) => Columns::scratch_len(&t.g),
                (None, true) => Columns::scratch_len(&g),
            };
            // The gradient at the product, unless that is the output's gradient itself (no
            // pool, no ReLU).
            let gz_len = if pool.is_some() || relu { co * n } else { 0 };
            let mut buf = cpu::take_scratch(gz_len + col_len + dcol_len);
            let (gz, rest) = buf.split_at_mut(gz_len);
            let (col, dcol) = rest.split_at_mut(col_len);
            // Zeros where the column matrix (or shifted planes) of every image is zero.
            col.fill(0.0);
            if flipped.is_some() {
                dcol.fill(0.0);
            }
            // gz's strides between positions and between channels: channels last after a pool
            // (as its forward), else channels first.
            let (ps, cs) = if pool.is_some() { (co, 1) } else { (1, n) };
            for (i, im) in images.enumerate() {
                let o = im * out_img..(im + 1) * out_img;
                let (gn, rn) = (&gd[o.clone()], &rd[o.clone()]);
                // The gradient at the convolution's output (after the bias, before ReLU and
                // pooling), and its sums per channel for the bias.
                let gz: &[f32] = match pool {
                    Some(_) => {
                        unpool_channels_last(gn, rn, &argmax[o], co, relu, gz, &mut db)?;
                        gz
                    }
                    None if relu => {
                        relu_gradient(gn, rn, co, gz, &mut db);
                        gz
                    }
                    None => {
                        add_plane_sums(gn, co, &mut db);
                        gn
                    }
                };
                // gz as the c_out × positions matrix it stands for
                let gmat = Mat {
                    data: gz,
                    rs: cs,
                    cs: ps,
                };
                let xn = &xd[im * g.image()..(im + 1) * g.image()];
                let dxn = &mut dx[i * img..(i + 1) * img];
                if need_dw {
                    // dWᵀ (the part's rows) += colᵀ · gzᵀ
                    let cols = Columns::of(&g, xn, col);
                    for p in cols.parts(&g, wd, &w_rows) {
                        let dst = MatMut::cols(&mut dwt[p.offset * co..], co);
                        gemm(co, p.rows, n, dst, true, gmat, p.cols.t(), NONE)?;
                    }
                }
                if need_dx {
                    match &flipped {
                        // the gradient is the convolution of gz with the flipped kernel
                        Some(t) => {
                            let cols = Columns::of(&t.g, gz, dcol);
                            planes_product(&t.g, g.c_in, cols, (&[], &t.w_rows), dxn)?;
                        }
                        None => input_gradient(&g, co, gmat, (wd, &w_rows), dcol, dxn)?,
                    }
                }
            }
            cpu::put_scratch(buf);
            Ok((dwt, db))
        })?;
        drop(argmax);

        let mut parts = partials.into_iter();
        let (mut dwt, mut db) = parts.next().unwrap_or_default();
        for (pw, pb) in parts {
            for (a, v) in dwt.iter_mut().zip(pw) {
                *a += v;
            }
            for (a, v) in db.iter_mut().zip(pb) {
                *a += v;
            }
        }
        let dx = if need_dx {
            // SAFETY: the ranges cover every image, and `input_gradient` writes all of each.
            let dx = unsafe { cpu::assume_written(dx) };
            Some(Tensor::from_vec(dx, x.shape(), x.device())?)
        } else {
            None
        };
        let dw = if need_dw {
            // dW[o, r] from dWᵀ, whose rows are in the parts' order
            let mut dw = vec![0f32; co * k];
            for (r, row) in dwt.chunks_exact(co).enumerate() {
                let r = if g.is_shifted() {
                    shifted::natural_index(&g, r)
                } else {
                    r
                };
                for (o, &v) in row.iter().enumerate() {
                    dw[o * k + r] = v;
                }
            }
            Some(Tensor::from_vec(dw, w.shape(), w.device())?)
        } else {
            None
        };
        let db = match b {
            Some(b) if need_db => Some(Tensor::from_vec(db, b.shape(), b.device())?),
            _ => None,
        };
        Ok((dx, dw, db))
    }
}

/// One image's column matrix (`K × p`) as the products read it: the image itself
/// (pointwise), built by im2col, or at stride 1 its shifted planes, which stand for the
/// matrix a kernel row at a time.
#[derive(Clone, Copy)]
enum Columns<'a> {
    Whole(&'a [f32]),
    Shifted(&'a [f32]),
}

/// One kernel row's part of a convolution's product (or the whole): its `rows` rows of the
/// column matrix (`rows × p`) and the weights on them (`c_out × rows`).
struct Part<'a> {
    cols: Mat<'a>,
    weights: Mat<'a>,
    rows: usize,
    /// The first part (the products of the later ones add to it).
    first: bool,
    /// Where the part's rows start, in the order of `Columns::parts`' weights.
    offset: usize,
}

impl<'a> Columns<'a> {
    /// Values of the scratch [`Columns::of`] builds in.
    fn scratch_len(g: &Geometry) -> usize {
        if g.is_pointwise() {
            0
        } else if g.is_shifted() {
            shifted::len(g)
        } else {
            g.k() * g.p()
        }
    }

    /// The weights `w` as [`Columns::parts`] takes them at stride 1 ([`rows_first`] order);
    /// else none (the parts read `w` itself).
    fn weights_in_order(g: &Geometry, w: &[f32]) -> Vec<f32> {
        if g.is_shifted() {
            rows_first(g, w)
        } else {
            Vec::new()
        }
    }

    /// The column matrix of image `xn`, built in `col` (of `shifted::len` values at stride 1,
    /// `K × p` on the strided path, none pointwise), which holds zeros or the columns of
    /// another image of the same geometry.
    fn of(g: &Geometry, xn: &'a [f32], col: &'a mut [f32]) -> Self {
        if g.is_pointwise() {
            Columns::Whole(xn)
        } else if g.is_shifted() {
            shift_image(g, xn, col);
            Columns::Shifted(col)
        } else {
            im2col(g, xn, col);
            Columns::Whole(col)
        }
    }

    /// The parts whose products sum to the convolution, with their weights from `w`
    /// (`c_out × K`) or, at stride 1, `w_rows` (the same in [`rows_first`] order).
    fn parts<'b>(
        self,
        g: &Geometry,
        w: &'b [f32],
        w_rows: &'b [f32],
    ) -> impl Iterator<Item = Part<'b>> + 'b
    where
        'a: 'b,
    {
        let (k, n) = (g.k(), g.p());
        let (count, rows) = match self {
            Columns::Whole(_) => (1, k),
            Columns::Shifted(_) => (g.kh, g.kw * g.c_in),
        };
        let (wo, plane) = (g.wo, shifted::plane(g));
        (0..count).map(move |i| {
            let (cols, weights) = match self {
                Columns::Whole(col) => (Mat::rows(col, n), Mat::rows(w, k)),
                // kernel row i's column matrix: the shifted planes from i output rows on
                Columns::Shifted(q) => (
                    Mat {
                        data: &q[i * wo..],
                        rs: plane,
                        cs: 1,
                    },
                    Mat::rows(&w_rows[i * rows..], k),
                ),
            };
            Part {
                cols,
                weights,
                rows,
                first: i == 0,
                offset: i * rows,
            }
        })
    }
}

/// The products of `cols`' parts with the weights `w` (`W`, the same in [`rows_first`] order)
/// written into `out` (`c_out` planes of output positions, every value written): `colᵀ · Wᵀ`
/// with the long side, positions, as the one the product's tiles run along.
fn planes_product<'o>(
    g: &Geometry,
    co: usize,
    cols: Columns,
    (w, w_rows): (&[f32], &[f32]),
    out: &'o mut [MaybeUninit<f32>],
) -> Result<&'o mut [f32]> {
    let n = g.p();
    for p in cols.parts(g, w, w_rows) {
        let dst = if p.first {
            MatMut::uninit_cols(out, n)
        } else {
            // SAFETY: the first part's product wrote every value.
            MatMut::cols(unsafe { cpu::assume_init_mut(out) }, n)
        };
        gemm(
            n,
            co,
            p.rows,
            dst,
            !p.first,
            p.cols.t(),
            p.weights.t(),
            NONE,
        )?;
    }
    // SAFETY: as above (a convolution has at least one part).
    Ok(unsafe { cpu::assume_init_mut(out) })
}

/// A stride-1 convolution's input gradient as a convolution of the output's gradient: with the
/// kernel flipped and its channels swapped, over padding `k − 1 − pad` (the same geometry as
/// the forward at "same" padding). Its products run along the input's positions and write the
/// gradient in place, `k·c_out` deep, rather than the shifted planes' gradient `c_out` deep.
struct Flipped {
    /// The convolution of the output's gradient (`c_out × ho × wo`) giving `c_in × h × w`.
    g: Geometry,
    /// The flipped kernel (`c_in × c_out × kh × kw`) in [`rows_first`] order.
    w_rows: Vec<f32>,
}

impl Flipped {
    /// For a stride-1 convolution `g` with a square kernel and padding below its side and `w`
    /// (`c_out × c_in × kh × kw`); else none.
    fn of(g: &Geometry, co: usize, w: &[f32]) -> Option<Self> {
        let (kh, kw) = (g.kh, g.kw);
        if !g.is_shifted() || kh != kw || g.pad >= kh {
            return None;
        }
        let gt = Geometry::new((co, g.ho, g.wo), (kh, kw), 1, kh - 1 - g.pad).ok()?;
        if (gt.ho, gt.wo) != (g.h, g.w) {
            return None;
        }
        let mut flipped = Vec::with_capacity(w.len());
        for c in 0..g.c_in {
            for o in 0..co {
                for i in (0..kh).rev() {
                    for j in (0..kw).rev() {
                        flipped.push(w[((o * g.c_in + c) * kh + i) * kw + j]);
                    }
                }
            }
        }
        let w_rows = rows_first(&gt, &flipped);
        Some(Flipped { g: gt, w_rows })
    }
}

/// The input gradient `dxn` of one image (every value written) from the gradient at its
/// output `gz` (`c_out × p`): pointwise `Wᵀ · gz`; else the gradient of the column matrix,
/// `Wᵀ · gz` (in `dcol`, `K × p`) added back by col2im, or at stride 1 that of the
/// shifted planes (in `dcol`, a kernel row's product at a time, each from `wo` further
/// on), then unshifted (where [`Flipped`] does not apply: after a pool, with a non-square
/// kernel or padding as wide as it). `w` is (`W`, the same in [`rows_first`] order).
fn input_gradient(
    g: &Geometry,
    co: usize,
    gz: Mat,
    (w, w_rows): (&[f32], &[f32]),
    dcol: &mut [f32],
    dxn: &mut [MaybeUninit<f32>],
) -> Result<()> {
    let (k, n) = (g.k(), g.p());
    let wt = Mat::rows(w, k).t();
    if g.is_pointwise() {
        let dst = MatMut::rows(cpu::zeroed(dxn), n);
        return gemm(k, n, co, dst, false, wt, gz, NONE);
    }
    if !g.is_shifted() {
        gemm(k, n, co, MatMut::rows(dcol, n), false, wt, gz, NONE)?;
        col2im(g, dcol, cpu::zeroed(dxn));
        return Ok(());
    }
    let (rows, plane) = (g.kw * g.c_in, shifted::plane(g));
    // Kernel row 0 writes each row's first `p` values; the later ones add further on.
    for row in dcol.chunks_exact_mut(plane) {
        row[n..].fill(0.0);
    }
    for i in 0..g.kh {
        let dst = MatMut::strided(&mut dcol[i * g.wo..], 1, plane);
        let wi = Mat::rows(&w_rows[i * rows..], k);
        gemm(n, rows, co, dst, i > 0, gz.t(), wi, NONE)?;
    }
    unshift(g, dcol, dxn);
    Ok(())
}

cpu::multiversion! {
/// Max-pools `z` (positions × `c`, channels last; `dims` = (ho, wo)) into
/// `out` (`c × oh·ow`, channels first), adding the bias after the maximum (the same value, one
/// add per output) and applying ReLU; records each maximum's position in `argmax`: the
/// first one in row-major window order on ties, as PyTorch; a NaN wins. Each band of `k` rows
/// is first reduced vertically over whole rows, then horizontally, as branch-free loops over
/// contiguous memory; positions are carried as f32 (exact below 2²⁴) and updated
/// arithmetically, so that nothing compiles to a conditional store.
#[allow(clippy::too_many_arguments)]
fn pool_channels_last(
    z: &[f32],
    c: usize,
    dims: (usize, usize),
    win: Window,
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [MaybeUninit<f32>],
    argmax: &mut [MaybeUninit<u32>],
    scratch: &mut [f32],
) {
    let ((ho, wo), (k, s)) = (dims, (win.size, win.stride));
    // the distance between rows of z
    let gw = wo;
    let (oh, ow) = ((ho - k) / s + 1, (wo - k) / s + 1);
    let (plane, row_len) = (oh * ow, wo * c);
    // Per band: the vertical maxima and their rows; then per output row: the maxima (channels
    // last) and their grid positions.
    let (vbest, rest) = scratch.split_at_mut(row_len);
    let (vrow, rest) = rest.split_at_mut(row_len);
    let (hbest, rest) = rest.split_at_mut(ow * c);
    let hpos = &mut rest[..ow * c];
    let gwf = gw as f32;
    const TWO_23: f32 = 8_388_608.0;
    let small_grid = ((ho * gw) as f32) < TWO_23;
    for y in 0..oh {
        let top = y * s;
        if k == 2 && s == 2 {
            pool_2x2_row(z, c, gw, top, hbest, hpos);
        } else {
            let first = &z[top * gw * c..][..row_len];
            let r0 = top as f32;
            for ((b, a), &v) in vbest.iter_mut().zip(vrow.iter_mut()).zip(first) {
                *b = v;
                *a = r0;
            }
            let mut nan = has_nan(vbest);
            for i in 1..k {
                let r = (top + i) as f32;
                let row = &z[(top + i) * gw * c..][..row_len];
                for ((b, a), &v) in vbest.iter_mut().zip(vrow.iter_mut()).zip(row) {
                    let take = f32::from(u8::from(v > *b));
                    *a += take * (r - *a);
                    *b = b.max(v);
                }
                nan |= has_nan(row);
            }
            for x in 0..ow {
                let (left, dst) = (x * s * c, x * c);
                let (hb, hp) = (&mut hbest[dst..dst + c], &mut hpos[dst..dst + c]);
                let col0 = (x * s) as f32;
                let (vb, vr) = (&vbest[left..left + c], &vrow[left..left + c]);
                for (((b, p), &v), &r) in hb.iter_mut().zip(hp.iter_mut()).zip(vb).zip(vr) {
                    *b = v;
                    *p = r * gwf + col0;
                }
                for j in 1..k {
                    let col = (x * s + j) as f32;
                    let at = (x * s + j) * c;
                    let (vb, vr) = (&vbest[at..at + c], &vrow[at..at + c]);
                    for (((b, bp), &v), &r) in hb.iter_mut().zip(hp.iter_mut()).zip(vb).zip(vr) {
                        // On equal values the earlier position wins (row-major order).
                        let pos = r * gwf + col;
                        let take = f32::from(u8::from(v > *b || (v == *b && pos < *bp)));
                        *bp += take * (pos - *bp);
                        *b = b.max(v);
                    }
                }
                if nan {
                    first_nans(z, c, gw, k, (top, x * s), hb, hp);
                }
            }
        }
        // Bias, ReLU and positions as integers (kept in f32 bits), all contiguous...
        for (hb, hp) in hbest.chunks_exact_mut(c).zip(hpos.chunks_exact_mut(c)) {
            for ch in 0..c {
                let t = hb[ch] + bias.map_or(0.0, |b| b[ch]);
                hb[ch] = if relu && t < 0.0 { 0.0 } else { t };
            }
            if small_grid {
                // An integer below 2²³ plus 2²³ has it as its mantissa: a vector-friendly
                // conversion (`as` is not, for its NaN and overflow handling).
                for p in hp.iter_mut() {
                    *p = f32::from_bits((*p + TWO_23).to_bits() - TWO_23.to_bits());
                }
            } else {
                for p in hp.iter_mut() {
                    *p = f32::from_bits(*p as u32);
                }
            }
        }
        // ...then transposed to channels first.
        for ch in 0..c {
            let o = ch * plane + y * ow;
            let column = hbest[ch..].iter().step_by(c);
            for (d, &v) in out[o..o + ow].iter_mut().zip(column) {
                d.write(v);
            }
            let column = hpos[ch..].iter().step_by(c);
            for (d, &v) in argmax[o..o + ow].iter_mut().zip(column) {
                d.write(v.to_bits());
            }
        }
    }
}
}

/// One output row of a 2×2, stride-2 max-pool over `z` (grid positions × `c`, grid width `gw`)
/// from grid row `top`: the maxima and their grid positions (as f32), channels last, in a
/// single branch-free pass (first maximum in row-major order on ties; a NaN wins).
#[inline(always)]
fn pool_2x2_row(z: &[f32], c: usize, gw: usize, top: usize, best: &mut [f32], pos: &mut [f32]) {
    let ow = best.len() / c.max(1);
    let (r0, r1) = (
        &z[top * gw * c..][..2 * ow * c],
        &z[(top + 1) * gw * c..][..2 * ow * c],
    );
    let gwf = gw as f32;
    for x in 0..ow {
        let (a, b) = (&r0[2 * x * c..][..c], &r0[(2 * x + 1) * c..][..c]);
        let (d0, d1) = (&r1[2 * x * c..][..c], &r1[(2 * x + 1) * c..][..c]);
        let (hb, hp) = (&mut best[x * c..][..c], &mut pos[x * c..][..c]);
        let p0 = (top * gw + 2 * x) as f32;
        for e in 0..c {
            let (va, vb, vc, vd) = (a[e], b[e], d0[e], d1[e]);
            let t01 = f32::from(u8::from(vb > va));
            let t23 = f32::from(u8::from(vd > vc));
            let (m01, m23) = (va.max(vb), vc.max(vd));
            let t = f32::from(u8::from(m23 > m01));
            let (i01, i23) = (t01, gwf + t23);
            hb[e] = m01.max(m23);
            hp[e] = p0 + i01 + t * (i23 - i01);
        }
    }
    if has_nan(r0) || has_nan(r1) {
        for x in 0..ow {
            let (hb, hp) = (&mut best[x * c..][..c], &mut pos[x * c..][..c]);
            first_nans(z, c, gw, 2, (top, 2 * x), hb, hp);
        }
    }
}

/// Whether `v` holds a NaN (an integer test, so the loop vectorises).
#[inline(always)]
fn has_nan(v: &[f32]) -> bool {
    v.iter().fold(0u32, |acc, x| {
        acc | u32::from((x.to_bits() & 0x7fff_ffff) > 0x7f80_0000)
    }) != 0
}

/// For every channel whose `k × k` window at grid row `top`, column `left` holds a NaN, makes
/// the first NaN its maximum.
#[cold]
fn first_nans(
    z: &[f32],
    c: usize,
    gw: usize,
    k: usize,
    (top, left): (usize, usize),
    best: &mut [f32],
    pos: &mut [f32],
) {
    for ch in 0..c {
        let positions = (0..k).flat_map(|i| (0..k).map(move |j| (top + i) * gw + left + j));
        for q in positions {
            let v = z[q * c + ch];
            if v.is_nan() {
                best[ch] = v;
                pos[ch] = q as f32;
                break;
            }
        }
    }
}

cpu::multiversion! {
/// The gradient before a fused max-pool (and ReLU), grid positions × channels: each pooled
/// gradient goes to its remembered maximum (only where the output is positive with ReLU).
/// Adds the bias gradient to `db` (if not empty) on the way.
#[allow(clippy::too_many_arguments)]
fn unpool_channels_last(
    grad: &[f32],
    res: &[f32],
    argmax: &[u32],
    c: usize,
    relu: bool,
    gz: &mut [f32],
    db: &mut [f32],
) -> Result<()> {
    gz.fill(0.0);
    let plane = grad.len() / c.max(1);
    let n = gz.len() / c.max(1);
    if argmax.iter().any(|&a| a as usize >= n) {
        bail!("{NAME}: a remembered maximum lies outside the grid")
    }
    for ch in 0..c {
        let q = ch * plane..(ch + 1) * plane;
        let mut sum = 0f32;
        for ((&gv, &r), &at) in grad[q.clone()].iter().zip(&res[q.clone()]).zip(&argmax[q]) {
            let v = if !relu || r > 0.0 { gv } else { 0.0 };
            gz[at as usize * c + ch] += v;
            sum += v;
        }
        if let Some(d) = db.get_mut(ch) {
            *d += sum;
        }
    }
    Ok(())
}
}

custom_op_with_optional_bias!(ConvOp, NAME);

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use candle_core::Var;
    use rand::Rng;

    /// The convolution written with candle primitives only (zero padding, `index_select` for
    /// every kernel offset, one matmul), then bias, ReLU and a max-pool built the same way.
    /// candle's own conv2d is not used: its backward fails when (h + 2·pad − k) is not a
    /// multiple of the stride.
    fn candle_conv(x: &Tensor, w: &Tensor, b: Option<&Tensor>, o: ConvOptions) -> Result<Tensor> {
        let (n, c, h, wd) = x.dims4()?;
        let (co, _, kh, kw) = w.dims4()?;
        let xp = x
            .pad_with_zeros(2, o.padding, o.padding)?
            .pad_with_zeros(3, o.padding, o.padding)?;
        let ho = (h + 2 * o.padding - kh) / o.stride + 1;
        let wo = (wd + 2 * o.padding - kw) / o.stride + 1;
        let mut parts = Vec::new();
        for i in 0..kh {
            for j in 0..kw {
                let rows: Vec<u32> = (0..ho).map(|r| (r * o.stride + i) as u32).collect();
                let cols: Vec<u32> = (0..wo).map(|q| (q * o.stride + j) as u32).collect();
                let rows = Tensor::new(rows.as_slice(), x.device())?;
                let cols = Tensor::new(cols.as_slice(), x.device())?;
                parts.push(xp.index_select(&rows, 2)?.index_select(&cols, 3)?);
            }
        }
        // (n, c, ho, wo, kh·kw) → (n·ho·wo, c·kh·kw)
        let cols = Tensor::stack(&parts, 4)?
            .permute((0, 2, 3, 1, 4))?
            .reshape((n * ho * wo, c * kh * kw))?;
        let mut y = cols
            .matmul(&w.reshape((co, c * kh * kw))?.t()?)?
            .reshape((n, ho, wo, co))?
            .permute((0, 3, 1, 2))?;
        if let Some(b) = b {
            y = y.broadcast_add(&b.reshape((1, (), 1, 1))?)?;
        }
        if o.relu {
            y = y.relu()?;
        }
        match o.pool {
            Some(win) => candle_max_pool(&y, win.size, win.stride),
            None => Ok(y),
        }
    }

    #[test]
    fn outputs_and_gradients_match_candle_on_random_shapes() {
        match_on_random_shapes(11, |t, o| candle_conv(&t[0], &t[1], t.get(2), o));
    }

    #[test]
    fn the_generic_twin_matches_on_random_shapes_including_strides_that_skip_rows() {
        use super::super::kernels::{self, Kernels};
        match_on_random_shapes(12, |t, o| {
            kernels::with(Kernels::Generic, || conv2d(&t[0], &t[1], t.get(2), o))
        });
    }

    /// The fast op against `reference` on 60 random shapes, kernels, strides, paddings and pools.
    fn match_on_random_shapes(
        seed: u64,
        reference: impl Fn(&[Tensor], ConvOptions) -> Result<Tensor>,
    ) {
        let mut rng = rng(seed);
        let mut cases = 0;
        while cases < 60 {
            let n = rng.random_range(1..5);
            let c_in = rng.random_range(1..4);
            let c_out = rng.random_range(1..6);
            let (kh, kw) = (rng.random_range(1..4), rng.random_range(1..4));
            let (h, w) = (rng.random_range(2..10), rng.random_range(2..10));
            let stride = rng.random_range(1..4);
            let padding = rng.random_range(0..3);
            let (relu, bias) = (rng.random_bool(0.6), rng.random_bool(0.7));
            let Ok(g) = Geometry::new((c_in, h, w), (kh, kw), stride, padding) else {
                continue;
            };
            // A padding as wide as the kernel gives outputs that read only zeros, equal values
            // whose ties the reference max-pool sends the gradient to all of: no pool there.
            let pool = if padding < kh.min(kw) && rng.random_bool(0.5) {
                let win = Window {
                    size: rng.random_range(1..4),
                    stride: rng.random_range(1..4),
                };
                if win.output(g.ho, g.wo).is_err() {
                    continue;
                }
                Some(win)
            } else {
                None
            };
            let o = ConvOptions {
                stride,
                padding,
                relu,
                pool,
            };
            let vx = var(&mut rng, &[n, c_in, h, w]);
            let vw = var(&mut rng, &[c_out, c_in, kh, kw]);
            let vb = var(&mut rng, &[c_out]);
            let mut vars = vec![&vx, &vw];
            if bias {
                vars.push(&vb);
            }
            let what =
                format!("n {n} c_in {c_in} {h}×{w} c_out {c_out} k {kh}×{kw} {o:?} bias {bias}");
            check_against(
                &vars,
                &mut rng,
                |t| conv2d(&t[0], &t[1], t.get(2), o),
                |t| reference(t, o),
                &what,
            );
            cases += 1;
        }
    }

    #[test]
    fn many_channels_over_a_large_grid_match_candle() {
        let mut rng = rng(5);
        for (c_in, h, w, c_out, pool) in [
            (64, 20, 19, 7, None),
            (40, 25, 13, 5, Some(Window { size: 2, stride: 2 })),
        ] {
            let g = Geometry::new((c_in, h, w), (3, 3), 1, 1).unwrap();
            let o = ConvOptions {
                stride: 1,
                padding: 1,
                relu: true,
                pool,
            };
            let vx = var(&mut rng, &[2, c_in, h, w]);
            let vw = var(&mut rng, &[c_out, c_in, 3, 3]);
            let vb = var(&mut rng, &[c_out]);
            check_against(
                &[&vx, &vw, &vb],
                &mut rng,
                |t| conv2d(&t[0], &t[1], t.get(2), o),
                |t| candle_conv(&t[0], &t[1], t.get(2), o),
                &format!("{g:?}"),
            );
        }
    }

    #[test]
    fn the_reference_lenet_layers_match_candle() {
        let mut rng = rng(3);
        for (c_in, h, c_out) in [(1, 28, 16), (16, 14, 32)] {
            let vx = var(&mut rng, &[64, c_in, h, h]);
            let vw = var(&mut rng, &[c_out, c_in, 3, 3]);
            let vb = var(&mut rng, &[c_out]);
            for pool in [None, Some(Window { size: 2, stride: 2 })] {
                let o = ConvOptions {
                    stride: 1,
                    padding: 1,
                    relu: true,
                    pool,
                };
                check_against(
                    &[&vx, &vw, &vb],
                    &mut rng,
                    |t| conv2d(&t[0], &t[1], Some(&t[2]), o),
                    |t| {
                        let y =
                            reference(&t[0], &t[1], Some(&t[2]), ConvOptions { pool: None, ..o })?;
                        match pool {
                            Some(win) => candle_max_pool(&y, win.size, win.stride),
                            None => Ok(y),
                        }
                    },
                    &format!("lenet {c_in}->{c_out} {pool:?}"),
                );
            }
        }
    }

    #[test]
    fn an_input_without_gradient_gets_none_and_results_do_not_depend_on_threads() {
        let mut rng = rng(5);
        let x = random(&mut rng, &[9, 3, 8, 8]);
        let vw = var(&mut rng, &[4, 3, 3, 3]);
        let vb = var(&mut rng, &[4]);
        let o = ConvOptions {
            stride: 1,
            padding: 1,
            relu: true,
            pool: Some(Window { size: 2, stride: 2 }),
        };
        let run = || {
            let y = conv2d(&x, vw.as_tensor(), Some(vb.as_tensor()), o).unwrap();
            let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            assert!(grads.get(&x).is_none());
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (
                flat(&y),
                flat(grads.get(vw.as_tensor()).unwrap()),
                flat(grads.get(vb.as_tensor()).unwrap()),
            )
        };
        let parallel = run();
        assert_eq!(parallel, cpu::sequentially(run));
        assert_eq!(parallel, run());
    }

    /// The moments measured with the output are those of the output, and do not depend on
    /// the thread count; with a pool none are measured.
    #[test]
    fn measured_moments_are_the_outputs() {
        let mut rng = rng(6);
        let x = random(&mut rng, &[7, 3, 9, 6]);
        let w = random(&mut rng, &[5, 3, 3, 3]);
        let b = random(&mut rng, &[5]);
        for (stride, relu) in [(1, false), (1, true), (2, false)] {
            let o = ConvOptions {
                stride,
                padding: 1,
                relu,
                pool: None,
            };
            let run = || conv2d_measured(&x, &w, Some(&b), o).unwrap();
            let (y, m) = run();
            let m = m.expect("moments without a pool");
            assert_eq!(cpu::sequentially(run).1, Some(m.clone()));
            let y = y.transpose(0, 1).unwrap().flatten_from(1).unwrap();
            let planes = y.to_dtype(candle_core::DType::F64).unwrap();
            let mean = planes.mean(1).unwrap().to_vec1::<f64>().unwrap();
            let centred = planes
                .broadcast_sub(&planes.mean_keepdim(1).unwrap())
                .unwrap();
            let var = centred
                .sqr()
                .unwrap()
                .mean(1)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            for ch in 0..5 {
                assert!(
                    (m.mean[ch] - mean[ch]).abs() < 1e-5,
                    "stride {stride} mean {ch}"
                );
                assert!(
                    (m.var[ch] - var[ch]).abs() < 1e-5,
                    "stride {stride} var {ch}"
                );
            }
        }
        let pooled = ConvOptions {
            stride: 1,
            padding: 1,
            relu: true,
            pool: Some(Window { size: 2, stride: 2 }),
        };
        assert_eq!(conv2d_measured(&x, &w, Some(&b), pooled).unwrap().1, None);
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let mut rng = rng(1);
        let x = random(&mut rng, &[1, 2, 5, 5]);
        let w = random(&mut rng, &[3, 4, 3, 3]);
        let o = ConvOptions {
            stride: 1,
            padding: 0,
            relu: false,
            pool: None,
        };
        assert!(conv2d(&x, &w, None, o).is_err());
        let w = random(&mut rng, &[3, 2, 7, 7]);
        assert!(conv2d(&x, &w, None, o).is_err());
    }

    #[test]
    fn other_dtypes_take_candles_ops_with_the_same_results() {
        let mut rng = rng(10);
        let f64 = candle_core::DType::F64;
        let x = random(&mut rng, &[3, 2, 8, 8]);
        let w = random(&mut rng, &[4, 2, 3, 3]);
        let b = random(&mut rng, &[4]);
        let o = ConvOptions {
            stride: 1,
            padding: 1,
            relu: true,
            pool: Some(Window { size: 2, stride: 2 }),
        };
        let fast = conv2d(&x, &w, Some(&b), o).unwrap();
        let (x, w, b) = (
            x.to_dtype(f64).unwrap(),
            w.to_dtype(f64).unwrap(),
            b.to_dtype(f64).unwrap(),
        );
        let slow = conv2d(&x, &w, Some(&b), o).unwrap();
        assert_eq!(slow.dtype(), f64);
        let slow = slow.to_dtype(candle_core::DType::F32).unwrap();
        assert!(rel_diff(&fast, &slow) < 1e-5);
    }

    #[test]
    fn fused_pooling_breaks_ties_like_the_max_pool_op() {
        // Constant image regions give exactly equal convolution outputs: the fused pooling must
        // pick the same maxima (first in row-major order) as conv → ReLU → max_pool.
        let mut rng = rng(12);
        let mut v = vec![0f32; 4 * 2 * 10 * 10];
        for (i, x) in v.iter_mut().enumerate() {
            if i % 100 >= 60 {
                *x = ((i * 37) % 11) as f32 - 5.0;
            }
        }
        let vx = Var::from_tensor(
            &Tensor::from_vec(v, (4, 2, 10, 10), &candle_core::Device::Cpu).unwrap(),
        )
        .unwrap();
        let vw = var(&mut rng, &[3, 2, 3, 3]);
        let vb = var(&mut rng, &[3]);
        for win in [Window { size: 2, stride: 2 }, Window { size: 3, stride: 2 }] {
            let o = ConvOptions {
                stride: 1,
                padding: 1,
                relu: true,
                pool: Some(win),
            };
            check_against(
                &[&vx, &vw, &vb],
                &mut rng,
                |t| conv2d(&t[0], &t[1], Some(&t[2]), o),
                |t| {
                    let y = conv2d(&t[0], &t[1], Some(&t[2]), ConvOptions { pool: None, ..o })?;
                    max_pool::max_pool2d(&y, win)
                },
                &format!("ties {win:?}"),
            );
        }
    }
}
