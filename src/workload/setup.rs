//! `setup`: what a fresh channel costs. Per iteration the parent offers a new channel (a
//! socket's bind and listen, a segment's create and map, a queue's open, a pipe pair),
//! hands its description and descriptors to the running peer over the courier, and the
//! peer joins it (a socket's connect); the parent sends one S-byte request, the peer
//! answers, and the parent, holding the reply, closes first; the peer closes once it has
//! seen that (where the mechanism shows a close) or at once. The peer sends its
//! timestamps back over the courier, which also paces the iterations. Both processes read
//! the same `CLOCK_MONOTONIC`, so the two sides' stamps subtract.
//!
//! Reported: connect (the joiner), accept (the offerer: create, wait, remove names), the
//! first round trip, teardown, iterations per second. TCP also gets the TIME_WAIT sockets
//! the case left and a second pass with an abortive close (`SO_LINGER` 0). Mechanisms on IP
//! ports run at most `port_budget` iterations per case, so a sweep never uses up the
//! ephemeral range (each TCP connection leaves a TIME_WAIT socket holding its ports 60 s).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{
    cost, lossy::monotonic_ns, outcome, per_unit, Buffers, Capabilities, ChannelEnd, DataError,
    End, Mode, Params, Workload,
};
use crate::backends::{AbortHandle, Channel, ChannelParams, Mechanism, Rendezvous};
use crate::error::Error;
use crate::message::reply_seq;
use crate::results::{CaseResult, SetupResult};
use crate::session::Session;
use crate::stats::{new_histogram, summarize};
use crate::sys::courier::{Courier, MAX_RECORD};

pub const ID: &str = "setup";

pub struct Setup;
pub static SETUP: Setup = Setup;

/// The first byte of a hand-over record (a description may be empty, a record never is:
/// an empty read is the other side gone).
const HANDOVER: u8 = b'H';
/// The peer's record: four stamps (joined from, joined, closing from, closed).
const STAMPS: usize = 4;
/// How long one side waits for a lossy channel's first datagram before failing the case.
const DATAGRAM_WAIT: Duration = Duration::from_secs(2);

