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

/// Wakes up to `n` waiters on `word`.
pub fn wake(word: &AtomicU32, n: u32) -> io::Result<()> {
    futex::wake(word, futex::Flags::empty(), n)
        .map(drop)
        .map_err(io::Error::from)
}
