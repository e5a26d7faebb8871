//! One established channel between this process and a live peer: start it, drive the
//! workloads over it, end it. The CLI sweep and the criterion benches both use this.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::backends::shm::Segment;
use crate::backends::{Channel, ChannelParams, Mechanism, MechanismInfo, Rendezvous};
use crate::error::Error;
use crate::message::Verify;
use crate::peer::{Launch, Peer, PhaseReport};
use crate::placement::Placement;
use crate::sys::CpuUsage;
use crate::workload::{self, lossy, Buffers, DataError};

/// How sessions run: the same for every case of a sweep.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    pub verify: Verify,
    pub placement: Placement,
    /// This executable (or the one cargo built for benches and tests), run as the peer.
    pub peer_exe: PathBuf,
    /// Bound on every wait for the peer.
    pub timeout: Duration,
    /// `SO_RCVBUF` for datagram mechanisms' receiving sockets.
    pub rcvbuf: Option<usize>,
    /// Bytes per shared-memory ring and the segment kind.
    pub shm_ring: usize,
    pub shm_segment: Segment,
}

impl SessionOptions {
    /// Options with defaults for everything but what must be chosen.
    pub fn new(
        verify: Verify,
        placement: Placement,
        peer_exe: PathBuf,
        timeout: Duration,
    ) -> SessionOptions {
        SessionOptions {
            verify,
            placement,
            peer_exe,
            timeout,
            rcvbuf: None,
            shm_ring: crate::backends::shm::DEFAULT_RING,
            shm_segment: Segment::Posix,
        }
    }

    /// The channel parameters a case of `size` bytes runs with.
    pub fn params(&self, size: usize) -> ChannelParams {
        ChannelParams {
            size,
            rcvbuf: self.rcvbuf,
            shm_ring: self.shm_ring,
            shm_segment: self.shm_segment,
            pin: self.placement.pin,
        }
    }
}

pub struct Session {
    /// The mechanism: its id, whether it may lose messages, whether it is checked at all.
    info: &'static MechanismInfo,
    /// What the peer was told to open (names, ids, ports): for leak checks and diagnostics.
    peer_spec: String,
    size: usize,
    // The peer goes first (fields drop in order): a channel is always dropped after the peer
    // has exited or been killed, so its cleanup sees everything the peer held released.
    peer: Peer,
    chan: Box<dyn Channel>,
    bufs: Buffers,
    seq: u64,
}

/// What a timed phase cost and delivered.
#[derive(Clone, Copy, Debug)]
pub struct PhaseCost {
    pub elapsed: Duration,
    /// CPU both processes spent in the phase.
    pub cpu: CpuUsage,
    /// Messages (round trips for latency) that completed; the rest were lost.
    pub delivered: u64,
    pub lost: u64,
}

impl Session {
    /// Pins this thread, creates the mechanism's objects, starts the peer and waits until
    /// both sides hold the channel (names are removed at that point).
    pub fn start(
        mechanism: &'static dyn Mechanism,
        size: usize,
        opts: &SessionOptions,
    ) -> Result<Session, Error> {
        let info = mechanism.info();
        let id = info.id;
        pin(opts)?;
        let offer = mechanism.offer(&opts.params(size))?;
        let peer_spec = offer.spec.clone();
        let peer_err = |source| Error::Peer {
            mechanism: id,
            source,
        };
        let mut peer = spawn(id, size, offer.spec, offer.inherit, opts)?;
        let connected = {
            let gone = || peer.has_exited();
            let rv = Rendezvous {
                deadline: Instant::now() + opts.timeout,
                peer_gone: &gone,
            };
            (offer.connect)(&rv)
        };
        let chan = match connected {
            Ok(c) => c,
            // The peer's own account (e.g. it refused the object) explains more.
            Err(e) => return Err(peer.diagnose().map(peer_err).unwrap_or(Error::Backend(e))),
        };
        if let Some(abort) = chan.abort_handle() {
            peer.on_exit(abort);
        }
        // From here on, any failure drops the session: the peer first, then the channel.
        let mut session = Session {
            info,
            peer_spec,
            size,
            peer,
            chan,
            bufs: Buffers::new(size, opts.verify),
            seq: 0,
        };
        session.peer.expect("ready").map_err(peer_err)?;
        session.chan.peer_attached()?;
        Ok(session)
    }

