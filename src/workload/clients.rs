//! Fan-in (`--clients N`): the halves that workloads share when N client processes talk to
//! one server (this process) that serves them all from one thread.
//!
//! Every client runs over the same window of `CLOCK_MONOTONIC` (start and end are sent with
//! the order, so all begin together and the shares are comparable), then says goodbye: a
//! message whose sequence number carries `FIN`, answered by the server, after which nothing
//! of that client's is in flight. The server ends when every client has said goodbye.
//! A request says whose it is in its sequence number (`client << CLIENT_SHIFT`), so a
//! channel shared by all clients (one request queue, one datagram socket) needs no header.
//! The clients time and record; the server checks every message and answers.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{lossy, Buffers, ChannelEnd, DataError, Mode};
use crate::backends::fanin::Hub;
use crate::error::Error;
use crate::message::{reply_seq, stamp, VerifyError};
use crate::results::{CaseResult, ClientStats, FanInResult};
use crate::stats::{new_histogram, summarize};

/// Client `c`'s sequence numbers start at `c << CLIENT_SHIFT`.
pub const CLIENT_SHIFT: u32 = 40;
/// Set in a goodbye's sequence number.
pub const FIN: u64 = 1 << 39;
/// The most clients a run takes (`futex_waitv`'s limit, and far more than a small
/// machine's processes can share fairly).
pub const MAX_CLIENTS: usize = 128;
/// Descriptors each client costs this process: its three control pipes, its channel's
/// (up to three), and room for duplicates.
const FDS_PER_CLIENT: u64 = 8;

/// The most clients this process may start, and what bounds it.
pub fn max_clients() -> (usize, String) {
    use nix::sys::resource::{getrlimit, Resource};
    let mut best = (MAX_CLIENTS, format!("ipcbench's limit of {MAX_CLIENTS}"));
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let n = (soft.saturating_sub(64) / FDS_PER_CLIENT) as usize;
        if n < best.0 {
            best = (n, format!("RLIMIT_NOFILE is {soft} and each client needs about {FDS_PER_CLIENT} descriptors here; raise it with `ulimit -n`"));
        }
    }
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NPROC) {
        let n = soft.saturating_sub(64) as usize;
        if n < best.0 {
            best = (
                n,
                format!("RLIMIT_NPROC is {soft}; raise it with `ulimit -u`"),
            );
        }
    }
    best
}

/// Smallest message that carries its client's number (one 8-byte sequence word).
pub const MIN_SIZE: usize = 8;
/// Round trips or sends between two reads of the clock.
const CHUNK: u64 = 16;

/// What a client is told for one phase.
#[derive(Clone, Copy, Debug)]
pub struct ClientOrder {
    pub index: usize,
    pub clients: usize,
    pub start_ns: u64,
    pub end_ns: u64,
    /// The total offered rate (open-loop workloads), split evenly across clients, and
    /// how requests are spaced.
    pub rate: f64,
    pub arrivals: super::Arrivals,
}

impl ClientOrder {
    /// This client's first sequence number.
    pub fn base(&self) -> u64 {
        (self.index as u64) << CLIENT_SHIFT
    }
}

/// What a client reports after a phase.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClientReport {
    /// Round trips completed (latency) or messages sent (throughput) in the window.
    pub messages: u64,
    /// Round trips lost (datagram mechanisms).
    #[serde(default)]
    pub lost: u64,
    /// From the window's start to the last round trip before the goodbye (latency), or to
    /// the goodbye's answer (throughput: the server has then taken everything).
    pub elapsed_ns: u64,
    /// The recorded latencies as (value, count) pairs, for the parent to merge.
    #[serde(default)]
    pub hist: Vec<[u64; 2]>,
    /// Open loop: how late each send was against its schedule, as (value, count) pairs,
    /// and whether this client kept its schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lag: Vec<[u64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturated: Option<bool>,
    /// CPU of the client's other threads (an open loop's receive thread): the phase's own
    /// account covers only the thread that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_threads_cpu: Option<crate::sys::CpuUsage>,
}

