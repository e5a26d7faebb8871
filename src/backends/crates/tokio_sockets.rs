//! `tokio-unix-stream` and `tokio-tcp`: the sockets of `unix-stream` and `tcp`, driven by
//! tokio. Each side owns a current-thread runtime (`rt` + `net`: its I/O driver is epoll),
//! and every send and receive is an async `write_all` or `read_exact` that the harness
//! waits for with `block_on`: what async code awaiting one request at a time pays over a
//! blocking read (registration with the reactor, readiness through epoll, the runtime's
//! wake-up). They set up exactly as the blocking mechanisms they are built on, so the two
//! differ only in how each message is waited for.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::runtime::Runtime;

use super::super::{Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer, Split};
use super::Over;
use crate::error::BackendError;
use crate::sys::fs::PrivateDir;

/// A blocking socket that tokio can take over (also the HTTP mechanisms' sockets).
pub(super) trait Socket: From<OwnedFd> + Sized + Send + 'static {
    type Async: AsyncRead + AsyncWrite + AsFd + Unpin + Send;
    fn into_async(self) -> io::Result<Self::Async>;
    /// A second descriptor for the same socket, as a blocking socket again.
    fn dup(a: &Self::Async) -> io::Result<Self> {
        Ok(Self::from(a.as_fd().try_clone_to_owned()?))
    }
}

impl Socket for std::os::unix::net::UnixStream {
    type Async = tokio::net::UnixStream;
    fn into_async(self) -> io::Result<Self::Async> {
        self.set_nonblocking(true)?;
        tokio::net::UnixStream::from_std(self)
    }
}

impl Socket for std::net::TcpStream {
    type Async = tokio::net::TcpStream;
    fn into_async(self) -> io::Result<Self::Async> {
        self.set_nonblocking(true)?;
        tokio::net::TcpStream::from_std(self)
    }
}

/// A runtime of its own and the socket registered with it.
struct Driven<S: Socket> {
    rt: Runtime,
    sock: S::Async,
}

impl<S: Socket> Driven<S> {
    fn new(sock: S) -> io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        // Registering with the reactor needs the runtime's context.
        let sock = {
            let _inside = rt.enter();
            sock.into_async()?
        };
        Ok(Driven { rt, sock })
    }

    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.rt.block_on(self.sock.write_all(msg))
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.rt.block_on(self.sock.read_exact(buf)) {
            Ok(_) => Ok(buf.len()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(io::Error::new(
                e.kind(),
                "the other side closed the channel",
            )),
            Err(e) => Err(e),
        }
    }
}

struct TokioChannel<S: Socket> {
    driven: Driven<S>,
    /// Parent only: the private directory of the Unix socket, removed once the peer is in.
    names: Option<PrivateDir>,
    mechanism: &'static str,
}

impl<S: Socket> Channel for TokioChannel<S> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.driven.send(msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.driven.recv(buf)
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.driven.sock.as_fd())
    }

    /// Each half is a duplicate of the socket in a runtime of its own, so two threads
    /// never share a reactor.
    fn split(&mut self) -> Option<io::Result<Split>> {
        let half = |sock: &S::Async| -> io::Result<Box<dyn Channel + Send>> {
            Ok(Box::new(Half::<S>(Driven::new(S::dup(sock)?)?)))
        };
        Some((|| {
            Ok(Split {
                tx: half(&self.driven.sock)?,
                rx: half(&self.driven.sock)?,
            })
        })())
    }

    fn peer_attached(&mut self) -> Result<(), BackendError> {
        super::super::remove_names(self.mechanism, &mut self.names)
    }
}

/// One half of a split tokio channel.
struct Half<S: Socket>(Driven<S>);

impl<S: Socket> Channel for Half<S> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.0.send(msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.recv(buf)
    }
}

fn wrap<S: Socket>(
    id: &'static str,
    sock: S,
    what: &str,
    names: Option<PrivateDir>,
) -> Result<Box<dyn Channel>, BackendError> {
    let driven = Driven::new(sock)
        .map_err(|e| BackendError::new(id, "hand to a tokio runtime", what.to_string(), e))?;
    Ok(Box::new(TokioChannel {
        driven,
        names,
        mechanism: id,
    }))
}

fn wrap_unix(
    id: &'static str,
    sock: std::os::unix::net::UnixStream,
    path: &Path,
    names: Option<PrivateDir>,
) -> Result<Box<dyn Channel>, BackendError> {
    wrap(id, sock, &path.display().to_string(), names)
}

fn wrap_tcp(
    id: &'static str,
    sock: std::net::TcpStream,
    what: &str,
) -> Result<Box<dyn Channel>, BackendError> {
    wrap(id, sock, what, None)
}

pub struct TokioSocket {
    info: &'static MechanismInfo,
    over: Over,
}

static UNIX_INFO: MechanismInfo = MechanismInfo {
    id: "tokio-unix-stream",
    family: Family::Crates,
    summary: "tokio 1 UnixStream (current-thread runtime each side), path bound in a private directory",
    boundaries: false,
    kernel_copies: 2,
    lossy: false,
    named: true,
    cross_host: false,
    built_on: Some("unix-stream"),
    fan_in: true,
    fd_passing: false,
    portable: true,
    trade_off: "what an async service pays per message over a blocking unix-stream: readiness through the runtime's reactor",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

static TCP_INFO: MechanismInfo = MechanismInfo {
    id: "tokio-tcp",
    family: Family::Crates,
    summary: "tokio 1 TcpStream over loopback (current-thread runtime each side), TCP_NODELAY",
    boundaries: false,
    kernel_copies: 2,
    lossy: false,
    named: false,
    cross_host: true,
    built_on: Some("tcp"),
    fan_in: true,
    fd_passing: false,
    portable: true,
    trade_off: "what an async service pays per message over blocking tcp: readiness through the runtime's reactor",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

pub static TOKIO_UNIX_STREAM: TokioSocket = TokioSocket {
    info: &UNIX_INFO,
    over: Over::UnixStream,
};
pub static TOKIO_TCP: TokioSocket = TokioSocket {
    info: &TCP_INFO,
    over: Over::Tcp,
};

impl Mechanism for TokioSocket {
    fn info(&self) -> &'static MechanismInfo {
        self.info
    }

    fn close_is_seen(&self) -> bool {
        true
    }

    fn duplex(&self) -> bool {
        true
    }

    fn fan_in(&self) -> super::super::fanin::Form {
        super::super::fanin::Form::Pairs
    }

    fn offer(&self, _params: &ChannelParams) -> Result<Offer, BackendError> {
        self.over.offer(self.info.id, wrap_unix, wrap_tcp)
    }

    fn join(
        &self,
        spec: &str,
        _inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        self.over.join(self.info.id, spec, wrap_unix, wrap_tcp)
    }
}
