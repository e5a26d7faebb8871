//! Shared memory: one SPSC ring per direction in one segment, and seven ways for a side that
//! must wait to sleep and be woken (`shm-spin`, `shm-futex`, `shm-eventfd`,
//! `shm-posix-sem`, `shm-sysv-sem`, `shm-condvar`, `shm-adaptive`). The mechanisms differ
//! only in that.
//! Segments are POSIX (`shm_open`), System V (`shmget`) or anonymous (`memfd`), chosen
//! with `--shm-segment`; named ones are removed as soon as both processes have mapped them.

mod ring;
mod wake;

/// The ring's layout and polling, for the bare loop that copies them (`crate::bare`).
pub(crate) use self::ring::{
    slots as ring_slots, stride as ring_stride, LINE as RING_LINE, SEQ as RING_SEQ,
};
pub(crate) use self::wake::TIGHT_POLLS;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use self::ring::{Ring, RingHeader};
use self::wake::{EventSlot, Prim, Strategy, Waker, EVENTS};
use super::fanin::{ClientOffer, FanInOffer, Hub, SharedAbort};
use super::{AbortHandle, Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer};
use crate::environment::Limits;
use crate::error::BackendError;
use crate::placement::Pin;
use crate::sys::fs::PREFIX;
use crate::sys::pthread::ShmCondvar;
use crate::sys::sem::{ShmSem, SysvSemSet};
use crate::sys::shm::{self as seg, Mapping, SysvShm};

/// Default bytes per ring: one 1 MiB message in flight plus room for the next.
pub const DEFAULT_RING: usize = 2 << 20;

/// `shm-adaptive`'s spin budget when neither `--spin-us` nor a measured wake-up floor sets
/// it (e.g. `--pin none`): about one cross-CPU wake-up on the 2-vCPU reference VM.
pub const DEFAULT_SPIN_NS: u64 = 15_000;

/// The spin budget `shm-adaptive` uses for `params`: none when both sides share a CPU
/// (the side it waits for cannot run while it spins), else `--spin-us` or the default the
/// run chose from its wake-up floor.
pub fn spin_budget(params: &ChannelParams) -> u64 {
    match params.pin {
        Pin::Same => 0,
        _ => params.spin_ns.unwrap_or(DEFAULT_SPIN_NS),
    }
}
const PAGE: usize = 4096;
const MAGIC: u64 = u64::from_le_bytes(*b"ipcbshm1");

/// How a receiver takes a message out of its ring (`--shm-read`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Read {
    /// Copy it out into the receiver's buffer, then check it there (as any channel does).
    Copy,
    /// Check it where it lies in the ring, then free the slot: no copy out.
    InPlace,
}

impl Read {
    pub fn as_str(self) -> &'static str {
        match self {
            Read::Copy => "copy",
            Read::InPlace => "in-place",
        }
    }
}

/// Which kind of segment holds the rings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Segment {
    /// `shm_open` with a unique name, unlinked once both processes mapped it.
    Posix,
    /// `shmget(IPC_PRIVATE)`, marked for removal once both processes attached it.
    Sysv,
    /// `memfd_create`: anonymous, inherited by the peer.
    Memfd,
}

impl Segment {
    pub fn as_str(self) -> &'static str {
        match self {
            Segment::Posix => "posix",
            Segment::Sysv => "sysv",
            Segment::Memfd => "memfd",
        }
    }
}

/// The segment's first page.
#[repr(C)]
struct Header {
    magic: u64,
    capacity: u64,
    size: u64,
    strategy: u64,
}

const SLOTS_AT: usize = 64;
const PRIMS_AT: usize = 512;
const PRIM_STRIDE: usize = 128;
const _: () = assert!(SLOTS_AT + EVENTS * std::mem::size_of::<EventSlot>() <= PRIMS_AT);
const _: () = assert!(std::mem::size_of::<libc::sem_t>() <= PRIM_STRIDE);
const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= PRIM_STRIDE / 2);
const _: () = assert!(std::mem::size_of::<libc::pthread_cond_t>() <= PRIM_STRIDE / 2);
const _: () = assert!(PRIMS_AT + EVENTS * PRIM_STRIDE <= PAGE);
const _: () = assert!(std::mem::size_of::<RingHeader>() <= PAGE);

/// Ring capacity rounded up to whole pages (what `--shm-ring` really gets).
pub fn capacity(ring: usize) -> usize {
    ring.div_ceil(PAGE).max(1) * PAGE
}

/// Copies of the payload through a ring (`Mechanism::copies`): one in, and one out unless
/// the receiver checks it in place. The shared_memory crate's mechanism uses the same ring.
pub(crate) fn ring_copies(read: Read) -> u8 {
    match read {
        Read::Copy => 2,
        Read::InPlace => 1,
    }
}

/// The ring a case of `size`-byte messages uses when `--shm-ring` asked for `ring` bytes;
/// 0 (not asked) is `DEFAULT_RING`, or room for two messages where that is more.
pub fn ring_for(ring: usize, size: usize) -> usize {
    match ring {
        0 => capacity(DEFAULT_RING.max(size.saturating_mul(2))),
        r => capacity(r),
    }
}

/// A ring's slot area for messages of `size` in rings of `cap` bytes, in whole pages.
fn ring_len(cap: usize, size: usize) -> usize {
    ring::data_len(cap, size).div_ceil(PAGE) * PAGE
}

/// Offsets of ring `i`'s header and data.
fn ring_at(i: usize, cap: usize, size: usize) -> (usize, usize) {
    let hdr = PAGE + i * (PAGE + ring_len(cap, size));
    (hdr, hdr + PAGE)
}

