//! A single-producer single-consumer ring of fixed-size message slots in shared memory.
//!
//! Each slot is a whole number of cache lines: an 8-byte sequence word, then the message,
//! so the word that says "message k is here" arrives in the same line as the message's
//! first 56 bytes. The writer copies message k into slot k mod N and then stores k + 1 in
//! its sequence word (Release); the reader waits for that value (Acquire), reads the
//! message (copying it out, or checking it where it lies) and then stores its count of
//! consumed messages, the tail (Release). A stale word can never look ready: slot j only
//! ever holds j + 1 + a multiple of N.
//!
//! Neither side reads the other's index on the fast path: the reader never needs the
//! writer's count (the sequence word says it all), and the writer keeps a cached copy of
//! the tail, reloading it (Acquire) only when the cached value says the ring is full. The
//! two indices live in 128-byte blocks of their own, each written by one side only: x86's
//! L2 fetches lines in aligned pairs (the adjacent-line prefetcher), so two indices on
//! neighbouring lines still travel between the CPUs together.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::shm::prefetch;

/// One index in an aligned pair of cache lines of its own, so the two sides never
/// false-share, not even through the prefetcher that fetches a line's neighbour with it.
#[repr(C, align(128))]
pub struct Index {
    pub value: AtomicU64,
}

/// The shared part of a ring: written once as zeroes by the segment's creation.
#[repr(C)]
pub struct RingHeader {
    /// Messages written (the writer's own count; only the writer reads it).
    pub head: Index,
    /// Messages consumed.
    pub tail: Index,
}

// The two sides' indices never share an aligned pair of lines.
const _: () = assert!(std::mem::offset_of!(RingHeader, tail) >= 128);

/// Bytes before a slot's message: the sequence word.
const SEQ: usize = 8;
const LINE: usize = 64;

/// A slot's bytes for messages of `size`: the word and the message, in whole lines.
pub fn stride(size: usize) -> usize {
    (SEQ + size).div_ceil(LINE) * LINE
}

/// Slots in a ring of `cap` bytes for messages of `size`: as many slots as `cap` holds,
/// but two whenever `cap` holds two bare messages (so a writer can fill one slot while the
/// reader empties the other), and always at least one.
pub fn slots(cap: usize, size: usize) -> usize {
    let size = size.max(1);
    (cap / stride(size)).max((cap / size).min(2)).max(1)
}

/// Bytes of a ring's slot area.
pub fn data_len(cap: usize, size: usize) -> usize {
    slots(cap, size) * stride(size)
}

/// One process's view of a ring: it is either the ring's only writer or its only reader.
pub struct Ring {
    hdr: *const RingHeader,
    data: *mut u8,
    slots: u64,
    stride: usize,
    size: usize,
    /// The writer's last view of the tail (never ahead of the real one).
    tail_seen: Cell<u64>,
    /// The last index asked for and its slot's offset: each side walks the slots in order,
    /// so the next offset is one stride on (no division on the fast path).
    last: Cell<(u64, usize)>,
}

// SAFETY: the pointers refer to a shared mapping kept alive by the channel that owns the
// ring; the ring protocol gives each slot a single user at a time.
unsafe impl Send for Ring {}

impl Ring {
    /// # Safety
    /// `hdr` (aligned) and `data..data + data_len(cap, size)` (64-byte aligned) must lie
    /// inside a live shared mapping that outlives the ring, and this process must be the
    /// ring's only writer or only reader.
    pub unsafe fn new(hdr: *const RingHeader, data: *mut u8, cap: usize, size: usize) -> Ring {
        Ring {
            hdr,
            data,
            slots: slots(cap, size) as u64,
            stride: stride(size),
            size,
            tail_seen: Cell::new(0),
            last: Cell::new((0, 0)),
        }
    }

