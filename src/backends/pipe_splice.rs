//! `pipe-splice`: anonymous pipes like `pipe`, but the sender hands its message to the pipe
//! by reference with `vmsplice(2)` instead of copying it in with `write(2)`; the receiver
//! `read`s it out (its one copy, straight from the sender's pages).
//!
//! The pipe holds references to the sender's pages until they are read, so the sender must
//! not rewrite a message's buffer before the reader has consumed it. It cycles through
//! enough page-aligned buffers that this cannot happen: a pipe holds at most
//! `capacity / 4096` page references and at most `capacity` bytes, so once that many
//! later messages (whichever bound is smaller) have entered the pipe, every byte of the
//! oldest buffer has been read. With `SPLICE_F_GIFT` (offered when a message is whole pages)
//! the kernel only marks the pipe buffer as gifted (`PIPE_BUF_FLAG_GIFT`, which only a
//! splice that steals pages consults): a reader's `read` copies it like any other page.

use std::io;
use std::os::fd::OwnedFd;

use nix::sys::stat::SFlag;

use super::lending::Primed;
use super::pipe::pipe_pair;
use super::stream::read_message;
use super::{
    expect_fds, expect_file_type, expect_no_spec, Channel, ChannelParams, Family, Mechanism,
    MechanismInfo, Offer,
};
use crate::error::BackendError;
use crate::sys::fd::RawFile;
use crate::sys::zerocopy::{pipe_capacity, vmsplice_all, PageBuf, PAGE};

pub struct PipeSplice;

static INFO: MechanismInfo = MechanismInfo {
    id: "pipe-splice",
    family: Family::MessagePassing,
    summary: "anonymous pipes; the sender vmsplices its pages in (no copy), the receiver reads them out",
    boundaries: false,
    kernel_copies: 1,
    lossy: false,
    named: false,
    cross_host: false,
    built_on: None,
    fan_in: false,
    fd_passing: false,
    portable: false,
    trade_off: "one copy instead of a pipe's two for large messages; the sender must keep each buffer unchanged until it is read, so it needs a pipe's worth of buffers",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

/// One end: reads with `read(2)`, sends by `vmsplice(2)` from its own buffers.
struct SpliceChannel {
    rx: RawFile,
    tx: OwnedFd,
    /// Buffers used in turn; a buffer is rewritten only after enough later messages that
    /// the reader has consumed it (see the module's notes).
    bufs: Vec<PageBuf>,
    /// Which buffers hold a whole message already (each is primed from the first
    /// message sent through it, then only restamped).
    primed: Primed,
    next: usize,
    gift: bool,
}

/// Buffers a sender of `size`-byte messages needs so that none is rewritten while the pipe
/// may still refer to it: one more than the messages a pipe of `capacity` bytes can hold.
fn buffers_needed(capacity: usize, size: usize) -> usize {
    let by_slots = (capacity / PAGE).max(1);
    let by_bytes = capacity.div_ceil(size.max(1));
    by_slots.min(by_bytes) + 1
}

impl SpliceChannel {
    fn new(rx: OwnedFd, tx: OwnedFd, size: usize) -> io::Result<SpliceChannel> {
        let n = buffers_needed(pipe_capacity(&tx)?, size);
        Ok(SpliceChannel {
            rx: RawFile(rx),
            tx,
            bufs: (0..n).map(|_| PageBuf::new(size)).collect(),
            primed: Primed::default(),
            next: 0,
            gift: size % PAGE == 0,
        })
    }

    /// The next buffer to send from, primed with `template` if it is its first use.
    fn take(&mut self, template: &[u8]) -> io::Result<&mut [u8]> {
        let k = self.next;
        self.primed.lend(k, self.bufs[k].bytes_mut(), template)
    }

    fn splice_next(&mut self) -> io::Result<()> {
        let k = self.next;
        self.next = (k + 1) % self.bufs.len();
        vmsplice_all(&self.tx, self.bufs[k].bytes(), self.gift)
    }
}

impl Channel for SpliceChannel {
    /// A message from the caller's memory is copied into the next buffer first (the path
    /// fan-in and helpers take); the workloads produce theirs in place (`send_in_place`).
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.take(msg)?.copy_from_slice(msg);
        self.splice_next()
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_message(&mut self.rx, buf)
    }

    fn lends(&self) -> bool {
        true
    }

    fn send_in_place(
        &mut self,
        template: &[u8],
        write: &mut dyn FnMut(&mut [u8]),
    ) -> io::Result<()> {
        write(self.take(template)?);
        self.splice_next()
    }
}

fn channel(rx: OwnedFd, tx: OwnedFd, size: usize) -> Result<Box<dyn Channel>, BackendError> {
    SpliceChannel::new(rx, tx, size)
        .map(|c| Box::new(c) as Box<dyn Channel>)
        .map_err(|e| BackendError::new(INFO.id, "size", "the pipe's buffers", e))
}

impl Mechanism for PipeSplice {
    fn info(&self) -> &'static MechanismInfo {
        &INFO
    }

    fn close_is_seen(&self) -> bool {
        true
    }

    fn setup_note(&self) -> Option<&'static str> {
        Some(super::pipe::SETUP)
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        let [rx, tx, peer_rx, peer_tx] = pipe_pair(INFO.id)?;
        let size = params.size;
        Ok(Offer {
            spec: String::new(),
            inherit: vec![peer_rx, peer_tx],
            connect: Box::new(move |_| channel(rx, tx, size)),
        })
    }

    fn join(
        &self,
        spec: &str,
        fds: Vec<OwnedFd>,
        params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        expect_no_spec(INFO.id, spec)?;
        let [rx, tx] = expect_fds::<2>(INFO.id, fds)?;
        expect_file_type(INFO.id, &rx, SFlag::S_IFIFO)?;
        expect_file_type(INFO.id, &tx, SFlag::S_IFIFO)?;
        channel(rx, tx, params.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_buffers_that_none_is_rewritten_while_the_pipe_refers_to_it() {
        // 64 KiB pipe: 16 page slots.
        assert_eq!(buffers_needed(65536, 64), 17);
        assert_eq!(buffers_needed(65536, 65536), 2);
        assert_eq!(buffers_needed(65536, 1 << 20), 2);
        assert_eq!(buffers_needed(1 << 20, 100_000), 12);
    }

    #[test]
    fn messages_arrive_intact_through_a_full_pipe() {
        // More messages than the pipe holds, sent before any is read from a second
        // thread: a buffer rewritten too early would show as a corrupted message.
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let size = 5000;
        let mut tx = SpliceChannel::new(r.try_clone().expect("dup"), w, size).expect("channel");
        let reader = std::thread::spawn(move || {
            let mut rx = RawFile(r);
            let mut got = vec![0u8; size];
            let mut seqs = Vec::new();
            for _ in 0..200 {
                read_message(&mut rx, &mut got).expect("read");
                assert!(got[8..].iter().all(|&b| b == got[0]), "mixed message");
                seqs.push(got[0]);
            }
            seqs
        });
        let template = vec![0u8; size];
        for i in 0..200u32 {
            tx.send_in_place(&template, &mut |m| m.fill(i as u8))
                .expect("send");
        }
        let seqs = reader.join().expect("reader");
        assert_eq!(seqs, (0..200u32).map(|i| i as u8).collect::<Vec<_>>());
    }
}
