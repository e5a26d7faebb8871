//! `throughput`: the parent streams N messages of S bytes one way; the peer receives and
//! checks them all and answers one acknowledgement. Time from the first send to the
//! acknowledgement gives messages/s and bytes/s. Runs on channels that can stream;
//! datagram channels count losses and time to the last arrival when the end is lost.

use std::time::{Duration, Instant};

use super::{
    by_budget, cost, lossy, outcome, per_unit, record_losses, Buffers, Capabilities, DataError,
    End, Mode, Params, Workload,
};
use crate::backends::Channel;
use crate::error::Error;
use crate::message::reply_seq;
use crate::results::{CaseResult, Throughput as Rate};
use crate::session::{PhaseCost, Session};
use crate::stats::LatencySummary;
use hdrhistogram::Histogram;

pub const ID: &str = "throughput";

pub struct Throughput;
pub static THROUGHPUT: Throughput = Throughput;

impl Workload for Throughput {
    fn id(&self) -> &'static str {
        ID
    }

    fn help(&self) -> &'static str {
        "one-way streaming of N messages, then one acknowledgement (messages/s, bytes/s)"
    }

    fn applies(&self, caps: &Capabilities) -> bool {
        caps.channel() && caps.streams
    }

    fn traffic(&self) -> crate::backends::Traffic {
        crate::backends::Traffic::OneWay
    }

    fn default_count(&self, size: usize, p: &Params) -> u64 {
        let quick = p.quick;
        match quick {
            true => by_budget(size, 256 << 20, 100, 50_000),
            false => by_budget(size, 4 << 30, 1_000, 1_000_000),
        }
    }

    fn estimate(&self, size: usize, warmup: u64, n: u64) -> Duration {
        cost::of(warmup + n, 1e3 + size as f64 * cost::NS_PER_BYTE, 0.0)
    }

    fn measure(
        &self,
        s: &mut Session,
        _p: &Params,
        warmup: u64,
        n: u64,
        r: &mut CaseResult,
    ) -> Result<(), Error> {
        stream(s, warmup)?;
        let (cost, one_way) = streamed(s, n)?;
        let secs = cost.elapsed.as_secs_f64().max(1e-9);
        let delivered = cost.delivered as f64;
        r.throughput = Some(Rate {
            msgs_per_sec: delivered / secs,
            bytes_per_sec: delivered * (s.size() as f64) / secs,
            elapsed_ns: cost.elapsed.as_nanos().min(u64::MAX as u128) as u64,
        });
        r.cpu = Some(per_unit(cost.cpu, n));
        r.one_way_ns = one_way;
        if s.lossy() {
            record_losses(r, n, cost.delivered);
        }
        Ok(())
    }

    fn bench(&self, s: &mut Session, _p: &Params, iters: u64) -> Result<Duration, Error> {
        Ok(stream(s, iters)?.elapsed)
    }

    fn fans_in(&self) -> bool {
        true
    }

    /// Every client streams; the server checks every message and answers only goodbyes.
    fn measure_fan_in(
        &self,
        fan: &mut crate::fanin::FanIn,
        p: &Params,
        r: &mut CaseResult,
    ) -> Result<crate::results::FanInResult, Error> {
        let f = super::clients::measure(fan, ID, p, false, false, true, r)?;
        r.throughput = Some(Rate {
            msgs_per_sec: f.msgs_per_sec,
            bytes_per_sec: f.msgs_per_sec * r.size as f64,
            elapsed_ns: f.window_ns,
        });
        Ok(f)
    }

    fn client(
        &self,
        end: &mut super::ChannelEnd,
        order: &super::clients::ClientOrder,
    ) -> Result<super::clients::ClientReport, DataError> {
        super::clients::flood(end, order)
    }

    fn serve(&self, end: &mut End, n: u64) -> Result<serde_json::Value, DataError> {
        let c = end.channel()?;
        let mode = c.mode();
        let (chan, bufs, seq) = (c.chan.as_mut(), &mut c.bufs, &mut c.seq);
        let mut one_way = crate::stats::new_histogram();
        let delivery = match mode {
            Mode::Raw => sink_raw(chan, bufs, n).map(|()| lossy::Delivery::all(n))?,
            Mode::Lossy => lossy::sink(chan, bufs, seq, n)?,
            Mode::Reliable => {
                sink(chan, bufs, seq, n, &mut one_way).map(|()| lossy::Delivery::all(n))?
            }
        };
        outcome(&SinkReport {
            delivery,
            one_way: (!one_way.is_empty()).then(|| crate::stats::summarize(&one_way)),
        })
    }
}

