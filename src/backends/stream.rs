//! The byte-stream channel shared by pipes, FIFOs and stream sockets: a message is exactly
//! S bytes, reassembled from however many reads and writes the kernel needs.

use std::io::{self, Read, Write};

use super::Channel;
use crate::error::BackendError;
use crate::sys::fs::PrivateDir;

pub struct StreamChannel<R, W> {
    rx: R,
    tx: W,
    /// Names to remove once the peer holds the objects.
    names: Option<PrivateDir>,
    mechanism: &'static str,
}

impl<R: Read + Send, W: Write + Send> StreamChannel<R, W> {
    pub fn new(mechanism: &'static str, rx: R, tx: W) -> Self {
        StreamChannel {
            rx,
            tx,
            names: None,
            mechanism,
        }
    }

    pub fn with_names(mut self, dir: PrivateDir) -> Self {
        self.names = Some(dir);
        self
    }
}

impl<R: Read + Send, W: Write + Send> Channel for StreamChannel<R, W> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.tx.write_all(msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.rx.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(e.kind(), "the other side closed the channel")
            } else {
                e
            }
        })?;
        Ok(buf.len())
    }

    fn peer_attached(&mut self) -> Result<(), BackendError> {
        if let Some(mut dir) = self.names.take() {
            let shown = dir.path().display().to_string();
            dir.remove()
                .map_err(|e| BackendError::new(self.mechanism, "remove", shown, e))?;
        }
        Ok(())
    }
}
