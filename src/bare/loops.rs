//! The bare ping-pong loops, one per kind: each side does the least its mechanism allows
//! (copy the message in, notify, wait, copy the answer out) with direct system calls and
//! nothing of the harness. A kind is a `Bounce`: the timing loop is generic over it, so
//! nothing is dispatched at run time.

use std::io;
use std::io::{Read, Write};
use std::os::fd::{AsFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use nix::mqueue::MqdT;

use super::{Kind, Side};
use crate::backends::shm;
use crate::sys::fd::RawFile;
use crate::sys::futex;
use crate::sys::sem::ShmSem;
use crate::sys::shm::{prefetch, Mapping};
use crate::sys::sysv::{MsgBuf, MsgQueue};

/// One side of one kind: `ping` sends a message and waits for the answer, `pong` waits
/// for a message and answers it.
pub trait Bounce {
    fn ping(&mut self) -> io::Result<()>;
    fn pong(&mut self) -> io::Result<()>;
}

/// The shared page's layout: control words one cache line apart, then the two message
/// areas (to the pong side, then back), page aligned.
const WORD_STRIDE: usize = 64;
const SEMS_AT: usize = 512;
const PAGE: usize = 4096;

/// Bytes of the shared segment whose two message areas hold `area` bytes each.
pub fn segment_len(area: usize) -> usize {
    PAGE + 2 * area.div_ceil(PAGE).max(1) * PAGE
}

/// The bytes each direction's area must hold for `kind` with messages of `size`: one
/// message, or for the ring the slots of `shm-spin`'s default ring.
pub fn area_for(kind: Kind, size: usize) -> usize {
    match kind {
        Kind::Ring => shm::ring_slots(shm::ring_for(0, size), size) * shm::ring_stride(size),
        k => k.size(size),
    }
}

/// A mapped shared segment laid out as above.
pub struct Shared {
    map: Mapping,
    area: usize,
}

impl Shared {
    pub fn map(fd: &OwnedFd, size: usize) -> io::Result<Shared> {
        let len = segment_len(size);
        let st = nix::sys::stat::fstat(fd.as_fd())?;
        if st.st_size as usize != len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the shared segment's size does not match the message size",
            ));
        }
        Ok(Shared {
            map: Mapping::map(fd, len)?,
            area: size.div_ceil(PAGE).max(1) * PAGE,
        })
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        debug_assert!(i * WORD_STRIDE + 4 <= SEMS_AT);
        // SAFETY: the offset is inside the first page of the mapping, 64-byte aligned, and
        // both processes access the word only atomically; `self` keeps the mapping alive.
        unsafe { &*self.map.base().add(i * WORD_STRIDE).cast::<AtomicU32>() }
    }

    fn line(&self) -> &AtomicU64 {
        // SAFETY: as in `word` (offset 0 is page aligned).
        unsafe { &*self.map.base().cast::<AtomicU64>() }
    }

    fn sem_ptr(&self, i: usize) -> *mut libc::sem_t {
        const _: () = assert!(SEMS_AT + 2 * WORD_STRIDE <= PAGE);
        const _: () = assert!(std::mem::size_of::<libc::sem_t>() <= WORD_STRIDE);
        // SAFETY: SEMS_AT + i * 64 (i < 2) stays inside the first page.
        unsafe { self.map.base().add(SEMS_AT + i * WORD_STRIDE).cast() }
    }

    /// The orchestrator's one-time set-up of the two semaphores (before either side runs).
    pub fn init_sems(&self) -> io::Result<()> {
        for i in 0..2 {
            // SAFETY: the pointer is aligned inside the mapping, which outlives this call;
            // no process uses the semaphores before they are initialised here.
            unsafe { ShmSem::init(self.sem_ptr(i))? };
        }
        Ok(())
    }

    fn sem(&self, i: usize) -> ShmSem {
        // SAFETY: initialised by the orchestrator before this side started; the mapping
        // lives as long as the returned handle's user (the loop holding `self`).
        unsafe { ShmSem::attach(self.sem_ptr(i)) }
    }

    /// The start of message area `i` (0 or 1).
    fn area(&self, i: usize) -> *mut u8 {
        debug_assert!(i < 2);
        // SAFETY: PAGE + i * area stays inside the mapping (`segment_len`).
        unsafe { self.map.base().add(PAGE + i * self.area) }
    }

    /// Copies `msg` into message area `i`.
    fn put(&self, i: usize, msg: &[u8]) {
        debug_assert!(msg.len() <= self.area && i < 2);
        // SAFETY: area `i` spans `self.area` bytes from PAGE + i * area, inside the mapping;
        // the protocol gives it to one side at a time.
        unsafe {
            std::ptr::copy_nonoverlapping(
                msg.as_ptr(),
                self.map.base().add(PAGE + i * self.area),
                msg.len(),
            )
        }
    }

    /// Copies message area `i` out into `buf`.
    fn get(&self, i: usize, buf: &mut [u8]) {
        debug_assert!(buf.len() <= self.area && i < 2);
        // SAFETY: as in `put`, reading.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.base().add(PAGE + i * self.area),
                buf.as_mut_ptr(),
                buf.len(),
            )
        }
    }
}

