//! Which implementation of the hot layers runs: the fast CPU ops, or their device-generic twins
//! made of candle ops (what a GPU runs), chosen by `ASSAY_KERNELS` for the process and
//! overridable per thread, so that tests can run one model both ways.

use std::cell::Cell;
use std::sync::OnceLock;

/// The variable that picks the kernels for a process (and the workers it starts).
pub const ENV: &str = "ASSAY_KERNELS";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// The CPU custom ops where they apply (f32 on the CPU), the generic twins elsewhere.
    Fast,
    /// Only the device-generic twins, on every device.
    Generic,
}

#[derive(Debug, thiserror::Error)]
#[error("{ENV}={0:?} is not a kernel choice: use `fast` (the default) or `generic`")]
pub struct UnknownKernels(String);

impl Kernels {
    pub fn parse(s: &str) -> Result<Self, UnknownKernels> {
        match s {
            "fast" => Ok(Self::Fast),
            "generic" => Ok(Self::Generic),
            other => Err(UnknownKernels(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Generic => "generic",
        }
    }

    /// The choice `ASSAY_KERNELS` makes: `fast` when unset or empty.
    pub fn from_env() -> Result<Self, UnknownKernels> {
        match std::env::var(ENV) {
            Ok(s) if !s.is_empty() => Self::parse(&s),
            _ => Ok(Self::Fast),
        }
    }
}

static PROCESS: OnceLock<Kernels> = OnceLock::new();

thread_local! {
    static THREAD: Cell<Option<Kernels>> = const { Cell::new(None) };
}

/// The kernels in force on this thread: its override, else the process's choice (an invalid
/// `ASSAY_KERNELS` is refused at start-up by the command line, so here it means `fast`).
pub fn current() -> Kernels {
    THREAD
        .with(Cell::get)
        .unwrap_or_else(|| *PROCESS.get_or_init(|| Kernels::from_env().unwrap_or(Kernels::Fast)))
}

/// The kernels that run on `device`: off the CPU always the generic ones.
pub fn on(device: &candle_core::Device) -> Kernels {
    if device.is_cpu() {
        current()
    } else {
        Kernels::Generic
    }
}

/// Runs `f` with `kernels` in force on this thread.
pub fn with<R>(kernels: Kernels, f: impl FnOnce() -> R) -> R {
    let before = THREAD.with(|t| t.replace(Some(kernels)));
    struct Restore(Option<Kernels>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD.with(|t| t.set(self.0));
        }
    }
    let _restore = Restore(before);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for k in [Kernels::Fast, Kernels::Generic] {
            assert_eq!(Kernels::parse(k.name()).unwrap(), k);
        }
        let e = Kernels::parse("cuda").unwrap_err().to_string();
        assert!(
            e.contains("ASSAY_KERNELS=\"cuda\"") && e.contains("generic"),
            "{e}"
        );
    }

    #[test]
    fn the_override_holds_inside_and_is_undone_after() {
        let outside = current();
        with(Kernels::Generic, || {
            assert_eq!(current(), Kernels::Generic);
            with(Kernels::Fast, || assert_eq!(current(), Kernels::Fast));
            assert_eq!(current(), Kernels::Generic);
        });
        assert_eq!(current(), outside);
    }
}
