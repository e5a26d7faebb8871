//! `interprocess`: the interprocess crate's local socket stream with a namespaced name (on
//! Linux an abstract-namespace Unix stream socket, so no file is created). An 8-byte token
//! turns away any other local process that connects to the name first.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::traits::{Listener as _, Stream as _};
use interprocess::local_socket::{
    GenericNamespaced, ListenerNonblockingMode, ListenerOptions, Stream, ToNsName,
};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use super::super::stream::StreamChannel;
use super::super::{Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer};
use crate::error::BackendError;
use crate::sys::fs::PREFIX;

pub struct Interprocess;

static INFO: MechanismInfo = MechanismInfo {
    id: "interprocess",
    family: Family::Crates,
    summary: "interprocess 2.4 local socket stream, namespaced name (abstract Unix stream socket)",
    boundaries: false,
    kernel_copies: 2,
    lossy: false,
    named: true,
    cross_host: false,
    built_on: Some("unix-stream"),
    fan_in: true,
    fd_passing: false,
    portable: true,
    trade_off: "portable Rust local sockets (named pipes on Windows); thin over unix-stream",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

fn err(action: &'static str, what: &str, e: impl Into<io::Error>) -> BackendError {
    BackendError::new(INFO.id, action, what.to_string(), e)
}

fn fd(s: &Stream) -> std::os::fd::BorrowedFd<'_> {
    match s {
        Stream::UdSocket(u) => u.as_fd(),
    }
}

fn read_timeout(s: &Stream, t: Duration) -> io::Result<()> {
    let tv = TimeVal::new(t.as_secs() as _, t.subsec_micros() as _);
    setsockopt(&fd(s), sockopt::ReceiveTimeout, &tv).map_err(io::Error::from)
}

/// One direction's handle on the shared stream (`&Stream` reads and writes).
struct Half(Arc<Stream>);

impl Read for Half {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for Half {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

fn channel(s: Stream) -> Box<dyn Channel> {
    let s = Arc::new(s);
    Box::new(
        StreamChannel::new(INFO.id, Half(Arc::clone(&s)), Half(s))
            .with_poll(|h| fd(&h.0))
            .with_dup(|r, w| Ok((Half(Arc::clone(&r.0)), Half(Arc::clone(&w.0))))),
    )
}

impl Mechanism for Interprocess {
    fn info(&self) -> &'static MechanismInfo {
        &INFO
    }

    fn close_is_seen(&self) -> bool {
        true
    }

    /// Both halves share the one stream (reads and writes may run in two threads at once).
    fn duplex(&self) -> bool {
        true
    }

    fn fan_in(&self) -> super::super::fanin::Form {
        super::super::fanin::Form::Pairs
    }

    fn offer(&self, _params: &ChannelParams) -> Result<Offer, BackendError> {
        let rand = || crate::sys::random_u64().map_err(|e| err("read", "/dev/urandom", e));
        let name = format!("{PREFIX}{}-{:016x}", std::process::id(), rand()?);
        let token = rand()?;
        let ns = name
            .clone()
            .to_ns_name::<GenericNamespaced>()
            .map_err(|e| err("name", &name, e))?;
        let listener = ListenerOptions::new()
            .name(ns)
            .nonblocking(ListenerNonblockingMode::Accept)
            .create_sync()
            .map_err(|e| err("listen on", &name, e))?;
        Ok(Offer {
            spec: format!("{name}:{token:016x}"),
            inherit: Vec::new(),
            connect: Box::new(move |rv| loop {
                let mut s = match listener.accept() {
                    Ok(s) => s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        rv.pause().map_err(|e| err("accept on", &name, e))?;
                        continue;
                    }
                    Err(e) => return Err(err("accept on", &name, e)),
                };
                let left = rv
                    .deadline
                    .saturating_duration_since(std::time::Instant::now())
                    .max(Duration::from_millis(1));
                read_timeout(&s, left).map_err(|e| err("configure", &name, e))?;
                let mut got = [0u8; 8];
                if s.read_exact(&mut got).is_ok() && u64::from_le_bytes(got) == token {
                    read_timeout(&s, Duration::ZERO).map_err(|e| err("configure", &name, e))?;
                    return Ok(channel(s));
                }
            }),
        })
    }

    fn join(
        &self,
        spec: &str,
        _inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        let bad = || BackendError::invalid(INFO.id, spec, "expected NAME:TOKEN");
        let (name, token) = spec.rsplit_once(':').ok_or_else(bad)?;
        if !name.starts_with(PREFIX) || token.len() != 16 || name.len() > 100 {
            return Err(bad());
        }
        let token = u64::from_str_radix(token, 16).map_err(|_| bad())?;
        let ns = name
            .to_ns_name::<GenericNamespaced>()
            .map_err(|e| err("name", name, e))?;
        let mut s = Stream::connect(ns).map_err(|e| err("connect to", name, e))?;
        s.write_all(&token.to_le_bytes())
            .map_err(|e| err("send the token to", name, e))?;
        Ok(channel(s))
    }
}
