//! The lines `assay run` ends with: the best trial with its validation score and 95% interval
//! and its test metrics, from the report's own numbers.

use super::markdown::param_text;
use super::report_json::{Report, TrialReport};

/// `label (key = value, ...)`, or just the label without swept values.
fn trial_name(t: &TrialReport) -> String {
    if t.params.is_empty() {
        return t.label.clone();
    }
    let params: Vec<String> = t
        .params
        .iter()
        .map(|(k, v)| format!("{k} = {}", param_text(Some(v))))
        .collect();
    format!("{} ({})", t.label, params.join(", "))
}

/// `test: loss 0.1, accuracy 0.9` (one job), `test (mean ± std over 2 jobs): loss 0.1 ± 0.01, …`,
/// or `no test set`.
fn test_line(r: &Report, t: &TrialReport) -> String {
    if t.test_mean.is_empty() {
        return "no test set".into();
    }
    let several = t.n > 1;
    let values: Vec<String> = r
        .metrics
        .iter()
        .filter_map(|m| {
            let mean = t.test_mean.get(m)?;
            Some(match t.test_std.get(m) {
                Some(sd) if several => format!("{m} {mean:.4} ± {sd:.4}"),
                _ => format!("{m} {mean:.4}"),
            })
        })
        .collect();
    if several {
        format!("test (mean ± std over {} jobs): {}", t.n, values.join(", "))
    } else {
        format!("test: {}", values.join(", "))
    }
}

/// The end-of-run summary, one line per entry.
pub fn lines(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if r.selection == "none" {
        out.push("no validation split: trials are not ranked and none is best".to_string());
        for t in r.trials.iter().filter(|t| t.n > 0) {
            out.push(format!("trial {}: {}", trial_name(t), test_line(r, t)));
        }
        return out;
    }
    let Some(best) = r.trials.first().filter(|_| r.best_trial.is_some()) else {
        out.push("no trial finished: there is no best trial".to_string());
        return out;
    };
    let m = &r.best_metric;
    let score = match (best.mean.get(m), best.ci95.get(m)) {
        (Some(mean), Some([lo, hi])) if best.n > 1 => {
            format!(
                "val {m} {mean:.4} [95% CI {lo:.4}, {hi:.4}] over {} jobs",
                best.n
            )
        }
        (Some(mean), _) => format!("val {m} {mean:.4} (one job: no confidence interval)"),
        _ => format!("val {m} –"),
    };
    out.push(format!("best trial {}: {score}", trial_name(best)));
    out.push(format!("  {}", test_line(r, best)));
    for f in &r.refit {
        if let Some(test) = &f.job.test {
            let values: Vec<String> = r
                .metrics
                .iter()
                .filter_map(|m| Some(format!("{m} {:.4}", test.get(m)?)))
                .collect();
            out.push(format!(
                "  refit of trial {} (job {}) test: {}",
                f.trial,
                f.job.id,
                values.join(", ")
            ));
        }
    }
    out
}
