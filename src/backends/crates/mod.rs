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
