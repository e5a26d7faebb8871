//! Workloads: what a case measures. Each is one file here holding its parent half (the
//! timed loops: the one place time is measured; they allocate nothing and print nothing)
//! and its peer half side by side, its default counts, which subjects it runs on (by
//! capability) and how its measurements fill its part of a result; `REGISTRY` lists them.
//! Runner, session and the peer role drive every workload through the `Workload` trait
//! without naming one.
//!
//! A trait rather than a table of function pointers: a workload's halves are generic code
//! with a few constants, and a trait object keeps each one's id, help, counts and halves in
//! one `impl` block a reader finds at once. The dispatch happens once per phase, never in a
//! timed loop.
//!
//! Layering: this module's core (the trait, `End`, `Buffers`, `DataError`) sits below the
//! session; the workload files use the session's `phase` to run their halves.

#![forbid(unsafe_code)]

pub mod clients;
pub mod handoff;
pub mod latency;
pub mod load;
pub mod lock;
pub mod lossy;
pub mod rate;
pub mod setup;
pub mod throughput;

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use thiserror::Error;

use crate::backends::sync::{PrimitiveInfo, SyncEnd};
use crate::backends::{Channel, ChannelParams, MechanismInfo};
use crate::error::Error;
use crate::message::{fill_base, stamp, Checker, Verify, VerifyError};
use crate::results::CaseResult;
use crate::session::Session;
use crate::sys::courier::Courier;

/// Every workload, in the order a sweep runs them for a subject.
pub static REGISTRY: &[&dyn Workload] = &[
    &latency::LATENCY,
    &throughput::THROUGHPUT,
    &handoff::HANDOFF,
    &lock::LOCK,
    &rate::RATE,
    &load::LOAD,
    &setup::SETUP,
];

pub fn by_id(id: &str) -> Option<&'static dyn Workload> {
    REGISTRY.iter().copied().find(|w| w.id() == id)
}

/// What the user chose for the workloads of a run (beyond sizes and counts).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Fewer messages per case.
    pub quick: bool,
    /// Open-loop workloads: requests per second offered.
    pub rate: f64,
    /// Open-loop workloads: how requests are spaced.
    pub arrivals: Arrivals,
    /// The load sweep's points.
    pub rates: Vec<RateSpec>,
    /// The latency budget a load sweep's knee is judged by (p99, ns).
    pub slo_ns: u64,
}

/// The default load sweep: fractions of the closed-loop maximum.
pub const DEFAULT_RATES: &str = "10%,25%,50%,75%,90%,100%,110%";
/// The default latency budget for the knee: a p99 of 1 ms, a common interactive budget for
/// a local call (sleeping mechanisms here take ~40 us per round trip at p50).
pub const DEFAULT_SLO: &str = "1ms";

impl Default for Params {
    fn default() -> Params {
        Params {
            quick: false,
            rate: 20_000.0,
            arrivals: Arrivals::Even,
            rates: Vec::new(),
            slo_ns: 1_000_000,
        }
    }
}

/// One point of a load sweep: an absolute rate or a fraction of the closed-loop maximum.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateSpec {
    PerSec(f64),
    Fraction(f64),
}

impl RateSpec {
    /// `10%`, `50000/s`.
    pub fn label(&self) -> String {
        match self {
            RateSpec::PerSec(r) => format!("{r:.0}/s"),
            RateSpec::Fraction(f) => format!("{:.0}%", f * 100.0),
        }
    }

    /// Requests per second, given the closed-loop maximum.
    pub fn per_sec(&self, closed_loop_max: f64) -> f64 {
        match self {
            RateSpec::PerSec(r) => *r,
            RateSpec::Fraction(f) => f * closed_loop_max,
        }
    }
}

pub use crate::results::Arrivals;

/// What a subject can do; workloads choose their subjects by these, not by family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Carries messages without loss (a loss fails the case).
    pub reliable_channel: bool,
    /// Carries messages that may be lost (datagrams): losses are counted.
    pub lossy_channel: bool,
    /// Can stream messages one way (the cache-line bounce cannot).
    pub streams: bool,
    /// A synchronisation primitive that can hand a turn to the other process.
    pub handoff: bool,
    /// A synchronisation primitive that excludes (a lock).
    pub lock: bool,
    /// A channel that can send and receive from two threads at once (`Channel::split`).
    pub duplex: bool,
}

impl Capabilities {
    pub fn channel(&self) -> bool {
        self.reliable_channel || self.lossy_channel
    }
}

