//! How a new plan relates to the one a run folder was last run with: which jobs are kept as
//! they are, which continue for more epochs, which are new and which are gone. A plan that only
//! grows (more trials, grid values or repeats, more epochs) runs without `--force`. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{portable_json, Job, Plan};

/// One earlier job that the new plan trains for more epochs, under a new id (epochs are part
/// of a job's id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continued {
    pub from: String,
    pub to: String,
    pub epochs_before: usize,
    pub epochs_after: usize,
}

/// The old plan's jobs seen from the new plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Growth {
    /// Old jobs the new plan has unchanged.
    pub kept: Vec<String>,
    pub continued: Vec<Continued>,
    /// New plan jobs that continue nothing: new sweep points, repeats, folds.
    pub new: Vec<String>,
    /// Old jobs the new plan has no place for (a changed setting, a removed value).
    pub dropped: Vec<String>,
}

impl Growth {
    /// Whether every earlier job lives on in the new plan, as it was or continued.
    pub fn only_grows(&self) -> bool {
        self.dropped.is_empty()
    }

    /// Whether the new plan is the old one.
    pub fn unchanged(&self) -> bool {
        self.continued.is_empty() && self.new.is_empty() && self.dropped.is_empty()
    }

    /// One line saying what changed, for the run's output and `plan`.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{} job(s) kept", self.kept.len())];
        if !self.continued.is_empty() {
            let epochs: BTreeSet<String> = self
                .continued
                .iter()
                .map(|c| format!("{} → {}", c.epochs_before, c.epochs_after))
                .collect();
            let epochs: Vec<String> = epochs.into_iter().collect();
            parts.push(format!(
                "{} continued for more epochs ({})",
                self.continued.len(),
                epochs.join(", ")
            ));
        }
        if !self.new.is_empty() {
            parts.push(format!("{} new", self.new.len()));
        }
        if !self.dropped.is_empty() {
            parts.push(format!("{} no longer in the plan", self.dropped.len()));
        }
        parts.join(", ")
    }
}

/// What identifies a job apart from its epoch count: its spec without `train.epochs`, its
/// fold and its seed.
fn identity_without_epochs(job: &Job, data_root: &Path) -> String {
    let mut spec = job.spec.clone();
    spec.train.epochs = 0;
    let fold = job.fold.map_or("none".to_string(), |f| f.to_string());
    format!("{}|{fold}|{}", portable_json(&spec, data_root), job.seed)
}