    /// What the peer was told to open: a path, queue names or ids, a port.
    pub fn peer_spec(&self) -> &str {
        &self.peer_spec
    }

    /// The peer's process id.
    pub fn peer_pid(&self) -> Option<u32> {
        self.peer.pid()
    }

    /// `n` round trips; each completed one is recorded in `hist` when given.
    pub fn round_trips(
        &mut self,
        n: u64,
        hist: Option<&mut Histogram<u64>>,
    ) -> Result<PhaseCost, Error> {
        let (lossy, verified) = (self.info.lossy, self.info.verified);
        let (elapsed, lost, cpu, _) = self.phase(&format!("echo {n}"), |chan, bufs, seq| {
            if !verified {
                workload::ping_raw(chan, bufs, n, hist).map(|d| (d, 0))
            } else if lossy {
                lossy::ping(chan, bufs, seq, n, hist)
            } else {
                workload::ping(chan, bufs, seq, n, hist).map(|d| (d, 0))
            }
        })?;
        Ok(PhaseCost {
            elapsed,
            cpu,
            delivered: n - lost,
            lost,
        })
    }

    /// Streams `n` messages and waits for the acknowledgement. For lossy mechanisms the
    /// time runs to the acknowledgement if the last message arrived, otherwise to the
    /// arrival of the last message that did (both processes share `CLOCK_MONOTONIC`).
    pub fn stream(&mut self, n: u64) -> Result<PhaseCost, Error> {
        if !self.info.lossy {
            let verified = self.info.verified;
            let (elapsed, _, cpu, _) = self.phase(&format!("sink {n}"), |chan, bufs, seq| {
                if verified {
                    workload::stream(chan, bufs, seq, n).map(|d| (d, 0))
                } else {
                    workload::stream_raw(chan, bufs, n).map(|d| (d, 0))
                }
            })?;
            return Ok(PhaseCost {
                elapsed,
                cpu,
                delivered: n,
                lost: 0,
            });
        }
        let mut start_ns = 0;
        let (ack, _, cpu, report) = self.phase(&format!("sink {n}"), |chan, bufs, seq| {
            let (ack, t0) = lossy::stream(chan, bufs, seq, n)?;
            start_ns = t0;
            Ok((ack, 0))
        })?;
        let d = report.delivery;
        let elapsed = match ack {
            Some(t) if d.final_seen => t,
            _ if d.delivered > 0 => {
                Duration::from_nanos(d.last_arrival_ns.saturating_sub(start_ns))
            }
            _ => {
                return Err(Error::DataPath {
                    mechanism: self.info.id,
                    op: "delivery",
                    seq: self.seq.saturating_sub(n),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("none of {n} messages of {} bytes arrived", self.size),
                    ),
                })
            }
        };
        Ok(PhaseCost {
            elapsed,
            cpu,
            delivered: d.delivered,
            lost: n.saturating_sub(d.delivered),
        })
    }

    /// Tells the peer to exit and checks that it did so cleanly.
    pub fn finish(self) -> Result<(), Error> {
        let id = self.info.id;
        let quit = self.peer.quit().map_err(|source| Error::Peer {
            mechanism: id,
            source,
        });
        drop(self.chan);
        quit
    }

    /// Runs one timed phase: the order to the peer, the loop, the peer's report.
    fn phase<T>(
        &mut self,
        order: &str,
        run: impl FnOnce(&mut dyn Channel, &mut Buffers, &mut u64) -> Result<(T, u64), DataError>,
    ) -> Result<(T, u64, CpuUsage, PhaseReport), Error> {
        let (chan, bufs, seq) = (self.chan.as_mut(), &mut self.bufs, &mut self.seq);
        let ((value, lost), cpu, report) =
            timed_phase(self.info.id, &mut self.peer, order, || run(chan, bufs, seq))?;
        Ok((value, lost, cpu, report))
    }
}

