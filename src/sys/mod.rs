//! Thin safe wrappers around the few system calls no maintained crate covers in the form
//! needed here. Every `unsafe` block of the crate lives in this folder.

pub mod courier;
pub mod fd;
pub mod fs;
pub mod futex;
pub mod lock;
pub mod mq;
pub mod pthread;
pub mod record;
pub mod sem;
pub mod shm;
pub mod sysv;
pub mod zerocopy;

use std::io;

use nix::sys::resource::{getrusage, UsageWho};

/// Random bits from the kernel, for unique names and connection tokens.
pub fn random_u64() -> io::Result<u64> {
    use std::io::Read;
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// CPU time and context switches of one thread, in nanoseconds and counts.
/// `total_ns` is exact (`CLOCK_THREAD_CPUTIME_ID`); the user/system split comes from
/// `getrusage`, whose split is sampled at the scheduler tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CpuUsage {
    pub total_ns: u64,
    pub user_ns: u64,
    pub sys_ns: u64,
    pub voluntary: u64,
    pub involuntary: u64,
}

impl CpuUsage {
    /// The calling thread only: the parent has helper threads that must not be counted.
    pub fn thread() -> io::Result<CpuUsage> {
        let u = getrusage(UsageWho::RUSAGE_THREAD)?;
        let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)?;
        let ns = |t: nix::sys::time::TimeVal| {
            (t.tv_sec() as u64).saturating_mul(1_000_000_000) + t.tv_usec() as u64 * 1000
        };
        Ok(CpuUsage {
            total_ns: t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64,
            user_ns: ns(u.user_time()),
            sys_ns: ns(u.system_time()),
            voluntary: u.voluntary_context_switches().max(0) as u64,
            involuntary: u.involuntary_context_switches().max(0) as u64,
        })
    }

    pub fn since(self, earlier: CpuUsage) -> CpuUsage {
        CpuUsage {
            total_ns: self.total_ns.saturating_sub(earlier.total_ns),
            user_ns: self.user_ns.saturating_sub(earlier.user_ns),
            sys_ns: self.sys_ns.saturating_sub(earlier.sys_ns),
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }

    /// Rescales the sampled user/system split to the exact total, so that short phases
    /// (under a scheduler tick) are not reported as free.
    pub fn exact_split(self) -> (f64, f64) {
        let sampled = (self.user_ns + self.sys_ns) as f64;
        let total = self.total_ns as f64;
        if sampled == 0.0 {
            (total, 0.0)
        } else {
            (
                total * self.user_ns as f64 / sampled,
                total * self.sys_ns as f64 / sampled,
            )
        }
    }

    pub fn plus(self, o: CpuUsage) -> CpuUsage {
        CpuUsage {
            total_ns: self.total_ns + o.total_ns,
            user_ns: self.user_ns + o.user_ns,
            sys_ns: self.sys_ns + o.sys_ns,
            voluntary: self.voluntary + o.voluntary,
            involuntary: self.involuntary + o.involuntary,
        }
    }
}

/// Sets the calling thread's timer slack (how late the kernel may end its timed sleeps, 50
/// µs by default), so a sleep until a scheduled send ends when it should.
pub fn set_timer_slack(ns: u64) -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and changes only this thread's
    // timer slack; no memory is passed.
    let r = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Lets a closed standard output end the process quietly (`ipcbench list | head`), as
/// a command-line tool's users expect: SIGPIPE back to its default action. Only for
/// commands that talk to no peer; Rust ignores SIGPIPE so that a write to a dead peer's
/// pipe returns EPIPE, which the measuring commands need.
pub fn default_sigpipe() {
    // SAFETY: SIG_DFL installs no handler of ours, so no code runs in signal context.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
}