/// `kind`'s inherited descriptors, exactly `N` of them.
fn inherited<const N: usize>(kind: Kind, fds: Vec<OwnedFd>) -> io::Result<[OwnedFd; N]> {
    crate::backends::expect_fds(kind.mechanism(), fds).map_err(io::Error::other)
}

/// This side's (sending, receiving) pair of the two one-way objects that the orchestrator
/// hands both sides in one order: [to pong, to ping].
fn mine<T>(side: Side, [to_pong, to_ping]: [T; 2]) -> (T, T) {
    match side {
        Side::Ping => (to_pong, to_ping),
        Side::Pong => (to_ping, to_pong),
    }
}

/// Opens `side` of `kind` over the inherited descriptors and queue ids and runs its loop
/// (`super::run`, monomorphised for each kind: nothing is dispatched at run time).
pub fn run(
    kind: Kind,
    side: Side,
    size: usize,
    fds: Vec<OwnedFd>,
    ids: &[i32],
    rounds: super::Rounds,
) -> io::Result<Option<u64>> {
    let (out, inb) = (vec![0x5A; size], vec![0; size]);
    match kind {
        Kind::Line => {
            let [page] = inherited(kind, fds)?;
            let shm = Shared::map(&page, 8)?;
            super::run(side, rounds, Line { shm, next: 1 })
        }
        Kind::Ring => {
            let [segment] = inherited(kind, fds)?;
            let end = area_for(kind, size);
            let shm = Shared::map(&segment, end)?;
            let mine = usize::from(side == Side::Pong);
            let ring = BareRing {
                shm,
                mine,
                stride: shm::ring_stride(size),
                end,
                at: 0,
                next: 1,
                out,
                inb,
            };
            super::run(side, rounds, ring)
        }
        Kind::Pipe | Kind::Fifo | Kind::UnixStream => {
            let (tx, rx) = match kind {
                // [to-pong read, to-pong write, to-ping read, to-ping write]
                Kind::Pipe => {
                    let [a_r, a_w, b_r, b_w] = inherited(kind, fds)?;
                    let (tx, _) = mine(side, [a_w, b_w]);
                    let (_, rx) = mine(side, [a_r, b_r]);
                    (tx, rx)
                }
                // The two FIFOs, each opened read-write.
                Kind::Fifo => mine(side, inherited(kind, fds)?),
                // The socket pair: one socket each, both ways.
                _ => {
                    let (s, _) = mine(side, inherited(kind, fds)?);
                    (s.try_clone()?, s)
                }
            };
            let (tx, rx) = (RawFile(tx), RawFile(rx));
            super::run(side, rounds, Stream { tx, rx, out, inb })
        }
        Kind::PosixMq => {
            let (tx, rx) = mine(side, inherited(kind, fds)?);
            let (tx, rx) = (mqd(tx), mqd(rx));
            super::run(side, rounds, Mq { tx, rx, out, inb })
        }
        Kind::SysvMq => {
            let &[to_pong, to_ping] = ids else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "expected two System V queue ids",
                ));
            };
            let open = |id: i32| MsgQueue::open(id).map_err(io::Error::other);
            let (tx, rx) = mine(side, [to_pong, to_ping]);
            let (tx, rx) = (open(tx)?, open(rx)?);
            let mut out = MsgBuf::new(size);
            out.payload_mut().fill(0x5A);
            let inb = MsgBuf::new(size);
            super::run(side, rounds, Sysv { tx, rx, out, inb })
        }
        Kind::ShmFutex | Kind::ShmEventfd | Kind::ShmPosixSem => {
            let (segment, wake) = match kind {
                Kind::ShmEventfd => {
                    let [segment, to_pong, to_ping] = inherited(kind, fds)?;
                    let (tx, rx) = mine(side, [to_pong, to_ping]);
                    (segment, Wake::Eventfd([RawFile(tx), RawFile(rx)]))
                }
                Kind::ShmPosixSem => {
                    let [segment] = inherited(kind, fds)?;
                    (segment, Wake::Sem)
                }
                _ => {
                    let [segment] = inherited(kind, fds)?;
                    (segment, Wake::Futex { seen: [0, 0] })
                }
            };
            let shm = Shared::map(&segment, size)?;
            // Ping writes area 0 and notifies event 0; pong the reverse.
            let mine = usize::from(side == Side::Pong);
            super::run(
                side,
                rounds,
                Shm {
                    shm,
                    wake,
                    mine,
                    out,
                    inb,
                },
            )
        }
    }
}