/// One workload: its identity, its subjects, its counts and its two halves.
pub trait Workload: Sync {
    /// As results files and `--workloads` spell it.
    fn id(&self) -> &'static str;
    /// One line for `--help` and `list`.
    fn help(&self) -> &'static str;
    /// Whether it runs on a subject with these capabilities.
    fn applies(&self, caps: &Capabilities) -> bool;
    /// Why it cannot run on a subject it applies to, if so (recorded as `unsupported`).
    fn unsupported(&self, _caps: &Capabilities) -> Option<String> {
        None
    }
    /// Whether it moves messages of a size (else it runs once per subject, as size 0).
    fn sized(&self) -> bool {
        true
    }
    /// Measured count when `--messages` is not given (its unit is the workload's own).
    fn default_count(&self, size: usize, p: &Params) -> u64;
    /// What it sends over a channel (frameworks pick their call pattern by it).
    fn traffic(&self) -> crate::backends::Traffic {
        crate::backends::Traffic::Exchange
    }
    /// Unrecorded warm-up before `n`.
    fn warmup(&self, n: u64) -> u64 {
        warmup_count(n)
    }
    /// A rough guess of its duration, for the run's estimate and ETA only.
    fn estimate(&self, size: usize, warmup: u64, n: u64) -> Duration;
    /// Parent half: warm-up and measured phases over a started session; fills this
    /// workload's part of `result` (its summary, CPU per unit, losses).
    fn measure(
        &self,
        session: &mut Session,
        p: &Params,
        warmup: u64,
        n: u64,
        result: &mut CaseResult,
    ) -> Result<(), Error>;
    /// Whether criterion can time it (an open loop's duration is its schedule, not a speed).
    fn benchable(&self) -> bool {
        true
    }
    /// For criterion: the time `iters` of this workload's units take over a live session
    /// (a round trip, a streamed message, a turn pair, a contended acquisition).
    fn bench(&self, session: &mut Session, p: &Params, iters: u64) -> Result<Duration, Error>;
    /// Peer half of one phase of `count`: runs after the peer said `go`; what it returns
    /// reaches the parent half in the phase's `done`.
    fn serve(&self, end: &mut End, count: u64) -> Result<serde_json::Value, DataError>;

    /// Whether N clients can run it against one server (`--clients`).
    fn fans_in(&self) -> bool {
        false
    }

    /// Why it cannot fan in on a subject with these capabilities, if so.
    fn no_fan_in(&self, _caps: &Capabilities) -> Option<String> {
        None
    }

    /// Fan-in, parent (server) half: phases over a fan-in session; fills `result` like
    /// `measure` and returns the clients' part. Only called when `fans_in`.
    fn measure_fan_in(
        &self,
        fan: &mut crate::fanin::FanIn,
        _p: &Params,
        _result: &mut CaseResult,
    ) -> Result<crate::results::FanInResult, Error> {
        Err(Error::DataPath {
            mechanism: fan.id(),
            op: "run",
            seq: 0,
            source: io::Error::new(io::ErrorKind::Unsupported, "no fan-in form"),
        })
    }

    /// Fan-in, client half: one phase in a client process, after it said `go`.
    fn client(
        &self,
        _end: &mut ChannelEnd,
        _order: &clients::ClientOrder,
    ) -> Result<clients::ClientReport, DataError> {
        Err(mismatch("a workload with a fan-in form"))
    }
}

impl std::fmt::Debug for dyn Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// One side's end of a subject, as a workload's halves use it.
pub enum End {
    Channel(ChannelEnd),
    Sync(SyncSide),
}

/// A channel with its prepared buffers and the next sequence number.
pub struct ChannelEnd {
    pub info: &'static MechanismInfo,
    pub chan: Box<dyn Channel>,
    pub bufs: Buffers,
    pub seq: u64,
    /// What this side's channels are made with (the parent's offer needs all of it; the
    /// peer learns the rest from the description it is handed).
    pub params: ChannelParams,
    /// The record-and-descriptor link to the other process, for workloads that open
    /// further channels while the session runs (`setup`).
    pub courier: Option<Courier>,
}

/// How a channel workload's halves run on a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A calibration loop: no framing, no checks.
    Raw,
    /// Datagrams: every wait bounded, losses counted.
    Lossy,
    /// Every message framed and checked; a loss fails the case.
    Reliable,
}

impl ChannelEnd {
    pub fn mode(&self) -> Mode {
        if !self.info.verified {
            Mode::Raw
        } else if self.info.lossy {
            Mode::Lossy
        } else {
            Mode::Reliable
        }
    }
}

