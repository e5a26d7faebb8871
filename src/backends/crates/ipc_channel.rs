//! `ipc-channel`: servo's ipc-channel. The peer connects to an `IpcOneShotServer` and hands
//! over a bytes channel per direction (`IpcBytesSender`/`IpcBytesReceiver`: the crate's
//! fast path for raw bytes, with no serde encoding of the payload). On Linux it runs over
//! Unix SOCK_SEQPACKET sockets. Each receive returns a fresh `Vec` from the crate, which
//! the harness copies into its own buffer.
//!
//! Fan-in (`--clients`): one bytes channel carries every client's requests (each client gets
//! a clone of its sender through its one-shot server) and each client hands over its own
//! reply channel, so the server blocks on one receiver (ipc-channel's receiver set takes
//! only typed receivers, which would measure serialisation instead).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::time::Duration;

use ipc_channel::ipc::{
    bytes_channel, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender,
};
use ipc_channel::IpcError;

use super::super::{Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer};
use crate::error::BackendError;

pub struct IpcChannel;

static INFO: MechanismInfo = MechanismInfo {
    id: "ipc-channel",
    family: Family::Crates,
    summary: "servo ipc-channel 0.23 bytes channels (IpcBytesSender/Receiver) over Unix seqpacket sockets",
    boundaries: true,
    kernel_copies: 2,
    lossy: false,
    named: false,
    cross_host: false,
    built_on: Some("unix-seqpacket"),
    fan_in: true,
    fd_passing: true,
    portable: true,
    trade_off: "typed Rust channels that can carry channels and descriptors; allocates a Vec per message",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

/// What the peer sends the parent: the parent's sender and the parent's receiver.
type Bootstrap = (IpcBytesSender, IpcBytesReceiver);
/// A fan-in client's hand-over: its reply sender, and where to send it the shared request
/// sender.
type FanBootstrap = (IpcBytesSender, IpcSender<IpcBytesSender>);
/// A fan-in client's spec starts with this, then the one-shot server's name.
const FAN_IN: &str = "fan-in:";

struct IpcChan {
    tx: IpcBytesSender,
    rx: IpcBytesReceiver,
}

fn ipc_err(e: IpcError) -> io::Error {
    match e {
        IpcError::Disconnected => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the other side closed the channel",
        ),
        IpcError::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

impl Channel for IpcChan {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.tx.send(msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let v = self.rx.recv().map_err(ipc_err)?;
        let n = v.len().min(buf.len());
        buf[..n].copy_from_slice(&v[..n]);
        Ok(v.len())
    }
}

fn err(action: &'static str, what: &str, e: impl Into<io::Error>) -> BackendError {
    BackendError::new(INFO.id, action, what.to_string(), e)
}

/// Unblocks a pending `accept` by connecting to the server ourselves with a dummy bootstrap.
fn release(name: &str) {
    if let (Ok(tx), Ok((a, _)), Ok((_, b))) = (
        IpcSender::<Bootstrap>::connect(name.to_string()),
        bytes_channel(),
        bytes_channel(),
    ) {
        let _ = tx.send((a, b));
    }
}

/// Accepts a one-shot server's one connection, bounded by the rendezvous: accept() cannot
/// be bounded, so it runs aside while this thread watches the deadline and the peer (an
/// abandoned wait is released by connecting to it).
fn accept_within<T>(
    server: IpcOneShotServer<T>,
    name: &str,
    rv: &crate::backends::Rendezvous<'_>,
) -> Result<(ipc_channel::ipc::IpcReceiver<T>, T), BackendError>
where
    T: for<'de> serde::Deserialize<'de> + serde::Serialize + Send + 'static,
{
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = done_tx.send(server.accept());
    });
    let outcome = loop {
        match done_rx.recv_timeout(Duration::from_millis(10)) {
            Ok(r) => break Ok(r),
            Err(_) => {
                if let Err(e) = rv.check() {
                    release(name);
                    break Err(e);
                }
            }
        }
    };
    let _ = waiter.join();
    outcome
        .map_err(|e| err("accept on", name, e))?
        .map_err(|e| err("accept on", name, ipc_err(e)))
}

/// The fan-in server: one receiver for every client's requests, a sender per client.
struct IpcHub {
    requests: IpcBytesReceiver,
    replies: Vec<IpcBytesSender>,
    abort: crate::backends::fanin::SharedAbort,
}

