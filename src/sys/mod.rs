//! Thin safe wrappers around the few system calls no maintained crate covers in the form
//! needed here. Every `unsafe` block of the crate lives in this folder.

pub mod fd;
pub mod fs;
pub mod mq;
pub mod shm;
pub mod sysv;

use std::io;

use nix::sys::resource::{getrusage, UsageWho};

/// Random bits from the kernel, for unique names and connection tokens.
pub fn random_u64() -> io::Result<u64> {
    use std::io::Read;
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// CPU time and context switches of one thread or process, in nanoseconds and counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuUsage {
    pub user_ns: u64,
    pub sys_ns: u64,
    pub voluntary: u64,
    pub involuntary: u64,
}

impl CpuUsage {
    fn read(who: UsageWho) -> io::Result<CpuUsage> {
        let u = getrusage(who)?;
        let ns = |t: nix::sys::time::TimeVal| {
            (t.tv_sec() as u64).saturating_mul(1_000_000_000) + t.tv_usec() as u64 * 1000
        };
        Ok(CpuUsage {
            user_ns: ns(u.user_time()),
            sys_ns: ns(u.system_time()),
            voluntary: u.voluntary_context_switches().max(0) as u64,
            involuntary: u.involuntary_context_switches().max(0) as u64,
        })
    }

    /// The calling thread only: the parent has helper threads that must not be counted.
    pub fn thread() -> io::Result<CpuUsage> {
        CpuUsage::read(UsageWho::RUSAGE_THREAD)
    }

    pub fn since(self, earlier: CpuUsage) -> CpuUsage {
        CpuUsage {
            user_ns: self.user_ns.saturating_sub(earlier.user_ns),
            sys_ns: self.sys_ns.saturating_sub(earlier.sys_ns),
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }

    pub fn plus(self, o: CpuUsage) -> CpuUsage {
        CpuUsage {
            user_ns: self.user_ns + o.user_ns,
            sys_ns: self.sys_ns + o.sys_ns,
            voluntary: self.voluntary + o.voluntary,
            involuntary: self.involuntary + o.involuntary,
        }
    }
}