/// Records a lossy channel's losses in its result (`n` sent, `delivered` arrived).
pub fn record_losses(r: &mut CaseResult, n: u64, delivered: u64) {
    let lost = n.saturating_sub(delivered);
    r.delivered = Some(delivered);
    r.lost = Some(lost);
    r.loss = Some(lost as f64 / n.max(1) as f64);
}

/// A synchronisation primitive's end.
pub struct SyncSide {
    pub info: &'static PrimitiveInfo,
    pub end: Box<dyn SyncEnd>,
}

impl End {
    /// The channel, for channel workloads (`applies` keeps others away).
    pub fn channel(&mut self) -> Result<&mut ChannelEnd, DataError> {
        match self {
            End::Channel(c) => Ok(c),
            End::Sync(_) => Err(mismatch("a channel")),
        }
    }

    /// The primitive, for synchronisation workloads.
    pub fn sync(&mut self) -> Result<&mut SyncSide, DataError> {
        match self {
            End::Sync(s) => Ok(s),
            End::Channel(_) => Err(mismatch("a synchronisation primitive")),
        }
    }
}

fn mismatch(wanted: &str) -> DataError {
    DataError::Io {
        op: "run",
        seq: 0,
        source: io::Error::new(
            io::ErrorKind::Unsupported,
            format!("this workload needs {wanted}"),
        ),
    }
}

/// Encodes a peer half's account for the `done` reply.
pub fn outcome<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, DataError> {
    serde_json::to_value(v).map_err(|e| DataError::Io {
        op: "report",
        seq: 0,
        source: io::Error::other(e),
    })
}

/// Decodes the peer's account in the parent half.
pub fn decode_outcome<T: for<'de> serde::Deserialize<'de>>(
    id: &'static str,
    v: serde_json::Value,
) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::Peer {
        mechanism: id,
        source: crate::error::PeerError::Protocol(format!(
            "a phase report the parent cannot read: {e}"
        )),
    })
}

/// One side's message buffers for one size, prepared before timing.
pub struct Buffers {
    pub(crate) tx: Vec<u8>,
    pub(crate) rx: Vec<u8>,
    checker: Checker,
    /// Whether messages are produced in the channel's own memory (`Channel::lends`).
    lends: bool,
}

impl Buffers {
    pub fn new(size: usize, verify: Verify) -> Self {
        let mut tx = vec![0u8; size];
        fill_base(&mut tx);
        // The receive buffer starts as garbage that can never pass a check.
        let rx = vec![0xEEu8; size];
        Buffers {
            tx,
            rx,
            checker: Checker::new(size, verify),
            lends: false,
        }
    }

    /// Buffers for sending over `chan`: where it lends memory of its own, messages are
    /// produced there (`tx` is then only the template it copies once per buffer).
    pub fn for_channel(size: usize, verify: Verify, chan: &dyn Channel) -> Self {
        Buffers {
            lends: chan.lends(),
            ..Buffers::new(size, verify)
        }
    }

    /// Fresh buffers of the same size and checking (for a second thread).
    pub fn twin(&self) -> Buffers {
        Buffers::new(self.rx.len(), self.checker.mode())
    }

    /// Receives message `seq` sent with `send_timed`; returns its one-way time (ns) when
    /// the message carries its send time.
    pub(crate) fn receive_timed(
        &mut self,
        chan: &mut dyn Channel,
        seq: u64,
    ) -> Result<Option<u64>, DataError> {
        let checker = &mut self.checker;
        let mut verdict = Ok(None);
        let n = chan
            .recv_in_place(&mut self.rx, &mut |got| {
                verdict = checker.check_timed(got, seq)
            })
            .map_err(DataError::io("receive", seq))?;
        self.check_len(n, seq)?;
        verdict.map(one_way).map_err(DataError::Verify)
    }

    /// Sends message `seq` carrying its send time (`CLOCK_MONOTONIC`, one clock read).
    /// The time stays in the send buffer: call `untime` after the loop, before any plain send.
    pub(crate) fn send_timed(&mut self, chan: &mut dyn Channel, seq: u64) -> Result<(), DataError> {
        if self.lends {
            let mut write = |m: &mut [u8]| {
                stamp(m, seq);
                crate::message::put_time(m, lossy::monotonic_ns());
            };
            return chan
                .send_in_place(&self.tx, &mut write)
                .map_err(DataError::io("send", seq));
        }
        stamp(&mut self.tx, seq);
        crate::message::put_time(&mut self.tx, lossy::monotonic_ns());
        chan.send(&self.tx).map_err(DataError::io("send", seq))
    }

