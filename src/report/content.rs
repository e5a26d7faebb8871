//! What the report says, built from one or more results files: the machine and its limits,
//! the configuration, charts, rankings, full tables with reasons for every gap, the cost of
//! each crate over its raw mechanism, the choosing guide, and differences between runs.

use std::path::{Path, PathBuf};

use super::chart::{self, LineChart, Series};
use super::document::{to_html, to_markdown, Block};
use super::recommend::{advise, Need, Pattern};
use super::{family_of, micros, size_label, ReportError};
use crate::results::{CaseResult, RunFile, Status, Workload};

/// One results file and how the report names it.
pub struct Input {
    pub label: String,
    pub run: RunFile,
}

const FAMILY_ORDER: [&str; 5] = ["message-passing", "sockets", "shm", "crates", "sync"];

/// Mechanisms of a run in family order, then in the order they ran.
fn mechanisms(run: &RunFile) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for r in &run.results {
        if !seen.iter().any(|(m, _)| *m == r.mechanism) {
            seen.push((r.mechanism.clone(), family_of(r)));
        }
    }
    seen.sort_by_key(|(_, f)| {
        FAMILY_ORDER
            .iter()
            .position(|x| x == f)
            .unwrap_or(FAMILY_ORDER.len())
    });
    seen
}

/// Message sizes of the run (synchronisation results carry no size).
fn sizes(run: &RunFile) -> Vec<usize> {
    let mut s: Vec<usize> = run
        .results
        .iter()
        .filter(|r| !r.workload.is_sync())
        .map(|r| r.size)
        .collect();
    s.sort_unstable();
    s.dedup();
    s
}

fn find<'a>(run: &'a RunFile, mech: &str, w: Workload, size: usize) -> Option<&'a CaseResult> {
    run.results
        .iter()
        .find(|r| r.mechanism == mech && r.workload == w && r.size == size)
}

fn gap(r: &CaseResult) -> String {
    let word = if r.status == Status::Unsupported {
        "unsupported"
    } else {
        "ERROR"
    };
    format!(
        "{word}: {}",
        r.reason.as_deref().unwrap_or("no reason recorded")
    )
}

fn cell(r: Option<&CaseResult>, ok: impl Fn(&CaseResult) -> Option<String>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r.status == Status::Ok => ok(r).unwrap_or_else(|| "-".into()),
        Some(r) => gap(r),
    }
}

fn cpu_ns(r: &CaseResult) -> Option<f64> {
    r.cpu.as_ref().map(|c| c.user_ns_per_msg + c.sys_ns_per_msg)
}

fn loss_note(r: &CaseResult) -> String {
    match r.loss {
        Some(l) if l > 0.0 => format!(" (lost {:.2}%)", l * 100.0),
        _ => String::new(),
    }
}

