//! File locks between processes: POSIX record locks (`fcntl` F_SETLKW), open file
//! description locks (F_OFD_SETLKW) and BSD `flock`, on the first byte of a file.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

fn retry(mut f: impl FnMut() -> libc::c_int) -> io::Result<()> {
    loop {
        if f() == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Takes (`lock`) or releases a write lock on byte 0; `ofd` selects OFD locks.
pub fn record_lock(fd: BorrowedFd<'_>, ofd: bool, lock: bool) -> io::Result<()> {
    // SAFETY: flock is plain old data; every field the kernel reads is set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = if lock { libc::F_WRLCK } else { libc::F_UNLCK } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 1;
    fl.l_pid = 0; // required by OFD locks
    let cmd = if ofd {
        libc::F_OFD_SETLKW
    } else {
        libc::F_SETLKW
    };
    // SAFETY: `fl` is valid for the call and the descriptor is borrowed open.
    retry(|| unsafe { libc::fcntl(fd.as_raw_fd(), cmd, &fl) })
}

/// BSD `flock` exclusive lock or unlock of the whole file.
pub fn flock(fd: BorrowedFd<'_>, lock: bool) -> io::Result<()> {
    let op = if lock { libc::LOCK_EX } else { libc::LOCK_UN };
    // SAFETY: flock takes a descriptor, borrowed open, and an integer.
    retry(|| unsafe { libc::flock(fd.as_raw_fd(), op) })
}
