//! Run-to-run comparison for people and CI: every (mechanism, workload, size) of OLD, with
//! p50, p99, throughput and lock rate old, new and change. A change is a verdict only when it
//! exceeds the threshold and, where both runs have repetitions, their intervals do not
//! overlap; a case that worked in OLD and fails or is missing in NEW is a regression too.

use std::fmt::Write;

use super::size_label;
use crate::results::{CaseResult, RunFile, Status};

/// Default threshold in percent. Two back-to-back `run --quick` of the same build on the
/// 2-vCPU reference VM differed, over 62 (mechanism, size) pairs, by a median of 21% and a
/// 90th percentile of 46% in p50 latency, and 23% / 65% in throughput (cross-core wake-ups
/// vary with the host). 50% keeps noise from being called a regression; use longer runs,
/// repetitions and a lower threshold to catch smaller changes.
pub const DEFAULT_THRESHOLD: f64 = 50.0;

/// What the comparison concluded about one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Same,
    Better,
    Worse,
    /// Beyond the threshold, but the repetitions' intervals overlap: not a verdict.
    WithinNoise,
    /// Beyond the threshold on a metric a single run cannot judge (p99 without repetitions).
    NotJudged,
}

pub struct Row {
    pub mechanism: String,
    pub workload: String,
    pub size: usize,
    pub metric: &'static str,
    pub old: f64,
    pub new: f64,
    /// Positive means better.
    pub gain_pct: f64,
    pub verdict: Verdict,
}

/// A case of OLD that worked and does not in NEW.
pub struct Lost {
    pub mechanism: String,
    pub workload: String,
    pub size: usize,
    /// `failed: <reason>`, `unsupported: <reason>` or `missing`.
    pub what: String,
    pub missing: bool,
}

pub struct Comparison {
    pub warnings: Vec<String>,
    pub rows: Vec<Row>,
    pub lost: Vec<Lost>,
    pub threshold: f64,
    /// Whether both runs had repetitions (and so intervals to judge by).
    pub with_intervals: bool,
}

impl Comparison {
    /// Rows that got worse beyond the threshold (and beyond the noise, where known), plus
    /// cases that stopped working; missing cases count unless `allow_missing`.
    pub fn regressions(&self, allow_missing: bool) -> usize {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Worse)
            .count()
            + self
                .lost
                .iter()
                .filter(|l| !(allow_missing && l.missing))
                .count()
    }

    pub fn improvements(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Better)
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

/// One metric of a case: its value, the interval over repetitions if any, and whether
/// higher is better.
struct Metric {
    name: &'static str,
    value: f64,
    interval: Option<[f64; 2]>,
    higher_is_better: bool,
    /// Whether a single run can be judged on it (a p99 of one run rests on its slowest 1%).
    single_run_ok: bool,
}

fn metrics(r: &CaseResult) -> Vec<Metric> {
    let mut out = Vec::new();
    let range = |f: &dyn Fn(&crate::results::RepeatSummary) -> Option<f64>| {
        let v: Vec<f64> = r.repeats.iter().filter_map(f).collect();
        (v.len() > 1).then(|| {
            [
                v.iter().cloned().fold(f64::INFINITY, f64::min),
                v.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            ]
        })
    };
    if let Some(s) = &r.rtt_ns {
        out.push(Metric {
            name: "p50 µs",
            value: s.p50 as f64 / 1000.0,
            interval: r.p50_ci.map(|[a, b]| [a / 1000.0, b / 1000.0]),
            higher_is_better: false,
            single_run_ok: true,
        });
        out.push(Metric {
            name: "p99 µs",
            value: s.p99 as f64 / 1000.0,
            interval: range(&|x| Some(x.rtt_ns.as_ref()?.p99 as f64 / 1000.0)),
            higher_is_better: false,
            single_run_ok: false,
        });
    }
    if let Some(t) = &r.throughput {
        out.push(Metric {
            name: "MB/s",
            value: t.bytes_per_sec / 1e6,
            interval: r.bytes_per_sec_ci.map(|[a, b]| [a / 1e6, b / 1e6]),
            higher_is_better: true,
            single_run_ok: true,
        });
    }
    if let Some(k) = r.load.as_ref().and_then(|l| l.knee_per_sec) {
        out.push(Metric {
            name: "knee/s",
            value: k,
            interval: None,
            higher_is_better: true,
            single_run_ok: true,
        });
    }
    if let (Some(f), None) = (&r.fan_in, &r.throughput) {
        out.push(Metric {
            name: "trips/s",
            value: f.msgs_per_sec,
            interval: None,
            higher_is_better: true,
            single_run_ok: true,
        });
    }
    if let Some(x) = &r.setup {
        out.push(Metric {
            name: "setups/s",
            value: x.per_sec,
            interval: None,
            higher_is_better: true,
            single_run_ok: true,
        });
    }
    if let Some(l) = &r.lock {
        out.push(Metric {
            name: "locks/s",
            value: l.ops_per_sec,
            interval: r.ops_per_sec_ci,
            higher_is_better: true,
            single_run_ok: true,
        });
    }
    out
}