fn segment_len(cap: usize, size: usize) -> usize {
    PAGE + 2 * (PAGE + ring_len(cap, size))
}

/// The huge page size segments use with `--shm-hugepages` (x86-64's default, 2 MiB).
pub const HUGE_PAGE: usize = 2 << 20;

/// Bytes of the segment both sides map: `segment_len`, in whole huge pages when `huge`.
fn mapped_len(cap: usize, size: usize, huge: bool) -> usize {
    let len = segment_len(cap, size);
    match huge {
        true => len.div_ceil(HUGE_PAGE) * HUGE_PAGE,
        false => len,
    }
}

/// Why `--shm-hugepages` cannot give a segment of `len` bytes of `segment` kind here,
/// from `/proc/meminfo`'s `HugePages_Free` and `Hugepagesize` (kB).
pub(crate) fn huge_refusal(
    segment: Segment,
    len: usize,
    free: Option<u64>,
    page_kb: Option<u64>,
) -> Option<String> {
    if segment == Segment::Posix {
        return Some(
            "--shm-hugepages needs --shm-segment memfd or sysv: POSIX segments live in /dev/shm, which has no huge pages".into(),
        );
    }
    let page = page_kb.map_or(HUGE_PAGE as u64, |k| k * 1024);
    if page != HUGE_PAGE as u64 {
        return Some(format!(
            "--shm-hugepages assumes {} KiB huge pages and this machine's default is {} KiB",
            HUGE_PAGE >> 10,
            page >> 10
        ));
    }
    let need = len.div_ceil(HUGE_PAGE) as u64;
    let free = free.unwrap_or(0);
    (free < need).then(|| {
        format!(
            "no huge pages to spare: a segment needs {need} of 2 MiB and {free} are free (HugePages_Free); reserve them with `sysctl vm.nr_hugepages=N` (vm.nr_hugepages)"
        )
    })
}

/// `HugePages_Free` and `Hugepagesize` (kB) from /proc/meminfo.
fn huge_pages_free() -> (Option<u64>, Option<u64>) {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    (field("HugePages_Free:"), field("Hugepagesize:"))
}

pub struct Shm {
    info: &'static MechanismInfo,
    strategy: Strategy,
}

macro_rules! shm_mechanism {
    ($name:ident, $info:ident, $id:literal, $strategy:expr, $summary:literal, $portable:literal, $trade_off:literal) => {
        static $info: MechanismInfo = MechanismInfo {
            id: $id,
            family: Family::SharedMemory,
            summary: $summary,
            boundaries: true,
            kernel_copies: 0,
            lossy: false,
            named: true,
            cross_host: false,
            built_on: None,
            fan_in: false,
            fd_passing: false,
            portable: $portable,
            trade_off: $trade_off,
            verified: true,
            busy_waits: matches!($strategy, Strategy::Spin),
            calibrates: None,
            in_all: true,
        };
        pub static $name: Shm = Shm {
            info: &$info,
            strategy: $strategy,
        };
    };
}

shm_mechanism!(
    SHM_SPIN,
    SPIN_INFO,
    "shm-spin",
    Strategy::Spin,
    "shared-memory rings, waiting by busy-polling (burns a CPU per waiting side)",
    true,
    "lowest latency, but each waiting side burns a whole CPU and it needs two CPUs"
);
shm_mechanism!(
    SHM_FUTEX,
    FUTEX_INFO,
    "shm-futex",
    Strategy::Futex,
    "shared-memory rings, futex wait/wake only when the other side sleeps",
    false,
    "shared memory that sleeps when idle and wakes only sleepers; Linux futex"
);
shm_mechanism!(
    SHM_EVENTFD,
    EVENTFD_INFO,
    "shm-eventfd",
    Strategy::Eventfd,
    "shared-memory rings, eventfd per direction and event (inherited)",
    false,
    "shared memory with pollable wake-ups (fits an epoll loop); Linux only"
);
shm_mechanism!(
    SHM_POSIX_SEM,
    POSIX_SEM_INFO,
    "shm-posix-sem",
    Strategy::PosixSem,
    "shared-memory rings, unnamed process-shared POSIX semaphores in the segment",
    false,
    "shared memory with POSIX semaphores; unnamed process-shared semaphores are missing on macOS"
);
shm_mechanism!(
    SHM_SYSV_SEM,
    SYSV_SEM_INFO,
    "shm-sysv-sem",
    Strategy::SysvSem,
    "shared-memory rings, a System V semaphore set",
    true,
    "shared memory with System V semaphores: ubiquitous, but semaphore sets outlive crashed processes"
);
shm_mechanism!(
    SHM_ADAPTIVE,
    ADAPTIVE_INFO,
    "shm-adaptive",
    Strategy::Adaptive,
    "shared-memory rings, polling for up to --spin-us, then a futex sleep",
    false,
    "near shm-spin's latency when the answer comes within the spin budget, shm-futex's idle cost when it does not; each wait may burn up to one budget of CPU"
);
shm_mechanism!(
    SHM_CONDVAR,
    CONDVAR_INFO,
    "shm-condvar",
    Strategy::Condvar,
    "shared-memory rings, process-shared pthread mutex + condition variable",
    true,
    "shared memory with a robust process-shared mutex and condition variable: recovers from a dead holder"
);

/// Which events a side waits on and signals.
#[derive(Clone, Copy)]
struct Role {
    tx_space: usize,
    tx_data: usize,
    rx_data: usize,
    rx_space: usize,
}

