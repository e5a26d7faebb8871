//! Charts as SVG text, written by hand so that every element can carry what a reader needs:
//! log axes whose labelled ticks always span the data, units on every label, 12 px text or
//! larger, direct labels instead of a legend to match colours against, and a `<title>`
//! tooltip with the exact numbers on every mark. Three kinds: a sorted dot plot per size
//! (p50 dot, p99 whisker, repetition interval), small multiples of by-size lines per
//! family, and the core-to-core heatmap with its colour scale.
//!
//! Every chart's `<svg>` states its data range (`data-lo`, `data-hi`) and every tick label
//! its value (`class="tick" data-v`), so the browser check can prove the labels cover the data.

use std::fmt::Write;

use super::document::escape;
use super::size_label;

/// What the values on an axis are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unit {
    /// Nanoseconds, labelled in ns, µs, ms or s.
    Nanos,
    /// Bytes per second, labelled in kB/s, MB/s or GB/s (powers of 1000).
    BytesPerSec,
    /// Requests per second, labelled /s, k/s, M/s.
    PerSec,
    /// A multiple of something (memcpy's bandwidth), labelled x0.5, x2.
    Ratio,
}

impl Unit {
    /// A value with its unit, short enough for a tick label.
    pub fn label(self, v: f64) -> String {
        if self == Unit::Ratio {
            let digits = if v >= 1.0 { 0 } else { 2 };
            return format!("x{v:.digits$}");
        }
        let (scaled, unit) = match self {
            Unit::Nanos => match v {
                v if v >= 1e9 => (v / 1e9, "s"),
                v if v >= 1e6 => (v / 1e6, "ms"),
                v if v >= 1e3 => (v / 1e3, "µs"),
                v => (v, "ns"),
            },
            Unit::BytesPerSec => match v {
                v if v >= 1e9 => (v / 1e9, "GB/s"),
                v if v >= 1e6 => (v / 1e6, "MB/s"),
                v if v >= 1e3 => (v / 1e3, "kB/s"),
                v => (v, "B/s"),
            },
            Unit::PerSec => match v {
                v if v >= 1e6 => (v / 1e6, "M/s"),
                v if v >= 1e3 => (v / 1e3, "k/s"),
                v => (v, "/s"),
            },
            Unit::Ratio => (v, ""),
        };
        let digits = if scaled >= 10.0 || scaled.fract().abs() < 1e-9 {
            0
        } else if scaled >= 1.0 {
            1
        } else {
            2
        };
        format!("{scaled:.digits$} {unit}")
    }
}

/// A log axis from a power of ten below the data to one above it, with labelled ticks at
/// 1-2-5 steps (only at powers of ten when it spans more than three decades).
pub struct LogAxis {
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<f64>,
}

impl LogAxis {
    pub fn covering(values: impl Iterator<Item = f64>) -> Option<LogAxis> {
        let v: Vec<f64> = values.filter(|v| v.is_finite() && *v > 0.0).collect();
        let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = v.iter().cloned().fold(0.0, f64::max);
        if v.is_empty() {
            return None;
        }
        let lo = 10f64.powf(min.log10().floor());
        let mut hi = 10f64.powf(max.log10().ceil());
        if hi <= lo {
            hi = lo * 10.0;
        }
        let decades = (hi / lo).log10().round() as i32;
        let steps: &[f64] = if decades > 3 {
            &[1.0]
        } else {
            &[1.0, 2.0, 5.0]
        };
        let mut ticks = Vec::new();
        for d in 0..=decades {
            let base = lo * 10f64.powi(d);
            for s in steps {
                let t = base * s;
                if t <= hi * 1.0001 {
                    ticks.push(t);
                }
            }
        }
        Some(LogAxis { lo, hi, ticks })
    }

    /// Position of `v` between `a` (at lo) and `b` (at hi).
    pub fn at(&self, v: f64, a: f64, b: f64) -> f64 {
        let t = (v.max(self.lo).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln());
        a + t * (b - a)
    }
}

/// Colours by family: one distinct hue each, dark enough for text on white.
pub fn family_colour(family: &str) -> &'static str {
    match family {
        "message-passing" => "#1f5fa8",
        "sockets" => "#1b7f3b",
        "shm" => "#c0501a",
        "crates" => "#7b3fa6",
        "sync" => "#555555",
        "calibration" => "#8a6d3b",
        _ => "#222222",
    }
}

