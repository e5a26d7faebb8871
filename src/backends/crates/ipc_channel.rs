//! `ipc-channel`: servo's ipc-channel. The peer connects to an `IpcOneShotServer` and hands
//! over a bytes channel per direction (`IpcBytesSender`/`IpcBytesReceiver`: the crate's
//! fast path for raw bytes, with no serde encoding of the payload). On Linux it runs over
//! Unix SOCK_SEQPACKET sockets. Each receive returns a fresh `Vec` from the crate, which
//! the harness copies into its own buffer.

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

impl Mechanism for IpcChannel {
    fn info(&self) -> &'static MechanismInfo {
        &INFO
    }

    fn no_fan_in(&self) -> Option<&'static str> {
        Some("one thread cannot wait on many ipc-channel bytes receivers: IpcReceiverSet takes only typed receivers, whose serialisation would be measured instead")
    }

    fn offer(&self, _params: &ChannelParams) -> Result<Offer, BackendError> {
        let (server, name) = IpcOneShotServer::<Bootstrap>::new()
            .map_err(|e| err("create", "a one-shot server", e))?;
        let spec = name.clone();
        Ok(Offer {
            spec,
            inherit: Vec::new(),
            connect: Box::new(move |rv| {
                // accept() cannot be bounded, so it runs aside while this thread watches the
                // deadline and the peer.
                let (done_tx, done_rx) = mpsc::channel();
                let waiter = std::thread::spawn(move || {
                    let _ = done_tx.send(server.accept());
                });
                let outcome = loop {
                    match done_rx.recv_timeout(Duration::from_millis(10)) {
                        Ok(r) => break Ok(r),
                        Err(_) => {
                            if let Err(e) = rv.check() {
                                release(&name);
                                break Err(e);
                            }
                        }
                    }
                };
                let _ = waiter.join();
                let (_first, (tx, rx)) = outcome
                    .map_err(|e| err("accept on", &name, e))?
                    .map_err(|e| err("accept on", &name, ipc_err(e)))?;
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
