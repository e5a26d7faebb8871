//! How a side that must wait for the ring sleeps and how the other side wakes it: the seven
//! strategies differ only here. Every blocking strategy uses the same protocol around its
//! primitive, so the comparison is of the primitives alone: a waiter announces itself in
//! the event's `waiters` count, re-checks the ring, then sleeps; a notifier bumps the
//! event's sequence word and wakes only if someone announced itself.
//!
//! One exception: a POSIX semaphore counts the messages themselves (the data events), as
//! in the textbook bounded buffer. The sender posts once per message and the receiver
//! takes one permit per message. That is the use semaphores are made for, and glibc
//! already keeps the waiter count the protocol would add: a post makes a system call only
//! when someone sleeps, and a wait that finds a permit makes none. Announcing on top cost
//! the ping-pong about 3% against the bare semaphore loop on one CPU. Free slots still go
//! through the protocol: a writer rarely waits for one, and counting them would cost a
//! post and a wait per message.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sys::futex;

use super::super::AbortHandle;
use crate::sys::pthread::ShmCondvar;
use crate::sys::sem::{ShmSem, SysvSemSet};
use crate::sys::shm::Mapping;

/// Polls a spinning waiter makes without `PAUSE` before it pauses between polls (a few
/// microseconds): a reply in a ping-pong comes well within them, and seen from a tight
/// loop it is noticed as soon as its line arrives rather than up to one `PAUSE` later
/// (~14 ns here, ~140 cycles on some Intel cores). shm-spin's 64-byte round trip across
/// CPUs on the reference VM: ~25 ns shorter. A longer wait pauses as before, which spares
/// a hyper-threaded sibling and power. (The cache-line floor keeps pausing: there both
/// sides write the same line, and polling it without a pause steals it back from the
/// writer; its round trip grew by ~100 ns without.)
pub(crate) const TIGHT_POLLS: u32 = 1024;

/// Events 0..4: to-peer data, to-peer space, from-peer data, from-peer space.
pub const EVENTS: usize = 4;

/// Whether event `ev` says a slot is free (1 and 3) rather than a message is there (0 and 2).
pub fn is_space(ev: usize) -> bool {
    ev % 2 == 1
}

/// Per-event shared state, one cache line each.
#[repr(C, align(64))]
pub struct EventSlot {
    pub waiters: AtomicU32,
    /// Bumped by every notification; the futex word.
    pub seq: AtomicU32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Spin,
    Futex,
    Eventfd,
    PosixSem,
    SysvSem,
    Condvar,
    /// Spin for a bounded time, then sleep on the futex.
    Adaptive,
}

/// The sleeping primitive behind the protocol.
pub enum Prim {
    /// Busy-wait; with `yield_after` set, fall back to sched_yield after that many spins.
    Spin {
        yield_after: Option<u32>,
    },
    Futex,
    /// Poll for up to `spin` before sleeping on the futex (the same protocol as `Futex`).
    Adaptive {
        spin: Duration,
    },
    Eventfd(Vec<Arc<OwnedFd>>),
    /// Semaphores that count messages; free slots go through the protocol (see the
    /// module's documentation).
    PosixSem([ShmSem; EVENTS]),
    SysvSem(Arc<SysvSemSet>),
    Condvar([ShmCondvar; EVENTS]),
}

pub struct Waker {
    slots: [*const EventSlot; EVENTS],
    prim: Prim,
    aborted: Arc<AtomicBool>,
    /// Keeps the slots and in-segment primitives mapped.
    _map: Arc<Mapping>,
}

// SAFETY: the slot pointers refer to the mapping held in `_map`; the shared state is atomics
// and process-shared primitives meant for concurrent use.
unsafe impl Send for Waker {}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the peer is gone")
}

impl Waker {
    /// # Safety
    /// Each `slots[i]` must point to an aligned `EventSlot` inside `map`.
    pub unsafe fn new(
        slots: [*const EventSlot; EVENTS],
        prim: Prim,
        map: Arc<Mapping>,
        aborted: Arc<AtomicBool>,
    ) -> Waker {
        Waker {
            slots,
            prim,
            aborted,
            _map: map,
        }
    }

    fn slot(&self, ev: usize) -> &EventSlot {
        // SAFETY: constructor contract; the mapping lives as long as `self`.
        unsafe { &*self.slots[ev] }
    }