const PARENT: Role = Role {
    tx_data: 0,
    tx_space: 1,
    rx_data: 2,
    rx_space: 3,
};
const PEER: Role = Role {
    rx_data: 0,
    rx_space: 1,
    tx_data: 2,
    tx_space: 3,
};

/// Objects to remove once the peer holds them (parent side).
pub(crate) enum Names {
    Posix(String),
    Sysv(Arc<SysvShm>),
}

struct ShmChannel {
    tx: Ring,
    rx: Ring,
    /// `--shm-read in-place`: `recv_in_place` checks a message in its slot.
    in_place: bool,
    waker: Waker,
    role: Role,
    names: Option<Names>,
    /// The System V segment and semaphore set live until the channel goes (creator only).
    _sysv: (Option<Arc<SysvShm>>, Option<Arc<SysvSemSet>>),
}

fn wrong_size(ring: &Ring, len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "the ring carries messages of {} bytes, not {len}",
            ring.size()
        ),
    )
}

/// One send on `ring`: waits for room (sleeping on event `events.0`), writes `msg`, and
/// signals event `events.1`. Whole channels and split halves alike.
fn send_on(ring: &Ring, waker: &mut Waker, events: (usize, usize), msg: &[u8]) -> io::Result<()> {
    waker.wait_until(events.0, || ring.can_write(msg.len()))?;
    if !ring.write(msg) {
        return Err(wrong_size(ring, msg.len()));
    }
    waker.notify(events.1)
}

/// One receive on `ring`: waits for a message of `len` bytes (sleeping on event
/// `events.0`), shows it to `take` in its slot (to copy it out or check it there), frees
/// the slot and signals event `events.1`.
fn recv_on(
    ring: &Ring,
    waker: &mut Waker,
    events: (usize, usize),
    len: usize,
    take: impl FnOnce(&[u8]),
) -> io::Result<usize> {
    waker.wait_until(events.0, || ring.can_read(len))?;
    if ring.read_with(len, take).is_none() {
        return Err(wrong_size(ring, len));
    }
    waker.notify(events.1)?;
    Ok(len)
}

impl Channel for ShmChannel {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let events = (self.role.tx_space, self.role.tx_data);
        send_on(&self.tx, &mut self.waker, events, msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let events = (self.role.rx_data, self.role.rx_space);
        recv_on(&self.rx, &mut self.waker, events, buf.len(), |m| {
            buf.copy_from_slice(m)
        })
    }

    /// With `--shm-read in-place` the message is checked in its slot, never copied out.
    fn recv_in_place(
        &mut self,
        buf: &mut [u8],
        inspect: &mut dyn FnMut(&[u8]),
    ) -> io::Result<usize> {
        if !self.in_place {
            let n = self.recv(buf)?;
            inspect(&buf[..n]);
            return Ok(n);
        }
        let events = (self.role.rx_data, self.role.rx_space);
        recv_on(&self.rx, &mut self.waker, events, buf.len(), inspect)
    }

    fn abort_handle(&self) -> Option<AbortHandle> {
        Some(self.waker.abort_handle())
    }

    /// The two rings are independent; each half gets its own view and waker, and this
    /// channel is not used while they are (the split's contract).
    fn split(&mut self) -> Option<io::Result<crate::backends::Split>> {
        let r = self.role;
        Some(Ok(crate::backends::Split {
            tx: Box::new(ShmHalf {
                ring: self.tx.alias(),
                waker: self.waker.twin(),
                events: (r.tx_space, r.tx_data),
            }),
            rx: Box::new(ShmHalf {
                ring: self.rx.alias(),
                waker: self.waker.twin(),
                events: (r.rx_data, r.rx_space),
            }),
        }))
    }

    fn peer_attached(&mut self) -> Result<(), BackendError> {
        self.remove_names()
    }
}

/// One direction of a split shared-memory channel: its ring and a waker of its own.
struct ShmHalf {
    ring: Ring,
    waker: Waker,
    /// (the event this half waits on, the event it signals)
    events: (usize, usize),
}

impl Channel for ShmHalf {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        send_on(&self.ring, &mut self.waker, self.events, msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_on(&self.ring, &mut self.waker, self.events, buf.len(), |m| {
            buf.copy_from_slice(m)
        })
    }
}

impl ShmChannel {
    fn remove_names(&mut self) -> Result<(), BackendError> {
        match self.names.take() {
            Some(Names::Posix(name)) => {
                seg::posix_unlink(&name).map_err(|e| BackendError::new("shm", "unlink", name, e))
            }
            Some(Names::Sysv(s)) => s.remove().map_err(|e| {
                BackendError::new("shm", "remove", format!("System V segment {}", s.id()), e)
            }),
            None => Ok(()),
        }
    }
}

impl Drop for ShmChannel {
    fn drop(&mut self) {
        let _ = self.remove_names();
    }
}

/// A fan-in server over one ring pair per client (`offer_fan_in`).
struct ShmHub {
    chans: Vec<ShmChannel>,
    /// Where the next scan for a waiting request starts, so every client gets its turn.
    next: usize,
}

impl ShmHub {
    fn new(chans: Vec<ShmChannel>) -> ShmHub {
        ShmHub { chans, next: 0 }
    }

    /// The first client from `next` on whose request ring holds a message of `len` bytes.
    fn waiting(&self, len: usize) -> Option<usize> {
        let n = self.chans.len();
        (0..n)
            .map(|k| (self.next + k) % n)
            .find(|&i| self.chans[i].rx.can_read(len))
    }
}

