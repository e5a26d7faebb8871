//! Choosing a mechanism from measured numbers: filter by what the application needs, rank by
//! the metric that matters for its pattern at the nearest measured size, and say what each
//! choice costs. The report's "Choosing a mechanism" section is generated from the same code.

use clap::ValueEnum;
use serde::Serialize;

use super::{micros, size_label};
use crate::backends;
use crate::results::{CaseResult, RunFile, Status, Workload};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Pattern {
    /// Ask and wait for the answer: ranked by round-trip p50.
    RequestResponse,
    /// Push data one way: ranked by bytes per second.
    Streaming,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Need {
    /// One send arrives as one receive.
    Boundaries,
    /// Many senders to one receiver.
    ManyToOne,
    /// Unrelated processes must find it by a name.
    Unrelated,
    /// It must work between machines.
    CrossHost,
    /// File descriptors travel with messages.
    PassFds,
    /// Rank by round-trip latency whatever the pattern.
    LowestLatency,
    /// Rank by CPU time per message.
    LowestCpu,
    /// It must exist beyond Linux.
    Portable,
}

pub struct Pick {
    pub mechanism: String,
    /// The ranked metric, formatted with its unit.
    pub shown: String,
    pub cpu_us: Option<f64>,
    pub trade_off: String,
}

pub struct Advice {
    pub size: usize,
    pub ranked_by: &'static str,
    pub picks: Vec<Pick>,
}

fn nearest(sizes: &[usize], want: usize) -> Option<usize> {
    let dist = |s: usize| ((s as f64).ln() - (want.max(1) as f64).ln()).abs();
    sizes
        .iter()
        .cloned()
        .min_by(|a, b| dist(*a).total_cmp(&dist(*b)))
}

fn cpu_us(r: &CaseResult) -> Option<f64> {
    r.cpu
        .as_ref()
        .map(|c| (c.user_ns_per_msg + c.sys_ns_per_msg) / 1000.0)
}

/// Mechanisms that satisfy `needs`, ranked for `pattern` at the measured size nearest `size`
/// (the smallest measured size when none is given).
pub fn advise(
    run: &RunFile,
    size: Option<usize>,
    pattern: Pattern,
    needs: &[Need],
) -> Result<Advice, String> {
    let by_latency = pattern == Pattern::RequestResponse || needs.contains(&Need::LowestLatency);
    let workload = if by_latency {
        Workload::Latency
    } else {
        Workload::Throughput
    };
    let ok: Vec<&CaseResult> = run
        .results
        .iter()
        .filter(|r| r.workload == workload && r.status == Status::Ok)
        .collect();
    let mut sizes: Vec<usize> = ok.iter().map(|r| r.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let size = match size {
        Some(s) => nearest(&sizes, s),
        None => sizes.first().cloned(),
    }
    .ok_or_else(|| {
        format!(
            "the results have no successful {} measurement to rank",
            workload.as_str()
        )
    })?;
    let mut cands: Vec<(&CaseResult, &'static backends::MechanismInfo)> = Vec::new();
    for r in ok.into_iter().filter(|r| r.size == size) {
        let Some(m) = backends::by_id(&r.mechanism) else {
            continue;
        };
        let i = m.info();
        let fits = needs.iter().all(|n| match n {
            Need::Boundaries => i.boundaries,
            Need::ManyToOne => i.fan_in,
            Need::Unrelated => i.named,
            Need::CrossHost => i.cross_host,
            Need::PassFds => i.fd_passing,
            Need::Portable => i.portable,
            Need::LowestLatency | Need::LowestCpu => true,
        });
        if fits
            && !matches!(
                i.family,
                backends::Family::Test | backends::Family::Calibration
            )
        {
            cands.push((r, i));
        }
    }
    let ranked_by = if needs.contains(&Need::LowestCpu) {
        cands.sort_by(|a, b| {
            cpu_us(a.0)
                .unwrap_or(f64::MAX)
                .total_cmp(&cpu_us(b.0).unwrap_or(f64::MAX))
        });
        "CPU time per message (both processes)"
    } else if by_latency {
        cands.sort_by_key(|c| c.0.rtt_ns.as_ref().map(|s| s.p50).unwrap_or(u64::MAX));
        "round-trip p50"
    } else {
        let bps = |r: &CaseResult| {
            r.throughput
                .as_ref()
                .map(|t| t.bytes_per_sec)
                .unwrap_or(0.0)
        };
        cands.sort_by(|a, b| bps(b.0).total_cmp(&bps(a.0)));
        "throughput"
    };
    let picks = cands
        .into_iter()
        .map(|(r, i)| {
            let shown = match (&r.rtt_ns, &r.throughput) {
                (Some(s), _) => format!(
                    "p50 {} µs, p99 {} µs",
                    micros(s.p50 as f64),
                    micros(s.p99 as f64)
                ),
                (_, Some(t)) => format!("{:.0} MB/s", t.bytes_per_sec / 1e6),
                _ => "-".into(),
            };
            let mut trade_off = i.trade_off.to_string();
            if let Some(l) = r.loss.filter(|l| *l > 0.0) {
                trade_off.push_str(&format!("; lost {:.2}% here", l * 100.0));
            }
            Pick {
                mechanism: r.mechanism.clone(),
                shown,
                cpu_us: cpu_us(r),
                trade_off,
            }
        })
        .collect();
    Ok(Advice {
        size,
        ranked_by,
        picks,
    })
}

/// The advice as text for the terminal.
pub fn render(a: &Advice, pattern: Pattern, needs: &[Need]) -> String {
    let mut out = format!(
        "{} at {} (nearest measured size), ranked by {}{}:\n",
        match pattern {
            Pattern::RequestResponse => "Request-response",
            Pattern::Streaming => "Streaming",
        },
        size_label(a.size),
        a.ranked_by,
        if needs.is_empty() {
            String::new()
        } else {
            format!(
                ", needing {}",
                needs
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    if a.picks.is_empty() {
        out.push_str("  no measured mechanism satisfies these needs\n");
    }
    for (i, p) in a.picks.iter().enumerate() {
        let cpu = p
            .cpu_us
            .map(|c| format!(", CPU {c:.2} µs/msg"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:>3}. {:<15} {}{cpu}\n       {}\n",
            i + 1,
            p.mechanism,
            p.shown,
            p.trade_off
        ));
    }
    out
}
