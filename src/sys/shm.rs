//! Shared memory: segments (POSIX `shm_open`, System V `shmget`, `memfd_create`) and their
//! mappings. The process-shared primitives placed in them are in `sem` (semaphores) and
//! `pthread` (mutex, condition variable, rwlock).

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, munmap, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::Mode;

pub(super) fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// pthread functions return the error number instead of setting errno.
pub(super) fn check_pthread(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}

/// Who undoes a mapping.
enum Owner {
    Mmap,
    Sysv,
    /// A crate's own segment handle, which unmaps when dropped.
    Foreign(#[allow(dead_code)] Box<dyn Send + Sync>),
}

/// A shared mapping of a segment, unmapped (or detached) on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    owner: Owner,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapping({:p}, {} bytes)", self.ptr, self.len)
    }
}

// SAFETY: a mapping is plain memory shared with another process; every access goes through
// atomics or the ring protocol, which never lets two writers touch the same bytes.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only hands out the base address.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of a shared memory file (POSIX segment or memfd) read-write, shared.
    pub fn map(fd: &impl AsFd, len: usize) -> io::Result<Mapping> {
        let n = NonZeroUsize::new(len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty segment"))?;
        // SAFETY: a fresh MAP_SHARED mapping chosen by the kernel overlaps no Rust object.
        let p = unsafe {
            mmap(
                None,
                n,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd,
                0,
            )?
        };
        Ok(Mapping {
            ptr: p.cast(),
            len,
            owner: Owner::Mmap,
        })
    }

    /// A mapping made by someone else (a crate), kept alive by `owner`.
    ///
    /// # Safety
    /// `ptr..ptr + len` must be a shared, read-write mapping that stays valid until `owner`
    /// is dropped.
    pub unsafe fn foreign(
        ptr: *mut u8,
        len: usize,
        owner: Box<dyn Send + Sync>,
    ) -> io::Result<Mapping> {
        let ptr = NonNull::new(ptr).ok_or_else(|| io::Error::other("null mapping"))?;
        Ok(Mapping {
            ptr,
            len,
            owner: Owner::Foreign(owner),
        })
    }

    /// Attaches a System V segment that must be at least `len` bytes.
    pub fn attach_sysv(id: libc::c_int, len: usize) -> io::Result<Mapping> {
        let seg = segment_size(id)?;
        if seg < len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("segment {id} has {seg} bytes, {len} needed"),
            ));
        }
        // SAFETY: shmat with a null address lets the kernel choose a fresh range.
        let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if p as isize == -1 {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("shmat returned null"))?;
        Ok(Mapping {
            ptr,
            len,
            owner: Owner::Sysv,
        })
    }

    pub fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        match self.owner {
            // SAFETY: `ptr` came from shmat and is detached once.
            Owner::Sysv => unsafe {
                libc::shmdt(self.ptr.as_ptr().cast());
            },
            Owner::Mmap => {
                // SAFETY: `ptr`/`len` came from mmap and are unmapped once.
                let _ = unsafe { munmap(self.ptr.cast(), self.len) };
            }
            Owner::Foreign(_) => {}
        }
    }
}

fn shm_stat(id: libc::c_int) -> io::Result<libc::shmid_ds> {
    // SAFETY: shmid_ds is plain old data; IPC_STAT fills it.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is valid and writable for the call.
    check(unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) })?;
    Ok(ds)
}

fn segment_size(id: libc::c_int) -> io::Result<usize> {
    Ok(shm_stat(id)?.shm_segsz)
}

pub(super) fn owned_private(uid: u32, mode: u32) -> bool {
    uid == nix::unistd::geteuid().as_raw() && mode & 0o777 == 0o600
}

/// Creates a POSIX segment exclusively with mode 0600 and sizes it.
pub fn posix_create(name: &str, len: usize) -> io::Result<OwnedFd> {
    let fd = shm_open(
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )?;
    crate::sys::record::track(&crate::sys::record::Object::PosixShm(name.to_string()));
    if let Err(e) = nix::unistd::ftruncate(&fd, len as libc::off_t) {
        let _ = posix_unlink(name);
        return Err(e.into());
    }
    Ok(fd)
}