    /// A second view of the same ring, for a channel split into halves: the split's
    /// contract is that the original is not used while the halves are.
    pub fn alias(&self) -> Ring {
        Ring {
            hdr: self.hdr,
            data: self.data,
            slots: self.slots,
            stride: self.stride,
            size: self.size,
            tail_seen: Cell::new(self.tail_seen.get()),
            last: Cell::new(self.last.get()),
        }
    }

    /// The message size every slot carries.
    pub fn size(&self) -> usize {
        self.size
    }

    #[inline(always)]
    fn head(&self) -> &AtomicU64 {
        // SAFETY: `hdr` is valid for the ring's lifetime (constructor contract).
        unsafe { &(*self.hdr).head.value }
    }

    #[inline(always)]
    fn tail(&self) -> &AtomicU64 {
        // SAFETY: as in `head`.
        unsafe { &(*self.hdr).tail.value }
    }

    /// The offset of slot `k mod N`.
    #[inline(always)]
    fn offset(&self, k: u64) -> usize {
        let (prev, at) = self.last.get();
        if k == prev {
            return at;
        }
        let at = if prev.checked_add(1) == Some(k) {
            let next = at + self.stride;
            if next == self.slots as usize * self.stride {
                0
            } else {
                next
            }
        } else {
            (k % self.slots) as usize * self.stride
        };
        self.last.set((k, at));
        at
    }

    /// Slot `k mod N`'s start.
    #[inline(always)]
    fn slot(&self, k: u64) -> *mut u8 {
        let at = self.offset(k);
        // SAFETY: at + stride <= slots * stride = the data area's length (constructor
        // contract), so the pointer stays inside the mapping.
        unsafe { self.data.add(at) }
    }

    #[inline(always)]
    fn seq(&self, k: u64) -> &AtomicU64 {
        // SAFETY: every slot starts 64-byte aligned with its 8-byte sequence word, inside
        // the mapping; both processes access it only atomically.
        unsafe { &*self.slot(k).cast::<AtomicU64>() }
    }

    /// Writer: whether a message of `len` bytes fits now (`len` must be the ring's size).
    #[inline(always)]
    pub fn can_write(&self, len: usize) -> bool {
        if len != self.size {
            return true; // `write` refuses it; do not wait for space it will not use.
        }
        let head = self.head().load(Ordering::Relaxed);
        if head.wrapping_sub(self.tail_seen.get()) < self.slots {
            return true;
        }
        self.tail_seen.set(self.tail().load(Ordering::Acquire));
        head.wrapping_sub(self.tail_seen.get()) < self.slots
    }

    /// Reader: whether the next message is there now.
    #[inline(always)]
    pub fn can_read(&self, len: usize) -> bool {
        if len != self.size {
            return true; // `read` refuses it.
        }
        let tail = self.tail().load(Ordering::Relaxed);
        if self.seq(tail).load(Ordering::Acquire) == tail.wrapping_add(1) {
            return true;
        }
        if self.stride > LINE {
            // Not there yet: ask for the slot's second line too, so that when the message
            // lands both lines travel to this CPU together rather than one after the other.
            prefetch(self.slot(tail).wrapping_add(LINE));
        }
        false
    }

