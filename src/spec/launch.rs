//! `[run]` and `[slurm]`: where an experiment's jobs run (this machine's worker processes or a
//! Slurm cluster) and what each asks the cluster for. Kept out of job ids and the plan's
//! fingerprint: where a job runs does not change what it computes.

use std::path::PathBuf;

use super::reader::{self as r, At, Diags, TableReader};
use super::validate::{opt, section};
use crate::devices::DeviceRequest;

/// Where the jobs of `assay run` run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// Worker processes on this machine.
    #[default]
    Local,
    /// One Slurm job array per submission, on the cluster's shared filesystem.
    Slurm,
}

impl Backend {
    pub const NAMES: &'static [&'static str] = &["local", "slurm"];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Slurm => "slurm",
        }
    }
}

/// What each Slurm array task asks for, and how the array is submitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmSpec {
    /// `--partition`; the cluster's default partition when absent.
    pub partition: Option<String>,
    /// `--time`, in Slurm's forms (`MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`).
    pub time: Option<String>,
    /// `--cpus-per-task`: also the job's compute threads.
    pub cpus_per_task: usize,
    /// `--mem` (per task), e.g. `8G`; the cluster's default when absent.
    pub mem: Option<String>,
    /// `--gres=gpu:N` when above 0.
    pub gpus_per_job: usize,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// At most this many tasks of one array run at once (`--array=…%K`).
    pub max_running: Option<usize>,
    /// More `sbatch` arguments, passed as written (`["--constraint=a100"]`).
    pub sbatch_args: Vec<String>,
    /// The `assay` the tasks run; this one when absent. It must be at the same path on the
    /// cluster's nodes.
    pub executable: Option<PathBuf>,
}

impl Default for SlurmSpec {
    fn default() -> Self {
        SlurmSpec {
            partition: None,
            time: None,
            cpus_per_task: 1,
            mem: None,
            gpus_per_job: 0,
            account: None,
            qos: None,
            max_running: None,
            sbatch_args: Vec::new(),
            executable: None,
        }
    }
}

/// `[run]` and `[slurm]` together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchSpec {
    pub backend: Backend,
    /// `[run] devices`: where local jobs run (`cpu`, `cuda:0,cuda:1`, `cuda:all`).
    pub devices: DeviceRequest,
    /// `[run] per_device`: jobs sharing one GPU at once.
    pub per_device: usize,
    pub slurm: SlurmSpec,
}

impl Default for LaunchSpec {
    fn default() -> Self {
        LaunchSpec {
            backend: Backend::Local,
            devices: DeviceRequest::Cpu,
            per_device: 1,
            slurm: SlurmSpec::default(),
        }
    }
}

/// Reads `[run]` and `[slurm]` from the top-level table.
pub(super) fn read(top: &mut TableReader<'_>, d: &mut Diags) -> Option<LaunchSpec> {
    let run = section(top, "run", d, false).and_then(|mut t| {
        let backend = opt(&mut t, "backend", d, Backend::Local, |a, d| {
            r::choice(a, Backend::NAMES, d).map(|s| match s.as_str() {
                "slurm" => Backend::Slurm,
                _ => Backend::Local,
            })
        });
        let devices = opt(&mut t, "devices", d, DeviceRequest::Cpu, |a, d| {
            let text = r::string(a, d)?;
            DeviceRequest::parse(&text)
                .map_err(|e| d.error(a.node.span, a.path, e.to_string(), None))
                .ok()
        });
        let per_device = opt(&mut t, "per_device", d, 1, |a, d| {
            r::integer(a, 1, 64, d).map(|v| v as usize)
        });
        t.finish(d);
        Some((backend?, devices?, per_device?))
    });
    let slurm = section(top, "slurm", d, false).and_then(|t| slurm(t, d));
    let (backend, devices, per_device) = run?;
    Some(LaunchSpec {
        backend,
        devices,
        per_device,
        slurm: slurm?,
    })
}

fn slurm(mut t: TableReader<'_>, d: &mut Diags) -> Option<SlurmSpec> {
    let partition = opt(&mut t, "partition", d, None, |a, d| word(a, d).map(Some));
    let time = opt(&mut t, "time", d, None, |a, d| time_limit(a, d).map(Some));
    let cpus_per_task = opt(&mut t, "cpus_per_task", d, 1, |a, d| {
        r::integer(a, 1, 4096, d).map(|v| v as usize)
    });
    let mem = opt(&mut t, "mem", d, None, |a, d| memory(a, d).map(Some));
    let gpus_per_job = opt(&mut t, "gpus_per_job", d, 0, |a, d| {
        r::integer(a, 0, 64, d).map(|v| v as usize)
    });
    let account = opt(&mut t, "account", d, None, |a, d| word(a, d).map(Some));
    let qos = opt(&mut t, "qos", d, None, |a, d| word(a, d).map(Some));
    let max_running = opt(&mut t, "max_running", d, None, |a, d| {
        r::integer(a, 1, 1_000_000, d).map(|v| Some(v as usize))
    });
    let sbatch_args = opt(&mut t, "sbatch_args", d, Vec::new(), sbatch_args);
    let executable = opt(&mut t, "executable", d, None, |a, d| {
        let path = PathBuf::from(word(a, d)?);
        if !path.is_absolute() {
            d.error(
                a.node.span,
                a.path,
                format!("\"{}\" is not an absolute path", path.display()),
                Some(
                    "the tasks run it on the cluster's nodes, from wherever Slurm starts them"
                        .into(),
                ),
            );
            return None;
        }
        Some(Some(path))
    });
    t.finish(d);
    Some(SlurmSpec {
        partition: partition?,
        time: time?,
        cpus_per_task: cpus_per_task?,
        mem: mem?,
        gpus_per_job: gpus_per_job?,
        account: account?,
        qos: qos?,
        max_running: max_running?,
        sbatch_args: sbatch_args?,
        executable: executable?,
    })
}

