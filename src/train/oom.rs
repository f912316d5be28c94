//! Out of GPU memory: recognising candle's CUDA allocation failures among its errors, and, for
//! tests on machines without a GPU, `ASSAY_FAULT_OOM_ABOVE_BATCH=N` standing in for one when a
//! training batch holds more than N images.

/// What candle's CUDA backend says when an allocation fails (the driver's, and cuBLAS's).
const MARKERS: &[&str] = &[
    "CUDA_ERROR_OUT_OF_MEMORY",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "out of memory",
];

/// Whether `text` (an error and its causes) is an allocation failure on the GPU.
pub fn is_out_of_memory(text: &str) -> bool {
    MARKERS.iter().any(|m| text.contains(m))
}

/// The variable that injects an out-of-memory failure.
pub const FAULT: &str = "ASSAY_FAULT_OOM_ABOVE_BATCH";

/// The error the driver gives, when `ASSAY_FAULT_OOM_ABOVE_BATCH` is below `batch`.
pub fn injected(batch: usize) -> Option<candle_core::Error> {
    let limit: usize = std::env::var(FAULT).ok()?.parse().ok()?;
    (batch > limit).then(|| {
        candle_core::Error::Msg(format!(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\") (injected by {FAULT}={limit})"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_allocation_failures_are_recognised_and_others_are_not() {
        assert!(is_out_of_memory(
            "tensor computation failed: DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")"
        ));
        assert!(is_out_of_memory("cublas: CUBLAS_STATUS_ALLOC_FAILED"));
        assert!(!is_out_of_memory("shape mismatch in matmul"));
        assert!(!is_out_of_memory("training diverged: the loss became NaN"));
    }
}
