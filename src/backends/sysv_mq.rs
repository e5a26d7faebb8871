//! `sysv-mq`: two System V message queues (`msgget(IPC_PRIVATE)`, mode 0600), one per
//! direction, passed to the peer by id and removed with `IPC_RMID` when the run ends.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::{AbortHandle, Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer};
use crate::environment::Limits;
use crate::error::BackendError;
use crate::sys::sysv::{MsgBuf, MsgQueue};

pub struct SysvMq;

static INFO: MechanismInfo = MechanismInfo {
    id: "sysv-mq",
    family: Family::MessagePassing,
    summary: "System V message queues (msgget/msgsnd/msgrcv), one per direction",
    boundaries: true,
    kernel_copies: 2,
    lossy: false,
    named: true,
    cross_host: false,
    built_on: None,
    fan_in: true,
    fd_passing: false,
    portable: true,
    trade_off: "ubiquitous but old; sizes capped by kernel.msgmax and kernel.msgmnb (8 and 16 KiB by default); queues outlive crashed processes",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

struct SysvChannel {
    tx: Arc<MsgQueue>,
    rx: Arc<MsgQueue>,
    /// msgsnd/msgrcv want the type word right before the payload: one staging copy each way.
    out: MsgBuf,
    inb: MsgBuf,
}

impl Channel for SysvChannel {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.out.payload_mut().copy_from_slice(msg);
        self.tx.send(&self.out)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.rx.recv(&mut self.inb) {
            Ok(n) => {
                buf[..n].copy_from_slice(&self.inb.payload()[..n]);
                Ok(n)
            }
            Err(e) if e.raw_os_error() == Some(libc::E2BIG) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a message longer than {} bytes arrived", buf.len()),
            )),
            Err(e) => Err(e),
        }
    }

    /// Removing the queues wakes a blocked msgsnd/msgrcv with EIDRM.
    fn abort_handle(&self) -> Option<AbortHandle> {
        let (tx, rx) = (Arc::clone(&self.tx), Arc::clone(&self.rx));
        Some(Box::new(move || {
            let _ = tx.remove();
            let _ = rx.remove();
        }))
    }
}

impl Drop for SysvChannel {
    /// The queues go with the channel, whoever else still holds a reference (the abort
    /// handle does until the peer's exit is noticed). Only the creator's calls remove.
    fn drop(&mut self) {
        let _ = self.tx.remove();
        let _ = self.rx.remove();
    }
}

fn err(action: &'static str, what: String, e: io::Error) -> BackendError {
    BackendError::new(INFO.id, action, what, e)
}

impl Mechanism for SysvMq {
    fn info(&self) -> &'static MechanismInfo {
        &INFO
    }

    fn unsupported(&self, params: &ChannelParams, limits: &Limits) -> Option<String> {
        let size = params.size;
        if let Some(max) = limits.msgmax.filter(|&m| size as u64 > m) {
            return Some(format!(
                "a System V message here carries at most kernel.msgmax = {max} bytes; raise it with `sysctl -w kernel.msgmax={size}`"
            ));
        }
        if let Some(mnb) = limits.msgmnb.filter(|&m| size as u64 > m) {
            return Some(format!(
                "a System V queue here holds at most kernel.msgmnb = {mnb} bytes; raise it with `sysctl -w kernel.msgmnb={size}`"
            ));
        }
        None
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        let create = || {
            MsgQueue::create().map(Arc::new).map_err(|e| {
                err("create", "a System V message queue".into(), e)
                    .hint("the system may be at kernel.msgmni queues; `ipcs -q` lists them")
            })
        };
        let to_peer = create()?;
        let from_peer = create()?;
        let size = params.size;
        Ok(Offer {
            spec: format!("{},{}", to_peer.id(), from_peer.id()),
            inherit: Vec::new(),
            connect: Box::new(move |_| {
                Ok(Box::new(SysvChannel {
                    tx: to_peer,
                    rx: from_peer,
                    out: MsgBuf::new(size),
                    inb: MsgBuf::new(size),
                }))
            }),
        })
    }

    fn fan_in(&self) -> super::fanin::Form {
        super::fanin::Form::Own
    }

    /// One request queue that every client sends to, and a reply queue per client; the
    /// server blocks in `msgrcv` on the request queue (System V queues cannot be polled).
    fn offer_fan_in(
        &self,
        params: &ChannelParams,
        clients: usize,
    ) -> Result<super::fanin::FanInOffer, BackendError> {
        let create = || {
            MsgQueue::create().map(Arc::new).map_err(|e| {
                err("create", "a System V message queue".into(), e)
                    .hint("the system may be at kernel.msgmni queues; `ipcs -q` lists them")
            })
        };
        let size = params.size;
        let requests = create()?;
        let mut replies: Vec<Box<dyn Channel>> = Vec::with_capacity(clients);
        let mut offers = Vec::with_capacity(clients);
        for _ in 0..clients {
            let reply = create()?;
            offers.push(super::fanin::ClientOffer {
                spec: format!("{},{}", reply.id(), requests.id()),
                inherit: Vec::new(),
            });
            // The receiving side of a reply channel is the shared request queue, unused.
            replies.push(Box::new(SysvChannel {
                tx: reply,
                rx: Arc::clone(&requests),
                out: MsgBuf::new(size),
                inb: MsgBuf::new(1),
            }));
        }
        let inbound = SysvChannel {
            tx: Arc::clone(&requests),
            rx: requests,
            out: MsgBuf::new(1),
            inb: MsgBuf::new(size),
        };
        Ok(super::fanin::FanInOffer {
            clients: offers,
            connect: Box::new(move |_| {
                Ok(
                    Box::new(super::fanin::QueueHub::new(Box::new(inbound), replies))
                        as Box<dyn super::fanin::Hub>,
                )
            }),
        })
    }

    fn join(
        &self,
        spec: &str,
        _inherited: Vec<OwnedFd>,
        params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        let ids: Vec<libc::c_int> = spec
            .split(',')
            .filter_map(|s| s.parse().ok())
            .filter(|&i| i >= 0)
            .collect();
        let [to_peer, from_peer] = ids[..] else {
            return Err(BackendError::invalid(
                INFO.id,
                spec,
                "expected two queue ids",
            ));
        };
        let open = |id| {
            MsgQueue::open(id)
                .map(Arc::new)
                .map_err(|why| BackendError::invalid(INFO.id, spec, &why))
        };
        Ok(Box::new(SysvChannel {
            rx: open(to_peer)?,
            tx: open(from_peer)?,
            out: MsgBuf::new(params.size),
            inb: MsgBuf::new(params.size),
        }))
    }
}
