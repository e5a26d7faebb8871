//! A single-producer single-consumer byte ring in shared memory. Head and tail are byte
//! counters on cache lines of their own. The writer copies a message in, then publishes the
//! new head with Release; the reader loads the head with Acquire before copying out, then
//! releases the space by storing the tail with Release (which the writer loads with Acquire
//! before reusing those bytes).

use std::sync::atomic::{AtomicU64, Ordering};

/// One index on a cache line of its own, so the two sides never false-share.
#[repr(C, align(64))]
pub struct Index {
    pub value: AtomicU64,
}

/// The shared part of a ring: written once as zeroes by the segment's creation.
#[repr(C)]
pub struct RingHeader {
    pub head: Index,
    pub tail: Index,
}

/// One process's view of a ring: it is either the ring's only writer or its only reader.
pub struct Ring {
    hdr: *const RingHeader,
    data: *mut u8,
    cap: usize,
}

// SAFETY: the pointers refer to a shared mapping kept alive by the channel that owns the
// ring; the ring protocol gives each byte range a single user at a time.
unsafe impl Send for Ring {}

impl Ring {
    /// # Safety
    /// `hdr` (aligned) and `data..data + cap` must lie inside a live shared mapping that
    /// outlives the ring, and this process must be the ring's only writer or only reader.
    pub unsafe fn new(hdr: *const RingHeader, data: *mut u8, cap: usize) -> Ring {
        Ring { hdr, data, cap }
    }

    /// A second view of the same ring, for a channel split into halves: the split's
    /// contract is that the original is not used while the halves are.
    pub fn alias(&self) -> Ring {
        Ring {
            hdr: self.hdr,
            data: self.data,
            cap: self.cap,
        }
    }

    fn head(&self) -> &AtomicU64 {
        // SAFETY: `hdr` is valid for the ring's lifetime (constructor contract).
        unsafe { &(*self.hdr).head.value }
    }

    fn tail(&self) -> &AtomicU64 {
        // SAFETY: as in `head`.
        unsafe { &(*self.hdr).tail.value }
    }

    /// Writer: whether `len` bytes fit now.
    pub fn can_write(&self, len: usize) -> bool {
        let used = self
            .head()
            .load(Ordering::Relaxed)
            .wrapping_sub(self.tail().load(Ordering::Acquire));
        used <= self.cap as u64 && self.cap as u64 - used >= len as u64
    }

    /// Reader: whether `len` bytes are there now.
    pub fn can_read(&self, len: usize) -> bool {
        self.head()
            .load(Ordering::Acquire)
            .wrapping_sub(self.tail().load(Ordering::Relaxed))
            >= len as u64
    }

    /// Writer: copies `msg` in (after `can_write(msg.len())`) and publishes it.
    pub fn write(&self, msg: &[u8]) {
        let head = self.head().load(Ordering::Relaxed);
        let at = (head % self.cap as u64) as usize;
        let first = msg.len().min(self.cap - at);
        // SAFETY: `at + first <= cap` and `msg.len() - first <= at <= cap` (messages never
        // exceed the capacity), so both copies stay inside the data area; the reader does
        // not touch these bytes until the head below publishes them.
        unsafe {
            std::ptr::copy_nonoverlapping(msg.as_ptr(), self.data.add(at), first);
            std::ptr::copy_nonoverlapping(msg.as_ptr().add(first), self.data, msg.len() - first);
        }
        self.head()
            .store(head.wrapping_add(msg.len() as u64), Ordering::Release);
    }

    /// Reader: copies the next `buf.len()` bytes out (after `can_read`) and frees them.
    pub fn read(&self, buf: &mut [u8]) {
        let tail = self.tail().load(Ordering::Relaxed);
        let at = (tail % self.cap as u64) as usize;
        let first = buf.len().min(self.cap - at);
        // SAFETY: as in `write`, with the roles swapped: the writer does not reuse these
        // bytes until the tail below releases them.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.add(at), buf.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.data,
                buf.as_mut_ptr().add(first),
                buf.len() - first,
            );
        }
        self.tail()
            .store(tail.wrapping_add(buf.len() as u64), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_around_and_keeps_order() {
        let hdr = RingHeader {
            head: Index {
                value: AtomicU64::new(0),
            },
            tail: Index {
                value: AtomicU64::new(0),
            },
        };
        let mut data = vec![0u8; 100];
        // SAFETY: header and data outlive the ring; one thread plays both roles in turn.
        let ring = unsafe { Ring::new(&hdr, data.as_mut_ptr(), data.len()) };
        let mut out = [0u8; 30];
        for i in 0..50u8 {
            let msg = [i; 30];
            assert!(ring.can_write(30));
            ring.write(&msg);
            assert!(ring.can_read(30));
            ring.read(&mut out);
            assert_eq!(out, msg);
            assert!(!ring.can_read(1));
        }
        for i in 0..3u8 {
            ring.write(&[i; 30]);
        }
        assert!(!ring.can_write(30), "90 of 100 bytes used");
    }
}