/// Streams `n` messages over a session and waits for the acknowledgement. For lossy
/// mechanisms the time runs to the acknowledgement if the last message arrived, otherwise
/// to the arrival of the last message that did (both processes share `CLOCK_MONOTONIC`).
pub fn stream(s: &mut Session, n: u64) -> Result<PhaseCost, Error> {
    streamed(s, n).map(|(cost, _)| cost)
}

/// `stream`, with the one-way times the receiver saw when messages carry their send time.
fn streamed(s: &mut Session, n: u64) -> Result<(PhaseCost, Option<LatencySummary>), Error> {
    if !s.lossy() {
        let (elapsed, cpu, report) = s.phase(ID, n, |end| {
            let c = end.channel()?;
            let (chan, bufs, seq) = (c.chan.as_mut(), &mut c.bufs, &mut c.seq);
            if c.info.verified {
                send_all(chan, bufs, seq, n)
            } else {
                stream_raw(chan, bufs, n)
            }
        })?;
        let report: SinkReport = super::decode_outcome(s.id(), report)?;
        let cost = PhaseCost {
            elapsed,
            cpu,
            delivered: n,
            lost: 0,
        };
        return Ok((cost, report.one_way));
    }
    let ((ack, start_ns), cpu, report) = s.phase(ID, n, |end| {
        let c = end.channel()?;
        lossy::stream(c.chan.as_mut(), &mut c.bufs, &mut c.seq, n)
    })?;
    let d = super::decode_outcome::<SinkReport>(s.id(), report)?.delivery;
    let elapsed = match ack {
        Some(t) if d.final_seen => t,
        _ if d.delivered > 0 => Duration::from_nanos(d.last_arrival_ns.saturating_sub(start_ns)),
        _ => {
            return Err(Error::DataPath {
                mechanism: s.id(),
                op: "delivery",
                seq: 0,
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("none of {n} messages of {} bytes arrived", s.size()),
                ),
            })
        }
    };
    let cost = PhaseCost {
        elapsed,
        cpu,
        delivered: d.delivered,
        lost: n.saturating_sub(d.delivered),
    };
    Ok((cost, None))
}

/// Parent side of streaming: `n` messages one way, then wait for the acknowledgement.
/// Returns the time from the first send to the acknowledgement.
pub fn send_all(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    seq: &mut u64,
    n: u64,
) -> Result<Duration, DataError> {
    let t0 = Instant::now();
    for _ in 0..n {
        bufs.send_timed(chan, *seq)?;
        *seq += 1;
    }
    bufs.receive(chan, reply_seq(*seq - 1))?;
    let elapsed = t0.elapsed();
    bufs.untime();
    Ok(elapsed)
}

/// Peer side of streaming: receive and check `n` messages, then acknowledge the last.
pub fn sink(
    chan: &mut dyn Channel,
    bufs: &mut Buffers,
    seq: &mut u64,
    n: u64,
    one_way: &mut Histogram<u64>,
) -> Result<(), DataError> {
    for _ in 0..n {
        if let Some(t) = bufs.receive_timed(chan, *seq)? {
            one_way.saturating_record(t.max(1));
        }
        *seq += 1;
    }
    bufs.send(chan, reply_seq(*seq - 1))
}

/// What the peer's half of a streaming phase reports: its deliveries and, where messages
/// carry their send time, the one-way times (the queueing delay inside the flood).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SinkReport {
    #[serde(flatten)]
    pub delivery: lossy::Delivery,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_way: Option<crate::stats::LatencySummary>,
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
