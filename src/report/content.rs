//! What the report says, built from one or more results files: the machine and its limits,
//! the configuration, charts, rankings, full tables with reasons for every gap, the cost of
//! each crate over its raw mechanism, the choosing guide, and differences between runs.

use std::path::{Path, PathBuf};

use super::chart;
use super::document::{to_html, to_markdown, Block};
use super::model::{calibration_pairs, cpu_ns, find, line_across, mechanisms, sizes};
use super::recommend::{advise, Need, Pattern};
use super::{micros, size_label, ReportError};
use super::{LATENCY, SETUP, THROUGHPUT};
use crate::results::{CaseResult, RunFile, Status};

/// One results file and how the report names it.
pub struct Input {
    pub label: String,
    pub run: RunFile,
}

/// What a gap in a chart says: `unsupported` or `ERROR`, with a pointer to the notes.
fn gap_word(r: &CaseResult) -> String {
    match r.status {
        Status::Unsupported => "unsupported here (see the table notes)".into(),
        _ => "ERROR (see the table notes)".into(),
    }
}

/// Every number of a latency result, for a tooltip.
fn latency_tooltip(r: &CaseResult) -> String {
    let Some(s) = &r.rtt_ns else {
        return r.mechanism.clone();
    };
    let mut t = format!(
        "{} at {}: p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
        r.mechanism,
        size_label(r.size),
        micros(s.p50 as f64),
        micros(s.p90 as f64),
        micros(s.p99 as f64),
        micros(s.p999 as f64),
        micros(s.max as f64)
    );
    if let Some([lo, hi]) = r.p50_ci {
        t.push_str(&format!(
            "; median p50 interval {}-{} µs",
            micros(lo),
            micros(hi)
        ));
    }
    if let Some(c) = cpu_ns(r) {
        t.push_str(&format!("; CPU {} µs per round trip", micros(c)));
    }
    t
}

fn throughput_tooltip(r: &CaseResult) -> String {
    let Some(t) = &r.throughput else {
        return r.mechanism.clone();
    };
    let mut s = format!(
        "{} at {}: {} MB/s, {} messages/s",
        r.mechanism,
        size_label(r.size),
        super::table::mb_per_sec(t.bytes_per_sec),
        super::table::grouped(t.msgs_per_sec, 0)
    );
    if let Some([lo, hi]) = r.bytes_per_sec_ci {
        s.push_str(&format!(
            "; median interval {}-{} MB/s",
            super::table::mb_per_sec(lo),
            super::table::mb_per_sec(hi)
        ));
    }
    if let Some(c) = cpu_ns(r) {
        s.push_str(&format!("; CPU {} µs per message", micros(c)));
    }
    s
}

/// Families whose mechanisms are choices (calibration and test mechanisms are not).
fn charted(family: &str) -> bool {
    !matches!(family, "calibration" | "test" | "sync")
}

/// A sorted dot plot of one workload at one size.
fn dots(run: &RunFile, w: &str, size: usize) -> Option<chart::DotPlot> {
    let mut rows = Vec::new();
    let mut gaps = Vec::new();
    for (m, family) in mechanisms(run).into_iter().filter(|(_, f)| charted(f)) {
        let Some(r) = find(run, &m, w, size) else {
            continue;
        };
        if r.status != Status::Ok {
            gaps.push((m, gap_word(r)));
            continue;
        }
        let dot = match w {
            LATENCY => r.rtt_ns.as_ref().map(|s| chart::Dot {
                name: m.clone(),
                family: family.clone(),
                value: s.p50 as f64,
                whisker: Some(s.p99 as f64),
                interval: r.p50_ci,
                tooltip: latency_tooltip(r),
            }),
            _ => r.throughput.as_ref().map(|t| chart::Dot {
                name: m.clone(),
                family: family.clone(),
                value: t.bytes_per_sec,
                whisker: None,
                interval: r.bytes_per_sec_ci,
                tooltip: throughput_tooltip(r),
            }),
        };
        rows.extend(dot);
    }
    if rows.is_empty() {
        return None;
    }
    let latency = w == LATENCY;
    rows.sort_by(|a, b| {
        if latency {
            a.value.total_cmp(&b.value)
        } else {
            b.value.total_cmp(&a.value)
        }
    });
    let band = if run.config.repeat > 1 {
        format!(
            "; band: the {}",
            crate::stats::interval_name(run.config.repeat)
        )
    } else {
        String::new()
    };
    Some(if latency {
        chart::DotPlot {
            title: format!("Round-trip latency at {}, fastest first", size_label(size)),
            unit: chart::Unit::Nanos,
            key: format!("dot: p50; whisker: to p99{band}; log scale"),
            rows,
            gaps,
        }
    } else {
        chart::DotPlot {
            title: format!("Throughput one way at {}, fastest first", size_label(size)),
            unit: chart::Unit::BytesPerSec,
            key: format!("dot: payload bytes per second (1 MB = 10^6 B){band}; log scale"),
            rows,
            gaps,
        }
    })
}

