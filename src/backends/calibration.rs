//! Calibration mechanisms, which measure the measurement. `pipe-raw` is the `pipe` round
//! trip with no framing and no checks, written as plainly as possible: `pipe` against it is
//! the harness's own cost. `cacheline` bounces one 8-byte word in a shared page between two
//! pinned CPUs: the physical floor under any notification (used by `ipcbench floor`).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::pipe::{join_pipes, offer_pipes};
use super::{
    expect_fds, expect_no_spec, AbortHandle, Channel, ChannelParams, Family, Mechanism,
    MechanismInfo, Offer,
};
use crate::environment::Limits;
use crate::error::BackendError;
use crate::placement::Pin;
use crate::sys::shm::{self as seg, Mapping};

pub struct PipeRaw;
pub struct Cacheline;

pub static PIPE_RAW: PipeRaw = PipeRaw;
pub static CACHELINE: Cacheline = Cacheline;

static RAW_INFO: MechanismInfo = MechanismInfo {
    id: "pipe-raw",
    family: Family::Calibration,
    summary: "calibration: the pipe round trip with no framing and no checks (pipe minus pipe-raw = harness cost)",
    boundaries: false,
    kernel_copies: 2,
    lossy: false,
    named: false,
    cross_host: false,
    built_on: None,
    fan_in: false,
    fd_passing: false,
    portable: true,
    trade_off: "not a choice: it exists to show what the harness's framing and checks cost",
    verified: false,
    busy_waits: false,
    calibrates: Some("pipe"),
    in_all: true,
};

static LINE_INFO: MechanismInfo = MechanismInfo {
    id: "cacheline",
    family: Family::Calibration,
    summary: "calibration: one 8-byte word bounced between two CPUs through shared memory (the notification floor; latency only)",
    boundaries: true,
    kernel_copies: 0,
    lossy: false,
    named: false,
    cross_host: false,
    built_on: None,
    fan_in: false,
    fd_passing: false,
    portable: true,
    trade_off: "not a choice: the lower bound for any cross-process notification",
    verified: true,
    busy_waits: true,
    calibrates: None,
    in_all: false,
};

impl Mechanism for PipeRaw {
    fn info(&self) -> &'static MechanismInfo {
        &RAW_INFO
    }

    fn setup_note(&self) -> Option<&'static str> {
        Some(super::pipe::SETUP)
    }

    fn close_is_seen(&self) -> bool {
        true
    }

    fn offer(&self, _params: &ChannelParams) -> Result<Offer, BackendError> {
        offer_pipes(RAW_INFO.id)
    }

    fn join(
        &self,
        spec: &str,
        inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        join_pipes(RAW_INFO.id, spec, inherited)
    }
}

/// A value no message of this tool carries (requests are small, replies are near u64::MAX).
const IDLE: u64 = 0x5555_5555_5555_5555;

struct WordChannel {
    /// Keeps the page mapped.
    map: Arc<Mapping>,
    /// The value this side last wrote or read: the other side's next value differs.
    last: u64,
    aborted: Arc<AtomicBool>,
}

impl WordChannel {
    fn word(&self) -> &AtomicU64 {
        // SAFETY: the mapping is one page, page-aligned, and outlives `self`; the word is
        // only ever accessed atomically by both processes.
        unsafe { &*self.map.base().cast::<AtomicU64>() }
    }
}

impl Channel for WordChannel {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let bytes: [u8; 8] = msg.try_into().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "cacheline carries 8-byte messages",
            )
        })?;
        let v = u64::from_le_bytes(bytes);
        self.word().store(v, Ordering::Release);
        self.last = v;
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut spins = 0u32;
        loop {
            let v = self.word().load(Ordering::Acquire);
            if v != self.last {
                self.last = v;
                let n = buf.len().min(8);
                buf[..n].copy_from_slice(&v.to_le_bytes()[..n]);
                return Ok(8);
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 4096 == 0 && self.aborted.load(Ordering::Relaxed) {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the peer is gone",
                ));
            }
        }
    }

    fn abort_handle(&self) -> Option<AbortHandle> {
        let flag = Arc::clone(&self.aborted);
        Some(Box::new(move || flag.store(true, Ordering::Release)))
    }
}

fn err(action: &'static str, e: impl Into<io::Error>) -> BackendError {
    BackendError::new(LINE_INFO.id, action, "a shared page", e)
}

impl Mechanism for Cacheline {
    fn info(&self) -> &'static MechanismInfo {
        &LINE_INFO
    }

    fn streams(&self) -> bool {
        false
    }

    fn unsupported(&self, params: &ChannelParams, _limits: &Limits) -> Option<String> {
        if params.size != 8 {
            return Some("the cache-line floor carries exactly one 8-byte word".into());
        }
        (params.pin == Pin::Same)
            .then(|| "bouncing a cache line by spinning needs two CPUs (use --pin cross)".into())
    }

    fn offer(&self, _params: &ChannelParams) -> Result<Offer, BackendError> {
        let fd = seg::memfd(4096).map_err(|e| err("create", e))?;
        let map = Arc::new(Mapping::map(&fd, 4096).map_err(|e| err("map", e))?);
        let chan = WordChannel {
            map,
            last: IDLE,
            aborted: Arc::new(AtomicBool::new(false)),
        };
        chan.word().store(IDLE, Ordering::Release);
        Ok(Offer {
            spec: String::new(),
            inherit: vec![fd],
            connect: Box::new(move |_| Ok(Box::new(chan))),
        })
    }

    fn join(
        &self,
        spec: &str,
        inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        expect_no_spec(LINE_INFO.id, spec)?;
        let [fd] = expect_fds::<1>(LINE_INFO.id, inherited)?;
        let st =
            nix::sys::stat::fstat(std::os::fd::AsFd::as_fd(&fd)).map_err(|e| err("inspect", e))?;
        if st.st_size != 4096 {
            return Err(BackendError::invalid(
                LINE_INFO.id,
                "the inherited descriptor",
                "not the shared page",
            ));
        }
        Ok(Box::new(WordChannel {
            map: Arc::new(Mapping::map(&fd, 4096).map_err(|e| err("map", e))?),
            last: IDLE,
            aborted: Arc::new(AtomicBool::new(false)),
        }))
    }
}
