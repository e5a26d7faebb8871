//! Facts about the machine recorded next to every result, and the kernel limits that decide
//! which message sizes a mechanism accepts. A fact that cannot be read is null, never fatal.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    pub kernel: Option<String>,
    pub cpu_model: Option<String>,
    pub logical_cpus: Option<usize>,
    pub hostname: Option<String>,
    pub limits: Limits,
    /// Distinct (package, core) pairs.
    #[serde(default)]
    pub physical_cpus: Option<usize>,
    /// Whether any core runs more than one hardware thread.
    #[serde(default)]
    pub smt: Option<bool>,
    #[serde(default)]
    pub numa_nodes: Option<usize>,
    /// cpufreq governor of CPU 0, and whether boost (turbo) is on.
    #[serde(default)]
    pub governor: Option<String>,
    #[serde(default)]
    pub boost: Option<bool>,
    #[serde(default)]
    pub cpu_mhz: Option<f64>,
    #[serde(default)]
    pub clocksource: Option<String>,
    /// Set when the CPU reports running under a hypervisor (with the vendor when known).
    #[serde(default)]
    pub virtualization: Option<String>,
    /// `isolcpus` (empty string when none are isolated).
    #[serde(default)]
    pub isolated_cpus: Option<String>,
    /// Kernel mitigations that are active (`vulnerabilities/*` reporting "Mitigation").
    #[serde(default)]
    pub mitigations: Option<Vec<String>>,
    /// 1, 5 and 15 minute load average at start.
    #[serde(default)]
    pub load_average: Option<[f64; 3]>,
    /// The temporary directory (`TMPDIR`, where FIFOs and Unix socket paths are made)
    /// and its filesystem type: creating and removing names there is part of `setup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmp_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmp_fs: Option<String>,
    /// What makes this run less reliable, and what to do about it.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// The filesystem type of the mount that holds `path`, from a /proc/self/mounts text (the
/// longest mount point that contains it; octal escapes such as `\040` for spaces decoded).
fn fs_type_of(mounts: &str, path: &Path) -> Option<String> {
    let unescape = |f: &str| f.replace("\\040", " ").replace("\\011", "\t");
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, ty) = (f.next()?, f.next()?, f.next()?);
            let point = unescape(point);
            path.starts_with(&point)
                .then(|| (point.len(), ty.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, ty)| ty)
}

/// IPC limits read at start. Tunables are never changed by this tool.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    /// `fs.pipe-max-size`: the largest pipe buffer an unprivileged process may request.
    pub pipe_max_size: Option<u64>,
    /// `fs.mqueue.msgsize_max`: largest POSIX message queue message.
    pub mq_msgsize_max: Option<u64>,
    /// `fs.mqueue.msg_max`: most messages in one POSIX queue.
    pub mq_msg_max: Option<u64>,
    /// `kernel.msgmax`: largest System V message.
    pub msgmax: Option<u64>,
    /// `kernel.msgmnb`: bytes one System V queue holds.
    pub msgmnb: Option<u64>,
    /// `net.core.wmem_max` / `rmem_max`: largest socket buffers setsockopt may ask for.
    pub wmem_max: Option<u64>,
    pub rmem_max: Option<u64>,
    /// `net.core.wmem_default` / `rmem_default`: socket buffers before any setsockopt.
    pub wmem_default: Option<u64>,
    pub rmem_default: Option<u64>,
    /// `RLIMIT_MSGQUEUE` (soft): bytes of POSIX queues this user may create.
    pub rlimit_msgqueue: Option<u64>,
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn read_u64(path: impl AsRef<Path>) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

impl Limits {
    pub fn read() -> Limits {
        Limits::read_from(Path::new("/"))
    }

    pub fn read_from(root: &Path) -> Limits {
        let read_u64 = |p: &str| read_u64(root.join(p.trim_start_matches('/')));
        Limits {
            pipe_max_size: read_u64("/proc/sys/fs/pipe-max-size"),
            mq_msgsize_max: read_u64("/proc/sys/fs/mqueue/msgsize_max"),
            mq_msg_max: read_u64("/proc/sys/fs/mqueue/msg_max"),
            msgmax: read_u64("/proc/sys/kernel/msgmax"),
            msgmnb: read_u64("/proc/sys/kernel/msgmnb"),
            wmem_max: read_u64("/proc/sys/net/core/wmem_max"),
            rmem_max: read_u64("/proc/sys/net/core/rmem_max"),
            wmem_default: read_u64("/proc/sys/net/core/wmem_default"),
            rmem_default: read_u64("/proc/sys/net/core/rmem_default"),
            rlimit_msgqueue: nix::sys::resource::getrlimit(
                nix::sys::resource::Resource::RLIMIT_MSGQUEUE,
            )
            .ok()
            .map(|(soft, _)| soft),
        }
    }
}

