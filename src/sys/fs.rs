//! Private directories for named objects (FIFOs, socket paths): created 0700 with an
//! unpredictable name, checked by the peer before use, removed with everything in them.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Prefix of every filesystem name this tool creates.
pub const PREFIX: &str = "ipcbench-";

/// A directory only this user can enter, removed (with its entries) on drop.
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
    removed: bool,
}

impl PrivateDir {
    /// Creates `$TMPDIR/ipcbench-<pid>-XXXXXX` with mode 0700 (mkdtemp: exclusive, no symlink follow).
    pub fn create() -> io::Result<PrivateDir> {
        let template = std::env::temp_dir().join(format!("{PREFIX}{}-XXXXXX", std::process::id()));
        let path = nix::unistd::mkdtemp(&template)?;
        Ok(PrivateDir {
            path,
            removed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the entries and the directory. Entries are only ever our own FIFOs and sockets.
    pub fn remove(&mut self) -> io::Result<()> {
        if self.removed {
            return Ok(());
        }
        for entry in std::fs::read_dir(&self.path)? {
            std::fs::remove_file(entry?.path())?;
        }
        std::fs::remove_dir(&self.path)?;
        self.removed = true;
        Ok(())
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        // Best effort on error paths; the normal path calls `remove` and reports failures.
        let _ = self.remove();
    }
}

/// In the peer: accepts `path` only if it is a private directory this tool created for us.
pub fn check_private_dir(path: &Path) -> Result<(), String> {
    let parent_ok = path.parent() == Some(std::env::temp_dir().as_path());
    let name_ok = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(PREFIX) && !n.contains('/'));
    if !path.is_absolute() || !parent_ok || !name_ok {
        return Err(format!(
            "not a directory this tool creates (expected {}/{PREFIX}*)",
            std::env::temp_dir().display()
        ));
    }
    let md = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !md.file_type().is_dir() {
        return Err("not a directory (symlinks are refused)".into());
    }
    if md.uid() != nix::unistd::geteuid().as_raw() || md.mode() & 0o777 != 0o700 {
        return Err("not owned by this user with mode 0700".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dir_is_0700_and_removed_with_contents() {
        let mut d = PrivateDir::create().unwrap();
        let p = d.path().to_path_buf();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o700);
        assert_eq!(check_private_dir(&p), Ok(()));
        std::fs::write(p.join("x"), b"1").unwrap();
        d.remove().unwrap();
        assert!(!p.exists());
    }

    #[test]
    fn foreign_paths_are_refused() {
        assert!(check_private_dir(Path::new("/etc")).is_err());
        assert!(check_private_dir(Path::new("relative/ipcbench-1")).is_err());
        let evil = std::env::temp_dir().join(format!("{PREFIX}link-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&evil);
        std::os::unix::fs::symlink("/", &evil).unwrap();
        let r = check_private_dir(&evil);
        std::fs::remove_file(&evil).unwrap();
        assert!(r.is_err());
    }
}
