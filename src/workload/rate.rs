//! `rate`: open-loop request-response. The client sends request k at its scheduled time
//! t0 + k/R (`--arrivals even`) or at the k-th arrival of a Poisson process of rate R
//! (`--arrivals poisson`, fixed seed), never waiting for a reply before the next send, and
//! each latency is the reply's arrival minus the request's *scheduled* time, so a stall is
//! charged to every request that would have queued behind it (no coordinated omission).
//! Where the channel has a descriptor to poll and messages are at most 4 KiB (pipe, fifo,
//! posix-mq, unix-stream, tcp), one thread does both: between scheduled sends it polls for
//! replies (sleeping in `ppoll` for long gaps, checking without sleeping for short ones)
//! and reads each as it comes, so no second thread competes with the sender for its CPU.
//! Otherwise (the shm strategies, larger messages) a receive thread on the parent's CPU
//! reads the replies from one half of the `split` channel. A mechanism that can do neither
//! is not offered this workload. The peer answers each request as it arrives, as in
//! `latency`. Also recorded:
//! how late each send was against its schedule (`send_lag_ns`), the achieved rate, and
//! whether the client saturated.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{
    by_budget, clients, cost, outcome, per_unit, Arrivals, Buffers, Capabilities, ChannelEnd,
    DataError, End, Params, Workload,
};
use crate::backends::Channel;
use crate::error::Error;
use crate::message::reply_seq;
use crate::results::{CaseResult, LagSummary, RateResult};
use crate::session::Session;
use crate::stats::{new_histogram, summarize};
use crate::sys::CpuUsage;

pub const ID: &str = "rate";

/// Seconds of requests per case (quick, full) when `--messages` is not given.
const SECONDS: (f64, f64) = (1.0, 5.0);
/// How far behind schedule the last sends may be before the client counts as saturated.
const BACKLOG_NS: u64 = 1_000_000;
/// A wait longer than this sleeps (then spins the rest); shorter waits spin.
const SLEEP_ABOVE_NS: u64 = 200_000;
/// How the one-thread open loop spends a wait shorter than `SLEEP_ABOVE_NS` (longer ones
/// sleep in `ppoll`). Measured here at 100k/s: spinning alone on a CPU gives the lowest send
/// lag; with the peer on the same CPU, yielding each turn keeps its p99 in microseconds
/// where sleeping cost 12-60 µs; with several fan-in clients on one CPU, sleeping keeps
/// their p99 near 65 µs where yielding spinners reached 0.5-1.4 ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    /// Alone on its CPU (`--pin cross`).
    Spin,
    /// Sharing a CPU with the peer (`--pin same`, `none`).
    SpinYielding,
    /// One of several fan-in clients on a CPU: every wait sleeps, with 1 µs timer slack.
    Sleep,
}

/// Largest message the one-thread poll loop takes (see `poll_loop`): a pipe's atomic
/// write size, PIPE_BUF.
const POLL_LOOP_MAX: usize = 4096;

pub struct Rate;
pub static RATE: Rate = Rate;