/// Opens an existing POSIX segment, checking it is this user's, private and `len` bytes.
pub fn posix_open(name: &str, len: usize) -> io::Result<OwnedFd> {
    let fd = shm_open(
        name,
        OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?;
    let st = nix::sys::stat::fstat(fd.as_fd())?;
    if !owned_private(st.st_uid, st.st_mode) || st.st_size as usize != len {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "not a private segment of this run",
        ));
    }
    Ok(fd)
}

pub fn posix_unlink(name: &str) -> io::Result<()> {
    shm_unlink(name)?;
    crate::sys::record::untrack(&crate::sys::record::Object::PosixShm(name.to_string()));
    Ok(())
}

/// An anonymous segment: a memfd handed to the peer by inheritance.
pub fn memfd(len: usize) -> io::Result<OwnedFd> {
    memfd_on(len, false)
}

/// `memfd`, on huge pages with `huge` (`len` must then be whole huge pages).
pub fn memfd_on(len: usize, huge: bool) -> io::Result<OwnedFd> {
    use nix::sys::memfd::MFdFlags;
    let flags = match huge {
        true => MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_HUGETLB,
        false => MFdFlags::MFD_CLOEXEC,
    };
    sized_memfd(c"ipcbench-shm", flags, len)
}

/// A memfd named `name` (as /proc shows it) created with `flags`, `len` bytes long.
pub fn sized_memfd(
    name: &std::ffi::CStr,
    flags: nix::sys::memfd::MFdFlags,
    len: usize,
) -> io::Result<OwnedFd> {
    let fd = nix::sys::memfd::memfd_create(name, flags)?;
    nix::unistd::ftruncate(&fd, len as libc::off_t)?;
    Ok(fd)
}

/// A System V segment created private with mode 0600; removed once (by its creator).
#[derive(Debug)]
pub struct SysvShm {
    id: libc::c_int,
    removed: AtomicBool,
}

impl SysvShm {
    /// A segment of `len` bytes; on huge pages with `huge` (`SHM_HUGETLB`).
    pub fn create(len: usize, huge: bool) -> io::Result<SysvShm> {
        let flags =
            libc::IPC_CREAT | libc::IPC_EXCL | 0o600 | if huge { libc::SHM_HUGETLB } else { 0 };
        // SAFETY: shmget takes only integers.
        let id = check(unsafe { libc::shmget(libc::IPC_PRIVATE, len, flags) })?;
        crate::sys::record::track(&crate::sys::record::Object::SysvShm(id));
        Ok(SysvShm {
            id,
            removed: AtomicBool::new(false),
        })
    }

    pub fn id(&self) -> libc::c_int {
        self.id
    }

    /// Marks the segment for removal: it disappears once both processes detach.
    pub fn remove(&self) -> io::Result<()> {
        if self.removed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // SAFETY: IPC_RMID takes no buffer.
        check(unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) })?;
        crate::sys::record::untrack(&crate::sys::record::Object::SysvShm(self.id));
        Ok(())
    }
}

impl Drop for SysvShm {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// Checks a System V segment id handed to the peer: this user's, mode 0600.
pub fn sysv_check(id: libc::c_int) -> io::Result<()> {
    let ds = shm_stat(id)?;
    if !owned_private(ds.shm_perm.uid, ds.shm_perm.mode as u32)
        || ds.shm_perm.cuid != nix::unistd::geteuid().as_raw()
    {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "not a private segment of this user",
        ));
    }
    Ok(())
}

/// A hint to bring the cache line at `p` to this CPU for reading, as a reader polling shared
/// memory wants for a line it will read next. Not an access: it cannot race with another
/// process's stores to the line, and it is a no-op off x86_64.
#[inline]
pub fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing the program can observe; SSE is
    // part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
