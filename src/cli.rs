//! Command-line definitions and their validation. Bad input exits 2 with a message that
//! says what is allowed.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::backends::Family;
use crate::message::Verify;
use crate::peer::{PeerArgs, MAX_SIZE};
use crate::placement::Pin;
use crate::runner::Subject;
use crate::workload::Workload;

#[derive(Parser, Debug)]
#[command(
    name = "ipcbench",
    version,
    about = "Measure how fast two Linux processes communicate and synchronise, mechanism by mechanism",
    long_about = "Measure how fast two Linux processes communicate and synchronise, mechanism by mechanism.\n\n\
        Channels run two workloads: latency (a ping-pong round trip recorded per iteration, \
        p50/p99/p99.9) and throughput (one-way streaming with a final acknowledgement, MB/s). \
        Synchronisation primitives run two: handoff (two processes take turns) and lock (both \
        contend for a shared counter). Open-loop workloads on request: rate (requests on a \
        schedule, latency from each scheduled time) and load (a sweep of rates with each \
        mechanism's knee). Every message is checked; a mechanism that loses or corrupts data \
        is reported as an error, never as a number."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CommandKind,
}

#[derive(Subcommand, Debug)]
pub enum CommandKind {
    /// List the mechanisms with their properties and this machine's IPC limits.
    List(ListArgs),
    /// Run the workloads (latency, throughput, handoff, lock by default; rate and load on
    /// request) and print comparison tables.
    Run(Box<RunArgs>),
    /// Measure the machine's floor: clock read cost, cross-core cache-line round trip,
    /// memcpy bandwidth at each size (also measured before every run).
    Floor(FloorArgs),
    /// Remove what runs that were killed left behind (System V queues and semaphore sets,
    /// names of runs that died before removing them); only this tool's, only dead runs'.
    Clean,
    /// Write a markdown and an HTML report with charts from results files.
    Report(ReportArgs),
    /// Compare two results files (for people and CI).
    Compare(CompareArgs),
    /// Recommend mechanisms for a message size, pattern and needs, from measured results.
    Recommend(RecommendArgs),
    /// The peer process (started by `run` itself; not for use by hand).
    #[command(name = "__peer", hide = true)]
    Peer(PeerArgs),
    /// One side of a bare reference loop (started by `floor`; not for use by hand).
    #[command(name = "__bare", hide = true)]
    Bare(crate::bare::BareArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Mechanisms to run, comma-separated: ids from `ipcbench list`, family names
    /// (message-passing, sockets, shm, crates, calibration, sync) or `all`.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub mechanisms: Vec<String>,

    /// Message sizes in bytes, comma-separated; K and M suffixes are powers of 1024 (64,4K,1M).
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_value = "64,4K,64K,1M")]
    pub sizes: Vec<usize>,

    /// Workloads to run, comma-separated; each subject runs those it has (channels: latency,
    /// throughput, and on request the open-loop rate and load; synchronisation primitives:
    /// handoff, lock).
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = workload_parser(),
        default_value = "latency,throughput,handoff,lock"
    )]
    pub workloads: Vec<String>,

    /// Fewer messages per case: a full sweep in well under a minute.
    #[arg(long)]
    pub quick: bool,

    /// Runs of every case, each with fresh peers, interleaved (all cases, then all again);
    /// results then carry each repetition and a distribution-free interval for the median,
    /// whose level depends on K: 75% with 3, 93.75% with 5, at least 95% from 6 on.
    /// Default: 1 with --quick, 3 otherwise.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: Option<u32>,

    /// After the sweep, measure one mechanism's 64-byte round trip over every pair of CPUs
    /// this process may use (a core-to-core map; the report draws it as a heatmap).
    #[arg(long)]
    pub pin_matrix: bool,

    /// The mechanism for --pin-matrix.
    #[arg(long, default_value = "pipe")]
    pub matrix_mechanism: String,

    /// Seconds --pin-matrix may take in total; pairs not reached are left out and noted.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub matrix_budget: u64,

    /// Measured messages per case instead of the size-based default: round trips for latency,
    /// turn pairs for handoff, milliseconds of contention for lock. Under 1000 the tail
    /// percentiles rest on a handful of samples (a warning says so).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub messages: Option<u64>,

    /// The `rate` workload's offered load, requests per second (open loop: requests are
    /// sent on schedule whether or not replies have come).
    #[arg(long, default_value_t = 20_000.0, value_parser = parse_rate)]
    pub rate: f64,

    /// How the `rate` workload spaces its requests: `even` (exactly 1/R apart) or `poisson`
    /// (exponential gaps with mean 1/R).
    #[arg(long, value_enum, default_value = "even")]
    pub arrivals: crate::results::Arrivals,

    /// The `load` workload's points, comma-separated: requests per second (`50000`, `10k`)
    /// or percentages of the closed-loop maximum measured first in the same case (`50%`).
    #[arg(long, value_delimiter = ',', value_parser = parse_rate_spec, default_value = crate::workload::DEFAULT_RATES)]
    pub rates: Vec<crate::workload::RateSpec>,

    /// The `load` workload's latency budget: each mechanism's knee is the highest achieved
    /// rate whose p99 stays under it. A duration with its unit: 500us, 1ms, 2s.
    #[arg(long, value_parser = parse_duration_ns, default_value = crate::workload::DEFAULT_SLO)]
    pub slo: u64,

    /// Fan-in: N client processes served by one server thread, comma-separated counts
    /// (`1,2,4,8`). Latency and throughput then run once per count (every client
    /// closed-loop, or every client streaming) on the mechanisms that can fan in.
    #[arg(long, value_delimiter = ',', value_parser = parse_clients)]
    pub clients: Vec<usize>,

    /// CPU placement: `cross` puts the two processes on different CPUs (default with 2+ CPUs),
    /// `same` on one CPU, `none` lets the scheduler decide.
    #[arg(long, value_enum)]
    pub pin: Option<Pin>,

    /// The two CPUs to use as PARENT,PEER (default: the first two this process may use).
    #[arg(long, value_parser = parse_cpu_pair)]
    pub cpus: Option<(usize, usize)>,

    /// How much of each message the receiver checks: `cheap` (length, sequence number,
    /// last word) or `full` (every byte).
    #[arg(long, value_enum, default_value = "cheap")]
    pub verify: Verify,

    /// Seconds any single phase may wait for the peer before the case fails.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,

    /// SO_RCVBUF in bytes for the receiving sockets of datagram mechanisms (udp,
    /// unix-dgram, unix-seqpacket); the kernel doubles it and clamps it to net.core.rmem_max.
    /// Small values provoke loss in datagram streams.
    #[arg(long, value_parser = parse_bytes)]
    pub socket_rcvbuf: Option<usize>,

    /// Bytes of each shared-memory ring (one per direction), rounded up to whole pages.
    /// Messages larger than the ring are reported unsupported. Default: 2 MiB, or room
    /// for two messages where that is more (64 MiB messages get 128 MiB rings).
    #[arg(long, value_parser = parse_bytes)]
    pub shm_ring: Option<usize>,

    /// Which segment holds the shared-memory rings: `posix` (shm_open, unlinked once both
    /// sides mapped it), `sysv` (shmget, removed once both attached) or `memfd` (anonymous).
    #[arg(long, value_enum, default_value = "posix")]
    pub shm_segment: crate::backends::shm::Segment,

    /// Put shared-memory segments on 2 MiB huge pages (needs `--shm-segment memfd` or
    /// `sysv`, and pages reserved with `sysctl vm.nr_hugepages=N`; otherwise the shm
    /// mechanisms are reported unsupported, with that reason).
    #[arg(long)]
    pub shm_hugepages: bool,

    /// How a shared-memory receiver takes each message: `copy` it out of the ring and check
    /// it there (as every channel does), or check it `in-place` in the ring (no copy out).
    #[arg(long, value_enum, default_value = "copy")]
    pub shm_read: crate::backends::shm::Read,

    /// How long `shm-adaptive` polls before it sleeps on the futex, in µs (0: never polls).
    /// Default: the run's measured cross-CPU wake-up p50 (spinning as long as one sleep
    /// and wake-up costs is never worse than twice the better choice); 0 with --pin same.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub spin_us: Option<u64>,

    /// Where to write the JSON results (written atomically; its directory must exist).
    #[arg(long, default_value = DEFAULT_JSON)]
    pub json: PathBuf,

    /// Where to write the report (report.md, report.html and SVG charts). Default: beside
    /// the JSON, `results/report` for the default JSON and `<name>-report/` for any other.
    #[arg(long)]
    pub report: Option<PathBuf>,

    /// Do not write the report.
    #[arg(long)]
    pub no_report: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON for scripts: mechanisms, synchronisation primitives and limits.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct FloorArgs {
    /// Sizes for the memcpy bandwidth.
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_value = "64,4K,64K,1M")]
    pub sizes: Vec<usize>,
    /// CPU placement, as for `run`.
    #[arg(long, value_enum)]
    pub pin: Option<Pin>,
    /// The two CPUs as PARENT,PEER.
    #[arg(long, value_parser = parse_cpu_pair)]
    pub cpus: Option<(usize, usize)>,
    /// Also run the bare reference loops (plain ping-pongs with no harness, two processes)
    /// beside the mechanisms they stand for, interleaved, and print the ratios.
    #[arg(long)]
    pub reference: bool,
    /// Message size for `--reference` (cacheline always carries 8 bytes).
    #[arg(long, value_parser = parse_size, default_value = "64")]
    pub size: usize,
    /// Timed round trips per measurement for `--reference` (after a tenth as many untimed).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(10..=10_000_000))]
    pub count: u64,
    /// Repeats for `--reference`, each running both sides of every pair.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Only these mechanisms for `--reference` (those with a bare loop, and `shm-spin`,
    /// which brings `cacheline`); all of them by default.
    #[arg(long, value_delimiter = ',')]
    pub mechanisms: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Results files; several (e.g. `--pin cross` and `--pin same` runs) are merged into one
    /// report with their differences.
    #[arg(default_value = "results/latest.json")]
    pub files: Vec<PathBuf>,

    /// Output directory.
    #[arg(short, long, default_value = "results/report")]
    pub output: PathBuf,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The earlier results file (the baseline).
    pub old: PathBuf,
    /// The later results file, judged against OLD.
    pub new: PathBuf,

    /// Percent change that counts as better or worse (default: above the run-to-run noise
    /// of quick runs on a small VM).
    #[arg(long, default_value_t = crate::report::compare::DEFAULT_THRESHOLD, value_parser = parse_percent)]
    pub threshold: f64,

    /// Exit 1 if anything got worse by more than the threshold, or a case that worked in
    /// OLD failed or is missing in NEW.
    #[arg(long)]
    pub fail_on_regression: bool,

    /// Cases of OLD that NEW does not have are listed but do not fail the comparison.
    #[arg(long)]
    pub allow_missing: bool,
}

