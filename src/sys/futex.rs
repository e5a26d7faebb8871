//! Futex wait and wake on a word in memory shared between processes (so not the private
//! futex flag). Waits last at most one 100 ms slice, so callers can notice a dead peer.

use std::io;
use std::sync::atomic::AtomicU32;

use rustix::thread::futex;

const SLICE: futex::Timespec = futex::Timespec {
    tv_sec: 0,
    tv_nsec: 100_000_000,
};

/// Sleeps while `word` holds `seen`, for one slice at most. A changed value, the end of
/// the slice and a signal are all ordinary returns: the caller re-checks its condition.
pub fn wait(word: &AtomicU32, seen: u32) -> io::Result<()> {
    match futex::wait(word, futex::Flags::empty(), seen, Some(&SLICE)) {
        Ok(()) => Ok(()),
        Err(e)
            if e == rustix::io::Errno::AGAIN
                || e == rustix::io::Errno::TIMEDOUT
                || e == rustix::io::Errno::INTR =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Sleeps while `word` holds `seen`, with no time limit: for waiters whose every way out
/// (the message, a dead peer's abort, an interrupted run's abort) bumps `word` and wakes
/// them. Arming and cancelling the slice's timer costs ~130 ns per sleep here, a tenth of
/// a one-CPU round trip's share. A changed value and a signal are ordinary returns.
pub fn wait_untimed(word: &AtomicU32, seen: u32) -> io::Result<()> {
    match futex::wait(word, futex::Flags::empty(), seen, None) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Wakes up to `n` waiters on `word`.
pub fn wake(word: &AtomicU32, n: u32) -> io::Result<()> {
    futex::wake(word, futex::Flags::empty(), n)
        .map(drop)
        .map_err(io::Error::from)
}

/// The most words `wait_any` waits on (the kernel's `FUTEX_WAITV_MAX`).
pub const WAITV_MAX: usize = 128;

/// `struct futex_waitv` of the kernel's ABI.
#[repr(C)]
struct WaitV {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// `FUTEX2_SIZE_U32`: the words are 32 bits; no private flag, they are shared.
const FUTEX2_SIZE_U32: u32 = 0x02;

/// Sleeps until any of `words` no longer holds its `seen` value or is woken (Linux 5.16's
/// `futex_waitv`), for one slice at most: one sleep for a server of many shared rings.
/// Like `wait`, a changed value, the slice's end and a signal are ordinary returns.
pub fn wait_any<'a>(words: impl IntoIterator<Item = (&'a AtomicU32, u32)>) -> io::Result<()> {
    let mut v = [const {
        WaitV {
            val: 0,
            uaddr: 0,
            flags: 0,
            reserved: 0,
        }
    }; WAITV_MAX];
    let mut count = 0;
    for (word, seen) in words {
        let Some(slot) = v.get_mut(count) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("futex_waitv takes at most {WAITV_MAX} words"),
            ));
        };
        *slot = WaitV {
            val: u64::from(seen),
            uaddr: word.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        };
        count += 1;
    }
    if count == 0 {
        return Ok(());
    }
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
    let mut until = libc::timespec {
        tv_sec: now.tv_sec() as libc::time_t,
        tv_nsec: (now.tv_nsec() + SLICE.tv_nsec) as _,
    };
    if until.tv_nsec >= 1_000_000_000 {
        until.tv_sec += 1;
        until.tv_nsec -= 1_000_000_000;
    }
    // SAFETY: `v` holds `count` valid entries, each the address of a live, aligned
    // 32-bit atomic (borrowed for this call); `until` is a valid absolute timespec on
    // CLOCK_MONOTONIC; the kernel only reads both.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            v.as_ptr(),
            count as libc::c_uint,
            0 as libc::c_uint,
            &until as *const libc::timespec,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r >= 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::ETIMEDOUT) | Some(libc::EINTR) => Ok(()),
        Some(libc::ENOSYS) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "futex_waitv needs Linux 5.16 or later",
        )),
        _ => Err(e),
    }
}
