//! Semaphores between processes: System V semaphore sets, unnamed process-shared POSIX
//! semaphores inside a shared mapping, and named POSIX semaphores.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::shm::{check, owned_private};

/// A System V semaphore set; the creator removes it (waiters then fail with EIDRM).
#[derive(Debug)]
pub struct SysvSemSet {
    id: libc::c_int,
    owned: bool,
    removed: AtomicBool,
}

impl SysvSemSet {
    pub fn create(n: usize) -> io::Result<SysvSemSet> {
        // SAFETY: semget takes only integers; new semaphores start at 0 on Linux.
        let id = check(unsafe {
            libc::semget(
                libc::IPC_PRIVATE,
                n as libc::c_int,
                libc::IPC_CREAT | libc::IPC_EXCL | 0o600,
            )
        })?;
        crate::sys::record::track(&crate::sys::record::Object::SysvSem(id));
        Ok(SysvSemSet {
            id,
            owned: true,
            removed: AtomicBool::new(false),
        })
    }

    /// Opens a set the parent created: this user's, mode 0600, with `n` semaphores.
    pub fn open(id: libc::c_int, n: usize) -> io::Result<SysvSemSet> {
        // SAFETY: semid_ds is plain old data; IPC_STAT fills it.
        let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: IPC_STAT takes a pointer to a semid_ds as its fourth (variadic) argument.
        check(unsafe { libc::semctl(id, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) })?;
        if !owned_private(ds.sem_perm.uid, ds.sem_perm.mode as u32) || ds.sem_nsems as usize != n {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "not a semaphore set of this run",
            ));
        }
        Ok(SysvSemSet {
            id,
            owned: false,
            removed: AtomicBool::new(false),
        })
    }

    pub fn id(&self) -> libc::c_int {
        self.id
    }

    pub fn post(&self, index: usize) -> io::Result<()> {
        self.op(index, 1, None).map(drop)
    }

    /// Decrements semaphore `index`, waiting at most `timeout`; false if it timed out.
    pub fn wait(&self, index: usize, timeout: Option<Duration>) -> io::Result<bool> {
        self.op(index, -1, timeout)
    }

    fn op(
        &self,
        index: usize,
        delta: libc::c_short,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        let mut sop = libc::sembuf {
            sem_num: index as libc::c_ushort,
            sem_op: delta,
            sem_flg: 0,
        };
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs() as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        loop {
            let tp = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `sop` and the optional timeout are valid for the duration of the call
            // (libc has no semtimedop wrapper, so the system call is made directly).
            let r = unsafe {
                libc::syscall(
                    libc::SYS_semtimedop,
                    self.id,
                    &mut sop as *mut libc::sembuf,
                    1usize,
                    tp,
                )
            };
            if r == 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(false),
                _ => return Err(e),
            }
        }
    }

    pub fn remove(&self) -> io::Result<()> {
        if !self.owned || self.removed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // SAFETY: IPC_RMID takes no further argument.
        check(unsafe { libc::semctl(self.id, 0, libc::IPC_RMID) })?;
        crate::sys::record::untrack(&crate::sys::record::Object::SysvSem(self.id));
        Ok(())
    }
}

impl Drop for SysvSemSet {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// An unnamed process-shared POSIX semaphore inside a shared mapping.
#[derive(Clone, Copy, Debug)]
pub struct ShmSem(*mut libc::sem_t);

// SAFETY: the semaphore lives in shared memory and is designed for concurrent use.
unsafe impl Send for ShmSem {}

impl ShmSem {
    /// # Safety
    /// `p` must be aligned, inside a live shared mapping that outlives every use of the
    /// returned handle, and not yet initialised.
    pub unsafe fn init(p: *mut libc::sem_t) -> io::Result<ShmSem> {
        // SAFETY: guaranteed by the caller.
        unsafe { ShmSem::init_with(p, 0) }
    }

    /// # Safety
    /// As for `init`.
    pub unsafe fn init_with(p: *mut libc::sem_t, value: u32) -> io::Result<ShmSem> {
        // SAFETY: guaranteed by the caller.
        check(unsafe { libc::sem_init(p, 1, value) })?;
        Ok(ShmSem(p))
    }

    /// # Safety
    /// As for `init`, but the semaphore was initialised (by either process).
    pub unsafe fn attach(p: *mut libc::sem_t) -> ShmSem {
        ShmSem(p)
    }

    pub fn post(&self) -> io::Result<()> {
        // SAFETY: the handle's contract keeps the semaphore valid.
        check(unsafe { libc::sem_post(self.0) }).map(drop)
    }

    pub fn wait(&self) -> io::Result<()> {
        loop {
            // SAFETY: the handle's contract keeps the semaphore valid.
            match check(unsafe { libc::sem_wait(self.0) }) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other.map(drop),
            }
        }
    }
}

/// A named POSIX semaphore (`sem_open`), closed on drop.
#[derive(Debug)]
pub struct NamedSem(*mut libc::sem_t);

// SAFETY: a named semaphore is designed for concurrent use by processes and threads.
unsafe impl Send for NamedSem {}
// SAFETY: as above.
unsafe impl Sync for NamedSem {}

impl NamedSem {
    /// Creates `name` exclusively with mode 0600 and value `value`.
    pub fn create(name: &str, value: u32) -> io::Result<NamedSem> {
        let c = std::ffi::CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
        // SAFETY: `c` is a valid C string; O_CREAT takes the mode and value as variadic args.
        let p = unsafe {
            libc::sem_open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::c_uint,
                value,
            )
        };
        if p == libc::SEM_FAILED {
            return Err(io::Error::last_os_error());
        }
        crate::sys::record::track(&crate::sys::record::Object::PosixSem(name.to_string()));
        Ok(NamedSem(p))
    }

    pub fn open(name: &str) -> io::Result<NamedSem> {
        let c = std::ffi::CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
        // SAFETY: `c` is a valid C string; without O_CREAT no further arguments are read.
        let p = unsafe { libc::sem_open(c.as_ptr(), 0) };
        if p == libc::SEM_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(NamedSem(p))
    }

    pub fn unlink(name: &str) -> io::Result<()> {
        let c = std::ffi::CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
        // SAFETY: `c` is a valid C string.
        check(unsafe { libc::sem_unlink(c.as_ptr()) })?;
        crate::sys::record::untrack(&crate::sys::record::Object::PosixSem(name.to_string()));
        Ok(())
    }

    /// The semaphore as the in-memory handle type (same operations).
    pub fn handle(&self) -> ShmSem {
        // SAFETY: the pointer stays valid until this NamedSem is dropped, which the caller's
        // ownership of `self` outlives.
        unsafe { ShmSem::attach(self.0) }
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        // SAFETY: the pointer came from sem_open and is closed once.
        unsafe { libc::sem_close(self.0) };
    }
}
