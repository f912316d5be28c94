//! Batch norm over the channels of `n × c` or `n × c × h × w` f32 tensors as one candle custom
//! op on the CPU: per-channel mean and variance from one pass of sums about a shift near the
//! mean (each plane summed in f32 vector lanes over spans of 4,096 values, the spans added in
//! f64, in a fixed order) or the [`Moments`] the convolution producing the batch measured, then
//! the normalisation image by image; its backward is one pass of
//! sums and one of the affine map, the fused clamp's gradient applied on the fly. The
//! device-generic twin made of candle ops is `layers::norm::batch_norm_reference`.

use std::mem::MaybeUninit;
use std::sync::Mutex;

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu;

const NAME: &str = "batch-norm";

/// Which statistics normalise the batch.
#[derive(Clone, Debug)]
pub enum Statistics {
    /// The batch's own (training), taken by the op or, when given, already measured by the op
    /// that produced the batch; the op records them for the running averages.
    Batch(Option<Moments>),
    /// Given per-channel mean and (biased) variance (evaluation).
    Running { mean: Vec<f32>, var: Vec<f32> },
}

/// Per-channel mean and biased variance of a batch, measured by the op that produced it (a
/// convolution, image by image while its output is in cache), so that batch norm need not read
/// the batch once more for them.
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
}

impl Moments {
    /// From the [`plane_moments`] of every image's planes (`n × c`, image-major) of `hw`
    /// values each, combined in image order (the pairwise update of Chan, Golub and LeVeque):
    /// the same at any thread count.
    pub(crate) fn combine(planes: &[(f64, f64)], c: usize, hw: usize) -> Self {
        let (mut mean, mut m2) = (vec![0f64; c], vec![0f64; c]);
        let (h, mut count) = (hw as f64, 0f64);
        for image in planes.chunks_exact(c.max(1)).filter(|_| hw > 0) {
            let total = count + h;
            for (ch, &(mi, qi)) in image.iter().enumerate() {
                let delta = mi - mean[ch];
                mean[ch] += delta * h / total;
                m2[ch] += qi + delta * delta * count * h / total;
            }
            count = total;
        }
        let var = m2.iter().map(|&q| q / count.max(1.0)).collect();
        Moments { mean, var }
    }
}

/// The mean of a plane and the sum of its squared deviations from it: the plane sums about its
/// f32 mean (a first pass), so that little cancels.
pub(crate) fn plane_moments(xs: &[f32]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let centre = (shifted_sums(xs, 0.0).0 / n) as f32;
    let (s, q) = shifted_sums(xs, centre);
    (centre as f64 + s / n, (q - s * s / n).max(0.0))
}

/// The per-channel mean and biased variance of the batch a training forward saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchStatistics {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    /// Values per channel (batch × height × width).
    pub count: usize,
}

/// The activation the op applies to its result (PyTorch's gradient convention: it passes
/// where the output is strictly inside the range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clamp {
    /// `max(y, 0)`.
    Relu,
    /// `min(max(y, 0), 6)`.
    Relu6,
}

impl Clamp {
    fn bounds(clamp: Option<Clamp>) -> (f32, f32) {
        match clamp {
            None => (f32::NEG_INFINITY, f32::INFINITY),
            Some(Clamp::Relu) => (0.0, f32::INFINITY),
            Some(Clamp::Relu6) => (0.0, 6.0),
        }
    }
}

/// With `residual`, the op's arguments are `(x, [gamma; beta], residual)` and it computes
/// `clamp(bn(x) + residual)`; without, `(x, gamma, beta)` and `clamp(bn(x))`.
struct BatchNormOp {
    eps: f64,
    stats: Statistics,
    residual: bool,
    clamp: Option<Clamp>,
    /// Per channel: the mean and 1/√(var + eps) used by the forward, and its affine map, for
    /// the backward.
    used: Mutex<(Vec<f64>, Vec<f64>, Vec<Affine>)>,
    batch: std::sync::Arc<Mutex<BatchStatistics>>,
}

/// `(n, c, hw)` of a rank-2 or rank-4 layout.
fn dims(shape: &Shape) -> Result<(usize, usize, usize)> {
    match shape.dims() {
        [n, c] => Ok((*n, *c, 1)),
        [n, c, h, w] => Ok((*n, *c, h * w)),
        other => bail!("{NAME}: expects n×c or n×c×h×w, got {other:?}"),
    }
}

