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

fn err(action: &'static str, path: &Path, e: std::io::Error) -> BackendError {
    BackendError::new(INFO.id, action, path.display().to_string(), e)
}

fn channel(stream: Stream, path: &Path) -> Result<StreamChannel<Stream, Stream>, BackendError> {
    let rx = stream.try_clone().map_err(|e| err("duplicate", path, e))?;
    Ok(StreamChannel::new(INFO.id, rx, stream)
        .with_dup(|r, w| Ok((r.try_clone()?, w.try_clone()?)))
        .with_poll(|r| r.as_fd()))
}

impl Mechanism for UnixStream {
    fn info(&self) -> &'static MechanismInfo {
        &INFO
    }

    fn duplex(&self) -> bool {
        true
    }

    fn fan_in(&self) -> super::fanin::Form {
        super::fanin::Form::Pairs
    }

    fn offer(&self, _params: &ChannelParams) -> Result<Offer, BackendError> {
        let dir = PrivateDir::create().map_err(|e| {
            BackendError::new(INFO.id, "create", "a private directory", e)
                .hint("set TMPDIR to a writable directory")
        })?;
        let path = dir.path().join(SOCKET);
        let listener = UnixListener::bind(&path).map_err(|e| {
            err("bind", &path, e)
                .hint("socket paths are limited to 107 bytes: use a shorter TMPDIR")
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| err("configure", &path, e))?;
        Ok(Offer {
            spec: dir.path().display().to_string(),
            inherit: Vec::new(),
            connect: Box::new(move |rv| {
                let path = dir.path().join(SOCKET);
                rv.wait_readable(listener.as_fd())
                    .map_err(|e| err("accept on", &path, e))?;
                let (stream, _) = listener.accept().map_err(|e| err("accept on", &path, e))?;
                stream
                    .set_nonblocking(false)
                    .map_err(|e| err("configure", &path, e))?;
                Ok(Box::new(channel(stream, &path)?.with_names(dir)))
            }),
        })
    }

    fn join(
        &self,
        spec: &str,
        _inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        let dir = Path::new(spec);
        check_private_dir(dir).map_err(|why| BackendError::invalid(INFO.id, spec, &why))?;
        let path = dir.join(SOCKET);
        let stream = Stream::connect(&path).map_err(|e| err("connect to", &path, e))?;
        Ok(Box::new(channel(stream, &path)?))
    }
}