/// A non-empty string without spaces or line breaks: it goes on an `#SBATCH` line.
fn word(a: At, d: &mut Diags) -> Option<String> {
    let s = r::string(a, d)?;
    if let Err(why) = check_word(&s) {
        d.error(a.node.span, a.path, why, None);
        return None;
    }
    Some(s)
}

/// Why `s` cannot be one word of a batch script's `#SBATCH` line, if it cannot.
pub fn check_word(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "\"{}\" holds a space or a line break; it goes on one #SBATCH line as one word",
            super::diagnostic::clip(s, 60)
        ));
    }
    Ok(())
}

fn time_limit(a: At, d: &mut Diags) -> Option<String> {
    let s = r::string(a, d)?;
    if let Err(why) = check_time(&s) {
        d.error(
            a.node.span,
            a.path,
            why,
            Some("for example \"30\" (minutes), \"04:00:00\" or \"2-00:00:00\"".into()),
        );
        return None;
    }
    Some(s)
}

/// Whether `s` is a Slurm time limit: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or
/// `D-HH:MM:SS`, all numbers (or `UNLIMITED`).
pub fn check_time(s: &str) -> Result<(), String> {
    let numbers = |part: &str, most: usize| {
        let fields: Vec<&str> = part.split(':').collect();
        fields.len() <= most
            && fields
                .iter()
                .all(|f| !f.is_empty() && f.len() <= 6 && f.chars().all(|c| c.is_ascii_digit()))
    };
    let ok = s.eq_ignore_ascii_case("unlimited")
        || match s.split_once('-') {
            Some((days, rest)) => numbers(days, 1) && numbers(rest, 3),
            None => numbers(s, 3),
        };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{}\" is not a Slurm time limit",
            super::diagnostic::clip(s, 40)
        ))
    }
}

fn memory(a: At, d: &mut Diags) -> Option<String> {
    let s = r::string(a, d)?;
    if memory_bytes(&s).is_none() {
        d.error(
            a.node.span,
            a.path,
            format!(
                "\"{}\" is not an amount of memory",
                super::diagnostic::clip(&s, 40)
            ),
            Some("a whole number with K, M, G or T (megabytes without one), e.g. \"8G\"".into()),
        );
        return None;
    }
    Some(s)
}

/// Bytes in a Slurm memory amount (`8G`, `512M`, `4096`: megabytes without a unit).
pub fn memory_bytes(s: &str) -> Option<u64> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "M"),
    };
    let n: u64 = digits.parse().ok()?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "K" | "KB" => 10,
        "M" | "MB" => 20,
        "G" | "GB" => 30,
        "T" | "TB" => 40,
        _ => return None,
    };
    (n > 0).then(|| n.checked_mul(1 << shift)).flatten()
}

fn sbatch_args(a: At, d: &mut Diags) -> Option<Vec<String>> {
    let items = r::array(a, d)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = r::index(a.path, i);
        let at = At {
            node: item,
            path: &p,
        };
        match word(at, d) {
            Some(s) if s.starts_with('-') => out.push(s),
            Some(s) => {
                d.error(
                    item.span,
                    &p,
                    format!(
                        "\"{}\" is not an sbatch option",
                        super::diagnostic::clip(&s, 40)
                    ),
                    Some(
                        "write each option with its value as one word, e.g. \"--constraint=a100\""
                            .into(),
                    ),
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_time_limits_and_memory_amounts() {
        for good in [
            "30",
            "30:00",
            "04:00:00",
            "2-00",
            "2-12:00",
            "2-12:00:00",
            "UNLIMITED",
        ] {
            assert!(check_time(good).is_ok(), "{good}");
        }
        for bad in ["", "1h", "1:2:3:4", "-1", "2-", "1.5", "a:b"] {
            assert!(check_time(bad).is_err(), "{bad}");
        }
        assert_eq!(memory_bytes("8G"), Some(8 << 30));
        assert_eq!(memory_bytes("512M"), Some(512 << 20));
        assert_eq!(memory_bytes("4096"), Some(4096 << 20));
        assert_eq!(memory_bytes("2t"), Some(2 << 40));
        for bad in ["", "G", "8X", "0", "1.5G", "-1G"] {
            assert_eq!(memory_bytes(bad), None, "{bad}");
        }
    }
}
