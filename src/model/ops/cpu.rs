//! Shared plumbing of the CPU ops: f32 slices out of candle storages, work split into a fixed
//! number of chunks (so reductions never depend on thread scheduling), and per-thread scratch
//! buffers reused from step to step instead of fresh allocations.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::ops::Range;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, Layout, Result, Storage, Tensor};
use rayon::prelude::*;

/// Upper bound on the chunks a batch is split into for work with partial sums (weight and bias
/// gradients). Fixed, so the summation order is the same whatever the thread count.
pub(crate) const MAX_CHUNKS: usize = 8;

/// The f32 data a contiguous layout covers in a CPU storage.
pub(crate) fn storage_f32<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        other => bail!("{op}: expects f32 tensors, got {:?}", other.dtype()),
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        bail!("{op}: expects contiguous tensors")
    };
    match data.get(start..end) {
        Some(d) => Ok(d),
        None => bail!("{op}: layout out of the storage's bounds"),
    }
}

/// The f32 data of a tensor's storage (which must be on the CPU and laid out contiguously).
pub(crate) fn tensor_f32<'a>(s: &'a Storage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    match s {
        Storage::Cpu(c) => storage_f32(c, l, op),
        _ => bail!("{op}: the CPU path got a tensor on another device"),
    }
}

/// Whether the CPU fast path applies to all of `tensors`: f32 on the CPU, and the fast kernels
/// in force (see [`super::kernels`]).
pub(crate) fn fast_path(tensors: &[&Tensor]) -> bool {
    super::kernels::current() == super::kernels::Kernels::Fast
        && tensors
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// `0..n` cut into at most `max` ranges of nearly equal length, in order.
pub(crate) fn ranges(n: usize, max: usize) -> Vec<Range<usize>> {
    let parts = n.min(max).max(1);
    (0..parts)
        .map(|i| (i * n / parts)..((i + 1) * n / parts))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Cuts `data` into consecutive pieces of `per_item × range.len()` elements, one per range.
pub(crate) fn split_mut<'a, T>(
    mut data: &'a mut [T],
    ranges: &[Range<usize>],
    per_item: usize,
) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let (head, tail) = std::mem::take(&mut data).split_at_mut(r.len() * per_item);
        out.push(head);
        data = tail;
    }
    out
}

/// Runs `f` on every task, on rayon's pool when it has more than one thread; results keep the
/// tasks' order, so what is done with them afterwards does not depend on scheduling.
///
/// Rayon rather than candle's own CPU pool: candle's workers and its calling thread spin
/// while they wait for each other, which collapses throughput whenever another process holds
/// one of the cores; rayon's idle workers yield and sleep.
pub(crate) fn run<T, R, F>(tasks: Vec<T>, f: F) -> Result<Vec<R>>
where
    T: Send,
    R: Send,
    F: Fn(T) -> Result<R> + Sync + Send,
{
    if tasks.len() <= 1 || rayon::current_num_threads() <= 1 || SEQUENTIAL.with(Cell::get) {
        tasks.into_iter().map(f).collect()
    } else {
        tasks.into_par_iter().map(f).collect()
    }
}

thread_local! {
    static SEQUENTIAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every [`run`] on this thread sequential (to check that results do not
/// depend on the thread count).
#[cfg(test)]
pub(crate) fn sequentially<R>(f: impl FnOnce() -> R) -> R {
    SEQUENTIAL.with(|s| s.set(true));
    let r = f();
    SEQUENTIAL.with(|s| s.set(false));
    r
}

/// `dst = src` (of the same length) for short rows, in moves of 8 values inlined into the
/// caller (a call to `memcpy` per image row costs more than the copy); a ragged end is one more
/// move of the last 8, overlapping the one before.
#[inline(always)]
pub(crate) fn copy_short(dst: &mut [f32], src: &[f32]) {
    debug_assert_eq!(dst.len(), src.len());
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and only initialised values are
    // written through the view.
    let dst = unsafe { &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]) };
    map_short(dst, [src], |[v]| v);
}

