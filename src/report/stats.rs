//! Statistics behind comparison reports: summaries with t confidence intervals, Student's t
//! distribution, and paired tests for scores measured on the same cross-validation folds.
//!
//! Everything here is pure arithmetic on `f64` slices: no I/O, no allocation beyond a few
//! scratch vectors, and no panics on any input. Invalid input (empty or mismatched slices,
//! NaN or infinite scores, a negative ratio) gives `None`; the distribution functions return
//! NaN for a NaN argument or a `df` that is not positive.
//!
//! # Worked example
//!
//! Two hyperparameter trials scored on the same 5 folds of a 5-fold cross-validation. With 5
//! folds each test fold is 1/5 of the data and the training part 4/5, so the test/train ratio
//! is `1/(k-1) = 1/4`:
//!
//! ```
//! use assay::report::stats::{corrected_resampled_t_test, paired_t_test, summarize};
//!
//! let best = [0.91, 0.93, 0.90, 0.94, 0.92];
//! let other = [0.89, 0.92, 0.90, 0.91, 0.90];
//!
//! let s = summarize(&best).unwrap();
//! assert!((s.mean - 0.92).abs() < 1e-12);
//! // std = 0.0158…, and the 95% interval is mean ± t(0.975, 4)·std/√5 = 0.92 ± 0.0196…
//! assert!((s.ci95_low - 0.900367).abs() < 1e-6 && (s.ci95_high - 0.939633).abs() < 1e-6);
//!
//! // Differences 0.02, 0.01, 0.00, 0.03, 0.02: mean 0.016, sample variance 0.00013.
//! let plain = paired_t_test(&best, &other).unwrap();
//! let corrected = corrected_resampled_t_test(&best, &other, 1.0 / 4.0).unwrap();
//! assert_eq!(plain.df, 4.0);
//! // The plain test calls this clearly significant (t = 3.14, p = 0.035) ...
//! assert!((plain.t - 3.137858).abs() < 1e-6 && plain.p_value < 0.05);
//! // ... but fold scores are correlated (the training sets overlap), and once the variance is
//! // inflated by (1/n + 1/4) / (1/n) = 2.25 the evidence is much weaker (t = 2.09, p = 0.10).
//! assert!((corrected.t - 2.091905).abs() < 1e-6 && corrected.p_value > 0.05);
//! ```
//!
//! # Accuracy
//!
//! The t distribution is computed from the regularized incomplete beta function: its continued
//! fraction, or for 30 or more degrees of freedom in the tails an asymptotic expansion for a
//! large first parameter (DiDonato & Morris), with `ln Γ` and `ln B` from Stirling's series.
//! Everything is carried in logarithms, and the centre (`P(|T| < t)`) and tail (`P(T > t)`)
//! probabilities are each computed without cancellation, so far tails neither underflow early
//! nor lose relative precision. Checked against 50-digit mpmath over `df` from 1e-5 to 1e300
//! and `|t|` from 1e-8 to 1e100: tail probabilities agree to better than 5e-13 relative, and
//! quantiles to about 1e-14 (1e-11 for `df` near 0.001, where they are ill-conditioned). The unit
//! tests pin the values to SciPy's.

/// Mean, sample standard deviation (n−1), and a two-sided 95% confidence interval of the mean
/// using Student's t with n−1 degrees of freedom: `mean ± t(0.975, n−1)·std/√n`.
///
/// For a single value (n = 1) the spread cannot be estimated; `std` is then 0 and the interval
/// collapses to the value itself (`ci95_low == ci95_high == mean`), which must not be read as
/// certainty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub std: f64,
    pub ci95_low: f64,
    pub ci95_high: f64,
}

/// Summarize a sample; `None` when it is empty or holds a NaN or infinite value.
///
/// Values are rescaled by a power of two internally, so that even values near `f64::MAX` give
/// finite results wherever the exact result is representable.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let m = ScaledMoments::of(values)?;
    let n = values.len();
    let sd = m.var.sqrt();
    let half = if n > 1 {
        student_t_quantile(0.975, (n - 1) as f64) * sd / (n as f64).sqrt()
    } else {
        0.0
    };
    Some(Summary {
        n,
        mean: m.unscale(m.mean),
        std: m.unscale(sd),
        ci95_low: m.unscale(m.mean - half),
        ci95_high: m.unscale(m.mean + half),
    })
}

/// Result of a paired test of `a` against `b`: `n` pairs, mean of `a[i] − b[i]`, the t
/// statistic, its degrees of freedom `n − 1`, and the two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedTest {
    pub n: usize,
    pub mean_difference: f64,
    pub t: f64,
    pub df: f64,
    pub p_value: f64,
}