impl ClientReport {
    fn histogram(&self) -> Histogram<u64> {
        histogram(&self.hist)
    }
}

fn histogram(pairs: &[[u64; 2]]) -> Histogram<u64> {
    let mut h = new_histogram();
    for &[v, n] in pairs {
        let _ = h.record_n(v, n);
    }
    h
}

/// A histogram as (value, count) pairs, for a client's report.
pub(crate) fn pairs(h: &Histogram<u64>) -> Vec<[u64; 2]> {
    h.iter_recorded()
        .map(|v| [v.value_iterated_to(), v.count_at_value()])
        .collect()
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `t_ns` (a client that got its order late starts
/// at once).
pub(crate) fn wait_for(t_ns: u64) {
    let now = lossy::monotonic_ns();
    if t_ns > now {
        std::thread::sleep(std::time::Duration::from_nanos(t_ns - now));
    }
}

fn unsupported(what: &str) -> DataError {
    DataError::Io {
        op: "run",
        seq: 0,
        source: std::io::Error::new(std::io::ErrorKind::Unsupported, what.to_string()),
    }
}

/// Latency client: closed-loop round trips over the window, each timed and recorded.
pub fn closed_loop(c: &mut ChannelEnd, order: &ClientOrder) -> Result<ClientReport, DataError> {
    let mode = c.mode();
    c.seq = order.base();
    let mut hist = new_histogram();
    let (mut done, mut lost) = (0u64, 0u64);
    wait_for(order.start_ns);
    let t0 = lossy::monotonic_ns();
    let mut now = t0;
    while now < order.end_ns {
        let (chan, bufs, seq) = (c.chan.as_mut(), &mut c.bufs, &mut c.seq);
        match mode {
            Mode::Reliable => {
                super::latency::ping(chan, bufs, seq, CHUNK, Some(&mut hist))?;
            }
            Mode::Lossy => lost += lossy::ping(chan, bufs, seq, CHUNK, Some(&mut hist))?.1,
            Mode::Raw => return Err(unsupported("a calibration loop has no fan-in")),
        }
        done += CHUNK;
        now = lossy::monotonic_ns();
    }
    goodbye(c, order, mode)?;
    Ok(ClientReport {
        messages: done - lost,
        lost,
        elapsed_ns: now - t0,
        hist: pairs(&hist),
        ..Default::default()
    })
}

/// Throughput client: sends back to back over the window, each message carrying its send
/// time (the server records the queueing delay); the goodbye's answer says the server has
/// taken everything. Over datagrams the server's count of what arrived is the
/// client's share, and the rest were lost.
pub fn flood(c: &mut ChannelEnd, order: &ClientOrder) -> Result<ClientReport, DataError> {
    let mode = c.mode();
    if mode == Mode::Raw {
        return Err(unsupported("a calibration loop has no fan-in"));
    }
    c.seq = order.base();
    let mut sent = 0u64;
    wait_for(order.start_ns);
    let t0 = lossy::monotonic_ns();
    let mut now = t0;
    while now < order.end_ns {
        for _ in 0..CHUNK {
            c.bufs.send_timed(c.chan.as_mut(), c.seq)?;
            c.seq += 1;
        }
        sent += CHUNK;
        now = lossy::monotonic_ns();
    }
    c.bufs.untime();
    goodbye(c, order, mode)?;
    // To the goodbye's answer: everything sent has then been taken and checked.
    now = lossy::monotonic_ns();
    Ok(ClientReport {
        messages: sent,
        lost: 0,
        elapsed_ns: now - t0,
        ..Default::default()
    })
}

/// Sends this client's goodbye and waits for its answer. Over datagrams either may be
/// lost, so it is sent again a few times, and late answers to earlier requests are skipped.
pub(crate) fn goodbye(
    c: &mut ChannelEnd,
    order: &ClientOrder,
    mode: Mode,
) -> Result<(), DataError> {
    let fin = order.base() | FIN;
    let (chan, bufs) = (c.chan.as_mut(), &mut c.bufs);
    if mode != Mode::Lossy {
        bufs.send(chan, fin)?;
        return bufs.receive(chan, reply_seq(fin));
    }
    chan.set_recv_timeout(Some(lossy::GRACE))
        .map_err(DataError::io("bound the receive of", fin))?;
    for _ in 0..5 {
        bufs.send(chan, fin)?;
        loop {
            match chan.recv(&mut bufs.rx) {
                Ok(n) if n >= 8 && bufs.rx[..8] == reply_seq(fin).to_le_bytes() => {
                    return bufs.check(n, reply_seq(fin));
                }
                Ok(_) => continue,
                Err(_) => break,
            }
        }
    }
    // The server may have ended on our earlier goodbye and its answer was lost.
    Ok(())
}

/// What the server saw in a phase.
#[derive(Debug)]
pub struct Served {
    /// Messages taken from each client (goodbyes excluded).
    pub received: Vec<u64>,
    /// Send to receive of the requests that carried their send time, ns.
    pub one_way: Histogram<u64>,
}

/// How the server treats a phase's requests.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// Datagrams: gaps in a client's sequence are losses, not failures.
    pub mode: Mode,
    /// Round trips: every request is answered (streams: only the goodbyes).
    pub reply_all: bool,
    /// Requests carry their send time (`send_timed`): checked around it and recorded.
    pub stamped: bool,
}

/// The server: takes requests from every client, checks each, answers each (`reply_all`,
/// for round trips) or only the goodbyes (streams), until all `clients` said goodbye.
/// Over reliable channels each client's messages must arrive in order, none missing.
pub fn serve(
    hub: &mut dyn Hub,
    bufs: &mut Buffers,
    clients: usize,
    rules: Rules,
) -> Result<Served, DataError> {
    let Rules {
        mode,
        reply_all,
        stamped,
    } = rules;
    let mut one_way = new_histogram();
    let mut received = vec![0u64; clients];
    let mut next = vec![0u64; clients];
    let mut said_goodbye = vec![false; clients];
    let mut left = clients;
    let mask = (1u64 << CLIENT_SHIFT) - 1;
    while left > 0 {
        let (n, from) = hub
            .recv(&mut bufs.rx)
            .map_err(DataError::io("receive", 0))?;
        let mut head = [0u8; 8];
        let k = n.min(8).min(bufs.rx.len());
        head[..k].copy_from_slice(&bufs.rx[..k]);
        let seq = u64::from_le_bytes(head);
        let client = (seq >> CLIENT_SHIFT) as usize;
        let expected = |c: usize| ((c as u64) << CLIENT_SHIFT) + next[c];
        if client >= clients || from.is_some_and(|f| f != client) {
            let owner = from.unwrap_or(0).min(clients - 1);
            return Err(DataError::Verify(VerifyError::Sequence {
                expected: expected(owner),
                got: format!("#{seq} (not a message of client {owner})"),
            }));
        }
        let own = seq & mask;
        if own & FIN != 0 {
            bufs.check(n, seq)?;
            if !said_goodbye[client] {
                said_goodbye[client] = true;
                left -= 1;
            }
        } else {
            if mode == Mode::Reliable && own != next[client] {
                return Err(DataError::Verify(VerifyError::Sequence {
                    expected: expected(client),
                    got: format!("#{seq}"),
                }));
            }
            if stamped {
                if let Some(t) = bufs.check_timed(n, seq)? {
                    one_way.saturating_record(t.max(1));
                }
            } else {
                bufs.check(n, seq)?;
            }
            next[client] = own + 1;
            received[client] += 1;
            if !reply_all {
                continue;
            }
        }
        stamp(&mut bufs.tx, reply_seq(seq));
        hub.send(client, &bufs.tx)
            .map_err(DataError::io("send", reply_seq(seq)))?;
    }
    Ok(Served { received, one_way })
}

/// Fills a fan-in case's result from the clients' reports: the merged latency histogram
/// (round trips), aggregate messages per second over the window, each client's share and
/// percentiles, and fairness (the smallest client's count over the largest's).
pub fn fold(
    id: &'static str,
    r: &mut CaseResult,
    reports: &[ClientReport],
    window_ns: u64,
    timed: bool,
) -> Result<FanInResult, Error> {
    let mut merged = new_histogram();
    let mut per_client = Vec::with_capacity(reports.len());
    for rep in reports {
        let h = rep.histogram();
        let _ = merged.add(&h);
        let secs = (rep.elapsed_ns.max(1)) as f64 / 1e9;
        per_client.push(ClientStats {
            messages: rep.messages,
            msgs_per_sec: rep.messages as f64 / secs,
            p50_ns: (timed && !h.is_empty()).then(|| h.value_at_quantile(0.5)),
            p99_ns: (timed && !h.is_empty()).then(|| h.value_at_quantile(0.99)),
            lost: (rep.lost > 0).then_some(rep.lost),
        });
    }
    let total: u64 = reports.iter().map(|r| r.messages).sum();
    if total == 0 {
        return Err(Error::DataPath {
            mechanism: id,
            op: "delivery",
            seq: 0,
            source: std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no client completed a message in the window",
            ),
        });
    }
    let (lo, hi) = per_client.iter().fold((u64::MAX, 0), |(lo, hi), c| {
        (lo.min(c.messages), hi.max(c.messages))
    });
    if timed && !merged.is_empty() {
        r.rtt_ns = Some(summarize(&merged));
    }
    r.messages = total;
    let lost: u64 = reports.iter().map(|r| r.lost).sum();
    if lost > 0 {
        super::record_losses(r, total + lost, total);
    }
    Ok(FanInResult {
        clients: reports.len(),
        server_cpu: None,
        client_cpus: Vec::new(),
        msgs_per_sec: total as f64 / (window_ns.max(1) as f64 / 1e9),
        fairness: lo as f64 / hi.max(1) as f64,
        window_ns,
        per_client,
    })
}

