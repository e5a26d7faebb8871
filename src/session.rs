//! One subject (a channel or a synchronisation primitive) shared between this process and a
//! live peer: start it, run workload phases over it, end it. The CLI sweep, the floor, the
//! core-to-core map and the criterion benches all use this; no workload is named here.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::backends::shm::Segment;
use crate::backends::{ChannelParams, Rendezvous, Traffic};
use crate::error::Error;
use crate::message::Verify;
use crate::peer::protocol::Order;
use crate::peer::{Launch, Peer};
use crate::placement::Placement;
use crate::subject::Subject;
use crate::sys::CpuUsage;
use crate::workload::{Buffers, ChannelEnd, DataError, End, SyncSide};

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
    pub shm_huge: bool,
    pub shm_read: crate::backends::shm::Read,
    /// `shm-adaptive`'s spin budget (ns): `--spin-us`, or set by the run from its floor.
    pub spin_ns: Option<u64>,
    /// What the case's workload sends (set per case by the runner).
    pub traffic: Traffic,
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
            shm_ring: 0,
            shm_segment: Segment::Posix,
            shm_huge: false,
            shm_read: crate::backends::shm::Read::Copy,
            spin_ns: None,
            traffic: Traffic::Exchange,
        }
    }

    /// These options for a case of workload `w`.
    pub fn for_workload(&self, w: &dyn crate::workload::Workload) -> SessionOptions {
        SessionOptions {
            traffic: w.traffic(),
            ..self.clone()
        }
    }

    /// The channel parameters a case of `size` bytes runs with.
    pub fn params(&self, size: usize) -> ChannelParams {
        ChannelParams {
            size,
            rcvbuf: self.rcvbuf,
            shm_ring: crate::backends::shm::ring_for(self.shm_ring, size),
            shm_segment: self.shm_segment,
            shm_huge: self.shm_huge,
            shm_read: self.shm_read,
            spin_ns: self.spin_ns,
            pin: self.placement.pin,
            traffic: self.traffic,
        }
    }
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

pub struct Session {
    subject: Subject,
    /// What the peer was told to open (names, ids, ports): for leak checks and diagnostics.
    peer_spec: String,
    size: usize,
    /// Whether the two processes may share a CPU (`--pin same` or `none`): a waiting side
    /// then yields rather than spins.
    shared_cpu: bool,
    // The peer goes first (fields drop in order): a channel or primitive is always dropped
    // after the peer has exited or been killed, so its cleanup sees everything released.
    peer: Peer,
    end: End,
}

impl Session {
    /// Pins this thread, creates the subject's objects, starts the peer and waits until
    /// both sides hold them (names are removed at that point). `size` is the message size
    /// for a channel; a synchronisation primitive ignores it.
    pub fn start(
        subject: impl Into<Subject>,
        size: usize,
        opts: &SessionOptions,
    ) -> Result<Session, Error> {
        let subject = subject.into();
        let id = subject.id();
        let peer_err = |source| Error::Peer {
            mechanism: id,
            source,
        };
        opts.placement.apply_parent().map_err(|source| Error::Pin {
            cpu: opts.placement.parent_cpu.unwrap_or(0),
            source,
        })?;
        let size = match subject {
            Subject::Channel(_) => size,
            Subject::Sync(_) => 1,
        };
        let (end, peer_spec, mut peer) = match subject {
            Subject::Channel(m) => {
                let offer = m.offer(&opts.params(size))?;
                let spec = offer.spec.clone();
                let mut peer = spawn(id, size, offer.spec, offer.inherit, opts)?;
                let connected = {
                    let gone = || peer.has_exited();
                    let rv = Rendezvous::new(Instant::now() + opts.timeout, &gone);
                    (offer.connect)(&rv)
                };
                let chan = match connected {
                    Ok(c) => c,
                    // The peer's own account (e.g. it refused the object) explains more.
                    Err(e) => {
                        return Err(peer.diagnose().map(peer_err).unwrap_or(Error::Backend(e)))
                    }
                };
                if let Some(abort) = chan.abort_handle() {
                    peer.on_exit(abort);
                }
                let bufs = Buffers::for_channel(size, opts.verify, &*chan);
                let end = End::Channel(ChannelEnd {
                    info: m.info(),
                    chan,
                    bufs,
                    seq: 0,
                    params: opts.params(size),
                    courier: peer.take_courier(),
                });
                (end, spec, peer)
            }
            Subject::Sync(p) => {
                let offer = crate::backends::sync::offer(p)?;
                let spec = offer.spec.clone();
                let mut sync_end = offer.end;
                let peer = spawn(id, size, offer.spec, offer.inherit, opts)?;
                if let Some(pid) = peer.pid() {
                    sync_end.set_peer(pid as i32);
                }
                peer.on_exit(sync_end.abort_handle());
                let end = End::Sync(SyncSide {
                    info: p.info(),
                    end: sync_end,
                });
                (end, spec, peer)
            }
        };
        peer.expect_ready().map_err(peer_err)?;
        // From here on, any failure drops the session: the peer first, then the objects.
        let mut session = Session {
            subject,
            peer_spec,
            size,
            shared_cpu: opts.placement.pin != crate::placement::Pin::Cross,
            peer,
            end,
        };
        match &mut session.end {
            End::Channel(c) => c.chan.peer_attached()?,
            End::Sync(s) => s.end.peer_attached()?,
        }
        Ok(session)
    }