impl Hub for ShmHub {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<usize>)> {
        let len = buf.len();
        let i = match self.waiting(len) {
            Some(i) => i,
            None => {
                let chans = &self.chans;
                let wakers = chans.iter().map(|c| &c.waker);
                Waker::wait_any(wakers, PARENT.rx_data, || {
                    chans.iter().any(|c| c.rx.can_read(len))
                })?;
                self.waiting(len)
                    .ok_or_else(|| io::Error::other("a request vanished"))?
            }
        };
        self.next = (i + 1) % self.chans.len();
        let c = &mut self.chans[i];
        if !c.rx.read(buf) {
            return Err(wrong_size(&c.rx, len));
        }
        c.waker.notify(c.role.rx_space)?;
        Ok((len, Some(i)))
    }

    fn send(&mut self, client: usize, msg: &[u8]) -> io::Result<()> {
        match self.chans.get_mut(client) {
            Some(c) => c.send(msg),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no client {client}"),
            )),
        }
    }

    fn abort_handle(&self) -> SharedAbort {
        Arc::new(super::fanin::once_each(
            self.chans.iter().map(|c| c.waker.abort_handle()).collect(),
        ))
    }

    fn clients_attached(&mut self) -> Result<(), BackendError> {
        self.chans.iter_mut().try_for_each(|c| c.remove_names())
    }
}

/// What the peer is told: `seg=posix:/name|sysv:ID|memfd;cap=N;yield=0|1;read=copy|in-place;spin=NS;sem=ID`.
struct Spec {
    segment: String,
    cap: usize,
    spin_yield: bool,
    read: Read,
    /// `shm-adaptive`'s spin budget in ns.
    spin_ns: u64,
    sem: Option<libc::c_int>,
    /// The segment is on huge pages (`--shm-hugepages`): mapped in whole huge pages.
    huge: bool,
}

impl Spec {
    fn encode(&self) -> String {
        let mut s = format!(
            "seg={};cap={};yield={};read={}",
            self.segment,
            self.cap,
            u8::from(self.spin_yield),
            self.read.as_str()
        );
        if self.spin_ns > 0 {
            s.push_str(&format!(";spin={}", self.spin_ns));
        }
        if let Some(id) = self.sem {
            s.push_str(&format!(";sem={id}"));
        }
        if self.huge {
            s.push_str(";huge=1");
        }
        s
    }

    fn decode(s: &str) -> Option<Spec> {
        let mut spec = Spec {
            segment: String::new(),
            cap: 0,
            spin_yield: false,
            read: Read::Copy,
            spin_ns: 0,
            sem: None,
            huge: false,
        };
        for part in s.split(';') {
            let (k, v) = part.split_once('=')?;
            match k {
                "seg" => spec.segment = v.to_string(),
                "cap" => {
                    spec.cap = v
                        .parse()
                        .ok()
                        .filter(|&c: &usize| c > 0 && c % PAGE == 0 && c <= 1 << 30)?
                }
                "yield" => spec.spin_yield = v == "1",
                "read" => spec.read = Read::from_str(v, false).ok()?,
                "spin" => spec.spin_ns = v.parse().ok().filter(|&n: &u64| n <= 10_000_000_000)?,
                "sem" => spec.sem = Some(v.parse().ok().filter(|&i: &libc::c_int| i >= 0)?),
                "huge" => spec.huge = v == "1",
                _ => return None,
            }
        }
        (!spec.segment.is_empty() && spec.cap > 0).then_some(spec)
    }
}

fn valid_shm_name(name: &str) -> bool {
    name.strip_prefix('/')
        .and_then(|n| n.strip_prefix(PREFIX))
        .is_some_and(|rest| {
            !rest.is_empty()
                && name.len() < 200
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-')
        })
}

impl Shm {
    fn err(
        &self,
        action: &'static str,
        what: impl Into<String>,
        e: impl Into<io::Error>,
    ) -> BackendError {
        BackendError::new(self.info.id, action, what, e)
    }

    /// Builds one side's channel over a mapped, initialised segment.
    #[allow(clippy::too_many_arguments)]
    fn channel(
        &self,
        map: Arc<Mapping>,
        (cap, size, read): (usize, usize, Read),
        role: Role,
        prim: Prim,
        names: Option<Names>,
        sysv: (Option<Arc<SysvShm>>, Option<Arc<SysvSemSet>>),
    ) -> ShmChannel {
        let base = map.base();
        let (h0, d0) = ring_at(0, cap, size);
        let (h1, d1) = ring_at(1, cap, size);
        // SAFETY: the layout puts both rings, their headers (page aligned) and the event
        // slots (64-byte aligned) inside the mapping of `segment_len(cap, size)` bytes, which the
        // rings and waker keep alive through `map`. The parent writes ring 0 and reads ring
        // 1; the peer the reverse.
        unsafe {
            let r0 = Ring::new(base.add(h0).cast(), base.add(d0), cap, size);
            let r1 = Ring::new(base.add(h1).cast(), base.add(d1), cap, size);
            let slots: [*const EventSlot; EVENTS] = std::array::from_fn(|i| {
                base.add(SLOTS_AT + i * std::mem::size_of::<EventSlot>())
                    .cast_const()
                    .cast()
            });
            let waker = Waker::new(
                slots,
                prim,
                Arc::clone(&map),
                Arc::new(AtomicBool::new(false)),
            );
            let (tx, rx) = if role.tx_data == PARENT.tx_data {
                (r0, r1)
            } else {
                (r1, r0)
            };
            ShmChannel {
                tx,
                rx,
                in_place: read == Read::InPlace,
                waker,
                role,
                names,
                _sysv: sysv,
            }
        }
    }

