//! Nothing left behind. Every named object the tool creates is recorded in a per-user state
//! directory until it is removed; `ipcbench clean` removes the objects of runs whose process
//! is gone (and only those, checked against what was recorded). Objects that can be
//! unlinked while in use are unlinked as soon as both sides hold them; System V queues and
//! semaphore sets cannot be, which is what the records are for.
//! `IPCBENCH_TRACE=FILE` also appends every created object to FILE (for leak audits).

#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::sys::fs::PREFIX;

/// A named kernel object this tool creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    SysvMsg(i32),
    SysvSem(i32),
    SysvShm(i32),
    PosixMq(String),
    PosixShm(String),
    PosixSem(String),
    /// An iceoryx2 domain of one run (`iox2_<name>_*` in /dev/shm and iceoryx2's root path).
    Iox2Domain(String),
}

/// Every kind of record, as it stands at the start of a record's file name.
const KINDS: [&str; 7] = [
    "sysv-msg",
    "sysv-sem",
    "sysv-shm",
    "posix-mq",
    "posix-shm",
    "posix-sem",
    "iox2-domain",
];

/// Where iceoryx2 keeps its files by default (its `global.root-path`).
pub const IOX2_ROOT: &str = "/tmp/iceoryx2";

/// The files of the iceoryx2 domain `name`: shared memory and the node and service records.
pub fn iox2_domain_files(name: &str) -> Vec<PathBuf> {
    let prefix = format!("iox2_{name}_");
    let mut dirs = vec![
        PathBuf::from("/dev/shm"),
        Path::new(IOX2_ROOT).join("services"),
        Path::new(IOX2_ROOT).join("nodes"),
    ];
    // Node records sit in one directory per node id, named without the prefix.
    if let Ok(rd) = std::fs::read_dir(Path::new(IOX2_ROOT).join("nodes")) {
        dirs.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect()
}

/// Removes the files of the iceoryx2 domain `name` (see `iox2_domain_files`) and the node
/// directories that leaves empty. For a domain no live process uses: the caller checks.
/// An error names a file that could not be removed.
pub fn remove_iox2_domain_files(name: &str) -> io::Result<()> {
    let nodes = Path::new(IOX2_ROOT).join("nodes");
    for path in iox2_domain_files(name) {
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != io::ErrorKind::NotFound {
                return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())));
            }
        }
        // A node's directory is named by its id alone (ids hold a pid and a time, so no
        // other domain shares it); removing it succeeds only once it is empty.
        if let Some(dir) = path
            .parent()
            .filter(|d| d.parent() == Some(nodes.as_path()))
        {
            let _ = std::fs::remove_dir(dir);
        }
    }
    Ok(())
}