#[derive(Args, Debug)]
pub struct RecommendArgs {
    /// Results to rank from.
    #[arg(long, default_value = "results/latest.json")]
    pub results: PathBuf,

    /// Message size; the nearest measured size is used (default: the smallest).
    #[arg(long, value_parser = parse_size)]
    pub size: Option<usize>,

    /// request-response ranks by round-trip p50, streaming by throughput.
    #[arg(long, value_enum, default_value = "request-response")]
    pub pattern: crate::report::recommend::Pattern,

    /// What the application needs, comma-separated or repeated.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub need: Vec<crate::report::recommend::Need>,

    /// Rank by p99 at this load (requests per second, e.g. 50k), from `load` sweeps in the
    /// results: the point nearest the rate for each mechanism.
    #[arg(long, value_parser = parse_absolute_rate)]
    pub rate: Option<f64>,

    /// Rank by the worst client's p99 with this many clients on one server, from fan-in
    /// results (`run --clients`); with `--rate`, at that total load.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=128))]
    pub clients: Option<u32>,
}

/// Accepts the ids of the registered workloads (and lists them when given anything else).
fn workload_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(crate::workload::REGISTRY.iter().map(|w| w.id()))
}

/// `--workloads` as registry entries (the parser admitted only registered ids).
pub fn resolve_workloads(ids: &[String]) -> Result<Vec<&'static dyn Workload>, String> {
    ids.iter()
        .map(|id| crate::workload::by_id(id).ok_or_else(|| format!("unknown workload {id:?}")))
        .collect()
}

