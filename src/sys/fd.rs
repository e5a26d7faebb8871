//! Handing descriptors to the peer process and taking them over on its side.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Descriptor numbers the peer receives its inherited descriptors at: 3, 4, ...
pub const FIRST_INHERITED_FD: RawFd = 3;
/// More than any mechanism needs; bounds what the peer role accepts.
pub const MAX_INHERITED_FDS: usize = 8;

/// Arranges for `fds[i]` to appear as descriptor `3 + i` in the child, and for the child to
/// be killed if the spawning thread goes away (so an orphaned peer never lingers).
/// Every other descriptor of ours is close-on-exec and stays behind.
pub fn prepare_child(cmd: &mut Command, fds: &[RawFd]) -> io::Result<()> {
    if fds.len() > MAX_INHERITED_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors for the peer",
        ));
    }
    let mut srcs = [-1 as RawFd; MAX_INHERITED_FDS];
    srcs[..fds.len()].copy_from_slice(fds);
    let n = fds.len();
    let parent = std::process::id() as libc::pid_t;
    // The parent blocks SIGINT/SIGTERM for its signal thread; the peer must not inherit that.
    // SAFETY: sigemptyset/sigaddset initialise a local sigset_t.
    let unblock = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    };
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (prctl, getppid, sigprocmask, fcntl, dup2) on
    // descriptors the parent keeps open until `spawn` returns; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::other("parent exited during spawn"));
            }
            if libc::pthread_sigmask(libc::SIG_UNBLOCK, &unblock, std::ptr::null_mut()) != 0 {
                return Err(io::Error::other("cannot unblock signals"));
            }
            // First move every source above the target range so no dup2 clobbers a source.
            let mut tmp = [-1 as RawFd; MAX_INHERITED_FDS];
            for (t, &src) in tmp.iter_mut().zip(&srcs[..n]) {
                *t = libc::fcntl(src, libc::F_DUPFD_CLOEXEC, FIRST_INHERITED_FD + n as RawFd);
                if *t < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (target, &t) in (FIRST_INHERITED_FD..).zip(&tmp[..n]) {
                // dup2 clears close-on-exec on the new descriptor.
                if libc::dup2(t, target) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(())
}

/// In the peer: takes ownership of inherited descriptors 3..3+n after checking each is open.
pub fn take_inherited(n: usize) -> io::Result<Vec<OwnedFd>> {
    if n > MAX_INHERITED_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("at most {MAX_INHERITED_FDS} inherited descriptors"),
        ));
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let fd = FIRST_INHERITED_FD + i as RawFd;
        // SAFETY: F_GETFD only queries the descriptor table; an unopened number fails with EBADF.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("descriptor {fd} was not inherited from the parent"),
            ));
        }
        // SAFETY: the descriptor is open (checked above), was placed here by the parent for
        // this role alone, and nothing else in this process refers to it.
        out.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(out)
}

/// The most descriptors `wait_readable` watches at once.
pub const WAIT_MAX: usize = 128;

/// Waits up to `timeout_ms` until any of `fds` (at most `WAIT_MAX`) is readable; returns
/// a mask of those that are (bit k for the k-th). Allocates nothing: a fan-in server
/// sleeps here between requests.
pub fn wait_readable<'a>(
    fds: impl IntoIterator<Item = std::os::fd::BorrowedFd<'a>>,
    timeout_ms: i32,
) -> io::Result<u128> {
    use std::os::fd::AsRawFd;
    let mut set = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; WAIT_MAX];
    let mut n = 0;
    for fd in fds {
        let Some(slot) = set.get_mut(n) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("at most {WAIT_MAX} descriptors"),
            ));
        };
        *slot = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        n += 1;
    }
    // SAFETY: `set` holds `n` initialised pollfd entries whose descriptors are borrowed
    // for this call; the kernel writes only their `revents`.
    let r = unsafe { libc::poll(set.as_mut_ptr(), n as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::Interrupted => Ok(0),
            _ => Err(e),
        };
    }
    Ok(set[..n]
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents & libc::POLLIN != 0)
        .fold(0u128, |m, (k, _)| m | 1 << k))
}

/// Waits up to `timeout` (nanosecond precision, `ppoll`) until `fd` is readable; returns
/// whether it is. The open-loop client sleeps here between scheduled sends.
pub fn readable_within(
    fd: std::os::fd::BorrowedFd<'_>,
    timeout: std::time::Duration,
) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY: one initialised pollfd whose descriptor is borrowed for the call, a valid
    // timespec, and no signal mask; the kernel writes only `revents`.
    let r = unsafe { libc::ppoll(&mut p, 1, &ts, std::ptr::null()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::Interrupted => Ok(false),
            _ => Err(e),
        };
    }
    Ok(p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
}

/// A descriptor read and written with direct system calls (rustix), not through libc: in a
/// multi-threaded process (the parent has helper threads) libc's `read`/`write` are
/// cancellation points that add work around every call, which a bare loop does not pay.
#[derive(Debug)]
pub struct RawFile(pub OwnedFd);

impl RawFile {
    pub fn try_clone(&self) -> io::Result<RawFile> {
        Ok(RawFile(self.0.try_clone()?))
    }
}

impl std::os::fd::AsFd for RawFile {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl io::Read for RawFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match rustix::io::read(&self.0, &mut *buf) {
                Err(rustix::io::Errno::INTR) => continue,
                r => return r.map_err(io::Error::from),
            }
        }
    }
}

impl io::Write for RawFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match rustix::io::write(&self.0, buf) {
                Err(rustix::io::Errno::INTR) => continue,
                r => return r.map_err(io::Error::from),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
