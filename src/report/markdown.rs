//! The report as Markdown: ranked trials, paired tests, the best trial's classes, test-set
//! metrics, refit, and failed or pruned jobs.

use std::fmt::Write;

use super::report_json::Report;

/// A number with 4 decimals, or `–` when absent.
pub fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_string(), |v| format!("{v:.4}"))
}

/// A parameter value as short text.
pub fn param_text(v: Option<&serde_json::Value>) -> String {
    match v {
        None => "–".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// The p-value column: the value, or the reason there is none.
pub fn p_text(c: &super::ranking::Comparison) -> String {
    match (c.p_value, &c.note) {
        (Some(p), _) => format!("{p:.4}"),
        (None, Some(n)) => n.clone(),
        (None, None) => "–".into(),
    }
}

/// The verdict column: distinguishable from the best or not.
pub fn verdict(c: &super::ranking::Comparison) -> &'static str {
    match c.distinguishable {
        Some(true) => "worse than the best",
        Some(false) => "not distinguishable from the best",
        None => "",
    }
}

/// Every swept parameter name across the report's trials.
pub fn param_names(r: &Report) -> Vec<String> {
    let mut names: Vec<String> = r
        .trials
        .iter()
        .flat_map(|t| t.params.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A test metric of `t`: the mean, with ± standard deviation [95% interval] over several jobs.
pub fn test_text(t: &super::report_json::TrialReport, m: &str) -> String {
    match (t.test_mean.get(m), t.test_std.get(m), t.test_ci95.get(m)) {
        (Some(mean), Some(sd), Some([lo, hi])) if t.n > 1 => {
            format!("{mean:.4} ± {sd:.4} [{lo:.4}, {hi:.4}]")
        }
        (Some(mean), _, _) => format!("{mean:.4}"),
        _ => "–".into(),
    }
}

/// The sentence a report without a validation split opens with.
pub const NO_SELECTION: &str = "No validation split: trials are not ranked and no trial is best (ranking them by the test set would select on test data). They are listed in plan order; each job kept its last epoch.";

/// "Report: <experiment>", or "Comparison: <a>, <b>" for several experiments.
pub fn title(r: &Report) -> String {
    if r.experiments.len() > 1 {
        format!("Comparison: {}", r.experiment)
    } else {
        format!("Report: {}", r.experiment)
    }
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}\n", title(r));
    let params = param_names(r);
    if r.selection == "none" {
        let _ = writeln!(o, "{NO_SELECTION}\n");
        let _ = writeln!(o, "## Trials\n");
        let mut head = vec!["trial".to_string()];
        head.extend(params.iter().map(|p| format!("`{p}`")));
        head.extend(["status".into(), "n".into(), "train loss".into()]);
        let _ = writeln!(o, "| {} |", head.join(" | "));
        let _ = writeln!(o, "|{}", " --- |".repeat(head.len()));
        for t in &r.trials {
            let mut cells = vec![t.label.clone()];
            cells.extend(params.iter().map(|p| param_text(t.params.get(p))));
            cells.extend([
                t.status.clone(),
                t.n.to_string(),
                num(t.train_mean.get("loss").copied()),
            ]);
            let _ = writeln!(o, "| {} |", cells.join(" | "));
        }
    } else {
        ranking_table(&mut o, r, &params);
    }
    rest(&mut o, r);
    o
}

fn ranking_table(o: &mut String, r: &Report, params: &[String]) {
    let dir = if r.higher_is_better {
        "higher"
    } else {
        "lower"
    };
    let _ = writeln!(
        o,
        "Trials ranked by the mean validation `{}` ({dir} is better) over {} × {}. \
         Values are mean ± standard deviation [95% confidence interval]. Each trial is compared with \
         the best by the corrected resampled t-test (Nadeau & Bengio) on the per-job validation `{}`, \
         paired by fold and repeat; p ≥ {} means not distinguishable from the best.\n",
        r.best_metric, count(r.folds, "fold"), count(r.repeats, "repeat"), r.best_metric, r.significance
    );
    let _ = writeln!(o, "## Ranking\n");
    let mut head = vec!["rank".to_string(), "trial".into()];
    head.extend(params.iter().map(|p| format!("`{p}`")));
    head.extend(["status".into(), "n".into()]);
    head.extend(r.metrics.iter().cloned());
    head.extend(["p-value".into(), "verdict".into()]);
    let _ = writeln!(o, "| {} |", head.join(" | "));
    let _ = writeln!(o, "|{}", " --- |".repeat(head.len()));
    for t in &r.trials {
        let mut cells = vec![
            t.rank.map_or("–".into(), |x| x.to_string()),
            t.label.clone(),
        ];
        cells.extend(params.iter().map(|p| param_text(t.params.get(p))));
        cells.extend([t.status.clone(), t.n.to_string()]);
        for m in &r.metrics {
            cells.push(match (t.mean.get(m), t.std.get(m), t.ci95.get(m)) {
                (Some(mean), Some(sd), Some([lo, hi])) => {
                    format!("{mean:.4} ± {sd:.4} [{lo:.4}, {hi:.4}]")
                }
                _ => "–".into(),
            });
        }
        cells.extend([p_text(&t.comparison), verdict(&t.comparison).into()]);
        let _ = writeln!(o, "| {} |", cells.join(" | "));
    }
}

/// Everything after the trials table.
fn rest(o: &mut String, r: &Report) {
    if let Some(best) = &r.best {
        let _ = writeln!(o, "\n## Best trial: {}\n", best.label);
        if !best.per_class.is_empty() {
            let _ = writeln!(o, "Per-class validation scores (mean over its folds):\n");
            let _ = writeln!(
                o,
                "| class | precision | recall | f1 |\n| --- | --- | --- | --- |"
            );
            for c in &best.per_class {
                let _ = writeln!(
                    o,
                    "| {} | {:.4} | {:.4} | {:.4} |",
                    c.class, c.precision, c.recall, c.f1
                );
            }
        }
        if let Some(cm) = &best.confusion_matrix {
            let _ = writeln!(
                o,
                "\nValidation confusion matrix, summed over its folds (rows true, columns predicted):\n"
            );
            let names: Vec<String> = (0..cm.len())
                .map(|i| r.classes.get(i).cloned().unwrap_or_else(|| i.to_string()))
                .collect();
            let _ = writeln!(o, "| true \\ predicted | {} |", names.join(" | "));
            let _ = writeln!(o, "|{}", " --- |".repeat(names.len() + 1));
            for (name, row) in names.iter().zip(cm) {
                let cells: Vec<String> = row.iter().map(|x| format!("{x}")).collect();
                let _ = writeln!(o, "| {name} | {} |", cells.join(" | "));
            }
        }
    }
    let with_test: Vec<_> = r
        .trials
        .iter()
        .filter(|t| !t.test_mean.is_empty())
        .collect();
    if !with_test.is_empty() || !r.refit.is_empty() {
        let _ = writeln!(o, "\n## Test set\n");
        let _ = writeln!(
            o,
            "Never used for selection. Mean over each trial's finished jobs (± standard deviation [95% confidence interval] over several).\n"
        );
        let mut head = vec!["trial".to_string()];
        head.extend(r.metrics.iter().cloned());
        let _ = writeln!(
            o,
            "| {} |\n|{}",
            head.join(" | "),
            " --- |".repeat(head.len())
        );
        for t in &with_test {
            let cells: Vec<String> = r.metrics.iter().map(|m| test_text(t, m)).collect();
            let _ = writeln!(o, "| {} | {} |", t.label, cells.join(" | "));
        }
        for f in &r.refit {
            let cells: Vec<String> = r
                .metrics
                .iter()
                .map(|m| num(f.job.test.as_ref().and_then(|t| t.get(m)).copied()))
                .collect();
            let _ = writeln!(
                o,
                "| refit of trial {} (job {}, {}) | {} |",
                f.trial,
                f.job.id,
                f.job.status,
                cells.join(" | ")
            );
        }
    }
    if !r.problems.is_empty() {
        let _ = writeln!(o, "\n## Failed and pruned jobs\n");
        let _ = writeln!(
            o,
            "| trial | job | status | reason |\n| --- | --- | --- | --- |"
        );
        for p in &r.problems {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                p.label,
                p.job,
                p.status,
                p.reason
                    .as_deref()
                    .unwrap_or("–")
                    .replace('|', "\\|")
                    .replace('\n', " ")
            );
        }
    }
    if let Some(m) = &r.mistakes {
        let _ = writeln!(
            o,
            "\n## Most confident mistakes: trial {}\n\nPer split and class, the {} wrong predictions the model was surest of, over the trial's jobs (thumbnails in report.html and the job folders).\n",
            m.trial, m.per_class
        );
        let _ = writeln!(
            o,
            "| split | class | kind | image | true | predicted | confidence | job |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for x in &m.items {
            let kind = serde_json::to_value(x.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "| {} | {} | {kind} | {} | {} | {} | {:.4} | {} |",
                x.split,
                x.class,
                x.path.replace('|', "\\|"),
                x.truth.join(";"),
                x.predicted.join(";"),
                x.confidence,
                x.job
            );
        }
    }
}

/// `n` and `noun`, plural when n ≠ 1 (`1 fold`, `3 folds`).
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
