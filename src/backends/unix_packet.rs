//! `unix-dgram` and `unix-seqpacket`: a connected Unix socket pair (`socketpair`) of
//! datagram or sequenced-packet type; the peer inherits its end.

use std::os::fd::OwnedFd;

use nix::sys::socket::{getsockopt, socketpair, sockopt, AddressFamily, SockFlag, SockType};

use super::datagram::{size_buffers, sndbuf_limit, DatagramChannel};
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
