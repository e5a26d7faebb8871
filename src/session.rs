//! One established channel between this process and a live peer: start it, drive the
//! workloads over it, end it. The CLI sweep and the criterion benches both use this.

use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::backends::{Channel, ChannelParams, Mechanism, Rendezvous};
use crate::error::Error;
use crate::message::Verify;
use crate::peer::{decode_usage, Launch, Peer};
use crate::placement::Placement;
use crate::sys::CpuUsage;
use crate::workload::{self, Buffers, DataError};

pub struct Session {
    mechanism: &'static str,
    chan: Box<dyn Channel>,
    peer: Peer,
    bufs: Buffers,
    seq: u64,
}

/// What a timed phase cost: its duration and the CPU both processes spent in it.
#[derive(Clone, Copy, Debug)]
pub struct PhaseCost {
    pub elapsed: Duration,
    pub cpu: CpuUsage,
}

impl Session {
    /// Pins this thread, creates the mechanism's objects, starts the peer and waits until
    /// both sides hold the channel (names are removed at that point).
    pub fn start(
        mechanism: &'static dyn Mechanism,
        size: usize,
        verify: Verify,
        placement: &Placement,
        peer_exe: &Path,
        timeout: Duration,
    ) -> Result<Session, Error> {
        let id = mechanism.info().id;
        if let Err(source) = placement.apply_parent() {
            return Err(Error::Pin {
                cpu: placement.parent_cpu.unwrap_or(0),
                source,
            });
        }
        let params = ChannelParams { size };
        let offer = mechanism.offer(&params)?;
        let launch = Launch {
            exe: peer_exe,
            mechanism: id,
            size,
            verify,
            cpu: placement.peer_cpu,
            spec: offer.spec,
            inherit: offer.inherit,
        };
        let peer_err = |source| Error::Peer {
            mechanism: id,
            source,
        };
        let mut peer = Peer::spawn(launch, timeout).map_err(peer_err)?;
        let connected = {
            let gone = || peer.has_exited();
            let rv = Rendezvous {
                deadline: std::time::Instant::now() + timeout,
                peer_gone: &gone,
            };
            (offer.connect)(&rv)
        };
        let mut chan = match connected {
            Ok(c) => c,
            // The peer's own account (e.g. it refused the object) explains more.
            Err(e) => return Err(peer.diagnose().map(peer_err).unwrap_or(Error::Backend(e))),
        };
        peer.expect("ready").map_err(peer_err)?;
        chan.peer_attached()?;
        Ok(Session {
            mechanism: id,
            chan,
            peer,
            bufs: Buffers::new(size, verify),
            seq: 0,
        })
    }

    /// The peer's process id.
    pub fn peer_pid(&self) -> Option<u32> {
        self.peer.pid()
    }

    /// `n` round trips; each is recorded in `hist` when given.
    pub fn round_trips(
        &mut self,
        n: u64,
        hist: Option<&mut Histogram<u64>>,
    ) -> Result<PhaseCost, Error> {
        self.phase(&format!("echo {n}"), |chan, bufs, seq| {
            workload::ping(chan, bufs, seq, n, hist)
        })
    }

    /// Streams `n` messages and waits for the acknowledgement.
    pub fn stream(&mut self, n: u64) -> Result<PhaseCost, Error> {
        self.phase(&format!("sink {n}"), |chan, bufs, seq| {
            workload::stream(chan, bufs, seq, n)
        })
    }

    /// Tells the peer to exit and checks that it did so cleanly.
    pub fn finish(self) -> Result<(), Error> {
        let id = self.mechanism;
        drop(self.chan);
        self.peer.quit().map_err(|source| Error::Peer {
            mechanism: id,
            source,
        })
    }

    fn phase(
        &mut self,
        order: &str,
        run: impl FnOnce(&mut dyn Channel, &mut Buffers, &mut u64) -> Result<Duration, DataError>,
    ) -> Result<PhaseCost, Error> {
        let id = self.mechanism;
        let peer_err = |source| Error::Peer {
            mechanism: id,
            source,
        };
        self.peer.command(order).map_err(peer_err)?;
        self.peer.expect("go").map_err(peer_err)?;
        self.peer.arm();
        let before = CpuUsage::thread();
        let result = run(self.chan.as_mut(), &mut self.bufs, &mut self.seq);
        let after = CpuUsage::thread();
        self.peer.disarm();
        let elapsed = match result {
            Ok(d) => d,
            Err(e) => return Err(self.failure(e)),
        };
        let theirs =
            decode_usage(&self.peer.expect("done").map_err(peer_err)?).map_err(peer_err)?;
        let ours = match (before, after) {
            (Ok(b), Ok(a)) => a.since(b),
            _ => CpuUsage::default(),
        };
        Ok(PhaseCost {
            elapsed,
            cpu: ours.plus(theirs),
        })
    }

    /// Turns a data-path failure into the most precise error: a peer that detected bad
    /// data, died or hung explains an I/O error on our side better than the error itself.
    fn failure(&mut self, e: DataError) -> Error {
        let id = self.mechanism;
        match e {
            DataError::Verify(source) => Error::Verify {
                mechanism: id,
                side: "parent",
                source,
            },
            DataError::Io { op, seq, source } => match self.peer.diagnose() {
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
}
