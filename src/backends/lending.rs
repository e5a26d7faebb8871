//! What the mechanisms that send from memory of their own (`Channel::lends`: pipe-splice,
//! cma-*, memfd-*) share: how many buffers a side keeps, priming each with a whole message
//! the first time it is lent, and the errors of their small protocols.

use std::io;

/// Buffers a side keeps to stream about 1 MiB of `size`-byte messages ahead: at least two
/// (so a ping-pong never waits for a buffer to come back) and at most 16.
pub(crate) fn buffers_ahead(size: usize) -> usize {
    (1usize << 20).div_ceil(size.max(1)).clamp(2, 16)
}

/// Buffers `0..primed` already hold a whole message; buffers are lent in turn from 0.
#[derive(Default)]
pub(crate) struct Primed(usize);

impl Primed {
    /// Buffer `k`, ready for the next message's stamped words: `template` (a whole message
    /// of the channel's size) is copied in the first time `k` is lent.
    pub(crate) fn lend<'a>(
        &mut self,
        k: usize,
        buf: &'a mut [u8],
        template: &[u8],
    ) -> io::Result<&'a mut [u8]> {
        if buf.len() != template.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a message of {} bytes on a channel made for {}",
                    template.len(),
                    buf.len()
                ),
            ));
        }
        if k >= self.0 {
            buf.copy_from_slice(template);
            self.0 = k + 1;
        }
        Ok(buf)
    }
}

/// The other side closed its end (it exited or was killed).
pub(crate) fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the other side closed the channel",
    )
}

/// The other side broke the mechanism's protocol (`why` says how).
pub(crate) fn protocol(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}