    /// Makes the send buffer plain again after timed sends (once per phase, not per message).
    pub(crate) fn untime(&mut self) {
        crate::message::clear_time(&mut self.tx);
    }

    /// Receives message `seq` and checks it (where it lies, for a channel that can).
    pub(crate) fn receive(&mut self, chan: &mut dyn Channel, seq: u64) -> Result<(), DataError> {
        let checker = &mut self.checker;
        let mut verdict = Ok(());
        let n = chan
            .recv_in_place(&mut self.rx, &mut |got| verdict = checker.check(got, seq))
            .map_err(DataError::io("receive", seq))?;
        self.check_len(n, seq)?;
        verdict.map_err(DataError::Verify)
    }

    /// Checks the `n` bytes just received as message `seq`. Message mechanisms report the
    /// true length of an oversized message, so `n` may exceed the buffer.
    pub(crate) fn check(&mut self, n: usize, seq: u64) -> Result<(), DataError> {
        self.check_len(n, seq)?;
        self.checker.check(&self.rx, seq).map_err(DataError::Verify)
    }

    /// A message of the wrong length (truncated, merged or oversized) fails its check.
    fn check_len(&self, n: usize, seq: u64) -> Result<(), DataError> {
        if n != self.rx.len() {
            return Err(DataError::Verify(VerifyError::Length {
                seq,
                expected: self.rx.len(),
                got: n,
            }));
        }
        Ok(())
    }

    /// Checks the `n` bytes just received as message `seq` sent with `send_timed`;
    /// returns its one-way time (ns) when it carries its send time.
    pub(crate) fn check_timed(&mut self, n: usize, seq: u64) -> Result<Option<u64>, DataError> {
        self.check_len(n, seq)?;
        self.checker
            .check_timed(&self.rx, seq)
            .map(one_way)
            .map_err(DataError::Verify)
    }

    /// Sends message `seq` (produced in the channel's memory where it lends some; a
    /// buffer it lends may hold an earlier message's send time, which is cleared).
    pub(crate) fn send(&mut self, chan: &mut dyn Channel, seq: u64) -> Result<(), DataError> {
        if self.lends {
            let mut write = |m: &mut [u8]| {
                stamp(m, seq);
                crate::message::clear_time(m);
            };
            return chan
                .send_in_place(&self.tx, &mut write)
                .map_err(DataError::io("send", seq));
        }
        stamp(&mut self.tx, seq);
        chan.send(&self.tx).map_err(DataError::io("send", seq))
    }
}

/// A checked message's one-way time (ns) from the send time it carried, if it carried one:
/// read off the clock now, right after the check.
fn one_way(sent: Option<u64>) -> Option<u64> {
    sent.map(|t| lossy::monotonic_ns().saturating_sub(t))
}

impl DataError {
    pub(crate) fn io(op: &'static str, seq: u64) -> impl FnOnce(io::Error) -> DataError {
        move |source| DataError::Io { op, seq, source }
    }
}

#[derive(Debug, Error)]
pub enum DataError {
    #[error("{op} of message #{seq} failed: {source}")]
    Io {
        op: &'static str,
        seq: u64,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Verify(VerifyError),
    /// Opening a further channel mid-session failed (the `setup` workload).
    #[error(transparent)]
    Backend(crate::error::BackendError),
}

/// Latency samples with one clock read each: the end of one round trip is the start of
/// the next (as a bare loop times itself), so whatever the loop does between round trips
/// (stamping the next message, checking the last reply) lies inside the next sample. Laps
/// go to a buffer sized before the loop and reach the histogram in chunks, with the clock
/// restarted after each chunk so that the histogram's work is in no sample.
pub(crate) struct Chain<'h> {
    hist: Option<&'h mut Histogram<u64>>,
    laps: Vec<u64>,
    last: Instant,
}

/// Laps buffered before the histogram takes them (512 KiB of samples).
const CHAIN_CHUNK: u64 = 1 << 16;

