//! POSIX message queue calls nix lacks: a send with a deadline, and untimed sends and
//! receives made as direct system calls (libc's `mq_send`/`mq_receive` are cancellation
//! points, which in a multi-threaded process, as the parent is, add work to every call
//! that a bare loop does not pay).

use std::io;
use std::os::fd::AsRawFd;

use nix::mqueue::MqdT;
use nix::sys::time::TimeSpec;

/// `mq_timedsend`: blocks while the queue is full, at most until `deadline` (CLOCK_REALTIME).
pub fn timed_send(mq: &MqdT, msg: &[u8], deadline: &TimeSpec) -> io::Result<()> {
    // SAFETY: `msg` is valid for its length and `deadline` for the call; the queue
    // descriptor is owned by `mq` and open.
    let r = unsafe {
        libc::mq_timedsend(
            mq.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            deadline.as_ref(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn result(r: libc::c_long) -> Result<usize, nix::errno::Errno> {
    if r < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// `mq_send` (blocking while the queue is full) as the `mq_timedsend` system call with no
/// deadline.
pub fn send(mq: &MqdT, msg: &[u8], prio: u32) -> Result<(), nix::errno::Errno> {
    // SAFETY: `msg` is valid for its length during the call, the descriptor is open (owned
    // by `mq`), and a null timeout means no deadline.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mq_timedsend,
            mq.as_raw_fd(),
            msg.as_ptr(),
            msg.len(),
            prio as libc::c_uint,
            std::ptr::null::<libc::timespec>(),
        )
    };
    result(r).map(drop)
}

/// `mq_receive` as the `mq_timedreceive` system call with no deadline; returns the length.
pub fn receive(mq: &MqdT, buf: &mut [u8], prio: &mut u32) -> Result<usize, nix::errno::Errno> {
    // SAFETY: `buf` is writable for its length and `prio` for a u32 during the call; the
    // descriptor is open; a null timeout means no deadline.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mq_timedreceive,
            mq.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
            prio as *mut u32,
            std::ptr::null::<libc::timespec>(),
        )
    };
    result(r)
}

/// A queue descriptor closed on drop (nix's `MqdT` leaves closing to the caller, and an
/// unclosed descriptor keeps the queue's bytes charged to RLIMIT_MSGQUEUE).
#[derive(Debug)]
pub struct OwnedMq(Option<MqdT>);

impl OwnedMq {
    pub fn new(q: MqdT) -> OwnedMq {
        OwnedMq(Some(q))
    }

    /// A second descriptor for the same queue (`dup`), closed on its own drop.
    pub fn try_clone(&self) -> io::Result<OwnedMq> {
        use std::os::fd::{AsFd, FromRawFd, IntoRawFd};
        let fd = nix::unistd::dup(self.get().as_fd())?.into_raw_fd();
        // SAFETY: on Linux a queue descriptor is a file descriptor; `fd` is a fresh
        // duplicate that nothing else owns, and the new `OwnedMq` closes it once.
        Ok(OwnedMq::new(unsafe { MqdT::from_raw_fd(fd) }))
    }

    pub fn get(&self) -> &MqdT {
        // Always Some until drop.
        self.0
            .as_ref()
            .expect("queue descriptor present until drop")
    }
}

impl Drop for OwnedMq {
    fn drop(&mut self) {
        if let Some(q) = self.0.take() {
            let _ = nix::mqueue::mq_close(q);
        }
    }
}