/// Binds this thread where the placement puts the parent.
fn pin(opts: &SessionOptions) -> Result<(), Error> {
    opts.placement.apply_parent().map_err(|source| Error::Pin {
        cpu: opts.placement.parent_cpu.unwrap_or(0),
        source,
    })
}

/// Starts the peer for `id` with what the parent's offer gives it.
fn spawn(
    id: &'static str,
    size: usize,
    spec: String,
    inherit: Vec<std::os::fd::OwnedFd>,
    opts: &SessionOptions,
) -> Result<Peer, Error> {
    let launch = Launch {
        exe: &opts.peer_exe,
        mechanism: id,
        size,
        verify: opts.verify,
        cpu: opts.placement.peer_cpu,
        spec,
        inherit,
    };
    Peer::spawn(launch, opts.timeout).map_err(|source| Error::Peer {
        mechanism: id,
        source,
    })
}

/// One timed phase, whichever kind of session runs it: the order to the peer and its `go`,
/// the loop under the watchdog with this thread's CPU measured around it, then the peer's
/// `done` report. The peer's CPU is added to ours.
fn timed_phase<T>(
    id: &'static str,
    peer: &mut Peer,
    order: &str,
    run: impl FnOnce() -> Result<T, DataError>,
) -> Result<(T, CpuUsage, PhaseReport), Error> {
    let peer_err = |source| Error::Peer {
        mechanism: id,
        source,
    };
    peer.command(order).map_err(peer_err)?;
    peer.expect("go").map_err(peer_err)?;
    peer.arm();
    let before = CpuUsage::thread();
    let result = run();
    let after = CpuUsage::thread();
    peer.disarm();
    let value = result.map_err(|e| explain(id, peer, e))?;
    let report = PhaseReport::decode(&peer.expect("done").map_err(peer_err)?).map_err(peer_err)?;
    let ours = match (before, after) {
        (Ok(b), Ok(a)) => a.since(b),
        _ => CpuUsage::default(),
    };
    Ok((value, ours.plus(report.cpu), report))
}

/// Turns a data-path failure into the most precise error: a peer that detected bad data,
/// died or hung explains an I/O error on our side better than the error itself.
fn explain(id: &'static str, peer: &mut Peer, e: DataError) -> Error {
    match e {
        DataError::Verify(source) => Error::Verify {
            mechanism: id,
            side: "parent",
            source,
        },
        DataError::Io { op, seq, source } => match peer.diagnose() {
            Some(pe) => Error::Peer {
                mechanism: id,
                source: pe,
            },
            None => Error::DataPath {
                mechanism: id,
                op,
                seq,
                source,
            },
        },
    }
}

/// A synchronisation primitive shared with a live peer: the same start, bounded waits and
/// error reporting as `Session`, driving the hand-off and lock workloads.
pub struct SyncSession {
    primitive: &'static dyn crate::backends::sync::Primitive,
    // As in `Session`: the peer goes before the objects it shares.
    peer: Peer,
    end: Box<dyn crate::backends::sync::SyncEnd>,
}

/// The lock workload's counts: acquisitions and writes of this process and of the peer.
#[derive(Clone, Copy, Debug)]
pub struct LockCounts {
    pub ours: (u64, u64),
    pub theirs: (u64, u64),
    pub counter: u64,
}

impl SyncSession {
    pub fn start(
        primitive: &'static dyn crate::backends::sync::Primitive,
        opts: &SessionOptions,
    ) -> Result<SyncSession, Error> {
        let id = primitive.info().id;
        pin(opts)?;
        let offer = crate::backends::sync::offer(primitive)?;
        let mut end = offer.end;
        let peer = spawn(id, 1, offer.spec, offer.inherit, opts)?;
        if let Some(pid) = peer.pid() {
            end.set_peer(pid as i32);
        }
        peer.on_exit(end.abort_handle());
        let mut session = SyncSession {
            primitive,
            peer,
            end,
        };
        session.peer.expect("ready").map_err(|source| Error::Peer {
            mechanism: id,
            source,
        })?;
        session.end.peer_attached()?;
        Ok(session)
    }