/// Compares `old` (what a folder was last run with, without its refit job) with `new`.
pub fn compare(old: &Plan, new: &Plan) -> Growth {
    let root = |p: &Plan| p.data_root.clone().unwrap_or_else(|| "/".into());
    let (old_root, new_root) = (root(old), root(new));
    let new_ids: BTreeSet<&str> = new.jobs.iter().map(|j| j.id.as_str()).collect();
    let old_ids: BTreeSet<&str> = old.jobs.iter().map(|j| j.id.as_str()).collect();
    // New jobs that no old job has the id of, by identity: candidates to continue an old one.
    let mut candidates: BTreeMap<String, &Job> = new
        .jobs
        .iter()
        .filter(|j| !old_ids.contains(j.id.as_str()))
        .map(|j| (identity_without_epochs(j, &new_root), j))
        .collect();
    let mut growth = Growth::default();
    // Longest first, so that of two old jobs differing only in epochs the longer one continues.
    let mut gone: Vec<&Job> = old
        .jobs
        .iter()
        .filter(|j| !new_ids.contains(j.id.as_str()))
        .collect();
    gone.sort_by_key(|j| std::cmp::Reverse(j.spec.train.epochs));
    for job in old.jobs.iter().filter(|j| new_ids.contains(j.id.as_str())) {
        growth.kept.push(job.id.clone());
    }
    for job in gone {
        let key = identity_without_epochs(job, &old_root);
        match candidates.get(&key) {
            Some(target) if target.spec.train.epochs > job.spec.train.epochs => {
                growth.continued.push(Continued {
                    from: job.id.clone(),
                    to: target.id.clone(),
                    epochs_before: job.spec.train.epochs,
                    epochs_after: target.spec.train.epochs,
                });
                candidates.remove(&key);
            }
            _ => growth.dropped.push(job.id.clone()),
        }
    }
    let continued: BTreeSet<&str> = growth.continued.iter().map(|c| c.to.as_str()).collect();
    growth.new = new
        .jobs
        .iter()
        .filter(|j| !old_ids.contains(j.id.as_str()) && !continued.contains(j.id.as_str()))
        .map(|j| j.id.clone())
        .collect();
    growth.dropped.sort();
    growth
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(sweep: &str, epochs: usize) -> Plan {
        let text = format!(
            "name = \"g\"\n[data]\nformat = \"image-folder\"\ntrain = \"src\"\nimage_size = [8, 8]\n[model]\narchitecture = \"mlp\"\nlayers = [{{ type = \"dense\", units = 4 }}]\n[optimizer]\nkind = \"sgd\"\nlr = 0.1\n[train]\nepochs = {epochs}\n{sweep}"
        );
        let origin = crate::spec::Origin::File("g.toml".into());
        let e =
            crate::spec::parse(&text, origin, Path::new(env!("CARGO_MANIFEST_DIR")), &[]).unwrap();
        super::super::expand(&e)
    }

    #[test]
    fn more_trials_values_and_repeats_only_add_jobs() {
        let random = |n| {
            plan(&format!("[sweep]\nmethod = \"random\"\ntrials = {n}\n[sweep.parameters]\n\"optimizer.lr\" = {{ loguniform = [0.001, 0.1] }}\n"), 2)
        };
        let g = compare(&random(3), &random(5));
        assert!(g.only_grows());
        assert_eq!((g.kept.len(), g.new.len(), g.continued.len()), (3, 2, 0));

        let grid = |v: &str| {
            plan(
                &format!("[sweep]\nrepeats = 2\n[sweep.parameters]\n\"optimizer.lr\" = [{v}]\n"),
                2,
            )
        };
        let g = compare(&grid("0.1, 0.01"), &grid("0.1, 0.03, 0.01"));
        assert!(g.only_grows());
        assert_eq!((g.kept.len(), g.new.len()), (4, 2));

        let repeats = |n| plan(&format!("[sweep]\nrepeats = {n}\n"), 2);
        let g = compare(&repeats(2), &repeats(3));
        assert_eq!((g.kept.len(), g.new.len()), (2, 1));
    }

    #[test]
    fn more_epochs_continue_every_job_and_other_changes_drop_them() {
        let sweep = "[sweep.parameters]\n\"optimizer.lr\" = [0.1, 0.01]\n";
        let g = compare(&plan(sweep, 2), &plan(sweep, 4));
        assert!(g.only_grows());
        assert_eq!((g.kept.len(), g.new.len(), g.continued.len()), (0, 0, 2));
        assert!(g
            .continued
            .iter()
            .all(|c| c.epochs_before == 2 && c.epochs_after == 4));
        assert!(
            g.summary().contains("2 continued for more epochs (2 → 4)"),
            "{}",
            g.summary()
        );

        // fewer epochs cannot continue anything; neither can a removed value
        let g = compare(&plan(sweep, 4), &plan(sweep, 2));
        assert!(!g.only_grows());
        assert_eq!(g.dropped.len(), 2);
        let fewer = "[sweep.parameters]\n\"optimizer.lr\" = [0.1]\n";
        let g = compare(&plan(sweep, 2), &plan(fewer, 2));
        assert_eq!((g.kept.len(), g.dropped.len()), (1, 1));
        assert!(compare(&plan(sweep, 2), &plan(sweep, 2)).unchanged());
    }
}