impl Environment {
    pub fn capture() -> Environment {
        Environment::capture_from(Path::new("/"))
    }

    /// Reads every fact below `root` (`/` normally; a test points it at an empty tree to
    /// check that a container without /sys gives nulls, not failures).
    pub fn capture_from(root: &Path) -> Environment {
        let at = |p: &str| root.join(p.trim_start_matches('/'));
        let kernel = match (
            read_trimmed(at("/proc/sys/kernel/ostype")),
            read_trimmed(at("/proc/sys/kernel/osrelease")),
        ) {
            (Some(t), Some(r)) => Some(format!("{t} {r}")),
            (None, Some(r)) => Some(r),
            _ => None,
        };
        let cpuinfo = std::fs::read_to_string(at("/proc/cpuinfo")).unwrap_or_default();
        let info = |key: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let cpu_model = info("model name");
        let cpu_mhz = info("cpu MHz").and_then(|v| v.parse().ok());
        let hypervisor = cpuinfo
            .lines()
            .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
        let logical_cpus = {
            let n = cpuinfo
                .lines()
                .filter(|l| l.starts_with("processor"))
                .count();
            (n > 0).then_some(n)
        };
        let cpu_dirs: Vec<std::path::PathBuf> = std::fs::read_dir(at("/sys/devices/system/cpu"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .and_then(|n| n.strip_prefix("cpu"))
                            .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut cores = std::collections::HashSet::new();
        let mut smt = None;
        for d in &cpu_dirs {
            let t = d.join("topology");
            if let (Some(pkg), Some(core)) = (
                read_trimmed(t.join("physical_package_id")),
                read_trimmed(t.join("core_id")),
            ) {
                cores.insert((pkg, core));
            }
            if let Some(sib) = read_trimmed(t.join("thread_siblings_list")) {
                let many = sib.contains(',') || sib.contains('-');
                smt = Some(smt.unwrap_or(false) || many);
            }
        }
        let numa_nodes = std::fs::read_dir(at("/sys/devices/system/node"))
            .ok()
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name().to_str().is_some_and(|n| {
                            n.starts_with("node") && n[4..].bytes().all(|b| b.is_ascii_digit())
                        })
                    })
                    .count()
            })
            .filter(|&n| n > 0);
        let mitigations = std::fs::read_dir(at("/sys/devices/system/cpu/vulnerabilities"))
            .ok()
            .map(|d| {
                let mut v: Vec<String> = d
                    .flatten()
                    .filter_map(|e| {
                        let status = read_trimmed(e.path())?;
                        status
                            .starts_with("Mitigation")
                            .then(|| format!("{}: {status}", e.file_name().to_string_lossy()))
                    })
                    .collect();
                v.sort();
                v
            });
        let load_average = read_trimmed(at("/proc/loadavg")).and_then(|l| {
            let v: Vec<f64> = l
                .split_whitespace()
                .take(3)
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 3).then(|| [v[0], v[1], v[2]])
        });
        let virtualization = hypervisor.then(|| {
            let vendor = read_trimmed(at("/sys/hypervisor/type"))
                .or_else(|| read_trimmed(at("/sys/class/dmi/id/sys_vendor")))
                .unwrap_or_else(|| "unknown hypervisor".into());
            format!("virtual machine ({vendor})")
        });
        let tmp = std::env::temp_dir();
        let tmp = std::fs::canonicalize(&tmp).unwrap_or(tmp);
        let mut env = Environment {
            kernel,
            cpu_model,
            logical_cpus,
            hostname: read_trimmed(at("/proc/sys/kernel/hostname")),
            limits: Limits::read_from(root),
            physical_cpus: (!cores.is_empty()).then_some(cores.len()),
            smt,
            numa_nodes,
            governor: read_trimmed(at("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")),
            boost: read_trimmed(at("/sys/devices/system/cpu/cpufreq/boost")).map(|b| b == "1"),
            cpu_mhz,
            clocksource: read_trimmed(at(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )),
            virtualization,
            isolated_cpus: std::fs::read_to_string(at("/sys/devices/system/cpu/isolated"))
                .ok()
                .map(|s| s.trim().to_string()),
            mitigations,
            load_average,
            tmp_dir: Some(tmp.display().to_string()),
            tmp_fs: std::fs::read_to_string(at("/proc/self/mounts"))
                .ok()
                .and_then(|m| fs_type_of(&m, &tmp)),
            warnings: Vec::new(),
        };
        env.warnings = env.warnings_for();
        env
    }

    /// What makes results from this machine less reliable, each with what to do.
    fn warnings_for(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(v) = &self.virtualization {
            w.push(format!("running in a {v}: the host can steal CPU time and cross-core wake-ups cost more than on bare metal; compare only runs from the same VM type, and prefer bare metal for absolute numbers"));
        }
        if self.governor.as_deref().is_some_and(|g| g != "performance") {
            w.push(format!("the CPU frequency governor is {:?}: set it to \"performance\" (cpupower frequency-set -g performance) so clock speed does not drift during the run", self.governor.as_deref().unwrap_or("")));
        }
        if self.boost == Some(true) {
            w.push("CPU boost is on: turbo frequencies vary with temperature and load; turn it off for steadier numbers".into());
        }
        if let Some([one, _, _]) = self.load_average {
            let cpus = self.logical_cpus.unwrap_or(1) as f64;
            if one > 0.3 * cpus {
                w.push(format!("load average {one:.2} at start on {cpus} CPUs: other work competes with the benchmark; run on an idle machine"));
            }
        }
        if self.logical_cpus.is_some_and(|n| n < 2) {
            w.push("fewer than 2 CPUs: cross-core runs are impossible and spinning mechanisms cannot run".into());
        }
        if self.clocksource.as_deref().is_some_and(|c| c != "tsc") {
            w.push(format!(
                "the clocksource is {:?}, not tsc: reading the clock may cost a system call",
                self.clocksource.as_deref().unwrap_or("")
            ));
        }
        if self.isolated_cpus.as_deref().is_some_and(|c| c.is_empty())
            && self.logical_cpus.is_some_and(|n| n > 2)
        {
            w.push("no CPUs are isolated: with isolcpus (and --cpus on them) the scheduler leaves the benchmark alone".into());
        }
        w
    }
}

