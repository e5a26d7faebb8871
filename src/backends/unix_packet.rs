//! `unix-dgram` and `unix-seqpacket`: a connected Unix socket pair (`socketpair`) of
//! datagram or sequenced-packet type; the peer inherits its end.

use std::os::fd::OwnedFd;

use std::os::fd::AsRawFd;

use nix::sys::socket::{
    bind, connect, getsockname, getsockopt, socket, socketpair, sockopt, AddressFamily, SockFlag,
    SockType, UnixAddr,
};

use super::datagram::{shared_socket, size_buffers, sndbuf_limit, DatagramChannel};
use super::fanin::FanInOffer;
use super::{
    expect_fds, expect_no_spec, Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer,
};
use crate::environment::Limits;
use crate::error::BackendError;

pub struct UnixPacket {
    info: &'static MechanismInfo,
    ty: SockType,
}

static DGRAM_INFO: MechanismInfo = MechanismInfo {
    id: "unix-dgram",
    family: Family::Sockets,
    summary: "Unix domain SOCK_DGRAM socket pair (socketpair), inherited by the peer",
    boundaries: true,
    kernel_copies: 2,
    // Linux blocks the sender of a connected pair rather than dropping, but datagram
    // semantics allow loss, so it is counted rather than assumed away.
    lossy: true,
    named: false,
    cross_host: false,
    built_on: None,
    fan_in: true,
    fd_passing: true,
    portable: true,
    trade_off:
        "boundaries, many senders, passes file descriptors; one datagram must fit the socket buffer",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

static SEQPACKET_INFO: MechanismInfo = MechanismInfo {
    id: "unix-seqpacket",
    family: Family::Sockets,
    summary: "Unix domain SOCK_SEQPACKET socket pair: reliable, ordered, boundaries kept",
    boundaries: true,
    kernel_copies: 2,
    lossy: false,
    named: false,
    cross_host: false,
    built_on: None,
    fan_in: true,
    fd_passing: true,
    portable: false,
    trade_off: "boundaries with connections and reliability; passes file descriptors; Linux (and few others) only",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

pub static UNIX_DGRAM: UnixPacket = UnixPacket {
    info: &DGRAM_INFO,
    ty: SockType::Datagram,
};

pub static UNIX_SEQPACKET: UnixPacket = UnixPacket {
    info: &SEQPACKET_INFO,
    ty: SockType::SeqPacket,
};

impl Mechanism for UnixPacket {
    fn info(&self) -> &'static MechanismInfo {
        self.info
    }

    /// A seqpacket socket reads a closed peer as end-of-file; a datagram socket does not.
    fn close_is_seen(&self) -> bool {
        self.ty == SockType::SeqPacket
    }

    fn setup_note(&self) -> Option<&'static str> {
        Some("a new pair is socketpair(2) plus passing one end over a Unix socket (SCM_RIGHTS): the pair has no name to connect to")
    }

    fn unsupported(&self, params: &ChannelParams, limits: &Limits) -> Option<String> {
        let size = params.size;
        sndbuf_limit(size, limits.wmem_max)
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        let id = self.info.id;
        let (mine, theirs) = socketpair(AddressFamily::Unix, self.ty, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|e| BackendError::new(id, "create", "a socket pair", e))?;
        for s in [&mine, &theirs] {
            size_buffers(id, s, params.size, params.rcvbuf)?;
        }
        Ok(Offer {
            spec: String::new(),
            inherit: vec![theirs],
            connect: Box::new(move |_| Ok(Box::new(DatagramChannel::new(mine)))),
        })
    }

    /// A socket takes a send and a receive at once (the open-loop workloads); only
    /// seqpacket is reliable enough to be offered them.
    fn duplex(&self) -> bool {
        true
    }

    fn fan_in(&self) -> super::fanin::Form {
        match self.ty {
            SockType::Datagram => super::fanin::Form::Own,
            _ => super::fanin::Form::Pairs,
        }
    }

    /// Datagram: one server socket that every client (autobound, connected to it) sends
    /// to; replies are addressed back. (Seqpacket fans in as a connected pair per client.)
    fn offer_fan_in(
        &self,
        params: &ChannelParams,
        clients: usize,
    ) -> Result<FanInOffer, BackendError> {
        let id = self.info.id;
        let err = |what: &str, e: nix::Error| BackendError::new(id, "set up", what.to_string(), e);
        let bound = || -> Result<(OwnedFd, UnixAddr), BackendError> {
            let s = socket(AddressFamily::Unix, self.ty, SockFlag::SOCK_CLOEXEC, None)
                .map_err(|e| err("a socket", e))?;
            // An unnamed address asks the kernel for a unique abstract one (autobind).
            bind(s.as_raw_fd(), &UnixAddr::new_unnamed()).map_err(|e| err("autobind", e))?;
            size_buffers(id, &s, params.size, params.rcvbuf)?;
            let addr = getsockname::<UnixAddr>(s.as_raw_fd()).map_err(|e| err("getsockname", e))?;
            Ok((s, addr))
        };
        let (server, server_addr) = bound()?;
        let mut socks = Vec::with_capacity(clients);
        for _ in 0..clients {
            let (s, addr) = bound()?;
            connect(s.as_raw_fd(), &server_addr).map_err(|e| err("connect", e))?;
            socks.push((s, addr));
        }
        shared_socket(id, server, socks)
    }

    fn join(
        &self,
        spec: &str,
        inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        let id = self.info.id;
        expect_no_spec(id, spec)?;
        let [sock] = expect_fds::<1>(id, inherited)?;
        let ty = getsockopt(&sock, sockopt::SockType)
            .map_err(|e| BackendError::new(id, "inspect", "the inherited socket", e))?;
        if ty != self.ty {
            return Err(BackendError::invalid(
                id,
                "the inherited socket",
                "it is not of this mechanism's socket type",
            ));
        }
        Ok(Box::new(DatagramChannel::new(sock)))
    }
}