/// Per channel, the two sums `plane` returns for each of its planes (`(channel, values, offset
/// of the values in the batch)`), added in f64. The batch is read in memory order, image by
/// image (a channel's planes lie far apart, and small ones defeat the prefetcher), split into
/// a fixed number of ranges of images whose partial sums are added in order, so that the
/// result does not depend on the thread count.
fn channel_sums(
    data: &[f32],
    (n, c, hw): (usize, usize, usize),
    plane: impl Fn(usize, &[f32], usize) -> (f64, f64) + Sync,
) -> Result<Vec<(f64, f64)>> {
    let ranges = cpu::ranges(n, cpu::MAX_CHUNKS);
    let parts = cpu::run(ranges, |images| {
        let mut sums = vec![(0f64, 0f64); c];
        for img in images {
            for (ch, sum) in sums.iter_mut().enumerate() {
                let start = (img * c + ch) * hw;
                let (a, b) = plane(ch, &data[start..start + hw], start);
                sum.0 += a;
                sum.1 += b;
            }
        }
        Ok(sums)
    })?;
    let mut total = vec![(0f64, 0f64); c];
    for part in parts {
        for (t, p) in total.iter_mut().zip(part) {
            t.0 += p.0;
            t.1 += p.1;
        }
    }
    Ok(total)
}

/// Lanes of the plane sums: independent f32 accumulators, kept in vector registers.
const LANES: usize = 16;
/// Values per lane added in f32 before the lanes are added into f64 (bounds the rounding
/// error of a lane to that of a 256-term sum).
const SPAN: usize = 256 * LANES;

/// The f32 lanes of one span as f64.
fn lanes_total(lanes: &[f32; LANES]) -> f64 {
    lanes.iter().map(|&v| v as f64).sum()
}

/// `(Σ (x − shift), Σ (x − shift)²)` over a plane, in f64 from f32 lane sums over spans of
/// [`SPAN`] values (with AVX2, [`avx2::shifted_sums`], the same values).
fn shifted_sums(xs: &[f32], shift: f32) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { avx2::shifted_sums(xs, shift) };
    }
    shifted_sums_lanes(xs, shift)
}

/// [`shifted_sums`] written for any CPU: lane `l` of a span adds its values `l`, `l + LANES`, ….
fn shifted_sums_lanes(xs: &[f32], shift: f32) -> (f64, f64) {
    let (mut sum, mut squares) = (0f64, 0f64);
    for span in xs.chunks(SPAN) {
        let (mut s, mut q) = ([0f32; LANES], [0f32; LANES]);
        let mut it = span.chunks_exact(LANES);
        for x in &mut it {
            for ((s, q), &v) in s.iter_mut().zip(q.iter_mut()).zip(x) {
                let e = v - shift;
                *s += e;
                *q += e * e;
            }
        }
        shifted_tail(&mut s, &mut q, it.remainder(), shift);
        sum += lanes_total(&s);
        squares += lanes_total(&q);
    }
    (sum, squares)
}

/// The values after a span's last whole group of [`LANES`] into the first lanes of
/// [`shifted_sums`]' accumulators (shared by both versions, so their tails agree).
fn shifted_tail(s: &mut [f32; LANES], q: &mut [f32; LANES], tail: &[f32], shift: f32) {
    for ((s, q), &x) in s.iter_mut().zip(q.iter_mut()).zip(tail) {
        let e = x - shift;
        *s += e;
        *q += e * e;
    }
}

/// The values after a span's last whole group of [`LANES`] into the first lanes of
/// [`sum_and_centred_dot`]'s accumulators (shared by both versions).
fn dot_tail(s: &mut [f32; LANES], p: &mut [f32; LANES], dy: &[f32], xs: &[f32], centre: f32) {
    for (((s, p), &d), &x) in s.iter_mut().zip(p.iter_mut()).zip(dy).zip(xs) {
        *s += d;
        *p += d * (x - centre);
    }
}

/// `(Σ dy, Σ dy · (x − centre))` over a plane, in f64 from f32 lane sums over spans of
/// [`SPAN`] values (with AVX2, [`avx2::sum_and_centred_dot`], the same values).
fn sum_and_centred_dot(dy: &[f32], xs: &[f32], centre: f32) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { avx2::sum_and_centred_dot(dy, xs, centre) };
    }
    sum_and_centred_dot_lanes(dy, xs, centre)
}

