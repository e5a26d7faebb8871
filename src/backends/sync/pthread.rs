//! `pthread-mutex` (process-shared, robust: a holder's death is reported as EOWNERDEAD and
//! recovered), `pthread-rwlock` (writers), `pthread-rwlock-readers` (9 reads to 1 write) and
//! `pthread-condvar` (hand-off only: mutex, condition variable and a turn word).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{gone, Base, Created, Primitive, PrimitiveInfo, Role, SharedPage, SyncEnd};
use crate::backends::AbortHandle;
use crate::backends::{expect_fds, expect_no_spec};
use crate::error::BackendError;
use crate::sys::pthread::{ShmCondvar, ShmRwLock};

#[derive(Clone, Copy)]
enum Kind {
    Mutex,
    RwLock,
    Condvar,
}

pub struct Pthread {
    info: PrimitiveInfo,
    kind: Kind,
}

pub static MUTEX: Pthread = Pthread {
    info: PrimitiveInfo {
        id: "pthread-mutex",
        summary: "process-shared robust pthread mutex in shared memory",
        handoff: true,
        lock: true,
        handoff_by: "a turn word polled under the mutex (a mutex cannot signal)",
        write_one_in: 1,
        hidden: false,
    },
    kind: Kind::Mutex,
};

pub static RWLOCK: Pthread = Pthread {
    info: PrimitiveInfo {
        id: "pthread-rwlock",
        summary: "process-shared pthread rwlock, every acquisition a writer",
        handoff: true,
        lock: true,
        handoff_by: "a turn word polled under the write lock",
        write_one_in: 1,
        hidden: false,
    },
    kind: Kind::RwLock,
};

pub static RWLOCK_READERS: Pthread = Pthread {
    info: PrimitiveInfo {
        id: "pthread-rwlock-readers",
        summary: "process-shared pthread rwlock, 9 read acquisitions to 1 write",
        handoff: false,
        lock: true,
        handoff_by: "",
        write_one_in: 10,
        hidden: false,
    },
    kind: Kind::RwLock,
};

pub static CONDVAR: Pthread = Pthread {
    info: PrimitiveInfo {
        id: "pthread-condvar",
        summary: "process-shared pthread condition variable with its robust mutex",
        handoff: true,
        lock: false,
        handoff_by: "a turn word under the mutex, waiting on the condition variable",
        write_one_in: 1,
        hidden: false,
    },
    kind: Kind::Condvar,
};

struct End {
    base: Base,
    kind: Kind,
    cv: ShmCondvar,
    rw: ShmRwLock,
}

const SLICE: Duration = Duration::from_millis(100);

impl SyncEnd for End {
    fn lock(&mut self, write: bool) -> io::Result<()> {
        match self.kind {
            Kind::Mutex | Kind::Condvar => self.cv.lock(),
            Kind::RwLock => loop {
                if self.rw.timed(write, SLICE)? {
                    return Ok(());
                }
                if self.base.aborted.load(Ordering::Relaxed) {
                    return Err(gone());
                }
            },
        }
    }

    fn unlock(&mut self, _write: bool) -> io::Result<()> {
        match self.kind {
            Kind::Mutex | Kind::Condvar => self.cv.unlock(),
            Kind::RwLock => self.rw.unlock(),
        }
        Ok(())
    }

    fn base(&self) -> &Base {
        &self.base
    }

    fn give(&mut self) -> io::Result<()> {
        if !matches!(self.kind, Kind::Condvar) {
            self.lock(true)?;
            self.base
                .page
                .turn()
                .store(self.base.role.other() as u32, Ordering::Release);
            return self.unlock(true);
        }
        self.cv.lock()?;
        self.base
            .page
            .turn()
            .store(self.base.role.other() as u32, Ordering::Release);
        self.cv.signal();
        self.cv.unlock();
        Ok(())
    }

    fn take(&mut self) -> io::Result<()> {
        if !matches!(self.kind, Kind::Condvar) {
            loop {
                self.lock(true)?;
                let mine = self.base.page.turn().load(Ordering::Acquire) == self.base.role as u32;
                self.unlock(true)?;
                if mine {
                    return Ok(());
                }
                if self.base.aborted.load(Ordering::Relaxed) {
                    return Err(gone());
                }
                let _ = nix::sched::sched_yield();
            }
        }
        self.cv.lock()?;
        while self.base.page.turn().load(Ordering::Acquire) != self.base.role as u32 {
            if self.base.aborted.load(Ordering::Relaxed) {
                self.cv.unlock();
                return Err(gone());
            }
            if let Err(e) = self.cv.wait() {
                self.cv.unlock();
                return Err(e);
            }
        }
        self.cv.unlock();
        Ok(())
    }

    fn abort_handle(&self) -> AbortHandle {
        let (flag, cv, map) = (
            Arc::clone(&self.base.aborted),
            self.cv,
            self.base.page.mapping(),
        );
        Box::new(move || {
            flag.store(true, Ordering::Release);
            cv.broadcast();
            drop(map);
        })
    }
}

impl Pthread {
    fn end(
        &self,
        page: SharedPage,
        role: Role,
        create: bool,
    ) -> Result<Box<dyn SyncEnd>, BackendError> {
        let base = page.objects();
        let m = base.cast::<libc::pthread_mutex_t>();
        // SAFETY: the objects area is 3840 bytes, 8-byte aligned; mutex at 0, condvar at 64,
        // rwlock at 128 all fit and stay mapped while `page` lives in the end.
        let (c, r) = unsafe {
            (
                base.add(64).cast::<libc::pthread_cond_t>(),
                base.add(128).cast::<libc::pthread_rwlock_t>(),
            )
        };
        let err = |e| BackendError::new(self.info.id, "initialise", "the shared objects", e);
        // SAFETY: as above; the parent initialises before the peer exists, the peer attaches.
        let (cv, rw) = unsafe {
            if create {
                (
                    ShmCondvar::init(m, c).map_err(err)?,
                    ShmRwLock::init(r).map_err(err)?,
                )
            } else {
                (ShmCondvar::attach(m, c), ShmRwLock::attach(r))
            }
        };
        Ok(Box::new(End {
            base: Base::new(page, role),
            kind: self.kind,
            cv,
            rw,
        }))
    }
}

impl Primitive for Pthread {
    fn info(&self) -> &'static PrimitiveInfo {
        // The statics above are the only instances.
        match (self.kind, self.info.write_one_in) {
            (Kind::Mutex, _) => &MUTEX.info,
            (Kind::RwLock, 1) => &RWLOCK.info,
            (Kind::RwLock, _) => &RWLOCK_READERS.info,
            (Kind::Condvar, _) => &CONDVAR.info,
        }
    }

    fn create(&self, page: SharedPage) -> Result<Created, BackendError> {
        Ok((
            self.end(page, Role::Parent, true)?,
            String::new(),
            Vec::new(),
        ))
    }

    fn attach(
        &self,
        page: SharedPage,
        spec: &str,
        fds: Vec<OwnedFd>,
    ) -> Result<Box<dyn SyncEnd>, BackendError> {
        expect_no_spec(self.info.id, spec)?;
        expect_fds::<0>(self.info.id, fds)?;
        self.end(page, Role::Peer, false)
    }
}