impl Workload for Rate {
    fn id(&self) -> &'static str {
        ID
    }

    fn help(&self) -> &'static str {
        "open loop: requests sent on a schedule (--rate, --arrivals), latency from each scheduled time"
    }

    fn applies(&self, caps: &Capabilities) -> bool {
        caps.reliable_channel
    }

    fn unsupported(&self, caps: &Capabilities) -> Option<String> {
        (!caps.duplex).then(|| {
            "an open-loop client has a send and a receive in flight at once, and this mechanism's channel cannot be split into a sending and a receiving half (pipe, fifo, posix-mq, unix-stream, unix-seqpacket, tcp, interprocess, the tokio sockets and the sleeping shm strategies can; a spinning waiter would starve the other half's thread)".into()
        })
    }

    fn default_count(&self, _size: usize, p: &Params) -> u64 {
        let secs = if p.quick { SECONDS.0 } else { SECONDS.1 };
        by_budget(1, (p.rate * secs) as u64, 100, 1_000_000)
    }

    fn estimate(&self, _size: usize, warmup: u64, n: u64) -> Duration {
        // The rate is not known here; the default's 20,000/s stands in.
        cost::of(warmup + n, 50e3, 0.0)
    }

    fn measure(
        &self,
        s: &mut Session,
        p: &Params,
        warmup: u64,
        n: u64,
        r: &mut CaseResult,
    ) -> Result<(), Error> {
        open_loop(s, p, warmup)?;
        let run = open_loop(s, p, n)?;
        let achieved = run.achieved(n);
        r.rtt_ns = Some(summarize(&run.latency));
        r.rate = Some(RateResult {
            offered_per_sec: p.rate,
            achieved_per_sec: achieved,
            send_lag_ns: LagSummary {
                p50: run.lag.value_at_quantile(0.5),
                p99: run.lag.value_at_quantile(0.99),
                max: run.lag.max(),
            },
            saturated: run.saturated(p.rate, n),
        });
        r.cpu = Some(per_unit(run.cpu, n));
        r.one_way_ns = run.one_way;
        Ok(())
    }

    fn benchable(&self) -> bool {
        false
    }

    fn fans_in(&self) -> bool {
        true
    }

    /// The offered total split evenly across the clients, each open-loop with its own
    /// receive thread; the server answers every request.
    fn measure_fan_in(
        &self,
        fan: &mut crate::fanin::FanIn,
        p: &Params,
        r: &mut CaseResult,
    ) -> Result<crate::results::FanInResult, Error> {
        clients::measure(fan, ID, p, true, true, true, r)
    }

    fn client(
        &self,
        end: &mut ChannelEnd,
        order: &clients::ClientOrder,
    ) -> Result<clients::ClientReport, DataError> {
        let share = order.rate / order.clients.max(1) as f64;
        let secs = order.end_ns.saturating_sub(order.start_ns) as f64 / 1e9;
        let n = ((share * secs) as u64).max(1);
        let times = schedule_of(n, share, order.arrivals, order.index, order.clients);
        let mut latency = new_histogram();
        let mut lag = new_histogram();
        end.seq = order.base();
        clients::wait_for(order.start_ns);
        // Several clients share a CPU: spinning clients would take turns at it, so each
        // sleeps to its next send.
        let (last_lag, span, rx_cpu) =
            run_schedule(end, &times, &mut latency, &mut lag, Waiting::Sleep)?;
        clients::goodbye(end, order, end.mode())?;
        Ok(clients::ClientReport {
            messages: n,
            lost: 0,
            elapsed_ns: span.as_nanos() as u64,
            hist: clients::pairs(&latency),
            lag: clients::pairs(&lag),
            saturated: Some(
                last_lag > BACKLOG_NS || (n as f64 / span.as_secs_f64().max(1e-9)) < 0.95 * share,
            ),
            other_threads_cpu: Some(rx_cpu),
        })
    }

    fn bench(&self, s: &mut Session, p: &Params, iters: u64) -> Result<Duration, Error> {
        Ok(open_loop(s, p, iters)?.span)
    }

    /// The peer answers every request as it comes, like `latency`'s peer, and reports the
    /// requests' one-way times.
    fn serve(&self, end: &mut End, n: u64) -> Result<serde_json::Value, DataError> {
        let c = end.channel()?;
        let (chan, bufs, seq) = (c.chan.as_mut(), &mut c.bufs, &mut c.seq);
        let mut one_way = new_histogram();
        for _ in 0..n {
            if let Some(t) = bufs.receive_timed(chan, *seq)? {
                one_way.saturating_record(t.max(1));
            }
            bufs.send(chan, reply_seq(*seq))?;
            *seq += 1;
        }
        outcome(&PeerReport {
            one_way: (!one_way.is_empty()).then(|| summarize(&one_way)),
        })
    }
}

/// The peer's account of an open-loop phase.
#[derive(serde::Serialize, serde::Deserialize)]
struct PeerReport {
    #[serde(default)]
    one_way: Option<crate::stats::LatencySummary>,
}

/// One open-loop phase, as the parent saw it.
pub(crate) struct OpenLoop {
    /// Reply time minus scheduled time, per request.
    pub latency: Histogram<u64>,
    /// Actual send time minus scheduled time, per request.
    pub lag: Histogram<u64>,
    /// How late the last request went out.
    pub last_lag_ns: u64,
    /// From the first scheduled send to the last reply.
    pub span: Duration,
    pub cpu: crate::sys::CpuUsage,
    /// The requests' way to the peer, where they carry their send time.
    pub one_way: Option<crate::stats::LatencySummary>,
}

impl OpenLoop {
    /// Requests per second answered: `n` over the time to the last reply.
    pub fn achieved(&self, n: u64) -> f64 {
        n as f64 / self.span.as_secs_f64().max(1e-9)
    }

    /// The client could not keep the schedule: under 0.95 x the offered rate, or the last
    /// sends more than 1 ms behind (a backlog that grew through the run).
    pub fn saturated(&self, offered: f64, n: u64) -> bool {
        self.achieved(n) < 0.95 * offered || self.last_lag_ns > BACKLOG_NS
    }
}

/// Scheduled send times (ns after the start) of `n` requests at `rate` per second.
fn schedule(n: u64, rate: f64, arrivals: Arrivals) -> Vec<u64> {
    schedule_of(n, rate, arrivals, 0, 1)
}

