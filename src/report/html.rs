//! The report as one self-contained HTML page: tables with plain CSS and inline SVG plots; no
//! scripts, fonts or anything else fetched from elsewhere.

use std::fmt::Write;

use base64::Engine;

use super::markdown::{p_text, param_names, param_text, test_text, verdict, NO_SELECTION};
use super::plots;
use super::report_json::Report;

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1400px}\
table{border-collapse:collapse;margin:1em 0;font-size:12px}.wide{overflow-x:auto}\
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}\
th{background:#f0f3f7}td.l,th.l{text-align:left}tr.best td{background:#eef8ee}\
tr.worse td{color:#888}.plots{display:flex;flex-wrap:wrap;gap:12px}\
.note{color:#555;font-size:14px;max-width:60em}small{color:#666}\
.mistakes{display:flex;flex-wrap:wrap;gap:6px}figure{margin:0;font-size:11px;text-align:center;width:76px}\
figure img{width:64px;height:64px;object-fit:contain;image-rendering:pixelated;border:1px solid #ccc}";

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let title = esc(&super::markdown::title(r));
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n"
    );
    let params = param_names(r);
    if r.selection == "none" {
        trials_table(&mut o, r, &params);
    } else {
        ranking_table(&mut o, r, &params);
    }
    rest(&mut o, r);
    o.push_str("</body></html>\n");
    o
}

/// Without a validation split: the trials in plan order with their training loss, unranked.
fn trials_table(o: &mut String, r: &Report, params: &[String]) {
    let _ = writeln!(o, "<p class=\"note\"><b>{}</b></p>", esc(NO_SELECTION));
    o.push_str("<h2>Trials</h2>\n<div class=\"wide\"><table><tr><th class=\"l\">trial</th>");
    for p in params {
        let _ = write!(o, "<th class=\"l\">{}</th>", esc(p));
    }
    o.push_str("<th class=\"l\">status</th><th>n</th><th>train loss</th></tr>\n");
    for t in &r.trials {
        let _ = write!(o, "<tr><td class=\"l\">{}</td>", esc(&t.label));
        for p in params {
            let _ = write!(
                o,
                "<td class=\"l\">{}</td>",
                esc(&param_text(t.params.get(p)))
            );
        }
        let _ = writeln!(
            o,
            "<td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.status),
            t.n,
            super::markdown::num(t.train_mean.get("loss").copied())
        );
    }
    o.push_str("</table></div>\n");
}

fn ranking_table(o: &mut String, r: &Report, params: &[String]) {
    let dir = if r.higher_is_better {
        "higher"
    } else {
        "lower"
    };
    let _ = writeln!(
        o,
        "<p class=\"note\">Trials ranked by the mean validation <b>{}</b> ({dir} is better) over {} × {}. \
         Values are mean ± standard deviation with the 95% confidence interval below. Each trial is compared with the best by the \
         corrected resampled t-test on the per-job validation {}, paired by fold and repeat; p ≥ {} means \
         <i>not distinguishable from the best</i>.</p>",
        esc(&r.best_metric),
        super::markdown::count(r.folds, "fold"),
        super::markdown::count(r.repeats, "repeat"),
        esc(&r.best_metric),
        r.significance
    );
    o.push_str(
        "<h2>Ranking</h2>\n<div class=\"wide\"><table><tr><th>rank</th><th class=\"l\">trial</th>",
    );
    for p in params {
        let _ = write!(o, "<th class=\"l\">{}</th>", esc(p));
    }
    o.push_str("<th class=\"l\">status</th><th>n</th>");
    for m in &r.metrics {
        let _ = write!(o, "<th>{m}</th>");
    }
    o.push_str("<th class=\"l\">p-value</th><th class=\"l\">verdict</th></tr>\n");
    for t in &r.trials {
        let class = if t.comparison.note.as_deref() == Some("best") {
            " class=\"best\""
        } else if t.comparison.distinguishable == Some(true) {
            " class=\"worse\""
        } else {
            ""
        };
        let _ = write!(
            o,
            "<tr{class}><td>{}</td><td class=\"l\">{}</td>",
            t.rank.map_or("–".into(), |x| x.to_string()),
            esc(&t.label)
        );
        for p in params {
            let _ = write!(
                o,
                "<td class=\"l\">{}</td>",
                esc(&param_text(t.params.get(p)))
            );
        }
        let _ = write!(o, "<td class=\"l\">{}</td><td>{}</td>", esc(&t.status), t.n);
        for m in &r.metrics {
            match (t.mean.get(m), t.std.get(m), t.ci95.get(m)) {
                (Some(mean), Some(sd), Some([lo, hi])) => {
                    let _ = write!(o, "<td style=\"white-space:nowrap\">{mean:.4} ± {sd:.4}<br><small>[{lo:.4}, {hi:.4}]</small></td>");
                }
                _ => o.push_str("<td>–</td>"),
            }
        }
        let _ = writeln!(
            o,
            "<td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            esc(&p_text(&t.comparison)),
            verdict(&t.comparison)
        );
    }
    o.push_str("</table></div>\n");
}

/// Plots, the best trial, the test set, problems and mistakes.
fn rest(o: &mut String, r: &Report) {
    // The plots are of the validation `best_metric`; without validation there is nothing to draw.
    if r.selection != "none" {
        plots_section(o, r);
    }
    details(o, r);
}

fn plots_section(o: &mut String, r: &Report) {
    o.push_str("<h2>Plots</h2>\n<div class=\"plots\">\n");
    let mut plot = |svg: Result<String, String>| match svg {
        Ok(s) => {
            o.push_str("<div>");
            o.push_str(&s);
            o.push_str("</div>\n");
        }
        Err(e) => {
            let _ = writeln!(o, "<p>plot failed: {}</p>", esc(&e));
        }
    };
    plot(plots::learning_curves(r));
    match plots::parameter_scatters(r) {
        Ok(list) => list.into_iter().for_each(|(_, s)| plot(Ok(s))),
        Err(e) => plot(Err(e)),
    }
    match plots::confusion_heatmap(r) {
        Ok(Some(s)) => plot(Ok(s)),
        Ok(None) => {}
        Err(e) => plot(Err(e)),
    }
    o.push_str("</div>\n");
}

/// The best trial, the test set, problems and mistakes.
fn details(o: &mut String, r: &Report) {
    if let Some(best) = &r.best {
        let _ = writeln!(o, "<h2>Best trial: {}</h2>", esc(&best.label));
        if !best.per_class.is_empty() {
            o.push_str("<p class=\"note\">Per-class validation scores, mean over its folds.</p><table><tr><th class=\"l\">class</th><th>precision</th><th>recall</th><th>f1</th></tr>\n");
            for c in &best.per_class {
                let _ =
                    writeln!(
                    o,
                    "<tr><td class=\"l\">{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td></tr>",
                    esc(&c.class), c.precision, c.recall, c.f1
                );
            }
            o.push_str("</table>\n");
        }
    }
    let with_test: Vec<_> = r
        .trials
        .iter()
        .filter(|t| !t.test_mean.is_empty())
        .collect();
    if !with_test.is_empty() || !r.refit.is_empty() {
        o.push_str("<h2>Test set</h2><p class=\"note\">Never used for selection; mean over each trial's finished jobs (± standard deviation [95% confidence interval] over several).</p><div class=\"wide\"><table><tr><th class=\"l\">trial</th>");
        for m in &r.metrics {
            let _ = write!(o, "<th>{m}</th>");
        }
        o.push_str("</tr>\n");
        for t in &with_test {
            let _ = write!(o, "<tr><td class=\"l\">{}</td>", esc(&t.label));
            for m in &r.metrics {
                let cell = match (t.test_mean.get(m), t.test_std.get(m), t.test_ci95.get(m)) {
                    (Some(mean), Some(sd), Some([lo, hi])) if t.n > 1 => {
                        format!("{mean:.4} ± {sd:.4}<br><small>[{lo:.4}, {hi:.4}]</small>")
                    }
                    _ => test_text(t, m),
                };
                let _ = write!(o, "<td style=\"white-space:nowrap\">{cell}</td>");
            }
            o.push_str("</tr>\n");
        }
        for f in &r.refit {
            let _ = write!(
                o,
                "<tr class=\"best\"><td class=\"l\">refit of trial {} (job {}, {})</td>",
                f.trial,
                esc(&f.job.id),
                esc(&f.job.status)
            );
            for m in &r.metrics {
                let v = f.job.test.as_ref().and_then(|t| t.get(m)).copied();
                let _ = write!(o, "<td>{}</td>", super::markdown::num(v));
            }
            o.push_str("</tr>\n");
        }
        o.push_str("</table></div>\n");
    }
    if !r.problems.is_empty() {
        o.push_str("<h2>Failed and pruned jobs</h2><table><tr><th class=\"l\">trial</th><th class=\"l\">job</th><th class=\"l\">status</th><th class=\"l\">reason</th></tr>\n");
        for p in &r.problems {
            let _ = writeln!(
                o,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                esc(&p.label),
                esc(&p.job),
                esc(&p.status),
                esc(p.reason.as_deref().unwrap_or("–"))
            );
        }
        o.push_str("</table>\n");
    }
    if let Some(m) = &r.mistakes {
        mistakes(o, m);
    }
}

/// The most confident mistakes, one row of thumbnails per split, class and kind.
fn mistakes(o: &mut String, m: &super::report_json::MistakesReport) {
    let _ = writeln!(
        o,
        "<h2>Most confident mistakes: trial {}</h2><p class=\"note\">Per split and class, the {} wrong predictions the model was surest of, over the trial's jobs; under each image what was predicted and with what probability.</p>",
        esc(&m.trial),
        m.per_class
    );
    o.push_str("<table><tr><th class=\"l\">split</th><th class=\"l\">class</th><th class=\"l\">kind</th><th class=\"l\">images</th></tr>\n");
    let mut i = 0;
    while i < m.items.len() {
        let first = &m.items[i];
        let mut j = i;
        while j < m.items.len()
            && m.items[j].split == first.split
            && m.items[j].class == first.class
            && m.items[j].kind == first.kind
        {
            j += 1;
        }
        let kind = serde_json::to_value(first.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = write!(
            o,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\"><div class=\"mistakes\">",
            esc(&first.split),
            esc(&first.class),
            esc(&kind.replace('_', " "))
        );
        for x in &m.items[i..j] {
            let img = match &x.png {
                Some(png) => format!(
                    "<img src=\"data:image/png;base64,{}\" alt=\"{}\">",
                    base64::engine::general_purpose::STANDARD.encode(png),
                    esc(&x.path)
                ),
                None => String::from("<span>(no thumbnail)</span>"),
            };
            let said = if x.predicted.is_empty() {
                "(none)".to_string()
            } else {
                x.predicted.join(";")
            };
            let _ = write!(
                o,
                "<figure title=\"{} (job {})\">{img}<figcaption>→ {} {:.3}</figcaption></figure>",
                esc(&x.path),
                esc(&x.job),
                esc(&said),
                x.confidence
            );
        }
        o.push_str("</div></td></tr>\n");
        i = j;
    }
    o.push_str("</table>\n");
}