impl Workload for Setup {
    fn id(&self) -> &'static str {
        ID
    }

    fn help(&self) -> &'static str {
        "a fresh channel per iteration: establish, one request and reply, close (connect, accept, first round trip, teardown)"
    }

    fn applies(&self, caps: &Capabilities) -> bool {
        caps.channel()
    }

    fn default_count(&self, _size: usize, p: &Params) -> u64 {
        if p.quick {
            200
        } else {
            2_000
        }
    }

    fn warmup(&self, n: u64) -> u64 {
        (n / 10).clamp(10, 200)
    }

    fn estimate(&self, _size: usize, warmup: u64, n: u64) -> Duration {
        // A fresh channel costs tens to hundreds of microseconds; TCP runs a second pass.
        cost::of(warmup + 2 * n, 150e3, 0.0)
    }

    fn measure(
        &self,
        s: &mut Session,
        _p: &Params,
        warmup: u64,
        n: u64,
        r: &mut CaseResult,
    ) -> Result<(), Error> {
        let m = mechanism(s)?;
        // Mechanisms on IP ports: every pass within the budget, said in the result.
        let on_ports = m.info().cross_host;
        let (warmup, n, capped_from) = match on_ports {
            true => {
                let budget = port_budget();
                let per_pass = (budget / 3).max(2);
                let n2 = n.min(per_pass - per_pass / 10);
                let w2 = warmup.min(per_pass / 10);
                (w2, n2, (n2 < n).then_some(n))
            }
            false => (warmup, n, None),
        };
        let host_before = match on_ports {
            true => crate::backends::tcp_time_wait_all().ok(),
            false => None,
        };
        // Filled for TCP only, whose count is capped above.
        let mut ports = Vec::with_capacity(if on_ports { n as usize } else { 0 });
        passes(s, m, warmup, false, None)?;
        let mut out = passes(s, m, n, false, Some(&mut ports))?;
        let cpu = out.cpu;
        let tcp = !ports.is_empty();
        if tcp {
            out.result.time_wait = crate::backends::tcp_time_wait(&ports).ok();
            out.result.connections = Some(n);
            out.result.host_time_wait = host_before;
            ports.clear();
            let mut rst = passes(s, m, n, true, Some(&mut ports))?;
            rst.result.time_wait = crate::backends::tcp_time_wait(&ports).ok();
            rst.result.connections = Some(n);
            out.result.abortive = Some(Box::new(rst.result));
        }
        out.result.capped_from = capped_from;
        r.messages = n;
        r.warmup = warmup;
        r.cpu = Some(per_unit(cpu, n));
        r.setup = Some(out.result);
        Ok(())
    }

    fn bench(&self, s: &mut Session, _p: &Params, iters: u64) -> Result<Duration, Error> {
        let m = mechanism(s)?;
        let start = Instant::now();
        passes(s, m, iters, false, None)?;
        Ok(start.elapsed())
    }

    fn serve(&self, end: &mut End, n: u64) -> Result<serde_json::Value, DataError> {
        let c = end.channel()?;
        let m = mechanism_of(c)?;
        let close_seen = m.close_is_seen();
        let (mode, bufs, params, courier) = parts(c)?;
        let mut record = vec![0u8; MAX_RECORD];
        let mut fds: Vec<OwnedFd> = Vec::with_capacity(crate::sys::courier::MAX_FDS);
        for i in 0..n {
            fds.clear();
            let len = courier
                .recv(&mut record, &mut fds)
                .map_err(DataError::io("receive the channel description", i))?;
            if len == 0 {
                return Err(DataError::Io {
                    op: "receive the channel description",
                    seq: i,
                    source: io::Error::new(io::ErrorKind::BrokenPipe, "the parent is gone"),
                });
            }
            let j0 = monotonic_ns();
            if record[0] != HANDOVER {
                return Err(DataError::Io {
                    op: "read the channel description",
                    seq: i,
                    source: io::Error::new(io::ErrorKind::InvalidData, "not a hand-over record"),
                });
            }
            let spec = std::str::from_utf8(&record[1..len]).map_err(|_| DataError::Io {
                op: "read the channel description",
                seq: i,
                source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"),
            })?;
            let mut chan = m
                .join(spec, std::mem::take(&mut fds), params)
                .map_err(DataError::Backend)?;
            let j1 = monotonic_ns();
            if mode == Mode::Lossy {
                chan.set_recv_timeout(Some(DATAGRAM_WAIT))
                    .map_err(DataError::io("configure", i))?;
            }
            answer(chan.as_mut(), bufs, mode, i)?;
            // The parent, which has the reply, closes first; where its close shows, this
            // side closes once it has seen it.
            if close_seen {
                see_close(chan.as_mut(), bufs, i)?;
            }
            let c0 = monotonic_ns();
            drop(chan);
            let c1 = monotonic_ns();
            let mut stamps = [0u8; 8 * STAMPS];
            for (k, t) in [j0, j1, c0, c1].into_iter().enumerate() {
                stamps[8 * k..8 * k + 8].copy_from_slice(&t.to_le_bytes());
            }
            courier
                .send(&stamps, &[] as &[OwnedFd])
                .map_err(DataError::io("send the stamps", i))?;
        }
        outcome(&())
    }
}

/// One pass's account.
struct Pass {
    result: SetupResult,
    cpu: crate::sys::CpuUsage,
}

/// `n` iterations as one phase; with `ports`, each TCP connection's two ports are collected
/// (none for other mechanisms).
fn passes(
    s: &mut Session,
    m: &'static dyn Mechanism,
    n: u64,
    abortive: bool,
    ports: Option<&mut Vec<(u16, u16)>>,
) -> Result<Pass, Error> {
    let close_seen = m.close_is_seen();
    let ((acc, elapsed), cpu, _) = s.phase(ID, n, |end| {
        let c = end.channel()?;
        let mut acc = Acc::new();
        let elapsed = iterations(c, m, n, abortive, close_seen, &mut acc, ports)?;
        Ok((acc, elapsed))
    })?;
    Ok(Pass {
        result: SetupResult {
            connect_ns: summarize(&acc.connect),
            accept_ns: summarize(&acc.accept),
            first_rtt_ns: summarize(&acc.first_rtt),
            teardown_ns: summarize(&acc.teardown),
            close_seen,
            per_sec: n as f64
                / elapsed
                    .saturating_sub(Duration::from_nanos(acc.kept_ns))
                    .as_secs_f64()
                    .max(1e-9),
            passes_descriptors: acc.passes_descriptors,
            records_ns: (!acc.records.is_empty()).then(|| summarize(&acc.records)),
            time_wait: None,
            host_time_wait: None,
            connections: None,
            abortive: None,
            capped_from: None,
        },
        cpu,
    })
}

