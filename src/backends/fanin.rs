//! Fan-in (`--clients N`): one server process serving N client processes from one thread.
//! A mechanism that can fan in offers a `Hub` (the server's side) and one description per
//! client; each client joins with the mechanism's ordinary `join`, so a client's data path
//! is exactly the one-to-one channel's.
//!
//! Most hubs are a `PollHub`: the channels the server receives on, each with the descriptor
//! that polls readable when a message waits, in one epoll set (level-triggered: every ready
//! channel is served once per wake-up, in order, so no client can starve another), plus a
//! channel per client for its replies. A channel shared by every client (one request queue,
//! one datagram socket) cannot say whose a message is: the message's sequence number does.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use nix::poll::PollTimeout;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use super::{AbortHandle, Channel, ChannelParams, Mechanism, Rendezvous};
use crate::error::BackendError;

/// What one client is told and handed (as a one-to-one peer would be).
pub struct ClientOffer {
    pub spec: String,
    pub inherit: Vec<OwnedFd>,
}

/// Finishes the server's side once the clients run.
pub type HubConnect = Box<dyn FnOnce(&Rendezvous<'_>) -> Result<Box<dyn Hub>, BackendError>>;

/// The server's half-open side of a fan-in.
pub struct FanInOffer {
    pub clients: Vec<ClientOffer>,
    pub connect: HubConnect,
}

/// Makes a hub's blocked receive or send fail; called when any client dies, maybe twice.
pub type SharedAbort = Arc<dyn Fn() + Send + Sync>;

/// How a mechanism fans in (`Mechanism::fan_in`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// One one-to-one channel per client, every one in the server's epoll set (`over_pairs`).
    Pairs,
    /// A hub of its own (`Mechanism::offer_fan_in`): a shared queue or socket, or a wait
    /// that is not a descriptor.
    Own,
    /// It cannot, and why.
    Unsupported(&'static str),
}

impl Form {
    pub fn unsupported(self) -> Option<&'static str> {
        match self {
            Form::Unsupported(why) => Some(why),
            _ => None,
        }
    }
}

/// The server's side of `clients` clients of `m`, in the form the mechanism has.
pub fn offer(
    m: &dyn Mechanism,
    params: &ChannelParams,
    clients: usize,
) -> Result<FanInOffer, BackendError> {
    match m.fan_in() {
        Form::Pairs => over_pairs(m, params, clients),
        Form::Own => m.offer_fan_in(params, clients),
        Form::Unsupported(why) => Err(BackendError::invalid(m.info().id, "--clients", why)),
    }
}

/// Runs every one of `handles` on the first call (each may run only once); later calls
/// do nothing. A hub's abort is called by every dead client's hook.
pub fn once_each(handles: Vec<AbortHandle>) -> impl Fn() + Send + Sync + 'static {
    let handles = Mutex::new(handles);
    move || {
        let taken = handles.lock().map(|mut h| std::mem::take(&mut *h));
        for h in taken.into_iter().flatten() {
            h();
        }
    }
}

/// The server's side: requests from any client, replies to one.
pub trait Hub {
    /// Receives the next request into `buf`: its length, and its client when the channel
    /// it came on belongs to one client (a channel shared by all cannot tell).
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<usize>)>;
    /// Sends `msg` to client `client`.
    fn send(&mut self, client: usize, msg: &[u8]) -> io::Result<()>;
    fn abort_handle(&self) -> SharedAbort;
    /// Called once every client holds its objects: names are removed now.
    fn clients_attached(&mut self) -> Result<(), BackendError>;
}

/// Where a `PollHub` receives: a channel (by index) and the client it belongs to, if one.
pub struct Inbound {
    pub channel: usize,
    pub client: Option<usize>,
}

/// One epoll set over the server's receiving channels (see the module comment).
pub struct PollHub {
    channels: Vec<Box<dyn Channel>>,
    inbound: Vec<Inbound>,
    /// Per client, the channel its replies go out on.
    outbound: Vec<usize>,
    epoll: Epoll,
    ready: Vec<EpollEvent>,
    next: usize,
    count: usize,
    abort: SharedAbort,
}

const ABORT_TOKEN: u64 = u64::MAX;