/// By-size lines of one metric, one panel per family.
fn by_size(
    run: &RunFile,
    w: &str,
    title: &str,
    unit: chart::Unit,
    value: impl Fn(&CaseResult) -> Option<f64>,
    tooltip: impl Fn(&CaseResult) -> String,
) -> Option<chart::SmallMultiples> {
    let sz = sizes(run);
    let mut panels: Vec<chart::Panel> = Vec::new();
    for (m, family) in mechanisms(run).into_iter().filter(|(_, f)| charted(f)) {
        let line = line_across(run, &m, w, &sz, &value, &tooltip);
        if line.points.is_empty() {
            continue;
        }
        match panels.iter_mut().find(|p| p.family == family) {
            Some(p) => p.lines.push(line),
            None => panels.push(chart::Panel {
                family,
                lines: vec![line],
            }),
        }
    }
    (!panels.is_empty()).then(|| chart::SmallMultiples {
        title: title.into(),
        unit,
        sizes: sz,
        panels,
    })
}

/// The load sweeps at one size as curves of latency against achieved rate.
fn load_curves(run: &RunFile, size: usize) -> Option<chart::Curves> {
    let mut curves = Vec::new();
    let mut slo = None;
    for (m, family) in mechanisms(run) {
        let Some(l) = find(run, &m, super::LOAD, size)
            .filter(|r| r.status == Status::Ok)
            .and_then(|r| r.load.as_ref())
        else {
            continue;
        };
        slo = Some(l.slo_ns as f64);
        curves.push(chart::Curve {
            name: m.clone(),
            family,
            p99: l
                .points
                .iter()
                .map(|p| (p.achieved_per_sec, p.rtt_ns.p99 as f64))
                .collect(),
            p50: l
                .points
                .iter()
                .map(|p| (p.achieved_per_sec, p.rtt_ns.p50 as f64))
                .collect(),
            tooltips: l
                .points
                .iter()
                .map(|p| {
                    format!(
                        "{m} at {} offered: {:.0}/s achieved, p50 {} µs, p99 {} µs, p99.9 {} µs{}",
                        p.label,
                        p.achieved_per_sec,
                        micros(p.rtt_ns.p50 as f64),
                        micros(p.rtt_ns.p99 as f64),
                        micros(p.rtt_ns.p999 as f64),
                        if p.saturated { ", saturated" } else { "" }
                    )
                })
                .collect(),
            knee: l.knee_per_sec,
        });
    }
    (!curves.is_empty()).then(|| chart::Curves {
        title: format!("Latency against load at {}, open loop", size_label(size)),
        key: "solid: p99, dashed: p50, ring: the knee; log scales; hover a point for its numbers"
            .into(),
        x_label: "achieved requests per second".into(),
        curves,
        slo_ns: slo,
    })
}

