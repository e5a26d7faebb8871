//! Where the two processes run. Results flip between same-core and cross-core behaviour
//! when processes float, so every run pins (or says it did not) and records how.

use std::io;

use clap::ValueEnum;
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Pin {
    /// Parent and peer on two different CPUs.
    Cross,
    /// Parent and peer on the same CPU.
    Same,
    /// No pinning: the scheduler places both processes.
    None,
}

impl Pin {
    pub fn as_str(self) -> &'static str {
        match self {
            Pin::Cross => "cross",
            Pin::Same => "same",
            Pin::None => "none",
        }
    }
}

/// The CPUs each process is bound to for a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub pin: Pin,
    pub parent_cpu: Option<usize>,
    pub peer_cpu: Option<usize>,
    /// CPUs this process was allowed to use at start (what `--pin none` restores).
    #[serde(skip)]
    pub allowed: Vec<usize>,
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(0))?;
    Ok((0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect())
}

/// `cross` when at least two CPUs are available, otherwise `same`.
pub fn default_pin() -> Pin {
    match allowed_cpus() {
        Ok(c) if c.len() >= 2 => Pin::Cross,
        _ => Pin::Same,
    }
}

/// Binds the calling thread to the given CPUs.
pub fn bind_current_thread(cpus: &[usize]) -> io::Result<()> {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c)?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

impl Placement {
    /// Chooses the CPUs: `cpus` if given, else the first two allowed CPUs.
    pub fn plan(pin: Pin, cpus: Option<(usize, usize)>) -> Result<Placement, String> {
        let allowed =
            allowed_cpus().map_err(|e| format!("cannot read the CPU affinity mask: {e}"))?;
        let check = |c: usize| {
            if allowed.contains(&c) {
                Ok(c)
            } else {
                Err(format!(
                    "CPU {c} is not available to this process (allowed: {allowed:?})"
                ))
            }
        };
        let (parent_cpu, peer_cpu) = match (pin, cpus) {
            (Pin::None, _) => (None, None),
            (Pin::Cross, Some((a, b))) if a == b => {
                return Err(format!("--pin cross needs two different CPUs, got {a},{b}"))
            }
            (Pin::Cross, Some((a, b))) => (Some(check(a)?), Some(check(b)?)),
            (Pin::Same, Some((a, b))) if a != b => {
                return Err(format!("--pin same needs one CPU twice, got {a},{b}"))
            }
            (Pin::Same, Some((a, _))) => (Some(check(a)?), Some(a)),
            (Pin::Cross, None) => match allowed.as_slice() {
                [a, b, ..] => (Some(*a), Some(*b)),
                _ => {
                    return Err(format!(
                        "--pin cross needs two CPUs but this process may only use {allowed:?}; use --pin same or --pin none"
                    ))
                }
            },
            (Pin::Same, None) => {
                let a = *allowed.first().ok_or("no CPU is available to this process")?;
                (Some(a), Some(a))
            }
        };
        Ok(Placement {
            pin,
            parent_cpu,
            peer_cpu,
            allowed,
        })
    }

    /// Applies the parent's half of the placement to the calling thread.
    pub fn apply_parent(&self) -> io::Result<()> {
        match self.parent_cpu {
            Some(c) => bind_current_thread(&[c]),
            None if !self.allowed.is_empty() => bind_current_thread(&self.allowed),
            None => Ok(()),
        }
    }

    pub fn describe(&self) -> String {
        match (self.parent_cpu, self.peer_cpu) {
            (Some(a), Some(b)) => format!(
                "pin {}: parent on CPU {a}, peer on CPU {b}",
                self.pin.as_str()
            ),
            _ => "pin none: the scheduler places both processes".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_the_mask() {
        let allowed = allowed_cpus().unwrap();
        let p = Placement::plan(Pin::Same, None).unwrap();
        assert_eq!(p.parent_cpu, p.peer_cpu);
        assert!(Placement::plan(Pin::None, None)
            .unwrap()
            .parent_cpu
            .is_none());
        if allowed.len() >= 2 {
            let p = Placement::plan(Pin::Cross, None).unwrap();
            assert_ne!(p.parent_cpu, p.peer_cpu);
        } else {
            assert!(Placement::plan(Pin::Cross, None).is_err());
        }
        assert!(Placement::plan(Pin::Cross, Some((0, 0))).is_err());
        assert!(Placement::plan(Pin::Same, Some((100_000, 100_000))).is_err());
    }
}