fn verdict(o: &Metric, n: &Metric, gain_pct: f64, threshold: f64) -> Verdict {
    if gain_pct.abs() <= threshold {
        return Verdict::Same;
    }
    match (o.interval, n.interval) {
        (Some([olo, ohi]), Some([nlo, nhi])) if olo <= nhi && nlo <= ohi => {
            return Verdict::WithinNoise
        }
        (Some(_), Some(_)) => {}
        _ if !o.single_run_ok => return Verdict::NotJudged,
        _ => {}
    }
    if gain_pct > 0.0 {
        Verdict::Better
    } else {
        Verdict::Worse
    }
}

fn same_case(a: &CaseResult, b: &CaseResult) -> bool {
    a.mechanism == b.mechanism
        && a.workload == b.workload
        && a.size == b.size
        && a.clients == b.clients
}

/// The workload as compare shows it: `latency`, or `latency/8c` for a fan-in case.
fn workload_label(r: &CaseResult) -> String {
    match r.clients {
        Some(n) => format!("{}/{n}c", r.workload),
        None => r.workload.clone(),
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
    if new.partial {
        warnings.push("NEW is a partial (interrupted) run".into());
    }
    let mut rows = Vec::new();
    let mut lost = Vec::new();
    for o in old.results.iter().filter(|r| r.status == Status::Ok) {
        let n = match new.results.iter().find(|n| same_case(o, n)) {
            Some(n) if n.status == Status::Ok => n,
            other => {
                let (what, missing) = match other {
                    None => ("missing".to_string(), true),
                    Some(n) => (
                        format!(
                            "{}: {}",
                            if n.status == Status::Error {
                                "failed"
                            } else {
                                "unsupported"
                            },
                            n.reason.as_deref().unwrap_or("no reason recorded")
                        ),
                        false,
                    ),
                };
                lost.push(Lost {
                    mechanism: o.mechanism.clone(),
                    workload: workload_label(o),
                    size: o.size,
                    what,
                    missing,
                });
                continue;
            }
        };
        let new_metrics = metrics(n);
        for om in metrics(o) {
            let Some(nm) = new_metrics.iter().find(|m| m.name == om.name) else {
                continue;
            };
            if om.value <= 0.0 {
                continue;
            }
            let change = (nm.value - om.value) / om.value * 100.0;
            let gain_pct = if om.higher_is_better { change } else { -change };
            rows.push(Row {
                mechanism: o.mechanism.clone(),
                workload: workload_label(o),
                size: o.size,
                metric: om.name,
                old: om.value,
                new: nm.value,
                gain_pct,
                verdict: verdict(&om, nm, gain_pct, threshold),
            });
        }
    }
    Comparison {
        warnings,
        rows,
        lost,
        threshold,
        with_intervals: old.config.repeat > 1 && new.config.repeat > 1,
    }
}

fn case_label(mechanism: &str, workload: &str, size: usize) -> String {
    if size == 0 {
        format!("{mechanism} {workload}")
    } else {
        format!("{mechanism} {workload} {}", size_label(size))
    }
}

pub fn render(c: &Comparison, allow_missing: bool) -> String {
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
        "{:<15} {:<13} {:>7} {:<7} {:>12} {:>12} {:>9}",
        "mechanism", "workload", "size", "metric", "old", "new", "change"
    );
    for r in &c.rows {
        let mark = match r.verdict {
            Verdict::Same => "",
            Verdict::Better => "  better",
            Verdict::Worse => "  WORSE",
            Verdict::WithinNoise => "  (intervals overlap: noise)",
            Verdict::NotJudged => "  (single-run p99: not judged)",
        };
        let change = (r.new - r.old) / r.old * 100.0;
        let size = if r.size == 0 {
            "-".to_string()
        } else {
            size_label(r.size)
        };
        let _ = writeln!(
            out,
            "{:<15} {:<13} {:>7} {:<7} {:>12.2} {:>12.2} {:>+8.1}%{mark}",
            r.mechanism,
            r.workload.as_str(),
            size,
            r.metric,
            r.old,
            r.new,
            change
        );
    }
    if !c.lost.is_empty() {
        let _ = writeln!(out, "\nCases that worked in OLD and do not in NEW:");
        for l in &c.lost {
            let tag = if l.missing && allow_missing {
                "missing (allowed)"
            } else {
                "REGRESSION"
            };
            let _ = writeln!(
                out,
                "  {tag}: {}: {}",
                case_label(&l.mechanism, &l.workload, l.size),
                l.what
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} comparisons; {} worse and {} better by more than {}%; {} {} stopped working",
        c.rows.len(),
        c.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Worse)
            .count(),
        c.improvements(),
        c.threshold,
        c.lost.len(),
        if c.lost.len() == 1 { "case" } else { "cases" },
    );
    let _ = writeln!(
        out,
        "{}",
        if c.with_intervals {
            "Verdicts use the repetitions: a change counts only beyond the threshold and where the intervals of OLD and NEW do not overlap."
        } else {
            "Verdicts rest on single runs (no --repeat in both files): p50 and throughput beyond the threshold count, single-run p99 is shown but not judged; run both with --repeat 5 or more for verdicts that account for noise."
        }
    );
    out
}
