//! The ranked trials as CSV: one row per trial, its parameters, mean/std/ci per metric on
//! validation and on the test set, p-value.

use super::markdown::{param_names, param_text};
use super::report_json::Report;

/// Quotes a field if it holds a comma, quote or line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(String::new, |v| v.to_string())
}

pub fn render(r: &Report) -> String {
    let params = param_names(r);
    let mut head: Vec<String> = vec!["rank".into(), "trial".into(), "trial_id".into()];
    head.extend(params.iter().cloned());
    head.extend(["status".into(), "n".into()]);
    for m in &r.metrics {
        for s in ["mean", "std", "ci_low", "ci_high"] {
            head.push(format!("{m}_{s}"));
        }
    }
    for m in &r.metrics {
        for s in ["mean", "std", "ci_low", "ci_high"] {
            head.push(format!("test_{m}_{s}"));
        }
    }
    head.push("p_value".into());
    let mut out = head.iter().map(|h| field(h)).collect::<Vec<_>>().join(",") + "\n";
    for t in &r.trials {
        let mut row = vec![
            t.rank.map_or(String::new(), |x| x.to_string()),
            t.label.clone(),
            t.trial_id.clone(),
        ];
        row.extend(params.iter().map(|p| {
            t.params
                .get(p)
                .map_or(String::new(), |v| param_text(Some(v)))
        }));
        row.extend([t.status.clone(), t.n.to_string()]);
        for m in &r.metrics {
            let ci = t.ci95.get(m);
            row.extend([
                opt(t.mean.get(m).copied()),
                opt(t.std.get(m).copied()),
                opt(ci.map(|c| c[0])),
                opt(ci.map(|c| c[1])),
            ]);
        }
        for m in &r.metrics {
            let ci = t.test_ci95.get(m);
            row.extend([
                opt(t.test_mean.get(m).copied()),
                opt(t.test_std.get(m).copied()),
                opt(ci.map(|c| c[0])),
                opt(ci.map(|c| c[1])),
            ]);
        }
        row.push(opt(t.comparison.p_value));
        out += &(row.iter().map(|f| field(f)).collect::<Vec<_>>().join(",") + "\n");
    }
    out
}
