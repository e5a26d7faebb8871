//! The JSON results file. This shape is a contract read by reports and users' scripts:
//! fields are added, never renamed or repurposed. The schema imports nothing above it:
//! only the plain data types of the machine's facts, placement and latency summaries.

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::placement::Pin;

use crate::stats::LatencySummary;

/// Schema 2 renamed `p50_ci95`/`bytes_per_sec_ci95` to `p50_ci`/`bytes_per_sec_ci` (their
/// level was never always 95%: it is `ci_level`) and added `partial` and `ops_per_sec_ci`.
/// Files of schema 1 are still read.
pub const SCHEMA: u32 = 2;
/// Every schema this build reads.
pub const READABLE_SCHEMAS: [u32; 2] = [1, 2];

/// A results file as `run` writes it (`--json`): the machine, the configuration and one
/// [`CaseResult`] per case. Read one back with `serde_json::from_str`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunFile {
    pub schema: u32,
    pub tool: String,
    pub version: String,
    pub started_at: String,
    /// True when the run was interrupted: only the cases that completed are here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    pub environment: Environment,
    pub config: RunConfig,
    /// The machine's floor on the run's CPUs, measured before the sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<Floor>,
    /// With `--pin-matrix`: one mechanism's p50 over every CPU pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<Matrix>,
    pub results: Vec<CaseResult>,
}

/// How an open-loop client spaces its requests.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// Exactly 1/R apart.
    Even,
    /// Exponential gaps with mean 1/R (a Poisson process), from a fixed seed.
    Poisson,
}

/// How the run was configured, including how the processes were placed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    pub pin: Pin,
    /// `[parent CPU, peer CPU]` when pinned.
    pub cpus: Option<[usize; 2]>,
    pub placement: String,
    /// How the two CPUs relate (SMT siblings, shared cache, NUMA node), when pinned.
    #[serde(default)]
    pub cpu_pair: Option<crate::placement::CpuPair>,
    pub quick: bool,
    pub verify: String,
    pub mechanisms: Vec<String>,
    pub sizes: Vec<usize>,
    /// Workload ids, as `--workloads` takes them.
    pub workloads: Vec<String>,
    /// Open-loop workloads (`rate`): the requests per second offered and their spacing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<Arrivals>,
    /// The load sweep's points as asked (`50%`, `20000/s`) and its latency budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rates: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_ns: Option<u64>,
    /// `--messages` when given; otherwise counts follow the size (see README).
    pub messages: Option<u64>,
    pub timeout_secs: u64,
    /// Repetitions of every case.
    #[serde(default = "one")]
    pub repeat: u32,
    /// `--socket-rcvbuf` when given.
    #[serde(default)]
    pub socket_rcvbuf: Option<usize>,
    /// Bytes per shared-memory ring (0: 2 MiB, or two messages where larger), and the
    /// segment kind (posix, sysv, memfd).
    #[serde(default)]
    pub shm_ring: usize,
    #[serde(default)]
    pub shm_segment: String,
    /// Segments on huge pages (`--shm-hugepages`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shm_hugepages: bool,
    /// `copy` or `in-place` (`--shm-read`); empty in files from before it existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shm_read: String,
    /// `shm-adaptive`'s spin budget (ns) and where it came from (`--spin-us`, the floor's
    /// wake-up p50, or the built-in default); absent in files from before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spin_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spin_source: String,
}

fn one() -> u32 {
    1
}

/// How a case ended: measured, not possible here (with the reason), or failed (a message
/// lost or corrupted, the peer died, a timeout; with the reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// The mechanism cannot carry this size (or run) here; `reason` says which limit.
    Unsupported,
    /// The run failed: lost or corrupted data, a dead peer, a timeout. Never a number.
    Error,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub msgs_per_sec: f64,
    pub bytes_per_sec: f64,
    /// From the first send to the acknowledgement.
    pub elapsed_ns: u64,
}

