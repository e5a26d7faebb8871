//! The timed loops: the one place time is measured. They own no resources, allocate nothing
//! and print nothing; statistics and presentation happen after them.

#![forbid(unsafe_code)]

pub mod lossy;
pub mod sync;

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use thiserror::Error;

use crate::backends::Channel;
use crate::message::{fill_base, reply_seq, stamp, Checker, Verify, VerifyError};

/// One side's message buffers for one size, prepared before timing.
pub struct Buffers {
    tx: Vec<u8>,
    rx: Vec<u8>,
    checker: Checker,
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
        }
    }

    fn receive(&mut self, chan: &mut dyn Channel, seq: u64) -> Result<(), DataError> {
        let n = chan.recv(&mut self.rx).map_err(|source| DataError::Io {
            op: "receive",
            seq,
            source,
        })?;
        self.check(n, seq)
    }

    /// Checks the `n` bytes just received as message `seq`. Message mechanisms report the
    /// true length of an oversized message, so `n` may exceed the buffer.
    fn check(&mut self, n: usize, seq: u64) -> Result<(), DataError> {
        if n != self.rx.len() {
            return Err(DataError::Verify(VerifyError::Length {
                seq,
                expected: self.rx.len(),
                got: n,
            }));
        }
        self.checker.check(&self.rx, seq).map_err(DataError::Verify)
    }

    fn send(&mut self, chan: &mut dyn Channel, seq: u64) -> Result<(), DataError> {
        stamp(&mut self.tx, seq);
        chan.send(&self.tx).map_err(|source| DataError::Io {
            op: "send",
            seq,
            source,
        })
    }
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
}

