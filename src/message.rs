//! What a message of S bytes contains and how its receiver checks it.
//! Both sides derive every message from its sequence number, so no header travels on the wire.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Every `STAMP_STRIDE` bytes a sequence-derived word is written, so a page that was
/// never copied (a stale buffer) is caught by `--verify full` even in the middle of a message.
pub const STAMP_STRIDE: usize = 4096;
const WORD: usize = 8;

/// How much of each received message is compared with what was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// Length, sequence number and the last word of every message.
    Cheap,
    /// Every byte of every message.
    Full,
}

impl Verify {
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::Cheap => "cheap",
            Verify::Full => "full",
        }
    }
}

/// A message that failed its check; `seq` is the sequence number the receiver expected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VerifyError {
    #[error("message #{seq}: received {got} bytes, expected {expected} (truncated or merged)")]
    Length {
        seq: u64,
        expected: usize,
        got: usize,
    },
    #[error("expected message #{expected}, received {got} (lost, duplicated or reordered)")]
    Sequence { expected: u64, got: String },
    #[error("message #{seq} corrupted at byte offset {offset}")]
    Corrupt { seq: u64, offset: usize },
}

/// The sequence number a reply (or acknowledgement) to message `seq` carries: distinct from
/// any request, so a message that comes back unanswered (an echo of itself) fails the check.
pub fn reply_seq(seq: u64) -> u64 {
    !seq
}

/// A 64-bit mix of the sequence number for the tail and stamp words.
fn tag(seq: u64) -> u64 {
    (seq ^ 0x5851_F42D_4C95_7F2D)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29)
}

/// The position-dependent filler under the stamped words.
fn filler(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8) ^ 0x5A) as u8
}

/// Fills a whole buffer with the filler pattern. Done once per buffer, outside timed code.
pub fn fill_base(buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = filler(i);
    }
}

fn put_word(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + WORD].copy_from_slice(&v.to_le_bytes());
}

fn stamp_offsets(len: usize) -> impl Iterator<Item = usize> {
    // Stamps sit strictly between the head word and the tail word.
    (1..)
        .map(|k| k * STAMP_STRIDE)
        .take_while(move |&off| len >= 2 * WORD && off + WORD <= len - WORD)
}

/// Writes the sequence-derived words of message `seq` into a buffer already holding the
/// filler: the head (sequence number), one word per `STAMP_STRIDE`, and the tail.
/// Costs O(len / 4096) stores, so large messages are not charged for a full rewrite.
pub fn stamp(buf: &mut [u8], seq: u64) {
    let len = buf.len();
    if len < WORD {
        buf.copy_from_slice(&seq.to_le_bytes()[..len]);
        return;
    }
    put_word(buf, 0, seq);
    if len < 2 * WORD {
        let t = tag(seq).to_le_bytes();
        buf[WORD..].copy_from_slice(&t[..len - WORD]);
        return;
    }
    for (k, off) in stamp_offsets(len).enumerate() {
        put_word(buf, off, tag(seq).wrapping_add(k as u64 + 1));
    }
    put_word(buf, len - WORD, tag(seq));
}

/// The sequence number a received message carries, read from its head. Messages under
/// 8 bytes carry only low bytes: the number is taken as the nearest one at or after
/// `reference` (for requests) or at or before it (for replies, `reply = true`), which is
/// exact unless 256^len messages in a row were lost.
pub fn infer_seq(head: &[u8], reference: u64, reply: bool) -> u64 {
    let len = head.len().min(WORD);
    let mut w = [0u8; WORD];
    w[..len].copy_from_slice(&head[..len]);
    let raw = u64::from_le_bytes(w);
    if len == WORD {
        return if reply { !raw } else { raw };
    }
    let mask = (1u64 << (8 * len)) - 1;
    if reply {
        let low = !raw & mask;
        reference.wrapping_sub(reference.wrapping_sub(low) & mask)
    } else {
        reference.wrapping_add(raw.wrapping_sub(reference) & mask)
    }
}

/// Where a timed message carries its send time (`CLOCK_MONOTONIC`, ns): the word after the
/// sequence number, in messages of at least three words (smaller ones carry no time).
const TIME_AT: usize = WORD;

/// Whether messages of `size` bytes can carry their send time.
pub fn carries_time(size: usize) -> bool {
    size >= 3 * WORD
}

/// Writes the send time into a stamped message (see `carries_time`).
pub fn put_time(buf: &mut [u8], ns: u64) {
    if carries_time(buf.len()) {
        put_word(buf, TIME_AT, ns);
    }
}

/// Puts the filler back where `put_time` wrote, so the buffer's next untimed message is plain.
pub fn clear_time(buf: &mut [u8]) {
    if carries_time(buf.len()) {
        for (i, b) in buf[TIME_AT..TIME_AT + WORD].iter_mut().enumerate() {
            *b = filler(TIME_AT + i);
        }
    }
}