fn mqd(fd: OwnedFd) -> MqdT {
    let raw = fd.into_raw_fd();
    // SAFETY: on Linux a message queue descriptor is a file descriptor; this one was opened
    // by mq_open in the orchestrator, inherited, and is owned by nothing else here.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) }
}

/// One 8-byte word bounced through a shared line: odd values go to pong, even ones back.
struct Line {
    shm: Shared,
    next: u64,
}

impl Bounce for Line {
    fn ping(&mut self) -> io::Result<()> {
        let w = self.shm.line();
        w.store(self.next, Ordering::Release);
        while w.load(Ordering::Acquire) != self.next + 1 {
            std::hint::spin_loop();
        }
        self.next += 2;
        Ok(())
    }

    fn pong(&mut self) -> io::Result<()> {
        let w = self.shm.line();
        while w.load(Ordering::Acquire) != self.next {
            std::hint::spin_loop();
        }
        w.store(self.next + 1, Ordering::Release);
        self.next += 2;
        Ok(())
    }
}

/// `shm-spin`'s ring with nothing around it: message k goes to slot k mod N of the
/// sender's area, its sequence word (k + 1) stored last; the receiver polls that word,
/// prefetching the slot's second line meanwhile, and copies the message out. A ping-pong
/// has one message in flight, so no index is kept: the slots are walked in step by both.
/// Polling is tight for the first `TIGHT_POLLS` polls, then with `PAUSE`, as `shm-spin`'s.
struct BareRing {
    shm: Shared,
    /// The area this side writes (the other side's is `1 - mine`).
    mine: usize,
    stride: usize,
    /// The bytes of slots in each area.
    end: usize,
    /// The offset of the current slot in both areas.
    at: usize,
    /// The current sequence word's value.
    next: u64,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl BareRing {
    fn slot(&self, i: usize) -> *mut u8 {
        // SAFETY: `at + stride <= end`, the bytes of slots in area `i`, which lies inside
        // the mapping (`area_for` sized it).
        unsafe { self.shm.area(i).add(self.at) }
    }

    fn seq(&self, i: usize) -> &AtomicU64 {
        // SAFETY: a slot starts 64-byte aligned (the area is page aligned, the stride whole
        // lines) with its sequence word, which both sides access only atomically.
        unsafe { &*self.slot(i).cast::<AtomicU64>() }
    }

    fn send(&mut self) {
        let slot = self.slot(self.mine);
        // SAFETY: the message's bytes follow the word inside the slot; the receiver reads
        // them only after the word below says they are there.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.out.as_ptr(),
                slot.add(shm::RING_SEQ),
                self.out.len(),
            )
        };
        self.seq(self.mine).store(self.next, Ordering::Release);
    }

    fn receive(&mut self) {
        let theirs = 1 - self.mine;
        let mut polls = 0u32;
        while self.seq(theirs).load(Ordering::Acquire) != self.next {
            if self.stride > shm::RING_LINE {
                prefetch(self.slot(theirs).wrapping_add(shm::RING_LINE));
            }
            polls = polls.saturating_add(1);
            if polls >= shm::TIGHT_POLLS {
                std::hint::spin_loop();
            }
        }
        let slot = self.slot(theirs);
        // SAFETY: as in `send`, reading what the word published (Acquire above).
        unsafe {
            std::ptr::copy_nonoverlapping(
                slot.add(shm::RING_SEQ),
                self.inb.as_mut_ptr(),
                self.inb.len(),
            )
        };
    }

    fn advance(&mut self) {
        self.next += 1;
        self.at += self.stride;
        if self.at == self.end {
            self.at = 0;
        }
    }
}