/// The measured window of a fan-in phase, and its unrecorded warm-up before it.
pub fn windows(quick: bool) -> (std::time::Duration, std::time::Duration) {
    use std::time::Duration;
    match quick {
        true => (Duration::from_millis(50), Duration::from_millis(300)),
        false => (Duration::from_millis(200), Duration::from_secs(2)),
    }
}

/// The parent half every fan-in workload shares: a warm-up window, the measured window
/// with the server answering every request (`reply_all`) or only goodbyes, then the
/// clients' reports folded into `r` (their latencies when `latencies`; the requests'
/// one-way times when `stamped`), CPU per message of all processes, and where each ran.
pub fn measure(
    fan: &mut crate::fanin::FanIn,
    workload: &'static str,
    p: &super::Params,
    reply_all: bool,
    latencies: bool,
    stamped: bool,
    r: &mut CaseResult,
) -> Result<FanInResult, Error> {
    let id = fan.id();
    let rules = Rules {
        mode: fan.mode(),
        reply_all,
        stamped,
    };
    let (warm, window) = windows(p.quick);
    let serve_all =
        move |hub: &mut dyn Hub, bufs: &mut Buffers, n: usize| serve(hub, bufs, n, rules);
    fan.phase(workload, warm, p, serve_all)?;
    let phase = fan.phase(workload, window, p, serve_all)?;
    let mut cpu = phase.server_cpu;
    let mut reports = Vec::with_capacity(phase.clients.len());
    for (i, (c, v)) in phase.clients.into_iter().enumerate() {
        let mut report = super::decode_outcome::<ClientReport>(id, v)?;
        if !reply_all {
            // A stream's share is what the server took; over datagrams the rest was lost.
            let took = phase.served.received.get(i).copied().unwrap_or(0);
            report.lost = report.messages.saturating_sub(took);
            report.messages = took;
        }
        cpu = cpu
            .plus(c)
            .plus(report.other_threads_cpu.unwrap_or_default());
        reports.push(report);
    }
    let window_ns = reports.iter().map(|r| r.elapsed_ns).max().unwrap_or(0);
    let mut f = fold(id, r, &reports, window_ns, latencies)?;
    if !phase.served.one_way.is_empty() {
        r.one_way_ns = Some(summarize(&phase.served.one_way));
    }
    if reports.iter().any(|c| !c.lag.is_empty()) {
        let mut lag = new_histogram();
        for c in &reports {
            let _ = lag.add(histogram(&c.lag));
        }
        let achieved = f.msgs_per_sec;
        r.rate = Some(crate::results::RateResult {
            offered_per_sec: p.rate,
            achieved_per_sec: achieved,
            send_lag_ns: crate::results::LagSummary {
                p50: lag.value_at_quantile(0.5),
                p99: lag.value_at_quantile(0.99),
                max: lag.max(),
            },
            saturated: achieved < 0.95 * p.rate
                || reports.iter().any(|c| c.saturated == Some(true)),
        });
    }
    r.cpu = Some(super::per_unit(cpu, r.messages));
    r.warmup = 0;
    (f.server_cpu, f.client_cpus) = fan.placement();
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::fanin::SharedAbort;
    use crate::error::BackendError;
    use crate::message::Verify;
    use std::collections::VecDeque;
    use std::io;
    use std::sync::Arc;

    /// A hub fed with prepared requests; it keeps what the server answers.
    struct Script {
        requests: VecDeque<(Vec<u8>, Option<usize>)>,
        answers: Vec<(usize, u64)>,
    }

    impl Hub for Script {
        fn recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<usize>)> {
            let (m, from) = self
                .requests
                .pop_front()
                .ok_or(io::ErrorKind::UnexpectedEof)?;
            buf[..m.len()].copy_from_slice(&m);
            Ok((m.len(), from))
        }
        fn send(&mut self, client: usize, msg: &[u8]) -> io::Result<()> {
            let mut w = [0u8; 8];
            w.copy_from_slice(&msg[..8]);
            self.answers.push((client, u64::from_le_bytes(w)));
            Ok(())
        }
        fn abort_handle(&self) -> SharedAbort {
            Arc::new(|| {})
        }
        fn clients_attached(&mut self) -> Result<(), BackendError> {
            Ok(())
        }
    }

    fn rules(mode: Mode, reply_all: bool) -> Rules {
        Rules {
            mode,
            reply_all,
            stamped: false,
        }
    }

    fn message(seq: u64) -> Vec<u8> {
        let mut m = vec![0u8; 64];
        crate::message::fill_base(&mut m);
        stamp(&mut m, seq);
        m
    }

    fn order(index: usize) -> ClientOrder {
        ClientOrder {
            index,
            clients: 2,
            start_ns: 0,
            end_ns: 0,
            rate: 0.0,
            arrivals: crate::workload::Arrivals::Even,
        }
    }

    fn script(seqs: &[(u64, Option<usize>)]) -> Script {
        Script {
            requests: seqs.iter().map(|&(s, from)| (message(s), from)).collect(),
            answers: Vec::new(),
        }
    }

    #[test]
    fn the_server_answers_each_client_and_ends_after_every_goodbye() {
        let (a, b) = (order(0).base(), order(1).base());
        let mut hub = script(&[
            (a, None),
            (b, None),
            (a + 1, None),
            (b | FIN, None),
            (a + 2, None),
            (a | FIN, None),
        ]);
        let mut bufs = Buffers::new(64, Verify::Full);
        let served = serve(&mut hub, &mut bufs, 2, rules(Mode::Reliable, true)).unwrap();
        assert_eq!(served.received, [3, 1]);
        let to: Vec<usize> = hub.answers.iter().map(|a| a.0).collect();
        assert_eq!(to, [0, 1, 0, 1, 0, 0]);
        assert_eq!(hub.answers[1].1, reply_seq(b));
        assert_eq!(hub.answers[3].1, reply_seq(b | FIN));
    }

    #[test]
    fn a_stream_is_answered_only_at_its_goodbye() {
        let a = order(0).base();
        let mut hub = script(&[(a, Some(0)), (a + 1, Some(0)), (a | FIN, Some(0))]);
        let mut bufs = Buffers::new(64, Verify::Full);
        let served = serve(&mut hub, &mut bufs, 1, rules(Mode::Reliable, false)).unwrap();
        assert_eq!(served.received, [2]);
        assert_eq!(hub.answers, [(0, reply_seq(a | FIN))]);
    }

    #[test]
    fn a_gap_a_stranger_or_a_corrupt_byte_fails_the_server() {
        let (a, b) = (order(0).base(), order(1).base());
        let mut bufs = Buffers::new(64, Verify::Full);
        // Message 1 of client 0 missing.
        let mut hub = script(&[(a, None), (a + 2, None)]);
        let e = serve(&mut hub, &mut bufs, 2, rules(Mode::Reliable, true)).unwrap_err();
        assert!(e.to_string().contains(&format!("#{}", a + 2)), "{e}");
        // A message of client 1 on client 0's connection.
        let mut hub = script(&[(b, Some(0))]);
        let e = serve(&mut hub, &mut bufs, 2, rules(Mode::Reliable, true)).unwrap_err();
        assert!(e.to_string().contains("not a message of client 0"), "{e}");
        // A client number beyond the run's.
        let mut hub = script(&[(order(5).base(), None)]);
        assert!(serve(&mut hub, &mut bufs, 2, rules(Mode::Reliable, true)).is_err());
        // One flipped byte in the middle.
        let mut m = message(a);
        m[30] ^= 1;
        let mut hub = Script {
            requests: VecDeque::from([(m, None)]),
            answers: Vec::new(),
        };
        let e = serve(&mut hub, &mut bufs, 2, rules(Mode::Reliable, true)).unwrap_err();
        assert!(e.to_string().contains("corrupted"), "{e}");
        // Over datagrams a gap is a loss, not a failure.
        let mut hub = script(&[(a, None), (a + 2, None), (a | FIN, None), (b | FIN, None)]);
        let served = serve(&mut hub, &mut bufs, 2, rules(Mode::Lossy, true)).unwrap();
        assert_eq!(served.received, [2, 0]);
    }

    #[test]
    fn fairness_and_the_aggregate_come_from_every_client() {
        let mut h = new_histogram();
        h.record_n(10_000, 90).unwrap();
        h.record_n(50_000, 10).unwrap();
        let rep = |n: u64| ClientReport {
            messages: n,
            lost: 0,
            elapsed_ns: 1_000_000_000,
            hist: pairs(&h),
            ..Default::default()
        };
        let mut r: CaseResult = serde_json::from_value(serde_json::json!({
            "mechanism": "m", "workload": "latency", "size": 64, "messages": 0,
            "warmup": 0, "status": "ok"
        }))
        .unwrap();
        let f = fold("m", &mut r, &[rep(100), rep(50)], 1_000_000_000, true).unwrap();
        assert_eq!(f.fairness, 0.5);
        assert_eq!(f.msgs_per_sec, 150.0);
        assert_eq!(r.messages, 150);
        assert_eq!(
            r.rtt_ns.as_ref().map(|s| s.p50),
            Some(h.value_at_quantile(0.5))
        );
        assert!(f.per_client[0].p99_ns.unwrap() >= 50_000);
        assert!(fold("m", &mut r, &[rep(0)], 1, true).is_err());
    }
}