/// The receiver's side: holds the expected image of a message of one size.
pub struct Checker {
    expected: Vec<u8>,
    mode: Verify,
}

impl Checker {
    /// How much of each message this checker checks.
    pub fn mode(&self) -> Verify {
        self.mode
    }

    pub fn new(size: usize, mode: Verify) -> Self {
        let mut expected = vec![0u8; size];
        fill_base(&mut expected);
        Checker { expected, mode }
    }

    /// Checks a timed message like `check`, except for its send time, which it returns
    /// (`None` for messages too small to carry one). The time's word is not compared.
    pub fn check_timed(&mut self, got: &[u8], seq: u64) -> Result<Option<u64>, VerifyError> {
        let sent = match word(got, TIME_AT) {
            Some(t) if carries_time(self.expected.len()) && got.len() == self.expected.len() => t,
            _ => return self.check(got, seq).map(|()| None),
        };
        // In the image for either mode: a cheap check compares only the head and the tail,
        // but a failed one looks for the first differing byte, which must not be the time.
        put_word(&mut self.expected, TIME_AT, sent);
        let r = self.check(got, seq);
        clear_time(&mut self.expected);
        r.map(|()| Some(sent))
    }

    /// Checks `got` (the bytes actually received) against message `seq`.
    #[inline]
    pub fn check(&mut self, got: &[u8], seq: u64) -> Result<(), VerifyError> {
        // The common case of a cheap check, read straight off the two words it compares:
        // what `check_image` does, without stamping the image first.
        let len = got.len();
        if self.mode == Verify::Cheap
            && len == self.expected.len()
            && len >= 2 * WORD
            && word(got, 0) == Some(seq)
            && word(got, len - WORD) == Some(tag(seq))
        {
            return Ok(());
        }
        self.check_image(got, seq)
    }

    /// The check against the stamped image: every case, and the diagnosis of a failure.
    fn check_image(&mut self, got: &[u8], seq: u64) -> Result<(), VerifyError> {
        let size = self.expected.len();
        if got.len() != size {
            return Err(VerifyError::Length {
                seq,
                expected: size,
                got: got.len(),
            });
        }
        stamp(&mut self.expected, seq);
        let head = size.min(WORD);
        if got[..head] != self.expected[..head] {
            return Err(VerifyError::Sequence {
                expected: seq,
                got: describe_head(&got[..head]),
            });
        }
        let equal = match self.mode {
            Verify::Cheap => {
                let tail = size.saturating_sub(WORD).max(head);
                got[tail..] == self.expected[tail..]
            }
            Verify::Full => got == self.expected.as_slice(),
        };
        if equal {
            return Ok(());
        }
        let offset = got
            .iter()
            .zip(&self.expected)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        Err(VerifyError::Corrupt { seq, offset })
    }
}

/// The little-endian word at `at`, if the buffer holds one there.
#[inline]
fn word(buf: &[u8], at: usize) -> Option<u64> {
    let w: [u8; WORD] = buf.get(at..at.checked_add(WORD)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(w))
}