/// [`sum_and_centred_dot`] written for any CPU, lane by lane as [`shifted_sums_lanes`].
fn sum_and_centred_dot_lanes(dy: &[f32], xs: &[f32], centre: f32) -> (f64, f64) {
    let (mut sum, mut dot) = (0f64, 0f64);
    for (dy, xs) in dy.chunks(SPAN).zip(xs.chunks(SPAN)) {
        let (mut s, mut p) = ([0f32; LANES], [0f32; LANES]);
        let (mut di, mut xi) = (dy.chunks_exact(LANES), xs.chunks_exact(LANES));
        for (d, x) in (&mut di).zip(&mut xi) {
            for (((s, p), &d), &x) in s.iter_mut().zip(p.iter_mut()).zip(d).zip(x) {
                *s += d;
                *p += d * (x - centre);
            }
        }
        dot_tail(&mut s, &mut p, di.remainder(), xi.remainder(), centre);
        sum += lanes_total(&s);
        dot += lanes_total(&p);
    }
    (sum, dot)
}

/// The plane sums in AVX2 registers, as the compiler does not vectorise their lane loops: the
/// [`LANES`] lanes are two registers of eight, each operation the lane loop's, in its order
/// (no fused multiply-add), so the sums equal the lane loops' exactly.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{dot_tail, lanes_total, shifted_tail, LANES, SPAN};

    /// The two registers' lanes, in lane order.
    #[target_feature(enable = "avx2")]
    fn lanes(lo: __m256, hi: __m256) -> [f32; LANES] {
        let mut out = [0f32; LANES];
        let (a, b) = out.split_at_mut(8);
        // SAFETY: each half holds 8 f32 values.
        unsafe {
            _mm256_storeu_ps(a.as_mut_ptr(), lo);
            _mm256_storeu_ps(b.as_mut_ptr(), hi);
        }
        out
    }

    /// Values `at..at + 8` of `xs`, which has at least `at + 8`.
    #[target_feature(enable = "avx2")]
    fn load(xs: &[f32], at: usize) -> __m256 {
        let eight = &xs[at..at + 8];
        // SAFETY: `eight` holds 8 f32 values (unaligned loads are allowed).
        unsafe { _mm256_loadu_ps(eight.as_ptr()) }
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn shifted_sums(xs: &[f32], shift: f32) -> (f64, f64) {
        let sh = _mm256_set1_ps(shift);
        let (mut sum, mut squares) = (0f64, 0f64);
        for span in xs.chunks(SPAN) {
            let full = span.len() / LANES * LANES;
            let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let (mut q0, mut q1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for at in (0..full).step_by(LANES) {
                let e0 = _mm256_sub_ps(load(span, at), sh);
                let e1 = _mm256_sub_ps(load(span, at + 8), sh);
                s0 = _mm256_add_ps(s0, e0);
                s1 = _mm256_add_ps(s1, e1);
                q0 = _mm256_add_ps(q0, _mm256_mul_ps(e0, e0));
                q1 = _mm256_add_ps(q1, _mm256_mul_ps(e1, e1));
            }
            let (mut s, mut q) = (lanes(s0, s1), lanes(q0, q1));
            shifted_tail(&mut s, &mut q, &span[full..], shift);
            sum += lanes_total(&s);
            squares += lanes_total(&q);
        }
        (sum, squares)
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn sum_and_centred_dot(dy: &[f32], xs: &[f32], centre: f32) -> (f64, f64) {
        let c = _mm256_set1_ps(centre);
        let (mut sum, mut dot) = (0f64, 0f64);
        let len = dy.len().min(xs.len());
        for start in (0..len).step_by(SPAN) {
            let end = (start + SPAN).min(len);
            let (dy, xs) = (&dy[start..end], &xs[start..end]);
            let full = dy.len() / LANES * LANES;
            let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let (mut p0, mut p1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for at in (0..full).step_by(LANES) {
                let (d0, d1) = (load(dy, at), load(dy, at + 8));
                let e0 = _mm256_sub_ps(load(xs, at), c);
                let e1 = _mm256_sub_ps(load(xs, at + 8), c);
                s0 = _mm256_add_ps(s0, d0);
                s1 = _mm256_add_ps(s1, d1);
                p0 = _mm256_add_ps(p0, _mm256_mul_ps(d0, e0));
                p1 = _mm256_add_ps(p1, _mm256_mul_ps(d1, e1));
            }
            let (mut s, mut p) = (lanes(s0, s1), lanes(p0, p1));
            dot_tail(&mut s, &mut p, &dy[full..], &xs[full..], centre);
            sum += lanes_total(&s);
            dot += lanes_total(&p);
        }
        (sum, dot)
    }
}

cpu::multiversion! {
/// [`sum_and_centred_dot`] of `dy` passed through the clamp whose input was `a · (y − c) + b`
/// (see [`clamp_gradient`]; `gate` = `(a, c, b)` and the clamp's bounds), without writing the
/// clamped gradient out.
fn gated_sum_and_centred_dot(
    dy: &[f32],
    y: &[f32],
    xs: &[f32],
    centre: f32,
    gate: (Affine, (f32, f32)),
) -> (f64, f64) {
    let ((a, c, b), (lo, hi)) = gate;
    let open = |y: f32| {
        let t = a * (y - c) + b;
        t > lo && t < hi
    };
    let (mut sum, mut dot) = (0f64, 0f64);
    for ((dy, y), xs) in dy.chunks(SPAN).zip(y.chunks(SPAN)).zip(xs.chunks(SPAN)) {
        let (mut s, mut p) = ([0f32; LANES], [0f32; LANES]);
        let (mut di, mut yi, mut xi) = (
            dy.chunks_exact(LANES),
            y.chunks_exact(LANES),
            xs.chunks_exact(LANES),
        );
        for ((d, y), x) in (&mut di).zip(&mut yi).zip(&mut xi) {
            let d: &[f32; LANES] = d.try_into().unwrap_or(&[0.0; LANES]);
            let y: &[f32; LANES] = y.try_into().unwrap_or(&[0.0; LANES]);
            let x: &[f32; LANES] = x.try_into().unwrap_or(&[0.0; LANES]);
            for l in 0..LANES {
                let g = if open(y[l]) { d[l] } else { 0.0 };
                s[l] += g;
                p[l] += g * (x[l] - centre);
            }
        }
        let tail = di.remainder().iter().zip(yi.remainder()).zip(xi.remainder());
        for (l, ((&d, &y), &x)) in tail.enumerate() {
            let g = if open(y) { d } else { 0.0 };
            s[l] += g;
            p[l] += g * (x - centre);
        }
        sum += lanes_total(&s);
        dot += lanes_total(&p);
    }
    (sum, dot)
}
}

/// Per channel `(a, centre, b)` of `a · (x − centre) + b`.
type Affine = (f32, f32, f32);

/// A second term `t · (z − centre_z)`: the values `z` and, per channel, `(t, centre_z)`.
type Extra<'a> = (&'a [f32], &'a [(f32, f32)]);

/// Where a clamp was open: values `y`, per channel `(a, c, b)` and the clamp's bounds. Where
/// `a · (y − c) + b` (the clamp's input) is not strictly inside them, the value the gate
/// applies to counts as 0 (the gradient through the clamp). `y` is the op's input with the
/// forward's affine map, or its output with the identity `(1, 0, 0)`: either gives the clamp's
/// input exactly as the forward computed it.
type Gate<'a> = (&'a [f32], &'a [Affine], (f32, f32));

/// Image by image, `out[i] = a · (x[i] − centre) + b` with the channel's [`Affine`], plus
/// `t · (z[i] − centre_z)` when `extra` gives `z` and each channel's `(t, centre_z)`, then
/// clamped to `bounds`; with `gate`, `x[i]` counts as 0 where the gate is closed.
/// Subtracting the centre first keeps values near the mean exact (no cancellation).
fn per_channel_affine(
    x: &[f32],
    (n, c, hw): (usize, usize, usize),
    affine: &[Affine],
    extra: Option<Extra>,
    gate: Option<Gate>,
    bounds: (f32, f32),
) -> Result<Vec<f32>> {
    let fill = |out: &mut [MaybeUninit<f32>]| {
        let ranges = cpu::ranges(n, 4 * cpu::MAX_CHUNKS);
        let outs = cpu::split_mut(out, &ranges, c * hw);
        let tasks: Vec<_> = ranges.into_iter().zip(outs).collect();
        cpu::run(tasks, |(r, out)| {
            for (i, img) in r.enumerate() {
                for ch in 0..c {
                    let at = (img * c + ch) * hw;
                    let o = &mut out[(i * c + ch) * hw..(i * c + ch + 1) * hw];
                    let extra = extra.map(|(z, t)| (&z[at..at + hw], t[ch]));
                    let xs = &x[at..at + hw];
                    match gate {
                        None => affine_plane(o, xs, affine[ch], extra, bounds),
                        Some((y, ga, gb)) => {
                            let gate = (&y[at..at + hw], ga[ch], gb);
                            gated_affine_plane(o, xs, gate, affine[ch], extra)
                        }
                    }
                }
            }
            Ok(())
        })?;
        Ok(())
    };
    // SAFETY: the ranges cover all `n` images, and every plane of each is written in full.
    unsafe { cpu::written_vec(n * c * hw, fill) }
}

cpu::multiversion! {
fn affine_plane(
    o: &mut [MaybeUninit<f32>],
    xs: &[f32],
    affine: Affine,
    extra: Option<(&[f32], (f32, f32))>,
    bounds: (f32, f32),
) {
    let (a, cx, b) = affine;
    let (lo, hi) = bounds;
    match extra {
        None => {
            for (o, &v) in o.iter_mut().zip(xs) {
                o.write((a * (v - cx) + b).max(lo).min(hi));
            }
        }
        Some((zs, (t, cz))) => {
            for ((o, &v), &z) in o.iter_mut().zip(xs).zip(zs) {
                o.write((a * (v - cx) + b + t * (z - cz)).max(lo).min(hi));
            }
        }
    }
}
}

cpu::multiversion! {
/// [`affine_plane`] of `xs` passed through `gate`, unclamped.
fn gated_affine_plane(
    o: &mut [MaybeUninit<f32>],
    xs: &[f32],
    gate: (&[f32], Affine, (f32, f32)),
    affine: Affine,
    extra: Option<(&[f32], (f32, f32))>,
) {
    let (a, cx, b) = affine;
    let (ys, (ga, gc, gb), (lo, hi)) = gate;
    let open = |y: f32| {
        let t = ga * (y - gc) + gb;
        t > lo && t < hi
    };
    match extra {
        None => {
            for ((o, &v), &y) in o.iter_mut().zip(xs).zip(ys) {
                let v = if open(y) { v } else { 0.0 };
                o.write(a * (v - cx) + b);
            }
        }
        Some((zs, (t, cz))) => {
            for (((o, &v), &y), &z) in o.iter_mut().zip(xs).zip(ys).zip(zs) {
                let v = if open(y) { v } else { 0.0 };
                o.write(a * (v - cx) + b + t * (z - cz));
            }
        }
    }
}
}

cpu::multiversion! {
/// `dy` where `y` is strictly inside `(lo, hi)`, else 0: the gradient through the clamp.
fn clamp_gradient(out: &mut [MaybeUninit<f32>], dy: &[f32], y: &[f32], bounds: (f32, f32)) {
    let (lo, hi) = bounds;
    for ((o, &d), &y) in out.iter_mut().zip(dy).zip(y) {
        o.write(if y > lo && y < hi { d } else { 0.0 });
    }
}
}

/// The batch's per-channel moments in one pass of sums about a shift near each channel's mean
/// (that of its plane in the first image), so that E[(x − s)²] − E[x − s]² cancels little.
fn batch_moments(x: &[f32], d: (usize, usize, usize)) -> Result<Moments> {
    let (n, c, hw) = d;
    let shift: Vec<f32> = (0..c)
        .map(|ch| match x.get(ch * hw..(ch + 1) * hw) {
            Some(p) if n > 0 => {
                (p.iter().map(|&v| v as f64).sum::<f64>() / hw.max(1) as f64) as f32
            }
            _ => 0.0,
        })
        .collect();
    let sums = channel_sums(x, d, |ch, xs, _| shifted_sums(xs, shift[ch]))?;
    let m = (n * hw).max(1) as f64;
    let mean = (0..c).map(|ch| shift[ch] as f64 + sums[ch].0 / m).collect();
    let var = sums
        .iter()
        .map(|&(s, q)| (q / m - (s / m) * (s / m)).max(0.0))
        .collect();
    Ok(Moments { mean, var })
}

fn poisoned<T>(_: T) -> candle_core::Error {
    candle_core::Error::Msg(format!("{NAME}: a lock was poisoned"))
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu::storage_f32(xs, xl, NAME)?;
        let a2 = cpu::storage_f32(s2, l2, NAME)?;
        let a3 = cpu::storage_f32(s3, l3, NAME)?;
        let d = dims(xl.shape())?;
        let (n, c, hw) = d;
        let (gamma, beta, residual) = if self.residual {
            if a2.len() != 2 * c || l3.shape() != xl.shape() {
                bail!(
                    "{NAME}: {c} channels of shape {:?} but {} parameters and a residual of {:?}",
                    xl.shape(),
                    a2.len(),
                    l3.shape()
                )
            }
            (&a2[..c], &a2[c..], Some(a3))
        } else {
            if a2.len() != c || a3.len() != c {
                bail!(
                    "{NAME}: {c} channels but {} scales and {} shifts",
                    a2.len(),
                    a3.len()
                )
            }
            (a2, a3, None)
        };
        let count = n * hw;
        let (mean, var) = match &self.stats {
            Statistics::Batch(given) => {
                let m = match given {
                    Some(m) if m.mean.len() != c || m.var.len() != c => {
                        bail!("{NAME}: {c} channels but moments of {}", m.mean.len())
                    }
                    Some(m) => m.clone(),
                    None => batch_moments(x, d)?,
                };
                *self.batch.lock().map_err(poisoned)? = BatchStatistics {
                    mean: m.mean.clone(),
                    var: m.var.clone(),
                    count,
                };
                (m.mean, m.var)
            }
            Statistics::Running { mean, var } => (
                mean.iter().map(|&v| v as f64).collect(),
                var.iter().map(|&v| v as f64).collect(),
            ),
        };
        let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        let affine: Vec<Affine> = (0..c)
            .map(|ch| {
                (
                    (gamma[ch] as f64 * invstd[ch]) as f32,
                    mean[ch] as f32,
                    beta[ch],
                )
            })
            .collect();
        let plain = vec![(1f32, 0f32); if residual.is_some() { c } else { 0 }];
        let extra = residual.map(|r| (r, plain.as_slice()));
        let out = per_channel_affine(x, d, &affine, extra, None, Clamp::bounds(self.clamp))?;
        *self.used.lock().map_err(poisoned)? = (mean, invstd, affine);
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    #[allow(clippy::type_complexity)]
    fn bwd(
        &self,
        x: &Tensor,
        a2: &Tensor,
        a3: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = dims(x.shape())?;
        let (_, c, _) = d;
        let (mean, invstd, used_affine) = self.used.lock().map_err(poisoned)?.clone();
        let x = x.contiguous()?;
        let grad = grad.contiguous()?;
        let gamma_v = a2.to_vec1::<f32>()?;
        let (xs, xl) = x.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let xd = cpu::tensor_f32(&xs, xl, NAME)?;
        let dy_out = cpu::tensor_f32(&gs, gl, NAME)?;
        // The gradient at the sum, before the clamp (also the residual's): written out when
        // the residual needs it, else applied on the fly wherever `dy` is read.
        let (ys, yl) = res.storage_and_layout();
        let y = cpu::tensor_f32(&ys, yl, NAME)?;
        if y.len() != dy_out.len() || xd.len() != dy_out.len() {
            bail!("{NAME}: backward without a matching forward pass")
        }
        let bounds = self.clamp.map(|clamp| Clamp::bounds(Some(clamp)));
        let clamped = match bounds {
            Some(bounds) if self.residual && a3.track_op() => {
                let fill = |out: &mut [MaybeUninit<f32>]| {
                    let ranges = cpu::ranges(out.len(), 4 * cpu::MAX_CHUNKS);
                    let outs = cpu::split_mut(out, &ranges, 1);
                    let tasks: Vec<_> = ranges.into_iter().zip(outs).collect();
                    cpu::run(tasks, |(r, o)| {
                        clamp_gradient(o, &dy_out[r.clone()], &y[r], bounds);
                        Ok(())
                    })?;
                    Ok(())
                };
                // SAFETY: the ranges cover every value, each written by `clamp_gradient` (its
                // inputs have the same length).
                Some(unsafe { cpu::written_vec(dy_out.len(), fill)? })
            }
            _ => None,
        };
        let g: &[f32] = clamped.as_deref().unwrap_or(dy_out);
        // The clamp's input from the op's input where nothing was added to it (one stream
        // fewer to read: the input is read anyway), else from its output.
        let identity = vec![(1f32, 0f32, 0f32); if self.residual { c } else { 0 }];
        if used_affine.len() != c {
            bail!("{NAME}: backward without a matching forward pass")
        }
        let gate: Option<Gate> = match bounds {
            Some(bounds) if clamped.is_none() && self.residual => Some((y, &identity, bounds)),
            Some(bounds) if clamped.is_none() => Some((xd, &used_affine, bounds)),
            _ => None,
        };
        // Σ dy and Σ dy · x̂ per channel.
        let sums = channel_sums(g, d, |ch, dy, at| {
            let (xs, centre) = (&xd[at..at + dy.len()], mean[ch] as f32);
            let (s, dot) = match gate {
                None => sum_and_centred_dot(dy, xs, centre),
                Some((y, ga, b)) => {
                    let y = &y[at..at + dy.len()];
                    gated_sum_and_centred_dot(dy, y, xs, centre, (ga[ch], b))
                }
            };
            (s, dot * invstd[ch])
        })?;
        let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
        let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
        let dx = if x.track_op() {
            let k: Vec<f64> = (0..c).map(|ch| gamma_v[ch] as f64 * invstd[ch]).collect();
            let all = Clamp::bounds(None);
            let out = match self.stats {
                // dx = k · (dy − Σdy/M) − k · invstd · Σ(dy·x̂)/M · (x − μ)
                Statistics::Batch(_) => {
                    let m = (d.0 * d.2).max(1) as f64;
                    let affine: Vec<Affine> = (0..c)
                        .map(|ch| (k[ch] as f32, (sums[ch].0 / m) as f32, 0.0))
                        .collect();
                    let t: Vec<(f32, f32)> = (0..c)
                        .map(|ch| {
                            (
                                (-k[ch] * invstd[ch] * sums[ch].1 / m) as f32,
                                mean[ch] as f32,
                            )
                        })
                        .collect();
                    per_channel_affine(g, d, &affine, Some((xd, &t)), gate, all)?
                }
                Statistics::Running { .. } => {
                    let affine: Vec<Affine> = k.iter().map(|&k| (k as f32, 0.0, 0.0)).collect();
                    per_channel_affine(g, d, &affine, None, gate, all)?
                }
            };
            Some(Tensor::from_vec(out, x.shape(), x.device())?)
        } else {
            None
        };
        if self.residual {
            let params: Vec<f32> = dgamma.into_iter().chain(dbeta).collect();
            let dparams = Tensor::from_vec(params, a2.shape(), a2.device())?;
            let dresidual = match clamped {
                _ if !a3.track_op() => None,
                Some(g) => Some(Tensor::from_vec(g, a3.shape(), a3.device())?),
                None => Some(grad.clone()),
            };
            return Ok((dx, Some(dparams), dresidual));
        }
        let dgamma = Tensor::from_vec(dgamma, c, a2.device())?;
        let dbeta = Tensor::from_vec(dbeta, c, a2.device())?;
        Ok((dx, Some(dgamma), Some(dbeta)))
    }
}

/// What the op adds and applies after the normalisation: `clamp(bn(x) + residual)`.
#[derive(Clone, Copy, Default)]
pub struct Then<'a> {
    pub residual: Option<&'a Tensor>,
    pub clamp: Option<Clamp>,
}

/// Batch norm of `x` (f32 on the CPU, `n × c` or `n × c × h × w`) with scale `gamma` and shift
/// `beta`, then `then`'s residual added and its clamp applied; for [`Statistics::Batch`] also
/// the batch's statistics (for the running averages).
pub fn batch_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    stats: Statistics,
    eps: f64,
    then: Then,
) -> Result<(Tensor, Option<BatchStatistics>)> {
    let training = matches!(stats, Statistics::Batch(_));
    let batch = std::sync::Arc::new(Mutex::new(BatchStatistics::default()));
    let op = BatchNormOp {
        eps,
        stats,
        residual: then.residual.is_some(),
        clamp: then.clamp,
        used: Mutex::new((Vec::new(), Vec::new(), Vec::new())),
        batch: batch.clone(),
    };
    let x = x.contiguous()?;
    let y = match then.residual {
        Some(r) => {
            let params = Tensor::cat(&[gamma, beta], 0)?;
            x.apply_op3(&params, &r.contiguous()?, op)?
        }
        None => x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?,
    };
    let stats = if training {
        Some(batch.lock().map_err(poisoned)?.clone())
    } else {
        None
    };
    Ok((y, stats))
}

/// Whether [`batch_norm`] applies: f32 tensors on the CPU, `n × c` or `n × c × h × w`, and a
/// residual (if any) of the same shape.
pub fn applies(x: &Tensor, gamma: &Tensor, beta: &Tensor, then: &Then) -> bool {
    cpu::fast_path(&[x, gamma, beta])
        && matches!(x.rank(), 2 | 4)
        && then
            .residual
            .is_none_or(|r| cpu::fast_path(&[r]) && r.shape() == x.shape())
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::model::ops::testutil::rng;

    #[test]
    fn plane_sums_match_f64_sums_over_many_spans_and_a_ragged_tail() {
        let mut r = rng(7);
        for len in [1, 15, 17, SPAN - 1, SPAN, 3 * SPAN + 5] {
            let xs: Vec<f32> = (0..len).map(|_| 3.0 + r.random::<f32>()).collect();
            let dy: Vec<f32> = (0..len).map(|_| r.random::<f32>() - 0.5).collect();
            let centre = 3.5f32;
            let sum: f64 = xs.iter().map(|&x| x as f64 - 3.5).sum();
            let sq: f64 = xs.iter().map(|&x| (x as f64 - 3.5).powi(2)).sum();
            let dsum: f64 = dy.iter().map(|&d| d as f64).sum();
            let dot: f64 = dy
                .iter()
                .zip(&xs)
                .map(|(&d, &x)| d as f64 * (x as f64 - 3.5))
                .sum();
            let close = |got: f64, want: f64, scale: f64| (got - want).abs() <= 1e-6 * scale;
            let scale = len as f64;
            let (s, q) = shifted_sums(&xs, centre);
            assert!(close(s, sum, scale) && close(q, sq, scale), "{len} sums");
            let (s, d) = sum_and_centred_dot(&dy, &xs, centre);
            assert!(close(s, dsum, scale) && close(d, dot, scale), "{len} dot");
            // The vector registers' sums are the lane loops', exactly.
            assert_eq!(shifted_sums(&xs, centre), shifted_sums_lanes(&xs, centre));
            let dots = sum_and_centred_dot_lanes(&dy, &xs, centre);
            assert_eq!(sum_and_centred_dot(&dy, &xs, centre), dots, "{len}");
            // Through a ReLU6 whose output was `y`: the gradient passes where 0 < y < 6; whose
            // input was 2 · (y − 1) + 0.5: where that is.
            let y: Vec<f32> = (0..len).map(|_| r.random::<f32>() * 8.0 - 1.0).collect();
            for gate in [(1.0, 0.0, 0.0), (2.0, 1.0, 0.5)] {
                let (a, c, b) = gate;
                let open = |y: f32| {
                    let t = a * (y - c) + b;
                    t > 0.0 && t < 6.0
                };
                let gated = |i: usize| if open(y[i]) { dy[i] as f64 } else { 0.0 };
                let gsum: f64 = (0..len).map(gated).sum();
                let gdot: f64 = (0..len).map(|i| gated(i) * (xs[i] as f64 - 3.5)).sum();
                let (s, d) = gated_sum_and_centred_dot(&dy, &y, &xs, centre, (gate, (0.0, 6.0)));
                assert!(
                    close(s, gsum, scale) && close(d, gdot, scale),
                    "{len} gated through {gate:?}"
                );
            }
        }
    }

    /// Plane moments combined image by image equal the f64 mean and biased variance of each
    /// channel, far from zero and for planes of one value; no planes give zeros.
    #[test]
    fn combined_plane_moments_match_f64() {
        let mut r = rng(12);
        for &(n, c, hw, offset) in &[(5, 3, 37, 0.0), (2, 2, 5000, 1e3), (3, 1, 1, -4.0)] {
            let x: Vec<f32> = (0..n * c * hw)
                .map(|_| offset + r.random::<f32>() * 2.0 - 1.0)
                .collect();
            let planes: Vec<(f64, f64)> = x.chunks_exact(hw).map(plane_moments).collect();
            let m = Moments::combine(&planes, c, hw);
            for ch in 0..c {
                let vals: Vec<f64> = (0..n)
                    .flat_map(|i| x[(i * c + ch) * hw..][..hw].iter().map(|&v| v as f64))
                    .collect();
                let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
                let tol = 1e-6 * (1.0 + mean.abs());
                assert!((m.mean[ch] - mean).abs() < tol, "{n}×{c}×{hw} mean {ch}");
                assert!(
                    (m.var[ch] - var).abs() < 1e-5 * (1.0 + var),
                    "{n}×{c}×{hw} var {ch}"
                );
            }
        }
        let empty = Moments::combine(&[], 2, 4);
        assert_eq!(empty.mean, vec![0.0; 2]);
        assert_eq!(empty.var, vec![0.0; 2]);
    }

    /// Batch statistics taken about a shift stay exact when the values sit far from zero.
    #[test]
    fn statistics_of_values_far_from_zero_match_f64() -> Result<()> {
        let mut r = rng(11);
        let (n, c, h, w) = (5, 3, 7, 9);
        let len = n * c * h * w;
        let xs: Vec<f32> = (0..len)
            .map(|i| 1000.0 + (i % 7) as f32 + r.random::<f32>())
            .collect();
        let x = Tensor::from_vec(xs.clone(), (n, c, h, w), &candle_core::Device::Cpu)?;
        let gamma = Tensor::from_vec(vec![1.5f32, -0.5, 2.0], c, x.device())?;
        let beta = Tensor::from_vec(vec![0.1f32, 0.2, -0.3], c, x.device())?;
        let then = Then::default();
        let (_, stats) = batch_norm(&x, &gamma, &beta, Statistics::Batch(None), 1e-5, then)?;
        let stats = stats.expect("training statistics");
        let m = (n * h * w) as f64;
        for ch in 0..c {
            let vals: Vec<f64> = (0..n)
                .flat_map(|i| {
                    xs[(i * c + ch) * h * w..][..h * w]
                        .iter()
                        .map(|&v| v as f64)
                })
                .collect();
            let mean = vals.iter().sum::<f64>() / m;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
            assert!((stats.mean[ch] - mean).abs() < 1e-9 * mean, "mean of {ch}");
            assert!((stats.var[ch] - var).abs() < 1e-5 * var, "variance of {ch}");
        }
        Ok(())
    }
}