/// `dst[i] = f([inputs[0][i], ...])` (every value written) for short rows of the same length, 8
/// values at a time (which the compiler keeps in vector registers), a ragged end computed again
/// over the last 8.
#[inline(always)]
pub(crate) fn map_short<const N: usize>(
    dst: &mut [MaybeUninit<f32>],
    inputs: [&[f32]; N],
    f: impl Fn([f32; N]) -> f32,
) {
    let len = dst.len();
    debug_assert!(inputs.iter().all(|i| i.len() >= len));
    let eight = |dst: &mut [MaybeUninit<f32>], at: usize| {
        let out: &mut [MaybeUninit<f32>; 8] = (&mut dst[at..at + 8]).try_into().expect("8 values");
        let ins: [&[f32; 8]; N] =
            std::array::from_fn(|k| (&inputs[k][at..at + 8]).try_into().expect("8 values"));
        for (l, o) in out.iter_mut().enumerate() {
            o.write(f(std::array::from_fn(|k| ins[k][l])));
        }
    };
    if len < 8 {
        for (l, o) in dst.iter_mut().enumerate() {
            o.write(f(std::array::from_fn(|k| inputs[k][l])));
        }
        return;
    }
    for at in (0..len - 7).step_by(8) {
        eight(dst, at);
    }
    if !len.is_multiple_of(8) {
        eight(dst, len - 8);
    }
}

/// Defines a function twice: as written, and compiled for AVX2 + FMA, picking the second at
/// run time when the CPU has those features. The crate is built for baseline x86-64, where
/// the ops' element loops (compares, blends, transposes) vectorise poorly.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn generic($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU supports every feature `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// `len` uninitialised values, to be written in full and then made a `Vec<T>` by
/// [`assume_written`]: a large vector of zeros first would cost a pass over memory that the
/// writes then repeat.
pub(crate) fn uninit_vec<T>(len: usize) -> Vec<MaybeUninit<T>> {
    let mut v = Vec::with_capacity(len);
    v.resize_with(len, MaybeUninit::uninit);
    v
}

/// The values of `v`, all of them written.
///
/// # Safety
/// Every value of `v` has been initialised.
pub(crate) unsafe fn assume_written<T>(v: Vec<MaybeUninit<T>>) -> Vec<T> {
    let mut v = std::mem::ManuallyDrop::new(v);
    let (ptr, len, cap) = (v.as_mut_ptr(), v.len(), v.capacity());
    // SAFETY: `MaybeUninit<T>` has the size and alignment of `T`, the allocation is handed over
    // whole, and the caller promises every value is initialised.
    unsafe { Vec::from_raw_parts(ptr.cast::<T>(), len, cap) }
}

/// `s` as the values it holds.
///
/// # Safety
/// Every value of `s` has been initialised.
pub(crate) unsafe fn assume_init_mut(s: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and the caller promises every value
    // is initialised.
    unsafe { &mut *(s as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// `s` set to zeros, as values.
pub(crate) fn zeroed(s: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    s.fill(MaybeUninit::new(0.0));
    // SAFETY: every value was just written.
    unsafe { assume_init_mut(s) }
}

/// A vector of `len` values that `fill` writes into uninitialised memory (see [`uninit_vec`]).
///
/// # Safety
/// When `fill` returns `Ok`, it has written every one of the `len` values.
pub(crate) unsafe fn written_vec<T>(
    len: usize,
    fill: impl FnOnce(&mut [MaybeUninit<T>]) -> Result<()>,
) -> Result<Vec<T>> {
    let mut v = uninit_vec(len);
    fill(&mut v)?;
    // SAFETY: the caller promises that `fill` initialised every value.
    Ok(unsafe { assume_written(v) })
}

thread_local! {
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// This thread's scratch buffer with at least `len` elements (contents unspecified). Hand it
/// back with [`put_scratch`] so the next call reuses the memory.
pub(crate) fn take_scratch(len: usize) -> Vec<f32> {
    let mut v = SCRATCH.with(|s| s.take());
    if v.len() < len {
        v.resize(len, 0.0);
    }
    v
}

pub(crate) fn put_scratch(v: Vec<f32>) {
    SCRATCH.with(|s| {
        let old = s.take();
        // Keep the larger buffer if a nested call left one behind.
        s.set(if old.len() > v.len() { old } else { v });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_in_order() {
        for n in 0..40 {
            for max in 1..10 {
                let r = ranges(n, max);
                assert!(r.len() <= max);
                let flat: Vec<usize> = r.iter().flat_map(|r| r.clone()).collect();
                assert_eq!(flat, (0..n).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn split_mut_follows_ranges() {
        let mut v: Vec<u32> = (0..10).collect();
        let r = ranges(5, 3);
        let parts = split_mut(&mut v, &r, 2);
        assert_eq!(parts.iter().map(|p| p.len()).sum::<usize>(), 10);
        assert_eq!(parts[0][0], 0);
    }
}
