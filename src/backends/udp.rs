//! `udp`: two loopback UDP sockets on 127.0.0.1 with OS-chosen ports, connected to each
//! other (so each accepts datagrams only from the other); the peer inherits its socket.

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::OwnedFd;

use nix::sys::socket::{getsockopt, sockopt, SockType};

use super::datagram::{size_buffers, DatagramChannel};
use super::{
    expect_fds, expect_no_spec, Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer,
};
use crate::environment::Limits;
use crate::error::BackendError;

pub struct Udp;

static INFO: MechanismInfo = MechanismInfo {
    id: "udp",
    family: Family::Sockets,
    summary: "loopback UDP (127.0.0.1, OS-chosen ports, connected pair): may drop under load",
    boundaries: true,
    kernel_copies: 2,
    lossy: true,
    named: false,
    cross_host: true,
    built_on: None,
    fan_in: true,
    fd_passing: false,
    portable: true,
    trade_off: "boundaries, across hosts; drops under load and caps datagrams at 65,507 bytes",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

/// 65,535 bytes of IPv4 datagram minus the 20-byte IP and 8-byte UDP headers.
pub const MAX_PAYLOAD: usize = 65_507;

fn err(action: &'static str, what: &str, e: impl Into<std::io::Error>) -> BackendError {
    BackendError::new(INFO.id, action, what.to_string(), e)
}

impl Mechanism for Udp {
    fn info(&self) -> &'static MechanismInfo {
        &INFO
    }

    fn setup_note(&self) -> Option<&'static str> {
        Some("a new pair is two sockets bound to 127.0.0.1 and connected to each other, the peer's handed over a Unix socket (SCM_RIGHTS)")
    }

    fn unsupported(&self, params: &ChannelParams, _limits: &Limits) -> Option<String> {
        let size = params.size;
        (size > MAX_PAYLOAD).then(|| {
            format!("a UDP datagram over IPv4 carries at most {MAX_PAYLOAD} bytes of payload (65,535 minus the IP and UDP headers): a protocol limit no sysctl raises")
        })
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        let bind =
            || UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| err("bind", "127.0.0.1", e));
        let (mine, theirs) = (bind()?, bind()?);
        let (a, b) = (
            mine.local_addr()
                .map_err(|e| err("inspect", "a socket", e))?,
            theirs
                .local_addr()
                .map_err(|e| err("inspect", "a socket", e))?,
        );
        mine.connect(b)
            .map_err(|e| err("connect to", &b.to_string(), e))?;
        theirs
            .connect(a)
            .map_err(|e| err("connect to", &a.to_string(), e))?;
        let (mine, theirs) = (OwnedFd::from(mine), OwnedFd::from(theirs));
        for s in [&mine, &theirs] {
            size_buffers(INFO.id, s, params.size, params.rcvbuf)?;
        }
        Ok(Offer {
            spec: String::new(),
            inherit: vec![theirs],
            connect: Box::new(move |_| Ok(Box::new(DatagramChannel::new(mine)))),
        })
    }

    fn fan_in(&self) -> super::fanin::Form {
        super::fanin::Form::Own
    }

    /// One server socket; each client's socket is bound and connected to it, and replies
    /// are addressed back to it.
    fn offer_fan_in(
        &self,
        params: &ChannelParams,
        clients: usize,
    ) -> Result<super::fanin::FanInOffer, BackendError> {
        let bind =
            || UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| err("bind", "127.0.0.1", e));
        let server = bind()?;
        let server_addr = server
            .local_addr()
            .map_err(|e| err("inspect", "a socket", e))?;
        let mut socks = Vec::with_capacity(clients);
        for _ in 0..clients {
            let s = bind()?;
            let addr = s.local_addr().map_err(|e| err("inspect", "a socket", e))?;
            s.connect(server_addr)
                .map_err(|e| err("connect to", &server_addr.to_string(), e))?;
            let std::net::SocketAddr::V4(v4) = addr else {
                return Err(BackendError::invalid(INFO.id, addr.to_string(), "not IPv4"));
            };
            let s = OwnedFd::from(s);
            size_buffers(INFO.id, &s, params.size, params.rcvbuf)?;
            socks.push((s, nix::sys::socket::SockaddrIn::from(v4)));
        }
        let server = OwnedFd::from(server);
        size_buffers(INFO.id, &server, params.size, params.rcvbuf)?;
        super::datagram::shared_socket(INFO.id, server, socks)
    }

    fn join(
        &self,
        spec: &str,
        inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        expect_no_spec(INFO.id, spec)?;
        let [sock] = expect_fds::<1>(INFO.id, inherited)?;
        let ty = getsockopt(&sock, sockopt::SockType)
            .map_err(|e| err("inspect", "the inherited socket", e))?;
        let udp = UdpSocket::from(sock);
        match (ty, udp.peer_addr()) {
            (SockType::Datagram, Ok(addr)) if addr.ip() == Ipv4Addr::LOCALHOST => {}
            _ => {
                return Err(BackendError::invalid(
                    INFO.id,
                    "the inherited socket",
                    "it is not a connected loopback UDP socket",
                ))
            }
        }
        Ok(Box::new(DatagramChannel::new(OwnedFd::from(udp))))
    }
}
