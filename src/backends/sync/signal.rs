//! `signal`: hand-off by real-time signal, `sigqueue` to the other process and
//! `sigtimedwait` for one's own (the signal is blocked, so it queues instead of
//! interrupting). For completeness: signals are the slowest way to wake a process.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use super::{gone, Base, Created, Primitive, PrimitiveInfo, Role, SharedPage, SyncEnd};
use crate::backends::{expect_fds, expect_no_spec};
use crate::error::BackendError;

pub struct Signal;

pub static SIGNAL: Signal = Signal;

static INFO: PrimitiveInfo = PrimitiveInfo {
    id: "signal",
    summary: "real-time signal (sigqueue / sigtimedwait), hand-off only",
    handoff: true,
    lock: false,
    handoff_by: "sigqueue(SIGRTMIN) to the other process, sigtimedwait for one's own",
    write_one_in: 1,
    hidden: false,
};

/// The signal used: the first real-time signal.
pub fn signo() -> libc::c_int {
    libc::SIGRTMIN()
}

fn set() -> libc::sigset_t {
    // SAFETY: a local sigset_t, initialised by sigemptyset before use.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        libc::sigaddset(&mut s, signo());
        s
    }
}

/// Blocks the signal in the calling thread (and threads it starts later), so it queues.
pub fn block() -> io::Result<()> {
    let s = set();
    // SAFETY: `s` is a valid, initialised signal set.
    match unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &s, std::ptr::null_mut()) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

struct End {
    base: Base,
    /// The other process (0 until the parent learns its peer's pid).
    other: Arc<AtomicI32>,
}

impl SyncEnd for End {
    fn lock(&mut self, _write: bool) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "signals are not a lock",
        ))
    }

    fn unlock(&mut self, _write: bool) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "signals are not a lock",
        ))
    }

    fn base(&self) -> &Base {
        &self.base
    }

    fn give(&mut self) -> io::Result<()> {
        let pid = self.other.load(Ordering::Acquire);
        if pid <= 0 {
            return Err(io::Error::other("the other process is not known"));
        }
        // SAFETY: sigqueue takes integers and a sigval union passed by value.
        let r = unsafe {
            libc::sigqueue(
                pid,
                signo(),
                libc::sigval {
                    sival_ptr: std::ptr::null_mut(),
                },
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn take(&mut self) -> io::Result<()> {
        let s = set();
        let slice = libc::timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        loop {
            // SAFETY: `s` and `slice` are valid for the call; no siginfo is requested.
            let r = unsafe { libc::sigtimedwait(&s, std::ptr::null_mut(), &slice) };
            if r == signo() {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
                return Err(e);
            }
            if self.base.aborted.load(Ordering::Relaxed) {
                return Err(gone());
            }
        }
    }

    fn set_peer(&mut self, pid: i32) {
        self.other.store(pid, Ordering::Release);
    }
}

impl End {
    fn new(page: SharedPage, role: Role, other: i32) -> End {
        End {
            base: Base::new(page, role),
            other: Arc::new(AtomicI32::new(other)),
        }
    }
}

impl Primitive for Signal {
    fn info(&self) -> &'static PrimitiveInfo {
        &INFO
    }

    fn create(&self, page: SharedPage) -> Result<Created, BackendError> {
        block().map_err(|e| BackendError::new(INFO.id, "block", "SIGRTMIN", e))?;
        Ok((
            Box::new(End::new(page, Role::Parent, 0)),
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
        expect_no_spec(INFO.id, spec)?;
        expect_fds::<0>(INFO.id, fds)?;
        block().map_err(|e| BackendError::new(INFO.id, "block", "SIGRTMIN", e))?;
        Ok(Box::new(End::new(
            page,
            Role::Peer,
            nix::unistd::getppid().as_raw(),
        )))
    }
}
