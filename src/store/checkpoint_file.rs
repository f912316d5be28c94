//! `checkpoint.safetensors`: a job's full training state after an epoch — the model, the
//! optimizer state, the best epoch's weights, the weight average and the schedule's state (when
//! the spec has them), each tensor under its group's prefix, and the
//! progress record as the JSON bytes of a `meta.json` tensor — with the previous checkpoint kept
//! beside it until the next one is durable, so that a resumed job always has one to start from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::atomic::write_atomic_with;
use super::JobDir;
use crate::report::events::EpochRecord;
use crate::train::trainer::Checkpoint;

/// Version of the checkpoint's progress record.
pub const CHECKPOINT_VERSION: u32 = 1;

/// The name of the tensor holding the progress record.
const META: &str = "meta.json";

/// The prefixes of the tensor groups: model weights, optimizer state, best epoch's weights,
/// weight average, schedule state.
const MODEL: &str = "model.";
const OPTIMIZER: &str = "optim.";
const BEST: &str = "best.";
const EMA: &str = "ema.";
const SCHEDULE: &str = "schedule.";

/// The progress record: where training stands after `epoch`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub version: u32,
    pub epoch: usize,
    pub history: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub best_score: Option<f64>,
}

/// Why a checkpoint could not be written, read or removed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot move {} to {}", from.display(), to.display())]
    Rotate {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the checkpoint {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the progress record of the checkpoint {}", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: DamagedRecord,
    },
    #[error("cannot read the checkpoint {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: candle_core::Error,
    },
    #[error("{} has no progress record", path.display())]
    NoProgressRecord { path: PathBuf },
    #[error("{} is damaged", path.display())]
    Damaged {
        path: PathBuf,
        #[source]
        source: DamagedRecord,
    },
    #[error("cannot remove {}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What is wrong with a progress record: bytes that are not a tensor's, or JSON that is not one.
