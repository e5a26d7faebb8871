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
        Placement::plan_within(pin, cpus, allowed)
    }

    /// As `plan`, among `allowed` CPUs (a thread already pinned reads a one-CPU mask).
    pub fn plan_within(
        pin: Pin,
        cpus: Option<(usize, usize)>,
        allowed: Vec<usize>,
    ) -> Result<Placement, String> {
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

    /// Fan-in: the CPU of each of `n` clients. `cross` spreads them over the allowed CPUs
    /// other than the server's, starting with the peer's CPU; `same` puts them all on the
    /// server's; `none` leaves them to the scheduler.
    pub fn clients(&self, n: usize) -> Vec<Option<usize>> {
        let others: Vec<usize> = match (self.pin, self.parent_cpu, self.peer_cpu) {
            (Pin::Cross, Some(server), Some(peer)) => std::iter::once(peer)
                .chain(
                    self.allowed
                        .iter()
                        .copied()
                        .filter(|&c| c != server && c != peer),
                )
                .collect(),
            (Pin::Same, Some(server), _) => vec![server],
            _ => Vec::new(),
        };
        (0..n)
            .map(|i| (!others.is_empty()).then(|| others[i % others.len()]))
            .collect()
    }

    /// The parent's and the peer's CPUs when they are pinned to two different ones.
    pub fn two_cpus(&self) -> Option<(usize, usize)> {
        let (a, b) = (self.parent_cpu?, self.peer_cpu?);
        (a != b).then_some((a, b))
    }

    pub fn pair(&self) -> Option<CpuPair> {
        Some(CpuPair::of(self.parent_cpu?, self.peer_cpu?))
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

/// How the two CPUs of a run relate, from sysfs topology (null where sysfs says nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuPair {
    pub cpus: [usize; 2],
    /// Hardware threads of one core.
    pub smt_siblings: Option<bool>,
    /// The closest cache level both CPUs share ("L1".."L3"), or "none".
    pub shared_cache: Option<String>,
    pub same_numa_node: Option<bool>,
}

/// Expands a sysfs CPU list such as `0-3,8`.
pub fn parse_cpu_list(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    out.extend(a..=b.min(a + 4096));
                }
            }
            None => out.extend(part.parse::<usize>().ok()),
        }
    }
    out
}

impl CpuPair {
    pub fn of(a: usize, b: usize) -> CpuPair {
        let sys = |cpu: usize, rel: &str| {
            std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu{cpu}/{rel}")).ok()
        };
        let smt_siblings =
            sys(a, "topology/thread_siblings_list").map(|l| parse_cpu_list(&l).contains(&b));
        let mut shared: Option<(u32, String)> = None;
        let mut any_cache = false;
        for i in 0..8 {
            let (Some(level), Some(list)) = (
                sys(a, &format!("cache/index{i}/level")),
                sys(a, &format!("cache/index{i}/shared_cpu_list")),
            ) else {
                continue;
            };
            any_cache = true;
            let Ok(level) = level.trim().parse::<u32>() else {
                continue;
            };
            if parse_cpu_list(&list).contains(&b) && shared.as_ref().is_none_or(|(l, _)| level < *l)
            {
                shared = Some((level, format!("L{level}")));
            }
        }
        let node_of = |cpu: usize| -> Option<usize> {
            std::fs::read_dir("/sys/devices/system/node")
                .ok()?
                .flatten()
                .find_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n = name.strip_prefix("node")?.parse().ok()?;
                    let list = std::fs::read_to_string(e.path().join("cpulist")).ok()?;
                    parse_cpu_list(&list).contains(&cpu).then_some(n)
                })
        };
        CpuPair {
            cpus: [a, b],
            smt_siblings: if a == b { Some(true) } else { smt_siblings },
            shared_cache: shared
                .map(|(_, l)| l)
                .or_else(|| any_cache.then(|| "none".to_string())),
            same_numa_node: node_of(a).zip(node_of(b)).map(|(x, y)| x == y),
        }
    }

    pub fn describe(&self) -> String {
        let [a, b] = self.cpus;
        if a == b {
            return format!("CPU {a} for both");
        }
        let mut parts = Vec::new();
        match self.smt_siblings {
            Some(true) => parts.push("SMT siblings".to_string()),
            Some(false) => parts.push("different cores".to_string()),
            None => {}
        }
        if let Some(c) = &self.shared_cache {
            parts.push(if c == "none" {
                "no shared cache".into()
            } else {
                format!("sharing {c}")
            });
        }
        match self.same_numa_node {
            Some(true) => parts.push("same NUMA node".into()),
            Some(false) => parts.push("different NUMA nodes".into()),
            None => {}
        }
        format!(
            "CPUs {a} and {b}: {}",
            if parts.is_empty() {
                "topology unknown".into()
            } else {
                parts.join(", ")
            }
        )
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

    #[test]
    fn cpu_lists_and_pairs() {
        assert_eq!(parse_cpu_list("0-2,5\n"), vec![0, 1, 2, 5]);
        assert_eq!(parse_cpu_list(""), Vec::<usize>::new());
        let p = CpuPair::of(0, 0);
        assert_eq!(p.smt_siblings, Some(true));
        assert!(p.describe().contains("CPU 0 for both"));
    }
}
