//! The report model (what report.json holds, see the README's "report.json" section) and its
//! construction from one or several experiments' results: ranking, summaries, paired tests.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ranking::{self, Comparison, Slot, Standing, SIGNIFICANCE};
use super::stats::summarize;
use super::summary::{higher_is_better, ClassScore, ExperimentResults, JobResult, ReportError};
use crate::spec::Task;
use crate::store::mistakes::{MistakeKind, MISTAKES_PER_CLASS};
use crate::train::metrics::scalar_metrics;

pub const REPORT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct JobReport {
    pub id: String,
    pub fold: Option<usize>,
    pub repeat: usize,
    pub status: String,
    pub reason: Option<String>,
    pub val: BTreeMap<String, f64>,
    pub test: Option<BTreeMap<String, f64>>,
}

impl JobReport {
    fn of(j: &JobResult) -> Self {
        JobReport {
            id: j.id.clone(),
            fold: j.fold,
            repeat: j.repeat,
            status: j.status.clone(),
            reason: j.reason.clone(),
            val: j.val.clone(),
            test: j.test.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TrialReport {
    /// 1 = best; null for trials without a finished job.
    pub rank: Option<usize>,
    /// `trial` for a report, `<experiment>/<trial>` for a comparison.
    pub label: String,
    pub experiment: String,
    pub trial: usize,
    pub trial_id: String,
    pub params: BTreeMap<String, serde_json::Value>,
    pub status: String,
    /// Finished (done) jobs the summaries are over.
    pub n: usize,
    pub jobs: Vec<JobReport>,
    pub mean: BTreeMap<String, f64>,
    pub std: BTreeMap<String, f64>,
    pub ci95: BTreeMap<String, [f64; 2]>,
    /// Mean test scalars over the finished jobs that have a test set.
    pub test_mean: BTreeMap<String, f64>,
    /// Their sample standard deviation (0 for one job).
    pub test_std: BTreeMap<String, f64>,
    /// The 95% Student-t interval of the test mean (collapses to the mean for one job).
    pub test_ci95: BTreeMap<String, [f64; 2]>,
    /// Mean final training scalars (the best epoch's, measured during training).
    pub train_mean: BTreeMap<String, f64>,
    pub comparison: Comparison,
    /// Mean validation `best_metric` per epoch over the jobs: (epoch, mean, min, max).
    #[serde(skip)]
    pub curve: Vec<(usize, f64, f64, f64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BestDetail {
    pub trial: usize,
    pub label: String,
    /// Mean over the best trial's finished jobs of final.val.per_class.
    pub per_class: Vec<ClassScore>,
    /// Sum over its finished jobs of final.val.confusion_matrix (rows true, columns predicted).
    pub confusion_matrix: Option<Vec<Vec<f64>>>,
}

/// The most confident mistakes of one trial, over its finished jobs.
#[derive(Clone, Debug, Serialize)]
pub struct MistakesReport {
    /// The trial's label: the best trial, or the only one without a validation split.
    pub trial: String,
    /// Mistakes kept per split, class and kind.
    pub per_class: usize,
    pub items: Vec<MistakeItem>,
}

/// One wrong prediction of a job, as in its mistakes.json.
#[derive(Clone, Debug, Serialize)]
pub struct MistakeItem {
    pub job: String,
    pub split: String,
    pub path: String,
    pub class: String,
    pub kind: MistakeKind,
    #[serde(rename = "true")]
    pub truth: Vec<String>,
    pub predicted: Vec<String>,
    pub confidence: f64,
    /// The thumbnail's path relative to the experiment folder.
    pub thumbnail: Option<String>,
    /// The thumbnail's PNG bytes (embedded in report.html only).
    #[serde(skip)]
    pub png: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RefitReport {
    pub trial: usize,
    pub job: JobReport,
}

#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    pub label: String,
    pub trial: usize,
    pub job: String,
    pub status: String,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub version: u32,
    /// The experiment name (for a comparison, the names joined by ", ").
    pub experiment: String,
    pub experiments: Vec<String>,
    pub best_metric: String,
    pub higher_is_better: bool,
    /// The task: `multiclass`, `binary` or `multilabel`.
    pub task: Task,
    /// The task's scalar metric names, in the order the tables show them.
    pub metrics: Vec<String>,
    pub folds: usize,
    pub repeats: usize,
    pub significance: f64,
    /// `validation` (trials ranked by the validation `best_metric`) or `none` (no validation
    /// split: trials in plan order, not ranked, no best trial).
    pub selection: &'static str,
    /// The best trial's label (its index for a single experiment), null if none finished or
    /// without a validation split.
    pub best_trial: Option<serde_json::Value>,
    /// Trials in rank order.
    pub trials: Vec<TrialReport>,
    pub best: Option<BestDetail>,
    pub refit: Vec<RefitReport>,
    pub problems: Vec<Problem>,
    pub classes: Vec<String>,
    /// The most confident mistakes of the best trial (or the only trial); null if there are none.
    pub mistakes: Option<MistakesReport>,
    /// What was wrong with the experiment folders (a rebuilt ledger, finished jobs left out
    /// because their metrics are missing or damaged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn summaries(t: &mut TrialReport, done: &[&JobResult], task: Task) {
    for (metric, _) in scalar_metrics(task) {
        let values: Vec<f64> = done
            .iter()
            .filter_map(|j| j.val.get(*metric).copied())
            .collect();
        if let Some(s) = summarize(&values) {
            t.mean.insert(metric.to_string(), s.mean);
            t.std.insert(metric.to_string(), s.std);
            t.ci95.insert(metric.to_string(), [s.ci95_low, s.ci95_high]);
        }
        let tests: Vec<f64> = done
            .iter()
            .filter_map(|j| j.test.as_ref()?.get(*metric).copied())
            .collect();
        if let Some(s) = summarize(&tests) {
            t.test_mean.insert(metric.to_string(), s.mean);
            t.test_std.insert(metric.to_string(), s.std);
            t.test_ci95
                .insert(metric.to_string(), [s.ci95_low, s.ci95_high]);
        }
        let train: Vec<f64> = done
            .iter()
            .filter_map(|j| j.train.get(*metric).copied())
            .collect();
        if let Some(s) = summarize(&train) {
            t.train_mean.insert(metric.to_string(), s.mean);
        }
    }
}

fn curve(jobs: &[JobResult]) -> Vec<(usize, f64, f64, f64)> {
    let mut by_epoch: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for j in jobs {
        for (e, v) in &j.curve {
            if v.is_finite() {
                by_epoch.entry(*e).or_default().push(*v);
            }
        }
    }
    by_epoch
        .into_iter()
        .map(|(e, v)| {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (e, mean, min, max)
        })
        .collect()
}

fn best_detail(label: String, trial: usize, done: &[&JobResult]) -> BestDetail {
    let mut per_class: Vec<ClassScore> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    for j in done {
        for (i, c) in j.per_class.iter().enumerate() {
            if i == per_class.len() {
                per_class.push(ClassScore {
                    class: c.class.clone(),
                    precision: 0.0,
                    recall: 0.0,
                    f1: 0.0,
                });
                counts.push(0);
            }
            per_class[i].precision += c.precision;
            per_class[i].recall += c.recall;
            per_class[i].f1 += c.f1;
            counts[i] += 1;
        }
    }
    for (c, n) in per_class.iter_mut().zip(&counts) {
        let n = *n as f64;
        c.precision /= n;
        c.recall /= n;
        c.f1 /= n;
    }
    let mut confusion: Option<Vec<Vec<f64>>> = None;
    for m in done.iter().filter_map(|j| j.confusion.as_ref()) {
        match &mut confusion {
            None => confusion = Some(m.clone()),
            Some(sum) if sum.len() == m.len() => {
                for (row, add) in sum.iter_mut().zip(m) {
                    for (x, y) in row.iter_mut().zip(add) {
                        *x += y;
                    }
                }
            }
            Some(_) => {}
        }
    }
    BestDetail {
        trial,
        label,
        per_class,
        confusion_matrix: confusion,
    }
}

/// Builds the report of one experiment (`labelled` false) or the comparison of several
/// (`labelled` true: trials are labelled `<experiment>/<trial>`). Experiments must share the
/// best metric and data; trials of two experiments are paired only if their folds are the same.
pub fn build(experiments: &[ExperimentResults], labelled: bool) -> Result<Report, ReportError> {
    let first = experiments
        .first()
        .ok_or_else(|| ReportError::Incompatible("no experiment given".into()))?;
    for e in &experiments[1..] {
        if e.best_metric != first.best_metric {
            return Err(ReportError::Incompatible(format!(
                "{} selects by {} but {} by {}",
                first.name, first.best_metric, e.name, e.best_metric
            )));
        }
        if e.task != first.task {
            return Err(ReportError::Incompatible(format!(
                "{} is a {:?} task but {} a {:?} one",
                first.name, first.task, e.name, e.task
            )));
        }
        if e.data_hash != first.data_hash {
            return Err(ReportError::Incompatible(format!(
                "{} and {} were trained on different data (data hash {} vs {})",
                first.name,
                e.name,
                first.data_hash.as_deref().unwrap_or("unknown"),
                e.data_hash.as_deref().unwrap_or("unknown")
            )));
        }
    }
    let metric = first.best_metric.clone();
    let higher = higher_is_better(&metric);
    let mut rows = Vec::new();
    let mut scores: Vec<BTreeMap<Slot, f64>> = Vec::new();
    let mut origin: Vec<usize> = Vec::new();
    let mut problems = Vec::new();
    let mut refit = Vec::new();
    for (ei, e) in experiments.iter().enumerate() {
        for t in &e.trials {
            let label = if labelled {
                format!("{}/{}", e.name, t.trial)
            } else {
                t.trial.to_string()
            };
            let done: Vec<&JobResult> = t.jobs.iter().filter(|j| j.is_done()).collect();
            let mut row = TrialReport {
                rank: None,
                label: label.clone(),
                experiment: e.name.clone(),
                trial: t.trial,
                trial_id: t.trial_id.clone(),
                params: t.params.clone(),
                status: t.status().to_string(),
                n: done.len(),
                jobs: t.jobs.iter().map(JobReport::of).collect(),
                mean: BTreeMap::new(),
                std: BTreeMap::new(),
                ci95: BTreeMap::new(),
                test_mean: BTreeMap::new(),
                test_std: BTreeMap::new(),
                test_ci95: BTreeMap::new(),
                train_mean: BTreeMap::new(),
                comparison: Comparison::default(),
                curve: curve(&t.jobs),
            };
            summaries(&mut row, &done, first.task);
            for j in t
                .jobs
                .iter()
                .filter(|j| j.status == "failed" || j.status == "pruned")
            {
                problems.push(Problem {
                    label: label.clone(),
                    trial: t.trial,
                    job: j.id.clone(),
                    status: j.status.clone(),
                    reason: j.reason.clone(),
                });
            }
            scores.push(
                done.iter()
                    .filter_map(|j| Some(((j.fold, j.repeat), *j.val.get(&metric)?)))
                    .collect(),
            );
            origin.push(ei);
            rows.push(row);
        }
        if let Some((trial, job)) = &e.refit {
            refit.push(RefitReport {
                trial: *trial,
                job: JobReport::of(job),
            });
        }
    }
    let standings: Vec<Standing> = rows
        .iter()
        .map(|r| Standing {
            finished: r.status == "done",
            mean: r.mean.get(&metric).copied(),
        })
        .collect();
    // Without a validation split nothing may pick a trial: ranking by the test set would select
    // on test data.
    let validation = experiments.iter().all(|e| e.validation);
    let order = if validation {
        ranking::rank(&standings, higher)
    } else {
        (0..rows.len()).collect()
    };
    let best = order
        .first()
        .copied()
        .filter(|&b| validation && standings[b].finished);
    for (pos, &i) in order.iter().enumerate() {
        if validation && standings[i].mean.is_some() {
            rows[i].rank = Some(pos + 1);
        }
        rows[i].comparison = match best {
            None if !validation => Comparison::note("no selection: no validation split"),
            None => Comparison::note("no finished trial to compare with"),
            Some(b) if b == i => Comparison::note("best"),
            Some(b) => {
                let (ea, eb) = (&experiments[origin[i]], &experiments[origin[b]]);
                if origin[i] != origin[b]
                    && (ea.folds_json != eb.folds_json || ea.folds != eb.folds)
                {
                    Comparison::note(format!(
                        "not paired: {} and {} use different folds (folds.json differs)",
                        ea.name, eb.name
                    ))
                } else {
                    ranking::compare(&scores[i], &scores[b], ea.folds)
                }
            }
        };
    }
    let detail = best.map(|b| {
        let e = &experiments[origin[b]];
        let t = e.trials.iter().find(|t| t.trial == rows[b].trial);
        let done: Vec<&JobResult> = t
            .map(|t| t.jobs.iter().filter(|j| j.is_done()).collect())
            .unwrap_or_default();
        best_detail(rows[b].label.clone(), rows[b].trial, &done)
    });
    // The trial whose mistakes the report shows: the best one, or the only one.
    let shown = best.or((rows.len() == 1 && rows[0].n > 0).then_some(0));
    let mistakes = shown.and_then(|i| {
        let e = &experiments[origin[i]];
        let t = e.trials.iter().find(|t| t.trial == rows[i].trial)?;
        gather_mistakes(rows[i].label.clone(), t, &first.classes)
    });
    let best_trial = best.map(|b| {
        if labelled {
            serde_json::Value::String(rows[b].label.clone())
        } else {
            serde_json::Value::from(rows[b].trial)
        }
    });
    let mut ranked: Vec<Option<TrialReport>> = rows.into_iter().map(Some).collect();
    let trials = order.iter().filter_map(|&i| ranked[i].take()).collect();
    let names: Vec<String> = experiments.iter().map(|e| e.name.clone()).collect();
    Ok(Report {
        version: REPORT_VERSION,
        experiment: names.join(", "),
        experiments: names,
        best_metric: metric,
        higher_is_better: higher,
        task: first.task,
        metrics: scalar_metrics(first.task)
            .iter()
            .map(|(m, _)| m.to_string())
            .collect(),
        folds: first.folds,
        repeats: first.repeats,
        significance: SIGNIFICANCE,
        best_trial,
        trials,
        best: detail,
        refit,
        problems,
        classes: first.classes.clone(),
        selection: if validation { "validation" } else { "none" },
        mistakes,
        warnings: experiments
            .iter()
            .flat_map(|e| e.warnings.iter().cloned())
            .collect(),
    })
}

/// The most confident mistakes over `trial`'s finished jobs: per split, class and kind the
/// [`MISTAKES_PER_CLASS`] most confident, in split (val, test), class-list and kind order.
fn gather_mistakes(
    label: String,
    trial: &super::summary::TrialResult,
    classes: &[String],
) -> Option<MistakesReport> {
    let mut items: Vec<MistakeItem> = trial
        .jobs
        .iter()
        .filter(|j| j.is_done())
        .flat_map(|j| {
            j.mistakes.iter().map(|(m, png)| MistakeItem {
                job: j.id.clone(),
                split: m.split.clone(),
                path: m.path.clone(),
                class: m.class.clone(),
                kind: m.kind,
                truth: m.truth.clone(),
                predicted: m.predicted.clone(),
                confidence: m.confidence,
                thumbnail: m.thumbnail.as_ref().map(|t| format!("{}/{t}", j.id)),
                png: png.clone(),
            })
        })
        .collect();
    if items.is_empty() {
        return None;
    }
    let split_order = |s: &str| match s {
        "val" => 0,
        "test" => 1,
        _ => 2,
    };
    let class_order = |c: &str| classes.iter().position(|x| x == c).unwrap_or(classes.len());
    let key = |m: &MistakeItem| (split_order(&m.split), class_order(&m.class), m.kind as u8);
    items.sort_by(|a, b| {
        key(a)
            .cmp(&key(b))
            .then(b.confidence.total_cmp(&a.confidence))
            .then_with(|| (&a.job, &a.path).cmp(&(&b.job, &b.path)))
    });
    let mut kept: Vec<MistakeItem> = Vec::new();
    let mut run = 0;
    for m in items {
        match kept.last() {
            Some(last) if key(last) == key(&m) => {}
            _ => run = 0,
        }
        if run < MISTAKES_PER_CLASS {
            run += 1;
            kept.push(m);
        }
    }
    Some(MistakesReport {
        trial: label,
        per_class: MISTAKES_PER_CLASS,
        items: kept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::summary::TrialResult;

    fn job(fold: usize, status: &str, acc: Option<f64>, cm: Vec<Vec<f64>>) -> JobResult {
        JobResult {
            id: format!("j{fold}{status}{}", acc.unwrap_or(0.0)),
            fold: Some(fold),
            status: status.into(),
            reason: (status != "done").then(|| "training diverged".to_string()),
            val: acc
                .map(|a| [("accuracy".to_string(), a)].into())
                .unwrap_or_default(),
            confusion: Some(cm),
            per_class: vec![ClassScore {
                class: "a".into(),
                precision: acc.unwrap_or(0.0),
                recall: 1.0,
                f1: 0.5,
            }],
            ..JobResult::default()
        }
    }

    fn experiment(name: &str, trials: Vec<Vec<JobResult>>) -> ExperimentResults {
        ExperimentResults {
            name: name.into(),
            dir: name.into(),
            best_metric: "accuracy".into(),
            task: Task::Multiclass,
            folds: 3,
            repeats: 1,
            trials: trials
                .into_iter()
                .enumerate()
                .map(|(i, jobs)| TrialResult {
                    trial: i,
                    trial_id: format!("t{i}"),
                    params: BTreeMap::new(),
                    jobs,
                })
                .collect(),
            refit: None,
            validation: true,
            classes: vec!["a".into()],
            data_hash: Some("d".into()),
            folds_json: Some("f".into()),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn ranks_summarizes_tests_and_sums_the_best_confusion_matrix() {
        let cm = |x: f64| vec![vec![x]];
        let e = experiment(
            "e",
            vec![
                (0..3)
                    .map(|f| job(f, "done", Some(0.80 + 0.01 * f as f64), cm(1.0)))
                    .collect(),
                (0..3)
                    .map(|f| job(f, "done", Some(0.90 + 0.01 * f as f64), cm(2.0)))
                    .collect(),
                vec![
                    job(0, "failed", None, cm(0.0)),
                    job(1, "done", Some(0.99), cm(0.0)),
                ],
            ],
        );
        let r = build(&[e], false).unwrap();
        let order: Vec<usize> = r.trials.iter().map(|t| t.trial).collect();
        assert_eq!(
            order,
            vec![1, 0, 2],
            "the failed trial ranks last despite its score"
        );
        assert_eq!(r.best_trial, Some(serde_json::json!(1)));
        assert!((r.trials[0].mean["accuracy"] - 0.91).abs() < 1e-12);
        assert!((r.trials[0].std["accuracy"] - 0.01).abs() < 1e-12);
        assert_eq!(r.trials[0].comparison.note.as_deref(), Some("best"));
        // Differences all −0.10: zero variance, t = −∞, p = 0.
        assert_eq!(r.trials[1].comparison.p_value, Some(0.0));
        assert_eq!(r.trials[1].comparison.distinguishable, Some(true));
        assert_eq!(r.trials[2].status, "failed");
        assert_eq!(r.trials[2].comparison.n, 0, "one pair is not enough");
        let best = r.best.unwrap();
        assert_eq!(best.confusion_matrix, Some(vec![vec![6.0]]));
        assert!((best.per_class[0].precision - 0.91).abs() < 1e-12);
        assert_eq!(r.problems.len(), 1);
    }

    #[test]
    fn comparisons_refuse_other_metrics_or_data_and_pair_only_same_folds() {
        let jobs = |base: f64| -> Vec<JobResult> {
            (0..3)
                .map(|f| job(f, "done", Some(base + 0.01 * (f * f) as f64), vec![]))
                .collect()
        };
        let a = experiment("a", vec![jobs(0.9)]);
        let mut b = experiment("b", vec![jobs(0.8)]);
        let r = build(&[a.clone(), b.clone()], true).unwrap();
        assert_eq!(r.trials[0].label, "a/0");
        assert!(r.trials[1].comparison.p_value.is_some());
        b.folds_json = Some("other".into());
        let r = build(&[a.clone(), b.clone()], true).unwrap();
        assert!(r.trials[1]
            .comparison
            .note
            .as_deref()
            .unwrap()
            .contains("not paired"));
        b.data_hash = Some("x".into());
        assert!(matches!(
            build(&[a.clone(), b.clone()], true),
            Err(ReportError::Incompatible(_))
        ));
        let mut c = experiment("c", vec![jobs(0.8)]);
        c.best_metric = "loss".into();
        assert!(matches!(
            build(&[a, c], true),
            Err(ReportError::Incompatible(_))
        ));
    }
}