/// Distinct colours for the lines of one panel.
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

const FONT: &str = "font-family=\"system-ui,sans-serif\"";

fn open(out: &mut String, w: f64, h: f64, title: &str, lo: f64, hi: f64) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" {FONT} font-size=\"13\" data-lo=\"{lo}\" data-hi=\"{hi}\" role=\"img\"><title>{t}</title><rect width=\"100%\" height=\"100%\" fill=\"white\"/><text x=\"12\" y=\"24\" font-size=\"17\" font-weight=\"bold\">{t}</text>",
        t = escape(title)
    );
}

fn text(out: &mut String, x: f64, y: f64, anchor: &str, extra: &str, s: &str) {
    let _ = write!(
        out,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" {extra}>{}</text>",
        escape(s)
    );
}

/// Vertical grid lines and labelled ticks of a horizontal log axis at `y` (the data axis:
/// its ticks are the ones checked against the chart's declared range).
fn x_axis(out: &mut String, axis: &LogAxis, unit: Unit, x0: f64, x1: f64, top: f64, y: f64) {
    x_axis_as(out, axis, unit, (x0, x1, top, y), "tick")
}

fn x_axis_as(out: &mut String, axis: &LogAxis, unit: Unit, at: (f64, f64, f64, f64), class: &str) {
    let (x0, x1, top, y) = at;
    for &t in &axis.ticks {
        let x = axis.at(t, x0, x1);
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{y:.1}\" stroke=\"#e3e3e3\"/>"
        );
        text(
            out,
            x,
            y + 18.0,
            "middle",
            &format!("class=\"{class}\" data-v=\"{t}\" fill=\"#333\""),
            &unit.label(t),
        );
    }
    let _ = write!(
        out,
        "<line x1=\"{x0:.1}\" y1=\"{y:.1}\" x2=\"{x1:.1}\" y2=\"{y:.1}\" stroke=\"#888\"/>"
    );
}

/// Horizontal grid lines and labelled ticks of a vertical log axis at `x`.
fn y_axis(out: &mut String, axis: &LogAxis, unit: Unit, x: f64, x1: f64, y0: f64, y1: f64) {
    for &t in &axis.ticks {
        let y = axis.at(t, y0, y1);
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{x1:.1}\" y2=\"{y:.1}\" stroke=\"#e3e3e3\"/>"
        );
        text(
            out,
            x - 6.0,
            y + 4.0,
            "end",
            &format!("class=\"tick\" data-v=\"{t}\" fill=\"#333\" font-size=\"12\""),
            &unit.label(t),
        );
    }
    let _ = write!(
        out,
        "<line x1=\"{x:.1}\" y1=\"{y0:.1}\" x2=\"{x:.1}\" y2=\"{y1:.1}\" stroke=\"#888\"/>"
    );
}

/// One mechanism in a dot plot.
pub struct Dot {
    pub name: String,
    pub family: String,
    /// The headline value (p50, or bytes/s).
    pub value: f64,
    /// A tail drawn as a whisker from the dot (p99), if any.
    pub whisker: Option<f64>,
    /// The interval of the median over repetitions, if any.
    pub interval: Option<[f64; 2]>,
    /// Every exact number, shown on hover.
    pub tooltip: String,
}

/// A sorted dot plot: one labelled row per mechanism, best first; `gaps` are mechanisms
/// with no value at this size and why (`unsupported`, `ERROR`), listed under the rows.
pub struct DotPlot {
    pub title: String,
    pub unit: Unit,
    /// A line under the title saying what the marks are.
    pub key: String,
    pub rows: Vec<Dot>,
    pub gaps: Vec<(String, String)>,
}