    pub fn peer_pid(&self) -> Option<u32> {
        self.peer.pid()
    }

    fn id(&self) -> &'static str {
        self.primitive.info().id
    }

    /// Runs one timed phase over this primitive (see `timed_phase`).
    fn phase<T>(
        &mut self,
        order: &str,
        run: impl FnOnce(&mut dyn crate::backends::sync::SyncEnd) -> Result<T, DataError>,
    ) -> Result<(T, CpuUsage, PhaseReport), Error> {
        let end = self.end.as_mut();
        timed_phase(self.primitive.info().id, &mut self.peer, order, || run(end))
    }

    /// `n` turn pairs, each timed into `hist` when given.
    pub fn handoff(
        &mut self,
        n: u64,
        hist: Option<&mut Histogram<u64>>,
    ) -> Result<PhaseCost, Error> {
        let (elapsed, cpu, _) = self.phase(&format!("handoff {n}"), |end| {
            workload::sync::handoff_parent(end, n, hist)
        })?;
        Ok(PhaseCost {
            elapsed,
            cpu,
            delivered: n,
            lost: 0,
        })
    }

    /// Both processes contend for `duration`; the counter must equal all their writes.
    pub fn lock(&mut self, duration: Duration) -> Result<(LockCounts, CpuUsage), Error> {
        let id = self.id();
        let write_one_in = self.primitive.info().write_one_in;
        let start = self
            .end
            .page()
            .counter()
            .load(std::sync::atomic::Ordering::Acquire);
        let (ours, cpu, report) = self.phase(&format!("lock {}", duration.as_millis()), |end| {
            workload::sync::lock_loop(end, duration, write_one_in)
        })?;
        // The peer's done line carries its acquisitions and writes in the delivery fields.
        let theirs = (report.delivery.delivered, report.delivery.last_arrival_ns);
        let counter = self
            .end
            .page()
            .counter()
            .load(std::sync::atomic::Ordering::Acquire)
            - start;
        if counter != ours.1 + theirs.1 {
            return Err(Error::DataPath {
                mechanism: id,
                op: "lock",
                seq: counter,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "lost updates: the counter reads {counter} after {} writes under the lock",
                        ours.1 + theirs.1
                    ),
                ),
            });
        }
        Ok((
            LockCounts {
                ours,
                theirs,
                counter,
            },
            cpu,
        ))
    }

    /// One process alone (the peer idles): nanoseconds per lock/unlock pair.
    pub fn uncontended(&mut self, n: u64) -> Result<f64, Error> {
        let id = self.id();
        workload::sync::uncontended(self.end.as_mut(), n)
            .map_err(|e| explain(id, &mut self.peer, e))
    }

    /// Test hook: the peer takes the lock and keeps it until killed.
    pub fn peer_holds_lock(&mut self) -> Result<(), Error> {
        let id = self.id();
        let peer_err = |source| Error::Peer {
            mechanism: id,
            source,
        };
        self.peer.command("hold").map_err(peer_err)?;
        self.peer.expect("holding").map_err(peer_err)?;
        Ok(())
    }

    /// Takes and releases the lock once (to observe a dead holder's recovery).
    pub fn lock_once(&mut self) -> Result<(), Error> {
        let r = self.end.lock(true).and_then(|()| self.end.unlock(true));
        r.map_err(|source| Error::DataPath {
            mechanism: self.id(),
            op: "lock",
            seq: 0,
            source,
        })
    }

    pub fn finish(self) -> Result<(), Error> {
        let id = self.id();
        let quit = self.peer.quit().map_err(|source| Error::Peer {
            mechanism: id,
            source,
        });
        drop(self.end);
        quit
    }
}