/// Formats a Unix time as RFC 3339 in UTC, e.g. `2026-11-25T13:11:03Z`.
pub fn rfc3339(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Civil-from-days (proleptic Gregorian), after Howard Hinnant's published algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_directory_s_filesystem_is_its_longest_mount() {
        let mounts = "/dev/vda / ext4 rw 0 0\n\
                      tmpfs /tmp tmpfs rw 0 0\n\
                      tmpfs /tmpx tmpfs rw 0 0\n\
                      /dev/vdb /mnt/my\\040disk xfs rw 0 0\n";
        let of = |p: &str| fs_type_of(mounts, Path::new(p));
        assert_eq!(of("/tmp/x").as_deref(), Some("tmpfs"));
        assert_eq!(of("/var/tmp").as_deref(), Some("ext4"));
        // A mount point is matched by whole components: /tmpx does not hold /tmpxy.
        assert_eq!(of("/tmpxy").as_deref(), Some("ext4"));
        assert_eq!(of("/mnt/my disk/t").as_deref(), Some("xfs"));
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_612_263), "2026-11-25T13:11:03Z");
    }

    #[test]
    fn capture_fills_what_this_machine_has() {
        let env = Environment::capture();
        assert!(env.logical_cpus.unwrap_or(0) >= 1);
        assert!(env.kernel.as_deref().unwrap_or("").contains('.'));
        assert!(env.load_average.is_some());
        assert!(env.clocksource.is_some());
    }

    #[test]
    fn a_tree_without_proc_or_sys_gives_nulls_not_failures() {
        let empty =
            std::env::temp_dir().join(format!("ipcbench-empty-root-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let env = Environment::capture_from(&empty);
        std::fs::remove_dir(&empty).unwrap();
        assert_eq!(env.kernel, None);
        assert_eq!(env.logical_cpus, None);
        assert_eq!(env.physical_cpus, None);
        assert_eq!(env.smt, None);
        assert_eq!(env.numa_nodes, None);
        assert_eq!(env.governor, None);
        assert_eq!(env.mitigations, None);
        assert_eq!(env.load_average, None);
        // Everything but the rlimit (a system call, not a file) is read from the tree.
        let limits = Limits {
            rlimit_msgqueue: None,
            ..env.limits.clone()
        };
        assert_eq!(limits, Limits::default());
        let json = serde_json::to_value(&env).unwrap();
        assert!(json["kernel"].is_null() && json["limits"]["msgmax"].is_null());
    }

    #[test]
    fn a_fake_vm_with_powersave_is_warned_about() {
        let root = std::env::temp_dir().join(format!("ipcbench-fake-root-{}", std::process::id()));
        let cpu = root.join("sys/devices/system/cpu/cpu0/cpufreq");
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(cpu.join("scaling_governor"), "powersave\n").unwrap();
        std::fs::write(
            root.join("proc/cpuinfo"),
            "processor : 0\nflags : fpu hypervisor\n",
        )
        .unwrap();
        std::fs::write(root.join("proc/loadavg"), "3.00 1.00 0.50 1/100 42\n").unwrap();
        let env = Environment::capture_from(&root);
        std::fs::remove_dir_all(&root).unwrap();
        let all = env.warnings.join("\n");
        assert!(all.contains("virtual machine"), "{all}");
        assert!(
            all.contains("powersave") && all.contains("performance"),
            "{all}"
        );
        assert!(all.contains("load average 3.00"), "{all}");
        assert!(all.contains("fewer than 2 CPUs"), "{all}");
    }
}