pub fn dot_plot(c: &DotPlot) -> Option<String> {
    let axis = LogAxis::covering(c.rows.iter().flat_map(|r| {
        let mut v = vec![r.value];
        v.extend(r.whisker);
        v.extend(r.interval.iter().flatten());
        v
    }))?;
    let lo = c.rows.iter().map(|r| r.value).fold(f64::INFINITY, f64::min);
    let hi = c
        .rows
        .iter()
        .flat_map(|r| std::iter::once(r.value).chain(r.whisker))
        .fold(0.0, f64::max);
    let (w, left, right, top, row_h) = (900.0, 190.0, 870.0, 64.0, 24.0);
    let plot_bottom = top + row_h * c.rows.len() as f64;
    let h = plot_bottom + 44.0 + 20.0 * c.gaps.len() as f64 + 8.0;
    let mut out = String::new();
    open(&mut out, w, h, &c.title, lo, hi);
    text(&mut out, 12.0, 46.0, "start", "fill=\"#444\"", &c.key);
    x_axis(&mut out, &axis, c.unit, left, right, top, plot_bottom);
    for (i, r) in c.rows.iter().enumerate() {
        let y = top + row_h * (i as f64 + 0.5);
        let col = family_colour(&r.family);
        let _ = write!(out, "<g><title>{}</title>", escape(&r.tooltip));
        if i % 2 == 0 {
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{row_h}\" fill=\"#f6f6f6\"/>",
                12.0,
                y - row_h / 2.0,
                right - 12.0
            );
        }
        text(
            &mut out,
            left - 10.0,
            y + 4.5,
            "end",
            &format!("fill=\"{col}\""),
            &r.name,
        );
        let x = axis.at(r.value, left, right);
        if let Some([a, b]) = r.interval {
            let (xa, xb) = (axis.at(a, left, right), axis.at(b, left, right));
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"10\" fill=\"{col}\" fill-opacity=\"0.25\"/>",
                xa,
                y - 5.0,
                (xb - xa).max(1.0)
            );
        }
        if let Some(t) = r.whisker {
            let xt = axis.at(t, left, right);
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{xt:.1}\" y2=\"{y:.1}\" stroke=\"{col}\" stroke-width=\"1.5\"/><line x1=\"{xt:.1}\" y1=\"{:.1}\" x2=\"{xt:.1}\" y2=\"{:.1}\" stroke=\"{col}\" stroke-width=\"1.5\"/>",
                y - 5.0,
                y + 5.0
            );
        }
        let _ = write!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"5\" fill=\"{col}\"/></g>"
        );
    }
    for (i, (name, why)) in c.gaps.iter().enumerate() {
        let y = plot_bottom + 44.0 + 20.0 * i as f64;
        text(&mut out, left - 10.0, y, "end", "fill=\"#888\"", name);
        text(&mut out, left, y, "start", "fill=\"#888\"", why);
    }
    out.push_str("</svg>");
    Some(out)
}

/// Labels for line ends, in a column at `x`, each at its line's last height (`y`, label,
/// colour) and pushed down just enough that none overlaps the one above.
fn end_labels(out: &mut String, x: f64, mut ends: Vec<(f64, String, &str)>) {
    ends.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut last = f64::NEG_INFINITY;
    for (y, label, col) in ends {
        let ly = (y + 4.0).max(last + 14.0);
        last = ly;
        text(
            out,
            x,
            ly,
            "start",
            &format!("fill=\"{col}\" font-size=\"12\""),
            &label,
        );
    }
}

/// One mechanism's line across sizes in a small-multiples panel.
pub struct Line {
    pub name: String,
    /// (size, value) where the case succeeded.
    pub points: Vec<(usize, f64)>,
    /// The first size at which it did not run, and the word for why (`unsupported`).
    pub stops: Option<(usize, String)>,
    /// Tooltip per point, in the order of `points`.
    pub tooltips: Vec<String>,
}

pub struct Panel {
    pub family: String,
    pub lines: Vec<Line>,
}

/// Small multiples: one panel per family, every panel on the same log axes, each line
/// labelled at its end.
pub struct SmallMultiples {
    pub title: String,
    pub unit: Unit,
    pub sizes: Vec<usize>,
    pub panels: Vec<Panel>,
}

