//! The plan: a spec expanded into jobs with stable ids. Pure, no I/O.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::spec::Spec;

/// One unit of work: a resolved config and its seed.
#[derive(Clone, Debug, Serialize)]
pub struct Job {
    /// A hash of the resolved config and seed: the same job always gets the same id.
    pub id: String,
    pub seed: u64,
    #[serde(skip)]
    pub spec: Spec,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub experiment: String,
    pub jobs: Vec<Job>,
}

/// Expands a spec into its jobs (one for now: sweeps and folds add more).
pub fn expand(spec: &Spec) -> Plan {
    let job = Job {
        id: job_id(spec, spec.seed),
        seed: spec.seed,
        spec: spec.clone(),
    };
    Plan {
        experiment: spec.name.clone(),
        jobs: vec![job],
    }
}

fn job_id(spec: &Spec, seed: u64) -> String {
    let mut h = Sha256::new();
    // Serialising plain data cannot fail; an empty string would still give a stable id.
    h.update(serde_json::to_string(spec).unwrap_or_default());
    h.update(seed.to_le_bytes());
    let digest = h.finalize();
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
