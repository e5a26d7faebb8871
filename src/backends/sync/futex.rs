//! `futex`: raw futex wait/wake on words in the shared page. The lock is the classic
//! three-state futex mutex (0 free, 1 held, 2 held with waiters); the hand-off stores the
//! turn and wakes the other side. Waits are taken in 100 ms slices so a dead peer is noticed.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use crate::sys::futex;

use super::{gone, Base, Created, Primitive, PrimitiveInfo, Role, SharedPage, SyncEnd};
use crate::backends::{expect_fds, expect_no_spec};
use crate::error::BackendError;

pub struct Futex;

pub static FUTEX: Futex = Futex;

static INFO: PrimitiveInfo = PrimitiveInfo {
    id: "futex",
    summary: "raw futex wait/wake on shared words (three-state mutex, turn word for hand-off)",
    handoff: true,
    lock: true,
    handoff_by: "store the turn word and FUTEX_WAKE the other side",
    write_one_in: 1,
    hidden: false,
};

struct End {
    base: Base,
}

impl SyncEnd for End {
    fn lock(&mut self, _write: bool) -> io::Result<()> {
        let w = self.base.page.word(0);
        if w.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(());
        }
        while w.swap(2, Ordering::Acquire) != 0 {
            if self.base.aborted.load(Ordering::Relaxed) {
                return Err(gone());
            }
            futex::wait(w, 2)?;
        }
        Ok(())
    }

    fn unlock(&mut self, _write: bool) -> io::Result<()> {
        let w = self.base.page.word(0);
        if w.fetch_sub(1, Ordering::Release) != 1 {
            w.store(0, Ordering::Release);
            futex::wake(w, 1)?;
        }
        Ok(())
    }

    fn base(&self) -> &Base {
        &self.base
    }

    fn give(&mut self) -> io::Result<()> {
        let t = self.base.page.turn();
        t.store(self.base.role.other() as u32, Ordering::Release);
        futex::wake(t, 1)
    }

    fn take(&mut self) -> io::Result<()> {
        let t = self.base.page.turn();
        loop {
            let v = t.load(Ordering::Acquire);
            if v == self.base.role as u32 {
                return Ok(());
            }
            if self.base.aborted.load(Ordering::Relaxed) {
                return Err(gone());
            }
            futex::wait(t, v)?;
        }
    }
}

impl Primitive for Futex {
    fn info(&self) -> &'static PrimitiveInfo {
        &INFO
    }

    fn create(&self, page: SharedPage) -> Result<Created, BackendError> {
        let end = End {
            base: Base::new(page, Role::Parent),
        };
        Ok((Box::new(end), String::new(), Vec::new()))
    }

    fn attach(
        &self,
        page: SharedPage,
        spec: &str,
        fds: Vec<OwnedFd>,
    ) -> Result<Box<dyn SyncEnd>, BackendError> {
        expect_no_spec(INFO.id, spec)?;
        expect_fds::<0>(INFO.id, fds)?;
        Ok(Box::new(End {
            base: Base::new(page, Role::Peer),
        }))
    }
}