/// `50000`, `10k`, `2M` requests per second, or `50%` of the closed-loop maximum.
fn parse_rate_spec(s: &str) -> Result<crate::workload::RateSpec, String> {
    use crate::workload::RateSpec;
    let t = s.trim();
    if let Some(pct) = t.strip_suffix('%') {
        let v: f64 = pct.parse().map_err(|_| {
            format!(
                "{s:?} is not a rate: give requests per second (20000, 10k) or a percentage (50%)"
            )
        })?;
        if !(v.is_finite() && v > 0.0 && v <= 1000.0) {
            return Err(format!(
                "{s}: a percentage of the closed-loop maximum must be above 0 and at most 1000%"
            ));
        }
        return Ok(RateSpec::Fraction(v / 100.0));
    }
    let (digits, mult) = match t.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1e3),
        None => match t.strip_suffix('M') {
            Some(d) => (d, 1e6),
            None => (t, 1.0),
        },
    };
    let v: f64 = digits.parse().map_err(|_| {
        format!("{s:?} is not a rate: give requests per second (20000, 10k) or a percentage (50%)")
    })?;
    rate_in_range(v * mult, s).map(RateSpec::PerSec)
}

/// An absolute rate (`50000`, `50k`): `recommend --rate` asks about a load, not a fraction.
fn parse_absolute_rate(s: &str) -> Result<f64, String> {
    match parse_rate_spec(s)? {
        crate::workload::RateSpec::PerSec(r) => Ok(r),
        crate::workload::RateSpec::Fraction(_) => Err(format!(
            "{s}: give requests per second (e.g. 50k), not a percentage"
        )),
    }
}