/// Records one timed round trip, when the caller keeps a histogram (nanoseconds,
/// saturating: the histogram's range ends well below u64::MAX).
#[inline]
pub(crate) fn record(hist: &mut Option<&mut Histogram<u64>>, rtt: Duration) {
    if let Some(h) = hist.as_deref_mut() {
        h.saturating_record(u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// Parent side of ping-pong: `n` round trips from `*seq` on. With a histogram, each round
/// trip is timed and recorded; the returned duration is the whole loop either way.
pub fn ping(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    seq: &mut u64,
    n: u64,
    mut hist: Option<&mut Histogram<u64>>,
) -> Result<Duration, DataError> {
    let start = Instant::now();
    for _ in 0..n {
        let s = *seq;
        stamp(&mut bufs.tx, s);
        let t0 = Instant::now();
        let result = chan
            .send(&bufs.tx)
            .map_err(|source| DataError::Io {
                op: "send",
                seq: s,
                source,
            })
            .and_then(|()| {
                chan.recv(&mut bufs.rx).map_err(|source| DataError::Io {
                    op: "receive",
                    seq: reply_seq(s),
                    source,
                })
            });
        let rtt = t0.elapsed();
        let len = result?;
        // Checked outside the timed interval; the peer checks inside it, equally for all.
        bufs.check(len, reply_seq(s))?;
        record(&mut hist, rtt);
        *seq += 1;
    }
    Ok(start.elapsed())
}

/// Peer side of ping-pong: receive, check, answer, `n` times.
pub fn pong(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    seq: &mut u64,
    n: u64,
) -> Result<(), DataError> {
    for _ in 0..n {
        let s = *seq;
        bufs.receive(chan, s)?;
        bufs.send(chan, reply_seq(s))?;
        *seq += 1;
    }
    Ok(())
}

/// Parent side of streaming: `n` messages one way, then wait for the acknowledgement.
/// Returns the time from the first send to the acknowledgement.
pub fn stream(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    seq: &mut u64,
    n: u64,
) -> Result<Duration, DataError> {
    let t0 = Instant::now();
    for _ in 0..n {
        bufs.send(chan, *seq)?;
        *seq += 1;
    }
    bufs.receive(chan, reply_seq(*seq - 1))?;
    Ok(t0.elapsed())
}

/// Peer side of streaming: receive and check `n` messages, then acknowledge the last.
pub fn sink(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    seq: &mut u64,
    n: u64,
) -> Result<(), DataError> {
    for _ in 0..n {
        bufs.receive(chan, *seq)?;
        *seq += 1;
    }
    bufs.send(chan, reply_seq(*seq - 1))
}

/// Calibration (`pipe-raw`): the parent's round trip with no framing and no checks, as
/// plain as a hand-written pipe ping-pong.
pub fn ping_raw(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    n: u64,
    mut hist: Option<&mut Histogram<u64>>,
) -> Result<Duration, DataError> {
    let start = Instant::now();
    for i in 0..n {
        let t0 = Instant::now();
        chan.send(&bufs.tx).map_err(DataError::io("send", i))?;
        chan.recv(&mut bufs.rx)
            .map_err(DataError::io("receive", i))?;
        record(&mut hist, t0.elapsed());
    }
    Ok(start.elapsed())
}

/// Calibration: the peer's echo with no checks.
pub fn pong_raw(chan: &mut dyn Channel, bufs: &mut Buffers, n: u64) -> Result<(), DataError> {
    for i in 0..n {
        chan.recv(&mut bufs.rx)
            .map_err(DataError::io("receive", i))?;
        chan.send(&bufs.rx).map_err(DataError::io("send", i))?;
    }
    Ok(())
}

/// Calibration: streaming with no framing and no checks.
pub fn stream_raw(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    n: u64,
) -> Result<Duration, DataError> {
    let t0 = Instant::now();
    for i in 0..n {
        chan.send(&bufs.tx).map_err(DataError::io("send", i))?;
    }
    chan.recv(&mut bufs.rx)
        .map_err(DataError::io("receive", n))?;
    Ok(t0.elapsed())
}

/// Calibration: the peer's side of `stream_raw`.
pub fn sink_raw(chan: &mut dyn Channel, bufs: &mut Buffers, n: u64) -> Result<(), DataError> {
    for i in 0..n {
        chan.recv(&mut bufs.rx)
            .map_err(DataError::io("receive", i))?;
    }
    chan.send(&bufs.tx).map_err(DataError::io("send", n))
}

/// How many messages a case uses when `--messages` is not given: enough bytes to
/// measure, bounded in count so small sizes do not run for minutes.
pub fn default_count(workload: crate::results::Workload, size: usize, quick: bool) -> u64 {
    use crate::results::Workload::*;
    let (budget, lo, hi): (u64, u64, u64) = match (workload, quick) {
        (Latency, true) => (128 << 20, 100, 5_000),
        (Latency, false) => (2 << 30, 1_000, 100_000),
        (Throughput, true) => (256 << 20, 100, 50_000),
        (Throughput, false) => (4 << 30, 1_000, 1_000_000),
        // Turn pairs; for the lock workload, milliseconds of contention.
        (Handoff, true) => return 5_000,
        (Handoff, false) => return 100_000,
        (Lock, true) => return 200,
        (Lock, false) => return 2_000,
    };
    (budget / size.max(1) as u64).clamp(lo, hi)
}

/// A rough guess of how long a case takes on a small VM (the 2-vCPU reference: a quick run
/// of everything, 165 cases, took 16.5 s, and this guesses 22 s); only for the estimate and
/// the progress bar's ETA, never for a result.
pub fn estimate(
    workload: crate::results::Workload,
    size: usize,
    warmup: u64,
    n: u64,
) -> std::time::Duration {
    use crate::results::Workload::*;
    const START_NS: f64 = 15e6; // a fresh peer, its channel and its exit
    const WAKE_NS: f64 = 25e3; // a sleeping mechanism's round trip, averaged over modes
    let copy_ns = size as f64 / 4.0; // 4 bytes per ns
    let msgs = (warmup + n) as f64;
    let ns = START_NS
        + match workload {
            Latency => msgs * (WAKE_NS + 2.0 * copy_ns),
            Throughput => msgs * (1e3 + copy_ns),
            Handoff => msgs * WAKE_NS,
            // `n` is milliseconds of contention; the uncontended pass follows.
            Lock => msgs * 1e6 + 100e6,
        };
    std::time::Duration::from_nanos(ns as u64)
}

/// Warm-up length for a case of `n` messages (not recorded).
pub fn warmup_count(n: u64) -> u64 {
    (n / 10).clamp(10, 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A loopback channel: what is sent is what is received, in one thread.
    struct Echo(VecDeque<Vec<u8>>);

    impl Channel for Echo {
        fn send(&mut self, msg: &[u8]) -> io::Result<()> {
            // Answer as a peer would: the reply to message s carries reply_seq(s).
            let mut seq = [0u8; 8];
            seq.copy_from_slice(&msg[..8]);
            let s = u64::from_le_bytes(seq);
            let mut reply = msg.to_vec();
            stamp(&mut reply, reply_seq(s));
            self.0.push_back(reply);
            Ok(())
        }
        fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let m = self.0.pop_front().ok_or(io::ErrorKind::UnexpectedEof)?;
            buf[..m.len()].copy_from_slice(&m);
            Ok(m.len())
        }
    }

    #[test]
    fn ping_records_every_round_trip() {
        let mut bufs = Buffers::new(64, Verify::Full);
        let mut h = crate::stats::new_histogram();
        let mut seq = 0;
        ping(
            &mut Echo(VecDeque::new()),
            &mut bufs,
            &mut seq,
            50,
            Some(&mut h),
        )
        .unwrap();
        assert_eq!(seq, 50);
        assert_eq!(h.len(), 50);
    }

    #[test]
    fn counts_are_bounded() {
        use crate::results::Workload;
        assert_eq!(default_count(Workload::Latency, 1, true), 5_000);
        assert_eq!(default_count(Workload::Latency, 1 << 20, true), 128);
        assert_eq!(default_count(Workload::Throughput, 64 << 20, false), 1_000);
        assert_eq!(warmup_count(5), 10);
    }
}