    /// The in-segment primitives' addresses.
    fn prim_ptr(map: &Mapping, i: usize) -> *mut u8 {
        // SAFETY: PRIMS_AT + i * PRIM_STRIDE + PRIM_STRIDE <= PAGE <= the mapping's length.
        unsafe { map.base().add(PRIMS_AT + i * PRIM_STRIDE) }
    }

    /// Creates (parent) or attaches (peer) this strategy's primitive.
    fn prim(
        &self,
        map: &Mapping,
        create: bool,
        inherited: &mut Vec<OwnedFd>,
        sem: Option<Arc<SysvSemSet>>,
        (spin_yield, spin_ns): (bool, u64),
    ) -> Result<(Prim, Vec<OwnedFd>), BackendError> {
        let mut hand_over = Vec::new();
        let prim = match self.strategy {
            Strategy::Spin => Prim::Spin {
                yield_after: spin_yield.then_some(1000),
            },
            Strategy::Futex => Prim::Futex,
            Strategy::Adaptive => Prim::Adaptive {
                spin: std::time::Duration::from_nanos(spin_ns),
            },
            Strategy::Eventfd => {
                let mut fds = Vec::new();
                for _ in 0..EVENTS {
                    if create {
                        let fd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)
                            .map_err(|e| self.err("create", "an eventfd", e))?;
                        hand_over.push(
                            fd.try_clone()
                                .map_err(|e| self.err("duplicate", "an eventfd", e))?,
                        );
                        fds.push(Arc::new(fd));
                    } else {
                        if inherited.is_empty() {
                            return Err(BackendError::invalid(
                                self.info.id,
                                "inherited descriptors",
                                "missing eventfds",
                            ));
                        }
                        fds.push(Arc::new(inherited.remove(0)));
                    }
                }
                Prim::Eventfd(fds)
            }
            Strategy::PosixSem => {
                let sems = std::array::from_fn::<_, EVENTS, _>(|i| {
                    Self::prim_ptr(map, i).cast::<libc::sem_t>()
                });
                let mut out = Vec::new();
                for p in sems {
                    // SAFETY: `p` is an aligned slot in the mapping's first page, which the
                    // waker keeps mapped; the parent initialises it before the peer starts.
                    out.push(unsafe {
                        if create {
                            ShmSem::init(p)
                                .map_err(|e| self.err("initialise", "a POSIX semaphore", e))?
                        } else {
                            ShmSem::attach(p)
                        }
                    });
                }
                Prim::PosixSem(std::array::from_fn(|i| out[i]))
            }
            Strategy::SysvSem => {
                Prim::SysvSem(sem.ok_or_else(|| {
                    BackendError::invalid(self.info.id, "spec", "no semaphore set")
                })?)
            }
            Strategy::Condvar => {
                let mut out = Vec::new();
                for i in 0..EVENTS {
                    let m = Self::prim_ptr(map, i).cast::<libc::pthread_mutex_t>();
                    // SAFETY: the condition variable follows its mutex in the same slot.
                    let c = unsafe { Self::prim_ptr(map, i).add(PRIM_STRIDE / 2) }
                        .cast::<libc::pthread_cond_t>();
                    // SAFETY: as for the semaphores above.
                    out.push(unsafe {
                        if create {
                            ShmCondvar::init(m, c).map_err(|e| {
                                self.err("initialise", "a process-shared mutex/condvar", e)
                            })?
                        } else {
                            ShmCondvar::attach(m, c)
                        }
                    });
                }
                Prim::Condvar(std::array::from_fn(|i| out[i]))
            }
        };
        Ok((prim, hand_over))
    }

    /// A fresh segment of the kind asked for, and the parent's channel over it.
    fn offer_parts(
        &self,
        params: &ChannelParams,
    ) -> Result<(String, Vec<OwnedFd>, ShmChannel), BackendError> {
        let cap = capacity(params.shm_ring);
        let huge = params.shm_huge;
        let len = mapped_len(cap, params.size, huge);
        let mut inherit = Vec::new();
        let mut sysv_seg = None;
        let (map, segment, names) = match params.shm_segment {
            Segment::Posix => {
                let tag =
                    crate::sys::random_u64().map_err(|e| self.err("read", "/dev/urandom", e))?;
                let name = format!("/{PREFIX}{}-{tag:016x}", std::process::id());
                let fd = seg::posix_create(&name, len).map_err(|e| {
                    self.err("create", name.clone(), e)
                        .hint("is /dev/shm full or missing?")
                })?;
                let map = Mapping::map(&fd, len);
                let map = match map {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = seg::posix_unlink(&name);
                        return Err(self.err("map", name, e));
                    }
                };
                (map, format!("posix:{name}"), Some(Names::Posix(name)))
            }
            Segment::Sysv => {
                let s = Arc::new(SysvShm::create(len, huge).map_err(|e| {
                    self.err("create", format!("a System V segment of {len} bytes"), e)
                        .hint("see kernel.shmmax and kernel.shmall")
                })?);
                let map = Mapping::attach_sysv(s.id(), len)
                    .map_err(|e| self.err("attach", format!("System V segment {}", s.id()), e))?;
                let spec = format!("sysv:{}", s.id());
                sysv_seg = Some(Arc::clone(&s));
                (map, spec, Some(Names::Sysv(s)))
            }
            Segment::Memfd => {
                let fd = seg::memfd_on(len, huge).map_err(|e| self.err("create", "a memfd", e))?;
                let map = Mapping::map(&fd, len).map_err(|e| self.err("map", "a memfd", e))?;
                inherit.push(fd);
                (map, "memfd".to_string(), None)
            }
        };
        self.prepare_over(map, segment, names, sysv_seg, inherit, params)
    }

    /// The parent's side over a fresh, zeroed segment of `segment_len(cap)` bytes: writes
    /// the header, creates the wake-up primitive and describes it all for the peer.
    #[cfg_attr(not(feature = "shared-memory-crate"), allow(dead_code))]
    pub(crate) fn offer_over(
        &self,
        map: Mapping,
        segment: String,
        names: Option<Names>,
        sysv_seg: Option<Arc<SysvShm>>,
        inherit: Vec<OwnedFd>,
        params: &ChannelParams,
    ) -> Result<Offer, BackendError> {
        let (spec, inherit, chan) =
            self.prepare_over(map, segment, names, sysv_seg, inherit, params)?;
        Ok(Offer {
            spec,
            inherit,
            connect: Box::new(move |_| Ok(Box::new(chan))),
        })
    }

    /// `offer_over`'s parts: the peer's description, its descriptors, the parent's channel.
    fn prepare_over(
        &self,
        map: Mapping,
        segment: String,
        names: Option<Names>,
        sysv_seg: Option<Arc<SysvShm>>,
        mut inherit: Vec<OwnedFd>,
        params: &ChannelParams,
    ) -> Result<(String, Vec<OwnedFd>, ShmChannel), BackendError> {
        let cap = capacity(params.shm_ring);
        let map = Arc::new(map);
        // SAFETY: the header is the start of the fresh, page-aligned, zeroed segment, and
        // the peer does not exist yet.
        unsafe {
            header(&map).write(Header {
                magic: MAGIC,
                capacity: cap as u64,
                size: params.size as u64,
                strategy: self.strategy as u64,
            });
        }
        let sem = match self.strategy {
            Strategy::SysvSem => Some(Arc::new(SysvSemSet::create(EVENTS).map_err(|e| {
                self.err("create", "a System V semaphore set", e)
                    .hint("see kernel.sem")
            })?)),
            _ => None,
        };
        let spin_yield = params.pin == Pin::None;
        let spin_ns = match self.strategy {
            Strategy::Adaptive => spin_budget(params),
            _ => 0,
        };
        let (prim, fds) = self.prim(
            &map,
            true,
            &mut Vec::new(),
            sem.clone(),
            (spin_yield, spin_ns),
        )?;
        inherit.extend(fds);
        let spec = Spec {
            segment,
            cap,
            spin_yield,
            read: params.shm_read,
            spin_ns,
            sem: sem.as_ref().map(|s| s.id()),
            huge: params.shm_huge,
        };
        let geometry = (cap, params.size, params.shm_read);
        let chan = self.channel(map, geometry, PARENT, prim, names, (sysv_seg, sem));
        Ok((spec.encode(), inherit, chan))
    }

    /// The peer's side over a mapped segment: checks the header the parent wrote, attaches
    /// the wake-up primitive and builds the channel.
    pub(crate) fn join_over(
        &self,
        map: Mapping,
        spec: &str,
        mut inherited: Vec<OwnedFd>,
        params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        let id = self.info.id;
        let s = Spec::decode(spec).ok_or_else(|| {
            BackendError::invalid(id, spec, "malformed shared-memory description")
        })?;
        if map.len() < segment_len(s.cap, params.size) {
            return Err(BackendError::invalid(
                id,
                spec,
                "the segment is smaller than described",
            ));
        }
        // SAFETY: the mapping is at least one page long and page aligned; the header was
        // written before the peer started and is only read here.
        let h = unsafe { header(&map).read() };
        if h.magic != MAGIC
            || h.capacity != s.cap as u64
            || h.size != params.size as u64
            || h.strategy != self.strategy as u64
        {
            return Err(BackendError::invalid(
                id,
                spec,
                "the segment was not prepared for this run",
            ));
        }
        let sem = match (self.strategy, s.sem) {
            (Strategy::SysvSem, Some(sid)) => {
                Some(Arc::new(SysvSemSet::open(sid, EVENTS).map_err(|e| {
                    self.err("open", format!("System V semaphore set {sid}"), e)
                })?))
            }
            (Strategy::SysvSem, None) => {
                return Err(BackendError::invalid(id, spec, "no semaphore set"))
            }
            _ => None,
        };
        let (prim, _) = self.prim(&map, false, &mut inherited, sem, (s.spin_yield, s.spin_ns))?;
        if !inherited.is_empty() {
            return Err(BackendError::invalid(
                id,
                "inherited descriptors",
                "more than this mechanism uses",
            ));
        }
        Ok(Box::new(self.channel(
            Arc::new(map),
            (s.cap, params.size, s.read),
            PEER,
            prim,
            None,
            (None, None),
        )))
    }
}

