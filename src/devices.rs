//! Where jobs run: `cpu` or CUDA GPUs by ordinal, read from `--devices` / `[run] devices`,
//! checked against what this build and this machine have before anything runs, and opened as
//! candle devices by the workers.

use std::fmt;

/// The variable that stands in for CUDA devices on a machine without them: `ASSAY_FAKE_GPUS=2`
/// makes `cuda:0` and `cuda:1` exist for the scheduler, and their jobs train on the CPU (to
/// test placement, not CUDA).
pub const FAKE_GPUS: &str = "ASSAY_FAKE_GPUS";

/// The devices asked for, before they are checked against the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceRequest {
    Cpu,
    /// These GPU ordinals, in order.
    Cuda(Vec<usize>),
    /// Every GPU of the machine.
    CudaAll,
}

/// The device one job runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobDevice {
    Cpu,
    Cuda(usize),
}

impl fmt::Display for JobDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobDevice::Cpu => write!(f, "cpu"),
            JobDevice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DevicesError {
    #[error("\"{0}\" is not a device list: use `cpu`, `cuda:0,cuda:1` or `cuda:all`")]
    Syntax(String),
    #[error("cuda:{0} is listed twice")]
    Twice(usize),
    #[error(
        "{0} asks for a CUDA GPU, but this assay was built without CUDA: rebuild it with \
         `cargo build --release --features cuda`"
    )]
    NotBuilt(String),
    #[error("cuda:{asked} is not on this machine: it has {count} CUDA device(s)")]
    Missing { asked: usize, count: usize },
    #[error("no CUDA device can be used on this machine: {0}")]
    NoDevice(String),
}