impl crate::backends::fanin::Hub for IpcHub {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<usize>)> {
        let v = self.requests.recv().map_err(ipc_err)?;
        // No client sends an empty message: it is the abort, sent by a dead client's hook.
        if v.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "a client is gone",
            ));
        }
        let n = v.len().min(buf.len());
        buf[..n].copy_from_slice(&v[..n]);
        Ok((v.len(), None))
    }

    fn send(&mut self, client: usize, msg: &[u8]) -> io::Result<()> {
        match self.replies.get(client) {
            Some(tx) => tx.send(msg),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no client {client}"),
            )),
        }
    }

    fn abort_handle(&self) -> crate::backends::fanin::SharedAbort {
        std::sync::Arc::clone(&self.abort)
    }

    fn clients_attached(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

impl Mechanism for IpcChannel {
    fn info(&self) -> &'static MechanismInfo {
        &INFO
    }

    fn fan_in(&self) -> crate::backends::fanin::Form {
        crate::backends::fanin::Form::Own
    }

    fn offer_fan_in(
        &self,
        _params: &ChannelParams,
        clients: usize,
    ) -> Result<crate::backends::fanin::FanInOffer, BackendError> {
        let (req_tx, req_rx) = bytes_channel().map_err(|e| err("create", "a bytes channel", e))?;
        let mut servers = Vec::with_capacity(clients);
        let mut offers = Vec::with_capacity(clients);
        for _ in 0..clients {
            let (server, name) = IpcOneShotServer::<FanBootstrap>::new()
                .map_err(|e| err("create", "a one-shot server", e))?;
            offers.push(crate::backends::fanin::ClientOffer {
                spec: format!("{FAN_IN}{name}"),
                inherit: Vec::new(),
            });
            servers.push((server, name));
        }
        Ok(crate::backends::fanin::FanInOffer {
            clients: offers,
            connect: Box::new(move |rv| {
                let mut replies = Vec::with_capacity(servers.len());
                for (server, name) in servers {
                    let (_first, (reply_tx, give)) = accept_within(server, &name, rv)?;
                    give.send(req_tx.clone())
                        .map_err(|e| err("send the request channel to", &name, ipc_err(e)))?;
                    replies.push(reply_tx);
                }
                let own = std::sync::Mutex::new(req_tx);
                let abort: crate::backends::fanin::SharedAbort = std::sync::Arc::new(move || {
                    if let Ok(tx) = own.lock() {
                        let _ = tx.send(&[]);
                    }
                });
                Ok(Box::new(IpcHub {
                    requests: req_rx,
                    replies,
                    abort,
                }) as Box<dyn crate::backends::fanin::Hub>)
            }),
        })
    }

    fn offer(&self, _params: &ChannelParams) -> Result<Offer, BackendError> {
        let (server, name) = IpcOneShotServer::<Bootstrap>::new()
            .map_err(|e| err("create", "a one-shot server", e))?;
        let spec = name.clone();
        Ok(Offer {
            spec,
            inherit: Vec::new(),
            connect: Box::new(move |rv| {
                let (_first, (tx, rx)) = accept_within(server, &name, rv)?;
                Ok(Box::new(IpcChan { tx, rx }))
            }),
        })
    }

    fn join(
        &self,
        spec: &str,
        _inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        if let Some(name) = spec.strip_prefix(FAN_IN) {
            return join_fan_in(name);
        }
        if spec.is_empty() || spec.len() > 4096 {
            return Err(BackendError::invalid(
                INFO.id,
                spec,
                "not a one-shot server name",
            ));
        }
        let boot = IpcSender::<Bootstrap>::connect(spec.to_string())
            .map_err(|e| err("connect to", spec, e))?;
        let (to_peer_tx, to_peer_rx) =
            bytes_channel().map_err(|e| err("create", "a bytes channel", e))?;
        let (to_parent_tx, to_parent_rx) =
            bytes_channel().map_err(|e| err("create", "a bytes channel", e))?;
        boot.send((to_peer_tx, to_parent_rx))
            .map_err(|e| err("send the channels to", spec, ipc_err(e)))?;
        Ok(Box::new(IpcChan {
            tx: to_parent_tx,
            rx: to_peer_rx,
        }))
    }
}

/// A fan-in client: hands over its reply channel and receives the shared request sender.
fn join_fan_in(name: &str) -> Result<Box<dyn Channel>, BackendError> {
    if name.is_empty() || name.len() > 4096 {
        return Err(BackendError::invalid(
            INFO.id,
            name,
            "not a one-shot server name",
        ));
    }
    let boot = IpcSender::<FanBootstrap>::connect(name.to_string())
        .map_err(|e| err("connect to", name, e))?;
    let (reply_tx, reply_rx) = bytes_channel().map_err(|e| err("create", "a bytes channel", e))?;
    let (give_tx, give_rx) =
        ipc_channel::ipc::channel::<IpcBytesSender>().map_err(|e| err("create", "a channel", e))?;
    boot.send((reply_tx, give_tx))
        .map_err(|e| err("send the channels to", name, ipc_err(e)))?;
    let tx = give_rx
        .recv()
        .map_err(|e| err("receive the request channel from", name, ipc_err(e)))?;
    Ok(Box::new(IpcChan { tx, rx: reply_rx }))
}