/// CPU spent by both processes during the timed region, per message (per round trip for
/// latency). The sum is exact (`CLOCK_THREAD_CPUTIME_ID`); its user/system split follows
/// `getrusage`, which samples at the scheduler tick. Context switches from `getrusage`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CpuCost {
    pub user_ns_per_msg: f64,
    pub sys_ns_per_msg: f64,
    pub ctx_switches_per_msg: f64,
    pub voluntary_ctx_switches_per_msg: f64,
    pub involuntary_ctx_switches_per_msg: f64,
}

/// One case of a run: a mechanism (`mechanism`, its id), a workload, a message size, its
/// [`Status`] and `reason`, and the workload's numbers (`rtt_ns` for latency, `throughput`,
/// `cpu`, ...), as the README's results-file sketch shows them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseResult {
    pub mechanism: String,
    /// message-passing, sockets, shm, crates (for reports made without this build's registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// For crate mechanisms: the raw mechanism it is built on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_on: Option<String>,
    /// The workload's id (`latency`, `throughput`, `handoff`, `lock`, ...).
    pub workload: String,
    /// Fan-in cases (`--clients N`): N. Absent for one-to-one cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<usize>,
    /// Message size; 0 for workloads that move no messages (synchronisation).
    pub size: usize,
    /// Recorded round trips (latency) or streamed messages (throughput), warm-up excluded.
    pub messages: u64,
    pub warmup: u64,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ns: Option<LatencySummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<Throughput>,
    /// Send to receive of one message, ns, where messages carry their send time (24 bytes
    /// and more): in `throughput` the queueing delay inside the flood, in `rate` the
    /// requests' way to the peer. Both processes read the same `CLOCK_MONOTONIC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_way_ns: Option<LatencySummary>,
    /// With `--clients N`: N client processes served by one server thread. Latencies in
    /// `rtt_ns` are then every client's round trips merged; `messages` is their total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan_in: Option<FanInResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuCost>,
    /// The lock workload's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockResult>,
    /// The open-loop `rate` workload's load and schedule keeping (its latencies, measured
    /// from each request's scheduled time, are in `rtt_ns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateResult>,
    /// The `load` sweep: one open-loop point per offered rate, and the knee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadResult>,
    /// The `setup` workload: what a fresh channel costs, per iteration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<SetupResult>,
    /// Lossy (datagram) mechanisms only: messages (round trips) that completed, those
    /// lost, and the lost fraction. Reliable mechanisms fail on any loss instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Latency: p50 divided by the cache-line round trip (how far above the floor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_floor: Option<f64>,
    /// Throughput: bytes/s divided by single-thread memcpy bandwidth at this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_copy: Option<f64>,
    /// Latency of a mechanism that sleeps while it waits: p50 divided by two cross-CPU
    /// wake-ups (one per direction), the floor of such a round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_wake: Option<f64>,
    /// With `--repeat K` (K > 1): every repetition's summary. The top-level numbers are
    /// those of the repetition with the median p50 (latency) or bytes/s (throughput).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repeats: Vec<RepeatSummary>,
    /// The median of the repetitions' p50 (ns) or bytes/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median: Option<f64>,
    /// Distribution-free interval for that median, at `ci_level`: at least 0.95 from 6
    /// repetitions on; fewer allow only min..max (0.75 with 3, 0.9375 with 5).
    #[serde(default, alias = "p50_ci95", skip_serializing_if = "Option::is_none")]
    pub p50_ci: Option<[f64; 2]>,
    #[serde(
        default,
        alias = "bytes_per_sec_ci95",
        skip_serializing_if = "Option::is_none"
    )]
    pub bytes_per_sec_ci: Option<[f64; 2]>,
    /// The lock workload: the interval of the median acquisitions per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops_per_sec_ci: Option<[f64; 2]>,
    /// The coverage of those intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_level: Option<f64>,
}

impl CaseResult {
    /// Whether the case moved messages of a size (synchronisation cases carry size 0).
    pub fn sized(&self) -> bool {
        self.size > 0
    }
}

