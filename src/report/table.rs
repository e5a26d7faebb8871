//! The comparison tables printed after a run: mechanism by size, one table per metric.

use std::fmt::Write;

use super::{micros, size_label};
use crate::results::{CaseResult, RunFile, Status, Workload};

struct Grid {
    title: String,
    sizes: Vec<usize>,
    rows: Vec<(String, Vec<String>)>,
}

impl Grid {
    fn render(&self, out: &mut String) {
        let mut widths = vec![self
            .rows
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(0)
            .max(9)];
        for (i, s) in self.sizes.iter().enumerate() {
            let w = self
                .rows
                .iter()
                .map(|r| r.1[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(size_label(*s).len());
            widths.push(w);
        }
        let _ = writeln!(out, "{}", self.title);
        let mut header = format!("{:<w$}", "mechanism", w = widths[0]);
        for (i, s) in self.sizes.iter().enumerate() {
            let _ = write!(header, "  {:>w$}", size_label(*s), w = widths[i + 1]);
        }
        let _ = writeln!(out, "{header}");
        let _ = writeln!(out, "{}", "-".repeat(header.chars().count()));
        for (name, cells) in &self.rows {
            let mut line = format!("{name:<w$}", w = widths[0]);
            for (i, c) in cells.iter().enumerate() {
                let _ = write!(line, "  {:>w$}", c, w = widths[i + 1]);
            }
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }
}

/// Reasons for unsupported and failed cells, numbered once and referenced as `[n]`.
/// A silent `Notes` shows non-ok cells as `-` (their reasons are listed by another table).
#[derive(Default)]
struct Notes(Vec<String>, bool);

impl Notes {
    fn silent() -> Notes {
        Notes(Vec::new(), true)
    }

    fn cell(&mut self, r: &CaseResult, ok: impl FnOnce(&CaseResult) -> String) -> String {
        let word = match r.status {
            Status::Ok => return ok(r),
            _ if self.1 => return "-".into(),
            Status::Unsupported => "unsupported",
            Status::Error => "ERROR",
        };
        let text = format!(
            "{} {} {}: {}",
            r.mechanism,
            r.workload.as_str(),
            size_label(r.size),
            r.reason.as_deref().unwrap_or("no reason given")
        );
        self.0.push(text);
        format!("{word} [{}]", self.0.len())
    }
}

fn grid(
    run: &RunFile,
    workload: Workload,
    title: &str,
    notes: &mut Notes,
    cell: impl Fn(&CaseResult) -> String,
) -> Option<Grid> {
    let sizes = run.config.sizes.clone();
    let mut rows = Vec::new();
    for mech in &run.config.mechanisms {
        let cells: Vec<String> = sizes
            .iter()
            .map(|&size| {
                run.results
                    .iter()
                    .find(|r| &r.mechanism == mech && r.workload == workload && r.size == size)
                    .map(|r| notes.cell(r, &cell))
                    .unwrap_or_else(|| "-".into())
            })
            .collect();
        if cells.iter().any(|c| c != "-") {
            rows.push((mech.clone(), cells));
        }
    }
    (!rows.is_empty()).then(|| Grid {
        title: title.to_string(),
        sizes,
        rows,
    })
}

/// ` [lo-hi]`: the interval of the median p50 over repetitions, in µs.
pub fn ci_us(r: &CaseResult) -> String {
    r.p50_ci
        .map(|[lo, hi]| format!(" [{}-{}]", micros(lo), micros(hi)))
        .unwrap_or_default()
}

/// ` [lo-hi]`: the interval of the median throughput over repetitions, in MB/s.
pub fn ci_mb(r: &CaseResult) -> String {
    r.bytes_per_sec_ci
        .map(|[lo, hi]| format!(" [{:.0}-{:.0}]", lo / 1e6, hi / 1e6))
        .unwrap_or_default()
}

/// ` x120`: p50 as a multiple of the cache-line round trip.
pub fn floor_suffix(r: &CaseResult) -> String {
    r.x_floor.map(|x| format!(" x{x:.0}")).unwrap_or_default()
}

/// ` x0.25`: throughput as a fraction of memcpy bandwidth at this size.
pub fn copy_suffix(r: &CaseResult) -> String {
    r.x_copy.map(|x| format!(" x{x:.2}")).unwrap_or_default()
}

/// ` (lost 1.2%)` for lossy mechanisms that lost anything.
fn loss_suffix(r: &CaseResult) -> String {
    match (r.lost, r.loss) {
        (Some(lost), Some(frac)) if lost > 0 => format!(" (lost {:.2}%)", frac * 100.0),
        _ => String::new(),
    }
}

fn cpu_cell(r: &CaseResult) -> String {
    r.cpu
        .as_ref()
        .map(|c| micros(c.user_ns_per_msg + c.sys_ns_per_msg))
        .unwrap_or_else(|| "-".into())
}

fn find<'a>(run: &'a RunFile, mech: &str, w: Workload, size: usize) -> Option<&'a CaseResult> {
    run.results.iter().find(|r| {
        r.mechanism == mech && r.workload == w && r.size == size && r.status == Status::Ok
    })
}

/// Crate mechanisms against the raw mechanism they are built on, from the same run:
/// `p50 ratio / throughput ratio` (above 1 / below 1 means the layer costs).
fn layers(run: &RunFile) -> Option<Grid> {
    let mut rows = Vec::new();
    let mut seen = Vec::new();
    for r in &run.results {
        let Some(base) = r.built_on.as_deref() else {
            continue;
        };
        if seen.contains(&r.mechanism) {
            continue;
        }
        seen.push(r.mechanism.clone());
        let cells = run
            .config
            .sizes
            .iter()
            .map(|&size| {
                let lat = find(run, &r.mechanism, Workload::Latency, size)
                    .zip(find(run, base, Workload::Latency, size))
                    .and_then(|(c, b)| {
                        Some(c.rtt_ns.as_ref()?.p50 as f64 / b.rtt_ns.as_ref()?.p50.max(1) as f64)
                    });
                let tp = find(run, &r.mechanism, Workload::Throughput, size)
                    .zip(find(run, base, Workload::Throughput, size))
                    .and_then(|(c, b)| {
                        Some(
                            c.throughput.as_ref()?.bytes_per_sec
                                / b.throughput.as_ref()?.bytes_per_sec,
                        )
                    });
                let show =
                    |v: Option<f64>| v.map(|v| format!("{v:.2}x")).unwrap_or_else(|| "-".into());
                format!("{} / {}", show(lat), show(tp))
            })
            .collect();
        rows.push((format!("{} on {base}", r.mechanism), cells));
    }
    (!rows.is_empty()).then(|| Grid {
        title: "Crates against their raw mechanism, same run: p50 latency ratio / throughput ratio"
            .into(),
        sizes: run.config.sizes.clone(),
        rows,
    })
}

/// Renders every table for a run, followed by the numbered notes.
pub fn render(run: &RunFile) -> String {
    let mut out = String::new();
    let mut notes = Notes::default();
    let _ = writeln!(out, "{}", run.config.placement);
    if let Some(f) = &run.floor {
        let line = f
            .cacheline_rtt_ns
            .map(|v| format!("cache-line round trip {v:.0} ns"))
            .unwrap_or_else(|| "cache-line round trip not measured".into());
        let _ = writeln!(out, "floor: {line}, clock read {:.0} ns", f.clock_read_ns);
    }
    if run.config.repeat > 1 {
        let _ = writeln!(
            out,
            "{} repetitions per case, interleaved, fresh peers each time; [lo-hi]: {}",
            run.config.repeat,
            crate::stats::interval_label(run.config.repeat)
        );
    }
    out.push('\n');
    let tables = [
        grid(
            run,
            Workload::Latency,
            "Round-trip latency, p50 / p99 (µs); [interval of the median p50]; xN: p50 over the cache-line round trip",
            &mut notes,
            |r| {
                r.rtt_ns
                    .as_ref()
                    .map(|s| {
                        format!(
                            "{} / {}{}{}{}",
                            micros(s.p50 as f64),
                            micros(s.p99 as f64),
                            ci_us(r),
                            floor_suffix(r),
                            loss_suffix(r)
                        )
                    })
                    .unwrap_or_else(|| "-".into())
            },
        ),
        grid(
            run,
            Workload::Throughput,
            "Throughput, one way (MB/s, 1 MB = 10^6 bytes); [interval of the median]; xN: fraction of memcpy bandwidth",
            &mut notes,
            |r| {
                r.throughput
                    .as_ref()
                    .map(|t| format!("{:.1}{}{}{}", t.bytes_per_sec / 1e6, ci_mb(r), copy_suffix(r), loss_suffix(r)))
                    .unwrap_or_else(|| "-".into())
            },
        ),
        grid(
            run,
            Workload::Latency,
            "CPU per round trip, both processes, user+sys (µs)",
            &mut Notes::silent(),
            cpu_cell,
        ),
        grid(
            run,
            Workload::Throughput,
            "CPU per streamed message, both processes, user+sys (µs)",
            &mut Notes::silent(),
            cpu_cell,
        ),
    ];
    for t in tables.iter().flatten() {
        t.render(&mut out);
    }
    if let Some(t) = layers(run) {
        t.render(&mut out);
    }
    if let Some((header, rows)) = super::content::sync_table(run) {
        let _ = writeln!(out, "Synchronisation between processes");
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count().min(60));
            }
        }
        let line = |cells: &[String]| {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let c: String = c.chars().take(60).collect();
                    if i == 0 {
                        format!("{c:<w$}", w = widths[i])
                    } else {
                        format!("{c:>w$}", w = widths[i])
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
        };
        let head = line(&header);
        let _ = writeln!(out, "{head}\n{}", "-".repeat(head.chars().count()));
        for r in &rows {
            let _ = writeln!(out, "{}", line(r));
        }
        out.push('\n');
    }
    if !notes.0.is_empty() {
        let _ = writeln!(out, "Notes:");
        for (i, n) in notes.0.iter().enumerate() {
            let _ = writeln!(out, "  [{}] {n}", i + 1);
        }
    }
    out
}
