//! Dropout and drop-path (stochastic depth), drawn from the job's seeded stream in training only.

use candle_core::{Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Zeroes each element with probability `rate` and scales the rest by `1 / (1 - rate)`.
pub fn dropout(x: &Tensor, rate: f64, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    if rate <= 0.0 {
        return Ok(x.clone());
    }
    mask_mul(x, x.shape().dims().to_vec(), rate, rng)
}

/// Drops a residual branch for whole samples with probability `rate` (the branch's output is
/// zero for those samples and scaled by `1 / (1 - rate)` for the others).
pub fn drop_path(x: &Tensor, rate: f64, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    if rate <= 0.0 {
        return Ok(x.clone());
    }
    let mut dims = vec![1; x.rank()];
    dims[0] = x.dim(0)?;
    mask_mul(x, dims, rate, rng)
}

fn mask_mul(x: &Tensor, dims: Vec<usize>, rate: f64, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let keep = 1.0 - rate;
    let scale = (1.0 / keep) as f32;
    let n: usize = dims.iter().product();
    let mask: Vec<f32> = (0..n)
        .map(|_| {
            if rng.random::<f64>() < keep {
                scale
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, dims, x.device())?.to_dtype(x.dtype())?;
    x.broadcast_mul(&mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn drop_path_zeroes_whole_samples_and_keeps_the_mean() {
        let x = Tensor::ones((400, 3, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let mut rng = crate::train::rng::stream(3, "drop", 0);
        let y = drop_path(&x, 0.25, &mut rng).unwrap();
        let per_sample = y.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
        let mut kept = 0;
        for s in &per_sample {
            assert!(
                s.iter().all(|v| *v == s[0]),
                "a sample is dropped or kept whole"
            );
            kept += usize::from(s[0] > 0.0);
        }
        assert!((260..340).contains(&kept), "kept {kept} of 400");
        assert!((per_sample[0][0] == 0.0) || (per_sample[0][0] - 4.0 / 3.0).abs() < 1e-6);
        assert_eq!(
            dropout(&x, 0.0, &mut rng)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            4800.0
        );
    }
}
