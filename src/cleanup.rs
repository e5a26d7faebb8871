//! Nothing left behind. `ipcbench clean` removes the recorded objects (`sys::record`) of
//! runs whose process is gone, and only those, checked against what was recorded; kinds a
//! mechanism registers (`backends::LEFTOVERS`) are found and removed by the mechanism's own
//! functions. Objects that can be unlinked while in use are unlinked as soon as both sides
//! hold them; System V queues and semaphore sets cannot be, which is what the records are for.

#![forbid(unsafe_code)]

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::sys::fs::PREFIX;
pub use crate::sys::record::{state_dir, Object};

impl Object {
    /// Whether the object still exists (a System V segment marked for removal counts).
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
            Object::SysvMsg(_) | Object::SysvSem(_) | Object::SysvShm(_) => self.ctime().is_some(),
            // A kind this build does not know (its mechanism's feature is off) cannot be seen.
            Object::Registered { kind, name } => {
                crate::backends::leftovers(kind).is_some_and(|l| (l.exists)(name))
            }
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
            Object::Registered { kind, name } => match crate::backends::leftovers(kind) {
                Some(l) => (l.remove)(name),
                None => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("this ipcbench was built without the mechanism that makes {kind} objects; clean with the build that ran it (e.g. `cargo run --all-features -- clean`)"),
                )),
            },
        }
    }
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
    let mut done = Cleaned::default();
    for r in crate::sys::record::records()? {
        if r.maker_alive() {
            continue; // its run is still going
        }
        let obj = &r.object;
        // A System V id may have been reused by someone else: remove only the object we made.
        let ours = match obj {
            Object::SysvMsg(_) | Object::SysvSem(_) | Object::SysvShm(_) => {
                obj.ctime().is_some_and(|c| c == r.ctime)
            }
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
        r.forget();
    }
    done.removed.extend(clean_private_dirs());
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
