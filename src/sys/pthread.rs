//! Process-shared pthread objects inside a shared mapping: a robust mutex with a condition
//! variable, and a read-write lock whose waits are taken in slices.

use std::io;
use std::time::Duration;

use super::shm::check_pthread;

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