/// Nadeau & Bengio's corrected resampled t-test for paired scores `a[i]`, `b[i]` measured on
/// the same folds (k folds, possibly × r repeats, in the same order in both slices).
///
/// With `d_i = a_i − b_i`, n = number of pairs, mean `d̄` and sample variance `s²`, the variance
/// of `d̄` is taken as `(1/n + n_test/n_train)·s²` instead of `s²/n`, which accounts for the
/// correlation between folds whose training sets overlap; `t = d̄ / √((1/n + ratio)·s²)` with
/// `n − 1` degrees of freedom. For k-fold cross-validation `test_train_ratio` is `1/(k−1)`
/// (also when the k folds are repeated r times: n = r·k but the ratio stays `1/(k−1)`). A ratio
/// of 0 gives the plain paired t-test.
///
/// Returns `None` when the slices differ in length, n < 2, any score is NaN or infinite, or the
/// ratio is negative, NaN or infinite.
///
/// When all differences are identical (`s² = 0`) the test degenerates: if `d̄ ≠ 0` then
/// `t = ±∞` (the sign of `d̄`) and `p = 0`; if `d̄ = 0` (the scores are equal on every fold)
/// then `t = 0` and `p = 1`. Note that differences that agree only up to rounding (say 0.1 and
/// 0.09999999999999998) have a tiny but non-zero `s²` and therefore a huge `t`; the conclusion
/// (`p ≈ 0`) is the same as for the exact case.
pub fn corrected_resampled_t_test(
    a: &[f64],
    b: &[f64],
    test_train_ratio: f64,
) -> Option<PairedTest> {
    if !(test_train_ratio.is_finite() && test_train_ratio >= 0.0) {
        return None;
    }
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return None;
    }
    // a − b can overflow for finite scores of opposite sign near f64::MAX; then take the
    // differences of the halves (exact) and account for the factor 2 in the scale.
    let mut diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mut extra = 0;
    if diffs.iter().any(|d| !d.is_finite()) {
        diffs = a.iter().zip(b).map(|(x, y)| 0.5 * x - 0.5 * y).collect();
        extra = 1;
    }
    let mut m = ScaledMoments::of(&diffs)?;
    m.exponent += extra;
    let n = diffs.len();
    let df = (n - 1) as f64;
    let (t, p_value) = if m.var == 0.0 {
        if m.mean == 0.0 {
            (0.0, 1.0)
        } else {
            (f64::INFINITY.copysign(m.mean), 0.0)
        }
    } else {
        // t is scale-invariant, so the scaled moments give it directly.
        let t = m.mean / ((1.0 / n as f64 + test_train_ratio) * m.var).sqrt();
        (t, two_sided_p(t, df))
    };
    Some(PairedTest {
        n,
        mean_difference: m.unscale(m.mean),
        t,
        df,
        p_value,
    })
}

/// Plain paired t-test (no correction for overlapping training sets), for reference and
/// comparison: [`corrected_resampled_t_test`] with a ratio of 0, `t = d̄ / (s/√n)`. Same `None`
/// cases and degenerate cases.
pub fn paired_t_test(a: &[f64], b: &[f64]) -> Option<PairedTest> {
    corrected_resampled_t_test(a, b, 0.0)
}

/// Two-sided p-value `P(|T| ≥ |t|)` for `T ~ t(df)`.
fn two_sided_p(t: f64, df: f64) -> f64 {
    if t.is_nan() {
        return f64::NAN;
    }
    (LN_2 + t_ln_tails(t.abs(), df).0).exp().min(1.0)
}

/// Mean and sample variance of values divided by `2^exponent`, the power of two just above
/// the largest magnitude, so that no intermediate overflows.
struct ScaledMoments {
    exponent: i32,
    mean: f64,
    var: f64,
}

impl ScaledMoments {
    fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let max = values.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        let exponent = if max > 0.0 { exponent_above(max) } else { 0 };
        let scaled: Vec<f64> = values.iter().map(|&v| ldexp(v, -exponent)).collect();
        let n = scaled.len() as f64;
        let mean0 = scaled.iter().sum::<f64>() / n;
        // Second pass: correct the mean by the mean residual, then the variance about it.
        let mean = mean0 + scaled.iter().map(|v| v - mean0).sum::<f64>() / n;
        let var = if scaled.len() > 1 {
            scaled.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Some(ScaledMoments {
            exponent,
            mean,
            var,
        })
    }

    fn unscale(&self, x: f64) -> f64 {
        ldexp(x, self.exponent)
    }
}

/// The smallest k with |x| < 2^k, for finite non-zero x.
fn exponent_above(x: f64) -> i32 {
    let biased = ((x.to_bits() >> 52) & 0x7ff) as i32;
    if biased == 0 {
        -1022 // subnormal
    } else {
        biased - 1023 + 1
    }
}

/// 2^k for k in the normal range (clamped to it).
fn pow2(k: i32) -> f64 {
    let k = k.clamp(-1022, 1023);
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// x · 2^k, in steps so that no factor over- or underflows.
fn ldexp(mut x: f64, mut k: i32) -> f64 {
    while k > 1000 {
        x *= pow2(1000);
        k -= 1000;
    }
    while k < -1000 {
        x *= pow2(-1000);
        k += 1000;
    }
    x * pow2(k)
}

// ---------------------------------------------------------------------------------------------
// Student's t distribution
// ---------------------------------------------------------------------------------------------

const LN_2: f64 = std::f64::consts::LN_2;
/// ln √(2π)
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
/// ln Γ(½) = ln √π
const LN_GAMMA_HALF: f64 = 0.572_364_942_924_700_1;

/// From this many degrees of freedom on, and for x = df/(df + t²) ≥ e^LN_X_LARGE, the
/// incomplete beta function is computed by an asymptotic expansion in place of the continued
/// fraction (see `ln_beta_reg_large_a_half`).
const DF_LARGE: f64 = 30.0;
const LN_X_LARGE: f64 = -0.7;

/// Student's t cumulative distribution function `P(T ≤ t)` for `df > 0` degrees of freedom
/// (`df` need not be an integer; `df = ∞` is the standard normal distribution).
///
/// Computed from `I = I_x(df/2, ½)` with `x = df/(df + t²)` (the regularized incomplete beta
/// function): `P(T > |t|) = I/2`. `I` comes from its continued fraction, or, for `df ≥ 30` in
/// the tails, from the asymptotic expansion of DiDonato & Morris for a large first parameter
/// (the continued fraction loses about `df·ε` relative there).
///
/// Returns NaN when `t` is NaN or `df` is NaN, zero or negative; `t = ±∞` gives 0 or 1.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    let (ln_tail, ln_central) = t_ln_tails(t.abs(), df);
    if t < 0.0 {
        ln_tail.exp()
    } else {
        0.5 + 0.5 * ln_central.exp()
    }
}