/// Client `index` of `clients`' share of a schedule: its own Poisson stream (a seed of its
/// own, so clients do not arrive in lockstep), or even arrivals offset by `index / clients`
/// of its gap, so the clients' requests interleave evenly.
fn schedule_of(n: u64, rate: f64, arrivals: Arrivals, index: usize, clients: usize) -> Vec<u64> {
    let gap = 1e9 / rate;
    match arrivals {
        Arrivals::Even => {
            let offset = gap * index as f64 / clients.max(1) as f64;
            (0..n).map(|k| (offset + k as f64 * gap) as u64).collect()
        }
        Arrivals::Poisson => {
            // xorshift64*, fixed seed: every run and mechanism gets the same arrivals.
            let mut x: u64 =
                0x9E37_79B9_7F4A_7C15 ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
            let mut t = 0.0f64;
            (0..n)
                .map(|_| {
                    let at = t as u64;
                    x ^= x >> 12;
                    x ^= x << 25;
                    x ^= x >> 27;
                    let u = ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5)
                        / (1u64 << 53) as f64;
                    t += -u.ln() * gap;
                    at
                })
                .collect()
        }
    }
}

/// `n` requests at `p.rate` over a session (the parent's half of one `rate` phase).
pub(crate) fn open_loop(s: &mut Session, p: &Params, n: u64) -> Result<OpenLoop, Error> {
    let times = schedule(n, p.rate, p.arrivals);
    let mut latency = new_histogram();
    let mut lag = new_histogram();
    let shared_cpu = s.shared_cpu();
    let ((last_lag_ns, span, rx_cpu), cpu, report) = s.phase(ID, n, |end| {
        let waiting = match shared_cpu {
            true => Waiting::SpinYielding,
            false => Waiting::Spin,
        };
        run_schedule(end.channel()?, &times, &mut latency, &mut lag, waiting)
    })?;
    let report: PeerReport = super::decode_outcome(s.id(), report)?;
    Ok(OpenLoop {
        latency,
        lag,
        last_lag_ns,
        span,
        cpu: cpu.plus(rx_cpu),
        one_way: report.one_way,
    })
}

/// The open loop over one channel: splits it, sends request k at `times[k]` after now
/// from this thread while a receive thread records each reply's latency from its
/// scheduled time. Returns the last send's lag, the span to the last reply and the receive
/// thread's CPU.
fn run_schedule(
    c: &mut ChannelEnd,
    times: &[u64],
    latency: &mut Histogram<u64>,
    lag: &mut Histogram<u64>,
    waiting: Waiting,
) -> Result<(u64, Duration, CpuUsage), DataError> {
    if c.chan.poll_fd().is_some() && c.bufs.rx.len() <= POLL_LOOP_MAX {
        return poll_loop(c, times, latency, lag, waiting)
            .map(|(l, span)| (l, span, CpuUsage::default()));
    }
    let n = times.len() as u64;
    let split = c
        .chan
        .split()
        .ok_or_else(|| DataError::io("split", 0)(std::io::ErrorKind::Unsupported.into()))?
        .map_err(DataError::io("split", 0))?;
    let first = c.seq;
    let mut rx_bufs = c.bufs.twin();
    let (mut tx, mut rx) = (split.tx, split.rx);
    let hist = latency;
    std::thread::scope(|scope| {
        let t0 = Instant::now();
        // The phase measures the calling thread's CPU; the receive thread measures its own.
        let receiver = scope.spawn(move || -> Result<(Instant, CpuUsage), DataError> {
            let before = CpuUsage::thread().unwrap_or_default();
            let mut last = t0;
            for (k, &at) in times.iter().enumerate() {
                let seq = first + k as u64;
                rx_bufs.receive(rx.as_mut(), reply_seq(seq))?;
                last = Instant::now();
                let since = (last - t0).as_nanos() as u64;
                hist.saturating_record(since.saturating_sub(at).max(1));
            }
            let used = CpuUsage::thread().map(|a| a.since(before));
            Ok((last, used.unwrap_or_default()))
        });
        let sent = send_on_schedule(tx.as_mut(), &mut c.bufs, first, times, t0, lag);
        // A failed send leaves the receiver waiting: the session's watchdog and the
        // peer's exit end it, so joining is bounded.
        let last = receiver.join().unwrap_or_else(|_| {
            Err(DataError::io("receive", first)(std::io::Error::other(
                "the receive thread panicked",
            )))
        });
        let last_lag = sent?;
        let (last, rx_cpu) = last?;
        Ok((last_lag, last - t0, rx_cpu))
    })
    .inspect(|_| c.seq = first + n)
}

