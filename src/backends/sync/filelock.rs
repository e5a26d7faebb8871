//! File locks on a private file: `fcntl-lock` (POSIX record lock on byte 0), `ofd-lock`
//! (open file description lock) and `flock`. The kernel releases a dead holder's lock, so
//! no wait outlives the peer. Hand-off polls a turn word under the lock.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{Base, Created, Primitive, PrimitiveInfo, Role, SharedPage, SyncEnd};
use crate::backends::expect_fds;
use crate::error::BackendError;
use crate::sys::fs::{check_private_dir, PrivateDir};
use crate::sys::lock::{flock, record_lock};

#[derive(Clone, Copy)]
enum Kind {
    Fcntl,
    Ofd,
    Flock,
}

pub struct FileLock {
    info: PrimitiveInfo,
    kind: Kind,
}

const fn info(id: &'static str, summary: &'static str) -> PrimitiveInfo {
    PrimitiveInfo {
        id,
        summary,
        handoff: true,
        lock: true,
        handoff_by: "a turn word polled under the file lock (a lock cannot signal)",
        write_one_in: 1,
        hidden: false,
    }
}

pub static FCNTL: FileLock = FileLock {
    info: info(
        "fcntl-lock",
        "POSIX record lock (fcntl F_SETLKW) on a byte of a private file",
    ),
    kind: Kind::Fcntl,
};
pub static OFD: FileLock = FileLock {
    info: info(
        "ofd-lock",
        "open file description lock (F_OFD_SETLKW) on a byte of a private file",
    ),
    kind: Kind::Ofd,
};
pub static FLOCK: FileLock = FileLock {
    info: info("flock", "BSD flock on a private file"),
    kind: Kind::Flock,
};

const FILE: &str = "lock";

struct End {
    base: Base,
    kind: Kind,
    file: File,
    dir: Option<PrivateDir>,
}

impl End {
    fn set(&self, lock: bool) -> io::Result<()> {
        match self.kind {
            Kind::Fcntl => record_lock(self.file.as_fd(), false, lock),
            Kind::Ofd => record_lock(self.file.as_fd(), true, lock),
            Kind::Flock => flock(self.file.as_fd(), lock),
        }
    }
}

impl SyncEnd for End {
    fn lock(&mut self, _write: bool) -> io::Result<()> {
        self.set(true)
    }

    fn unlock(&mut self, _write: bool) -> io::Result<()> {
        self.set(false)
    }

    fn base(&self) -> &Base {
        &self.base
    }

    fn peer_attached(&mut self) -> Result<(), BackendError> {
        if let Some(mut d) = self.dir.take() {
            let shown = d.path().display().to_string();
            d.remove()
                .map_err(|e| BackendError::new("file lock", "remove", shown, e))?;
        }
        Ok(())
    }
}

fn open(path: &Path, create: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if create {
        o.create_new(true).mode(0o600);
    }
    o.open(path)
}

impl Primitive for FileLock {
    fn info(&self) -> &'static PrimitiveInfo {
        match self.kind {
            Kind::Fcntl => &FCNTL.info,
            Kind::Ofd => &OFD.info,
            Kind::Flock => &FLOCK.info,
        }
    }

    fn create(&self, page: SharedPage) -> Result<Created, BackendError> {
        let id = self.info.id;
        let dir = PrivateDir::create()
            .map_err(|e| BackendError::new(id, "create", "a private directory", e))?;
        let path = dir.path().join(FILE);
        let file = open(&path, true)
            .map_err(|e| BackendError::new(id, "create", path.display().to_string(), e))?;
        let spec = dir.path().display().to_string();
        let end = End {
            base: Base::new(page, Role::Parent),
            kind: self.kind,
            file,
            dir: Some(dir),
        };
        Ok((Box::new(end), spec, Vec::new()))
    }

    fn attach(
        &self,
        page: SharedPage,
        spec: &str,
        fds: Vec<OwnedFd>,
    ) -> Result<Box<dyn SyncEnd>, BackendError> {
        let id = self.info.id;
        expect_fds::<0>(id, fds)?;
        let dir = Path::new(spec);
        check_private_dir(dir).map_err(|why| BackendError::invalid(id, spec, &why))?;
        let path = dir.join(FILE);
        // Its own open file description: flock and OFD locks then contend with the parent's.
        let file = open(&path, false)
            .map_err(|e| BackendError::new(id, "open", path.display().to_string(), e))?;
        Ok(Box::new(End {
            base: Base::new(page, Role::Peer),
            kind: self.kind,
            file,
            dir: None,
        }))
    }
}
