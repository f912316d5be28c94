//! The convolutions' element-wise ends on channels-first planes: the bias and fused ReLU
//! applied in place after the product, the gradient through that ReLU, and the sums per
//! plane that make the bias's gradient.

use super::{approx, cpu};

cpu::multiversion! {
/// `planes` (`c` planes) plus each plane's bias, then the ReLU when `relu` (a NaN stays).
pub(crate) fn bias_relu(planes: &mut [f32], c: usize, bias: Option<&[f32]>, relu: bool) {
    if bias.is_none() && !relu {
        return;
    }
    let plane = planes.len() / c.max(1);
    for (ch, p) in planes.chunks_exact_mut(plane.max(1)).take(c).enumerate() {
        let b = bias.map_or(0.0, |b| b[ch]);
        for v in p.iter_mut() {
            *v = activate(*v + b, relu);
        }
    }
}
}

cpu::multiversion! {
/// `gz` = the gradient `grad` (`c` planes) through the ReLU whose output was `res`; adds each
/// plane's sum of `gz` to `sums` unless that is empty.
pub(crate) fn relu_gradient(grad: &[f32], res: &[f32], c: usize, gz: &mut [f32], sums: &mut [f32]) {
    let plane = grad.len() / c.max(1);
    for (ch, ((gp, rp), zp)) in grad
        .chunks_exact(plane.max(1))
        .zip(res.chunks_exact(plane.max(1)))
        .zip(gz.chunks_exact_mut(plane.max(1)))
        .take(c)
        .enumerate()
    {
        for ((z, &g), &r) in zp.iter_mut().zip(gp).zip(rp) {
            *z = gate(g, r);
        }
        if let Some(s) = sums.get_mut(ch) {
            *s += approx::sum(zp);
        }
    }
}
}

/// Adds the sum of each of the `c` planes of `grad` to `sums`, unless that is empty.
pub(crate) fn add_plane_sums(grad: &[f32], c: usize, sums: &mut [f32]) {
    if sums.is_empty() {
        return;
    }
    let plane = grad.len() / c.max(1);
    for (s, p) in sums.iter_mut().zip(grad.chunks_exact(plane.max(1))) {
        *s += approx::sum(p);
    }
}

/// The ReLU as the forward applies it (a NaN stays).
#[inline(always)]
fn activate(t: f32, relu: bool) -> f32 {
    if relu && t < 0.0 {
        0.0
    } else {
        t
    }
}

/// The gradient `g` through a ReLU whose output was `r`.
#[inline(always)]
fn gate(g: f32, r: f32) -> f32 {
    if r > 0.0 {
        g
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::model::ops::testutil::rng;

    /// Every shape, with NaNs and signed zeros: the epilogues equal a loop that indexes each
    /// value, bit for bit, and the sums are the planes' sums.
    #[test]
    fn epilogues_equal_an_indexed_loop_bit_for_bit() {
        let mut r = rng(3);
        for &(c, plane) in &[(8, 64), (16, 48), (13, 55), (3, 14), (1, 1)] {
            let pick = |r: &mut rand_chacha::ChaCha8Rng| match r.random_range(0..10) {
                0 => f32::NAN,
                1 => -0.0,
                2 => 0.0,
                _ => r.random::<f32>() * 2.0 - 1.0,
            };
            let z: Vec<f32> = (0..c * plane).map(|_| pick(&mut r)).collect();
            let b: Vec<f32> = (0..c).map(|_| pick(&mut r)).collect();
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            for (bias, relu) in [(false, false), (true, true), (true, false), (false, true)] {
                let bias = bias.then_some(b.as_slice());
                let mut got = z.clone();
                bias_relu(&mut got, c, bias, relu);
                // (without either, the values are left as they are: -0 stays -0)
                let want: Vec<f32> = if bias.is_none() && !relu {
                    z.clone()
                } else {
                    (0..c * plane)
                        .map(|at| activate(z[at] + bias.map_or(0.0, |b| b[at / plane]), relu))
                        .collect()
                };
                assert_eq!(bits(&got), bits(&want), "{c}×{plane} {bias:?} {relu}");
            }
            let g: Vec<f32> = (0..c * plane).map(|_| pick(&mut r)).collect();
            let res: Vec<f32> = (0..c * plane).map(|_| pick(&mut r)).collect();
            let mut gz = vec![7f32; c * plane];
            let mut sums = vec![1f32; c];
            relu_gradient(&g, &res, c, &mut gz, &mut sums);
            let want: Vec<f32> = (0..c * plane).map(|at| gate(g[at], res[at])).collect();
            assert_eq!(bits(&gz), bits(&want), "gate {c}×{plane}");
            let mut plain = vec![1f32; c];
            add_plane_sums(&want, c, &mut plain);
            for ch in 0..c {
                let expected = 1.0 + approx::sum(&want[ch * plane..][..plane]);
                assert_eq!(sums[ch].to_bits(), expected.to_bits(), "sum {ch}");
                assert_eq!(plain[ch].to_bits(), expected.to_bits(), "plain sum {ch}");
            }
        }
    }
}