    /// Writer: copies `msg` in (after `can_write`) and publishes it. A message of another
    /// size than the ring's is refused (`false`) and nothing is written.
    #[inline(always)]
    pub fn write(&self, msg: &[u8]) -> bool {
        if msg.len() != self.size {
            return false;
        }
        let head = self.head().load(Ordering::Relaxed);
        let slot = self.slot(head);
        // SAFETY: the slot holds SEQ + size bytes inside the data area; the reader does not
        // touch it until the sequence word below publishes it, and the writer reuses it
        // only after the tail said it was consumed (`can_write`).
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), slot.add(SEQ), msg.len()) };
        self.seq(head)
            .store(head.wrapping_add(1), Ordering::Release);
        self.head().store(head.wrapping_add(1), Ordering::Relaxed);
        true
    }

    /// Reader: hands the next message (after `can_read`) to `f` where it lies, then frees
    /// its slot. `None` if asked for a size other than the ring's.
    #[inline(always)]
    pub fn read_with<R>(&self, len: usize, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if len != self.size {
            return None;
        }
        let tail = self.tail().load(Ordering::Relaxed);
        // SAFETY: the slot's message is `size` bytes after its word, inside the data area;
        // the writer published it (Acquire in `can_read`) and does not touch it again until
        // the tail below releases it. The slice does not outlive this call.
        let msg = unsafe { std::slice::from_raw_parts(self.slot(tail).add(SEQ), self.size) };
        let r = f(msg);
        self.tail().store(tail.wrapping_add(1), Ordering::Release);
        Some(r)
    }

    /// Reader: copies the next message out into `buf` (after `can_read`) and frees it.
    #[inline(always)]
    pub fn read(&self, buf: &mut [u8]) -> bool {
        self.read_with(buf.len(), |m| buf.copy_from_slice(m))
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(64))]
    struct Area([u8; 4096]);

    fn header() -> RingHeader {
        RingHeader {
            head: Index {
                value: AtomicU64::new(0),
            },
            tail: Index {
                value: AtomicU64::new(0),
            },
        }
    }

    #[test]
    fn wraps_around_and_keeps_order() {
        let hdr = header();
        let mut data = Box::new(Area([0u8; 4096]));
        assert!(data_len(192, 30) <= 4096);
        // SAFETY: header and data outlive the ring; one thread plays both roles in turn.
        let ring = unsafe { Ring::new(&hdr, data.0.as_mut_ptr(), 192, 30) };
        assert_eq!(slots(192, 30), 3, "three 64-byte slots");
        let mut out = [0u8; 30];
        for i in 0..50u8 {
            let msg = [i; 30];
            assert!(ring.can_write(30));
            assert!(ring.write(&msg));
            assert!(ring.can_read(30));
            assert!(ring.read(&mut out));
            assert_eq!(out, msg);
            assert!(!ring.can_read(30), "a stale slot never looks ready");
        }
        for i in 0..3u8 {
            assert!(ring.can_write(30));
            ring.write(&[i; 30]);
        }
        assert!(!ring.can_write(30), "three slots of 30 bytes are full");
        assert!(ring.read_with(30, |m| m[0]) == Some(0));
        assert!(
            ring.can_write(30),
            "the writer reloads the tail once it looks full"
        );
    }

    #[test]
    fn slot_offsets_are_the_index_mod_the_slots_in_any_order() {
        let hdr = header();
        let mut data = Box::new(Area([0u8; 4096]));
        // SAFETY: as above.
        let ring = unsafe { Ring::new(&hdr, data.0.as_mut_ptr(), 192, 30) };
        // In order (the fast path, wrapping), repeated, jumping, backwards, near u64::MAX.
        let ks = (0..10).chain([10, 10, 4, 3, 7, u64::MAX - 1, u64::MAX, 0, 1]);
        for k in ks {
            assert_eq!(ring.offset(k), (k % 3) as usize * 64, "index {k}");
        }
    }

    #[test]
    fn a_message_of_another_size_is_refused() {
        let hdr = header();
        let mut data = Box::new(Area([0u8; 4096]));
        // SAFETY: as above.
        let ring = unsafe { Ring::new(&hdr, data.0.as_mut_ptr(), 256, 64) };
        assert_eq!(slots(256, 64), 2);
        assert_eq!(slots(100, 100), 1);
        assert!(!ring.write(&[0u8; 63]));
        assert!(!ring.can_read(64), "nothing was published");
        assert!(ring.write(&[7u8; 64]));
        assert!(!ring.read(&mut [0u8; 65]));
        assert_eq!(ring.read_with(64, |m| m.to_vec()), Some(vec![7u8; 64]));
        assert_eq!(stride(64), 128, "the word and 64 bytes take two lines");
        assert_eq!(stride(56), 64, "the word and 56 bytes share one line");
    }
}