impl DeviceRequest {
    /// `cpu`, `cuda:all`, or a comma-separated list of `cuda:N` (`cuda` alone is `cuda:0`).
    pub fn parse(text: &str) -> Result<Self, DevicesError> {
        let text = text.trim();
        match text {
            "cpu" => return Ok(DeviceRequest::Cpu),
            "cuda:all" => return Ok(DeviceRequest::CudaAll),
            _ => {}
        }
        let mut ordinals = Vec::new();
        for part in text.split(',').map(str::trim) {
            let ordinal = match part {
                "cuda" => 0,
                _ => part
                    .strip_prefix("cuda:")
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| DevicesError::Syntax(text.to_string()))?,
            };
            if ordinals.contains(&ordinal) {
                return Err(DevicesError::Twice(ordinal));
            }
            ordinals.push(ordinal);
        }
        Ok(DeviceRequest::Cuda(ordinals))
    }

    pub fn is_cuda(&self) -> bool {
        !matches!(self, DeviceRequest::Cpu)
    }

    /// The request as written back (`cpu`, `cuda:all`, `cuda:0,cuda:1`).
    pub fn text(&self) -> String {
        match self {
            DeviceRequest::Cpu => "cpu".into(),
            DeviceRequest::CudaAll => "cuda:all".into(),
            DeviceRequest::Cuda(v) => v
                .iter()
                .map(|i| format!("cuda:{i}"))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The devices jobs are placed on, given how many CUDA devices the machine has (`Err` when
    /// CUDA cannot be used at all: not built in, or no driver).
    pub fn resolve(
        &self,
        cuda_devices: Result<usize, DevicesError>,
    ) -> Result<Vec<JobDevice>, DevicesError> {
        let ordinals = match self {
            DeviceRequest::Cpu => return Ok(vec![JobDevice::Cpu]),
            DeviceRequest::CudaAll => {
                let count = cuda_devices?;
                if count == 0 {
                    return Err(DevicesError::NoDevice("it has none".into()));
                }
                (0..count).collect()
            }
            DeviceRequest::Cuda(v) => {
                let count = cuda_devices?;
                if let Some(&asked) = v.iter().find(|&&i| i >= count) {
                    return Err(DevicesError::Missing { asked, count });
                }
                v.clone()
            }
        };
        Ok(ordinals.into_iter().map(JobDevice::Cuda).collect())
    }
}

impl JobDevice {
    /// `cpu` or `cuda:N`.
    pub fn parse(text: &str) -> Result<Self, DevicesError> {
        match DeviceRequest::parse(text)? {
            DeviceRequest::Cpu => Ok(JobDevice::Cpu),
            DeviceRequest::Cuda(v) if v.len() == 1 => Ok(JobDevice::Cuda(v[0])),
            _ => Err(DevicesError::Syntax(text.to_string())),
        }
    }
}

/// The number of CUDA devices stood in for by `ASSAY_FAKE_GPUS`, if it is set.
pub fn fake_gpus() -> Option<usize> {
    std::env::var(FAKE_GPUS).ok()?.trim().parse().ok()
}

/// How many CUDA devices this process can use (`ASSAY_FAKE_GPUS` when set).
pub fn cuda_device_count(asked: &DeviceRequest) -> Result<usize, DevicesError> {
    if let Some(n) = fake_gpus() {
        return Ok(n);
    }
    driver_device_count(asked)
}

#[cfg(feature = "cuda")]
fn driver_device_count(_asked: &DeviceRequest) -> Result<usize, DevicesError> {
    use candle_core::cuda_backend::cudarc::driver::CudaContext;
    match CudaContext::device_count() {
        Ok(n) => Ok(n.max(0) as usize),
        Err(e) => Err(DevicesError::NoDevice(format!("the CUDA driver says {e}"))),
    }
}

#[cfg(not(feature = "cuda"))]
fn driver_device_count(asked: &DeviceRequest) -> Result<usize, DevicesError> {
    Err(DevicesError::NotBuilt(asked.text()))
}

/// `device` as recorded with a job or a benchmark: `cpu`, `cuda:1`, or under `ASSAY_FAKE_GPUS`
/// `cuda:1 (simulated on the CPU: ASSAY_FAKE_GPUS)`.
pub fn describe(device: JobDevice) -> String {
    match device {
        JobDevice::Cuda(_) if fake_gpus().is_some() => {
            format!("{device} (simulated on the CPU: {FAKE_GPUS})")
        }
        d => d.to_string(),
    }
}

/// The candle device a job placed on `device` computes on. A worker sees only its own GPU
/// (`CUDA_VISIBLE_DEVICES` names it), which is therefore ordinal 0 inside the process; with
/// `visible_only = false` (`bench`) the ordinal is the machine's. Under `ASSAY_FAKE_GPUS`,
/// the CPU.
pub fn open(device: JobDevice, visible_only: bool) -> anyhow::Result<candle_core::Device> {
    match device {
        JobDevice::Cpu => Ok(candle_core::Device::Cpu),
        JobDevice::Cuda(_) if fake_gpus().is_some() => Ok(candle_core::Device::Cpu),
        JobDevice::Cuda(i) => {
            if !cfg!(feature = "cuda") {
                return Err(DevicesError::NotBuilt(device.to_string()).into());
            }
            let ordinal = if visible_only { 0 } else { i };
            candle_core::Device::new_cuda(ordinal)
                .map_err(|e| anyhow::anyhow!("cannot open {device}: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists_parse_and_write_back() {
        for text in [
            "cpu",
            "cuda:all",
            "cuda:0",
            "cuda:0,cuda:1",
            "cuda:3,cuda:1",
        ] {
            assert_eq!(DeviceRequest::parse(text).unwrap().text(), text);
        }
        assert_eq!(
            DeviceRequest::parse(" cuda, cuda:2 ").unwrap(),
            DeviceRequest::Cuda(vec![0, 2])
        );
        for bad in ["gpu", "cuda:", "cuda:x", "cpu,cuda:0", "", "cuda:-1"] {
            assert!(
                matches!(DeviceRequest::parse(bad), Err(DevicesError::Syntax(_))),
                "{bad}"
            );
        }
        assert_eq!(
            DeviceRequest::parse("cuda:1,cuda:1"),
            Err(DevicesError::Twice(1))
        );
        assert_eq!(JobDevice::parse("cuda:2").unwrap(), JobDevice::Cuda(2));
        assert_eq!(JobDevice::parse("cpu").unwrap().to_string(), "cpu");
        assert!(JobDevice::parse("cuda:all").is_err());
    }

    #[test]
    fn requests_are_checked_against_the_machine() {
        let req = |t| DeviceRequest::parse(t).unwrap();
        assert_eq!(
            req("cpu").resolve(Err(DevicesError::NotBuilt("x".into()))),
            Ok(vec![JobDevice::Cpu])
        );
        assert_eq!(
            req("cuda:all").resolve(Ok(2)),
            Ok(vec![JobDevice::Cuda(0), JobDevice::Cuda(1)])
        );
        assert_eq!(
            req("cuda:0,cuda:2").resolve(Ok(2)),
            Err(DevicesError::Missing { asked: 2, count: 2 })
        );
        assert!(matches!(
            req("cuda:all").resolve(Ok(0)),
            Err(DevicesError::NoDevice(_))
        ));
        let not_built = DevicesError::NotBuilt("cuda:0".into());
        assert_eq!(
            req("cuda:0").resolve(Err(not_built.clone())),
            Err(not_built)
        );
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn without_the_cuda_feature_a_gpu_is_a_clear_error() {
        let e = driver_device_count(&DeviceRequest::Cuda(vec![1])).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("cuda:1") && text.contains("--features cuda"),
            "{text}"
        );
    }
}