#[derive(Debug, thiserror::Error)]
pub enum DamagedRecord {
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// `error` with its causes, `: `-separated (as `{:#}` shows an `anyhow` chain).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Writes `checkpoint` as the job's last one; the last one so far becomes the previous one first.
pub fn save(dir: &JobDir, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let meta = CheckpointMeta {
        version: CHECKPOINT_VERSION,
        epoch: checkpoint.epoch,
        history: checkpoint.history.clone(),
        best_epoch: checkpoint.best_epoch,
        best_score: checkpoint.best_score,
    };
    let path = dir.checkpoint();
    let write_error = |source: std::io::Error| CheckpointError::Write {
        path: path.clone(),
        source,
    };
    let encode_error = |source: DamagedRecord| CheckpointError::Encode {
        path: path.clone(),
        source,
    };
    let meta = serde_json::to_vec(&meta).map_err(|e| encode_error(e.into()))?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let groups = [
        (MODEL, &checkpoint.model),
        (OPTIMIZER, &checkpoint.optimizer),
        (BEST, &checkpoint.best_model),
        (EMA, &checkpoint.ema),
        (SCHEDULE, &checkpoint.schedule),
    ];
    for (prefix, list) in groups {
        for (name, t) in list.iter() {
            tensors.insert(format!("{prefix}{name}"), t.clone());
        }
    }
    let meta_len = meta.len();
    let meta =
        Tensor::from_vec(meta, meta_len, &Device::Cpu).map_err(|e| encode_error(e.into()))?;
    tensors.insert(META.into(), meta);
    // The last checkpoint stays as the previous one until the new one is durable.
    if path.exists() {
        let previous = dir.previous_checkpoint();
        std::fs::rename(&path, &previous).map_err(|source| CheckpointError::Rotate {
            from: path.clone(),
            to: previous.clone(),
            source,
        })?;
    }
    write_atomic_with(&path, |tmp| {
        candle_core::safetensors::save(&tensors, tmp).map_err(std::io::Error::other)
    })
    .map_err(write_error)
}

/// Reads the checkpoint at `path`, its tensors on `device`.
pub fn read(path: &Path, device: &Device) -> Result<Checkpoint, CheckpointError> {
    let tensors =
        candle_core::safetensors::load(path, device).map_err(|source| CheckpointError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let meta_tensor = tensors
        .get(META)
        .ok_or_else(|| CheckpointError::NoProgressRecord {
            path: path.to_path_buf(),
        })?;
    let damaged = |source: DamagedRecord| CheckpointError::Damaged {
        path: path.to_path_buf(),
        source,
    };
    let bytes = meta_tensor.to_vec1::<u8>().map_err(|e| damaged(e.into()))?;
    let meta: CheckpointMeta = serde_json::from_slice(&bytes).map_err(|e| damaged(e.into()))?;
    let take = |prefix: &str| -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(prefix).map(|n| (n.to_string(), t.clone())))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    Ok(Checkpoint {
        epoch: meta.epoch,
        history: meta.history,
        best_epoch: meta.best_epoch,
        best_score: meta.best_score,
        model: take(MODEL),
        optimizer: take(OPTIMIZER),
        best_model: take(BEST),
        ema: take(EMA),
        schedule: take(SCHEDULE),
    })
}

/// The job's last readable checkpoint, if it has one: the last, else the previous one, else none
/// (the job starts over), with a warning for each that could not be read.
pub fn load_latest(dir: &JobDir, device: &Device) -> (Option<Checkpoint>, Vec<String>) {
    let mut warnings = Vec::new();
    let candidates = [dir.checkpoint(), dir.previous_checkpoint()];
    for (i, path) in candidates.iter().enumerate() {
        if !path.exists() {
            continue;
        }
        match read(path, device) {
            Ok(c) => return (Some(c), warnings),
            Err(e) => {
                let next = if i == 0 && candidates[1].exists() {
                    format!(
                        "resuming from the previous one, {}",
                        candidates[1].display()
                    )
                } else {
                    "the job starts again from epoch 0".to_string()
                };
                warnings.push(format!("{}; {next}", with_causes(&e)));
            }
        }
    }
    (None, warnings)
}

/// Removes the job's checkpoints (its training is over).
pub fn remove(dir: &JobDir) -> Result<(), CheckpointError> {
    remove_paths([dir.checkpoint(), dir.previous_checkpoint()])
}

/// Removes the previous checkpoint only: a finished job keeps its last one, from which it
/// continues when a later spec asks for more epochs.
pub fn remove_previous(dir: &JobDir) -> Result<(), CheckpointError> {
    remove_paths([dir.previous_checkpoint()])
}

fn remove_paths<const N: usize>(paths: [PathBuf; N]) -> Result<(), CheckpointError> {
    for path in paths {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(CheckpointError::Remove { path, source }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(values: &[f32]) -> Tensor {
        Tensor::from_slice(values, values.len(), &Device::Cpu).unwrap()
    }

    #[test]
    fn saves_and_reads_back_keeping_the_previous_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = JobDir {
            root: tmp.path().to_path_buf(),
        };
        let mut plateau = crate::train::plateau::Plateau::new(0.1, false);
        plateau.bad_epochs = 2;
        let checkpoint = |epoch: usize| Checkpoint {
            epoch,
            history: Vec::new(),
            best_epoch: epoch,
            best_score: Some(0.5),
            model: vec![("w".into(), tensor(&[1.0, 2.0]))],
            optimizer: vec![("m.w".into(), tensor(&[0.1, 0.2]))],
            best_model: vec![("w".into(), tensor(&[3.0, 4.0]))],
            ema: vec![("w".into(), tensor(&[5.0, 6.0]))],
            schedule: plateau.state(),
        };
        save(&dir, &checkpoint(1)).unwrap();
        save(&dir, &checkpoint(2)).unwrap();
        let last = read(&dir.checkpoint(), &Device::Cpu).unwrap();
        assert_eq!((last.epoch, last.best_score), (2, Some(0.5)));
        assert_eq!(last.model[0].1.to_vec1::<f32>().unwrap(), vec![1.0, 2.0]);
        assert_eq!(last.optimizer[0].0, "m.w");
        assert_eq!(last.ema[0].1.to_vec1::<f32>().unwrap(), vec![5.0, 6.0]);
        assert_eq!(
            crate::train::plateau::Plateau::from_state(&last.schedule).unwrap(),
            plateau
        );
        assert_eq!(
            last.best_model[0].1.to_vec1::<f32>().unwrap(),
            vec![3.0, 4.0]
        );
        assert_eq!(
            read(&dir.previous_checkpoint(), &Device::Cpu)
                .unwrap()
                .epoch,
            1
        );

        std::fs::write(dir.checkpoint(), b"torn").unwrap();
        let (resumed, warnings) = load_latest(&dir, &Device::Cpu);
        assert_eq!(resumed.map(|c| c.epoch), Some(1));
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with(&format!(
                "cannot read the checkpoint {}: ",
                dir.checkpoint().display()
            )) && warnings[0].ends_with(&format!(
                "; resuming from the previous one, {}",
                dir.previous_checkpoint().display()
            )),
            "{}",
            warnings[0]
        );
        remove(&dir).unwrap();
        assert_eq!(load_latest(&dir, &Device::Cpu).0.map(|c| c.epoch), None);
    }
}