/// Quantile (inverse CDF) of Student's t: the `t` with `student_t_cdf(t, df) = p`, for
/// `df > 0` (including `∞`).
///
/// `p = 0` and `p = 1` give `−∞` and `+∞`; `p = ½` gives 0. NaN when `p` is NaN or outside
/// [0, 1], or `df` is NaN, zero or negative. For very small `df` an extreme `p` can have a
/// quantile beyond `f64::MAX` (for `df = 0.05`, already `p = 10⁻²⁰`); the result is then `±∞`.
///
/// Solved by Newton's method on the logarithm of the tail probability `P(T > s)` (or, for
/// `p` within ¼ of ½, of the central probability `P(|T| < s)`, which keeps full relative
/// precision near the centre) as a function of `ln s`, where it is nearly linear; each step is
/// safeguarded by bisection inside a bracket.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    // By symmetry solve for s > 0 with P(T > s) = q = min(p, 1 − p) < ½; 1 − p is exact for
    // p ≥ ½, and so is 1 − 2q for q ≥ ¼.
    let (q, sign) = if p < 0.5 { (p, -1.0) } else { (1.0 - p, 1.0) };
    let s = if q >= 0.25 {
        // ln P(|T| < s) − ln(1 − 2q), increasing in u = ln s with derivative 2s·f(s)/P(|T| < s).
        let target = (1.0 - 2.0 * q).ln();
        solve_in_log_scale(|s| {
            let (_, ln_central) = t_ln_tails(s, df);
            let slope = (LN_2 + s.ln() + t_ln_pdf(s, df) - ln_central).exp();
            (ln_central - target, slope)
        })
    } else {
        // ln q − ln P(T > s), increasing in u = ln s with derivative s·f(s)/P(T > s).
        let target = q.ln();
        solve_in_log_scale(|s| {
            let (ln_tail, _) = t_ln_tails(s, df);
            let slope = (s.ln() + t_ln_pdf(s, df) - ln_tail).exp();
            (target - ln_tail, slope)
        })
    };
    sign * s
}

/// The root s > 0 of an increasing function given as `g(s) ↦ (g, dg/d ln s)`: safeguarded
/// Newton iteration in u = ln s. Returns +∞ when g < 0 up to `f64::MAX`, and 0 when g > 0 down
/// to the smallest positive number.
fn solve_in_log_scale(g: impl Fn(f64) -> (f64, f64)) -> f64 {
    const U_MAX: f64 = 709.782_712_893_384; // ln f64::MAX
    const U_MIN: f64 = -744.4; // ln of the smallest subnormal
    let value = |u: f64| g(u.exp()).0;
    // Bracket lo < root < hi, expanding from u = 0 in doubling steps.
    let (mut lo, mut hi): (f64, f64);
    let g0 = value(0.0);
    if g0 == 0.0 {
        return 1.0;
    } else if g0 < 0.0 {
        lo = 0.0;
        let mut step = 1.0;
        loop {
            let u = (lo + step).min(U_MAX);
            if value(u) >= 0.0 {
                hi = u;
                break;
            }
            if u >= U_MAX {
                return f64::INFINITY;
            }
            lo = u;
            step *= 2.0;
        }
    } else {
        hi = 0.0;
        let mut step = 1.0;
        loop {
            let u = (hi - step).max(U_MIN);
            if value(u) <= 0.0 {
                lo = u;
                break;
            }
            if u <= U_MIN {
                return 0.0;
            }
            hi = u;
            step *= 2.0;
        }
    }
    let mut u = 0.5 * (lo + hi);
    for _ in 0..100 {
        let s = u.exp();
        let (gu, slope) = g(s);
        if gu == 0.0 {
            return s;
        }
        if gu < 0.0 {
            lo = u;
        } else {
            hi = u;
        }
        let step = -gu / slope;
        if step.is_finite() && step.abs() <= 1e-12 {
            // Converged: finish the last Newton step in s itself, which is not limited by the
            // spacing of representable u.
            return s + s * step.exp_m1();
        }
        let next = u + step;
        u = if next > lo && next < hi {
            next
        } else {
            0.5 * (lo + hi)
        };
        if hi - lo <= 2.0 * f64::EPSILON * lo.abs().max(hi.abs()) {
            break;
        }
    }
    u.exp()
}

/// ln f(s), the log density of t(df) at s ≥ 0.
fn t_ln_pdf(s: f64, df: f64) -> f64 {
    if df == f64::INFINITY {
        return -0.5 * s * s - LN_SQRT_2PI;
    }
    let (ln_x, _) = t_beta_arguments(s, df);
    // f(s) = x^((df+1)/2) / (√df · B(df/2, ½)) with x = df/(df + s²).
    0.5 * (df + 1.0) * ln_x - 0.5 * df.ln() - ln_beta(0.5 * df, 0.5)
}

/// (ln P(T > s), ln P(|T| < s)) for s ≥ 0, each with full relative precision: the first
/// serves the tails, the second the centre of the distribution.
fn t_ln_tails(s: f64, df: f64) -> (f64, f64) {
    if s == 0.0 {
        return (-LN_2, f64::NEG_INFINITY);
    }
    if s == f64::INFINITY {
        return (f64::NEG_INFINITY, 0.0);
    }
    // P(T > s) = I/2 and P(|T| < s) = 1 − I, with I = I_x(df/2, ½) and x = df/(df + s²);
    // for df = ∞, I = erfc(s/√2) = Q(½, s²/2).
    let (ln_i, ln_one_minus_i) = if df == f64::INFINITY {
        let (ln_p, ln_q) = ln_gamma_pq_half(0.5 * s * s);
        (ln_q, ln_p)
    } else {
        let (ln_x, ln_y) = t_beta_arguments(s, df);
        let a = 0.5 * df;
        // Where the continued fraction would be evaluated at x itself (rather than at y,
        // i.e. in the tails) and a is large, x is close to 1 and the fraction loses ~a·ε;
        // the expansion for large a is accurate there.
        if df >= DF_LARGE && ln_x >= LN_X_LARGE && !cf_uses_complement(a, 0.5, ln_y.exp()) {
            let ln_i = ln_beta_reg_large_a_half(a, ln_x);
            (ln_i, ln_one_minus_exp(ln_i))
        } else {
            ln_beta_reg(a, 0.5, ln_x, ln_y)
        }
    };
    (ln_i - LN_2, ln_one_minus_i)
}

