//! Synchronisation between processes (the classic second half of IPC): primitives measured
//! by the `handoff` workload (two processes take turns, A wakes B, B wakes A) and the `lock`
//! workload (both increment a shared counter under the lock; a lost update fails the run).
//! One file per primitive family; adding a primitive means one file and one line in `REGISTRY`.

mod broken;
mod filelock;
mod futex;
mod pthread;
mod sem;
mod signal;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use super::AbortHandle;
use crate::error::BackendError;
use crate::sys::shm::{self as seg, Mapping};

/// Every synchronisation primitive, in the order sweeps run them.
pub static REGISTRY: &[&dyn Primitive] = &[
    &pthread::MUTEX,
    &pthread::RWLOCK,
    &pthread::RWLOCK_READERS,
    &pthread::CONDVAR,
    &sem::UNNAMED,
    &sem::NAMED,
    &sem::SYSV,
    &filelock::FCNTL,
    &filelock::OFD,
    &filelock::FLOCK,
    &futex::FUTEX,
    &signal::SIGNAL,
    &broken::NO_LOCK,
];

/// Blocks the `signal` primitive's signal in the calling thread and the threads it starts.
pub fn block_handoff_signal() -> io::Result<()> {
    signal::block()
}

pub fn by_id(id: &str) -> Option<&'static dyn Primitive> {
    REGISTRY.iter().copied().find(|p| p.info().id == id)
}

#[derive(Debug, serde::Serialize)]
pub struct PrimitiveInfo {
    pub id: &'static str,
    pub summary: &'static str,
    pub handoff: bool,
    pub lock: bool,
    /// How the hand-off works with this primitive (mutexes and file locks cannot signal, so
    /// the waiting side polls a turn word under the lock).
    pub handoff_by: &'static str,
    /// Lock workload: 1 in N acquisitions writes (the rest read); 1 means all write.
    pub write_one_in: u32,
    /// Only selectable by name (deliberately broken primitives for tests).
    pub hidden: bool,
}

/// The page both processes map: the counter, the turn word, and room for the primitive.
pub struct SharedPage {
    map: Arc<Mapping>,
}

pub const PAGE: usize = 4096;
/// Where primitives may place their objects inside the page.
pub const OBJECTS_AT: usize = 256;

impl SharedPage {
    fn at<T>(&self, offset: usize) -> &T {
        // SAFETY: the offsets used are fixed, aligned for their types and inside the page,
        // which `self.map` keeps mapped; the types are atomics (valid for any bit pattern).
        unsafe { &*self.map.base().add(offset).cast::<T>() }
    }

    /// The counter the lock workload increments (a load and a store, not an atomic add, so
    /// a lock that fails to exclude loses updates).
    pub fn counter(&self) -> &AtomicU64 {
        self.at(0)
    }

    /// Whose turn it is in a hand-off: 0 parent, 1 peer.
    pub fn turn(&self) -> &AtomicU32 {
        self.at(64)
    }

    /// A spare word per role for primitives that need one (futex).
    pub fn word(&self, i: usize) -> &AtomicU32 {
        self.at(128 + 64 * i)
    }

    /// Raw room for in-page objects (sem_t, pthread objects), `PAGE - OBJECTS_AT` bytes.
    pub fn objects(&self) -> *mut u8 {
        // SAFETY: OBJECTS_AT < PAGE, inside the mapping.
        unsafe { self.map.base().add(OBJECTS_AT) }
    }

    pub fn mapping(&self) -> Arc<Mapping> {
        Arc::clone(&self.map)
    }
}

/// Which side of a pair this end is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Parent = 0,
    Peer = 1,
}

impl Role {
    pub fn other(self) -> Role {
        match self {
            Role::Parent => Role::Peer,
            Role::Peer => Role::Parent,
        }
    }
}

/// What every end holds: the shared page, which side it is, and the flag the exit hook
/// sets when the other process is gone.
pub struct Base {
    pub page: SharedPage,
    pub role: Role,
    pub aborted: Arc<AtomicBool>,
}

