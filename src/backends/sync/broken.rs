//! `no-lock`: a "lock" that excludes nothing, to prove the lock workload's counter check
//! catches lost updates. Only selectable by name; never in `sync` or `all`.

use std::io;
use std::os::fd::OwnedFd;

use super::{Base, Created, Primitive, PrimitiveInfo, Role, SharedPage, SyncEnd};
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
    base: Base,
}

impl SyncEnd for End {
    fn lock(&mut self, _write: bool) -> io::Result<()> {
        Ok(())
    }

    fn unlock(&mut self, _write: bool) -> io::Result<()> {
        Ok(())
    }

    fn base(&self) -> &Base {
        &self.base
    }
}

impl Primitive for NoLock {
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
        _spec: &str,
        _fds: Vec<OwnedFd>,
    ) -> Result<Box<dyn SyncEnd>, BackendError> {
        Ok(Box::new(End {
            base: Base::new(page, Role::Peer),
        }))
    }
}