/// ln(1 − eˡ) for l ≤ 0, without cancellation.
fn ln_one_minus_exp(l: f64) -> f64 {
    if l > -LN_2 {
        (-l.exp_m1()).ln()
    } else {
        (-l.exp()).ln_1p()
    }
}

/// For s > 0: (ln x, ln y) with x = df/(df + s²) and y = 1 − x = s²/(df + s²), computed
/// without overflow, underflow or cancellation.
fn t_beta_arguments(s: f64, df: f64) -> (f64, f64) {
    let z2 = s * s / df;
    if z2.is_finite() && z2 >= f64::MIN_POSITIVE {
        if z2 <= 1.0 {
            let l = z2.ln_1p();
            (-l, z2.ln() - l)
        } else {
            let w = 1.0 / z2;
            let l = w.ln_1p();
            (w.ln() - l, -l)
        }
    } else {
        let ln_z2 = 2.0 * s.ln() - df.ln();
        if ln_z2 > 0.0 {
            let l = (-ln_z2).exp().ln_1p();
            (-ln_z2 - l, -l)
        } else {
            let l = ln_z2.exp().ln_1p();
            (-l, ln_z2 - l)
        }
    }
}

/// ln I_x(a, ½) for large a, from the asymptotic expansion of DiDonato & Morris (1992,
/// ACM TOMS 18, algorithm 708, BGRAT, their eqs. 9–9.6) specialised to b = ½:
/// `I_x(a, b) = M · Σ pₙ Jₙ(b, u)` with `u = −(a + (b−1)/2)·ln x`, where the leading term is
/// the incomplete gamma function `Q(b, u)`. It needs no `1 − x` and stays accurate for any large
/// a, where the continued fraction loses about `a·ε` relative.
fn ln_beta_reg_large_a_half(a: f64, ln_x: f64) -> f64 {
    const B: f64 = 0.5;
    const TERMS: usize = 30;
    let t = a + 0.5 * (B - 1.0);
    let u = -t * ln_x;
    if u.is_nan() || u <= 0.0 {
        return 0.0; // x = 1
    }
    // h = u^b e^(−u) / Γ(b); the sum is carried divided by h.
    let ln_h = B * u.ln() - u - LN_GAMMA_HALF;
    // M = h · Γ(a+b) / (Γ(a) · t^b), and Γ(a+b)/Γ(a) = Γ(b)/B(a, b).
    let ln_prefix = ln_h + LN_GAMMA_HALF - ln_beta(a, B) - B * t.ln();
    let mut j = (ln_gamma_pq_half(u).1 - ln_h).exp();
    let mut sum = j;
    let mut p = [0.0_f64; TERMS];
    p[0] = 1.0;
    // odd_fact[m] = (2m+1)!
    let mut odd_fact = [1.0_f64; TERMS];
    for m in 1..TERMS {
        let k = (2 * m) as f64;
        odd_fact[m] = odd_fact[m - 1] * k * (k + 1.0);
    }
    let lx2 = (0.5 * ln_x) * (0.5 * ln_x);
    let mut lxp = 1.0;
    let t4 = 4.0 * t * t;
    let mut b2n = B;
    for n in 1..TERMS {
        let nf = n as f64;
        let mut pn = 0.0;
        for m in 1..n {
            pn += (m as f64 * B - nf) * p[n - m] / odd_fact[m];
        }
        p[n] = pn / nf + (B - 1.0) / odd_fact[n];
        j = (b2n * (b2n + 1.0) * j + (u + b2n + 1.0) * lxp) / t4;
        lxp *= lx2;
        b2n += 2.0;
        let r = p[n] * j;
        sum += r;
        if r.abs() <= f64::EPSILON * sum.abs() {
            break;
        }
    }
    (ln_prefix + sum.ln()).min(0.0)
}

/// (ln P(½, x), ln Q(½, x)) for x ≥ 0: the regularized lower and upper incomplete gamma
/// functions, P(½, x) = erf(√x) and Q(½, x) = erfc(√x) (Numerical Recipes `gser`/`gcf`).
fn ln_gamma_pq_half(x: f64) -> (f64, f64) {
    const A: f64 = 0.5;
    if x == 0.0 {
        return (f64::NEG_INFINITY, 0.0);
    }
    if x < A + 1.0 {
        // Series for P(a, x) = e^{−x} x^a / Γ(a+1) · Σ xⁿ / ((a+1)…(a+n)).
        let mut ap = A;
        let mut del = 1.0 / A;
        let mut sum = del;
        for _ in 0..500 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * f64::EPSILON {
                break;
            }
        }
        let ln_p = (-x + A * x.ln() - LN_GAMMA_HALF + sum.ln()).min(0.0);
        (ln_p, ln_one_minus_exp(ln_p))
    } else {
        // Continued fraction for Q(a, x) (modified Lentz).
        let mut b = x + 1.0 - A;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..500 {
            let i = i as f64;
            let an = -i * (i - A);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < f64::EPSILON {
                break;
            }
        }
        let ln_q = (-x + A * x.ln() - LN_GAMMA_HALF + h.ln()).min(0.0);
        (ln_one_minus_exp(ln_q), ln_q)
    }
}

const TINY: f64 = 1e-300;

/// (ln I_x(a, b), ln (1 − I_x(a, b))) for the regularized incomplete beta function, given
/// ln x and ln y with y = 1 − x (both computed accurately by the caller). Whichever of the two
/// is computed directly by the continued fraction (Numerical Recipes `betai`) is accurate to a
/// few ε relative, the other to a few ε absolute.
fn ln_beta_reg(a: f64, b: f64, ln_x: f64, ln_y: f64) -> (f64, f64) {
    let x = ln_x.exp();
    let y = ln_y.exp();
    // x^a y^b / B(a, b)
    let ln_front = a * ln_x + b * ln_y - ln_beta(a, b);
    if !cf_uses_complement(a, b, y) {
        let ln_i = (ln_front + beta_cf(a, b, x).ln() - a.ln()).min(0.0);
        (ln_i, ln_one_minus_exp(ln_i))
    } else {
        let ln_c = (ln_front + beta_cf(b, a, y).ln() - b.ln()).min(0.0);
        (ln_one_minus_exp(ln_c), ln_c)
    }
}