fn grid(run: &RunFile, w: Workload, f: impl Fn(&CaseResult) -> Option<String>) -> Block {
    let sz = sizes(run);
    let mut header = vec!["mechanism".to_string()];
    header.extend(sz.iter().map(|s| size_label(*s)));
    let rows = mechanisms(run)
        .into_iter()
        .filter(|(m, _)| {
            run.results
                .iter()
                .any(|r| &r.mechanism == m && r.workload == w)
        })
        .map(|(m, _)| {
            let mut row = vec![m.clone()];
            row.extend(sz.iter().map(|&s| cell(find(run, &m, w, s), &f)));
            row
        })
        .collect();
    Block::Table { header, rows }
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

fn ranking(run: &RunFile, out: &mut Vec<Block>) {
    let sz = sizes(run);
    let picks: Vec<usize> = match (sz.first(), sz.last()) {
        (Some(a), Some(b)) if a != b => vec![*a, *b],
        (Some(a), _) => vec![*a],
        _ => return,
    };
    for size in picks {
        let mut lat: Vec<&CaseResult> = run
            .results
            .iter()
            .filter(|r| r.size == size && r.workload == Workload::Latency && r.status == Status::Ok)
            .collect();
        lat.sort_by_key(|r| r.rtt_ns.as_ref().map(|s| s.p50).unwrap_or(u64::MAX));
        let mut tp: Vec<&CaseResult> = run
            .results
            .iter()
            .filter(|r| {
                r.size == size && r.workload == Workload::Throughput && r.status == Status::Ok
            })
            .collect();
        let bps = |r: &CaseResult| {
            r.throughput
                .as_ref()
                .map(|t| t.bytes_per_sec)
                .unwrap_or(0.0)
        };
        tp.sort_by(|a, b| bps(b).total_cmp(&bps(a)));
        let n = lat.len().max(tp.len());
        let rows = (0..n)
            .map(|i| {
                vec![
                    (i + 1).to_string(),
                    lat.get(i)
                        .map(|r| {
                            format!(
                                "{} ({} µs)",
                                r.mechanism,
                                micros(r.rtt_ns.as_ref().map(|s| s.p50).unwrap_or(0) as f64)
                            )
                        })
                        .unwrap_or_default(),
                    tp.get(i)
                        .map(|r| {
                            format!("{} ({:.0} MB/s{})", r.mechanism, bps(r) / 1e6, loss_note(r))
                        })
                        .unwrap_or_default(),
                ]
            })
            .collect();
        out.push(Block::Heading(
            4,
            format!("Ranking at {}", size_label(size)),
        ));
        out.push(Block::Table {
            header: vec![
                "rank".into(),
                "lowest round-trip p50".into(),
                "highest throughput".into(),
            ],
            rows,
        });
    }
}

fn layers(run: &RunFile, out: &mut Vec<Block>) {
    let sz = sizes(run);
    let mut rows = Vec::new();
    for (m, _) in mechanisms(run) {
        let Some(base) = run
            .results
            .iter()
            .find(|r| r.mechanism == m)
            .and_then(|r| r.built_on.clone())
        else {
            continue;
        };
        if !run.results.iter().any(|r| r.mechanism == base) {
            continue;
        }
        let mut row = vec![format!("{m} on {base}")];
        for &s in &sz {
            let ok = |w, mech: &str| find(run, mech, w, s).filter(|r| r.status == Status::Ok);
            let lat = ok(Workload::Latency, &m)
                .zip(ok(Workload::Latency, &base))
                .and_then(|(c, b)| {
                    Some(c.rtt_ns.as_ref()?.p50 as f64 / b.rtt_ns.as_ref()?.p50.max(1) as f64)
                });
            let tp = ok(Workload::Throughput, &m)
                .zip(ok(Workload::Throughput, &base))
                .and_then(|(c, b)| {
                    Some(
                        c.throughput.as_ref()?.bytes_per_sec / b.throughput.as_ref()?.bytes_per_sec,
                    )
                });
            let f = |v: Option<f64>| v.map(|v| format!("{v:.2}x")).unwrap_or_else(|| "-".into());
            row.push(format!("{} / {}", f(lat), f(tp)));
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return;
    }
    out.push(Block::Heading(
        3,
        "What each crate costs over its raw mechanism".into(),
    ));
    out.push(Block::Para(
        "Latency p50 ratio / throughput ratio against the mechanism the crate is built on, from the same run: a latency ratio above 1 or a throughput ratio below 1 is the layer's cost.".into(),
    ));
    let mut header = vec!["crate on mechanism".to_string()];
    header.extend(sz.iter().map(|s| size_label(*s)));
    out.push(Block::Table { header, rows });
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

/// The synchronisation table: one row per primitive, hand-off and lock side by side.
pub fn sync_table(run: &RunFile) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let header = [
        "primitive",
        "hand-off p50 / p99 (µs)",
        "lock: acquisitions/s",
        "parent share",
        "uncontended ns/pair",
        "counter",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for r in run.results.iter().filter(|r| r.workload.is_sync()) {
        if seen.contains(&r.mechanism.as_str()) {
            continue;
        }
        seen.push(&r.mechanism);
        let get = |w| {
            run.results
                .iter()
                .find(|x| x.mechanism == r.mechanism && x.workload == w)
        };
        let hand = match get(Workload::Handoff) {
            None => "-".to_string(),
            Some(h) if h.status == Status::Ok => h
                .rtt_ns
                .as_ref()
                .map(|s| {
                    format!(
                        "{} / {}{}",
                        micros(s.p50 as f64),
                        micros(s.p99 as f64),
                        super::table::ci_us(h)
                    )
                })
                .unwrap_or_default(),
            Some(h) => gap(h),
        };
        let (ops, share, unc, counter) = match get(Workload::Lock) {
            None => (
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
            ),
            Some(l) if l.status == Status::Ok => match &l.lock {
                Some(k) => (
                    format!("{:.0}", k.ops_per_sec),
                    format!("{:.0}%", k.fairness * 100.0),
                    format!("{:.0}", k.uncontended_ns_per_pair),
                    format!("{} = {} writes", k.counter, k.writes),
                ),
                None => Default::default(),
            },
            Some(l) => (gap(l), String::new(), String::new(), String::new()),
        };
        rows.push(vec![r.mechanism.clone(), hand, ops, share, unc, counter]);
    }
    (!rows.is_empty()).then_some((header, rows))
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
    out.push(Block::Heading(
        3,
        "Round-trip latency: p50 / p99 / p99.9 (µs)".into(),
    ));
    out.push(grid(run, Workload::Latency, |r| {
        let s = r.rtt_ns.as_ref()?;
        Some(format!(
            "{} / {} / {}{}{}{}",
            micros(s.p50 as f64),
            micros(s.p99 as f64),
            micros(s.p999 as f64),
            super::table::ci_us(r),
            super::table::floor_suffix(r),
            loss_note(r)
        ))
    }));
    out.push(Block::Heading(3, "Throughput, one way (MB/s)".into()));
    out.push(grid(run, Workload::Throughput, |r| {
        Some(format!(
            "{:.1}{}{}{}",
            r.throughput.as_ref()?.bytes_per_sec / 1e6,
            super::table::ci_mb(r),
            super::table::copy_suffix(r),
            loss_note(r)
        ))
    }));
    out.push(Block::Heading(
        3,
        "CPU per message, both processes (µs): round trip / streamed message".into(),
    ));
    let sz = sizes(run);
    let mut header = vec!["mechanism".to_string()];
    header.extend(sz.iter().map(|s| size_label(*s)));
    let rows = mechanisms(run)
        .into_iter()
        .filter(|(m, _)| {
            run.results
                .iter()
                .any(|r| &r.mechanism == m && !r.workload.is_sync())
        })
        .map(|(m, _)| {
            let mut row = vec![m.clone()];
            for &s in &sz {
                let f = |w| {
                    find(run, &m, w, s)
                        .filter(|r| r.status == Status::Ok)
                        .and_then(cpu_ns)
                        .map(micros)
                        .unwrap_or_else(|| "-".into())
                };
                row.push(format!(
                    "{} / {}",
                    f(Workload::Latency),
                    f(Workload::Throughput)
                ));
            }
            row
        })
        .collect();
    out.push(Block::Table { header, rows });
    layers(run, out);
    if let Some((header, rows)) = sync_table(run) {
        out.push(Block::Heading(
            3,
            "Synchronisation between processes".into(),
        ));
        out.push(Block::Para(
            "Hand-off: two processes take turns through the primitive (the time for the turn to go and come back). Lock: both processes take the lock and increment a shared counter for the same time; the counter must equal the writes (no lost update). Mutexes and file locks cannot signal, so their hand-off polls a turn word under the lock.".into(),
        ));
        out.push(Block::Table { header, rows });
    }
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
