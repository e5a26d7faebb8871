//! Rust IPC crates measured as mechanisms, under the same workloads, verification and CPU
//! accounting as the raw mechanisms they are built on (named in `built_on`).

#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "iceoryx2")]
pub mod iceoryx2;
pub mod interprocess;
pub mod ipc_channel;
#[cfg(feature = "shared-memory-crate")]
pub mod shared_memory;
pub mod tokio_sockets;

use super::{tcp, unix_stream, Channel, Offer};
use crate::error::BackendError;

/// The raw socket a crate's mechanism runs over, set up exactly as that mechanism sets it
/// up; only the wrapping of the connected socket (`unix` or `tcp`) is the crate's own.
#[derive(Clone, Copy)]
pub(crate) enum Over {
    UnixStream,
    Tcp,
}

impl Over {
    /// The parent's side of mechanism `id` over this socket.
    pub(crate) fn offer(
        self,
        id: &'static str,
        unix: unix_stream::Wrap,
        tcp: tcp::Wrap,
    ) -> Result<Offer, BackendError> {
        match self {
            Over::UnixStream => unix_stream::offer_as(id, unix),
            Over::Tcp => tcp::offer_as(id, tcp),
        }
    }

    /// The peer's side of mechanism `id` over this socket.
    pub(crate) fn join(
        self,
        id: &'static str,
        spec: &str,
        unix: unix_stream::Wrap,
        tcp: tcp::Wrap,
    ) -> Result<Box<dyn Channel>, BackendError> {
        match self {
            Over::UnixStream => unix_stream::join_as(id, spec, unix),
            Over::Tcp => tcp::join_as(id, spec, tcp),
        }
    }
}
