//! Run-to-run comparison for people and CI: every (mechanism, workload, size) present and ok
//! in both files, with p50, p99 and throughput old, new and change; changes beyond the
//! threshold are marked, and regressions can fail the command.

use std::fmt::Write;

use super::size_label;
use crate::results::{RunFile, Status, Workload};

/// Default threshold in percent. Two back-to-back `run --quick` of the same build on the
/// 2-vCPU reference VM differed, over 62 (mechanism, size) pairs, by a median of 21% and a
/// 90th percentile of 46% in p50 latency, and 23% / 65% in throughput (cross-core wake-ups
/// vary with the host). 50% keeps noise from being called a regression; use longer runs
/// and a lower threshold to catch smaller changes.
pub const DEFAULT_THRESHOLD: f64 = 50.0;

pub struct Row {
    pub mechanism: String,
    pub workload: Workload,
    pub size: usize,
    pub metric: &'static str,
    pub old: f64,
    pub new: f64,
    /// Positive means better.
    pub gain_pct: f64,
}

pub struct Comparison {
    pub warnings: Vec<String>,
    pub rows: Vec<Row>,
    pub threshold: f64,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.gain_pct < -self.threshold)
            .count()
    }

    pub fn improvements(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.gain_pct > self.threshold)
            .count()
    }
}

fn differs<T: PartialEq + std::fmt::Debug>(
    what: &str,
    a: &Option<T>,
    b: &Option<T>,
    out: &mut Vec<String>,
) {
    if a != b {
        out.push(format!("different {what}: {a:?} vs {b:?}"));
    }
}

pub fn compare(old: &RunFile, new: &RunFile, threshold: f64) -> Comparison {
    let mut warnings = Vec::new();
    let (a, b) = (&old.environment, &new.environment);
    differs("hostname", &a.hostname, &b.hostname, &mut warnings);
    differs("kernel", &a.kernel, &b.kernel, &mut warnings);
    differs("CPU model", &a.cpu_model, &b.cpu_model, &mut warnings);
    differs(
        "logical CPUs",
        &a.logical_cpus,
        &b.logical_cpus,
        &mut warnings,
    );
    if old.config.placement != new.config.placement {
        warnings.push(format!(
            "different placement: {:?} vs {:?}",
            old.config.placement, new.config.placement
        ));
    }
    if old.config.quick != new.config.quick {
        warnings.push("one run is --quick and the other is not: message counts differ".into());
    }
    let mut rows = Vec::new();
    for o in old.results.iter().filter(|r| r.status == Status::Ok) {
        let Some(n) = new.results.iter().find(|n| {
            n.status == Status::Ok
                && n.mechanism == o.mechanism
                && n.workload == o.workload
                && n.size == o.size
        }) else {
            continue;
        };
        let mut push = |metric, old_v: f64, new_v: f64, higher_is_better: bool| {
            if old_v <= 0.0 {
                return;
            }
            let change = (new_v - old_v) / old_v * 100.0;
            rows.push(Row {
                mechanism: o.mechanism.clone(),
                workload: o.workload,
                size: o.size,
                metric,
                old: old_v,
                new: new_v,
                gain_pct: if higher_is_better { change } else { -change },
            });
        };
        if let (Some(a), Some(b)) = (&o.rtt_ns, &n.rtt_ns) {
            push(
                "p50 µs",
                a.p50 as f64 / 1000.0,
                b.p50 as f64 / 1000.0,
                false,
            );
            push(
                "p99 µs",
                a.p99 as f64 / 1000.0,
                b.p99 as f64 / 1000.0,
                false,
            );
        }
        if let (Some(a), Some(b)) = (&o.throughput, &n.throughput) {
            push("MB/s", a.bytes_per_sec / 1e6, b.bytes_per_sec / 1e6, true);
        }
    }
    Comparison {
        warnings,
        rows,
        threshold,
    }
}

pub fn render(c: &Comparison) -> String {
    let mut out = String::new();
    for w in &c.warnings {
        let _ = writeln!(
            out,
            "WARNING: {w}; the comparison may reflect the machines, not the code"
        );
    }
    if !c.warnings.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{:<15} {:<10} {:>7} {:<7} {:>12} {:>12} {:>9}",
        "mechanism", "workload", "size", "metric", "old", "new", "change"
    );
    for r in &c.rows {
        let mark = if r.gain_pct < -c.threshold {
            "  WORSE"
        } else if r.gain_pct > c.threshold {
            "  better"
        } else {
            ""
        };
        let change = if r.metric == "MB/s" {
            r.gain_pct
        } else {
            -r.gain_pct
        };
        let _ = writeln!(
            out,
            "{:<15} {:<10} {:>7} {:<7} {:>12.2} {:>12.2} {:>+8.1}%{mark}",
            r.mechanism,
            r.workload.as_str(),
            size_label(r.size),
            r.metric,
            r.old,
            r.new,
            change
        );
    }
    let _ = writeln!(
        out,
        "\n{} comparisons; {} worse and {} better by more than {}%",
        c.rows.len(),
        c.regressions(),
        c.improvements(),
        c.threshold
    );
    out
}