/// Whether I_x(a, b) is best computed as 1 − I_y(b, a): x ≥ (a+1)/(a+b+2), tested on y = 1 − x
/// (x may have rounded to 1).
fn cf_uses_complement(a: f64, b: f64, y: f64) -> bool {
    y <= (b + 1.0) / (a + b + 2.0)
}

/// The continued fraction of I_x(a, b) (Numerical Recipes `betacf`, modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    let qab = a + b;
    let qap = a + 1.0;
    let qam = a - 1.0;
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=1000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < f64::EPSILON {
            break;
        }
    }
    h
}

/// ln B(a, b) for a, b > 0, accurate also when one or both arguments are large (the large
/// Stirling terms are combined analytically instead of cancelling numerically).
fn ln_beta(a: f64, b: f64) -> f64 {
    let (p, q) = if a < b { (a, b) } else { (b, a) };
    if p >= 10.0 {
        let corr = stirling_corr(p) + stirling_corr(q) - stirling_corr(p + q);
        -0.5 * q.ln()
            + LN_SQRT_2PI
            + corr
            + (p - 0.5) * (p / (p + q)).ln()
            + q * (-p / (p + q)).ln_1p()
    } else if q >= 10.0 {
        let corr = stirling_corr(q) - stirling_corr(p + q);
        ln_gamma(p) + corr + p - p * (p + q).ln() + (q - 0.5) * (-p / (p + q)).ln_1p()
    } else {
        ln_gamma(p) + ln_gamma(q) - ln_gamma(p + q)
    }
}

/// ln Γ(x) for x > 0: shift to x ≥ 10, then Stirling's series.
fn ln_gamma(x: f64) -> f64 {
    let mut x = x;
    let mut prod = 1.0;
    while x < 10.0 {
        prod *= x;
        x += 1.0;
    }
    (x - 0.5) * x.ln() - x + LN_SQRT_2PI + stirling_corr(x) - prod.ln()
}