/// Both processes took the lock for `duration_ns` and incremented a shared counter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockResult {
    pub duration_ns: u64,
    /// Acquisitions per second, both processes together and each.
    pub ops_per_sec: f64,
    pub parent_ops_per_sec: f64,
    pub peer_ops_per_sec: f64,
    /// The parent's share of all acquisitions (0.5 is perfectly fair).
    pub fairness: f64,
    /// The counter equalled the number of write acquisitions (no lost update).
    pub counter: u64,
    pub writes: u64,
    /// One process alone: lock plus unlock, nanoseconds.
    pub uncontended_ns_per_pair: f64,
}

/// A fan-in case (`--clients N`): the aggregate, each client, and how evenly they fared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FanInResult {
    pub clients: usize,
    /// The server's CPU and each client's, when pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_cpus: Vec<Option<usize>>,
    /// Round trips (latency) or messages (throughput) of all clients per second.
    pub msgs_per_sec: f64,
    /// The smallest client's count over the largest's (1 = perfectly even).
    pub fairness: f64,
    /// The measured window every client ran in, ns.
    pub window_ns: u64,
    pub per_client: Vec<ClientStats>,
}

/// One fan-in client's part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientStats {
    pub messages: u64,
    pub msgs_per_sec: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
}

/// An open-loop phase: what was offered, what was achieved, how far sends fell behind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateResult {
    /// Requests per second offered (the schedule) and answered (requests over the time from
    /// the first scheduled send to the last reply).
    pub offered_per_sec: f64,
    pub achieved_per_sec: f64,
    /// How late actual sends were against their scheduled times, ns.
    pub send_lag_ns: LagSummary,
    /// The client could not keep up: achieved under 0.95 x offered, or the last sends
    /// lagged their schedule by more than 1 ms (a backlog that grew through the run).
    pub saturated: bool,
}

/// The `setup` workload over one mechanism and size: per iteration a fresh channel is
/// established between the two running processes, carries one request and its reply, and
/// is closed. Times in ns, on the one `CLOCK_MONOTONIC` both processes read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetupResult {
    /// The joining side (a socket's `connect`): from holding the channel's description to
    /// holding the channel.
    pub connect_ns: LatencySummary,
    /// The offering side (a socket's listen and `accept`): creating the objects (and
    /// passing descriptors, where the channel is handed over), waiting from the joiner's
    /// first call until the channel is held, and removing the names afterwards.
    pub accept_ns: LatencySummary,
    /// The first request and its reply on the new channel, timed by the offering side.
    pub first_rtt_ns: LatencySummary,
    /// Closing: the offering side closes first (it holds the reply); where a close is
    /// seen by the other side (`close_seen`), from that close until the joiner has seen it
    /// and closed too; otherwise both sides' closes (and unmaps) added.
    pub teardown_ns: LatencySummary,
    pub close_seen: bool,
    /// Whole iterations per second (the description's hand-over between the two
    /// processes included, ipcbench's records taken out).
    pub per_sec: f64,
    /// The channel is handed over as descriptors (SCM_RIGHTS) rather than opened by name;
    /// their passing counts in `accept_ns`.
    pub passes_descriptors: bool,
    /// ipcbench's own records of the named objects it creates (a small file per object,
    /// so that `ipcbench clean` can remove what a killed run leaves), per iteration: taken
    /// out of `accept_ns` and `teardown_ns`, shown here. Absent when it keeps none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_ns: Option<LatencySummary>,
    /// TCP: sockets in TIME_WAIT on this case's ports once it ended, and the connections
    /// it made (warm-up included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_wait: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// TCP: every TIME_WAIT socket on the host when the case began (earlier cases' and
    /// other programs'): binding each iteration's listener to an ephemeral port slows as
    /// they pile up, which shows in `accept_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_time_wait: Option<u64>,
    /// TCP: the same iterations with an abortive close by the offering side (`SO_LINGER`
    /// 0: a reset, no TIME_WAIT; safe here because that side has received everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abortive: Option<Box<SetupResult>>,
    /// Iterations asked for, when fewer ran so as not to use up the ephemeral ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capped_from: Option<u64>,
}