/// The four distributions one pass fills.
struct Acc {
    connect: Histogram<u64>,
    accept: Histogram<u64>,
    first_rtt: Histogram<u64>,
    teardown: Histogram<u64>,
    /// ipcbench's bookkeeping per iteration, where it keeps any.
    records: Histogram<u64>,
    kept_ns: u64,
    passes_descriptors: bool,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            connect: new_histogram(),
            accept: new_histogram(),
            first_rtt: new_histogram(),
            teardown: new_histogram(),
            records: new_histogram(),
            kept_ns: 0,
            passes_descriptors: false,
        }
    }
}

/// The parent's iterations, with a sentry thread that aborts the fresh channel in use
/// when the peer dies (a queue or a segment shows no end-of-file by itself); returns their
/// wall time.
fn iterations(
    c: &mut ChannelEnd,
    m: &'static dyn Mechanism,
    n: u64,
    abortive: bool,
    close_seen: bool,
    acc: &mut Acc,
    mut ports: Option<&mut Vec<(u16, u16)>>,
) -> Result<Duration, DataError> {
    let (mode, bufs, params, courier) = parts(c)?;
    let (stop_rx, stop_tx) = nix::unistd::pipe().map_err(|e| DataError::Io {
        op: "create the sentry's pipe for",
        seq: 0,
        source: e.into(),
    })?;
    let sentry = Sentry {
        courier,
        pending: Mutex::new(None),
        stop_rx,
        stop_tx,
    };
    let mut record = Vec::with_capacity(MAX_RECORD);
    let mut stamps = [0u8; 8 * STAMPS];
    std::thread::scope(|scope| {
        scope.spawn(|| sentry.watch());
        let result = (|| {
            let start = Instant::now();
            for i in 0..n {
                let kept0 = crate::sys::record::spent_ns();
                let t0 = monotonic_ns();
                let offer = m.offer(params).map_err(DataError::Backend)?;
                let t1 = monotonic_ns();
                record.clear();
                record.push(HANDOVER);
                record.extend_from_slice(offer.spec.as_bytes());
                courier
                    .send(&record, &offer.inherit)
                    .map_err(DataError::io("hand over the channel", i))?;
                let handed = monotonic_ns();
                let passed = !offer.inherit.is_empty();
                acc.passes_descriptors |= passed;
                // Our copies of the peer's ends go now: its close must read as end-of-file.
                drop(offer.inherit);
                let gone = || sentry.courier.hung_up();
                let rv = Rendezvous::new(Instant::now() + Duration::from_secs(10), &gone);
                let mut chan = (offer.connect)(&rv).map_err(DataError::Backend)?;
                let t2 = monotonic_ns();
                sentry.arm(chan.abort_handle());
                if mode == Mode::Lossy {
                    chan.set_recv_timeout(Some(DATAGRAM_WAIT))
                        .map_err(DataError::io("configure", i))?;
                }
                ask(chan.as_mut(), bufs, mode, i)?;
                let t3 = monotonic_ns();
                chan.peer_attached().map_err(DataError::Backend)?;
                let t4 = monotonic_ns();
                let kept1 = crate::sys::record::spent_ns();
                if let Some(p) = ports.as_deref_mut() {
                    if let Some(pair) = crate::backends::tcp_ports(chan.as_ref()) {
                        p.push(pair);
                    }
                }
                if abortive {
                    crate::backends::tcp_abortive_close(chan.as_ref())
                        .map_err(DataError::io("set SO_LINGER on", i))?;
                }
                let t5 = monotonic_ns();
                drop(chan);
                sentry.disarm();
                let t6 = monotonic_ns();
                let kept2 = crate::sys::record::spent_ns();
                let len = courier
                    .recv(&mut stamps, &mut Vec::new())
                    .map_err(DataError::io("receive the peer's stamps", i))?;
                if len != stamps.len() {
                    return Err(DataError::Io {
                        op: "receive the peer's stamps",
                        seq: i,
                        source: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the peer closed the courier",
                        ),
                    });
                }
                let at = |k: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&stamps[8 * k..8 * k + 8]);
                    u64::from_le_bytes(b)
                };
                let (j0, j1, c0, c1) = (at(0), at(1), at(2), at(3));
                let pass = if passed { handed - t1 } else { 0 };
                // ipcbench's own records of named objects (for `clean`) are not the
                // mechanism's cost: taken out, and reported on their own.
                let kept = kept2 - kept0;
                let accept = ((t1 - t0) + pass + t2.saturating_sub(j0.max(handed)) + (t4 - t3))
                    .saturating_sub(kept1 - kept0);
                let teardown = if close_seen {
                    c1.max(t6).saturating_sub(t5)
                } else {
                    c1.saturating_sub(c0) + (t6 - t5)
                }
                .saturating_sub(kept2 - kept1);
                if kept > 0 {
                    acc.records.saturating_record(kept);
                    acc.kept_ns += kept;
                }
                for (h, v) in [
                    (&mut acc.connect, j1.saturating_sub(j0)),
                    (&mut acc.accept, accept),
                    (&mut acc.first_rtt, t3 - t2),
                    (&mut acc.teardown, teardown),
                ] {
                    h.saturating_record(v.max(1));
                }
            }
            Ok(start.elapsed())
        })();
        sentry.stop();
        result
    })
}

