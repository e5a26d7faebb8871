//! The byte-stream channel shared by pipes, FIFOs and stream sockets: a message is exactly
//! S bytes, reassembled from however many reads and writes the kernel needs.

use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;

use super::{Channel, Split};
use crate::error::BackendError;
use crate::sys::fs::PrivateDir;

pub struct StreamChannel<R, W> {
    rx: R,
    tx: W,
    /// Names to remove once the peer holds the objects.
    names: Option<PrivateDir>,
    mechanism: &'static str,
    /// Duplicates both ends (for `split`), where the handles can be duplicated.
    dup: Option<Dup<R, W>>,
    /// The receiving handle's descriptor, where it has one (for a fan-in server's poll).
    poll: Option<PollFd<R>>,
}

/// Borrows a receiving handle's descriptor.
pub type PollFd<R> = for<'a> fn(&'a R) -> BorrowedFd<'a>;

/// Duplicates a stream channel's two handles.
pub type Dup<R, W> = fn(&R, &W) -> io::Result<(R, W)>;

/// `Dup` for descriptors read and written directly (pipes, FIFOs).
pub fn dup_raw(
    r: &crate::sys::fd::RawFile,
    w: &crate::sys::fd::RawFile,
) -> io::Result<(crate::sys::fd::RawFile, crate::sys::fd::RawFile)> {
    Ok((r.try_clone()?, w.try_clone()?))
}

impl<R: Read + Send, W: Write + Send> StreamChannel<R, W> {
    pub fn new(mechanism: &'static str, rx: R, tx: W) -> Self {
        StreamChannel {
            rx,
            tx,
            names: None,
            mechanism,
            dup: None,
            poll: None,
        }
    }

    /// Lets a fan-in server poll the channel through `poll`.
    pub fn with_poll(mut self, poll: PollFd<R>) -> Self {
        self.poll = Some(poll);
        self
    }

    /// Lets the channel `split` by duplicating its handles with `dup`.
    pub fn with_dup(mut self, dup: Dup<R, W>) -> Self {
        self.dup = Some(dup);
        self
    }

    pub fn with_names(mut self, dir: PrivateDir) -> Self {
        self.names = Some(dir);
        self
    }
}

/// A stream's sending half after `split`.
struct SendHalf<W>(W);
/// A stream's receiving half after `split`.
struct RecvHalf<R>(R);

impl<W: Write + Send> Channel for SendHalf<W> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.0.write_all(msg)
    }

    fn recv(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the sending half does not receive",
        ))
    }
}

impl<R: Read + Send> Channel for RecvHalf<R> {
    fn send(&mut self, _msg: &[u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the receiving half does not send",
        ))
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_message(&mut self.0, buf)
    }
}

/// Reads exactly one message of `buf.len()` bytes.
pub(crate) fn read_message(rx: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    rx.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            super::lending::closed()
        } else {
            e
        }
    })?;
    Ok(buf.len())
}

impl<R: Read + Send + 'static, W: Write + Send + 'static> Channel for StreamChannel<R, W> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.tx.write_all(msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_message(&mut self.rx, buf)
    }

    fn split(&mut self) -> Option<io::Result<Split>> {
        let dup = self.dup?;
        Some(dup(&self.rx, &self.tx).map(|(rx, tx)| Split {
            tx: Box::new(SendHalf(tx)),
            rx: Box::new(RecvHalf(rx)),
        }))
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        self.poll.map(|f| f(&self.rx))
    }

    fn peer_attached(&mut self) -> Result<(), BackendError> {
        super::remove_names(self.mechanism, &mut self.names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{fill_base, stamp, Checker, Verify};
    use proptest::prelude::*;

    /// Hands out its bytes in the chunk sizes given, cycling (short reads).
    struct ShortReader {
        data: Vec<u8>,
        at: usize,
        chunks: Vec<usize>,
        k: usize,
    }

    impl Read for ShortReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let want = self.chunks[self.k % self.chunks.len()];
            self.k += 1;
            let n = want.min(buf.len()).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// Accepts at most the chunk sizes given per call, cycling (short writes).
    struct ShortWriter {
        data: Vec<u8>,
        chunks: Vec<usize>,
        k: usize,
    }

    impl Write for ShortWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = self.chunks[self.k % self.chunks.len()].min(buf.len());
            self.k += 1;
            self.data.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Sends `count` messages through short writes; returns the bytes on the "wire".
    fn wire(size: usize, count: u64, chunks: Vec<usize>) -> Vec<u8> {
        let w = ShortWriter {
            data: Vec::new(),
            chunks,
            k: 0,
        };
        let mut tx = StreamChannel::new("test", io::empty(), w);
        let mut msg = vec![0u8; size];
        fill_base(&mut msg);
        for seq in 0..count {
            stamp(&mut msg, seq);
            tx.send(&msg).unwrap();
        }
        tx.tx.data
    }

    fn receive_all(
        data: Vec<u8>,
        size: usize,
        count: u64,
        chunks: Vec<usize>,
    ) -> Result<(), (u64, String)> {
        let r = ShortReader {
            data,
            at: 0,
            chunks,
            k: 0,
        };
        let mut rx = StreamChannel::new("test", r, io::sink());
        let mut buf = vec![0u8; size];
        let mut check = Checker::new(size, Verify::Full);
        for seq in 0..count {
            let n = rx.recv(&mut buf).map_err(|e| (seq, e.to_string()))?;
            check
                .check(&buf[..n], seq)
                .map_err(|e| (seq, e.to_string()))?;
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn short_reads_and_writes_reassemble_every_message(
            size in 1usize..3000,
            count in 1u64..12,
            wchunks in proptest::collection::vec(1usize..700, 1..8),
            rchunks in proptest::collection::vec(1usize..700, 1..8),
        ) {
            let data = wire(size, count, wchunks);
            prop_assert_eq!(data.len(), size * count as usize);
            prop_assert_eq!(receive_all(data, size, count, rchunks), Ok(()));
        }

        #[test]
        fn any_corrupted_byte_is_detected(
            size in 1usize..3000,
            count in 1u64..6,
            pick in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
            rchunks in proptest::collection::vec(1usize..700, 1..8),
        ) {
            let mut data = wire(size, count, vec![4096]);
            let i = pick.index(data.len());
            data[i] ^= flip;
            let (seq, _) = receive_all(data, size, count, rchunks).expect_err("corruption went unnoticed");
            prop_assert_eq!(seq, (i / size) as u64, "detected in the message that holds the byte");
        }
    }
}
