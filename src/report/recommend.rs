//! Choosing a mechanism from measured numbers: filter by what the application needs, rank by
//! the metric that matters for its pattern at the nearest measured size, and say what each
//! choice costs. The report's "Choosing a mechanism" section is generated from the same code.

use clap::ValueEnum;
use serde::Serialize;

use super::{micros, size_label};
use super::{LATENCY, THROUGHPUT};
use crate::backends;
use crate::results::{CaseResult, RunFile, Status};

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
    /// Calls with a schema or interface description and typed clients (an RPC framework).
    Rpc,
}

pub struct Pick {
    pub mechanism: String,
    /// The ranked metric, formatted with its unit.
    pub shown: String,
    /// CPU time of both processes, µs per round trip (request-response) or per message.
    pub cpu_us: Option<f64>,
    pub trade_off: String,
    /// 1-based rank of its group: picks tied with one another share a rank.
    pub rank: usize,
    /// Whether other picks share this rank.
    pub tied: bool,
}

pub struct Advice {
    /// The measured size the ranking comes from, and the size asked for, if any.
    pub size: usize,
    pub asked: Option<usize>,
    pub ranked_by: &'static str,
    /// What the CPU figure is per: `round trip` or `message`.
    pub cpu_per: &'static str,
    pub picks: Vec<Pick>,
    /// Mechanisms left out, and why (cannot carry the asked size here, busy-waits, ...).
    pub excluded: Vec<(String, String)>,
    /// How ties were decided.
    pub tie_rule: String,
}

/// Two results whose headline differs by less than this are tied when the runs have no
/// repetitions: two back-to-back `run --quick` on the 2-vCPU reference VM differed by a
/// median 21% in p50 (see `compare::DEFAULT_THRESHOLD`).
pub const SINGLE_RUN_NOISE_PCT: f64 = 20.0;

/// How far (as a ratio) the nearest measured size may be from the asked one before the
/// answer says it is an extrapolation.
const FAR: f64 = 2.0;

fn nearest(sizes: &[usize], want: usize) -> Option<usize> {
    let dist = |s: usize| ((s as f64).ln() - (want.max(1) as f64).ln()).abs();
    sizes
        .iter()
        .cloned()
        .min_by(|a, b| dist(*a).total_cmp(&dist(*b)))
}

/// The measured size to answer from: the one nearest the asked size, else the smallest.
/// The sizes among `results`, ascending, each once.
fn sizes_of(results: &[&CaseResult]) -> Vec<usize> {
    let mut sizes: Vec<usize> = results.iter().map(|r| r.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// How far apart two rates are, as the log of their ratio (a rate measured at 0 counts as 1/s).
fn rate_distance(measured: f64, asked: f64) -> f64 {
    (measured.max(1.0) / asked).ln().abs()
}

/// Whether a rate was measured close enough to the asked one to answer for it.
fn near_rate(measured: f64, asked: f64) -> bool {
    rate_distance(measured, asked) <= RATE_FAR.ln()
}

impl Pick {
    /// A candidate for result `r`, its ranked metric `shown`; ranks are set when sorted.
    fn of(r: &CaseResult, shown: String, trade_off: String) -> Pick {
        Pick {
            mechanism: r.mechanism.clone(),
            shown,
            cpu_us: cpu_us(r),
            trade_off,
            rank: 0,
            tied: false,
        }
    }
}

/// Marks the picks that share their rank with another.
fn mark_ties(picks: &mut [Pick]) {
    for k in 0..picks.len() {
        let rank = picks[k].rank;
        picks[k].tied = picks.iter().filter(|p| p.rank == rank).count() > 1;
    }
}

fn size_to_answer(sizes: &[usize], asked: Option<usize>) -> Option<usize> {
    match asked {
        Some(s) => nearest(sizes, s),
        None => sizes.first().cloned(),
    }
}

/// Whether a mechanism has every property the application needs (the ranking needs,
/// lowest latency and lowest CPU, hold for all).
fn satisfies(m: &dyn backends::Mechanism, needs: &[Need]) -> bool {
    let i = m.info();
    needs.iter().all(|n| match n {
        Need::Boundaries => i.boundaries,
        Need::ManyToOne => i.fan_in,
        Need::Unrelated => i.named,
        Need::CrossHost => i.cross_host,
        Need::PassFds => i.fd_passing,
        Need::Portable => i.portable,
        Need::Rpc => m.rpc().is_some(),
        Need::LowestLatency | Need::LowestCpu => true,
    })
}

/// `mechanism`'s successful result for `r`'s workload and size in the same run.
fn same_case<'a>(run: &'a RunFile, r: &CaseResult, mechanism: &str) -> Option<&'a CaseResult> {
    run.results.iter().find(|b| {
        b.mechanism == mechanism
            && b.workload == r.workload
            && b.size == r.size
            && b.status == Status::Ok
    })
}

