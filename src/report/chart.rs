//! Line charts as SVG text (plotters' SVG backend): log-log axes with units, one line per
//! mechanism, colours fixed by family, and the legend in its own column so it never
//! covers data.

use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;

use super::size_label;

/// One mechanism's line: points and optional secondary marks (e.g. p99 above p50).
pub struct Series {
    pub name: String,
    pub family: String,
    pub points: Vec<(f64, f64)>,
    pub marks: Vec<(f64, f64)>,
}

pub struct LineChart {
    pub title: String,
    pub y_label: String,
    /// Formats a y value for the axis.
    pub y_format: fn(f64) -> String,
    pub sizes: Vec<usize>,
    pub series: Vec<Series>,
    /// What the hollow marks mean, if any.
    pub marks_note: Option<String>,
}

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 560;
const LEGEND: u32 = 250;

/// Colours by family, several shades each, so families read as groups across all charts.
pub fn colour(family: &str, index: usize) -> RGBColor {
    let shades: &[(u8, u8, u8)] = match family {
        "message-passing" => &[
            (31, 78, 156),
            (58, 123, 213),
            (106, 165, 236),
            (20, 50, 110),
            (150, 190, 240),
        ],
        "sockets" => &[
            (27, 120, 55),
            (77, 175, 74),
            (140, 205, 120),
            (10, 80, 30),
            (180, 220, 100),
            (60, 140, 110),
        ],
        "shm" => &[
            (200, 60, 20),
            (240, 130, 40),
            (180, 30, 60),
            (250, 180, 80),
            (140, 40, 10),
            (220, 90, 120),
        ],
        "crates" => &[
            (110, 60, 160),
            (160, 110, 210),
            (80, 30, 120),
            (190, 150, 230),
        ],
        "sync" => &[(90, 90, 90), (140, 140, 140), (50, 50, 50), (170, 170, 120)],
        "calibration" => &[(120, 100, 70), (160, 140, 100)],
        _ => &[(0, 0, 0)],
    };
    let (r, g, b) = shades[index % shades.len()];
    RGBColor(r, g, b)
}

fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let v: Vec<f64> = values.filter(|v| v.is_finite() && *v > 0.0).collect();
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(0.0, f64::max);
    (!v.is_empty()).then_some((lo / 1.6, hi * 1.6))
}

/// Renders the chart; `None` if there is nothing to draw.
pub fn render(c: &LineChart) -> Option<String> {
    let (y0, y1) = bounds(
        c.series
            .iter()
            .flat_map(|s| s.points.iter().chain(&s.marks).map(|p| p.1)),
    )?;
    let xs: Vec<f64> = c.sizes.iter().map(|&s| s as f64).collect();
    let (x0, x1) = bounds(xs.iter().cloned())?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let (plot, legend) = root.split_horizontally(WIDTH - LEGEND);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&c.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d(
                (x0..x1).log_scale().with_key_points(xs.clone()),
                (y0..y1).log_scale(),
            )
            .ok()?;
        chart
            .configure_mesh()
            .x_desc("message size (bytes, log scale)")
            .y_desc(c.y_label.as_str())
            .x_label_formatter(&|v| size_label(v.round() as usize))
            .y_label_formatter(&|v| (c.y_format)(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .ok()?;
        let mut family_index: Vec<(String, usize)> = Vec::new();
        let mut legend_rows = Vec::new();
        for s in &c.series {
            let i = match family_index.iter_mut().find(|(f, _)| *f == s.family) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    family_index.push((s.family.clone(), 0));
                    0
                }
            };
            let col = colour(&s.family, i);
            if s.points.len() > 1 {
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().cloned(),
                        col.stroke_width(2),
                    ))
                    .ok()?;
            }
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, col.filled())))
                .ok()?;
            chart
                .draw_series(
                    s.marks
                        .iter()
                        .map(|&p| Circle::new(p, 4, col.stroke_width(1))),
                )
                .ok()?;
            legend_rows.push((s.name.clone(), s.family.clone(), col));
        }
        // The legend, grouped by family, in its own column.
        let mut y = 20;
        let mut last_family = String::new();
        for (name, family, col) in legend_rows {
            if family != last_family {
                legend
                    .draw(&Text::new(
                        family.clone(),
                        (10, y),
                        ("sans-serif", 14).into_font().style(FontStyle::Bold),
                    ))
                    .ok()?;
                y += 18;
                last_family = family;
            }
            legend
                .draw(&PathElement::new(
                    vec![(14, y + 7), (40, y + 7)],
                    col.stroke_width(3),
                ))
                .ok()?;
            legend
                .draw(&Text::new(name, (48, y), ("sans-serif", 13)))
                .ok()?;
            y += 17;
        }
        if let Some(note) = &c.marks_note {
            legend
                .draw(&Text::new(note.clone(), (10, y + 10), ("sans-serif", 12)))
                .ok()?;
        }
        root.present().ok()?;
    }
    Some(svg)
}