/// The one-thread open loop (see the module comment): sends on schedule, and between
/// sends, and before every send, reads whatever replies have come; short waits are spent
/// as `waiting` says. That keeps it
/// deadlock-free without a second thread for messages of at most `POLL_LOOP_MAX` bytes:
/// after a drain the peer must take a request (freeing room for the blocked send) before
/// it could fill the reply buffer and block.
/// Returns the last send's lag and the span to the last reply.
fn poll_loop(
    c: &mut ChannelEnd,
    times: &[u64],
    latency: &mut Histogram<u64>,
    lag: &mut Histogram<u64>,
    waiting: Waiting,
) -> Result<(u64, Duration), DataError> {
    let first = c.seq;
    let n = times.len();
    let (chan, bufs) = (c.chan.as_mut(), &mut c.bufs);
    let mut replied = 0usize;
    let mut last_lag = 0;
    if waiting == Waiting::Sleep {
        // Without this the kernel may end each sleep up to 50 µs late.
        crate::sys::set_timer_slack(1_000).map_err(DataError::io("set the timer slack", first))?;
    }
    // Whether a reply has come, waiting at most `timeout` for one.
    let readable = |chan: &dyn Channel, timeout: Duration| -> Result<bool, DataError> {
        let fd = chan
            .poll_fd()
            .ok_or_else(|| DataError::io("poll", first)(std::io::ErrorKind::Unsupported.into()))?;
        crate::sys::fd::readable_within(fd, timeout).map_err(DataError::io("poll", first))
    };
    let t0 = Instant::now();
    let mut last = t0;
    // Reads reply `replied` and records its latency from its scheduled time.
    let mut take = |chan: &mut dyn Channel, bufs: &mut Buffers, replied: &mut usize| {
        bufs.receive(chan, reply_seq(first + *replied as u64))?;
        last = Instant::now();
        let since = (last - t0).as_nanos() as u64;
        latency.saturating_record(since.saturating_sub(times[*replied]).max(1));
        *replied += 1;
        Ok::<(), DataError>(())
    };
    for (k, &at) in times.iter().enumerate() {
        loop {
            let now = t0.elapsed().as_nanos() as u64;
            if now >= at {
                break;
            }
            let wait = at - now;
            let sleep = if waiting == Waiting::Sleep {
                Duration::from_nanos(wait)
            } else if wait > SLEEP_ABOVE_NS {
                Duration::from_nanos(wait - SLEEP_ABOVE_NS / 2)
            } else {
                Duration::ZERO
            };
            if replied < k && readable(chan, sleep)? {
                take(chan, bufs, &mut replied)?;
            } else if replied >= k && !sleep.is_zero() {
                std::thread::sleep(sleep);
            } else if waiting == Waiting::SpinYielding && sleep.is_zero() {
                // The peer may be waiting for this CPU: spin, but give it each turn.
                std::thread::yield_now();
            }
        }
        // Replies that have come are read before every send, also when sends are behind
        // schedule: a blocked send then always has a peer that can make progress.
        while replied < k && readable(chan, Duration::ZERO)? {
            take(chan, bufs, &mut replied)?;
        }
        let now = t0.elapsed().as_nanos() as u64;
        last_lag = now - at;
        lag.saturating_record(last_lag.max(1));
        bufs.send_timed(chan, first + k as u64)?;
    }
    bufs.untime();
    while replied < n {
        take(chan, bufs, &mut replied)?;
    }
    c.seq = first + n as u64;
    Ok((last_lag, last - t0))
}

/// Sends request k at `t0 + times[k]` (sleeping for long waits, spinning for short ones),
/// recording how late each send was; returns the last one's lag.
fn send_on_schedule(
    tx: &mut dyn Channel,
    bufs: &mut Buffers,
    first: u64,
    times: &[u64],
    t0: Instant,
    lag: &mut Histogram<u64>,
) -> Result<u64, DataError> {
    let mut last = 0;
    for (k, &at) in times.iter().enumerate() {
        let mut now = (t0.elapsed()).as_nanos() as u64;
        while now < at {
            let wait = at - now;
            if wait > SLEEP_ABOVE_NS {
                std::thread::sleep(Duration::from_nanos(wait - SLEEP_ABOVE_NS / 2));
            } else {
                // The receive thread shares this CPU: yield to it rather than spin it out.
                std::thread::yield_now();
            }
            now = t0.elapsed().as_nanos() as u64;
        }
        last = now - at;
        lag.saturating_record(last.max(1));
        bufs.send_timed(tx, first + k as u64)?;
    }
    bufs.untime();
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_keep_their_rate() {
        let even = schedule(1000, 1000.0, Arrivals::Even);
        assert_eq!(even[1], 1_000_000);
        assert_eq!(even[999], 999_000_000);
        let p = schedule(100_000, 1000.0, Arrivals::Poisson);
        assert!(p.windows(2).all(|w| w[0] <= w[1]));
        // 100,000 arrivals at 1000/s span about 100 s (within 1%).
        let span = p[99_999] as f64 / 1e9;
        assert!((99.0..101.0).contains(&span), "{span}");
        assert_eq!(
            p,
            schedule(100_000, 1000.0, Arrivals::Poisson),
            "fixed seed"
        );
    }
}