impl PollHub {
    /// A hub over `channels`; each inbound channel must have a `poll_fd`.
    pub fn new(
        mechanism: &'static str,
        channels: Vec<Box<dyn Channel>>,
        inbound: Vec<Inbound>,
        outbound: Vec<usize>,
    ) -> Result<PollHub, BackendError> {
        let err = |what: &str, e: nix::Error| BackendError::new(mechanism, "set up", what, e);
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| err("epoll", e))?;
        for (token, i) in inbound.iter().enumerate() {
            let fd = channels
                .get(i.channel)
                .and_then(|c| c.poll_fd())
                .ok_or_else(|| {
                    BackendError::invalid(mechanism, "fan-in", "a channel that cannot be polled")
                })?;
            epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token as u64))
                .map_err(|e| err("epoll", e))?;
        }
        let wake = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)
            .map_err(|e| BackendError::new(mechanism, "create", "an eventfd", e))?;
        epoll
            .add(
                wake.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, ABORT_TOKEN),
            )
            .map_err(|e| err("epoll", e))?;
        let each = once_each(channels.iter().filter_map(|c| c.abort_handle()).collect());
        let abort: SharedAbort = Arc::new(move || {
            let _ = rustix::io::write(&wake, &1u64.to_ne_bytes());
            each();
        });
        let ready = vec![EpollEvent::empty(); inbound.len() + 1];
        Ok(PollHub {
            channels,
            inbound,
            outbound,
            epoll,
            ready,
            next: 0,
            count: 0,
            abort,
        })
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "a client is gone")
}

impl Hub for PollHub {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<usize>)> {
        loop {
            if self.next < self.count {
                let token = self.ready[self.next].data();
                self.next += 1;
                let Some(from) = self.inbound.get(token as usize) else {
                    return Err(gone());
                };
                let n = self.channels[from.channel].recv(buf)?;
                return Ok((n, from.client));
            }
            self.next = 0;
            self.count = loop {
                match self.epoll.wait(&mut self.ready, PollTimeout::NONE) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other?,
                }
            };
        }
    }

    fn send(&mut self, client: usize, msg: &[u8]) -> io::Result<()> {
        let i = *self.outbound.get(client).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("no client {client}"))
        })?;
        self.channels[i].send(msg)
    }

    fn abort_handle(&self) -> SharedAbort {
        Arc::clone(&self.abort)
    }

    fn clients_attached(&mut self) -> Result<(), BackendError> {
        self.channels.iter_mut().try_for_each(|c| c.peer_attached())
    }
}

/// A hub over one request queue that every client sends to and that cannot be polled
/// (System V queues have no descriptor): the server blocks in its receive, and a dead
/// client's abort removes or wakes what it waits on. Replies go out on a channel per client.
pub struct QueueHub {
    requests: Box<dyn Channel>,
    replies: Vec<Box<dyn Channel>>,
    abort: SharedAbort,
}

impl QueueHub {
    pub fn new(requests: Box<dyn Channel>, replies: Vec<Box<dyn Channel>>) -> QueueHub {
        let abort = Arc::new(once_each(
            std::iter::once(&requests)
                .chain(replies.iter())
                .filter_map(|c| c.abort_handle())
                .collect(),
        ));
        QueueHub {
            requests,
            replies,
            abort,
        }
    }
}

impl Hub for QueueHub {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<usize>)> {
        Ok((self.requests.recv(buf)?, None))
    }

    fn send(&mut self, client: usize, msg: &[u8]) -> io::Result<()> {
        match self.replies.get_mut(client) {
            Some(c) => c.send(msg),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no client {client}"),
            )),
        }
    }

    fn abort_handle(&self) -> SharedAbort {
        Arc::clone(&self.abort)
    }

    fn clients_attached(&mut self) -> Result<(), BackendError> {
        self.requests.peer_attached()?;
        self.replies.iter_mut().try_for_each(|c| c.peer_attached())
    }
}

/// Fan-in over `clients` one-to-one channels: the mechanism's own offer once per client,
/// the server polling all of them (connections: N accepted sockets, N pipe pairs).
pub fn over_pairs(
    m: &dyn Mechanism,
    params: &ChannelParams,
    clients: usize,
) -> Result<FanInOffer, BackendError> {
    let id = m.info().id;
    let mut offers = Vec::with_capacity(clients);
    for _ in 0..clients {
        offers.push(m.offer(params)?);
    }
    let mut connects = Vec::with_capacity(clients);
    let mut out = Vec::with_capacity(clients);
    for o in offers {
        out.push(ClientOffer {
            spec: o.spec,
            inherit: o.inherit,
        });
        connects.push(o.connect);
    }
    Ok(FanInOffer {
        clients: out,
        connect: Box::new(move |rv| {
            let mut channels = Vec::with_capacity(connects.len());
            for c in connects {
                channels.push(c(rv)?);
            }
            let inbound = (0..channels.len())
                .map(|i| Inbound {
                    channel: i,
                    client: Some(i),
                })
                .collect();
            let outbound = (0..channels.len()).collect();
            Ok(Box::new(PollHub::new(id, channels, inbound, outbound)?) as Box<dyn Hub>)
        }),
    })
}