/// Axis label for nanoseconds shown as microseconds.
pub fn us_axis(ns: f64) -> String {
    let us = ns / 1000.0;
    if us >= 1.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.2} µs")
    }
}

/// Axis label for bytes per second.
pub fn rate_axis(bps: f64) -> String {
    if bps >= 1e9 {
        format!("{:.0} GB/s", bps / 1e9)
    } else if bps >= 1e6 {
        format!("{:.0} MB/s", bps / 1e6)
    } else {
        format!("{:.0} kB/s", bps / 1e3)
    }
}

/// A core-to-core heatmap: rows are the parent's CPU, columns the peer's; colour from
/// pale (fast) to dark (slow) on a log scale, each cell labelled with its p50.
pub fn heatmap(m: &crate::matrix::Matrix) -> Option<String> {
    let n = m.cpus.len();
    let vals: Vec<f64> = m
        .p50_ns
        .iter()
        .flatten()
        .flatten()
        .map(|&v| v as f64)
        .collect();
    let (lo, hi) = (
        vals.iter().cloned().fold(f64::INFINITY, f64::min),
        vals.iter().cloned().fold(0.0, f64::max),
    );
    if n == 0 || vals.is_empty() {
        return None;
    }
    let cell = (480 / n as u32).clamp(24, 120);
    let (w, h) = (120 + cell * n as u32 + 40, 90 + cell * n as u32 + 40);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        root.draw(&Text::new(
            format!(
                "{} round-trip p50 at {} by CPU pair",
                m.mechanism,
                size_label(m.size)
            ),
            (10, 10),
            ("sans-serif", 16),
        ))
        .ok()?;
        root.draw(&Text::new(
            "rows: parent CPU, columns: peer CPU",
            (10, 32),
            ("sans-serif", 12),
        ))
        .ok()?;
        let (x0, y0) = (100i32, 70i32);
        for (j, cpu) in m.cpus.iter().enumerate() {
            let x = x0 + (j as i32) * cell as i32 + cell as i32 / 2 - 6;
            root.draw(&Text::new(
                format!("{cpu}"),
                (x, y0 - 16),
                ("sans-serif", 12),
            ))
            .ok()?;
            let y = y0 + (j as i32) * cell as i32 + cell as i32 / 2 - 6;
            root.draw(&Text::new(
                format!("CPU {cpu}"),
                (x0 - 60, y),
                ("sans-serif", 12),
            ))
            .ok()?;
        }
        for (i, row) in m.p50_ns.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let (x, y) = (x0 + (j as i32) * cell as i32, y0 + (i as i32) * cell as i32);
                let (fill, label) = match v {
                    Some(v) => {
                        let t = if hi > lo {
                            ((*v as f64).ln() - lo.ln()) / (hi.ln() - lo.ln())
                        } else {
                            0.5
                        };
                        let c = (235.0 - 170.0 * t) as u8;
                        (RGBColor(c, c, 255), super::micros(*v as f64))
                    }
                    None => (RGBColor(230, 230, 230), "-".to_string()),
                };
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell as i32 - 2, y + cell as i32 - 2)],
                    fill.filled(),
                ))
                .ok()?;
                root.draw(&Text::new(
                    label,
                    (x + 4, y + cell as i32 / 2 - 6),
                    ("sans-serif", 11),
                ))
                .ok()?;
            }
        }
        root.present().ok()?;
    }
    Some(svg)
}