    /// Returns once `ready()` holds, sleeping on event `ev` in between.
    #[inline(always)]
    pub fn wait_until(&mut self, ev: usize, ready: impl Fn() -> bool) -> io::Result<()> {
        if let Prim::PosixSem(sems) = &self.prim {
            if !is_space(ev) {
                return self.take_permit(sems[ev], ready);
            }
        }
        if ready() {
            return Ok(());
        }
        if let Prim::Spin { yield_after } = self.prim {
            let mut spins = 0u32;
            loop {
                if ready() {
                    return Ok(());
                }
                spins = spins.wrapping_add(1);
                match yield_after {
                    Some(n) if spins >= n => {
                        let _ = nix::sched::sched_yield();
                    }
                    _ if spins < TIGHT_POLLS => {}
                    _ => std::hint::spin_loop(),
                }
                if spins % 4096 == 0 && self.aborted.load(Ordering::Relaxed) {
                    return Err(gone());
                }
            }
        }
        if let Prim::Adaptive { spin } = self.prim {
            if !spin.is_zero() && self.spin_for(spin, &ready)? {
                return Ok(());
            }
        }
        loop {
            let slot = self.slot(ev);
            slot.waiters.fetch_add(1, Ordering::SeqCst);
            let seen = slot.seq.load(Ordering::SeqCst);
            let result = if ready() {
                Ok(true)
            } else if self.aborted.load(Ordering::Acquire) {
                Err(gone())
            } else {
                self.sleep(ev, seen).map(|()| false)
            };
            self.slot(ev).waiters.fetch_sub(1, Ordering::SeqCst);
            if result? || ready() {
                return Ok(());
            }
        }
    }

    /// A counting semaphore's wait: one permit per message, which the other side posted
    /// after publishing it, so `ready()` then holds; an abort posts a permit that finds the
    /// abort flag set instead.
    fn take_permit(&self, sem: ShmSem, ready: impl Fn() -> bool) -> io::Result<()> {
        sem.wait()?;
        if ready() {
            Ok(())
        } else if self.aborted.load(Ordering::Acquire) {
            Err(gone())
        } else {
            Err(io::Error::other(
                "a semaphore permit came without its message: the semaphore and the ring are out of step",
            ))
        }
    }

    /// Polls `ready` for up to `budget` (the clock read once per 64 polls); true if it
    /// came true in time.
    fn spin_for(&self, budget: Duration, ready: &impl Fn() -> bool) -> io::Result<bool> {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if ready() {
                return Ok(true);
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 64 == 0 {
                if start.elapsed() >= budget {
                    return Ok(false);
                }
                if self.aborted.load(Ordering::Relaxed) {
                    return Err(gone());
                }
            }
        }
    }

