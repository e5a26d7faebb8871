//! A single-producer single-consumer ring of fixed-size message slots in shared memory.
//!
//! Each slot is a whole number of cache lines: an 8-byte sequence word, then the message,
//! so the word that says "message k is here" arrives in the same line as the message's
//! first 56 bytes. The writer copies message k into slot k mod N and then stores k + 1 in
//! its sequence word (Release); the reader waits for that value (Acquire), reads the
//! message (copying it out, or checking it where it lies) and then stores its count of
//! consumed messages, the tail (Release). A stale word can never look ready: each value is
//! written once (slot j of N holds j + 1 + a multiple of N, except in a ring of two, below).
//!
//! Neither side reads the other's index on the fast path: the reader never needs the
//! writer's count (the sequence word says it all), and the writer keeps a cached copy of
//! the tail, reloading it (Acquire) only when the cached value says the ring is full. The
//! two indices live in 128-byte blocks of their own, each written by one side only: x86's
//! L2 fetches lines in aligned pairs (the adjacent-line prefetcher), so two indices on
//! neighbouring lines still travel between the CPUs together.
//!
//! A ring of two slots (what large messages get) does not alternate blindly: when the
//! reader has already freed every message, the writer reuses the slot it wrote last, whose
//! lines are still in its cache, and takes the other slot only while the last one is in
//! use. A reader that frees each message at once (checking it in place) then keeps one
//! slot warm instead of streaming two through the cache, and one that holds a message
//! while copying it out still overlaps with the writer filling the other slot. The reader
//! finds message k by its word (k + 1) in either slot; each value is written once.

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
pub const SEQ: usize = 8;
/// A cache line: slots are whole lines, and a slot's second line is prefetched.
pub const LINE: usize = 64;

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
    /// Two slots: the writer picks each message's slot (see the module's comment).
    pair: bool,
    /// In a pair, the writer's view: the offset of the slot it wrote last.
    wrote: Cell<usize>,
    /// In a pair, the reader's view: the offset of the slot its last message was found in.
    found: Cell<usize>,
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
            pair: slots(cap, size) == 2,
            wrote: Cell::new(0),
            found: Cell::new(0),
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
            pair: self.pair,
            wrote: Cell::new(self.wrote.get()),
            found: Cell::new(self.found.get()),
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

    /// The sequence word of the slot at offset `at` (a multiple of the stride).
    #[inline(always)]
    fn seq_at(&self, at: usize) -> &AtomicU64 {
        // SAFETY: every slot starts 64-byte aligned with its 8-byte sequence word, inside
        // the mapping (`at` is a slot's offset, below slots * stride); both processes
        // access it only atomically.
        unsafe { &*self.data.add(at).cast::<AtomicU64>() }
    }

    /// Reader: the offset of the slot holding message `k`, if it has been published.
    #[inline(always)]
    fn find(&self, k: u64) -> Option<usize> {
        let want = k.wrapping_add(1);
        if !self.pair {
            let at = self.offset(k);
            return (self.seq_at(at).load(Ordering::Acquire) == want).then_some(at);
        }
        // The slot of the previous message first: the writer reuses it whenever it can.
        let last = self.found.get();
        for at in [last, self.stride - last] {
            if self.seq_at(at).load(Ordering::Acquire) == want {
                self.found.set(at);
                return Some(at);
            }
        }
        None
    }

    /// Writer: the offset of the slot for message `head` (after `can_write`).
    #[inline(always)]
    fn place(&self, head: u64) -> usize {
        if !self.pair {
            return self.offset(head);
        }
        // All consumed: the last slot is free and still in this CPU's cache. Otherwise the
        // one unconsumed message is in the last slot, and the other is free. A stale tail
        // only ever sends the message to the other slot, which is free either way.
        let tail = self.tail().load(Ordering::Acquire);
        self.tail_seen.set(tail);
        let last = self.wrote.get();
        let at = if tail == head {
            last
        } else {
            self.stride - last
        };
        self.wrote.set(at);
        at
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
        if self.find(tail).is_some() {
            return true;
        }
        if self.stride > LINE && !self.pair {
            // Not there yet: ask for the slot's second line too, so that when the message
            // lands both lines travel to this CPU together rather than one after the other.
            prefetch(self.data.wrapping_add(self.offset(tail) + LINE));
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
        let at = self.place(head);
        // SAFETY: the slot at `at` holds SEQ + size bytes inside the data area; the reader
        // does not touch it until the sequence word below publishes it, and the writer
        // reuses it only after the tail said it was consumed (`can_write`, `place`).
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.data.add(at + SEQ), msg.len()) };
        self.seq_at(at)
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
        let at = match self.pair {
            true => self.found.get(), // where `can_read` found it
            false => self.offset(tail),
        };
        // SAFETY: the slot's message is `size` bytes after its word, inside the data area;
        // the writer published it (Acquire in `can_read`) and does not touch it again until
        // the tail below releases it. The slice does not outlive this call.
        let msg = unsafe { std::slice::from_raw_parts(self.data.add(at + SEQ), self.size) };
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
        assert!(ring.can_read(64));
        assert_eq!(ring.read_with(64, |m| m.to_vec()), Some(vec![7u8; 64]));
        assert_eq!(stride(64), 128, "the word and 64 bytes take two lines");
        assert_eq!(stride(56), 64, "the word and 56 bytes share one line");
    }

    #[test]
    fn a_pair_reuses_the_freed_slot_and_overlaps_otherwise() {
        let hdr = header();
        let mut data = Box::new(Area([0u8; 4096]));
        assert_eq!(slots(256, 100), 2, "two 128-byte slots");
        // SAFETY: as above; the writer and the reader are separate views, as in two processes.
        let (w, r) = unsafe {
            let d = data.0.as_mut_ptr();
            (Ring::new(&hdr, d, 256, 100), Ring::new(&hdr, d, 256, 100))
        };
        let at = |m: &[u8]| m.as_ptr() as usize - data.0.as_ptr() as usize;
        let mut seq = 0u8;
        let mut send = |n: usize| {
            for _ in 0..n {
                assert!(w.can_write(100));
                assert!(w.write(&[seq; 100]));
                seq += 1;
            }
        };
        let take = || {
            assert!(r.can_read(100));
            r.read_with(100, |m| (m[0], m[99], at(m)))
                .expect("the ring's size")
        };
        // Each message freed before the next: always the same slot.
        send(1);
        assert_eq!(take(), (0, 0, 8));
        send(1);
        assert_eq!(take(), (1, 1, 8), "the freed slot is reused");
        // Two in flight: the second goes to the other slot, and the ring is then full.
        send(2);
        assert!(!w.can_write(100));
        assert!(r.find(4).is_none(), "message 4 was never written");
        assert_eq!(take(), (2, 2, 8));
        // One still unread (3, in the other slot): the next goes to the freed one.
        send(1);
        assert_eq!(take(), (3, 3, 136));
        assert_eq!(take(), (4, 4, 8));
        assert!(!r.can_read(100), "a stale word never looks ready");
        // Order holds through a long mixed run.
        let mut next = 5u8;
        for round in 0..40u8 {
            send(1 + usize::from(round % 2));
            while r.can_read(100) {
                assert_eq!(take().0, next, "in order, none lost or repeated");
                next += 1;
            }
        }
        assert_eq!(next, 65);
        assert_eq!(seq, 65);
        assert_eq!(
            hdr.tail.value.load(Ordering::Relaxed),
            65,
            "every message read"
        );
    }
}
