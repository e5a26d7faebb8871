//! Shared memory: segments (POSIX `shm_open`, System V `shmget`, `memfd_create`), their
//! mappings, and the process-shared primitives placed in them or beside them (POSIX
//! semaphores, pthread mutex and condition variable, System V semaphore sets).

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, munmap, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::Mode;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// pthread functions return the error number instead of setting errno.
fn check_pthread(ret: libc::c_int) -> io::Result<()> {
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

fn owned_private(uid: u32, mode: u32) -> bool {
    uid == nix::unistd::geteuid().as_raw() && mode & 0o777 == 0o600
}

/// Creates a POSIX segment exclusively with mode 0600 and sizes it.
pub fn posix_create(name: &str, len: usize) -> io::Result<OwnedFd> {
    let fd = shm_open(
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )?;
    crate::cleanup::track(&crate::cleanup::Object::PosixShm(name.to_string()));
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
    crate::cleanup::untrack(&crate::cleanup::Object::PosixShm(name.to_string()));
    Ok(())
}

/// An anonymous segment: a sealed-size memfd, handed to the peer by inheritance.
pub fn memfd(len: usize) -> io::Result<OwnedFd> {
    let fd =
        nix::sys::memfd::memfd_create(c"ipcbench-shm", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
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
    pub fn create(len: usize) -> io::Result<SysvShm> {
        // SAFETY: shmget takes only integers.
        let id = check(unsafe {
            libc::shmget(
                libc::IPC_PRIVATE,
                len,
                libc::IPC_CREAT | libc::IPC_EXCL | 0o600,
            )
        })?;
        crate::cleanup::track(&crate::cleanup::Object::SysvShm(id));
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
        crate::cleanup::untrack(&crate::cleanup::Object::SysvShm(self.id));
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
        crate::cleanup::track(&crate::cleanup::Object::SysvSem(id));
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
        crate::cleanup::untrack(&crate::cleanup::Object::SysvSem(self.id));
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

/// A process-shared, robust pthread mutex and a condition variable (monotonic clock)
/// inside a shared mapping.
#[derive(Clone, Copy, Debug)]
pub struct ShmCondvar {
    mutex: *mut libc::pthread_mutex_t,
    cond: *mut libc::pthread_cond_t,
}

// SAFETY: both objects live in shared memory and are process-shared by construction.
unsafe impl Send for ShmCondvar {}

impl ShmCondvar {
    /// # Safety
    /// Both pointers must be aligned, inside a live shared mapping that outlives every use
    /// of the returned handle, and not yet initialised.
    pub unsafe fn init(
        mutex: *mut libc::pthread_mutex_t,
        cond: *mut libc::pthread_cond_t,
    ) -> io::Result<ShmCondvar> {
        // SAFETY: attribute objects are initialised before use and destroyed after; the
        // targets are valid per the caller's contract.
        unsafe {
            let mut ma: libc::pthread_mutexattr_t = std::mem::zeroed();
            check_pthread(libc::pthread_mutexattr_init(&mut ma))?;
            check_pthread(libc::pthread_mutexattr_setpshared(
                &mut ma,
                libc::PTHREAD_PROCESS_SHARED,
            ))?;
            check_pthread(libc::pthread_mutexattr_setrobust(
                &mut ma,
                libc::PTHREAD_MUTEX_ROBUST,
            ))?;
            let r = libc::pthread_mutex_init(mutex, &ma);
            libc::pthread_mutexattr_destroy(&mut ma);
            check_pthread(r)?;
            let mut ca: libc::pthread_condattr_t = std::mem::zeroed();
            check_pthread(libc::pthread_condattr_init(&mut ca))?;
            check_pthread(libc::pthread_condattr_setpshared(
                &mut ca,
                libc::PTHREAD_PROCESS_SHARED,
            ))?;
            check_pthread(libc::pthread_condattr_setclock(
                &mut ca,
                libc::CLOCK_MONOTONIC,
            ))?;
            let r = libc::pthread_cond_init(cond, &ca);
            libc::pthread_condattr_destroy(&mut ca);
            check_pthread(r)?;
        }
        Ok(ShmCondvar { mutex, cond })
    }

    /// # Safety
    /// As for `init`, but the objects were initialised (by either process).
    pub unsafe fn attach(
        mutex: *mut libc::pthread_mutex_t,
        cond: *mut libc::pthread_cond_t,
    ) -> ShmCondvar {
        ShmCondvar { mutex, cond }
    }

    /// Locks the mutex. If the other process died holding it, the lock is taken over,
    /// marked consistent, and reported as `BrokenPipe`.
    pub fn lock(&self) -> io::Result<()> {
        // SAFETY: the handle's contract keeps the mutex valid.
        match unsafe { libc::pthread_mutex_lock(self.mutex) } {
            0 => Ok(()),
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex after EOWNERDEAD; make it usable, then release it.
                unsafe {
                    libc::pthread_mutex_consistent(self.mutex);
                    libc::pthread_mutex_unlock(self.mutex);
                }
                Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the peer died holding the mutex",
                ))
            }
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    pub fn unlock(&self) {
        // SAFETY: called only after a successful `lock` by this thread.
        unsafe { libc::pthread_mutex_unlock(self.mutex) };
    }

    /// Waits on the condition with the mutex held (re-acquired on return).
    pub fn wait(&self) -> io::Result<()> {
        // SAFETY: the caller holds the mutex; both objects are valid per the contract.
        match unsafe { libc::pthread_cond_wait(self.cond, self.mutex) } {
            0 => Ok(()),
            libc::EOWNERDEAD => {
                // SAFETY: as in `lock`; the mutex is held again and stays held for the caller.
                unsafe { libc::pthread_mutex_consistent(self.mutex) };
                Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the peer died holding the mutex",
                ))
            }
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    pub fn broadcast(&self) {
        // SAFETY: the handle's contract keeps the condition variable valid.
        unsafe { libc::pthread_cond_broadcast(self.cond) };
    }
}

// POSIX functions the libc crate does not declare (glibc and musl both provide them).
extern "C" {
    fn pthread_rwlock_timedwrlock(
        lock: *mut libc::pthread_rwlock_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
    fn pthread_rwlock_timedrdlock(
        lock: *mut libc::pthread_rwlock_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// A process-shared pthread read-write lock inside a shared mapping. Waits are taken in
/// slices (`timed`) so a dead holder, which rwlocks cannot report, never blocks forever.
#[derive(Clone, Copy, Debug)]
pub struct ShmRwLock(*mut libc::pthread_rwlock_t);

// SAFETY: the lock lives in shared memory and is process-shared by construction.
unsafe impl Send for ShmRwLock {}

impl ShmRwLock {
    /// # Safety
    /// `p` must be aligned, inside a live shared mapping that outlives every use of the
    /// handle, and not yet initialised.
    pub unsafe fn init(p: *mut libc::pthread_rwlock_t) -> io::Result<ShmRwLock> {
        // SAFETY: the attribute object is initialised before use and destroyed after.
        unsafe {
            let mut a: libc::pthread_rwlockattr_t = std::mem::zeroed();
            check_pthread(libc::pthread_rwlockattr_init(&mut a))?;
            check_pthread(libc::pthread_rwlockattr_setpshared(
                &mut a,
                libc::PTHREAD_PROCESS_SHARED,
            ))?;
            let r = libc::pthread_rwlock_init(p, &a);
            libc::pthread_rwlockattr_destroy(&mut a);
            check_pthread(r)?;
        }
        Ok(ShmRwLock(p))
    }

    /// # Safety
    /// As for `init`, but initialised (by either process).
    pub unsafe fn attach(p: *mut libc::pthread_rwlock_t) -> ShmRwLock {
        ShmRwLock(p)
    }

    /// Takes the lock for writing (or reading) within `slice`; false on timeout.
    pub fn timed(&self, write: bool, slice: Duration) -> io::Result<bool> {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)?;
        let end = now + nix::sys::time::TimeSpec::from_duration(slice);
        // SAFETY: the handle's contract keeps the lock valid; `end` lives for the call.
        let r = unsafe {
            if write {
                pthread_rwlock_timedwrlock(self.0, end.as_ref())
            } else {
                pthread_rwlock_timedrdlock(self.0, end.as_ref())
            }
        };
        match r {
            0 => Ok(true),
            libc::ETIMEDOUT => Ok(false),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    pub fn unlock(&self) {
        // SAFETY: called only by the holder.
        unsafe { libc::pthread_rwlock_unlock(self.0) };
    }
}

impl ShmCondvar {
    pub fn signal(&self) {
        self.broadcast();
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
        crate::cleanup::track(&crate::cleanup::Object::PosixSem(name.to_string()));
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
        crate::cleanup::untrack(&crate::cleanup::Object::PosixSem(name.to_string()));
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
