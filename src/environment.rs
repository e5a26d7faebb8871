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

fn read_u64(path: &str) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

impl Limits {
    pub fn read() -> Limits {
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
        let kernel = match (
            read_trimmed("/proc/sys/kernel/ostype"),
            read_trimmed("/proc/sys/kernel/osrelease"),
        ) {
            (Some(t), Some(r)) => Some(format!("{t} {r}")),
            (None, Some(r)) => Some(r),
            _ => None,
        };
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string());
        let logical_cpus = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
            .ok()
            .flatten()
            .and_then(|n| usize::try_from(n).ok());
        Environment {
            kernel,
            cpu_model,
            logical_cpus,
            hostname: read_trimmed("/proc/sys/kernel/hostname"),
            limits: Limits::read(),
        }
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
    }
}
