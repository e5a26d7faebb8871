//! The result tables, written once as document blocks: the terminal prints them as text
//! after a run, and the markdown and HTML reports carry the same blocks, so rows, order,
//! cells and notes are the same everywhere.

use super::document::{to_text, Block};
use super::model::{cpu_ns, find, find_ok, mechanisms, sizes, CALIBRATION};
use super::{micros, size_label};
use super::{HANDOFF, LATENCY, LOAD, LOCK, RATE, SETUP, THROUGHPUT};
use crate::results::{CaseResult, RunFile, Status};

/// `12,345.6`: digits grouped in threes, with `decimals` places.
pub fn grouped(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// MB/s with a precision that suits the magnitude and grouped digits.
pub fn mb_per_sec(bps: f64) -> String {
    let mb = bps / 1e6;
    grouped(mb, if mb < 100.0 { 1 } else { 0 })
}

/// Reasons for unsupported and failed cells, numbered once per table and referenced `[n]`.
#[derive(Default)]
pub struct Notes(pub Vec<String>);

impl Notes {
    /// The cell for a case: `ok` formats a success; a gap becomes `unsupported [n]` or
    /// `ERROR [n]` with its reason in the notes.
    pub fn cell(
        &mut self,
        r: Option<&CaseResult>,
        ok: impl Fn(&CaseResult) -> Option<String>,
    ) -> String {
        let Some(r) = r else {
            return "-".into();
        };
        let word = match r.status {
            Status::Ok => return ok(r).unwrap_or_else(|| "-".into()),
            Status::Unsupported => "unsupported",
            Status::Error => "ERROR",
        };
        let where_ = if !r.sized() {
            format!("{} {}", r.mechanism, r.workload.as_str())
        } else {
            format!(
                "{} {} {}",
                r.mechanism,
                r.workload.as_str(),
                size_label(r.size)
            )
        };
        let text = format!(
            "{where_}: {}",
            r.reason.as_deref().unwrap_or("no reason recorded")
        );
        let n = match self.0.iter().position(|t| *t == text) {
            Some(i) => i + 1,
            None => {
                self.0.push(text);
                self.0.len()
            }
        };
        format!("{word} [{n}]")
    }

    fn into_block(self) -> Option<Block> {
        (!self.0.is_empty()).then_some(Block::Notes(self.0))
    }
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
        .map(|[lo, hi]| format!(" [{}-{}]", mb_per_sec(lo), mb_per_sec(hi)))
        .unwrap_or_default()
}

/// ` x120 w1.1`: p50 as a multiple of the cache-line round trip, and for a mechanism that
/// sleeps while it waits, of two cross-CPU wake-ups.
pub fn floor_suffix(r: &CaseResult) -> String {
    let wake = r.x_wake.map(|w| format!(" w{w:.1}")).unwrap_or_default();
    r.x_floor.map(|x| format!(" x{x:.0}")).unwrap_or_default() + &wake
}

/// ` x0.25`: throughput as a fraction of memcpy bandwidth at this size.
pub fn copy_suffix(r: &CaseResult) -> String {
    r.x_copy
        .map(|x| format!(" x{}", two_significant(x)))
        .unwrap_or_default()
}

/// `0.25`, `0.0034`: two significant digits for a fraction (a bare `0.00` says nothing).
fn two_significant(x: f64) -> String {
    if x >= 0.1 || x <= 0.0 {
        return format!("{x:.2}");
    }
    let digits = (-x.log10().floor()) as usize + 1;
    format!("{x:.digits$}")
}

/// ` (lost 1.2%)` for lossy mechanisms that lost anything.
pub fn loss_suffix(r: &CaseResult) -> String {
    match (r.lost, r.loss) {
        (Some(lost), Some(frac)) if lost > 0 => format!(" (lost {:.2}%)", frac * 100.0),
        _ => String::new(),
    }
}

/// A row that separates calibration rows from the rankings.
fn calibration_divider(columns: usize) -> Vec<String> {
    let mut row = vec!["calibration (not a choice):".to_string()];
    row.extend(std::iter::repeat_n(String::new(), columns - 1));
    row
}

/// Mechanism by size for the channel mechanisms that ran `w` (or any channel workload when
/// `w` is `None`); `cell` formats one size's entry.
fn grid(
    run: &RunFile,
    w: Option<&str>,
    mut cell: impl FnMut(&str, usize, &mut Notes) -> String,
) -> Option<(Block, Option<Block>)> {
    let sz = sizes(run);
    let mut header = vec!["mechanism".to_string()];
    header.extend(sz.iter().map(|s| size_label(*s)));
    let mut notes = Notes::default();
    let mut rows = Vec::new();
    let mut divided = false;
    for (m, family) in mechanisms(run) {
        let ran = run
            .results
            .iter()
            .any(|r| r.mechanism == m && r.sized() && w.is_none_or(|w| r.workload == w));
        if !ran {
            continue;
        }
        if family == CALIBRATION && !divided && !rows.is_empty() {
            rows.push(calibration_divider(header.len()));
            divided = true;
        }
        let mut row = vec![m.clone()];
        row.extend(sz.iter().map(|&s| cell(&m, s, &mut notes)));
        rows.push(row);
    }
    (!rows.is_empty()).then(|| (Block::Table { header, rows }, notes.into_block()))
}

fn push_grid(out: &mut Vec<Block>, title: &str, legend: String, g: Option<(Block, Option<Block>)>) {
    let Some((table, notes)) = g else {
        return;
    };
    out.push(Block::Heading(3, title.into()));
    if !legend.is_empty() {
        out.push(Block::Para(legend));
    }
    out.push(table);
    out.extend(notes);
}

/// Crate mechanisms against the raw mechanism they are built on, from the same run:
/// `p50 ratio / throughput ratio` (above 1 / below 1 means the layer costs).
fn layers(run: &RunFile, out: &mut Vec<Block>) {
    let sz = sizes(run);
    let mut rows = Vec::new();
    for (m, base) in super::model::built_on_pairs(run) {
        let mut row = vec![format!("{m} on {base}")];
        let mut measured = false;
        for &s in &sz {
            let ok = |w, mech: &str| find_ok(run, mech, w, s);
            let lat = ok(LATENCY, &m).zip(ok(LATENCY, &base)).and_then(|(c, b)| {
                Some(c.rtt_ns.as_ref()?.p50 as f64 / b.rtt_ns.as_ref()?.p50.max(1) as f64)
            });
            let tp = ok(THROUGHPUT, &m)
                .zip(ok(THROUGHPUT, &base))
                .and_then(|(c, b)| {
                    Some(
                        c.throughput.as_ref()?.bytes_per_sec / b.throughput.as_ref()?.bytes_per_sec,
                    )
                });
            let f = |v: Option<f64>| v.map(|v| format!("{v:.2}x")).unwrap_or_else(|| "-".into());
            measured |= lat.is_some() || tp.is_some();
            row.push(format!("{} / {}", f(lat), f(tp)));
        }
        // A pair that ran neither workload (a setup-only run) has nothing to show.
        if measured {
            rows.push(row);
        }
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

/// The synchronisation table: one row per primitive, hand-off and lock side by side.
fn sync(run: &RunFile, out: &mut Vec<Block>) {
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
    let mut notes = Notes::default();
    let mut rows = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for r in run.results.iter().filter(|r| !r.sized()) {
        if seen.contains(&r.mechanism.as_str()) {
            continue;
        }
        seen.push(&r.mechanism);
        let get = |w| find(run, &r.mechanism, w, 0);
        let hand = notes.cell(get(HANDOFF), |h| {
            let s = h.rtt_ns.as_ref()?;
            Some(format!(
                "{} / {}{}",
                micros(s.p50 as f64),
                micros(s.p99 as f64),
                ci_us(h)
            ))
        });
        let lock = get(LOCK);
        let ops = notes.cell(lock, |l| Some(grouped(l.lock.as_ref()?.ops_per_sec, 0)));
        let k = lock
            .filter(|l| l.status == Status::Ok)
            .and_then(|l| l.lock.as_ref());
        let (share, unc, counter) = match k {
            Some(k) => (
                format!("{:.0}%", k.fairness * 100.0),
                grouped(k.uncontended_ns_per_pair, 0),
                format!(
                    "{} = {} writes",
                    grouped(k.counter as f64, 0),
                    grouped(k.writes as f64, 0)
                ),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        rows.push(vec![r.mechanism.clone(), hand, ops, share, unc, counter]);
    }
    if rows.is_empty() {
        return;
    }
    out.push(Block::Heading(
        3,
        "Synchronisation between processes".into(),
    ));
    out.push(Block::Para(
        "Hand-off: two processes take turns through the primitive (the time for the turn to go and come back). Lock: both processes take the lock and increment a shared counter for the same time; the counter must equal the writes (no lost update). Mutexes and file locks cannot signal, so their hand-off polls a turn word under the lock.".into(),
    ));
    out.push(Block::Table { header, rows });
    out.extend(notes.into_block());
}

/// The load sweeps: per size, mechanisms by offered point, p99 (µs) and achieved rate,
/// saturated points marked, and each mechanism's knee under the budget.
fn load(run: &RunFile, out: &mut Vec<Block>) {
    let labels: Vec<String> = match &run.config.rates {
        Some(l) if !l.is_empty() => l.clone(),
        _ => return,
    };
    for s in sizes(run) {
        let mut notes = Notes::default();
        let mut rows = Vec::new();
        for (m, _) in mechanisms(run) {
            let Some(r) = find(run, &m, LOAD, s) else {
                continue;
            };
            let mut row = vec![m.clone()];
            match (&r.load, r.status) {
                (Some(l), Status::Ok) => {
                    for label in &labels {
                        row.push(
                            l.points
                                .iter()
                                .find(|p| &p.label == label)
                                .map(|p| {
                                    format!(
                                        "{} ({}/s){}",
                                        micros(p.rtt_ns.p99 as f64),
                                        grouped(p.achieved_per_sec, 0),
                                        if p.saturated { "*" } else { "" }
                                    )
                                })
                                .unwrap_or_else(|| "-".into()),
                        );
                    }
                    // A knee at the sweep's highest point is only a lower bound.
                    let top = l
                        .points
                        .iter()
                        .map(|p| p.achieved_per_sec)
                        .fold(0.0, f64::max);
                    row.push(
                        l.knee_per_sec
                            .map(|k| {
                                let at_least = if k >= top { "≥ " } else { "" };
                                format!("{at_least}{}/s", grouped(k, 0))
                            })
                            .unwrap_or_else(|| "none".into()),
                    );
                }
                _ => {
                    let cell = notes.cell(Some(r), |_| None);
                    row.extend(std::iter::repeat_n(cell, labels.len() + 1));
                }
            }
            rows.push(row);
        }
        if rows.is_empty() {
            continue;
        }
        let slo = run
            .config
            .slo_ns
            .map(|ns| micros(ns as f64))
            .unwrap_or_else(|| "?".into());
        out.push(Block::Heading(
            3,
            format!(
                "Load sweep at {}: p99 (µs) and achieved rate per offered point; * saturated",
                size_label(s)
            ),
        ));
        out.push(Block::Para(format!(
            "Percentages are of each mechanism's closed-loop maximum (one request in flight). Knee: the highest achieved rate whose p99 stays under {slo} µs without saturating; ≥ where that is the sweep's highest point, so the true knee lies beyond it (extend --rates)."
        )));
        let mut header = vec!["mechanism".to_string()];
        header.extend(labels.iter().cloned());
        header.push("knee".into());
        out.push(Block::Table { header, rows });
        out.extend(notes.into_block());
    }
}

/// Every result table of a run, in the order the terminal and the reports show them.
pub fn blocks(full: &RunFile) -> Vec<Block> {
    let run = &*super::model::one_to_one(full);
    let mut out = Vec::new();
    let interval = if run.config.repeat > 1 {
        format!(
            "[lo-hi]: the {}. ",
            crate::stats::interval_label(run.config.repeat)
        )
    } else {
        String::new()
    };
    let floor = run
        .floor
        .as_ref()
        .and_then(|f| f.cacheline_rtt_ns)
        .map(|ns| format!("xN: p50 as a multiple of the cache-line round trip ({ns:.0} ns here)."))
        .unwrap_or_default();
    let wake = run
        .floor
        .as_ref()
        .and_then(|f| f.wakeup.as_ref())
        .map(|w| format!(" wN (mechanisms that sleep while waiting): p50 as a multiple of two cross-CPU wake-ups ({} µs each here, p50).", micros(w.p50_ns as f64)))
        .unwrap_or_default();
    let floor = floor + &wake;
    push_grid(
        &mut out,
        "Round-trip latency, p50 / p99 (µs)",
        format!("{interval}{floor}"),
        grid(run, Some(LATENCY), |m, s, notes| {
            notes.cell(find(run, m, LATENCY, s), |r| {
                let s = r.rtt_ns.as_ref()?;
                Some(format!(
                    "{} / {}{}{}{}",
                    micros(s.p50 as f64),
                    micros(s.p99 as f64),
                    ci_us(r),
                    floor_suffix(r),
                    loss_suffix(r)
                ))
            })
        }),
    );
    push_grid(
        &mut out,
        "Throughput, one way (MB/s, 1 MB = 10^6 bytes)",
        format!("{interval}xN: the fraction of single-thread memcpy bandwidth at that size."),
        grid(run, Some(THROUGHPUT), |m, s, notes| {
            notes.cell(find(run, m, THROUGHPUT, s), |r| {
                Some(format!(
                    "{}{}{}{}",
                    mb_per_sec(r.throughput.as_ref()?.bytes_per_sec),
                    ci_mb(r),
                    copy_suffix(r),
                    loss_suffix(r)
                ))
            })
        }),
    );
    push_grid(
        &mut out,
        &format!(
            "Open-loop latency at {} requests/s ({} arrivals), p50 / p99 / p99.9 (µs)",
            run.config.rate.map(|r| grouped(r, 0)).unwrap_or_else(|| "?".into()),
            run.config
                .arrivals
                .map(|a| format!("{a:?}").to_lowercase())
                .unwrap_or_else(|| "?".into())
        ),
        "Each latency runs from the request's scheduled send time to its reply, so stalls count for every request queued behind them; SATURATED: the client could not keep the schedule.".into(),
        grid(run, Some(RATE), |m, s, notes| {
            notes.cell(find(run, m, RATE, s), |r| {
                let l = r.rtt_ns.as_ref()?;
                let sat = match &r.rate {
                    Some(x) if x.saturated => " SATURATED",
                    _ => "",
                };
                Some(format!(
                    "{} / {} / {}{sat}",
                    micros(l.p50 as f64),
                    micros(l.p99 as f64),
                    micros(l.p999 as f64)
                ))
            })
        }),
    );
    push_grid(
        &mut out,
        "CPU per message, both processes, user+sys (µs): per round trip / per streamed message",
        String::new(),
        grid(run, None, |m, s, _| {
            let f = |w| {
                find_ok(run, m, w, s)
                    .and_then(cpu_ns)
                    .map(micros)
                    .unwrap_or_else(|| "-".into())
            };
            format!("{} / {}", f(LATENCY), f(THROUGHPUT))
        }),
    );
    load(run, &mut out);
    setup(run, &mut out);
    fan_in(full, &mut out);
    layers(run, &mut out);
    sync(run, &mut out);
    out
}

/// The `setup` workload: per size, what a fresh channel costs on each side, p50 / p99.
fn setup(run: &RunFile, out: &mut Vec<Block>) {
    for s in sizes(run) {
        let mut notes = Notes::default();
        let mut rows = Vec::new();
        let mut handed = false;
        let mut kept = false;
        let mut capped = Vec::new();
        let mut host_tw = Vec::new();
        for (m, _) in mechanisms(run) {
            let Some(r) = find(run, &m, SETUP, s) else {
                continue;
            };
            let (Some(x), Status::Ok) = (&r.setup, r.status) else {
                let cell = notes.cell(Some(r), |_| None);
                let mut row = vec![m.clone()];
                row.extend(std::iter::repeat_n(cell, 6));
                rows.push(row);
                continue;
            };
            handed |= x.passes_descriptors;
            kept |= x.records_ns.is_some();
            if let Some(asked) = x.capped_from {
                capped.push(format!("{m}: {} of {asked}", r.messages));
            }
            if let Some(n) = x.host_time_wait {
                host_tw.push(format!("{m} {}", grouped(n as f64, 0)));
            }
            let mark = if x.passes_descriptors { " †" } else { "" };
            rows.push(setup_row(format!("{m}{mark}"), x));
            if let Some(a) = &x.abortive {
                rows.push(setup_row(format!("{m} (SO_LINGER 0)"), a));
            }
        }
        if rows.is_empty() {
            continue;
        }
        out.push(Block::Heading(
            3,
            format!(
                "Setup at {}: a fresh channel per iteration, p50 / p99 (µs)",
                size_label(s)
            ),
        ));
        let mut legend = String::from(
            "Each iteration: the parent offers a new channel, hands its description to the running peer, the peer joins (connect), one request and reply, the parent closes. connect: the joining side's open or connect. accept: the offering side's create, its wait from the joiner's first call until it holds the channel, and the removal of the names. first trip: the first request and reply on it. teardown: from the parent's close until the peer has seen it and closed (sockets, pipes, FIFOs), else both closes added. TIME_WAIT: sockets left in that state on this case's connections (the side that closes first keeps its end for 60 s); SO_LINGER 0 closes with a reset instead and leaves none.",
        );
        if kept {
            legend.push_str(" Not counted: ipcbench's own record of each named object it creates (a small file, so that `ipcbench clean` can remove what a killed run leaves); the JSON has it as records_ns.");
        }
        if handed {
            legend.push_str(" †: no name to open (anonymous pipes, socket pairs): a new pair is made by the parent and its descriptors pass over a Unix socket (SCM_RIGHTS), counted in accept.");
        }
        if !host_tw.is_empty() {
            legend.push_str(&format!(
                " TCP's accept includes binding a new listener to an ephemeral port, which slows as TIME_WAIT sockets pile up on the host (they hold their ports 60 s); there were, when each case began: {}.",
                host_tw.join(", ")
            ));
        }
        if !capped.is_empty() {
            legend.push_str(&format!(
                " Fewer iterations than asked, to keep clear of the ephemeral port range's end: {}.",
                capped.join(", ")
            ));
        }
        out.push(Block::Para(legend));
        out.push(Block::Table {
            header: [
                "mechanism",
                "connect",
                "accept",
                "first trip",
                "teardown",
                "setups/s",
                "TIME_WAIT",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        });
        out.extend(notes.into_block());
    }
}

fn setup_row(label: String, x: &crate::results::SetupResult) -> Vec<String> {
    let pair = |l: &crate::stats::LatencySummary| {
        format!("{} / {}", micros(l.p50 as f64), micros(l.p99 as f64))
    };
    vec![
        label,
        pair(&x.connect_ns),
        pair(&x.accept_ns),
        pair(&x.first_rtt_ns),
        pair(&x.teardown_ns),
        grouped(x.per_sec, 0),
        match (x.time_wait, x.connections) {
            (Some(t), Some(c)) => format!("{t} of {c}"),
            (Some(t), None) => t.to_string(),
            _ => "-".into(),
        },
    ]
}

/// Fan-in (`--clients`): per workload and size, mechanisms × client counts, each cell the
/// aggregate rate, the worst client's p99 (round trips) and fairness.
fn fan_in(run: &RunFile, out: &mut Vec<Block>) {
    let fan: Vec<&CaseResult> = run.results.iter().filter(|r| r.clients.is_some()).collect();
    let mut counts: Vec<usize> = fan.iter().filter_map(|r| r.clients).collect();
    counts.sort_unstable();
    counts.dedup();
    let mut sizes: Vec<usize> = fan.iter().map(|r| r.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for (w, what) in [
        (
            LATENCY,
            "round trips/s (all clients, each closed-loop) / worst client's p99 µs / fairness",
        ),
        (
            THROUGHPUT,
            "messages/s (all clients streaming) / MB/s / fairness",
        ),
        (
            RATE,
            "requests/s achieved of the offered total (each client open-loop at its share, so counts are even by design: compare the clients' tails) / worst client's p99 µs from the scheduled times / fairness; SATURATED: a client could not keep its schedule",
        ),
    ] {
        for &s in &sizes {
            let mut notes = Notes::default();
            let mut rows = Vec::new();
            for (m, _) in mechanisms(run) {
                let mine: Vec<&&CaseResult> = fan
                    .iter()
                    .filter(|r| r.mechanism == m && r.workload == w && r.size == s)
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let mut row = vec![m.clone()];
                for &n in &counts {
                    let r = mine.iter().find(|r| r.clients == Some(n)).map(|r| **r);
                    row.push(notes.cell(r, |r| {
                        let f = r.fan_in.as_ref()?;
                        let rate = grouped(f.msgs_per_sec, 0);
                        let fair = format!("{:.2}", f.fairness);
                        let sat = match &r.rate {
                            Some(x) if x.saturated => " SATURATED",
                            _ => "",
                        };
                        Some(match r.throughput.as_ref() {
                            Some(t) if w == THROUGHPUT => {
                                format!(
                                    "{rate} / {} / {fair}{}",
                                    mb_per_sec(t.bytes_per_sec),
                                    loss_suffix(r)
                                )
                            }
                            _ => {
                                let worst = f.per_client.iter().filter_map(|c| c.p99_ns).max();
                                let p99 = worst
                                    .map(|v| micros(v as f64))
                                    .unwrap_or_else(|| "-".into());
                                format!("{rate} / {p99} / {fair}{sat}{}", loss_suffix(r))
                            }
                        })
                    }));
                }
                rows.push(row);
            }
            if rows.is_empty() {
                continue;
            }
            let offered = match (w, run.config.rate) {
                (RATE, Some(rate)) => format!(" of {} requests/s", grouped(rate, 0)),
                _ => String::new(),
            };
            out.push(Block::Heading(
                3,
                format!(
                    "Fan-in, {w}{offered} at {}: N clients, one server thread",
                    size_label(s)
                ),
            ));
            out.push(Block::Para(format!(
                "Each cell: {what}. Fairness is the smallest client's count over the largest's in the same window (1 = even). The server is this process on one CPU; where each client ran is in the JSON (`fan_in.client_cpus`)."
            )));
            let mut header = vec!["mechanism".to_string()];
            header.extend(
                counts
                    .iter()
                    .map(|n| format!("{n} client{}", if *n == 1 { "" } else { "s" })),
            );
            out.push(Block::Table { header, rows });
            out.extend(notes.into_block());
        }
    }
}

/// What the terminal prints after a run: placement, floor, then every table as text.
pub fn render(run: &RunFile) -> String {
    let mut out = format!("{}\n", run.config.placement);
    if let Some(f) = &run.floor {
        let line = f
            .cacheline_rtt_ns
            .map(|v| format!("cache-line round trip {v:.0} ns"))
            .unwrap_or_else(|| "cache-line round trip not measured".into());
        let wake = f
            .wakeup
            .as_ref()
            .map(|w| {
                format!(
                    ", cross-CPU wake-up p50 {} µs (p10 {}, p90 {})",
                    micros(w.p50_ns as f64),
                    micros(w.p10_ns as f64),
                    micros(w.p90_ns as f64)
                )
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "floor: {line}, clock read {:.0} ns{wake}\n",
            f.clock_read_ns
        ));
    }
    if run.config.repeat > 1 {
        out.push_str(&format!(
            "{} repetitions per case, interleaved, fresh peers each time\n",
            run.config.repeat
        ));
    }
    out.push('\n');
    out.push_str(&to_text(&blocks(run)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// base.json with a calibration result appended after everything else.
    fn run_with_calibration() -> RunFile {
        let mut run: RunFile = serde_json::from_str(include_str!("../../tests/fixtures/base.json"))
            .expect("fixture parses");
        let mut raw = run.results[0].clone();
        raw.mechanism = "pipe-raw".into();
        raw.family = Some("calibration".into());
        run.results.insert(1, raw);
        run
    }

    /// First cells of the rows of the first table, as a renderer printed them.
    fn first_column(text: &str, row_start: &str) -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with(row_start))
            .take_while(|l| !l.trim().is_empty())
            .map(|l| {
                l.trim_start_matches("| ")
                    .split([' ', '|'])
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn terminal_and_report_list_the_same_rows_with_calibration_apart() {
        let run = run_with_calibration();
        let blocks = blocks(&run);
        let text = to_text(&blocks);
        let (md, _) = super::super::document::to_markdown(&blocks);
        let t = first_column(&text, "pipe ");
        let m = first_column(&md, "| pipe |");
        assert_eq!(t, m, "same order in both:\n{text}\n{md}");
        let cal = t
            .iter()
            .position(|r| r == "calibration")
            .expect("a calibration divider");
        assert_eq!(t[cal + 1], "pipe-raw");
        assert_eq!(t.len(), cal + 2, "calibration rows come last: {t:?}");
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(grouped(35236.7, 0), "35,237");
        assert_eq!(grouped(1234567.25, 1), "1,234,567.2");
        assert_eq!(grouped(999.0, 0), "999");
        assert_eq!(grouped(-1234.0, 0), "-1,234");
        assert_eq!(mb_per_sec(147.1e6), "147");
        assert_eq!(mb_per_sec(17.94e6), "17.9");
        assert_eq!(two_significant(0.25), "0.25");
        assert_eq!(two_significant(0.00341), "0.0034");
        assert_eq!(two_significant(0.05), "0.050");
    }
}
