//! Semaphores: `posix-sem-unnamed` (sem_init, process-shared, in the shared page),
//! `posix-sem-named` (sem_open with unique names, unlinked once the peer opened them) and
//! `sysv-sem` (one System V set, removed with the run). Hand-off posts the other side's
//! semaphore and waits on one's own; the lock is a binary semaphore.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{gone, Base, Created, Primitive, PrimitiveInfo, Role, SharedPage, SyncEnd};
use crate::backends::expect_fds;
use crate::backends::AbortHandle;
use crate::error::BackendError;
use crate::sys::fs::PREFIX;
use crate::sys::sem::{NamedSem, ShmSem, SysvSemSet};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Unnamed,
    Named,
    Sysv,
}

pub struct Sem {
    info: PrimitiveInfo,
    kind: Kind,
}

const fn info(id: &'static str, summary: &'static str) -> PrimitiveInfo {
    PrimitiveInfo {
        id,
        summary,
        handoff: true,
        lock: true,
        handoff_by: "post the other side's semaphore, wait on one's own",
        write_one_in: 1,
        hidden: false,
    }
}

pub static UNNAMED: Sem = Sem {
    info: info(
        "posix-sem-unnamed",
        "unnamed process-shared POSIX semaphores in shared memory",
    ),
    kind: Kind::Unnamed,
};
pub static NAMED: Sem = Sem {
    info: info(
        "posix-sem-named",
        "named POSIX semaphores (sem_open), unlinked after open",
    ),
    kind: Kind::Named,
};
pub static SYSV: Sem = Sem {
    info: info("sysv-sem", "a System V semaphore set (semop)"),
    kind: Kind::Sysv,
};

/// Semaphore 0: the parent's turn, 1: the peer's turn, 2: the lock.
enum Sems {
    // The named semaphores stay open while their handles are in use.
    Posix([ShmSem; 3], #[allow(dead_code)] Vec<NamedSem>),
    Sysv(Arc<SysvSemSet>),
}

impl Sems {
    fn post(&self, i: usize) -> io::Result<()> {
        match self {
            Sems::Posix(s, _) => s[i].post(),
            Sems::Sysv(set) => set.post(i),
        }
    }

    fn wait(&self, i: usize) -> io::Result<()> {
        match self {
            Sems::Posix(s, _) => s[i].wait(),
            Sems::Sysv(set) => set.wait(i, None).map(drop),
        }
    }
}

struct End {
    base: Base,
    sems: Sems,
    /// Parent of a named set: the names, unlinked once the peer has them open.
    names: Vec<String>,
}

impl SyncEnd for End {
    fn lock(&mut self, _write: bool) -> io::Result<()> {
        self.sems.wait(2)?;
        if self.base.aborted.load(Ordering::Relaxed) {
            return Err(gone());
        }
        Ok(())
    }

    fn unlock(&mut self, _write: bool) -> io::Result<()> {
        self.sems.post(2)
    }

    fn base(&self) -> &Base {
        &self.base
    }

    fn give(&mut self) -> io::Result<()> {
        self.sems.post(self.base.role.other() as usize)
    }

    fn take(&mut self) -> io::Result<()> {
        self.sems.wait(self.base.role as usize)?;
        if self.base.aborted.load(Ordering::Relaxed) {
            return Err(gone());
        }
        Ok(())
    }

    fn abort_handle(&self) -> AbortHandle {
        let flag = Arc::clone(&self.base.aborted);
        let map = self.base.page.mapping();
        let sems = match &self.sems {
            Sems::Posix(s, _) => Sems::Posix(*s, Vec::new()),
            Sems::Sysv(set) => Sems::Sysv(Arc::clone(set)),
        };
        let named: Vec<String> = self.names.clone();
        // Named semaphores must stay open for the posts: reopen them by name if needed.
        let reopened: Vec<NamedSem> = named
            .iter()
            .filter_map(|n| NamedSem::open(n).ok())
            .collect();
        Box::new(move || {
            flag.store(true, Ordering::Release);
            for i in 0..3 {
                let _ = sems.post(i);
            }
            drop((map, reopened));
        })
    }

