//! `unix-stream`: a Unix domain stream socket bound in a private directory.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream as Stream};
use std::path::Path;

use super::stream::StreamChannel;
use super::{Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer};
use crate::error::BackendError;
use crate::sys::fs::{check_private_dir, PrivateDir};

pub struct UnixStream;

static INFO: MechanismInfo = MechanismInfo {
    id: "unix-stream",
    family: Family::Sockets,
    summary: "Unix domain SOCK_STREAM socket, path bound in a private 0700 directory",
    boundaries: false,
    kernel_copies: 2,
    lossy: false,
    named: true,
    cross_host: false,
    built_on: None,
    fan_in: true,
    fd_passing: true,
    portable: true,
    trade_off: "the usual choice for local request/response: reliable, passes file descriptors, fast for large messages; a byte stream",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

const SOCKET: &str = "socket";

fn err(id: &'static str, action: &'static str, path: &Path, e: std::io::Error) -> BackendError {
    BackendError::new(id, action, path.display().to_string(), e)
}

/// Turns a connected stream into mechanism `id`'s channel; the parent's side also gets
/// the private directory to remove once the peer holds the socket.
pub(crate) type Wrap =
    fn(&'static str, Stream, &Path, Option<PrivateDir>) -> Result<Box<dyn Channel>, BackendError>;

/// The blocking channel: a framed stream over the socket and a duplicate of it.
fn blocking(
    id: &'static str,
    stream: Stream,
    path: &Path,
    dir: Option<PrivateDir>,
) -> Result<Box<dyn Channel>, BackendError> {
    let rx = stream
        .try_clone()
        .map_err(|e| err(id, "duplicate", path, e))?;
    let chan = StreamChannel::new(id, rx, stream)
        .with_dup(|r, w| Ok((r.try_clone()?, w.try_clone()?)))
        .with_poll(|r| r.as_fd());
    Ok(match dir {
        Some(dir) => Box::new(chan.with_names(dir)),
        None => Box::new(chan),
    })
}

/// The parent's side for mechanism `id`: a socket bound in a fresh private directory; the
/// accepted stream becomes a channel through `wrap`.
pub(crate) fn offer_as(
    id: &'static str,
    wrap: impl FnOnce(
            &'static str,
            Stream,
            &Path,
            Option<PrivateDir>,
        ) -> Result<Box<dyn Channel>, BackendError>
        + 'static,
) -> Result<Offer, BackendError> {
    let dir = PrivateDir::create().map_err(|e| {
        BackendError::new(id, "create", "a private directory", e)
            .hint("set TMPDIR to a writable directory")
    })?;
    let path = dir.path().join(SOCKET);
    let listener = UnixListener::bind(&path).map_err(|e| {
        err(id, "bind", &path, e)
            .hint("socket paths are limited to 107 bytes: use a shorter TMPDIR")
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| err(id, "configure", &path, e))?;
    Ok(Offer {
        spec: dir.path().display().to_string(),
        inherit: Vec::new(),
        connect: Box::new(move |rv| {
            let path = dir.path().join(SOCKET);
            rv.wait_readable(listener.as_fd())
                .map_err(|e| err(id, "accept on", &path, e))?;
            let (stream, _) = listener
                .accept()
                .map_err(|e| err(id, "accept on", &path, e))?;
            stream
                .set_nonblocking(false)
                .map_err(|e| err(id, "configure", &path, e))?;
            wrap(id, stream, &path, Some(dir))
        }),
    })
}

/// The peer's side for mechanism `id`: connects to the socket in the private directory.
pub(crate) fn join_as(
    id: &'static str,
    spec: &str,
    wrap: Wrap,
) -> Result<Box<dyn Channel>, BackendError> {
    let dir = Path::new(spec);
    check_private_dir(dir).map_err(|why| BackendError::invalid(id, spec, &why))?;
    let path = dir.join(SOCKET);
    let stream = Stream::connect(&path).map_err(|e| err(id, "connect to", &path, e))?;
    wrap(id, stream, &path, None)
}

impl Mechanism for UnixStream {
    fn info(&self) -> &'static MechanismInfo {
        &INFO
    }

    fn close_is_seen(&self) -> bool {
        true
    }

    fn duplex(&self) -> bool {
        true
    }

    fn fan_in(&self) -> super::fanin::Form {
        super::fanin::Form::Pairs
    }

    fn offer(&self, _params: &ChannelParams) -> Result<Offer, BackendError> {
        offer_as(INFO.id, blocking)
    }

    fn join(
        &self,
        spec: &str,
        _inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        join_as(INFO.id, spec, blocking)
    }
}