pub fn small_multiples(c: &SmallMultiples) -> Option<String> {
    let values = || {
        c.panels
            .iter()
            .flat_map(|p| p.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)))
    };
    let axis = LogAxis::covering(values())?;
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(0.0, f64::max);
    if c.sizes.is_empty() {
        return None;
    }
    let (pw, ph) = (620.0, 300.0);
    let cols = c.panels.len().clamp(1, 2);
    let rows = c.panels.len().div_ceil(cols);
    let (w, h) = (pw * cols as f64, 40.0 + ph * rows as f64);
    let mut out = String::new();
    open(&mut out, w, h, &c.title, lo, hi);
    // Sizes on a log axis: 64 B to 4 KiB spans as much as 64 KiB to 4 MiB.
    let (first, last) = (
        c.sizes.iter().copied().min().unwrap_or(1).max(1) as f64,
        c.sizes.iter().copied().max().unwrap_or(1).max(1) as f64,
    );
    let xi = |size: usize| -> f64 {
        if last <= first {
            return 0.5;
        }
        ((size.max(1) as f64).ln() - first.ln()) / (last.ln() - first.ln())
    };
    for (k, panel) in c.panels.iter().enumerate() {
        let (px, py) = (pw * (k % cols) as f64, 40.0 + ph * (k / cols) as f64);
        let (x0, x1, y0, y1) = (px + 80.0, px + pw - 240.0, py + ph - 50.0, py + 30.0);
        text(
            &mut out,
            px + 12.0,
            py + 18.0,
            "start",
            &format!(
                "font-weight=\"bold\" fill=\"{}\"",
                family_colour(&panel.family)
            ),
            &panel.family,
        );
        y_axis(&mut out, &axis, c.unit, x0, x1, y0, y1);
        for &s in &c.sizes {
            let x = x0 + xi(s) * (x1 - x0);
            text(
                &mut out,
                x,
                y0 + 18.0,
                "middle",
                "fill=\"#333\" font-size=\"12\"",
                &size_label(s),
            );
        }
        text(
            &mut out,
            (x0 + x1) / 2.0,
            y0 + 36.0,
            "middle",
            "fill=\"#555\" font-size=\"12\"",
            "message size",
        );
        // End labels, pushed apart so that none overlaps the next.
        let mut ends: Vec<(f64, String, &str)> = Vec::new();
        for (i, l) in panel.lines.iter().enumerate() {
            let col = PALETTE[i % PALETTE.len()];
            let pts: Vec<(f64, f64)> = l
                .points
                .iter()
                .map(|&(s, v)| (x0 + xi(s) * (x1 - x0), axis.at(v, y0, y1)))
                .collect();
            let _ = write!(out, "<g>");
            if pts.len() > 1 {
                let d: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = write!(
                    out,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{col}\" stroke-width=\"2\"/>",
                    d.join(" ")
                );
            }
            for (j, (x, y)) in pts.iter().enumerate() {
                let tip = l.tooltips.get(j).map(String::as_str).unwrap_or("");
                let _ = write!(
                    out,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{col}\"><title>{}</title></circle>",
                    escape(tip)
                );
            }
            // Where a line stops at a limit: a grey cross at the first size it could not run.
            if let (Some((size, why)), Some(&(_, y))) = (&l.stops, pts.last()) {
                let x = x0 + xi(*size) * (x1 - x0);
                let _ = write!(
                    out,
                    "<path d=\"M{:.1},{:.1}l8,8m0,-8l-8,8\" stroke=\"#999\" stroke-width=\"2\"><title>{}: {why} at {}</title></path>",
                    x - 4.0,
                    y - 4.0,
                    escape(&l.name),
                    size_label(*size)
                );
            }
            let _ = write!(out, "</g>");
            if let Some(&(_, y)) = pts.last() {
                let label = match &l.stops {
                    Some((size, why)) => format!("{} ({why} from {})", l.name, size_label(*size)),
                    None => l.name.clone(),
                };
                ends.push((y, label, col));
            }
        }
        end_labels(&mut out, x1 + 12.0, ends);
    }
    out.push_str("</svg>");
    Some(out)
}

/// One mechanism's load sweep: p99 and p50 against the achieved rate.
pub struct Curve {
    pub name: String,
    pub family: String,
    /// (achieved rate, p99 ns), in sweep order.
    pub p99: Vec<(f64, f64)>,
    /// (achieved rate, p50 ns).
    pub p50: Vec<(f64, f64)>,
    pub tooltips: Vec<String>,
    /// The knee's achieved rate, marked on the p99 line.
    pub knee: Option<f64>,
}

/// Latency against achieved rate, log-log: a solid p99 line and a dashed p50 line per
/// mechanism, labelled at their ends, the latency budget as a horizontal line.
pub struct Curves {
    pub title: String,
    /// The line under the title saying what the marks are, and the x axis's name.
    pub key: String,
    pub x_label: String,
    pub curves: Vec<Curve>,
    pub slo_ns: Option<f64>,
}

