//! `no-lock`: a "lock" that excludes nothing, to prove the lock workload's counter check
//! catches lost updates. Only selectable by name; never in `sync` or `all`.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{Created, Primitive, PrimitiveInfo, Role, SharedPage, SyncEnd};
use crate::backends::AbortHandle;
use crate::error::BackendError;

pub struct NoLock;

pub static NO_LOCK: NoLock = NoLock;

static INFO: PrimitiveInfo = PrimitiveInfo {
    id: "no-lock",
    summary: "test: lock and unlock do nothing (the counter check must fail)",
    handoff: false,
    lock: true,
    handoff_by: "",
    write_one_in: 1,
    hidden: true,
};

struct End {
    page: SharedPage,
    role: Role,
    aborted: Arc<AtomicBool>,
}

impl SyncEnd for End {
    fn lock(&mut self, _write: bool) -> io::Result<()> {
        Ok(())
    }

    fn unlock(&mut self, _write: bool) -> io::Result<()> {
        Ok(())
    }

    fn page(&self) -> &SharedPage {
        &self.page
    }

    fn role(&self) -> Role {
        self.role
    }

    fn aborted(&self) -> &AtomicBool {
        &self.aborted
    }

    fn abort_handle(&self) -> AbortHandle {
        let flag = Arc::clone(&self.aborted);
        Box::new(move || flag.store(true, Ordering::Release))
    }
}

impl Primitive for NoLock {
    fn info(&self) -> &'static PrimitiveInfo {
        &INFO
    }

    fn create(&self, page: SharedPage) -> Result<Created, BackendError> {
        let end = End {
            page,
            role: Role::Parent,
            aborted: Arc::new(AtomicBool::new(false)),
        };
        Ok((Box::new(end), String::new(), Vec::new()))
    }

    fn attach(
        &self,
        page: SharedPage,
        _spec: &str,
        _fds: Vec<OwnedFd>,
    ) -> Result<Box<dyn SyncEnd>, BackendError> {
        Ok(Box::new(End {
            page,
            role: Role::Peer,
            aborted: Arc::new(AtomicBool::new(false)),
        }))
    }
}