impl Object {
    fn kind(&self) -> &'static str {
        match self {
            Object::SysvMsg(_) => "sysv-msg",
            Object::SysvSem(_) => "sysv-sem",
            Object::SysvShm(_) => "sysv-shm",
            Object::PosixMq(_) => "posix-mq",
            Object::PosixShm(_) => "posix-shm",
            Object::PosixSem(_) => "posix-sem",
            Object::Iox2Domain(_) => "iox2-domain",
        }
    }

    fn ident(&self) -> String {
        match self {
            Object::SysvMsg(i) | Object::SysvSem(i) | Object::SysvShm(i) => i.to_string(),
            Object::PosixMq(n)
            | Object::PosixShm(n)
            | Object::PosixSem(n)
            | Object::Iox2Domain(n) => n.clone(),
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
            "iox2-domain" => Object::Iox2Domain(name()?.trim_start_matches('/').to_string()),
            _ => return None,
        })
    }

    /// Reads a line of an `IPCBENCH_TRACE` file (`<kind> <ident>`).
    pub fn from_trace(line: &str) -> Option<Object> {
        let (kind, ident) = line.trim().split_once(' ')?;
        Object::parse(kind, ident)
    }

    /// The object's change time (System V), which a reused id would not share.
    fn ctime(&self) -> Option<i64> {
        use crate::sys::sysv::{ctime, Kind};
        match self {
            Object::SysvMsg(id) => ctime(Kind::Queue, *id),
            Object::SysvSem(id) => ctime(Kind::SemSet, *id),
            Object::SysvShm(id) => ctime(Kind::Segment, *id),
            _ => None,
        }
    }

    /// Whether the kernel still has the object (a System V segment marked for removal counts).
    pub fn exists(&self) -> bool {
        match self {
            // Opened only to see that it exists; the owning wrapper closes it again.
            Object::PosixMq(n) => nix::mqueue::mq_open(
                n.as_str(),
                nix::mqueue::MQ_OFlag::O_RDONLY,
                nix::sys::stat::Mode::empty(),
                None,
            )
            .map(crate::sys::mq::OwnedMq::new)
            .is_ok(),
            Object::PosixShm(n) => Path::new("/dev/shm")
                .join(n.trim_start_matches('/'))
                .exists(),
            Object::PosixSem(n) => Path::new("/dev/shm")
                .join(format!("sem.{}", n.trim_start_matches('/')))
                .exists(),
            Object::Iox2Domain(n) => !iox2_domain_files(n).is_empty(),
            Object::SysvMsg(_) | Object::SysvSem(_) | Object::SysvShm(_) => self.ctime().is_some(),
        }
    }

    fn remove(&self) -> io::Result<()> {
        use crate::sys::sysv::{remove_by_id, Kind};
        match self {
            Object::SysvMsg(id) => remove_by_id(Kind::Queue, *id),
            Object::SysvSem(id) => remove_by_id(Kind::SemSet, *id),
            Object::SysvShm(id) => remove_by_id(Kind::Segment, *id),
            Object::PosixMq(n) => nix::mqueue::mq_unlink(n.as_str()).map_err(io::Error::from),
            Object::PosixShm(n) => nix::sys::mman::shm_unlink(n.as_str()).map_err(io::Error::from),
            Object::PosixSem(n) => crate::sys::sem::NamedSem::unlink(n),
            #[cfg(feature = "iceoryx2")]
            Object::Iox2Domain(n) => crate::backends::remove_iox2_domain(n),
            #[cfg(not(feature = "iceoryx2"))]
            Object::Iox2Domain(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this ipcbench was built without the iceoryx2 feature; clean with `cargo run --features iceoryx2 -- clean`",
            )),
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
fn start_time(pid: u32) -> Option<u64> {
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

/// Records a newly created object (best effort: a run is not refused for want of a record).
pub fn track(obj: &Object) {
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

/// Forgets an object once it is removed (or unlinked, for names).
pub fn untrack(obj: &Object) {
    if let Ok(dir) = state_dir() {
        let _ = std::fs::remove_file(dir.join(obj.record_name()));
    }
}

fn field(body: &str, key: &str) -> Option<i64> {
    body.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// What `clean` did: objects removed, and objects it found but could not remove (their
/// records are kept so a later `clean` tries again).
#[derive(Debug, Default)]
pub struct Cleaned {
    pub removed: Vec<String>,
    pub failed: Vec<String>,
}

/// Removes the recorded objects whose creating process is gone, and this tool's private
/// directories in TMPDIR left by dead processes.
pub fn clean() -> io::Result<Cleaned> {
    let mut done = clean_records(|_| true)?;
    done.removed.extend(clean_private_dirs());
    Ok(done)
}

/// Removes the iceoryx2 domains of dead runs (what a killed run leaves: its nodes'
/// records, its services and their shared memory). A new iceoryx2 run does this first.
pub fn clean_dead_iox2_domains() -> io::Result<Cleaned> {
    clean_records(|o| matches!(o, Object::Iox2Domain(_)))
}

fn clean_records(wanted: impl Fn(&Object) -> bool) -> io::Result<Cleaned> {
    let dir = state_dir()?;
    let mut done = Cleaned::default();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((kind, ident)) = KINDS.iter().find_map(|k| {
            name.strip_prefix(k)
                .and_then(|r| r.strip_prefix('-'))
                .map(|r| (*k, r))
        }) else {
            continue;
        };
        let Some(obj) = Object::parse(kind, ident).filter(|o| wanted(o)) else {
            continue;
        };
        let body = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let pid = field(&body, "pid").unwrap_or(0) as u32;
        let start = field(&body, "start").unwrap_or(0) as u64;
        if pid != 0 && start_time(pid).is_some_and(|s| s == start) {
            continue; // its run is still going
        }
        // A System V id may have been reused by someone else: remove only the object we made.
        let ours = match obj {
            Object::SysvMsg(_) | Object::SysvSem(_) | Object::SysvShm(_) => obj
                .ctime()
                .is_some_and(|c| c == field(&body, "ctime").unwrap_or(-1)),
            _ => obj.exists(),
        };
        if ours {
            match obj.remove() {
                Ok(()) => done.removed.push(obj.to_string()),
                Err(e) => {
                    done.failed.push(format!("{obj}: {e}"));
                    continue;
                }
            }
        }
        let _ = std::fs::remove_file(entry.path());
    }
    Ok(done)
}

/// `$TMPDIR/ipcbench-<pid>-XXXXXX` directories of dead processes, owned by this user.
fn clean_private_dirs() -> Vec<String> {
    let tmp = std::env::temp_dir();
    let uid = nix::unistd::geteuid().as_raw();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&tmp) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let path = e.path();
        let Ok(md) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !md.is_dir()
            || md.uid() != uid
            || md.mode() & 0o777 != 0o700
            || Path::new(&format!("/proc/{pid}")).exists()
        {
            continue;
        }
        // Only the names this tool puts there.
        for f in ["to-peer", "from-peer", "socket"] {
            let _ = std::fs::remove_file(path.join(f));
        }
        if std::fs::remove_dir(&path).is_ok() {
            out.push(format!("directory {}", path.display()));
        }
    }
    out
}
