//! The report's lookups, in one place: a run's mechanisms in report order, its sizes, one
//! case's result, the layers (a crate and the mechanism it is built on) and the calibration
//! pairs (a bare loop and the mechanism it calibrates). Tables, charts and the report read
//! results only through these.

use super::chart;
use crate::results::{CaseResult, RunFile, Status};

/// Families in the order tables list them; calibration comes last, apart, since it is
/// not a choice.
const FAMILY_ORDER: [&str; 5] = ["message-passing", "sockets", "shm", "crates", "sync"];
pub const CALIBRATION: &str = "calibration";

/// A run's one-to-one cases alone: what every table, chart and ranking but the fan-in
/// table reads (fan-in cases, `--clients`, measure something else: many clients at once).
pub fn one_to_one(run: &RunFile) -> std::borrow::Cow<'_, RunFile> {
    if run.results.iter().all(|r| r.clients.is_none()) {
        return std::borrow::Cow::Borrowed(run);
    }
    let mut only = run.clone();
    only.results.retain(|r| r.clients.is_none());
    std::borrow::Cow::Owned(only)
}

/// Mechanisms of a run in family order (calibration last), then in the order they ran.
pub fn mechanisms(run: &RunFile) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for r in &run.results {
        if !seen.iter().any(|(m, _)| *m == r.mechanism) {
            seen.push((r.mechanism.clone(), family_of(r)));
        }
    }
    let rank = |f: &str| {
        if f == CALIBRATION {
            FAMILY_ORDER.len() + 1
        } else {
            FAMILY_ORDER
                .iter()
                .position(|x| *x == f)
                .unwrap_or(FAMILY_ORDER.len())
        }
    };
    seen.sort_by_key(|(_, f)| rank(f));
    seen
}

/// Message sizes of the run (synchronisation results carry no size).
pub fn sizes(run: &RunFile) -> Vec<usize> {
    let mut s: Vec<usize> = run
        .results
        .iter()
        .filter(|r| r.sized())
        .map(|r| r.size)
        .collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// The result of one case, whatever its status.
pub fn find<'a>(run: &'a RunFile, mech: &str, w: &str, size: usize) -> Option<&'a CaseResult> {
    run.results
        .iter()
        .find(|r| r.mechanism == mech && r.workload == w && r.size == size)
}

/// The result of one case if it succeeded.
pub fn find_ok<'a>(run: &'a RunFile, mech: &str, w: &str, size: usize) -> Option<&'a CaseResult> {
    find(run, mech, w, size).filter(|r| r.status == Status::Ok)
}

/// CPU of both processes per message (per round trip for latency), ns.
pub fn cpu_ns(r: &CaseResult) -> Option<f64> {
    r.cpu.as_ref().map(|c| c.user_ns_per_msg + c.sys_ns_per_msg)
}

/// The family a result's mechanism belongs to (from the file, else this build's registry).
pub fn family_of(r: &CaseResult) -> String {
    r.family.clone().unwrap_or_else(|| {
        crate::backends::by_id(&r.mechanism)
            .map(|m| m.info().family.as_str().to_string())
            .unwrap_or_else(|| "other".into())
    })
}

/// (layer, base): every mechanism of the run built on another one the run also measured.
pub fn built_on_pairs(run: &RunFile) -> Vec<(String, String)> {
    mechanisms(run)
        .into_iter()
        .filter_map(|(m, _)| {
            let base = run
                .results
                .iter()
                .find(|r| r.mechanism == m)
                .and_then(|r| r.built_on.clone())?;
            run.results
                .iter()
                .any(|r| r.mechanism == base)
                .then_some((m, base))
        })
        .collect()
}

/// (bare loop, mechanism): every calibration loop of the run (as this build's registry
/// declares it) beside the mechanism it is the bare version of.
pub fn calibration_pairs(run: &RunFile) -> Vec<(String, String)> {
    mechanisms(run)
        .into_iter()
        .filter_map(|(raw, _)| {
            let base = crate::backends::by_id(&raw)?.info().calibrates?;
            Some((raw, base.to_string()))
        })
        .collect()
}

/// Mechanism `m`'s line for workload `w` across `sizes`: a point (with its tooltip) wherever
/// the case succeeded and `value` gives one; where a case after the first point is
/// unsupported or failed, the line stops there and says which.
pub fn line_across(
    run: &RunFile,
    m: &str,
    w: &str,
    sizes: &[usize],
    value: impl Fn(&CaseResult) -> Option<f64>,
    tooltip: impl Fn(&CaseResult) -> String,
) -> chart::Line {
    let mut line = chart::Line {
        name: m.to_string(),
        points: Vec::new(),
        stops: None,
        tooltips: Vec::new(),
    };
    for &s in sizes {
        match find(run, m, w, s) {
            Some(r) if r.status == Status::Ok => {
                if let Some(v) = value(r) {
                    line.points.push((s, v));
                    line.tooltips.push(tooltip(r));
                }
            }
            Some(r) if line.stops.is_none() && !line.points.is_empty() => {
                let word = match r.status {
                    Status::Unsupported => "unsupported",
                    _ => "ERROR",
                };
                line.stops = Some((s, word.to_string()));
            }
            _ => {}
        }
    }
    line
}