fn p50_ns(r: &CaseResult) -> Option<f64> {
    r.rtt_ns.as_ref().map(|s| s.p50 as f64)
}

/// Where `shm-adaptive` stands between the two it blends, in this run: its p50 against
/// shm-spin's and its CPU per message against shm-futex's (it wins when both are near 1).
fn adaptive_here(run: &RunFile, r: &CaseResult) -> String {
    let twin = |id: &str| same_case(run, r, id);
    let mut out = String::new();
    if let Some((a, z)) = twin("shm-spin").and_then(|s| p50_ns(r).zip(p50_ns(s))) {
        out.push_str(&format!("; here p50 {:.1}x shm-spin's", a / z.max(1.0)));
    }
    if let Some((a, z)) = twin("shm-futex").and_then(|f| cpu_us(r).zip(cpu_us(f))) {
        out.push_str(&format!(
            "; CPU per message {:.1}x shm-futex's",
            a / z.max(1e-9)
        ));
    }
    if let Some(ns) = run.config.spin_ns {
        out.push_str(&format!(
            " (spin budget {} µs: {})",
            micros(ns as f64),
            run.config.spin_source
        ));
    }
    out
}

/// What result `r`'s layer costs over the mechanism it is built on, from the same run
/// (latency p50 or throughput, as `r` measures).
fn layer_cost(run: &RunFile, r: &CaseResult, i: &backends::MechanismInfo) -> String {
    let Some(base) = i.built_on else {
        return "no raw mechanism under it to compare with".into();
    };
    let under = same_case(run, r, base);
    let bps = |x: &CaseResult| x.throughput.as_ref().map(|t| t.bytes_per_sec);
    match under {
        Some(b) => match (p50_ns(r), p50_ns(b), bps(r), bps(b)) {
            (Some(a), Some(z), _, _) if z > 0.0 => {
                format!(
                    "costs {:.1}x the p50 of {base} beneath it in this run",
                    a / z
                )
            }
            (_, _, Some(a), Some(z)) if z > 0.0 => {
                format!(
                    "carries {:.2}x the throughput of {base} beneath it in this run",
                    a / z
                )
            }
            _ => format!("{base} beneath it has no comparable number in this run"),
        },
        None => format!("run {base} too to see what the layer costs"),
    }
}

fn cpu_us(r: &CaseResult) -> Option<f64> {
    r.cpu
        .as_ref()
        .map(|c| (c.user_ns_per_msg + c.sys_ns_per_msg) / 1000.0)
}

/// Whether the nearest measured size is far from the one asked for.
pub fn is_far(a: &Advice) -> bool {
    a.asked.is_some_and(|want| {
        let r = a.size as f64 / want as f64;
        !(1.0 / FAR..=FAR).contains(&r)
    })
}

/// The command-line spelling of a need (`cross-host`), as the user typed it.
pub fn need_name(n: Need) -> String {
    n.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| format!("{n:?}"))
}

