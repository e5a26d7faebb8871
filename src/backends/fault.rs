//! Deliberately faulty mechanisms (a pipe whose parent loses or damages its sixth message,
//! one whose peer stalls). They prove the verifier can fail and that open-loop latency sees
//! stalls; `all` never includes them.

use std::io;
use std::os::fd::OwnedFd;

use super::pipe::{join_pipes, offer_pipes};
use super::{Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer};
use crate::error::BackendError;
use crate::message;

/// Index of the parent's send that goes wrong (the parent's n-th message has sequence n).
pub const FAULTY_SEND: u64 = 5;

#[derive(Clone, Copy)]
enum Kind {
    /// Message 5 is replaced by message 6: the receiver sees a gap, as after a loss.
    Drop,
    /// The last byte of message 5 is flipped.
    CorruptTail,
    /// A byte in the middle of message 5 is flipped (only `--verify full` sees it in large messages).
    CorruptMiddle,
}

pub struct Fault {
    info: &'static MechanismInfo,
    kind: Kind,
}

const fn info(id: &'static str, summary: &'static str) -> MechanismInfo {
    MechanismInfo {
        id,
        family: Family::Test,
        summary,
        boundaries: false,
        kernel_copies: 2,
        lossy: false,
        named: false,
        cross_host: false,
        built_on: None,
        fan_in: false,
        fd_passing: false,
        portable: true,
        trade_off: "deliberately faulty, for tests",
        verified: true,
        busy_waits: false,
        calibrates: None,
        in_all: false,
    }
}

static DROP_INFO: MechanismInfo = info(
    "fault-drop",
    "test: pipe that loses the parent's message #5",
);
static CORRUPT_INFO: MechanismInfo = info(
    "fault-corrupt",
    "test: pipe that flips the last byte of message #5",
);
static CORRUPT_MIDDLE_INFO: MechanismInfo = info(
    "fault-corrupt-middle",
    "test: pipe that flips a middle byte of message #5",
);

pub static FAULT_DROP: Fault = Fault {
    info: &DROP_INFO,
    kind: Kind::Drop,
};
pub static FAULT_CORRUPT: Fault = Fault {
    info: &CORRUPT_INFO,
    kind: Kind::CorruptTail,
};
pub static FAULT_CORRUPT_MIDDLE: Fault = Fault {
    info: &CORRUPT_MIDDLE_INFO,
    kind: Kind::CorruptMiddle,
};

struct Faulty {
    inner: Box<dyn Channel>,
    kind: Kind,
    sent: u64,
    scratch: Vec<u8>,
}

impl Channel for Faulty {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let n = self.sent;
        self.sent += 1;
        if n != FAULTY_SEND {
            return self.inner.send(msg);
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(msg);
        let len = msg.len();
        match self.kind {
            Kind::Drop => message::stamp(&mut self.scratch, n + 1),
            Kind::CorruptTail => self.scratch[len - 1] ^= 0xFF,
            Kind::CorruptMiddle => self.scratch[len / 2] ^= 0xFF,
        }
        self.inner.send(&self.scratch)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.recv(buf)
    }
}

impl Mechanism for Fault {
    fn info(&self) -> &'static MechanismInfo {
        self.info
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        let mut offer = offer_pipes(self.info().id)?;
        let pipes = offer.connect;
        let kind = self.kind;
        let size = params.size;
        offer.connect = Box::new(move |peer| {
            Ok(Box::new(Faulty {
                inner: pipes(peer)?,
                kind,
                sent: 0,
                scratch: Vec::with_capacity(size),
            }))
        });
        Ok(offer)
    }

    fn join(
        &self,
        spec: &str,
        inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        join_pipes(self.info().id, spec, inherited)
    }
}

/// How long the stalling peer stops, and how often.
pub const STALL: std::time::Duration = std::time::Duration::from_millis(50);
pub const STALL_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

static STALL_INFO: MechanismInfo = info(
    "fault-stall",
    "test: pipe whose peer stops for 50 ms once a second (makes coordinated omission visible)",
);

/// A pipe whose peer, once a second, stops for 50 ms before taking the next message: a
/// closed-loop client waits it out once; an open-loop client's queued requests all see it.
pub struct Stall;
pub static FAULT_STALL: Stall = Stall;

struct Stalling {
    inner: Box<dyn Channel>,
    next: std::time::Instant,
}

impl Channel for Stalling {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.inner.send(msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if std::time::Instant::now() >= self.next {
            std::thread::sleep(STALL);
            self.next = std::time::Instant::now() + STALL_EVERY;
        }
        self.inner.recv(buf)
    }
}

impl Mechanism for Stall {
    fn info(&self) -> &'static MechanismInfo {
        &STALL_INFO
    }

    fn duplex(&self) -> bool {
        true
    }

    fn offer(&self, _params: &ChannelParams) -> Result<Offer, BackendError> {
        offer_pipes(STALL_INFO.id)
    }

    fn join(
        &self,
        spec: &str,
        inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        Ok(Box::new(Stalling {
            inner: join_pipes(STALL_INFO.id, spec, inherited)?,
            next: std::time::Instant::now() + STALL_EVERY,
        }))
    }
}