fn describe_head(head: &[u8]) -> String {
    match word(head, 0) {
        Some(v) if head.len() == WORD && v > u64::MAX / 2 => format!("reply #{}", !v),
        Some(v) if head.len() == WORD => format!("#{v}"),
        _ => {
            let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
            format!("low bytes {}", hex.join(""))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_timed_message_is_reported_where_it_is_corrupt_not_at_its_time() {
        for mode in [Verify::Cheap, Verify::Full] {
            let mut c = Checker::new(64, mode);
            let mut m = vec![0u8; 64];
            fill_base(&mut m);
            stamp(&mut m, 5);
            // A time whose every byte differs from the filler there.
            let time = u64::from_le_bytes(std::array::from_fn(|i| !filler(TIME_AT + i)));
            put_time(&mut m, time);
            m[63] ^= 0xFF;
            assert_eq!(
                c.check_timed(&m, 5),
                Err(VerifyError::Corrupt { seq: 5, offset: 63 }),
                "{mode:?}"
            );
        }
    }

    #[test]
    fn timed_messages_carry_their_time_and_are_checked_everywhere_else() {
        for mode in [Verify::Cheap, Verify::Full] {
            let mut c = Checker::new(64, mode);
            let mut m = vec![0u8; 64];
            fill_base(&mut m);
            stamp(&mut m, 7);
            put_time(&mut m, 123_456);
            assert_eq!(c.check_timed(&m, 7), Ok(Some(123_456)));
            // The checker's image is plain again: an untimed message still passes.
            clear_time(&mut m);
            assert_eq!(c.check(&m, 7), Ok(()));
        }
        let mut c = Checker::new(64, Verify::Full);
        let mut m = vec![0u8; 64];
        fill_base(&mut m);
        stamp(&mut m, 3);
        put_time(&mut m, 9);
        m[40] ^= 1;
        assert!(
            c.check_timed(&m, 3).is_err(),
            "corruption outside the time is caught"
        );
        let mut small = vec![0u8; 16];
        fill_base(&mut small);
        stamp(&mut small, 1);
        assert_eq!(
            Checker::new(16, Verify::Full).check_timed(&small, 1),
            Ok(None)
        );
    }

    #[test]
    fn the_quick_cheap_check_agrees_with_the_image_everywhere() {
        // Every size up to 40 and a large one; intact, each byte flipped, another sequence
        // number, another length: the quick path must never pass what the image fails.
        for size in (0..=40).chain([4096 + 64]) {
            let mut c = Checker::new(size, Verify::Cheap);
            let m = message(size, 9);
            assert_eq!(c.check(&m, 9), Ok(()), "size {size}");
            assert_eq!(
                c.check(&message(size, 10), 9),
                c.check_image(&message(size, 10), 9)
            );
            for i in 0..size {
                let mut bad = m.clone();
                bad[i] ^= 0x10;
                assert_eq!(
                    c.check(&bad, 9),
                    c.check_image(&bad, 9),
                    "size {size}, byte {i}"
                );
            }
            let longer = message(size + 1, 9);
            assert_eq!(
                c.check(&longer, 9),
                c.check_image(&longer, 9),
                "size {size}"
            );
        }
    }

    fn message(size: usize, seq: u64) -> Vec<u8> {
        let mut m = vec![0u8; size];
        fill_base(&mut m);
        stamp(&mut m, seq);
        m
    }

    #[test]
    fn every_size_round_trips_and_neighbours_differ() {
        for size in [1, 2, 7, 8, 9, 15, 16, 17, 4095, 4096, 4104, 8200, 65536] {
            for mode in [Verify::Cheap, Verify::Full] {
                let mut c = Checker::new(size, mode);
                for seq in [0u64, 1, 255, 256, 1 << 40] {
                    assert_eq!(c.check(&message(size, seq), seq), Ok(()), "size {size}");
                    assert!(
                        c.check(&message(size, seq + 1), seq).is_err(),
                        "size {size}"
                    );
                }
            }
        }
    }

    #[test]
    fn reply_is_not_the_request() {
        let mut c = Checker::new(64, Verify::Cheap);
        let err = c.check(&message(64, 5), reply_seq(5)).unwrap_err();
        assert!(matches!(err, VerifyError::Sequence { .. }));
    }

    #[test]
    fn lengths_are_checked() {
        let mut c = Checker::new(64, Verify::Cheap);
        let m = message(64, 3);
        assert_eq!(
            c.check(&m[..63], 3),
            Err(VerifyError::Length {
                seq: 3,
                expected: 64,
                got: 63
            })
        );
    }

    #[test]
    fn cheap_sees_the_tail_full_sees_the_middle() {
        let size = 10_000;
        let mut m = message(size, 9);
        m[size - 1] ^= 1;
        assert!(matches!(
            Checker::new(size, Verify::Cheap).check(&m, 9),
            Err(VerifyError::Corrupt { offset, .. }) if offset == size - 1
        ));
        let mut m = message(size, 9);
        m[5000] ^= 0x80;
        assert_eq!(Checker::new(size, Verify::Cheap).check(&m, 9), Ok(()));
        assert_eq!(
            Checker::new(size, Verify::Full).check(&m, 9),
            Err(VerifyError::Corrupt {
                seq: 9,
                offset: 5000
            })
        );
    }

    #[test]
    fn stale_page_is_caught_by_full() {
        // A page stamped for an older message, as a ring that skipped a copy would leave it.
        let size = 3 * STAMP_STRIDE;
        let mut m = message(size, 10);
        let old = message(size, 9);
        m[STAMP_STRIDE..2 * STAMP_STRIDE].copy_from_slice(&old[STAMP_STRIDE..2 * STAMP_STRIDE]);
        assert!(Checker::new(size, Verify::Full).check(&m, 10).is_err());
    }

    #[test]
    fn sequence_numbers_are_recovered_from_short_heads() {
        for size in [1usize, 3, 8, 64] {
            for (reference, actual) in [(0u64, 0u64), (10, 12), (250, 260), (1000, 1000)] {
                let m = message(size, actual);
                assert_eq!(
                    infer_seq(&m[..size.min(8)], reference, false),
                    actual,
                    "size {size}"
                );
                let r = message(
                    size,
                    reply_seq(reference - (actual - reference).min(reference)),
                );
                let expect = reference - (actual - reference).min(reference);
                assert_eq!(
                    infer_seq(&r[..size.min(8)], reference, true),
                    expect,
                    "reply size {size}"
                );
            }
        }
    }

    #[test]
    fn sequence_errors_name_what_arrived() {
        let mut c = Checker::new(64, Verify::Cheap);
        let err = c.check(&message(64, 7), 6).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected message #6, received #7 (lost, duplicated or reordered)"
        );
    }
}
