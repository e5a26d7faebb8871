//! The bare ping-pong loops, one per kind: each side does the least its mechanism allows
//! (copy the message in, notify, wait, copy the answer out) with direct system calls and
//! nothing of the harness. A kind is a `Bounce`: the timing loop is generic over it, so
//! nothing is dispatched at run time.

use std::io;
use std::os::fd::{AsFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use nix::mqueue::MqdT;

use super::{Kind, Side};
use crate::sys::futex;
use crate::sys::sem::ShmSem;
use crate::sys::shm::Mapping;
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

/// Bytes of the shared segment for messages of `size` bytes.
pub fn segment_len(size: usize) -> usize {
    PAGE + 2 * size.div_ceil(PAGE).max(1) * PAGE
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

/// Opens `side` of `kind` over the inherited descriptors and queue ids and runs its loop
/// (`super::run`, monomorphised for each kind: nothing is dispatched at run time).
pub fn run(
    kind: Kind,
    side: Side,
    size: usize,
    mut fds: Vec<OwnedFd>,
    ids: &[i32],
    rounds: super::Rounds,
) -> io::Result<Option<u64>> {
    let ping = side == Side::Ping;
    let want = |n: usize, fds: &Vec<OwnedFd>| {
        if fds.len() == n {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("expected {n} inherited descriptors, got {}", fds.len()),
            ))
        }
    };
    match kind {
        Kind::Line => {
            want(1, &fds)?;
            let b = Line {
                shm: Shared::map(&fds[0], 8)?,
                next: 1,
            };
            super::run(side, rounds, b)
        }
        Kind::Pipe | Kind::Fifo | Kind::UnixStream => {
            // pipe: [to-pong read, to-pong write, to-ping read, to-ping write]; fifo: the
            // two FIFOs opened read-write; unix-stream: the socket pair.
            let (tx, rx) = match (kind, ping) {
                (Kind::Pipe, _) => {
                    want(4, &fds)?;
                    let mut it = fds.into_iter();
                    let (a_r, a_w, b_r, b_w) = (it.next(), it.next(), it.next(), it.next());
                    let pick = |x: Option<OwnedFd>| x.ok_or_else(|| io::Error::other("missing"));
                    if ping {
                        (pick(a_w)?, pick(b_r)?)
                    } else {
                        (pick(b_w)?, pick(a_r)?)
                    }
                }
                (Kind::Fifo, _) => {
                    want(2, &fds)?;
                    let b = fds.pop().ok_or_else(|| io::Error::other("missing"))?;
                    let a = fds.pop().ok_or_else(|| io::Error::other("missing"))?;
                    if ping {
                        (a, b)
                    } else {
                        (b, a)
                    }
                }
                _ => {
                    want(2, &fds)?;
                    let s = fds.swap_remove(if ping { 0 } else { 1 });
                    (s.try_clone()?, s)
                }
            };
            super::run(
                side,
                rounds,
                Stream {
                    tx,
                    rx,
                    out: vec![0x5A; size],
                    inb: vec![0; size],
                },
            )
        }
        Kind::PosixMq => {
            want(2, &fds)?;
            let b = mqd(fds.pop())?;
            let a = mqd(fds.pop())?;
            let (tx, rx) = if ping { (a, b) } else { (b, a) };
            super::run(
                side,
                rounds,
                Mq {
                    tx,
                    rx,
                    out: vec![0x5A; size],
                    inb: vec![0; size],
                },
            )
        }
        Kind::SysvMq => {
            let [a, b] = ids else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "expected two System V queue ids",
                ));
            };
            let open = |id: i32| MsgQueue::open(id).map_err(io::Error::other);
            let (tx, rx) = if ping {
                (open(*a)?, open(*b)?)
            } else {
                (open(*b)?, open(*a)?)
            };
            let mut out = MsgBuf::new(size);
            out.payload_mut().fill(0x5A);
            super::run(
                side,
                rounds,
                Sysv {
                    tx,
                    rx,
                    out,
                    inb: MsgBuf::new(size),
                },
            )
        }
        Kind::ShmFutex | Kind::ShmEventfd | Kind::ShmPosixSem => {
            let wake = match kind {
                Kind::ShmEventfd => {
                    want(3, &fds)?;
                    let b = fds.pop().ok_or_else(|| io::Error::other("missing"))?;
                    let a = fds.pop().ok_or_else(|| io::Error::other("missing"))?;
                    Wake::Eventfd(if ping { [a, b] } else { [b, a] })
                }
                Kind::ShmPosixSem => {
                    want(1, &fds)?;
                    Wake::Sem
                }
                _ => {
                    want(1, &fds)?;
                    Wake::Futex { seen: [0, 0] }
                }
            };
            let shm = Shared::map(&fds[0], size)?;
            super::run(
                side,
                rounds,
                Shm {
                    shm,
                    wake,
                    // Ping writes area 0 and notifies event 0; pong the reverse.
                    mine: usize::from(!ping),
                    out: vec![0x5A; size],
                    inb: vec![0; size],
                },
            )
        }
    }
}

fn mqd(fd: Option<OwnedFd>) -> io::Result<MqdT> {
    let fd = fd.ok_or_else(|| io::Error::other("missing a queue descriptor"))?;
    let raw = fd.into_raw_fd();
    // SAFETY: on Linux a message queue descriptor is a file descriptor; this one was opened
    // by mq_open in the orchestrator, inherited, and is owned by nothing else here.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) })
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

/// A byte stream each way (pipe, FIFO, socket): write the message, read the answer whole.
struct Stream {
    tx: OwnedFd,
    rx: OwnedFd,
    out: Vec<u8>,
    inb: Vec<u8>,
}

fn write_all(fd: &OwnedFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = rustix::io::write(fd, buf)?;
        buf = &buf[n..];
    }
    Ok(())
}

fn read_exact(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        let n = rustix::io::read(fd, &mut buf[at..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        at += n;
    }
    Ok(())
}

impl Bounce for Stream {
    fn ping(&mut self) -> io::Result<()> {
        write_all(&self.tx, &self.out)?;
        read_exact(&self.rx, &mut self.inb)
    }

    fn pong(&mut self) -> io::Result<()> {
        read_exact(&self.rx, &mut self.inb)?;
        write_all(&self.tx, &self.out)
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
    Eventfd([OwnedFd; 2]),
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
        match &self.wake {
            Wake::Futex { .. } => {
                self.shm.word(i).fetch_add(1, Ordering::Release);
                futex::wake(self.shm.word(i), 1)
            }
            Wake::Eventfd(fds) => write_all(&fds[0], &1u64.to_ne_bytes()),
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
                futex::wait(w, v)?;
            },
            Wake::Eventfd(fds) => {
                let mut b = [0u8; 8];
                read_exact(&fds[1], &mut b)
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