impl Bounce for BareRing {
    fn ping(&mut self) -> io::Result<()> {
        self.send();
        self.receive();
        self.advance();
        Ok(())
    }

    fn pong(&mut self) -> io::Result<()> {
        self.receive();
        self.send();
        self.advance();
        Ok(())
    }
}

/// A byte stream each way (pipe, FIFO, socket): write the message, read the answer whole,
/// with direct system calls (`RawFile`).
struct Stream {
    tx: RawFile,
    rx: RawFile,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl Bounce for Stream {
    fn ping(&mut self) -> io::Result<()> {
        self.tx.write_all(&self.out)?;
        self.rx.read_exact(&mut self.inb)
    }

    fn pong(&mut self) -> io::Result<()> {
        self.rx.read_exact(&mut self.inb)?;
        self.tx.write_all(&self.out)
    }
}

/// POSIX message queues, one per direction, with the untimed calls.
struct Mq {
    tx: MqdT,
    rx: MqdT,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl Bounce for Mq {
    fn ping(&mut self) -> io::Result<()> {
        nix::mqueue::mq_send(&self.tx, &self.out, 0)?;
        let mut prio = 0;
        nix::mqueue::mq_receive(&self.rx, &mut self.inb, &mut prio)?;
        Ok(())
    }

    fn pong(&mut self) -> io::Result<()> {
        let mut prio = 0;
        nix::mqueue::mq_receive(&self.rx, &mut self.inb, &mut prio)?;
        nix::mqueue::mq_send(&self.tx, &self.out, 0)?;
        Ok(())
    }
}

/// System V message queues, one per direction.
struct Sysv {
    tx: MsgQueue,
    rx: MsgQueue,
    out: MsgBuf,
    inb: MsgBuf,
}

impl Bounce for Sysv {
    fn ping(&mut self) -> io::Result<()> {
        self.tx.send(&self.out)?;
        self.rx.recv(&mut self.inb).map(drop)
    }

    fn pong(&mut self) -> io::Result<()> {
        self.rx.recv(&mut self.inb)?;
        self.tx.send(&self.out)
    }
}

/// How a shared-memory side sleeps until the other side's message is there.
enum Wake {
    /// Event `i`'s futex word is bumped per message; `seen` is the last value taken.
    Futex { seen: [u32; 2] },
    /// [the eventfd this side writes, the one it reads].
    Eventfd([RawFile; 2]),
    /// Semaphore `i` in the segment.
    Sem,
}

/// Shared memory: copy in, notify, sleep until notified, copy out.
struct Shm {
    shm: Shared,
    wake: Wake,
    /// The message area and event this side writes (the other side's is `1 - mine`).
    mine: usize,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl Shm {
    fn notify(&mut self) -> io::Result<()> {
        let i = self.mine;
        match &mut self.wake {
            Wake::Futex { .. } => {
                self.shm.word(i).fetch_add(1, Ordering::Release);
                futex::wake(self.shm.word(i), 1)
            }
            Wake::Eventfd(fds) => fds[0].write_all(&1u64.to_ne_bytes()),
            Wake::Sem => self.shm.sem(i).post(),
        }
    }

    fn wait(&mut self) -> io::Result<()> {
        let i = 1 - self.mine;
        match &mut self.wake {
            Wake::Futex { seen } => loop {
                let w = self.shm.word(i);
                let v = w.load(Ordering::Acquire);
                if v != seen[i] {
                    seen[i] = v;
                    return Ok(());
                }
                futex::wait_untimed(w, v)?;
            },
            Wake::Eventfd(fds) => {
                let mut b = [0u8; 8];
                fds[1].read_exact(&mut b)
            }
            Wake::Sem => self.shm.sem(i).wait(),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        self.shm.put(self.mine, &self.out);
        self.notify()
    }

    fn receive(&mut self) -> io::Result<()> {
        self.wait()?;
        self.shm.get(1 - self.mine, &mut self.inb);
        Ok(())
    }
}

impl Bounce for Shm {
    fn ping(&mut self) -> io::Result<()> {
        self.send()?;
        self.receive()
    }

    fn pong(&mut self) -> io::Result<()> {
        self.receive()?;
        self.send()
    }
}
