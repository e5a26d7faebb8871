//! The same workloads for mechanisms that may drop messages (datagram sockets): loss is
//! counted and reported, never retransmitted, and every wait is bounded by `GRACE`.
//! Messages that do arrive are checked exactly as for reliable mechanisms.

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{Buffers, DataError};
use crate::backends::Channel;
use crate::message::{infer_seq, reply_seq, stamp};

/// How long a receiver waits for the next message before it counts the rest as lost.
pub const GRACE: Duration = Duration::from_millis(500);

/// What the receiving side of a lossy phase saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    pub delivered: u64,
    /// Whether the phase's last message arrived (the acknowledgement then times the run).
    pub final_seen: bool,
    /// `CLOCK_MONOTONIC` (shared by both processes) when the last delivered message arrived.
    pub last_arrival_ns: u64,
}

impl Delivery {
    /// A phase of `n` messages that all arrived (reliable mechanisms).
    pub fn all(n: u64) -> Delivery {
        Delivery {
            delivered: n,
            final_seen: true,
            last_arrival_ns: 0,
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process on the machine.
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn head(bufs: &Buffers) -> &[u8] {
    &bufs.rx[..bufs.rx.len().min(8)]
}

fn bound(chan: &mut dyn Channel, t: Duration) -> Result<(), DataError> {
    chan.set_recv_timeout(Some(t))
        .map_err(DataError::io("bound the receive of", 0))
}

/// Parent side of ping-pong: a reply that does not come within `GRACE` is a lost round
/// trip (counted, not recorded); late replies to earlier pings are skipped.
/// Returns the loop's duration and the number of lost round trips.
pub fn ping(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    seq: &mut u64,
    n: u64,
    mut hist: Option<&mut Histogram<u64>>,
) -> Result<(Duration, u64), DataError> {
    bound(chan, GRACE)?;
    let start = Instant::now();
    let mut lost = 0;
    for _ in 0..n {
        let s = *seq;
        stamp(&mut bufs.tx, s);
        let t0 = Instant::now();
        chan.send(&bufs.tx).map_err(DataError::io("send", s))?;
        loop {
            match chan.recv(&mut bufs.rx) {
                Ok(len) => {
                    let rtt = t0.elapsed();
                    let got = infer_seq(head(bufs), s, true);
                    if len == bufs.rx.len() && got < s {
                        continue; // a late reply to a ping already counted as lost
                    }
                    bufs.check(len, reply_seq(s))?;
                    super::record(&mut hist, rtt);
                    break;
                }
                Err(e) if timed_out(&e) => {
                    lost += 1;
                    break;
                }
                Err(e) => return Err(DataError::io("receive", reply_seq(s))(e)),
            }
        }
        *seq += 1;
    }
    Ok((start.elapsed(), lost))
}

/// Receives the messages of one phase (`n` messages from `*seq` on), calling `each` for
/// every one that arrives, until the last arrives or none has come for `GRACE`.
fn receive_phase(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    seq: &mut u64,
    n: u64,
    mut each: impl FnMut(&mut dyn Channel, &mut Buffers, u64) -> Result<(), DataError>,
) -> Result<Delivery, DataError> {
    bound(chan, GRACE)?;
    let first = *seq;
    let last = first + n.saturating_sub(1);
    let mut next = first;
    let mut d = Delivery::default();
    while n > 0 && !d.final_seen {
        match chan.recv(&mut bufs.rx) {
            Ok(len) => {
                let got = infer_seq(head(bufs), next, false);
                if len == bufs.rx.len() && got < next {
                    continue; // a straggler from an earlier phase
                }
                bufs.check(len, got)?;
                if got > last {
                    return Err(DataError::io("receive", got)(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("message #{got} is beyond this phase's last message #{last}"),
                    )));
                }
                d.delivered += 1;
                d.last_arrival_ns = monotonic_ns();
                each(chan, bufs, got)?;
                next = got + 1;
                d.final_seen = got == last;
            }
            Err(e) if timed_out(&e) => break,
            Err(e) => return Err(DataError::io("receive", next)(e)),
        }
    }
    *seq = first + n;
    Ok(d)
}

/// Peer side of ping-pong: answer every ping that arrives.
pub fn pong(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    seq: &mut u64,
    n: u64,
) -> Result<Delivery, DataError> {
    receive_phase(chan, bufs, seq, n, |chan, bufs, got| {
        stamp(&mut bufs.tx, reply_seq(got));
        chan.send(&bufs.tx)
            .map_err(DataError::io("send", reply_seq(got)))
    })
}

/// Peer side of streaming: count what arrives, then acknowledge the phase's last message.
pub fn sink(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    seq: &mut u64,
    n: u64,
) -> Result<Delivery, DataError> {
    let d = receive_phase(chan, bufs, seq, n, |_, _, _| Ok(()))?;
    let last = reply_seq(*seq - 1);
    stamp(&mut bufs.tx, last);
    chan.send(&bufs.tx).map_err(DataError::io("send", last))?;
    Ok(d)
}

/// Parent side of streaming: send `n` messages, then wait (bounded) for the acknowledgement.
/// Returns the time to the acknowledgement, if it came, and `CLOCK_MONOTONIC` at the start.
pub fn stream(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    seq: &mut u64,
    n: u64,
) -> Result<(Option<Duration>, u64), DataError> {
    bound(chan, 3 * GRACE)?;
    let t0_ns = monotonic_ns();
    let t0 = Instant::now();
    for _ in 0..n {
        chan.send(bufs_stamped(bufs, *seq))
            .map_err(DataError::io("send", *seq))?;
        *seq += 1;
    }
    let ack = reply_seq(*seq - 1);
    loop {
        match chan.recv(&mut bufs.rx) {
            Ok(len) => {
                if len == bufs.rx.len() && infer_seq(head(bufs), ack, true) < *seq - 1 {
                    continue; // a late acknowledgement of an earlier phase
                }
                bufs.check(len, ack)?;
                return Ok((Some(t0.elapsed()), t0_ns));
            }
            Err(e) if timed_out(&e) => return Ok((None, t0_ns)),
            Err(e) => return Err(DataError::io("receive", ack)(e)),
        }
    }
}

fn bufs_stamped(bufs: &mut Buffers, seq: u64) -> &[u8] {
    stamp(&mut bufs.tx, seq);
    &bufs.tx
}