/// Fan-in at one size: per mechanism, the clients' total round trips per second against
/// the worst client's p99 (and the merged p50), one point per client count.
fn fan_in_curves(run: &RunFile, size: usize) -> Option<chart::Curves> {
    let mut curves = Vec::new();
    for (m, family) in mechanisms(run) {
        let mut points: Vec<&CaseResult> = run
            .results
            .iter()
            .filter(|r| {
                r.mechanism == m
                    && r.workload == LATENCY
                    && r.size == size
                    && r.status == Status::Ok
                    && r.fan_in.is_some()
            })
            .collect();
        points.sort_by_key(|r| r.clients);
        let mut curve = chart::Curve {
            name: m.clone(),
            family,
            p99: Vec::new(),
            p50: Vec::new(),
            tooltips: Vec::new(),
            knee: None,
        };
        for r in points {
            let (Some(f), Some(l)) = (&r.fan_in, &r.rtt_ns) else {
                continue;
            };
            let Some(worst) = f.per_client.iter().filter_map(|c| c.p99_ns).max() else {
                continue;
            };
            curve.p99.push((f.msgs_per_sec, worst as f64));
            curve.p50.push((f.msgs_per_sec, l.p50 as f64));
            curve.tooltips.push(format!(
                "{m} with {} clients: {:.0} round trips/s together, worst client's p99 {} µs, p50 {} µs, fairness {:.2}",
                f.clients,
                f.msgs_per_sec,
                micros(worst as f64),
                micros(l.p50 as f64),
                f.fairness
            ));
        }
        if !curve.p99.is_empty() {
            curves.push(curve);
        }
    }
    (!curves.is_empty()).then(|| chart::Curves {
        title: format!(
            "Fan-in at {}: latency against the clients' total rate, one point per client count",
            size_label(size)
        ),
        key: "solid: the worst client's p99, dashed: p50 of all clients; each point one more client count; log scales".into(),
        x_label: "round trips per second, all clients together".into(),
        curves,
        slo_ns: None,
    })
}

fn charts(run: &RunFile, full: &RunFile, suffix: &str, out: &mut Vec<Block>) {
    let mut push = |file: String, title: String, svg: Option<String>| {
        if let Some(svg) = svg {
            out.push(Block::Chart { file, title, svg });
        }
    };
    for s in sizes(run) {
        let tag = size_label(s).replace(' ', "");
        for (w, name) in [(LATENCY, "latency"), (THROUGHPUT, "throughput")] {
            if let Some(c) = dots(run, w, s) {
                push(
                    format!("{name}-{tag}{suffix}.svg"),
                    c.title.clone(),
                    chart::dot_plot(&c),
                );
            }
        }
    }
    for s in sizes(full) {
        if let Some(c) = fan_in_curves(full, s) {
            let tag = size_label(s).replace(' ', "");
            push(
                format!("fan-in-{tag}{suffix}.svg"),
                c.title.clone(),
                chart::curves(&c),
            );
        }
    }
    for s in sizes(run) {
        if let Some(c) = load_curves(run, s) {
            let tag = size_label(s).replace(' ', "");
            push(
                format!("load-{tag}{suffix}.svg"),
                c.title.clone(),
                chart::curves(&c),
            );
        }
    }
    let lines = [
        (
            "latency",
            by_size(
                run,
                LATENCY,
                "Round-trip latency p50 by message size, per family",
                chart::Unit::Nanos,
                |r| Some(r.rtt_ns.as_ref()?.p50 as f64),
                latency_tooltip,
            ),
        ),
        (
            "throughput",
            by_size(
                run,
                THROUGHPUT,
                "Throughput by message size, per family",
                chart::Unit::BytesPerSec,
                |r| Some(r.throughput.as_ref()?.bytes_per_sec),
                throughput_tooltip,
            ),
        ),
        (
            "cpu",
            by_size(
                run,
                THROUGHPUT,
                "CPU time per streamed message, both processes, by size",
                chart::Unit::Nanos,
                cpu_ns,
                throughput_tooltip,
            ),
        ),
    ];
    for (name, c) in lines {
        if let Some(c) = c {
            push(
                format!("{name}{suffix}.svg"),
                c.title.clone(),
                chart::small_multiples(&c),
            );
        }
    }
}

/// Rankings at the smallest and largest size, calibration left out, ties shared (`2=`) as
/// `recommend` decides them.
fn ranking(run: &RunFile, out: &mut Vec<Block>) {
    let sz = sizes(run);
    let picks: Vec<usize> = match (sz.first(), sz.last()) {
        (Some(a), Some(b)) if a != b => vec![*a, *b],
        (Some(a), _) => vec![*a],
        _ => return,
    };
    for size in picks {
        let lat = advise(run, Some(size), Pattern::RequestResponse, &[]).ok();
        let tp = advise(run, Some(size), Pattern::Streaming, &[]).ok();
        let column = |a: &Option<super::recommend::Advice>, i: usize| {
            a.as_ref()
                .filter(|a| a.size == size)
                .and_then(|a| a.picks.get(i))
                .map(|p| {
                    let rank = format!("{}{}", p.rank, if p.tied { "=" } else { "." });
                    format!("{rank} {} ({})", p.mechanism, p.shown)
                })
                .unwrap_or_default()
        };
        let n = [&lat, &tp]
            .iter()
            .filter_map(|a| a.as_ref().filter(|a| a.size == size))
            .map(|a| a.picks.len())
            .max()
            .unwrap_or(0);
        if n == 0 {
            continue;
        }
        let rows = (0..n)
            .map(|i| vec![column(&lat, i), column(&tp, i)])
            .collect();
        out.push(Block::Heading(
            4,
            format!("Ranking at {}", size_label(size)),
        ));
        out.push(Block::Table {
            header: vec!["lowest round-trip p50".into(), "highest throughput".into()],
            rows,
        });
        if let Some(a) = lat.as_ref().or(tp.as_ref()) {
            out.push(Block::Para(format!("`=`: tied; {}.", a.tie_rule)));
        }
    }
}

