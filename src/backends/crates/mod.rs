//! Rust IPC crates measured as mechanisms, under the same workloads, verification and CPU
//! accounting as the raw mechanisms they are built on (named in `built_on`).

#[cfg(feature = "dbus")]
pub mod dbus;
#[cfg(any(feature = "http", feature = "grpc"))]
mod driven;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "iceoryx2")]
pub mod iceoryx2;
pub mod interprocess;
pub mod ipc_channel;
#[cfg(feature = "shared-memory-crate")]
pub mod shared_memory;
pub mod tokio_sockets;
#[cfg(feature = "zmq")]
pub mod zmq;

use super::{tcp, unix_stream, Channel, Offer};
use crate::error::BackendError;

#[cfg(any(feature = "http", feature = "grpc", feature = "dbus", feature = "zmq"))]
thread_local! {
    /// This thread's runtime for the frameworks, made on first use. Never dropped: at
    /// thread exit it would drop whatever tasks a framework left after the thread's other
    /// thread-locals are gone (zeromq's maps reclaim memory through one), a panic in a
    /// destructor; the process's exit frees it.
    static RUNTIME: std::cell::RefCell<Option<std::mem::ManuallyDrop<std::rc::Rc<tokio::runtime::Runtime>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs the tasks a dropped framework channel left on this thread's runtime (a connection
/// saying goodbye, an accept loop told to stop) until no more than `before` tasks are
/// alive, for at most `within`: so sockets close when the channel goes, not whenever the
/// runtime next runs, and no task outlives the thread's other state. False if they did
/// not all end in time.
#[cfg(any(feature = "grpc", feature = "zmq"))]
pub(crate) fn settle(
    rt: &tokio::runtime::Runtime,
    before: usize,
    within: std::time::Duration,
) -> bool {
    let until = std::time::Instant::now() + within;
    rt.block_on(async {
        while rt.metrics().num_alive_tasks() > before {
            if std::time::Instant::now() >= until {
                return false;
            }
            tokio::task::yield_now().await;
            // The other process may share this CPU: let it answer.
            std::thread::yield_now();
        }
        true
    })
}

/// This thread's current-thread tokio runtime (its I/O driver, and timers where a
/// framework's feature compiles them in), shared by the thread's framework channels so a
/// fresh connection does not also pay for a runtime. Tasks a framework spawns run while
/// one of those channels waits in `block_on`.
#[cfg(any(feature = "http", feature = "grpc", feature = "dbus", feature = "zmq"))]
pub(crate) fn runtime() -> std::io::Result<std::rc::Rc<tokio::runtime::Runtime>> {
    RUNTIME.with(|r| {
        let mut r = r.borrow_mut();
        if let Some(rt) = r.as_ref() {
            return Ok(std::rc::Rc::clone(&**rt));
        }
        let rt = std::rc::Rc::new(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        );
        *r = Some(std::mem::ManuallyDrop::new(std::rc::Rc::clone(&rt)));
        Ok(rt)
    })
}

/// The description of a framework that carries messages over a stream socket (HTTP,
/// gRPC, ZeroMQ): whole messages, two kernel copies, many clients by nature.
#[cfg(any(feature = "http", feature = "grpc", feature = "zmq"))]
pub(crate) const fn framework_info(
    id: &'static str,
    summary: &'static str,
    built_on: &'static str,
    cross_host: bool,
    named: bool,
    trade_off: &'static str,
) -> super::MechanismInfo {
    super::MechanismInfo {
        id,
        family: super::Family::Crates,
        summary,
        boundaries: true,
        kernel_copies: 2,
        lossy: false,
        named,
        cross_host,
        built_on: Some(built_on),
        fan_in: true,
        fd_passing: false,
        portable: true,
        trade_off,
        verified: true,
        busy_waits: false,
        calibrates: None,
        in_all: true,
    }
}

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
        unix: impl FnOnce(
                &'static str,
                std::os::unix::net::UnixStream,
                &std::path::Path,
                Option<crate::sys::fs::PrivateDir>,
            ) -> Result<Box<dyn Channel>, BackendError>
            + 'static,
        tcp: impl FnOnce(
                &'static str,
                std::net::TcpStream,
                &str,
            ) -> Result<Box<dyn Channel>, BackendError>
            + 'static,
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
