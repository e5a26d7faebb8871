//! Records of the named kernel objects this tool creates, kept in a per-user state
//! directory until each object is removed, so that `ipcbench clean` can remove what a
//! killed run left. This sits below the code that creates objects (sys, backends); what
//! removes a dead run's objects is `cleanup`, above. `IPCBENCH_TRACE=FILE` also appends
//! every created object to FILE (for leak audits).

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::PathBuf;

use crate::sys::fs::PREFIX;

/// A named object this tool creates: a kernel object, or one of a kind a mechanism
/// registers (`backends::LEFTOVERS`) with its own way to find and remove it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    SysvMsg(i32),
    SysvSem(i32),
    SysvShm(i32),
    PosixMq(String),
    PosixShm(String),
    PosixSem(String),
    /// A mechanism's own kind of leftover (e.g. `iox2-domain`), named with this tool's prefix.
    Registered {
        kind: String,
        name: String,
    },
}

/// The kernel's kinds, as they stand at the start of a record's file name.
const KERNEL_KINDS: [&str; 6] = [
    "sysv-msg",
    "sysv-sem",
    "sysv-shm",
    "posix-mq",
    "posix-shm",
    "posix-sem",
];

/// Whether `kind` can name a registered kind of object: lower-case words and digits joined
/// by '-' (the record's file name starts with it).
pub fn plain_kind(kind: &str) -> bool {
    !kind.is_empty()
        && kind.split('-').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

impl Object {
    pub fn kind(&self) -> &str {
        match self {
            Object::SysvMsg(_) => "sysv-msg",
            Object::SysvSem(_) => "sysv-sem",
            Object::SysvShm(_) => "sysv-shm",
            Object::PosixMq(_) => "posix-mq",
            Object::PosixShm(_) => "posix-shm",
            Object::PosixSem(_) => "posix-sem",
            Object::Registered { kind, .. } => kind,
        }
    }

    fn ident(&self) -> String {
        match self {
            Object::SysvMsg(i) | Object::SysvSem(i) | Object::SysvShm(i) => i.to_string(),
            Object::PosixMq(n)
            | Object::PosixShm(n)
            | Object::PosixSem(n)
            | Object::Registered { name: n, .. } => n.clone(),
        }
    }

    /// The record's file name: `<kind>-<ident without slashes>`.
    fn record_name(&self) -> String {
        format!("{}-{}", self.kind(), self.ident().trim_start_matches('/'))
    }

    fn parse(kind: &str, ident: &str) -> Option<Object> {
        let id = || ident.parse().ok().filter(|i: &i32| *i >= 0);
        let name = || {
            let n = format!("/{}", ident.trim_start_matches('/'));
            n[1..].starts_with(PREFIX).then_some(n)
        };
        Some(match kind {
            "sysv-msg" => Object::SysvMsg(id()?),
            "sysv-sem" => Object::SysvSem(id()?),
            "sysv-shm" => Object::SysvShm(id()?),
            "posix-mq" => Object::PosixMq(name()?),
            "posix-shm" => Object::PosixShm(name()?),
            "posix-sem" => Object::PosixSem(name()?),
            _ if plain_kind(kind) => Object::Registered {
                kind: kind.to_string(),
                name: name()?.trim_start_matches('/').to_string(),
            },
            _ => return None,
        })
    }

    /// Reads a record's file name (`<kind>-<ident>`).
    fn from_record_name(file: &str) -> Option<Object> {
        if let Some((kind, ident)) = KERNEL_KINDS.iter().find_map(|k| {
            file.strip_prefix(k)
                .and_then(|r| r.strip_prefix('-'))
                .map(|r| (*k, r))
        }) {
            return Object::parse(kind, ident);
        }
        // A registered kind: its name starts with this tool's prefix.
        let at = file.find(&format!("-{PREFIX}"))?;
        Object::parse(&file[..at], &file[at + 1..])
    }

    /// Reads a line of an `IPCBENCH_TRACE` file (`<kind> <ident>`).
    pub fn from_trace(line: &str) -> Option<Object> {
        let (kind, ident) = line.trim().split_once(' ')?;
        Object::parse(kind, ident)
    }

    /// The object's change time (System V), which a reused id would not share.
    pub fn ctime(&self) -> Option<i64> {
        use crate::sys::sysv::{ctime, Kind};
        match self {
            Object::SysvMsg(id) => ctime(Kind::Queue, *id),
            Object::SysvSem(id) => ctime(Kind::SemSet, *id),
            Object::SysvShm(id) => ctime(Kind::Segment, *id),
            _ => None,
        }
    }
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind(), self.ident())
    }
}