impl<'h> Chain<'h> {
    /// Starts the clock for `n` laps; without a histogram nothing is timed.
    pub(crate) fn new(hist: Option<&'h mut Histogram<u64>>, n: u64) -> Chain<'h> {
        let cap = if hist.is_some() {
            n.min(CHAIN_CHUNK)
        } else {
            0
        };
        Chain {
            hist,
            laps: Vec::with_capacity(cap as usize),
            last: Instant::now(),
        }
    }

    /// Ends one round trip and starts the next: one clock read.
    #[inline]
    pub(crate) fn lap(&mut self) {
        if self.hist.is_none() {
            return;
        }
        let now = Instant::now();
        self.laps
            .push(u64::try_from((now - self.last).as_nanos()).unwrap_or(u64::MAX));
        self.last = now;
        if self.laps.len() == self.laps.capacity() {
            self.flush();
            self.last = Instant::now();
        }
    }

    fn flush(&mut self) {
        if let Some(h) = self.hist.as_deref_mut() {
            for &ns in &self.laps {
                h.saturating_record(ns);
            }
        }
        self.laps.clear();
    }

    /// Records the laps still buffered.
    pub(crate) fn finish(mut self) {
        self.flush();
    }
}

/// Records one timed round trip, when the caller keeps a histogram (nanoseconds,
/// saturating: the histogram's range ends well below u64::MAX).
#[inline]
pub(crate) fn record(hist: &mut Option<&mut Histogram<u64>>, rtt: Duration) {
    if let Some(h) = hist.as_deref_mut() {
        h.saturating_record(u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// Messages worth `budget` bytes at `size`, bounded to `lo..=hi` so small sizes do not run
/// for minutes. Past the size where `lo` messages would cost four budgets (16-64 MiB
/// messages), the floor gives way to four budgets' worth, but never under 10 messages,
/// so that large sizes stay as quick as the rest.
pub fn by_budget(size: usize, budget: u64, lo: u64, hi: u64) -> u64 {
    let size = size.max(1) as u64;
    let lo = lo.min((4 * budget / size).max(10));
    (budget / size).clamp(lo, hi)
}

/// The estimate's costs on a small VM (the 2-vCPU reference: a quick run of everything,
/// 165 cases, took 16.5 s, and the estimate says 22 s).
pub mod cost {
    /// A fresh peer, its channel and its exit, ns.
    pub const START_NS: f64 = 15e6;
    /// A sleeping mechanism's round trip, averaged over its modes, ns.
    pub const WAKE_NS: f64 = 25e3;
    /// Copy cost per byte, ns (4 bytes per ns).
    pub const NS_PER_BYTE: f64 = 0.25;

    /// A case of `units` units costing `each_ns` apiece, plus `extra_ns`, after its start.
    pub fn of(units: u64, each_ns: f64, extra_ns: f64) -> std::time::Duration {
        std::time::Duration::from_nanos((START_NS + units as f64 * each_ns + extra_ns) as u64)
    }
}

/// Warm-up length for a case of `n` messages (not recorded).
pub fn warmup_count(n: u64) -> u64 {
    (n / 10).clamp(10, 1_000)
}

/// CPU per unit of work from a phase's CPU use, both processes.
pub fn per_unit(cpu: crate::sys::CpuUsage, n: u64) -> crate::results::CpuCost {
    let n = n.max(1) as f64;
    let (user, sys) = cpu.exact_split();
    crate::results::CpuCost {
        user_ns_per_msg: user / n,
        sys_ns_per_msg: sys / n,
        ctx_switches_per_msg: (cpu.voluntary + cpu.involuntary) as f64 / n,
        voluntary_ctx_switches_per_msg: cpu.voluntary as f64 / n,
        involuntary_ctx_switches_per_msg: cpu.involuntary as f64 / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_has_a_unique_id_and_subjects() {
        let mut ids: Vec<&str> = REGISTRY.iter().map(|w| w.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), REGISTRY.len());
        let channel = Capabilities {
            reliable_channel: true,
            streams: true,
            ..Default::default()
        };
        let cacheline = Capabilities {
            reliable_channel: true,
            ..Default::default()
        };
        let condvar = Capabilities {
            handoff: true,
            ..Default::default()
        };
        let runs = |c: &Capabilities| -> Vec<&str> {
            REGISTRY
                .iter()
                .filter(|w| w.applies(c))
                .map(|w| w.id())
                .collect()
        };
        assert_eq!(
            runs(&channel),
            ["latency", "throughput", "rate", "load", "setup"]
        );
        assert_eq!(runs(&cacheline), ["latency", "rate", "load", "setup"]);
        assert_eq!(runs(&condvar), ["handoff"]);
        assert_eq!(warmup_count(5), 10);
        assert_eq!(by_budget(1, 128 << 20, 100, 5_000), 5_000);
        assert_eq!(by_budget(1 << 20, 128 << 20, 100, 5_000), 128);
    }
}
