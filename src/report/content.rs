//! What the report says, built from one or more results files: the machine and its limits,
//! the configuration, charts, rankings, full tables with reasons for every gap, the cost of
//! each crate over its raw mechanism, the choosing guide, and differences between runs.

use std::path::{Path, PathBuf};

use super::chart::{self, LineChart, Series};
use super::document::{to_html, to_markdown, Block};
use super::recommend::{advise, Need, Pattern};
use super::table::{cpu_ns, find, mechanisms, sizes};
use super::{micros, size_label, ReportError};
use crate::results::{CaseResult, RunFile, Status, Workload};

/// One results file and how the report names it.
pub struct Input {
    pub label: String,
    pub run: RunFile,
}

fn series(
    run: &RunFile,
    w: Workload,
    value: impl Fn(&CaseResult) -> Option<f64>,
    mark: impl Fn(&CaseResult) -> Option<f64>,
) -> Vec<Series> {
    mechanisms(run)
        .into_iter()
        .filter_map(|(m, family)| {
            let rows: Vec<&CaseResult> = run
                .results
                .iter()
                .filter(|r| r.mechanism == m && r.workload == w && r.status == Status::Ok)
                .collect();
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| Some((r.size as f64, value(r)?)))
                .collect();
            let marks = rows
                .iter()
                .filter_map(|r| Some((r.size as f64, mark(r)?)))
                .collect();
            (!points.is_empty()).then_some(Series {
                name: m,
                family,
                points,
                marks,
            })
        })
        .collect()
}

fn charts(run: &RunFile, suffix: &str, out: &mut Vec<Block>) {
    let sz = sizes(run);
    let specs = [
        (
            "latency",
            LineChart {
                title: "Round-trip latency p50 (hollow: p99)".into(),
                y_label: "round trip (log scale)".into(),
                y_format: chart::us_axis,
                sizes: sz.clone(),
                series: series(
                    run,
                    Workload::Latency,
                    |r| Some(r.rtt_ns.as_ref()?.p50 as f64),
                    |r| Some(r.rtt_ns.as_ref()?.p99 as f64),
                ),
                marks_note: Some("hollow circles: p99".into()),
            },
        ),
        (
            "throughput",
            LineChart {
                title: "Throughput, one way".into(),
                y_label: "bytes per second (log scale)".into(),
                y_format: chart::rate_axis,
                sizes: sz.clone(),
                series: series(
                    run,
                    Workload::Throughput,
                    |r| Some(r.throughput.as_ref()?.bytes_per_sec),
                    |_| None,
                ),
                marks_note: None,
            },
        ),
        (
            "cpu",
            LineChart {
                title: "CPU time per streamed message, both processes".into(),
                y_label: "CPU per message (log scale)".into(),
                y_format: chart::us_axis,
                sizes: sz,
                series: series(run, Workload::Throughput, cpu_ns, |_| None),
                marks_note: None,
            },
        ),
    ];
    for (name, c) in specs {
        if let Some(svg) = chart::render(&c) {
            out.push(Block::Chart {
                file: format!("{name}{suffix}.svg"),
                title: c.title.clone(),
                svg,
            });
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
            "shared memory: {} segments, {}-byte rings",
            c.shm_segment, c.shm_ring
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
            (Some(v), _) => items.push(format!("cross-core cache-line round trip: {v:.0} ns (the lower bound for any notification; latency cells show p50 as a multiple of it, xN)")),
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
    }
    for s in sizes(run) {
        let p50 = |m: &str| {
            find(run, m, Workload::Latency, s)
                .filter(|r| r.status == Status::Ok)
                .and_then(|r| Some(r.rtt_ns.as_ref()?.p50 as f64))
        };
        if let (Some(a), Some(b)) = (p50("pipe"), p50("pipe-raw")) {
            items.push(format!(
                "harness cost at {}: `pipe` p50 {} µs against `pipe-raw` (no framing, no checks) {} µs: {:+.1}%",
                size_label(s),
                micros(a),
                micros(b),
                (a - b) / b * 100.0
            ));
        }
    }
    let c = &run.config;
    items.push(if c.repeat > 1 {
        format!("{} repetitions per case, interleaved, fresh peers each time; intervals in brackets are distribution-free: the {}", c.repeat, crate::stats::interval_label(c.repeat))
    } else {
        "one repetition per case: no intervals (use --repeat)".into()
    });
    out.push(Block::List(items));
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

fn one_run(input: &Input, suffix: &str, out: &mut Vec<Block>) {
    let run = &input.run;
    machine(run, out);
    measurement(run, suffix, out);
    out.push(Block::Heading(3, "Charts".into()));
    charts(run, suffix, out);
    out.push(Block::Heading(3, "Rankings".into()));
    ranking(run, out);
    choosing(run, out);
    out.extend(super::table::blocks(run));
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
            for (w, metric) in [
                (Workload::Latency, "p50 µs"),
                (Workload::Throughput, "MB/s"),
            ] {
                let value = |run: &RunFile| -> Option<f64> {
                    let r = find(run, &m, w, s).filter(|r| r.status == Status::Ok)?;
                    match w {
                        Workload::Latency | Workload::Handoff => {
                            Some(r.rtt_ns.as_ref()?.p50 as f64 / 1000.0)
                        }
                        Workload::Throughput => Some(r.throughput.as_ref()?.bytes_per_sec / 1e6),
                        Workload::Lock => Some(r.lock.as_ref()?.ops_per_sec),
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