/// The parent's request on a fresh channel and the reply it checks.
fn ask(chan: &mut dyn Channel, bufs: &mut Buffers, mode: Mode, i: u64) -> Result<(), DataError> {
    match mode {
        Mode::Raw => {
            chan.send(&bufs.tx).map_err(DataError::io("send", i))?;
            chan.recv(&mut bufs.rx)
                .map_err(DataError::io("receive", i))
                .map(|_| ())
        }
        Mode::Reliable | Mode::Lossy => {
            bufs.send(chan, i)?;
            bufs.receive(chan, reply_seq(i))
        }
    }
}

/// The peer's side of `ask`.
fn answer(chan: &mut dyn Channel, bufs: &mut Buffers, mode: Mode, i: u64) -> Result<(), DataError> {
    match mode {
        Mode::Raw => {
            chan.recv(&mut bufs.rx)
                .map_err(DataError::io("receive", i))?;
            chan.send(&bufs.tx).map_err(DataError::io("send", i))
        }
        Mode::Reliable | Mode::Lossy => {
            bufs.receive(chan, i)?;
            bufs.send(chan, reply_seq(i))
        }
    }
}

/// Waits until the peer's close reads as end-of-file (or a reset); anything else arriving
/// is an error.
fn see_close(chan: &mut dyn Channel, bufs: &mut Buffers, i: u64) -> Result<(), DataError> {
    use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    match chan.recv(&mut bufs.rx) {
        Ok(0) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
            ) =>
        {
            Ok(())
        }
        Ok(n) => Err(DataError::Io {
            op: "wait for the close of",
            seq: i,
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{n} bytes arrived after the reply instead of the close"),
            ),
        }),
        Err(e) => Err(DataError::io("wait for the close of", i)(e)),
    }
}

/// Aborts the fresh channel in use once the peer is gone (its courier end closes when it
/// dies), so a wait on a queue or a segment returns.
struct Sentry<'a> {
    courier: &'a Courier,
    pending: Mutex<Option<AbortHandle>>,
    /// Readable once the iterations are over (`stop`).
    stop_rx: OwnedFd,
    stop_tx: OwnedFd,
}

impl Sentry<'_> {
    fn watch(&self) {
        if self.courier.wait_hung_up_or(self.stop_rx.as_fd()) {
            let abort = self.pending.lock().ok().and_then(|mut p| p.take());
            if let Some(abort) = abort {
                abort();
            }
        }
    }

    fn arm(&self, abort: Option<AbortHandle>) {
        if let Ok(mut p) = self.pending.lock() {
            *p = abort;
        }
    }

    fn disarm(&self) {
        self.arm(None);
    }

    fn stop(&self) {
        // A write to a fresh, empty pipe does not fail; if it did, the watchdog's kill of the
        // peer would still end the watcher's wait (the courier hangs up).
        let _ = nix::unistd::write(&self.stop_tx, &[1]);
    }
}