/// Why `m` cannot carry `size` bytes with the run's configuration and limits, if so.
fn cannot_carry(m: &dyn backends::Mechanism, run: &RunFile, size: usize) -> Option<String> {
    m.unsupported(&channel_params(run, size), &run.environment.limits)
}

/// The channel parameters the run's cases of `size` bytes had, from its configuration.
pub(crate) fn channel_params(run: &RunFile, size: usize) -> backends::ChannelParams {
    let mut p = backends::ChannelParams::new(size);
    p.rcvbuf = run.config.socket_rcvbuf;
    if run.config.shm_ring > 0 {
        p.shm_ring = run.config.shm_ring;
    }
    if let Ok(seg) = backends::shm::Segment::from_str(&run.config.shm_segment, true) {
        p.shm_segment = seg;
    }
    p.shm_huge = run.config.shm_hugepages;
    if let Ok(read) = backends::shm::Read::from_str(&run.config.shm_read, true) {
        p.shm_read = read;
    }
    p.pin = run.config.pin;
    p
}

/// Mechanisms that satisfy `needs`, ranked for `pattern` at the measured size nearest `size`
/// (the smallest measured size when none is given). Mechanisms whose headline numbers are
/// within the noise of one another (overlapping intervals with repetitions, within
/// `SINGLE_RUN_NOISE_PCT` without) share a rank.
pub fn advise(
    run: &RunFile,
    size: Option<usize>,
    pattern: Pattern,
    needs: &[Need],
) -> Result<Advice, String> {
    let by_latency = pattern == Pattern::RequestResponse || needs.contains(&Need::LowestLatency);
    let workload = if by_latency { LATENCY } else { THROUGHPUT };
    let ok: Vec<&CaseResult> = run
        .results
        .iter()
        .filter(|r| r.workload == workload && r.status == Status::Ok)
        .collect();
    let measured = size_to_answer(&sizes_of(&ok), size).ok_or_else(|| {
        format!(
            "the results have no successful {} measurement to rank",
            workload
        )
    })?;
    let by_cpu = needs.contains(&Need::LowestCpu);
    let mut excluded = Vec::new();
    let mut cands: Vec<(&CaseResult, &'static backends::MechanismInfo)> = Vec::new();
    for r in ok.into_iter().filter(|r| r.size == measured) {
        let Some(m) = backends::by_id(&r.mechanism) else {
            continue;
        };
        let i = m.info();
        let fits = satisfies(m, needs);
        if !fits
            || matches!(
                i.family,
                backends::Family::Test | backends::Family::Calibration
            )
        {
            continue;
        }
        if let Some(why) = size
            .filter(|&s| s != measured)
            .and_then(|s| cannot_carry(m, run, s))
        {
            excluded.push((r.mechanism.clone(), why));
            continue;
        }
        if by_cpu && i.busy_waits {
            excluded.push((
                r.mechanism.clone(),
                "busy-waits: it burns a whole CPU while idle, which CPU per message under a flood does not show".into(),
            ));
            continue;
        }
        cands.push((r, i));
    }
    // The headline metric of each candidate (lower is better) and its interval, if any.
    let headline = |r: &CaseResult| -> (f64, Option<[f64; 2]>) {
        if by_cpu {
            (cpu_us(r).unwrap_or(f64::MAX), None)
        } else if by_latency {
            (
                r.rtt_ns.as_ref().map(|s| s.p50 as f64).unwrap_or(f64::MAX),
                r.p50_ci,
            )
        } else {
            let bps = r
                .throughput
                .as_ref()
                .map(|t| t.bytes_per_sec)
                .unwrap_or(0.0);
            (-bps, r.bytes_per_sec_ci.map(|[lo, hi]| [-hi, -lo]))
        }
    };
    cands.sort_by(|a, b| headline(a.0).0.total_cmp(&headline(b.0).0));
    let ranked_by = if by_cpu {
        "CPU time per message (both processes)"
    } else if by_latency {
        "round-trip p50"
    } else {
        "throughput"
    };
    let with_intervals = run.config.repeat > 1 && !by_cpu;
    let tie_rule = if with_intervals {
        format!(
            "mechanisms share a rank when their {} intervals overlap",
            crate::stats::interval_label(run.config.repeat)
        )
    } else {
        format!(
            "mechanisms share a rank when they differ by less than {SINGLE_RUN_NOISE_PCT:.0}%, the run-to-run noise of single quick runs (use --repeat 5 or more for intervals)"
        )
    };
    let tied = |a: (f64, Option<[f64; 2]>), b: (f64, Option<[f64; 2]>)| match (a.1, b.1) {
        (Some([alo, ahi]), Some([blo, bhi])) if with_intervals => alo <= bhi && blo <= ahi,
        _ => {
            let (x, y) = (a.0.abs(), b.0.abs());
            (x - y).abs() <= SINGLE_RUN_NOISE_PCT / 100.0 * x.min(y)
        }
    };
    let mut picks: Vec<Pick> = Vec::new();
    let mut leader: Option<(f64, Option<[f64; 2]>)> = None;
    for (k, (r, i)) in cands.iter().enumerate() {
        let h = headline(r);
        let rank = match (leader, picks.last()) {
            (Some(l), Some(last)) if tied(l, h) => last.rank,
            _ => {
                leader = Some(h);
                k + 1
            }
        };
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
        if let (true, Some(gives)) = (
            needs.contains(&Need::Rpc),
            backends::by_id(&r.mechanism).and_then(|m| m.rpc()),
        ) {
            trade_off = format!("{gives}; {}", layer_cost(run, r, i));
        }
        if let Some(l) = r.loss.filter(|l| *l > 0.0) {
            trade_off.push_str(&format!("; lost {:.2}% here", l * 100.0));
        }
        if r.mechanism == "shm-adaptive" {
            trade_off.push_str(&adaptive_here(run, r));
        }
        picks.push(Pick {
            rank,
            ..Pick::of(r, shown, trade_off)
        });
    }
    mark_ties(&mut picks);
    Ok(Advice {
        size: measured,
        asked: size,
        ranked_by,
        cpu_per: if by_latency { "round trip" } else { "message" },
        picks,
        excluded,
        tie_rule,
    })
}

/// How far (as a ratio) a sweep's nearest point may be from the asked rate.
const RATE_FAR: f64 = 1.5;

/// Mechanisms that satisfy `needs`, ranked by p99 at `rate` requests per second from the
/// `load` sweeps at the measured size nearest `size`: for each mechanism the point whose
/// achieved rate is nearest `rate`. A mechanism whose nearest point is more than 1.5x away,
/// or saturated, is left out with the reason; so is one with no sweep.
pub fn advise_at_rate(
    run: &RunFile,
    size: Option<usize>,
    rate: f64,
    needs: &[Need],
) -> Result<Advice, String> {
    let swept: Vec<&CaseResult> = run
        .results
        .iter()
        .filter(|r| r.workload == super::LOAD && r.status == Status::Ok && r.load.is_some())
        .collect();
    let measured = size_to_answer(&sizes_of(&swept), size).ok_or(
        "the results have no load sweep to answer from: run `ipcbench run --workloads load`",
    )?;
    let mut excluded = Vec::new();
    let mut cands: Vec<(f64, Pick)> = Vec::new();
    for r in swept.into_iter().filter(|r| r.size == measured) {
        let Some(m) = backends::by_id(&r.mechanism) else {
            continue;
        };
        let i = m.info();
        let fits = satisfies(m, needs);
        if !fits {
            continue;
        }
        let Some(l) = &r.load else { continue };
        let dist = |a: f64| rate_distance(a, rate);
        let Some(p) = l
            .points
            .iter()
            .min_by(|a, b| dist(a.achieved_per_sec).total_cmp(&dist(b.achieved_per_sec)))
        else {
            continue;
        };
        if !near_rate(p.achieved_per_sec, rate) {
            excluded.push((
                r.mechanism.clone(),
                format!(
                    "no measured point near {rate:.0}/s (the nearest achieved {:.0}/s); sweep with --rates {rate:.0}",
                    p.achieved_per_sec
                ),
            ));
            continue;
        }
        if p.saturated {
            excluded.push((
                r.mechanism.clone(),
                format!("saturated at {:.0}/s offered", p.offered_per_sec),
            ));
            continue;
        }
        cands.push((
            p.rtt_ns.p99 as f64,
            Pick::of(
                r,
                format!(
                    "p99 {} µs, p50 {} µs at {:.0}/s achieved",
                    micros(p.rtt_ns.p99 as f64),
                    micros(p.rtt_ns.p50 as f64),
                    p.achieved_per_sec
                ),
                i.trade_off.to_string(),
            ),
        ));
    }
    Ok(Advice {
        size: measured,
        asked: size,
        picks: rank_single_runs(cands),
        ranked_by: "p99 at the asked load (open loop)",
        cpu_per: "request",
        excluded,
        tie_rule: format!(
            "mechanisms share a rank when their p99 differ by less than {SINGLE_RUN_NOISE_PCT:.0}%"
        ),
    })
}

/// Picks ranked by a lower-is-better value from single runs: values within
/// `SINGLE_RUN_NOISE_PCT` of the rank's leader share its rank.
fn rank_single_runs(mut cands: Vec<(f64, Pick)>) -> Vec<Pick> {
    cands.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut picks: Vec<Pick> = Vec::new();
    let mut leader = f64::NAN;
    for (k, (v, mut p)) in cands.into_iter().enumerate() {
        let tied = picks.last().is_some()
            && (v - leader).abs() <= SINGLE_RUN_NOISE_PCT / 100.0 * v.min(leader);
        if tied {
            p.rank = picks.last().map(|q| q.rank).unwrap_or(1);
        } else {
            p.rank = k + 1;
            leader = v;
        }
        picks.push(p);
    }
    mark_ties(&mut picks);
    picks
}

/// Mechanisms that satisfy `needs`, ranked by the worst client's p99 with `clients`
/// clients on one server, from the fan-in runs (`run --clients`) at the measured size
/// nearest `size`: closed-loop `latency`, or with `rate` the open-loop `rate` cases whose
/// offered total is within 1.5x of it. Client counts are not interpolated: without a run
/// at exactly `clients`, the answer says which counts were measured.
pub fn advise_with_clients(
    run: &RunFile,
    size: Option<usize>,
    clients: usize,
    rate: Option<f64>,
    needs: &[Need],
) -> Result<Advice, String> {
    let workload = if rate.is_some() { super::RATE } else { LATENCY };
    let fanned: Vec<&CaseResult> = run
        .results
        .iter()
        .filter(|r| r.workload == workload && r.status == Status::Ok && r.fan_in.is_some())
        .collect();
    let mut counts: Vec<usize> = fanned.iter().filter_map(|r| r.clients).collect();
    counts.sort_unstable();
    counts.dedup();
    let again = match rate {
        Some(r) => format!("--workloads rate --rate {r:.0} --clients {clients}"),
        None => format!("--workloads latency --clients {clients}"),
    };
    if !counts.contains(&clients) {
        return Err(match counts.is_empty() {
            true => format!("the results have no fan-in {workload} run to answer from: run `ipcbench run {again}`"),
            false => format!(
                "no fan-in {workload} run with {clients} clients in the results (measured: {}); run `ipcbench run {again}`",
                counts.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let at_n: Vec<&CaseResult> = fanned
        .into_iter()
        .filter(|r| r.clients == Some(clients))
        .collect();
    let measured = size_to_answer(&sizes_of(&at_n), size).ok_or("no fan-in result to rank")?;
    let mut excluded = Vec::new();
    let mut cands = Vec::new();
    for r in at_n.into_iter().filter(|r| r.size == measured) {
        let Some(m) = backends::by_id(&r.mechanism) else {
            continue;
        };
        let i = m.info();
        if !satisfies(m, needs) {
            continue;
        }
        let Some(f) = &r.fan_in else { continue };
        if let (Some(want), Some(got)) = (rate, &r.rate) {
            if !near_rate(got.offered_per_sec, want) {
                excluded.push((
                    r.mechanism.clone(),
                    format!(
                        "measured at {:.0}/s offered, not near {want:.0}/s; run `ipcbench run {again}`",
                        got.offered_per_sec
                    ),
                ));
                continue;
            }
            if got.saturated {
                excluded.push((
                    r.mechanism.clone(),
                    format!("saturated at {:.0}/s offered", got.offered_per_sec),
                ));
                continue;
            }
        }
        let Some(worst) = f.per_client.iter().filter_map(|c| c.p99_ns).max() else {
            continue;
        };
        cands.push((
            worst as f64,
            Pick::of(
                r,
                format!(
                    "worst client's p99 {} µs, {} clients together {:.0}/s, fairness {:.2}",
                    micros(worst as f64),
                    clients,
                    f.msgs_per_sec,
                    f.fairness
                ),
                i.trade_off.to_string(),
            ),
        ));
    }
    Ok(Advice {
        size: measured,
        asked: size,
        picks: rank_single_runs(cands),
        ranked_by: if rate.is_some() {
            "the worst client's p99 at the asked load, many clients on one server"
        } else {
            "the worst client's p99, every client closed-loop on one server"
        },
        cpu_per: "request",
        excluded,
        tie_rule: format!(
            "mechanisms share a rank when their p99 differ by less than {SINGLE_RUN_NOISE_PCT:.0}%"
        ),
    })
}

/// One pick's CPU figure, labelled with what it is per.
pub fn cpu_label(a: &Advice, p: &Pick) -> String {
    p.cpu_us
        .map(|c| format!(", CPU {c:.2} µs per {}", a.cpu_per))
        .unwrap_or_default()
}

/// The advice as text for the terminal.
pub fn render(a: &Advice, pattern: Pattern, needs: &[Need]) -> String {
    let mut out = String::new();
    if let (true, Some(want)) = (is_far(a), a.asked) {
        out.push_str(&format!(
            "Note: nothing was measured near {}; the nearest measured size is {}. Measure it with `ipcbench run --sizes {}`.\n",
            size_label(want),
            size_label(a.size),
            size_label(want).replace(' ', "")
        ));
    }
    out.push_str(&format!(
        "{} at {} ({}), ranked by {}{}:\n",
        match pattern {
            Pattern::RequestResponse => "Request-response",
            Pattern::Streaming => "Streaming",
        },
        size_label(a.size),
        if a.asked == Some(a.size) {
            "measured"
        } else {
            "nearest measured size"
        },
        a.ranked_by,
        if needs.is_empty() {
            String::new()
        } else {
            format!(
                ", needing {}",
                needs
                    .iter()
                    .map(|n| need_name(*n))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ));
    if a.picks.is_empty() {
        out.push_str("  no measured mechanism satisfies these needs\n");
    }
    for p in &a.picks {
        let rank = format!("{}{}", p.rank, if p.tied { "=" } else { "." });
        out.push_str(&format!(
            "{:>4} {:<15} {}{}\n       {}\n",
            rank,
            p.mechanism,
            p.shown,
            cpu_label(a, p),
            p.trade_off
        ));
    }
    if a.picks.iter().any(|p| p.tied) {
        out.push_str(&format!(
            "\n`=`: tied; {}. Between tied mechanisms, choose by CPU and by the trade-offs.\n",
            a.tie_rule
        ));
    }
    if !a.excluded.is_empty() {
        out.push_str("\nLeft out:\n");
        for (m, why) in &a.excluded {
            out.push_str(&format!("  {m}: {why}\n"));
        }
    }
    out
}