impl Base {
    pub fn new(page: SharedPage, role: Role) -> Base {
        Base {
            page,
            role,
            aborted: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// One process's handle on a primitive.
pub trait SyncEnd {
    fn lock(&mut self, write: bool) -> io::Result<()>;
    fn unlock(&mut self, write: bool) -> io::Result<()>;

    fn base(&self) -> &Base;

    fn page(&self) -> &SharedPage {
        &self.base().page
    }

    fn role(&self) -> Role {
        self.base().role
    }

    fn aborted(&self) -> &AtomicBool {
        &self.base().aborted
    }

    /// Hand-off: gives the turn to the other side and wakes it. The default, for locks
    /// that cannot signal, writes the turn word under the lock.
    fn give(&mut self) -> io::Result<()> {
        self.lock(true)?;
        self.page()
            .turn()
            .store(self.role().other() as u32, Ordering::Release);
        self.unlock(true)
    }

    /// Hand-off: returns once it is this side's turn. The default polls the turn word
    /// under the lock, yielding the CPU between looks.
    fn take(&mut self) -> io::Result<()> {
        loop {
            self.lock(true)?;
            let mine = self.page().turn().load(Ordering::Acquire) == self.role() as u32;
            self.unlock(true)?;
            if mine {
                return Ok(());
            }
            if self.aborted().load(Ordering::Relaxed) {
                return Err(gone());
            }
            let _ = nix::sched::sched_yield();
        }
    }

    /// Unblocks this end once the other process is gone (must own what it touches). The
    /// default sets the flag that bounded waits check.
    fn abort_handle(&self) -> AbortHandle {
        let flag = Arc::clone(&self.base().aborted);
        Box::new(move || flag.store(true, Ordering::Release))
    }

    /// The parent learns its peer's process id once it has started (signals need it).
    fn set_peer(&mut self, _pid: i32) {}

    /// Called once the peer holds every object: names are removed.
    fn peer_attached(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

pub fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the peer is gone")
}

/// What a primitive's `create` returns: the parent's end, the spec for the peer, and any
/// descriptors beyond the shared page to hand it.
pub type Created = (Box<dyn SyncEnd>, String, Vec<OwnedFd>);

/// What the parent made: its end, what to tell the peer, what to hand it.
pub struct SyncOffer {
    pub end: Box<dyn SyncEnd>,
    pub spec: String,
    /// The page's memfd first, then any primitive-specific descriptors.
    pub inherit: Vec<OwnedFd>,
}

pub trait Primitive: Send + Sync {
    fn info(&self) -> &'static PrimitiveInfo;
    /// Parent: create the primitive in (or beside) the fresh shared page.
    fn create(&self, page: SharedPage) -> Result<Created, BackendError>;
    /// Peer: attach to what the parent made; validates `spec` and `fds`.
    fn attach(
        &self,
        page: SharedPage,
        spec: &str,
        fds: Vec<OwnedFd>,
    ) -> Result<Box<dyn SyncEnd>, BackendError>;
}

/// Parent side: a fresh zeroed page and the primitive in it.
pub fn offer(p: &'static dyn Primitive) -> Result<SyncOffer, BackendError> {
    let id = p.info().id;
    let fd = seg::memfd(PAGE).map_err(|e| BackendError::new(id, "create", "a shared page", e))?;
    let map =
        Mapping::map(&fd, PAGE).map_err(|e| BackendError::new(id, "map", "a shared page", e))?;
    let (end, spec, extra) = p.create(SharedPage { map: Arc::new(map) })?;
    let mut inherit = vec![fd];
    inherit.extend(extra);
    Ok(SyncOffer { end, spec, inherit })
}

/// Peer side: map the inherited page, then attach the primitive.
pub fn join(
    p: &'static dyn Primitive,
    spec: &str,
    mut fds: Vec<OwnedFd>,
) -> Result<Box<dyn SyncEnd>, BackendError> {
    let id = p.info().id;
    if fds.is_empty() {
        return Err(BackendError::invalid(
            id,
            "inherited descriptors",
            "missing the shared page",
        ));
    }
    let fd = fds.remove(0);
    let st = nix::sys::stat::fstat(std::os::fd::AsFd::as_fd(&fd))
        .map_err(|e| BackendError::new(id, "inspect", "the shared page", e))?;
    if st.st_size as usize != PAGE {
        return Err(BackendError::invalid(id, "the shared page", "wrong size"));
    }
    let map =
        Mapping::map(&fd, PAGE).map_err(|e| BackendError::new(id, "map", "the shared page", e))?;
    p.attach(SharedPage { map: Arc::new(map) }, spec, fds)
}