    /// Fan-in server: returns once `ready()` holds, sleeping on event `ev` of every one of
    /// `wakers` at once (one `futex_waitv`), with the same announce, re-check, sleep
    /// protocol as `wait_until`. Futex strategy only (no other primitive waits on many).
    pub fn wait_any<'a>(
        wakers: impl Iterator<Item = &'a Waker> + Clone,
        ev: usize,
        ready: impl Fn() -> bool,
    ) -> io::Result<()> {
        loop {
            if ready() {
                return Ok(());
            }
            if wakers
                .clone()
                .any(|w| !matches!(w.prim, Prim::Futex | Prim::Eventfd(_)))
            {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "only futex words and eventfds can be waited on together",
                ));
            }
            let mut seen = [0u32; futex::WAITV_MAX];
            for (w, s) in wakers.clone().zip(seen.iter_mut()) {
                let slot = w.slot(ev);
                slot.waiters.fetch_add(1, Ordering::SeqCst);
                *s = slot.seq.load(Ordering::SeqCst);
            }
            let result = if ready() {
                Ok(())
            } else if wakers.clone().any(|w| w.aborted.load(Ordering::Acquire)) {
                Err(gone())
            } else {
                Self::sleep_any(wakers.clone(), ev, &seen)
            };
            for w in wakers.clone() {
                w.slot(ev).waiters.fetch_sub(1, Ordering::SeqCst);
            }
            result?;
        }
    }

    /// One sleep on event `ev` of every waker: `futex_waitv` over their words, or a poll
    /// of their eventfds (draining those that fired, as a one-to-one sleep's read does).
    fn sleep_any<'a>(
        wakers: impl Iterator<Item = &'a Waker> + Clone,
        ev: usize,
        seen: &[u32],
    ) -> io::Result<()> {
        let eventfd = |w: &'a Waker| match &w.prim {
            Prim::Eventfd(fds) => Some(fds[ev].as_fd()),
            _ => None,
        };
        if wakers.clone().all(|w| eventfd(w).is_some()) {
            let ready = crate::sys::fd::wait_readable(wakers.clone().filter_map(eventfd), 100)?;
            let mut b = [0u8; 8];
            for (k, w) in wakers.enumerate() {
                if ready & (1u128 << k) != 0 {
                    if let Some(fd) = eventfd(w) {
                        let _ = rustix::io::read(fd, &mut b);
                    }
                }
            }
            return Ok(());
        }
        futex::wait_any(
            wakers
                .zip(seen.iter().copied())
                .map(|(w, s)| (&w.slot(ev).seq, s)),
        )
    }

    /// Tells a waiter of event `ev` that its condition may now hold.
    #[inline(always)]
    pub fn notify(&mut self, ev: usize) -> io::Result<()> {
        match &self.prim {
            Prim::Spin { .. } => return Ok(()),
            Prim::PosixSem(sems) if !is_space(ev) => return sems[ev].post(),
            _ => {}
        }
        // Two SeqCst operations on each side (bump then read `waiters` here, announce then
        // re-check the ring there) are enough: one of the two reads sees the other side's
        // write, so no fence is needed between them.
        let slot = self.slot(ev);
        slot.seq.fetch_add(1, Ordering::SeqCst);
        if slot.waiters.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        self.wake(ev)
    }

    fn sleep(&self, ev: usize, seen: u32) -> io::Result<()> {
        match &self.prim {
            Prim::Spin { .. } => Ok(()),
            // No slice: a dead peer's or an interrupted run's abort bumps the word
            // and wakes every sleeper (`abort_handle`).
            Prim::Futex | Prim::Adaptive { .. } => futex::wait_untimed(&self.slot(ev).seq, seen),
            Prim::Eventfd(fds) => {
                let mut b = [0u8; 8];
                loop {
                    match rustix::io::read(&*fds[ev], &mut b) {
                        Err(rustix::io::Errno::INTR) => continue,
                        other => return other.map(drop).map_err(io::Error::from),
                    }
                }
            }
            // Free slots only: messages are counted (`take_permit`).
            Prim::PosixSem(sems) => sems[ev].wait(),
            Prim::SysvSem(set) => set.wait(ev, None).map(drop),
            Prim::Condvar(cvs) => {
                let cv = cvs[ev];
                cv.lock()?;
                let r = if self.slot(ev).seq.load(Ordering::SeqCst) == seen
                    && !self.aborted.load(Ordering::Acquire)
                {
                    cv.wait()
                } else {
                    Ok(())
                };
                cv.unlock();
                r
            }
        }
    }

    fn wake(&self, ev: usize) -> io::Result<()> {
        match &self.prim {
            Prim::Spin { .. } => Ok(()),
            Prim::Futex | Prim::Adaptive { .. } => futex::wake(&self.slot(ev).seq, 1),
            Prim::Eventfd(fds) => rustix::io::write(&*fds[ev], &1u64.to_ne_bytes())
                .map(drop)
                .map_err(io::Error::from),
            Prim::PosixSem(sems) => sems[ev].post(),
            Prim::SysvSem(set) => set.post(ev),
            Prim::Condvar(cvs) => {
                cvs[ev].lock()?;
                cvs[ev].broadcast();
                cvs[ev].unlock();
                Ok(())
            }
        }
    }

    /// A second waker over the same slots, primitives and abort flag (for the other half
    /// of a split channel, or the abort handle): each half waits on its own events.
    pub fn twin(&self) -> Waker {
        Waker {
            slots: self.slots,
            prim: match &self.prim {
                Prim::Spin { yield_after } => Prim::Spin {
                    yield_after: *yield_after,
                },
                Prim::Futex => Prim::Futex,
                Prim::Adaptive { spin } => Prim::Adaptive { spin: *spin },
                Prim::Eventfd(fds) => Prim::Eventfd(fds.clone()),
                Prim::PosixSem(s) => Prim::PosixSem(*s),
                Prim::SysvSem(s) => Prim::SysvSem(Arc::clone(s)),
                Prim::Condvar(c) => Prim::Condvar(*c),
            },
            aborted: Arc::clone(&self.aborted),
            _map: Arc::clone(&self._map),
        }
    }

    /// Sets the abort flag and wakes every event, so a side blocked on a peer that died
    /// returns (with `BrokenPipe`). Owns what it touches.
    pub fn abort_handle(&self) -> AbortHandle {
        let aborted = Arc::clone(&self.aborted);
        let me = self.twin();
        Box::new(move || {
            aborted.store(true, Ordering::Release);
            for ev in 0..EVENTS {
                me.slot(ev).seq.fetch_add(1, Ordering::SeqCst);
                let _ = match &me.prim {
                    Prim::Futex | Prim::Adaptive { .. } => futex::wake(&me.slot(ev).seq, u32::MAX),
                    _ => me.wake(ev),
                };
            }
        })
    }
}