pub fn curves(c: &Curves) -> Option<String> {
    let ys = || {
        c.curves
            .iter()
            .flat_map(|k| k.p99.iter().chain(&k.p50).map(|p| p.1))
            .chain(c.slo_ns)
    };
    let xs = || c.curves.iter().flat_map(|k| k.p99.iter().map(|p| p.0));
    let yaxis = LogAxis::covering(ys())?;
    let xaxis = LogAxis::covering(xs())?;
    let lo = ys().fold(f64::INFINITY, f64::min);
    let hi = ys().fold(0.0, f64::max);
    let (w, h) = (1000.0, 560.0);
    let (x0, x1, y0, y1) = (90.0, w - 200.0, h - 60.0, 60.0);
    let mut out = String::new();
    open(&mut out, w, h, &c.title, lo, hi);
    text(&mut out, 12.0, 46.0, "start", "fill=\"#444\"", &c.key);
    y_axis(&mut out, &yaxis, Unit::Nanos, x0, x1, y0, y1);
    x_axis_as(&mut out, &xaxis, Unit::PerSec, (x0, x1, y1, y0), "xtick");
    text(
        &mut out,
        (x0 + x1) / 2.0,
        h - 14.0,
        "middle",
        "fill=\"#555\" font-size=\"12\"",
        &c.x_label,
    );
    if let Some(slo) = c.slo_ns {
        let y = yaxis.at(slo, y0, y1);
        let _ = write!(
            out,
            "<line x1=\"{x0:.1}\" y1=\"{y:.1}\" x2=\"{x1:.1}\" y2=\"{y:.1}\" stroke=\"#c00\" stroke-dasharray=\"6,4\"/>"
        );
        text(
            &mut out,
            x1 + 8.0,
            y + 4.0,
            "start",
            "fill=\"#c00\" font-size=\"12\"",
            &format!("budget {}", Unit::Nanos.label(slo)),
        );
    }
    let mut ends: Vec<(f64, String, &str)> = Vec::new();
    for (i, k) in c.curves.iter().enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        let at = |p: &(f64, f64)| (xaxis.at(p.0, x0, x1), yaxis.at(p.1, y0, y1));
        for (pts, dash) in [(&k.p99, ""), (&k.p50, " stroke-dasharray=\"4,3\"")] {
            let d: Vec<String> = pts
                .iter()
                .map(|p| {
                    let (x, y) = at(p);
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            if d.len() > 1 {
                let _ = write!(out, "<polyline points=\"{}\" fill=\"none\" stroke=\"{col}\" stroke-width=\"2\"{dash}/>", d.join(" "));
            }
        }
        for (j, p) in k.p99.iter().enumerate() {
            let (x, y) = at(p);
            let tip = k.tooltips.get(j).map(String::as_str).unwrap_or("");
            let _ = write!(out, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{col}\"><title>{}</title></circle>", escape(tip));
            if k.knee == Some(p.0) {
                let _ = write!(out, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"9\" fill=\"none\" stroke=\"{col}\" stroke-width=\"2\"><title>{}: knee at {}</title></circle>", escape(&k.name), Unit::PerSec.label(p.0));
            }
        }
        if let Some(p) = k.p99.last() {
            ends.push((at(p).1, k.name.clone(), col));
        }
    }
    end_labels(&mut out, x1 + 12.0, ends);
    out.push_str("</svg>");
    Some(out)
}

/// A core-to-core heatmap: rows are the parent's CPU, columns the peer's, colour from pale
/// (fast) to dark (slow) on a log scale with its scale drawn beside it, each cell labelled.
pub fn heatmap(m: &crate::matrix::Matrix) -> Option<String> {
    let n = m.cpus.len();
    let vals: Vec<f64> = m
        .p50_ns
        .iter()
        .flatten()
        .flatten()
        .map(|&v| v as f64)
        .collect();
    if n == 0 || vals.is_empty() {
        return None;
    }
    let lo = vals.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().cloned().fold(0.0, f64::max);
    let shade = |v: f64| -> (u8, u8) {
        let t = if hi > lo {
            (v.ln() - lo.ln()) / (hi.ln() - lo.ln())
        } else {
            0.5
        };
        let c = (235.0 - 170.0 * t) as u8;
        (c, if t > 0.6 { 255 } else { 0 })
    };
    let cell = (480 / n).clamp(40, 120) as f64;
    let (x0, y0) = (110.0, 90.0);
    let w = x0 + cell * n as f64 + 200.0;
    let h = y0 + cell * n as f64 + 30.0;
    let mut out = String::new();
    let title = format!(
        "{} round-trip p50 at {} by CPU pair",
        m.mechanism,
        size_label(m.size)
    );
    open(&mut out, w, h, &title, lo, hi);
    text(
        &mut out,
        12.0,
        46.0,
        "start",
        "fill=\"#444\"",
        "rows: parent CPU, columns: peer CPU; cells: p50 round trip",
    );
    for (j, cpu) in m.cpus.iter().enumerate() {
        let c = x0 + cell * (j as f64 + 0.5);
        text(&mut out, c, y0 - 8.0, "middle", "", &format!("CPU {cpu}"));
        text(
            &mut out,
            x0 - 8.0,
            y0 + cell * (j as f64 + 0.5) + 4.0,
            "end",
            "",
            &format!("CPU {cpu}"),
        );
    }
    for (i, row) in m.p50_ns.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            let (x, y) = (x0 + cell * j as f64, y0 + cell * i as f64);
            let (fill, ink, label) = match v {
                Some(v) => {
                    let (c, ink) = shade(*v as f64);
                    (
                        format!("rgb({c},{c},255)"),
                        ink,
                        Unit::Nanos.label(*v as f64),
                    )
                }
                None => ("#e6e6e6".into(), 0, "-".into()),
            };
            let _ = write!(
                out,
                "<g><title>parent CPU {}, peer CPU {}: {label}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\"/>",
                m.cpus[i],
                m.cpus[j],
                cell - 2.0,
                cell - 2.0
            );
            let col = if ink > 0 { "white" } else { "#111" };
            text(
                &mut out,
                x + cell / 2.0,
                y + cell / 2.0 + 4.0,
                "middle",
                &format!("fill=\"{col}\" font-size=\"12\""),
                &label,
            );
            out.push_str("</g>");
        }
    }
    // The colour scale: a gradient from the fastest to the slowest pair, labelled at both ends.
    let (sx, sy, sh) = (x0 + cell * n as f64 + 40.0, y0, (cell * n as f64).max(80.0));
    let (clo, _) = shade(lo);
    let (chi, _) = shade(hi);
    let _ = write!(
        out,
        "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\"><stop offset=\"0\" stop-color=\"rgb({clo},{clo},255)\"/><stop offset=\"1\" stop-color=\"rgb({chi},{chi},255)\"/></linearGradient></defs><rect x=\"{sx:.1}\" y=\"{sy:.1}\" width=\"18\" height=\"{sh:.1}\" fill=\"url(#scale)\" stroke=\"#888\"/>"
    );
    text(
        &mut out,
        sx + 24.0,
        sy + 10.0,
        "start",
        &format!("class=\"tick\" data-v=\"{lo}\" font-size=\"12\""),
        &format!("{} (fastest)", Unit::Nanos.label(lo)),
    );
    text(
        &mut out,
        sx + 24.0,
        sy + sh,
        "start",
        &format!("class=\"tick\" data-v=\"{hi}\" font-size=\"12\""),
        &format!("{} (slowest)", Unit::Nanos.label(hi)),
    );
    text(
        &mut out,
        sx,
        sy - 8.0,
        "start",
        "font-size=\"12\"",
        "p50, log scale",
    );
    out.push_str("</svg>");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_span_the_data_with_labelled_ticks() {
        let a = LogAxis::covering([240.0, 45_000.0, 3_000_000.0].into_iter()).unwrap();
        assert!(a.ticks.first().unwrap() <= &240.0 && a.ticks.last().unwrap() >= &3_000_000.0);
        let one = LogAxis::covering([5e9].into_iter()).unwrap();
        assert!(one.ticks.len() >= 2, "a single value still gets two labels");
        assert_eq!(Unit::Nanos.label(1e6), "1 ms");
        assert_eq!(Unit::Nanos.label(240.0), "240 ns");
        assert_eq!(Unit::Nanos.label(2000.0), "2 µs");
        assert_eq!(Unit::BytesPerSec.label(5e9), "5 GB/s");
        assert!(LogAxis::covering(std::iter::empty()).is_none());
    }
}