/// A duration with a unit (`ns`, `us` or `µs`, `ms`, `s`) in nanoseconds; a bare number is
/// refused, since its unit would be a guess.
fn parse_duration_ns(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{s:?} has no unit: write 500us, 1ms or 2s"))?;
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: write 500us, 1ms or 2s"))?;
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {s:?}: use ns, us, ms or s"
            ))
        }
    };
    let ns = v * scale;
    if !(1.0..=3600e9).contains(&ns) {
        return Err(format!("{s}: a budget must be between 1 ns and 1 hour"));
    }
    Ok(ns as u64)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a rate: give requests per second, e.g. 20000"))?;
    rate_in_range(v, s)
}

/// Refuses a rate outside 1 to 10,000,000 requests per second, naming it as the user wrote it.
fn rate_in_range(v: f64, written: &str) -> Result<f64, String> {
    if !(v.is_finite() && (1.0..=10_000_000.0).contains(&v)) {
        return Err(format!(
            "{written}: the rate must be between 1 and 10000000 requests per second"
        ));
    }
    Ok(v)
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage"))?;
    if !(0.0..=1000.0).contains(&v) {
        return Err("the threshold must be between 0 and 1000 percent".into());
    }
    Ok(v)
}

/// The default `--json`; its report goes to `results/report`.
pub const DEFAULT_JSON: &str = "results/latest.json";

/// Parses a message size: `64`, `4K`, `4KiB`, `1M`, `1MiB` (binary multiples). Zero and
/// over 256 MiB are refused.
/// A fan-in client count: 1 to what this machine's limits allow (each client is a process
/// holding descriptors in this one).
pub fn parse_clients(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of clients (a whole number, 1 or more)"))?;
    if n == 0 {
        return Err("0 clients: give at least 1".into());
    }
    let max = crate::workload::clients::max_clients();
    if n > max.0 {
        return Err(format!(
            "{n} clients is more than this machine allows: at most {} ({})",
            max.0, max.1
        ));
    }
    Ok(n)
}

pub fn parse_size(s: &str) -> Result<usize, String> {
    parse_amount(s, "a message size")
}

/// Parses a buffer size (`--shm-ring`, `--socket-rcvbuf`) written like a message size.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    parse_amount(s, "a buffer size")
}