/// Iterations a case on IP ports may make in all (warm-up and both passes): a 32nd of the
/// ephemeral port range (882 of the default 28,232), so consecutive sizes and mechanisms
/// stay far from its end while earlier cases' TIME_WAIT sockets still hold their ports,
/// and so that they do not slow each other down much: binding a listener to an ephemeral
/// port took 0.3 ms here with 13,000 TIME_WAIT sockets on the host, against ~5 µs with
/// none.
pub fn port_budget() -> u64 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|v| v.parse::<u64>().ok());
            Some((it.next()??, it.next()??))
        })
        .map(|(lo, hi)| hi.saturating_sub(lo) + 1)
        .unwrap_or(28_232);
    (range / 32).max(30)
}

fn mechanism_of(c: &ChannelEnd) -> Result<&'static dyn Mechanism, DataError> {
    crate::backends::by_id(c.info.id).ok_or_else(|| DataError::Io {
        op: "find",
        seq: 0,
        source: io::Error::new(io::ErrorKind::NotFound, "not a registered mechanism"),
    })
}

/// What both halves' loops use of a channel end: how it checks, its buffers, what its
/// channels are made with, and the courier to the other process.
fn parts(c: &mut ChannelEnd) -> Result<(Mode, &mut Buffers, &ChannelParams, &Courier), DataError> {
    let mode = c.mode();
    let courier = c.courier.as_ref().ok_or_else(|| DataError::Io {
        op: "hand over channels",
        seq: 0,
        source: io::Error::new(
            io::ErrorKind::Unsupported,
            "this session has no courier to hand a fresh channel over",
        ),
    })?;
    Ok((mode, &mut c.bufs, &c.params, courier))
}

/// The session's mechanism (setup runs on channels only).
fn mechanism(s: &Session) -> Result<&'static dyn Mechanism, Error> {
    match s.subject() {
        crate::subject::Subject::Channel(m) => Ok(m),
        _ => Err(Error::DataPath {
            mechanism: s.id(),
            op: "run",
            seq: 0,
            source: io::Error::new(io::ErrorKind::Unsupported, "setup needs a channel"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{stamp, Verify};
    use crate::workload::Buffers;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    /// A framed stream over one end of a socket pair.
    struct Sock(UnixStream);

    impl Channel for Sock {
        fn send(&mut self, msg: &[u8]) -> io::Result<()> {
            self.0.write_all(msg)
        }

        fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read_exact(buf).map(|()| buf.len())
        }
    }

    /// The other side answers request `i` with `reply` applied to a correct reply.
    fn exchange(reply: impl FnOnce(&mut Vec<u8>) + Send + 'static) -> Result<(), DataError> {
        let (a, b) = UnixStream::pair().unwrap();
        let other = std::thread::spawn(move || {
            let mut b = b;
            let mut req = vec![0u8; 64];
            b.read_exact(&mut req).unwrap();
            let mut bufs = Buffers::new(64, Verify::Full);
            stamp(&mut bufs.tx, reply_seq(3));
            let mut out = bufs.tx.clone();
            reply(&mut out);
            let _ = b.write_all(&out);
        });
        let mut bufs = Buffers::new(64, Verify::Full);
        let r = ask(&mut Sock(a), &mut bufs, Mode::Reliable, 3);
        other.join().unwrap();
        r
    }

    #[test]
    fn the_first_reply_on_a_fresh_channel_is_checked() {
        assert!(exchange(|_| {}).is_ok());
        let corrupt = exchange(|m| m[40] ^= 1).unwrap_err();
        assert!(
            matches!(corrupt, DataError::Verify(_)),
            "a flipped byte must fail the check: {corrupt}"
        );
        let stale = exchange(|m| stamp(m, reply_seq(2))).unwrap_err();
        assert!(matches!(stale, DataError::Verify(_)), "{stale}");
    }

    #[test]
    fn a_close_is_seen_as_such_and_anything_else_is_an_error() {
        let mut bufs = Buffers::new(8, Verify::Full);
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        assert!(see_close(&mut Sock(a), &mut bufs, 0).is_ok());
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(&[0u8; 8]).unwrap();
        let err = see_close(&mut Sock(a), &mut bufs, 0).unwrap_err();
        assert!(err.to_string().contains("instead of the close"), "{err}");
    }

    #[test]
    fn the_port_budget_keeps_far_from_the_ephemeral_range() {
        let b = port_budget();
        assert!((30..=65_536 / 32).contains(&b), "{b}");
    }
}