/// A load sweep over one mechanism and size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadResult {
    /// One request in flight at a time: requests per second (1 / mean round trip), the
    /// reference for percentage points.
    pub closed_loop_max_per_sec: f64,
    /// The latency budget (p99) the knee is judged by.
    pub slo_ns: u64,
    pub points: Vec<LoadPoint>,
    /// The highest achieved rate whose p99 stayed under the budget without saturating;
    /// null when no point did.
    pub knee_per_sec: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadPoint {
    /// As asked: `50%` or `20000/s`.
    pub label: String,
    pub offered_per_sec: f64,
    pub achieved_per_sec: f64,
    /// Latency from each request's scheduled time.
    pub rtt_ns: LatencySummary,
    pub send_lag_p99_ns: u64,
    pub saturated: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LagSummary {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

/// One repetition of a case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepeatSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ns: Option<LatencySummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<Throughput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuCost>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockResult>,
}

/// The machine's floor on the run's CPUs (measured by `floor`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    /// Nanoseconds per `Instant::now()` (a vDSO clock read).
    pub clock_read_ns: f64,
    /// p50 of the cache-line round trip between the run's two CPUs; null when it cannot be
    /// measured (one CPU, `--pin same`), with the reason.
    pub cacheline_rtt_ns: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacheline_reason: Option<String>,
    /// p50 of the same bounce as a bare loop (`bare`: two processes, no harness), so the
    /// harness's own cost at the floor is in every run; null with the reason when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacheline_bare_ns: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacheline_bare_reason: Option<String>,
    /// Bytes per second of one thread copying a message of each size (keys are sizes). In a
    /// run of several repetitions this, the cache-line round trip and its bare twin are
    /// the medians of one measurement before each repetition.
    pub copy_bytes_per_sec: std::collections::BTreeMap<usize, f64>,
    /// One-way cross-CPU wake-up of a thread asleep on a futex; null on one CPU, with the
    /// reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wakeup: Option<Wakeup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wakeup_reason: Option<String>,
}

/// The wake-up floor (`floor::wakeup`): from the waker's clock read before `FUTEX_WAKE` to
/// the sleeper's after its wait returned, between the run's two CPUs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Wakeup {
    pub p10_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    /// p50 after each idle gap: (gap in µs, ns).
    pub by_idle_us: Vec<(u64, u64)>,
    /// (lower bound in ns of a power-of-two bin, wake-ups in it), ascending.
    pub histogram: Vec<(u64, u64)>,
    /// When p90 is over 3x p10: the median of each of the two clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modes_ns: Option<[u64; 2]>,
}

impl Wakeup {
    /// Each histogram bin with a bar of `#` scaled so the fullest bin has 40.
    pub fn bars(&self) -> impl Iterator<Item = (u64, u64, String)> + '_ {
        let most = self
            .histogram
            .iter()
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(1)
            .max(1);
        self.histogram
            .iter()
            .map(move |&(from, n)| (from, n, "#".repeat((n * 40).div_ceil(most) as usize)))
    }
}

/// The core-to-core map (measured by `matrix`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    pub mechanism: String,
    pub size: usize,
    pub cpus: Vec<usize>,
    /// `p50_ns[i][j]`: parent on `cpus[i]`, peer on `cpus[j]`; null where not measured.
    pub p50_ns: Vec<Vec<Option<u64>>>,
    /// Why some pairs are missing (budget spent, unsupported on one CPU, errors).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Writes the file atomically: a temporary file beside it, then a rename, so an
/// interrupted run never leaves a half-written or destroyed result.
pub fn write_atomically(path: &Path, run: &RunFile) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut f, run)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