/// The choosing guide, generated from the measured numbers.
pub fn choosing(run: &RunFile, out: &mut Vec<Block>) {
    out.push(Block::Heading(3, "Choosing a mechanism".into()));
    out.push(Block::Para(
        "Generated from this run's numbers (`ipcbench recommend` gives the same answers for other sizes and needs). Each line: the measurement, then what the choice costs.".into(),
    ));
    let sz = sizes(run);
    let cases: [(&str, Option<usize>, Pattern, Vec<Need>); 6] = [
        (
            "Request-response, small messages",
            sz.first().cloned(),
            Pattern::RequestResponse,
            vec![],
        ),
        (
            "Streaming, large messages",
            sz.last().cloned(),
            Pattern::Streaming,
            vec![],
        ),
        (
            "Message boundaries kept, small messages",
            sz.first().cloned(),
            Pattern::RequestResponse,
            vec![Need::Boundaries],
        ),
        (
            "Unrelated processes (a name to meet at)",
            sz.first().cloned(),
            Pattern::RequestResponse,
            vec![Need::Unrelated],
        ),
        (
            "Lowest CPU per message, streaming",
            sz.last().cloned(),
            Pattern::Streaming,
            vec![Need::LowestCpu],
        ),
        (
            "Across hosts",
            sz.first().cloned(),
            Pattern::RequestResponse,
            vec![Need::CrossHost],
        ),
    ];
    for (title, size, pattern, needs) in cases {
        let Ok(a) = advise(run, size, pattern, &needs) else {
            continue;
        };
        let items: Vec<String> = a
            .picks
            .iter()
            .take(3)
            .map(|p| {
                format!(
                    "`{}`{}: {}{}. {}",
                    p.mechanism,
                    if p.tied { " (tied)" } else { "" },
                    p.shown,
                    super::recommend::cpu_label(&a, p),
                    p.trade_off
                )
            })
            .collect();
        if items.is_empty() {
            continue;
        }
        out.push(Block::Para(format!(
            "**{title}** ({}; ranked by {}):",
            size_label(a.size),
            a.ranked_by
        )));
        out.push(Block::List(items));
    }
    connecting(run, out);
}

/// For short-lived connections: the mechanisms whose fresh channel is cheapest, from the
/// `setup` workload at its smallest size.
fn connecting(run: &RunFile, out: &mut Vec<Block>) {
    let Some(size) = run
        .results
        .iter()
        .filter(|r| r.workload == SETUP && r.status == Status::Ok)
        .map(|r| r.size)
        .min()
    else {
        return;
    };
    let mut done: Vec<(&CaseResult, &crate::results::SetupResult)> = run
        .results
        .iter()
        .filter(|r| r.workload == SETUP && r.size == size && r.status == Status::Ok)
        .filter_map(|r| Some((r, r.setup.as_ref()?)))
        .collect();
    done.sort_by(|a, b| b.1.per_sec.total_cmp(&a.1.per_sec));
    let items: Vec<String> = done
        .iter()
        .take(5)
        .map(|(r, x)| {
            format!(
                "`{}`: {:.0} fresh channels/s; connect {} µs, accept {} µs, first trip {} µs (p50){}",
                r.mechanism,
                x.per_sec,
                micros(x.connect_ns.p50 as f64),
                micros(x.accept_ns.p50 as f64),
                micros(x.first_rtt_ns.p50 as f64),
                if x.passes_descriptors {
                    "; made by one process and handed over, not opened by name"
                } else {
                    ""
                }
            )
        })
        .collect();
    out.push(Block::Para(format!(
        "**Short-lived connections** ({}; ranked by fresh channels per second, `setup`): a client that connects per request pays this on top of the round trip.",
        size_label(size)
    )));
    out.push(Block::List(items));
}