    pub fn id(&self) -> &'static str {
        self.subject.id()
    }

    pub fn subject(&self) -> Subject {
        self.subject
    }

    /// Whether the two processes may run on one CPU (`--pin same` or `none`).
    pub fn shared_cpu(&self) -> bool {
        self.shared_cpu
    }

    /// Message size (1 for a synchronisation primitive).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether the channel may lose messages (its workloads then count losses).
    pub fn lossy(&self) -> bool {
        matches!(&self.end, End::Channel(c) if c.info.lossy)
    }

    /// What the peer was told to open: a path, queue names or ids, a port.
    pub fn peer_spec(&self) -> &str {
        &self.peer_spec
    }

    /// The peer's process id.
    pub fn peer_pid(&self) -> Option<u32> {
        self.peer.pid()
    }

    /// One timed phase of workload `workload` with `count`: the order to the peer and its
    /// `go`, `run` over this side's end under the watchdog with this thread's CPU measured
    /// around it, then the peer's `done`. Returns `run`'s value, the CPU of both processes
    /// and the peer half's own account.
    pub fn phase<T>(
        &mut self,
        workload: &str,
        count: u64,
        run: impl FnOnce(&mut End) -> Result<T, DataError>,
    ) -> Result<(T, CpuUsage, serde_json::Value), Error> {
        let id = self.id();
        let peer_err = |source| Error::Peer {
            mechanism: id,
            source,
        };
        self.peer
            .command(&Order::Run {
                workload: workload.to_string(),
                count,
            })
            .map_err(peer_err)?;
        self.peer.expect_go().map_err(peer_err)?;
        self.peer.arm();
        let before = CpuUsage::thread();
        let result = run(&mut self.end);
        let after = CpuUsage::thread();
        self.peer.disarm();
        let value = result.map_err(|e| explain(id, &mut self.peer, e))?;
        let (theirs, outcome) = self.peer.expect_done().map_err(peer_err)?;
        let ours = match (before, after) {
            (Ok(b), Ok(a)) => a.since(b),
            _ => CpuUsage::default(),
        };
        Ok((value, ours.plus(theirs), outcome))
    }

    /// Work on this side alone while the peer idles (e.g. an uncontended lock), its errors
    /// explained like a phase's.
    pub fn local<T>(
        &mut self,
        run: impl FnOnce(&mut End) -> Result<T, DataError>,
    ) -> Result<T, Error> {
        let id = self.id();
        run(&mut self.end).map_err(|e| explain(id, &mut self.peer, e))
    }

    /// Test hook (synchronisation primitives): the peer takes the lock and keeps it until
    /// killed.
    pub fn peer_holds_lock(&mut self) -> Result<(), Error> {
        let id = self.id();
        let peer_err = |source| Error::Peer {
            mechanism: id,
            source,
        };
        self.peer.command(&Order::Hold).map_err(peer_err)?;
        self.peer.expect_holding().map_err(peer_err)
    }

    /// Takes and releases the lock once (to observe a dead holder's recovery).
    pub fn lock_once(&mut self) -> Result<(), Error> {
        let id = self.id();
        let r = match &mut self.end {
            End::Sync(s) => s.end.lock(true).and_then(|()| s.end.unlock(true)),
            End::Channel(_) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "not a synchronisation primitive",
            )),
        };
        r.map_err(|source| Error::DataPath {
            mechanism: id,
            op: "lock",
            seq: 0,
            source,
        })
    }

    /// Tells the peer to exit and checks that it did so cleanly.
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

/// Turns a data-path failure into the most precise error: a peer that detected bad data,
/// died or hung explains an I/O error on our side better than the error itself.
fn explain(id: &'static str, peer: &mut Peer, e: DataError) -> Error {
    // Bad data is ours to report; any other failure is best told by a peer that went wrong.
    if !matches!(e, DataError::Verify(_)) {
        if let Some(pe) = peer.diagnose() {
            return Error::Peer {
                mechanism: id,
                source: pe,
            };
        }
    }
    match e {
        DataError::Verify(source) => Error::Verify {
            mechanism: id,
            side: "parent",
            source,
        },
        DataError::Io { op, seq, source } => Error::DataPath {
            mechanism: id,
            op,
            seq,
            source,
        },
        DataError::Backend(e) => Error::Backend(e),
    }
}