/// The segment a spec names and the bytes it must have (for mechanisms that map it
/// themselves, such as the shared_memory crate).
#[cfg_attr(not(feature = "shared-memory-crate"), allow(dead_code))]
pub(crate) fn spec_segment(spec: &str, size: usize) -> Option<(String, usize)> {
    Spec::decode(spec).map(|s| (s.segment, segment_len(s.cap, size)))
}

/// Bytes of a segment for rings of `ring` bytes each carrying messages of `size`.
#[cfg_attr(not(feature = "shared-memory-crate"), allow(dead_code))]
pub(crate) fn segment_bytes(ring: usize, size: usize) -> usize {
    segment_len(capacity(ring), size)
}

fn header(map: &Mapping) -> *mut Header {
    map.base().cast()
}

impl Mechanism for Shm {
    fn info(&self) -> &'static MechanismInfo {
        self.info
    }

    fn setup_note(&self) -> Option<&'static str> {
        match self.strategy {
            Strategy::Eventfd => Some("the segment is opened by name; its eventfds pass over a Unix socket (SCM_RIGHTS), as does the segment itself with --shm-segment memfd"),
            _ => Some("the segment is opened by name (posix, sysv); with --shm-segment memfd it passes over a Unix socket (SCM_RIGHTS)"),
        }
    }

    /// A split channel has two threads waiting in the parent; a spinning waiter would
    /// starve the other on their shared CPU, so `shm-spin` does not split.
    fn duplex(&self) -> bool {
        !matches!(self.strategy, Strategy::Spin)
    }

    fn copies(&self, params: &ChannelParams) -> u8 {
        ring_copies(params.shm_read)
    }

    fn unsupported(&self, params: &ChannelParams, _limits: &Limits) -> Option<String> {
        let cap = capacity(params.shm_ring);
        if params.shm_huge {
            let (free, page) = huge_pages_free();
            let len = mapped_len(cap, params.size, true);
            if let Some(why) = huge_refusal(params.shm_segment, len, free, page) {
                return Some(why);
            }
        }
        if params.size > cap {
            return Some(format!(
                "a message of {} bytes does not fit the shared-memory ring of {cap} bytes; raise it with --shm-ring",
                params.size
            ));
        }
        if self.strategy == Strategy::Spin && params.pin == Pin::Same {
            return Some("spinning needs two CPUs: with --pin same the spinning side holds the CPU the other side needs (use --pin cross, or --pin none to spin with a sched_yield back-off)".into());
        }
        None
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        let (spec, inherit, chan) = self.offer_parts(params)?;
        Ok(Offer {
            spec,
            inherit,
            connect: Box::new(move |_| Ok(Box::new(chan))),
        })
    }

    fn fan_in(&self) -> super::fanin::Form {
        use super::fanin::Form;
        match self.strategy {
            Strategy::Futex | Strategy::Eventfd => Form::Own,
            Strategy::Spin => Form::Unsupported("a spinning server and N spinning clients need N+1 CPUs"),
            Strategy::Adaptive => Form::Unsupported("not built: a server would spin over N clients' rings before its futex_waitv; use shm-futex"),
            _ => Form::Unsupported("a server waits on all its clients' rings at once only with futex words (futex_waitv) or eventfds (poll); a semaphore or condition variable waits on one object, so it would need a thread per client"),
        }
    }

    fn fan_in_limit(&self, _params: &ChannelParams, clients: usize) -> Option<String> {
        (clients > crate::sys::futex::WAITV_MAX).then(|| {
            format!(
                "futex_waitv waits on at most {} words",
                crate::sys::futex::WAITV_MAX
            )
        })
    }

    /// A ring pair (its own segment) per client, joined as one-to-one; the server sleeps
    /// on every client's request word at once with `futex_waitv` (shm-futex), or polls
    /// every client's request eventfd (shm-eventfd).
    fn offer_fan_in(
        &self,
        params: &ChannelParams,
        clients: usize,
    ) -> Result<FanInOffer, BackendError> {
        if let Some(why) = self.fan_in().unsupported() {
            return Err(BackendError::invalid(self.info.id, "--clients", why));
        }
        if let Some(why) = self.fan_in_limit(params, clients) {
            return Err(BackendError::invalid(self.info.id, "--clients", &why));
        }
        let mut offers = Vec::with_capacity(clients);
        let mut chans = Vec::with_capacity(clients);
        for _ in 0..clients {
            let (spec, inherit, chan) = self.offer_parts(params)?;
            offers.push(ClientOffer { spec, inherit });
            chans.push(chan);
        }
        let hub = ShmHub::new(chans);
        Ok(FanInOffer {
            clients: offers,
            connect: Box::new(move |_| Ok(Box::new(hub) as Box<dyn Hub>)),
        })
    }

    fn join(
        &self,
        spec: &str,
        mut inherited: Vec<OwnedFd>,
        params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        let id = self.info.id;
        let s = Spec::decode(spec).ok_or_else(|| {
            BackendError::invalid(id, spec, "malformed shared-memory description")
        })?;
        let len = mapped_len(s.cap, params.size, s.huge);
        let map = match s.segment.split_once(':') {
            Some(("posix", name)) if valid_shm_name(name) => {
                let fd = seg::posix_open(name, len).map_err(|e| self.err("open", name, e))?;
                Mapping::map(&fd, len).map_err(|e| self.err("map", name, e))?
            }
            Some(("sysv", sid)) => {
                let sid: libc::c_int = sid
                    .parse()
                    .map_err(|_| BackendError::invalid(id, spec, "bad segment id"))?;
                seg::sysv_check(sid)
                    .map_err(|e| self.err("use", format!("System V segment {sid}"), e))?;
                Mapping::attach_sysv(sid, len)
                    .map_err(|e| self.err("attach", format!("System V segment {sid}"), e))?
            }
            None if s.segment == "memfd" => {
                if inherited.is_empty() {
                    return Err(BackendError::invalid(
                        id,
                        "inherited descriptors",
                        "missing the memfd",
                    ));
                }
                let fd = inherited.remove(0);
                let st = nix::sys::stat::fstat(std::os::fd::AsFd::as_fd(&fd))
                    .map_err(|e| self.err("inspect", "the memfd", e))?;
                if st.st_size as usize != len {
                    return Err(BackendError::invalid(
                        id,
                        "the memfd",
                        "its size does not match the description",
                    ));
                }
                Mapping::map(&fd, len).map_err(|e| self.err("map", "the memfd", e))?
            }
            _ => return Err(BackendError::invalid(id, spec, "unknown segment")),
        };
        self.join_over(map, spec, inherited, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_fits() {
        let cap = capacity(DEFAULT_RING);
        assert_eq!(cap % PAGE, 0);
        for size in [1, 64, 4096, 1 << 20, cap] {
            let len = ring_len(cap, size);
            let (h1, d1) = ring_at(1, cap, size);
            assert_eq!(d1 + len, segment_len(cap, size));
            assert!(h1 >= ring_at(0, cap, size).1 + ring::data_len(cap, size));
            assert!(ring::slots(cap, size) >= 1);
        }
        assert_eq!(ring::slots(cap, 1 << 20), 2, "two 1 MiB messages in flight");
        assert_eq!(capacity(1), PAGE);
    }

    /// Both ends of a memfd-backed channel in this process.
    fn pair(m: &Shm, read: Read, size: usize) -> (Box<dyn Channel>, Box<dyn Channel>) {
        let mut params = ChannelParams::new(size);
        params.shm_segment = Segment::Memfd;
        params.shm_read = read;
        params.pin = Pin::None;
        let offer = m.offer(&params).expect("offer");
        let peer = m.join(&offer.spec, offer.inherit, &params).expect("join");
        let gone = || false;
        let rv = super::super::Rendezvous::new(
            std::time::Instant::now() + std::time::Duration::from_secs(5),
            &gone,
        );
        let parent = (offer.connect)(&rv).expect("connect");
        (parent, peer)
    }

    #[test]
    fn in_place_reads_show_the_slot_and_copy_nothing() {
        for (read, copied) in [(Read::InPlace, false), (Read::Copy, true)] {
            let (mut a, mut b) = pair(&SHM_FUTEX, read, 100);
            let msg: Vec<u8> = (0..100u8).collect();
            a.send(&msg).unwrap();
            let mut buf = vec![0xEEu8; 100];
            let mut seen = Vec::new();
            let n = b
                .recv_in_place(&mut buf, &mut |got| seen = got.to_vec())
                .unwrap();
            assert_eq!((n, &seen), (100, &msg), "{read:?}");
            assert_eq!(
                buf == msg,
                copied,
                "{read:?}: the buffer is untouched only in place"
            );
            // The slot was freed: the ring takes as many more as it holds.
            for _ in 0..ring::slots(capacity(DEFAULT_RING), 100) {
                a.send(&msg).unwrap();
            }
        }
    }

    #[test]
    fn a_message_of_another_size_fails_instead_of_corrupting() {
        let (mut a, mut b) = pair(&SHM_SPIN, Read::Copy, 64);
        let e = a.send(&[1u8; 65]).unwrap_err();
        assert!(
            e.to_string().contains("messages of 64 bytes, not 65"),
            "{e}"
        );
        a.send(&[2u8; 64]).unwrap();
        assert!(b.recv(&mut [0u8; 32]).is_err());
        let mut buf = [0u8; 64];
        assert_eq!(b.recv(&mut buf).unwrap(), 64);
        assert_eq!(buf, [2u8; 64]);
    }

    #[test]
    fn the_adaptive_budget_follows_the_placement() {
        let mut p = ChannelParams::new(64);
        p.pin = Pin::Cross;
        assert_eq!(spin_budget(&p), DEFAULT_SPIN_NS);
        p.spin_ns = Some(3_000);
        assert_eq!(spin_budget(&p), 3_000);
        p.pin = Pin::Same;
        assert_eq!(
            spin_budget(&p),
            0,
            "no polling for a side that shares the CPU"
        );
    }

    #[test]
    fn huge_pages_are_refused_with_the_setting_that_would_allow_them() {
        let two = 2 * HUGE_PAGE;
        let posix = huge_refusal(Segment::Posix, two, Some(100), Some(2048)).unwrap();
        assert!(posix.contains("--shm-segment memfd or sysv"), "{posix}");
        let none = huge_refusal(Segment::Memfd, two + 1, Some(2), Some(2048)).unwrap();
        assert!(none.contains("needs 3 of 2 MiB and 2 are free"), "{none}");
        assert!(none.contains("vm.nr_hugepages"), "{none}");
        let gig = huge_refusal(Segment::Sysv, two, Some(9), Some(1 << 20)).unwrap();
        assert!(gig.contains("1048576 KiB"), "{gig}");
        assert_eq!(huge_refusal(Segment::Sysv, two, Some(2), Some(2048)), None);
        assert_eq!(mapped_len(capacity(4096), 64, true) % HUGE_PAGE, 0);
    }

    #[test]
    fn spec_round_trips_and_rejects_junk() {
        let s = Spec {
            segment: "posix:/ipcbench-1-ab".into(),
            cap: 8192,
            spin_yield: true,
            read: Read::InPlace,
            spin_ns: 12_000,
            sem: Some(7),
            huge: true,
        };
        let d = Spec::decode(&s.encode()).unwrap();
        assert!(d.huge);
        assert_eq!(
            (
                d.segment.as_str(),
                d.cap,
                d.spin_yield,
                d.read,
                d.spin_ns,
                d.sem
            ),
            (
                "posix:/ipcbench-1-ab",
                8192,
                true,
                Read::InPlace,
                12_000,
                Some(7)
            )
        );
        for bad in [
            "",
            "seg=posix:/x",
            "seg=memfd;cap=100",
            "seg=memfd;cap=4096;evil=1",
            "cap=4096",
        ] {
            assert!(Spec::decode(bad).is_none(), "{bad}");
        }
        assert!(valid_shm_name("/ipcbench-12-00ff"));
        assert!(!valid_shm_name("/etc/passwd"));
    }
}