fn machine(run: &RunFile, out: &mut Vec<Block>) {
    let e = &run.environment;
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
    out.push(Block::Heading(3, "Machine".into()));
    let num = |v: Option<usize>| v.map(|n| n.to_string()).unwrap_or_else(|| "unknown".into());
    let yes = |v: Option<bool>| {
        v.map(|b| if b { "yes" } else { "no" }.to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    out.push(Block::List(vec![
        format!("kernel: {}", show(&e.kernel)),
        format!(
            "CPU: {} ({} MHz)",
            show(&e.cpu_model),
            e.cpu_mhz
                .map(|m| format!("{m:.0}"))
                .unwrap_or_else(|| "?".into())
        ),
        format!(
            "logical CPUs: {}, physical: {}, SMT: {}, NUMA nodes: {}",
            num(e.logical_cpus),
            num(e.physical_cpus),
            yes(e.smt),
            num(e.numa_nodes)
        ),
        format!(
            "governor: {}, boost: {}, clocksource: {}",
            show(&e.governor),
            yes(e.boost),
            show(&e.clocksource)
        ),
        format!(
            "virtualization: {}",
            e.virtualization
                .clone()
                .unwrap_or_else(|| "none detected".into())
        ),
        format!(
            "isolated CPUs: {}",
            e.isolated_cpus
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "none".into())
        ),
        format!(
            "mitigations: {}",
            e.mitigations
                .as_ref()
                .map(|m| format!("{} active", m.len()))
                .unwrap_or_else(|| "unknown".into())
        ),
        format!(
            "load average at start: {}",
            e.load_average
                .map(|l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]))
                .unwrap_or_else(|| "unknown".into())
        ),
        format!(
            "temporary directory (FIFOs, socket paths): {} on {}",
            show(&e.tmp_dir),
            show(&e.tmp_fs)
        ),
        format!("host: {}", show(&e.hostname)),
    ]));
    if !e.warnings.is_empty() {
        out.push(Block::Para("**Warnings about this machine:**".into()));
        out.push(Block::List(e.warnings.clone()));
    }
    let l = &e.limits;
    let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "unknown".into());
    let rows = [
        ("fs.pipe-max-size", l.pipe_max_size),
        ("fs.mqueue.msgsize_max", l.mq_msgsize_max),
        ("fs.mqueue.msg_max", l.mq_msg_max),
        ("kernel.msgmax", l.msgmax),
        ("kernel.msgmnb", l.msgmnb),
        ("net.core.wmem_max", l.wmem_max),
        ("net.core.rmem_max", l.rmem_max),
        ("RLIMIT_MSGQUEUE", l.rlimit_msgqueue),
    ]
    .into_iter()
    .map(|(k, v)| vec![k.to_string(), n(v)])
    .collect();
    out.push(Block::Table {
        header: vec!["IPC limit".into(), "value".into()],
        rows,
    });
    let c = &run.config;
    out.push(Block::Heading(3, "Configuration".into()));
    out.push(Block::List(vec![
        format!("started: {}, ipcbench {}", run.started_at, run.version),
        format!("placement: {}", c.placement),
        format!(
            "quick: {}; messages: {}",
            c.quick,
            c.messages
                .map(|m| m.to_string())
                .unwrap_or_else(|| "by size (see `messages` per result)".into())
        ),
        format!("verification: {}", c.verify),
        format!("repetitions per case: {}", c.repeat),
        format!(
            "shared memory: {} segments{}, {} rings, receivers {}",
            c.shm_segment,
            if c.shm_hugepages {
                " on 2 MiB huge pages"
            } else {
                ""
            },
            match c.shm_ring {
                0 => "2 MiB (or two messages, where larger)".to_string(),
                r => format!("{r}-byte"),
            },
            match c.shm_read.as_str() {
                "in-place" => "check each message in its slot (--shm-read in-place)",
                _ => "copy each message out, then check it",
            }
        ),
    ]));
}

