//! `latency`: ping-pong. The parent sends a message of S bytes, the peer receives it whole
//! and answers with S bytes; each round trip is timed and recorded in an HDR histogram.
//! Runs on every channel; datagram channels count lost round trips instead of failing.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{
    by_budget, clients, cost, lossy, outcome, per_unit, record_losses, Buffers, Capabilities,
    Chain, DataError, End, Mode, Params, Workload,
};
use crate::backends::Channel;
use crate::error::Error;
use crate::message::reply_seq;
use crate::results::CaseResult;
use crate::session::{PhaseCost, Session};
use crate::stats::{new_histogram, summarize};

pub const ID: &str = "latency";

pub struct Latency;
pub static LATENCY: Latency = Latency;

impl Workload for Latency {
    fn id(&self) -> &'static str {
        ID
    }

    fn help(&self) -> &'static str {
        "ping-pong: the round trip of one message and its reply, per iteration"
    }

    fn applies(&self, caps: &Capabilities) -> bool {
        caps.channel()
    }

    fn default_count(&self, size: usize, p: &Params) -> u64 {
        let quick = p.quick;
        match quick {
            true => by_budget(size, 128 << 20, 100, 5_000),
            false => by_budget(size, 2 << 30, 1_000, 100_000),
        }
    }

    fn estimate(&self, size: usize, warmup: u64, n: u64) -> Duration {
        let each = cost::WAKE_NS + 2.0 * size as f64 * cost::NS_PER_BYTE;
        cost::of(warmup + n, each, 0.0)
    }

    fn measure(
        &self,
        s: &mut Session,
        _p: &Params,
        warmup: u64,
        n: u64,
        r: &mut CaseResult,
    ) -> Result<(), Error> {
        round_trips(s, warmup, None)?;
        let mut hist = new_histogram();
        let cost = round_trips(s, n, Some(&mut hist))?;
        if cost.delivered == 0 {
            return Err(Error::DataPath {
                mechanism: s.id(),
                op: "delivery",
                seq: 0,
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("none of {n} round trips of {} bytes completed", s.size()),
                ),
            });
        }
        r.rtt_ns = Some(summarize(&hist));
        r.cpu = Some(per_unit(cost.cpu, n));
        if s.lossy() {
            record_losses(r, n, cost.delivered);
        }
        Ok(())
    }

    fn bench(&self, s: &mut Session, _p: &Params, iters: u64) -> Result<Duration, Error> {
        Ok(round_trips(s, iters, None)?.elapsed)
    }

    fn fans_in(&self) -> bool {
        true
    }

    /// Every client closed-loop; the server answers each request.
    fn measure_fan_in(
        &self,
        fan: &mut crate::fanin::FanIn,
        p: &Params,
        r: &mut CaseResult,
    ) -> Result<crate::results::FanInResult, Error> {
        clients::measure(fan, ID, p, true, true, false, r)
    }

    fn client(
        &self,
        end: &mut super::ChannelEnd,
        order: &clients::ClientOrder,
    ) -> Result<clients::ClientReport, DataError> {
        clients::closed_loop(end, order)
    }

    fn serve(&self, end: &mut End, n: u64) -> Result<serde_json::Value, DataError> {
        let c = end.channel()?;
        let mode = c.mode();
        let (chan, bufs, seq) = (c.chan.as_mut(), &mut c.bufs, &mut c.seq);
        let delivery = match mode {
            Mode::Raw => pong_raw(chan, bufs, n).map(|()| lossy::Delivery::all(n))?,
            Mode::Lossy => lossy::pong(chan, bufs, seq, n)?,
            Mode::Reliable => pong(chan, bufs, seq, n).map(|()| lossy::Delivery::all(n))?,
        };
        outcome(&delivery)
    }
}