/// δ(x) = ln Γ(x) − ((x − ½) ln x − x + ln √(2π)) for x ≥ 10 (error below 1e-17 there).
fn stirling_corr(x: f64) -> f64 {
    let r = 1.0 / x;
    let r2 = r * r;
    r * (1.0 / 12.0
        + r2 * (-1.0 / 360.0
            + r2 * (1.0 / 1260.0
                + r2 * (-1.0 / 1680.0
                    + r2 * (1.0 / 1188.0 + r2 * (-691.0 / 360_360.0 + r2 * (1.0 / 156.0)))))))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values: SciPy 1.17.1 / NumPy 2.4.6, printed with repr() (full precision).

    fn assert_rel(got: f64, want: f64, tol: f64, what: &str) {
        let err = if want == 0.0 {
            got.abs()
        } else {
            ((got - want) / want).abs()
        };
        assert!(
            err <= tol,
            "{what}: got {got:e}, want {want:e} (relative error {err:e})"
        );
    }

    /// ```python
    /// import scipy.stats as st
    /// for df in [1, 2, 4.5, 9, 30, 1000]:
    ///     for p in [0.001, 0.025, 0.5, 0.975, 0.9999]:
    ///         print(f"({p!r}, {df!r}, {st.t.ppf(p, df)!r}),")
    /// ```
    const QUANTILES: &[(f64, f64, f64)] = &[
        (0.001, 1.0, -318.30883898555044),
        (0.025, 1.0, -12.706204736174705),
        (0.5, 1.0, 0.0),
        (0.975, 1.0, 12.706204736174694),
        (0.9999, 1.0, 3183.098757118502),
        (0.001, 2.0, -22.327124770119873),
        (0.025, 2.0, -4.302652729749464),
        (0.5, 2.0, 0.0),
        (0.975, 2.0, 4.302652729749462),
        (0.9999, 2.0, 70.70007107496818),
        (0.001, 4.5, -6.421242884295792),
        (0.025, 4.5, -2.658912347204404),
        (0.5, 4.5, 0.0),
        (0.975, 4.5, 2.6589123472044034),
        (0.9999, 4.5, 11.02099636861251),
        (0.001, 9.0, -4.296805662729919),
        (0.025, 9.0, -2.2621571627982053),
        (0.5, 9.0, 0.0),
        (0.975, 9.0, 2.262157162798205),
        (0.9999, 9.0, 6.010132129081531),
        (0.001, 30.0, -3.385184866829305),
        (0.025, 30.0, -2.042272456301238),
        (0.5, 30.0, 0.0),
        (0.975, 30.0, 2.0422724563012378),
        (0.9999, 30.0, 4.23398595727206),
        (0.001, 1000.0, -3.0984021639129233),
        (0.025, 1000.0, -1.9623390808264085),
        (0.5, 1000.0, 0.0),
        (0.975, 1000.0, 1.9623390808264083),
        (0.9999, 1000.0, 3.7328516045753966),
    ];

    /// ```python
    /// for df in [1, 2, 4.5, 9, 30, 1000]:
    ///     for t in [-25.0, -3.5, -1.0, 0.25, 2.0, 7.0]:
    ///         print(f"({t!r}, {df!r}, {st.t.cdf(t, df)!r}),")
    /// ```
    const CDFS: &[(f64, f64, f64)] = &[
        (-25.0, 1.0, 0.01272561134799183),
        (-3.5, 1.0, 0.08858553278290476),
        (-1.0, 1.0, 0.25000000000000006),
        (0.25, 1.0, 0.5779791303773694),
        (2.0, 1.0, 0.8524163823495667),
        (7.0, 1.0, 0.9548327646991335),
        (-25.0, 2.0, 0.000798085105705167),
        (-3.5, 2.0, 0.036413675027234665),
        (-1.0, 2.0, 0.2113248654051871),
        (0.25, 2.0, 0.5870388279778489),
        (2.0, 2.0, 0.908248290463863),
        (7.0, 2.0, 0.9900980294098034),
        (-25.0, 4.5, 2.6511241209858847e-06),
        (-3.5, 4.5, 0.010270844984692789),
        (-1.0, 4.5, 0.18400254194009424),
        (0.25, 4.5, 0.5932035084878169),
        (2.0, 4.5, 0.9458710464094375),
        (7.0, 4.5, 0.9993011417912534),
        (-25.0, 9.0, 6.294725189495184e-10),
        (-3.5, 9.0, 0.0033617578815294796),
        (-1.0, 9.0, 0.1717181980689568),
        (0.25, 9.0, 0.5958998151475485),
        (2.0, 9.0, 0.9617235881146495),
        (7.0, 9.0, 0.9999683763051813),
        (-25.0, 30.0, 6.045911190643518e-22),
        (-3.5, 30.0, 0.0007384037188221266),
        (-1.0, 30.0, 0.1626543077130151),
        (0.25, 30.0, 0.5978542954597124),
        (2.0, 30.0, 0.9726874775185085),
        (7.0, 30.0, 0.9999999556502067),
        (-25.0, 1000.0, 7.601770691660709e-108),
        (-3.5, 1000.0, 0.0002428871729839163),
        (-1.0, 1000.0, 0.15877620904233627),
        (0.25, 1000.0, 0.5986806518694199),
        (2.0, 1000.0, 0.9771148267533741),
        (7.0, 1000.0, 0.9999999999976562),
    ];

    #[test]
    fn t_quantile_matches_scipy() {
        for &(p, df, want) in QUANTILES {
            let got = student_t_quantile(p, df);
            assert_rel(got, want, 1e-12, &format!("t.ppf({p}, {df})"));
        }
    }

    #[test]
    fn t_cdf_matches_scipy() {
        for &(t, df, want) in CDFS {
            assert_rel(
                student_t_cdf(t, df),
                want,
                1e-12,
                &format!("t.cdf({t}, {df})"),
            );
        }
        // ... and at the quantiles above, where the CDF must return p.
        for &(p, df, q) in QUANTILES {
            assert_rel(
                student_t_cdf(q, df),
                p,
                1e-12,
                &format!("t.cdf(t.ppf({p}), {df})"),
            );
        }
    }

    #[test]
    fn t_quantile_inverts_cdf_across_regimes() {
        // Tiny and huge df, far tails and the centre: round trips in both directions.
        for &df in &[0.05, 0.3, 1.0, 3.0, 29.0, 31.0, 250.0, 1e5, 1e12, 1e300] {
            for &p in &[
                1e-300, 1e-20, 1e-6, 0.01, 0.2, 0.3, 0.499_999, 0.6, 0.9, 0.999_999,
            ] {
                let t = student_t_quantile(p, df);
                if t.is_infinite() {
                    // Only for tiny df, whose quantiles run past f64::MAX.
                    assert!(df < 1.0, "t.ppf({p}, {df}) = {t}");
                    let edge = student_t_cdf(f64::MAX.copysign(t), df);
                    assert!(if t < 0.0 { edge > p } else { edge < p }, "{p} {df} {edge}");
                    continue;
                }
                assert_rel(
                    student_t_cdf(t, df),
                    p,
                    1e-11,
                    &format!("cdf(ppf({p}), {df})"),
                );
            }
        }
    }

    #[test]
    fn t_distribution_edge_cases() {
        assert_eq!(student_t_cdf(0.0, 3.0), 0.5);
        assert_eq!(student_t_cdf(f64::INFINITY, 3.0), 1.0);
        assert_eq!(student_t_cdf(f64::NEG_INFINITY, 3.0), 0.0);
        assert!(student_t_cdf(f64::NAN, 3.0).is_nan());
        assert!(student_t_cdf(1.0, 0.0).is_nan());
        assert!(student_t_cdf(1.0, -2.0).is_nan());
        assert!(student_t_cdf(1.0, f64::NAN).is_nan());
        assert_eq!(student_t_quantile(0.0, 3.0), f64::NEG_INFINITY);
        assert_eq!(student_t_quantile(1.0, 3.0), f64::INFINITY);
        assert_eq!(student_t_quantile(0.5, 3.0), 0.0);
        assert!(student_t_quantile(-0.1, 3.0).is_nan());
        assert!(student_t_quantile(1.1, 3.0).is_nan());
        assert!(student_t_quantile(f64::NAN, 3.0).is_nan());
        assert!(student_t_quantile(0.3, 0.0).is_nan());
        // df = 1 is the Cauchy distribution: F(t) = ½ + atan(t)/π = atan(−1/t)/π for t < 0.
        for &t in &[-1e6, -3.0, -0.1, 0.7, 40.0] {
            let pi = std::f64::consts::PI;
            let want = if t < 0.0 {
                f64::atan(-1.0 / t) / pi
            } else {
                0.5 + f64::atan(t) / pi
            };
            assert_rel(student_t_cdf(t, 1.0), want, 1e-13, "cauchy");
        }
        // df = ∞ is the standard normal: scipy.stats.norm.cdf(-1.5), norm.ppf(0.975).
        assert_rel(
            student_t_cdf(-1.5, f64::INFINITY),
            0.06680720126885807,
            1e-13,
            "norm",
        );
        assert_rel(
            student_t_quantile(0.975, f64::INFINITY),
            1.959963984540054,
            1e-13,
            "norm",
        );
        // Very large df agrees with the normal, to rounding.
        assert_rel(
            student_t_cdf(-1.5, 1e300),
            0.06680720126885807,
            1e-12,
            "df 1e300",
        );
    }

    #[test]
    fn summarize_matches_numpy_and_scipy() {
        // x = np.array([0.812, 0.835, 0.799, 0.841, 0.826])
        // m = x.mean(); s = x.std(ddof=1); h = st.t.ppf(0.975, 4) * s / np.sqrt(5)
        // print(repr(m), repr(s), repr(m - h), repr(m + h))
        // (st.t.interval(0.95, 4, loc=m, scale=st.sem(x)) gives the same interval)
        let s = summarize(&[0.812, 0.835, 0.799, 0.841, 0.826]).unwrap();
        assert_eq!(s.n, 5);
        assert_rel(s.mean, 0.8225999999999999, 1e-14, "mean");
        assert_rel(s.std, 0.017126003620226135, 1e-12, "std");
        assert_rel(s.ci95_low, 0.8013352578716577, 1e-12, "ci95_low");
        assert_rel(s.ci95_high, 0.8438647421283421, 1e-12, "ci95_high");
    }

    #[test]
    fn summarize_degenerate_inputs() {
        assert_eq!(summarize(&[]), None);
        assert_eq!(summarize(&[0.5, f64::NAN]), None);
        assert_eq!(summarize(&[0.5, f64::INFINITY]), None);
        // One value: std 0 and the interval collapses onto it.
        let one = summarize(&[0.75]).unwrap();
        assert_eq!(
            one,
            Summary {
                n: 1,
                mean: 0.75,
                std: 0.0,
                ci95_low: 0.75,
                ci95_high: 0.75
            }
        );
        let same = summarize(&[0.3, 0.3, 0.3]).unwrap();
        assert_eq!((same.std, same.ci95_low, same.ci95_high), (0.0, 0.3, 0.3));
        // Huge values do not overflow: scale invariance by a power of two is exact.
        let base = [0.812, 0.835, 0.799, 0.841, 0.826];
        let big: Vec<f64> = base.iter().map(|v| v * 2f64.powi(1020)).collect();
        let (s, b) = (summarize(&base).unwrap(), summarize(&big).unwrap());
        assert_eq!(b.mean, s.mean * 2f64.powi(1020));
        assert_eq!(b.std, s.std * 2f64.powi(1020));
        assert!(b.ci95_high.is_finite());
        let wide = summarize(&[-f64::MAX, f64::MAX, 0.0]).unwrap();
        assert_eq!((wide.mean, wide.std), (0.0, f64::MAX));
        // The interval's half-width, 4.30·MAX/√3, exceeds f64: ±∞, but no NaN.
        assert_eq!(
            (wide.ci95_low, wide.ci95_high),
            (f64::NEG_INFINITY, f64::INFINITY)
        );
    }

    #[test]
    fn paired_t_test_matches_scipy_ttest_rel() {
        // a = np.array([0.912, 0.887, 0.905, 0.921, 0.899, 0.915, 0.893, 0.908, 0.917, 0.902])
        // b = np.array([0.905, 0.889, 0.896, 0.910, 0.901, 0.903, 0.885, 0.900, 0.911, 0.897])
        // r = st.ttest_rel(a, b); print(r.statistic, r.pvalue, r.df, (a - b).mean())
        let a = [
            0.912, 0.887, 0.905, 0.921, 0.899, 0.915, 0.893, 0.908, 0.917, 0.902,
        ];
        let b = [
            0.905, 0.889, 0.896, 0.910, 0.901, 0.903, 0.885, 0.900, 0.911, 0.897,
        ];
        let r = paired_t_test(&a, &b).unwrap();
        assert_eq!((r.n, r.df), (10, 9.0));
        assert_rel(
            r.mean_difference,
            0.006200000000000006,
            1e-12,
            "mean difference",
        );
        assert_rel(r.t, 4.082246916147168, 1e-12, "t");
        assert_rel(r.p_value, 0.002748748460015412, 1e-11, "p");
        // Swapping the arguments flips t and keeps p.
        let s = paired_t_test(&b, &a).unwrap();
        assert_eq!((s.t, s.p_value), (-r.t, r.p_value));
    }

    /// ```python
    /// def corrected(a, b, ratio):
    ///     d = np.asarray(a) - np.asarray(b); n = len(d)
    ///     t = d.mean() / np.sqrt((1 / n + ratio) * d.var(ddof=1))
    ///     return d.mean(), t, n - 1, 2 * st.t.sf(abs(t), n - 1)
    /// ```
    #[test]
    fn corrected_test_five_folds() {
        // corrected(a5, b5, 1/4) -> (0.005099999999999993, 1.8025027881511861, 4, 0.1458131613974776)
        let a5 = [0.8412, 0.8537, 0.8299, 0.8474, 0.8391];
        let b5 = [0.8320, 0.8501, 0.8312, 0.8390, 0.8335];
        let r = corrected_resampled_t_test(&a5, &b5, 1.0 / 4.0).unwrap();
        assert_eq!((r.n, r.df), (5, 4.0));
        assert_rel(
            r.mean_difference,
            0.005099999999999993,
            1e-12,
            "mean difference",
        );
        assert_rel(r.t, 1.8025027881511861, 1e-12, "t");
        assert_rel(r.p_value, 0.1458131613974776, 1e-12, "p");
        // The correction only ever weakens the evidence.
        let plain = paired_t_test(&a5, &b5).unwrap();
        assert!(plain.t > r.t && plain.p_value < r.p_value);
    }

    #[test]
    fn corrected_test_three_repeats_of_five_folds() {
        // 3 repeats × 5 folds, n = 15, ratio still 1/(k−1) = 1/4:
        // corrected(a15, b15, 1/4) -> (0.004506666666666681, 2.260070673107516, 14, 0.04028123334699158)
        // st.ttest_rel(a15, b15) -> statistic 4.925709834667806, pvalue 0.0002233247666626735
        let a15 = [
            0.8412, 0.8537, 0.8299, 0.8474, 0.8391, //
            0.8455, 0.8368, 0.8420, 0.8509, 0.8347, //
            0.8388, 0.8496, 0.8431, 0.8362, 0.8478,
        ];
        let b15 = [
            0.8320, 0.8501, 0.8312, 0.8390, 0.8335, //
            0.8421, 0.8379, 0.8350, 0.8446, 0.8301, //
            0.8395, 0.8402, 0.8387, 0.8340, 0.8412,
        ];
        let r = corrected_resampled_t_test(&a15, &b15, 1.0 / 4.0).unwrap();
        assert_eq!((r.n, r.df), (15, 14.0));
        assert_rel(
            r.mean_difference,
            0.004506666666666681,
            1e-12,
            "mean difference",
        );
        assert_rel(r.t, 2.260070673107516, 1e-12, "t");
        assert_rel(r.p_value, 0.04028123334699158, 1e-12, "p");
        let plain = paired_t_test(&a15, &b15).unwrap();
        assert_rel(plain.t, 4.925709834667806, 1e-12, "plain t");
        assert_rel(plain.p_value, 0.0002233247666626735, 1e-11, "plain p");
    }

    #[test]
    fn paired_tests_degenerate_cases() {
        let a = [0.9, 0.8, 0.7];
        // Fewer than two pairs, mismatched lengths, non-finite scores, bad ratios.
        assert_eq!(paired_t_test(&[], &[]), None);
        assert_eq!(paired_t_test(&[0.9], &[0.8]), None);
        assert_eq!(paired_t_test(&a, &[0.9, 0.8]), None);
        assert_eq!(paired_t_test(&[0.9, f64::NAN, 0.7], &a), None);
        assert_eq!(paired_t_test(&a, &[0.9, 0.8, f64::NEG_INFINITY]), None);
        assert_eq!(corrected_resampled_t_test(&a, &a, -0.25), None);
        assert_eq!(corrected_resampled_t_test(&a, &a, f64::NAN), None);
        assert_eq!(corrected_resampled_t_test(&a, &a, f64::INFINITY), None);
        // Equal on every fold: t = 0, p = 1.
        let same = corrected_resampled_t_test(&a, &a, 0.25).unwrap();
        assert_eq!(
            (same.mean_difference, same.t, same.p_value, same.df),
            (0.0, 0.0, 1.0, 2.0)
        );
        // Exactly the same non-zero difference on every fold: t = ±∞, p = 0.
        let up = paired_t_test(&[1.5, 2.5, 3.5], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(
            (up.mean_difference, up.t, up.p_value),
            (0.5, f64::INFINITY, 0.0)
        );
        let down = corrected_resampled_t_test(&[1.0, 2.0, 3.0], &[1.5, 2.5, 3.5], 0.5).unwrap();
        assert_eq!(
            (down.mean_difference, down.t, down.p_value),
            (-0.5, f64::NEG_INFINITY, 0.0)
        );
        // Two pairs is the minimum (df = 1).
        let two = paired_t_test(&[0.9, 0.7], &[0.8, 0.5]).unwrap();
        assert_eq!(two.df, 1.0);
        // d = (0.1, 0.2): t = 0.15 / (√0.005 / √2) = 3; Cauchy: p = 1 − 2·atan(3)/π.
        assert_rel(two.t, 3.0, 1e-13, "df 1 t");
        let want = 1.0 - 2.0 * f64::atan(3.0) / std::f64::consts::PI;
        assert_rel(two.p_value, want, 1e-12, "df 1 p");
        // Scores near f64::MAX of opposite sign: the differences overflow, the test does not.
        let huge = paired_t_test(&[f64::MAX, f64::MAX * 0.5], &[-f64::MAX, -f64::MAX]).unwrap();
        assert!(huge.t.is_finite() && huge.t > 0.0 && huge.p_value.is_finite());
        assert_eq!(huge.mean_difference, f64::INFINITY); // true value is above f64::MAX
    }

    #[test]
    fn worked_example_in_module_docs() {
        // best = [0.91, 0.93, 0.90, 0.94, 0.92]; other = [0.89, 0.92, 0.90, 0.91, 0.90]
        // st.ttest_rel(best, other) -> statistic 3.13785816221095, pvalue 0.03491970667453887
        // corrected(best, other, 1/4) -> t 2.0919054414739664, p 0.10460522928410165
        // summary: mean 0.92, std 0.015811388300841875, CI 0.9003675683852246 .. 0.9396324316147757
        let best = [0.91, 0.93, 0.90, 0.94, 0.92];
        let other = [0.89, 0.92, 0.90, 0.91, 0.90];
        let s = summarize(&best).unwrap();
        assert_rel(s.std, 0.015811388300841875, 1e-12, "std");
        assert_rel(s.ci95_low, 0.9003675683852246, 1e-12, "low");
        assert_rel(s.ci95_high, 0.9396324316147757, 1e-12, "high");
        let plain = paired_t_test(&best, &other).unwrap();
        assert_rel(plain.t, 3.13785816221095, 1e-12, "plain t");
        assert_rel(plain.p_value, 0.03491970667453887, 1e-12, "plain p");
        let corrected = corrected_resampled_t_test(&best, &other, 0.25).unwrap();
        assert_rel(corrected.t, 2.0919054414739664, 1e-12, "corrected t");
        assert_rel(corrected.p_value, 0.10460522928410165, 1e-12, "corrected p");
    }

    #[test]
    fn no_panics_on_odd_inputs() {
        let odd = [
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            5e-324,
            1e-300,
            1e-8,
            0.5,
            1.0,
            3.0,
            1e8,
            1e300,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -1.0,
        ];
        for &x in &odd {
            for &df in &odd {
                let c = student_t_cdf(x, df);
                assert!(
                    c.is_nan() || (0.0..=1.0).contains(&c),
                    "cdf({x}, {df}) = {c}"
                );
                let q = student_t_quantile(x, df);
                if (0.0..=1.0).contains(&x) && df > 0.0 {
                    assert!(!q.is_nan(), "quantile({x}, {df}) = NaN");
                }
            }
            let _ = summarize(&[x, 1.0, x]);
            let _ = corrected_resampled_t_test(&[x, 1.0, 0.0], &[0.5, x, x], 0.25);
        }
    }
}