/// The floor, the harness's own cost, and how intervals were made.
fn measurement(run: &RunFile, suffix: &str, out: &mut Vec<Block>) {
    out.push(Block::Heading(3, "The floor and the harness".into()));
    let mut items = Vec::new();
    if let Some(f) = &run.floor {
        items.push(format!("clock read: {:.0} ns", f.clock_read_ns));
        match (f.cacheline_rtt_ns, &f.cacheline_reason) {
            (Some(v), _) => {
                items.push(format!("cross-core cache-line round trip: {v:.0} ns (the lower bound for any notification; latency cells show p50 as a multiple of it, xN)"));
                if let Some(b) = f.cacheline_bare_ns {
                    items.push(format!("the same bounce as a bare loop (two processes, no harness): {b:.0} ns, so the harness's cost at the floor is {:.2}x", v / b));
                }
            }
            (None, Some(r)) => items.push(format!("cache-line round trip not measured: {r}")),
            _ => {}
        }
        for (size, bps) in &f.copy_bytes_per_sec {
            items.push(format!(
                "memcpy at {}: {:.1} GB/s (throughput cells show their fraction of it, xN)",
                size_label(*size),
                bps / 1e9
            ));
        }
        match (&f.wakeup, &f.wakeup_reason) {
            (Some(w), _) => items.push(format!(
                "cross-CPU wake-up of a thread asleep on a futex: p50 {} µs (p10 {}, p90 {}, p99 {} µs); p50 after an idle gap of {} (the floor of a sleeping mechanism's round trip is two of them: latency cells show p50 as a multiple of that, wN)",
                micros(w.p50_ns as f64),
                micros(w.p10_ns as f64),
                micros(w.p90_ns as f64),
                micros(w.p99_ns as f64),
                w.by_idle_us
                    .iter()
                    .map(|(gap, ns)| format!("{gap} µs: {} µs", micros(*ns as f64)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            (None, Some(r)) => items.push(format!("cross-CPU wake-up not measured: {r}")),
            _ => {}
        }
    }
    // Each calibration loop beside the mechanism it is the bare version of.
    for (raw, base) in calibration_pairs(run) {
        for s in sizes(run) {
            let p50 = |m: &str| {
                find(run, m, LATENCY, s)
                    .filter(|r| r.status == Status::Ok)
                    .and_then(|r| Some(r.rtt_ns.as_ref()?.p50 as f64))
            };
            if let (Some(a), Some(b)) = (p50(&base), p50(&raw)) {
                items.push(format!(
                    "harness cost at {}: `{base}` p50 {} µs against `{raw}` (no framing, no checks) {} µs: {:+.1}%",
                    size_label(s),
                    micros(a),
                    micros(b),
                    (a - b) / b * 100.0
                ));
            }
        }
    }
    let c = &run.config;
    items.push(if c.repeat > 1 {
        format!("{} repetitions per case, interleaved, fresh peers each time; intervals in brackets are distribution-free: the {}", c.repeat, crate::stats::interval_label(c.repeat))
    } else {
        "one repetition per case: no intervals (use --repeat)".into()
    });
    out.push(Block::List(items));
    if let Some(w) = run.floor.as_ref().and_then(|f| f.wakeup.as_ref()) {
        wakeup_histogram(w, out);
    }
    if let Some(m) = &run.matrix {
        out.push(Block::Heading(3, "Core-to-core map".into()));
        if let Some(svg) = chart::heatmap(m) {
            out.push(Block::Chart {
                file: format!("matrix{suffix}.svg"),
                title: format!("{} p50 by CPU pair", m.mechanism),
                svg,
            });
        }
        if !m.notes.is_empty() {
            out.push(Block::List(m.notes.clone()));
        }
    }
}

/// The wake-up floor's distribution: one row per power-of-two bin, with a bar.
fn wakeup_histogram(w: &crate::results::Wakeup, out: &mut Vec<Block>) {
    out.push(Block::Heading(3, "Cross-CPU wake-ups".into()));
    let total: u64 = w.histogram.iter().map(|(_, n)| n).sum::<u64>().max(1);
    out.push(Block::Para(match w.modes_ns {
        Some([lo, hi]) => format!(
            "Bimodal or spread (p90 over 3x p10): clusters about {} µs and {} µs; the p50 by idle gap above and the warnings say why.",
            micros(lo as f64),
            micros(hi as f64)
        ),
        None => "One mode: p90 is within 3x of p10.".into(),
    }));
    let rows = w
        .bars()
        .map(|(from, n, bar)| {
            vec![
                format!("{}-{} µs", micros(from as f64), micros((from * 2) as f64)),
                n.to_string(),
                format!("{:.0}%", n as f64 * 100.0 / total as f64),
                bar,
            ]
        })
        .collect();
    out.push(Block::Table {
        header: vec!["wake-up".into(), "count".into(), "share".into(), "".into()],
        rows,
    });
}

fn one_run(input: &Input, suffix: &str, out: &mut Vec<Block>) {
    let full = &input.run;
    let run = &*super::model::one_to_one(full);
    machine(run, out);
    measurement(run, suffix, out);
    out.push(Block::Heading(3, "Charts".into()));
    charts(run, full, suffix, out);
    super::large::blocks(run, suffix, out);
    out.push(Block::Heading(3, "Rankings".into()));
    ranking(run, out);
    choosing(run, out);
    out.extend(super::table::blocks(full));
}

fn differences(inputs: &[Input], out: &mut Vec<Block>) {
    let base = &inputs[0];
    out.push(Block::Heading(2, "Differences between the runs".into()));
    out.push(Block::Para(format!(
        "Each value with its ratio to `{}` (the first input). Latency ratios above 1 and throughput ratios below 1 are slower.",
        base.label
    )));
    let mut header = vec![
        "mechanism".into(),
        "size".into(),
        "metric".into(),
        base.label.clone(),
    ];
    header.extend(inputs[1..].iter().map(|i| i.label.clone()));
    let mut rows = Vec::new();
    for (m, _) in mechanisms(&base.run) {
        for s in sizes(&base.run) {
            for (w, metric) in [(LATENCY, "p50 µs"), (THROUGHPUT, "MB/s")] {
                let value = |run: &RunFile| -> Option<f64> {
                    let r = find(run, &m, w, s).filter(|r| r.status == Status::Ok)?;
                    if w == LATENCY {
                        Some(r.rtt_ns.as_ref()?.p50 as f64 / 1000.0)
                    } else {
                        Some(r.throughput.as_ref()?.bytes_per_sec / 1e6)
                    }
                };
                let Some(b) = value(&base.run) else { continue };
                let mut row = vec![m.clone(), size_label(s), metric.into(), format!("{b:.2}")];
                for other in &inputs[1..] {
                    row.push(
                        value(&other.run)
                            .map(|v| format!("{v:.2} ({:.2}x)", v / b))
                            .unwrap_or_else(|| "-".into()),
                    );
                }
                rows.push(row);
            }
        }
    }
    out.push(Block::Table { header, rows });
}

pub fn build(inputs: &[Input]) -> Vec<Block> {
    let mut out = vec![
        Block::Heading(1, "ipcbench report".into()),
        Block::Para(format!(
            "Inter-process communication on Linux, two real processes per mechanism, every message verified. Generated by ipcbench {} from {}. Every number below comes from the results; nothing is typed in by hand.",
            env!("CARGO_PKG_VERSION"),
            inputs.iter().map(|i| format!("`{}`", i.label)).collect::<Vec<_>>().join(", ")
        )),
    ];
    for (k, input) in inputs.iter().enumerate() {
        if inputs.len() > 1 {
            out.push(Block::Heading(
                2,
                format!(
                    "Run {}: {} ({})",
                    k + 1,
                    input.label,
                    input.run.config.placement
                ),
            ));
        }
        let suffix = if inputs.len() > 1 {
            format!("-{}", k + 1)
        } else {
            String::new()
        };
        one_run(input, &suffix, &mut out);
    }
    if inputs.len() > 1 {
        differences(inputs, &mut out);
    }
    out
}

/// Writes `report.md`, its SVG charts and `report.html` into `dir`; returns the paths.
pub fn write(inputs: &[Input], dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(werr(dir))?;
    let blocks = build(inputs);
    let (md, files) = to_markdown(&blocks);
    let mut written = Vec::new();
    for (name, svg) in files {
        let p = dir.join(name);
        std::fs::write(&p, svg).map_err(werr(&p))?;
        written.push(p);
    }
    let p = dir.join("report.md");
    std::fs::write(&p, md).map_err(werr(&p))?;
    written.push(p);
    let p = dir.join("report.html");
    std::fs::write(&p, to_html("ipcbench report", &blocks)).map_err(werr(&p))?;
    written.push(p);
    Ok(written)
}