    fn peer_attached(&mut self) -> Result<(), BackendError> {
        for n in std::mem::take(&mut self.names) {
            NamedSem::unlink(&n)
                .map_err(|e| BackendError::new("posix-sem-named", "unlink", n.clone(), e))?;
        }
        Ok(())
    }
}

impl Drop for End {
    fn drop(&mut self) {
        for n in std::mem::take(&mut self.names) {
            let _ = NamedSem::unlink(&n);
        }
    }
}

fn in_page(page: &SharedPage) -> [*mut libc::sem_t; 3] {
    // SAFETY: three 64-byte-spaced slots in the objects area of the mapped page.
    std::array::from_fn(|i| unsafe { page.objects().add(i * 64).cast::<libc::sem_t>() })
}

impl Sem {
    fn err(&self, action: &'static str, what: impl Into<String>, e: io::Error) -> BackendError {
        BackendError::new(self.info.id, action, what, e)
    }
}

impl Primitive for Sem {
    fn info(&self) -> &'static PrimitiveInfo {
        match self.kind {
            Kind::Unnamed => &UNNAMED.info,
            Kind::Named => &NAMED.info,
            Kind::Sysv => &SYSV.info,
        }
    }

    fn create(&self, page: SharedPage) -> Result<Created, BackendError> {
        let values = [0u32, 0, 1];
        let (sems, spec, names) = match self.kind {
            Kind::Unnamed => {
                let p = in_page(&page);
                let mut out = Vec::new();
                for (ptr, v) in p.into_iter().zip(values) {
                    // SAFETY: a fresh slot in the page, which the end keeps mapped.
                    out.push(
                        unsafe { ShmSem::init_with(ptr, v) }
                            .map_err(|e| self.err("initialise", "a semaphore", e))?,
                    );
                }
                (
                    Sems::Posix([out[0], out[1], out[2]], Vec::new()),
                    String::new(),
                    Vec::new(),
                )
            }
            Kind::Named => {
                let tag =
                    crate::sys::random_u64().map_err(|e| self.err("read", "/dev/urandom", e))?;
                let base = format!("/{PREFIX}{}-{tag:016x}", std::process::id());
                let names: Vec<String> = ["p", "q", "l"]
                    .iter()
                    .map(|s| format!("{base}-{s}"))
                    .collect();
                let mut made = Vec::new();
                for (n, v) in names.iter().zip(values) {
                    match NamedSem::create(n, v) {
                        Ok(s) => made.push(s),
                        Err(e) => {
                            for m in &names[..made.len()] {
                                let _ = NamedSem::unlink(m);
                            }
                            return Err(self.err("create", n.clone(), e));
                        }
                    }
                }
                let h = [made[0].handle(), made[1].handle(), made[2].handle()];
                (Sems::Posix(h, made), base, names)
            }
            Kind::Sysv => {
                let set = SysvSemSet::create(3).map_err(|e| {
                    self.err("create", "a System V semaphore set", e)
                        .hint("see kernel.sem")
                })?;
                set.post(2)
                    .map_err(|e| self.err("initialise", "the lock semaphore", e))?;
                let spec = set.id().to_string();
                (Sems::Sysv(Arc::new(set)), spec, Vec::new())
            }
        };
        let end = End {
            base: Base::new(page, Role::Parent),
            sems,
            names,
        };
        Ok((Box::new(end), spec, Vec::new()))
    }

    fn attach(
        &self,
        page: SharedPage,
        spec: &str,
        fds: Vec<OwnedFd>,
    ) -> Result<Box<dyn SyncEnd>, BackendError> {
        expect_fds::<0>(self.info.id, fds)?;
        let sems = match self.kind {
            Kind::Unnamed => {
                let p = in_page(&page);
                // SAFETY: the parent initialised these slots before the peer started.
                Sems::Posix(p.map(|x| unsafe { ShmSem::attach(x) }), Vec::new())
            }
            Kind::Named => {
                let ok = spec.strip_prefix('/').is_some_and(|r| {
                    r.starts_with(PREFIX)
                        && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
                if !ok {
                    return Err(BackendError::invalid(
                        self.info.id,
                        spec,
                        "not a name this tool creates",
                    ));
                }
                let mut made = Vec::new();
                for s in ["p", "q", "l"] {
                    let n = format!("{spec}-{s}");
                    made.push(NamedSem::open(&n).map_err(|e| self.err("open", n, e))?);
                }
                let h = [made[0].handle(), made[1].handle(), made[2].handle()];
                Sems::Posix(h, made)
            }
            Kind::Sysv => {
                let id: libc::c_int = spec
                    .parse()
                    .map_err(|_| BackendError::invalid(self.info.id, spec, "not a set id"))?;
                Sems::Sysv(Arc::new(SysvSemSet::open(id, 3).map_err(|e| {
                    self.err("open", format!("System V semaphore set {id}"), e)
                })?))
            }
        };
        Ok(Box::new(End {
            base: Base::new(page, Role::Peer),
            sems,
            names: Vec::new(),
        }))
    }
}