/// `n` round trips over a session; each completed one is recorded in `hist` when given.
/// (The floor, the core-to-core map, the criterion benches and tests use it directly.)
pub fn round_trips(
    s: &mut Session,
    n: u64,
    hist: Option<&mut Histogram<u64>>,
) -> Result<PhaseCost, Error> {
    let ((elapsed, lost), cpu, _) = s.phase(ID, n, |end| {
        let c = end.channel()?;
        let mode = c.mode();
        let (chan, bufs, seq) = (c.chan.as_mut(), &mut c.bufs, &mut c.seq);
        match mode {
            Mode::Raw => ping_raw(chan, bufs, n, hist).map(|d| (d, 0)),
            Mode::Lossy => lossy::ping(chan, bufs, seq, n, hist),
            Mode::Reliable => ping(chan, bufs, seq, n, hist).map(|d| (d, 0)),
        }
    })?;
    Ok(PhaseCost {
        elapsed,
        cpu,
        delivered: n - lost,
        lost,
    })
}

/// Parent side of ping-pong: `n` round trips from `*seq` on. With a histogram, each round
/// trip is timed (`Chain`: one clock read per sample, from the previous reply's arrival to
/// this one's); the returned duration is the whole loop either way. The reply to message
/// `s` is checked after message `s + 1` has left, while the peer works on it, so the check
/// is off the reply path whenever the two sides run on different CPUs.
pub fn ping(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    seq: &mut u64,
    n: u64,
    hist: Option<&mut Histogram<u64>>,
) -> Result<Duration, DataError> {
    let start = Instant::now();
    let mut chain = Chain::new(hist, n);
    let mut unchecked: Option<(usize, u64)> = None;
    for _ in 0..n {
        let s = *seq;
        bufs.send(chan, s)?;
        if let Some((len, r)) = unchecked.take() {
            bufs.check(len, r)?;
        }
        let len = chan
            .recv(&mut bufs.rx)
            .map_err(DataError::io("receive", reply_seq(s)))?;
        chain.lap();
        unchecked = Some((len, reply_seq(s)));
        *seq += 1;
    }
    if let Some((len, r)) = unchecked {
        bufs.check(len, r)?;
    }
    chain.finish();
    Ok(start.elapsed())
}

/// Peer side of ping-pong, `n` times: receive, answer, then check what was received (the
/// answer does not depend on the check, so the check is off the reply path; a bad message
/// still fails the case, one reply later).
pub fn pong(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    seq: &mut u64,
    n: u64,
) -> Result<(), DataError> {
    for _ in 0..n {
        let s = *seq;
        let len = chan
            .recv(&mut bufs.rx)
            .map_err(DataError::io("receive", s))?;
        bufs.send(chan, reply_seq(s))?;
        bufs.check(len, s)?;
        *seq += 1;
    }
    Ok(())
}

/// Calibration (`pipe-raw`): the parent's round trip with no framing and no checks, as
/// plain as a hand-written pipe ping-pong (and timed the same way as `ping`).
pub fn ping_raw(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    n: u64,
    hist: Option<&mut Histogram<u64>>,
) -> Result<Duration, DataError> {
    let start = Instant::now();
    let mut chain = Chain::new(hist, n);
    for i in 0..n {
        chan.send(&bufs.tx).map_err(DataError::io("send", i))?;
        chan.recv(&mut bufs.rx)
            .map_err(DataError::io("receive", i))?;
        chain.lap();
    }
    chain.finish();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{stamp, Verify};
    use std::collections::VecDeque;
    use std::io;

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
        let mut h = new_histogram();
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
        let quick = Params {
            quick: true,
            ..Params::default()
        };
        assert_eq!(LATENCY.default_count(1, &quick), 5_000);
        assert_eq!(LATENCY.default_count(1 << 20, &quick), 128);
        // 16 and 64 MiB: four budgets' worth, and never under 10.
        assert_eq!(LATENCY.default_count(16 << 20, &quick), 32);
        assert_eq!(LATENCY.default_count(64 << 20, &quick), 10);
    }
}