fn parse_amount(s: &str, what: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, mult) = match t.find(|c: char| !c.is_ascii_digit()) {
        None => (t, 1usize),
        Some(i) => {
            let unit = &t[i..];
            let mult = match unit.to_ascii_lowercase().as_str() {
                "b" => 1,
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                _ => return Err(format!("unknown unit {unit:?} in {s:?}: use a number with optional K or M (e.g. 64, 4K, 1M)")),
            };
            (&t[..i], mult)
        }
    };
    let n: usize = digits.parse().map_err(|_| {
        format!("{s:?} is not a size: use a number with optional K or M (e.g. 64, 4K, 1M)")
    })?;
    let size = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if size == 0 {
        return Err(format!("{what} must be at least 1 byte"));
    }
    if size > MAX_SIZE {
        return Err(format!(
            "{s:?} is larger than the 256 MiB this tool supports"
        ));
    }
    Ok(size)
}

fn parse_cpu_pair(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("{s:?}: give two CPU numbers as PARENT,PEER (e.g. 0,1)"))?;
    let cpu = |x: &str| {
        x.trim()
            .parse::<usize>()
            .map_err(|_| format!("{x:?} is not a CPU number"))
    };
    Ok((cpu(a)?, cpu(b)?))
}

fn family_by_name(name: &str) -> Option<Family> {
    Family::ALL
        .into_iter()
        .filter(|f| *f != Family::Test)
        .find(|f| f.as_str() == name)
}

/// Resolves `--mechanisms` into registry entries, in registry order. Unknown or repeated
/// names are refused.
pub fn resolve_mechanisms(names: &[String]) -> Result<Vec<Subject>, String> {
    let mut chosen: Vec<Subject> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for raw in names {
        let name = raw.trim();
        if !seen.insert(name) {
            return Err(format!("{name:?} is listed twice in --mechanisms"));
        }
        let picked: Vec<Subject> = if name == "all" {
            Subject::all().collect()
        } else if let Some(f) = family_by_name(name) {
            Subject::all().filter(|s| s.family() == f).collect()
        } else if let Some(s) = Subject::by_id(name) {
            vec![s]
        } else {
            let known: Vec<&str> = Subject::all().map(|s| s.id()).collect();
            return Err(format!(
                "unknown mechanism {name:?}; choose from: all, message-passing, sockets, shm, crates, calibration, sync, {}",
                known.join(", ")
            ));
        };
        for m in picked {
            if !chosen.iter().any(|c| c.id() == m.id()) {
                chosen.push(m);
            }
        }
    }
    if chosen.is_empty() {
        return Err("--mechanisms selects no mechanism".into());
    }
    Ok(chosen)
}

/// Refuses repeated sizes or workloads (a repeated case would only waste time).
pub fn check_unique<T: PartialEq + std::fmt::Debug>(what: &str, items: &[T]) -> Result<(), String> {
    for (i, a) in items.iter().enumerate() {
        if items[..i].contains(a) {
            return Err(format!("{a:?} is listed twice in --{what}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4kib"), Ok(4096));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        for bad in ["0", "", "x", "4Q", "-1", "1G", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mechanisms() {
        let all = resolve_mechanisms(&["all".into()]).unwrap();
        assert!(all.iter().all(|m| m.family() != Family::Test));
        assert!(all.iter().any(|m| m.id() == "pipe-raw"));
        assert!(all.iter().any(|m| m.id() == "pthread-mutex"));
        assert!(!all.iter().any(|m| m.id() == "cacheline"));
        assert_eq!(
            resolve_mechanisms(&["tcp".into(), "pipe".into()])
                .unwrap()
                .len(),
            2
        );
        assert!(resolve_mechanisms(&["pipe".into(), "pipe".into()]).is_err());
        assert!(resolve_mechanisms(&["nope".into()])
            .unwrap_err()
            .contains("choose from"));
        let sockets = resolve_mechanisms(&["sockets".into()]).unwrap();
        assert!(sockets.iter().all(|m| m.family() == Family::Sockets));
        let sync = resolve_mechanisms(&["sync".into()]).unwrap();
        assert_eq!(
            sync.len(),
            crate::backends::sync::REGISTRY.len() - 1,
            "all but no-lock"
        );
    }
}
