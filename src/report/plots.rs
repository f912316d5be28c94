//! SVG plots for the HTML report, drawn with plotters: learning curves with a min–max band over
//! folds, the selection metric against each swept parameter, and a confusion-matrix heatmap.

use plotters::prelude::*;

use super::report_json::Report;

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Pads a value range so that a flat series still gets a visible axis.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

/// Learning curves: per trial, the mean over folds of the validation best metric per epoch,
/// with a min–max band.
pub fn learning_curves(r: &Report) -> Result<String, String> {
    let mut svg = String::new();
    draw_curves(r, &mut svg).map_err(|e| e.to_string())?;
    Ok(svg)
}

fn draw_curves(r: &Report, svg: &mut String) -> DrawResult {
    let curves: Vec<_> = r.trials.iter().filter(|t| !t.curve.is_empty()).collect();
    let max_epoch = curves
        .iter()
        .flat_map(|t| t.curve.iter().map(|c| c.0))
        .max()
        .unwrap_or(1)
        .max(2);
    let lo = curves
        .iter()
        .flat_map(|t| t.curve.iter().map(|c| c.2))
        .fold(f64::INFINITY, f64::min);
    let hi = curves
        .iter()
        .flat_map(|t| t.curve.iter().map(|c| c.3))
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = padded(lo, hi);
    {
        let root = SVGBackend::with_string(svg, (900, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "validation {} per epoch (mean over folds, band min–max)",
                    r.best_metric
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(1f64..max_epoch as f64, lo..hi)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .x_labels(max_epoch.min(20))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc("epoch")
            .y_desc(r.best_metric.as_str())
            .draw()?;
        for (i, t) in curves.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let mut band: Vec<(f64, f64)> = t.curve.iter().map(|c| (c.0 as f64, c.3)).collect();
            band.extend(t.curve.iter().rev().map(|c| (c.0 as f64, c.2)));
            chart.draw_series(std::iter::once(Polygon::new(
                band,
                color.mix(0.15).filled(),
            )))?;
            chart
                .draw_series(LineSeries::new(
                    t.curve.iter().map(|c| (c.0 as f64, c.1)),
                    color.stroke_width(2),
                ))?
                .label(format!("trial {}", t.label))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart.draw_series(
                t.curve
                    .iter()
                    .map(|c| Circle::new((c.0 as f64, c.1), 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
        root.present()?;
    }
    Ok(())
}

/// A numeric view of a parameter value: numbers as they are, anything else `None`.
fn numeric(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
}

/// One scatter per swept parameter: each trial's mean selection metric against its value (log
/// x-axis when positive values span more than a factor of 20). Non-numeric parameters are
/// plotted by the position of their value among the sorted distinct values.
pub fn parameter_scatters(r: &Report) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for p in super::markdown::param_names(r) {
        let mut svg = String::new();
        draw_scatter(r, &p, &mut svg).map_err(|e| e.to_string())?;
        out.push((p, svg));
    }
    Ok(out)
}

fn draw_scatter(r: &Report, param: &str, svg: &mut String) -> DrawResult {
    let mut categories: Vec<String> = r
        .trials
        .iter()
        .filter_map(|t| t.params.get(param))
        .filter(|v| numeric(v).is_none())
        .map(|v| v.to_string())
        .collect();
    categories.sort();
    categories.dedup();
    let points: Vec<(f64, f64)> = r
        .trials
        .iter()
        .filter_map(|t| {
            let v = t.params.get(param)?;
            let x = numeric(v).or_else(|| {
                let text = v.to_string();
                categories.iter().position(|c| *c == text).map(|i| i as f64)
            })?;
            Some((x, *t.mean.get(&r.best_metric)?))
        })
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let xlo = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let xhi = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let (ylo, yhi) = padded(
        points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
        points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
    );
    let log = categories.is_empty() && xlo > 0.0 && xhi / xlo > 20.0;
    let root = SVGBackend::with_string(svg, (440, 320)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(format!("{} vs {param}", r.best_metric), ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(60);
    let desc = if categories.is_empty() {
        param.to_string()
    } else {
        format!("{param} (index of {})", categories.join(", "))
    };
    let color = COLORS[0];
    if log {
        let mut chart = builder.build_cartesian_2d((xlo / 1.5..xhi * 1.5).log_scale(), ylo..yhi)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .x_desc(format!("{desc} (log scale)"))
            .y_desc(r.best_metric.as_str())
            .draw()?;
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 5, color.filled())))?;
    } else {
        let (xlo, xhi) = padded(xlo, xhi);
        let mut chart = builder.build_cartesian_2d(xlo..xhi, ylo..yhi)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .x_desc(desc.clone())
            .y_desc(r.best_metric.as_str())
            .draw()?;
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 5, color.filled())))?;
    }
    root.present()?;
    Ok(())
}

/// The best trial's summed validation confusion matrix as a heatmap with counts.
pub fn confusion_heatmap(r: &Report) -> Result<Option<String>, String> {
    let Some(cm) = r.best.as_ref().and_then(|b| b.confusion_matrix.as_ref()) else {
        return Ok(None);
    };
    let mut svg = String::new();
    draw_heatmap(r, cm, &mut svg).map_err(|e| e.to_string())?;
    Ok(Some(svg))
}

fn draw_heatmap(r: &Report, cm: &[Vec<f64>], svg: &mut String) -> DrawResult {
    let n = cm.len().max(1);
    let max = cm.iter().flatten().copied().fold(0.0, f64::max).max(1.0);
    let names: Vec<String> = (0..n)
        .map(|i| r.classes.get(i).cloned().unwrap_or_else(|| i.to_string()))
        .collect();
    let root = SVGBackend::with_string(svg, (560, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "best trial: validation confusion matrix (summed over folds)",
            ("sans-serif", 15),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..n as f64, n as f64..0f64)?;
    let label = |v: &f64| {
        let i = v.floor() as usize;
        if (*v - i as f64 - 0.5).abs() < 1e-9 {
            names.get(i).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(2 * n + 1)
        .y_labels(2 * n + 1)
        .x_label_formatter(&label)
        .y_label_formatter(&label)
        .x_desc("predicted")
        .y_desc("true")
        .draw()?;
    for (i, row) in cm.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            let s = (v / max).sqrt();
            let shade = RGBColor(
                (255.0 - 224.0 * s) as u8,
                (255.0 - 136.0 * s) as u8,
                (255.0 - 75.0 * s) as u8,
            );
            chart.draw_series(std::iter::once(Rectangle::new(
                [(j as f64, i as f64), (j as f64 + 1.0, i as f64 + 1.0)],
                shade.filled(),
            )))?;
            let text_color = if s > 0.6 { WHITE } else { BLACK };
            chart.draw_series(std::iter::once(Text::new(
                format!("{v}"),
                (j as f64 + 0.3, i as f64 + 0.4),
                ("sans-serif", 12).into_font().color(&text_color),
            )))?;
        }
    }
    root.present()?;
    Ok(())
}