/// The per-user state directory: `IPCBENCH_STATE_DIR`, else `$XDG_RUNTIME_DIR/ipcbench`,
/// else `~/.local/state/ipcbench`, else `/tmp/ipcbench-state-<uid>`. Created 0700; refused
/// if it is a symlink or not this user's.
pub fn state_dir() -> io::Result<PathBuf> {
    let uid = nix::unistd::geteuid().as_raw();
    let dir = if let Some(d) = std::env::var_os("IPCBENCH_STATE_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        PathBuf::from(d).join("ipcbench")
    } else if let Some(h) = std::env::var_os("HOME") {
        PathBuf::from(h).join(".local/state/ipcbench")
    } else {
        PathBuf::from(format!("/tmp/ipcbench-state-{uid}"))
    };
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(e);
        }
    }
    let md = std::fs::symlink_metadata(&dir)?;
    if !md.is_dir() || md.uid() != uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not a directory of this user", dir.display()),
        ));
    }
    Ok(dir)
}

/// This process's identity in records: pid and start time (so a reused pid is not "alive").
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the parenthesised command name (which may hold spaces).
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

fn trace(line: &str) {
    if let Some(path) = std::env::var_os("IPCBENCH_TRACE") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

thread_local! {
    /// Nanoseconds this thread has spent keeping records (`spent_ns`).
    static SPENT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Nanoseconds this thread has spent in `track` and `untrack` so far: the `setup` workload
/// takes this bookkeeping of ipcbench's own out of what it reports for a mechanism.
pub fn spent_ns() -> u64 {
    SPENT.with(|s| s.get())
}

/// Runs `f`, adding its duration to this thread's `spent_ns`.
fn timed(f: impl FnOnce()) {
    let start = std::time::Instant::now();
    f();
    let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    SPENT.with(|s| s.set(s.get().saturating_add(ns)));
}

/// Records a newly created object (best effort: a run is not refused for want of a record).
pub fn track(obj: &Object) {
    timed(|| track_now(obj));
}

/// Forgets an object once it is removed (or unlinked, for names).
pub fn untrack(obj: &Object) {
    timed(|| untrack_now(obj));
}

fn track_now(obj: &Object) {
    trace(&format!("{} {}", obj.kind(), obj.ident()));
    let Ok(dir) = state_dir() else { return };
    let pid = std::process::id();
    let body = format!(
        "pid={pid}\nstart={}\nctime={}\n",
        start_time(pid).unwrap_or(0),
        obj.ctime().unwrap_or(0)
    );
    let _ = std::fs::write(dir.join(obj.record_name()), body);
}

fn untrack_now(obj: &Object) {
    if let Ok(dir) = state_dir() {
        let _ = std::fs::remove_file(dir.join(obj.record_name()));
    }
}

fn field(body: &str, key: &str) -> Option<i64> {
    body.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// One record: the object, where the record is, and who made the object when.
pub struct Record {
    pub object: Object,
    path: PathBuf,
    pid: u32,
    start: u64,
    /// The System V change time at creation (0 when not System V).
    pub ctime: i64,
}

impl Record {
    /// Whether the process that made the object still runs (same pid, same start time).
    pub fn maker_alive(&self) -> bool {
        self.pid != 0 && start_time(self.pid).is_some_and(|s| s == self.start)
    }

    /// Drops the record (its object is gone).
    pub fn forget(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Every record in the state directory that names an object this tool could have made.
pub fn records() -> io::Result<Vec<Record>> {
    let dir = state_dir()?;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(object) = Object::from_record_name(&name) else {
            continue;
        };
        let body = std::fs::read_to_string(entry.path()).unwrap_or_default();
        out.push(Record {
            object,
            path: entry.path(),
            pid: field(&body, "pid").unwrap_or(0) as u32,
            start: field(&body, "start").unwrap_or(0) as u64,
            ctime: field(&body, "ctime").unwrap_or(-1),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_and_trace_lines_read_back() {
        let objects = [
            Object::SysvMsg(42),
            Object::PosixMq(format!("/{PREFIX}1-a")),
            Object::Registered {
                kind: "iox2-domain".into(),
                name: format!("{PREFIX}7-00ff"),
            },
        ];
        for o in objects {
            assert_eq!(Object::from_record_name(&o.record_name()), Some(o.clone()));
            assert_eq!(Object::from_trace(&o.to_string()), Some(o.clone()));
        }
        assert_eq!(Object::from_record_name("iox2-domain-not-ours"), None);
        assert_eq!(Object::from_trace("Bad_Kind ipcbench-1"), None);
    }
}
