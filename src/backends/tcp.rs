//! `tcp`: loopback TCP on 127.0.0.1 with an OS-chosen port and `TCP_NODELAY`.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::stream::StreamChannel;
use super::{Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer};
use crate::error::BackendError;

pub struct Tcp;

static INFO: MechanismInfo = MechanismInfo {
    id: "tcp",
    family: Family::Sockets,
    summary: "loopback TCP (127.0.0.1, OS-chosen port, TCP_NODELAY on)",
    boundaries: false,
    kernel_copies: 2,
    lossy: false,
    named: false,
    cross_host: true,
    built_on: None,
    fan_in: true,
    fd_passing: false,
    portable: true,
    trade_off: "works across hosts; on loopback it pays for the whole TCP stack",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

fn err(
    id: &'static str,
    action: &'static str,
    what: impl Into<String>,
    e: io::Error,
) -> BackendError {
    BackendError::new(id, action, what, e)
}

/// Turns a connected stream (TCP_NODELAY set) into mechanism `id`'s channel.
pub(crate) type Wrap = fn(&'static str, TcpStream, &str) -> Result<Box<dyn Channel>, BackendError>;

/// The blocking channel: a framed stream over the socket and a duplicate of it.
fn blocking(
    id: &'static str,
    stream: TcpStream,
    what: &str,
) -> Result<Box<dyn Channel>, BackendError> {
    let rx = stream
        .try_clone()
        .map_err(|e| err(id, "duplicate", what, e))?;
    Ok(Box::new(
        StreamChannel::new(id, rx, stream)
            .with_dup(|r, w| Ok((r.try_clone()?, w.try_clone()?)))
            .with_poll(|r| r.as_fd()),
    ))
}

fn nodelay(id: &'static str, stream: &TcpStream, what: &str) -> Result<(), BackendError> {
    stream
        .set_nodelay(true)
        .map_err(|e| err(id, "set TCP_NODELAY on", what, e))
}

/// The parent's side for mechanism `id`: a loopback listener on an ephemeral port; the
/// connection that presents the token becomes a channel through `wrap`.
pub(crate) fn offer_as(
    id: &'static str,
    wrap: impl FnOnce(&'static str, TcpStream, &str) -> Result<Box<dyn Channel>, BackendError> + 'static,
) -> Result<Offer, BackendError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| err(id, "listen on", "127.0.0.1", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| err(id, "inspect", "the listener", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| err(id, "configure", addr.to_string(), e))?;
    let token = crate::sys::random_u64().map_err(|e| err(id, "read", "/dev/urandom", e))?;
    Ok(Offer {
        spec: format!("{}:{token:016x}", addr.port()),
        inherit: Vec::new(),
        connect: Box::new(move |rv| loop {
            rv.wait_readable(listener.as_fd())
                .map_err(|e| err(id, "accept on", addr.to_string(), e))?;
            let (mut stream, from) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(err(id, "accept on", addr.to_string(), e)),
            };
            stream
                .set_nonblocking(false)
                .map_err(|e| err(id, "configure", from.to_string(), e))?;
            if matches!(read_token(&mut stream, rv.deadline), Ok(t) if t == token) {
                let what = from.to_string();
                nodelay(id, &stream, &what)?;
                return wrap(id, stream, &what);
            }
        }),
    })
}

/// The peer's side for mechanism `id`: connects and presents the token.
pub(crate) fn join_as(
    id: &'static str,
    spec: &str,
    wrap: Wrap,
) -> Result<Box<dyn Channel>, BackendError> {
    let (port, token) = parse_spec(spec)
        .ok_or_else(|| BackendError::invalid(id, spec, "expected PORT:TOKEN (16 hex digits)"))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let what = addr.to_string();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| err(id, "connect to", what.clone(), e))?;
    stream
        .write_all(&token.to_le_bytes())
        .map_err(|e| err(id, "send the token to", what.clone(), e))?;
    nodelay(id, &stream, &what)?;
    wrap(id, stream, &what)
}

/// Reads the 8-byte token a connecting peer must present: any other local process that
/// connects to the port first is turned away.
fn read_token(stream: &mut TcpStream, deadline: Instant) -> io::Result<u64> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    stream.set_read_timeout(Some(left))?;
    let mut b = [0u8; 8];
    stream.read_exact(&mut b)?;
    stream.set_read_timeout(None)?;
    Ok(u64::from_le_bytes(b))
}

/// A TCP channel's two ports (this side's, the other side's), found through its
/// descriptor; `None` for a channel that is not a TCP socket. The `setup` workload counts
/// the TIME_WAIT sockets a case leaves by these.
pub fn channel_ports(chan: &dyn Channel) -> Option<(u16, u16)> {
    use nix::sys::socket::{getpeername, getsockname, SockaddrIn};
    let sock = chan.poll_fd()?;
    let ty = nix::sys::socket::getsockopt(&sock, nix::sys::socket::sockopt::SockType).ok()?;
    if ty != nix::sys::socket::SockType::Stream {
        return None;
    }
    let fd = sock.as_raw_fd();
    let local = getsockname::<SockaddrIn>(fd).ok()?;
    let remote = getpeername::<SockaddrIn>(fd).ok()?;
    Some((local.port(), remote.port()))
}

/// Makes closing a TCP channel abortive: `SO_LINGER` on with a zero timeout, so `close`
/// sends a reset and leaves no TIME_WAIT behind. `Ok(false)` for a channel that is not TCP.
pub fn abortive_close(chan: &dyn Channel) -> io::Result<bool> {
    if channel_ports(chan).is_none() {
        return Ok(false);
    }
    let Some(fd) = chan.poll_fd() else {
        return Ok(false);
    };
    let off = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::Linger, &off)?;
    Ok(true)
}

/// TCP sockets in TIME_WAIT on this host (IPv4 and IPv6 tables) of the connections
/// `conns` (each a pair of ports, either way round), from /proc/net/tcp.
pub fn time_wait(conns: &[(u16, u16)]) -> io::Result<u64> {
    count_time_wait(either_way(conns))
}

/// Whether a row's (local, remote) ports are one of `conns`, seen from either end.
fn either_way(conns: &[(u16, u16)]) -> impl Fn((u16, u16)) -> bool + '_ {
    |(a, b)| conns.contains(&(a, b)) || conns.contains(&(b, a))
}

/// Every TCP socket in TIME_WAIT on this host, whoever made it: binding a listener to an
/// ephemeral port slows as these pile up (they hold their ports for 60 s).
pub fn time_wait_all() -> io::Result<u64> {
    count_time_wait(|_| true)
}

/// TIME_WAIT sockets in both of the host's tables whose (local, remote) ports `keep` takes.
fn count_time_wait(keep: impl Fn((u16, u16)) -> bool) -> io::Result<u64> {
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(table) {
            Ok(text) => n += time_wait_in(&text, &keep),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The state column's value for TIME_WAIT (include/net/tcp_states.h).
const TIME_WAIT: &str = "06";

/// Counts a /proc/net/tcp table's TIME_WAIT rows whose (local, remote) ports `keep` takes.
fn time_wait_in(table: &str, keep: &impl Fn((u16, u16)) -> bool) -> u64 {
    let port = |addr: &str| {
        addr.rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() <= 3 || f[3] != TIME_WAIT {
                return false;
            }
            let (Some(a), Some(b)) = (port(f[1]), port(f[2])) else {
                return false;
            };
            keep((a, b))
        })
        .count() as u64
}

fn parse_spec(spec: &str) -> Option<(u16, u64)> {
    let (port, token) = spec.split_once(':')?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    if token.len() != 16 {
        return None;
    }
    Some((port, u64::from_str_radix(token, 16).ok()?))
}

impl Mechanism for Tcp {
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

#[cfg(test)]
mod tests {
    use super::{either_way, parse_spec, time_wait_in};

    #[test]
    fn time_wait_rows_are_counted_by_port_and_state() {
        // Columns as the kernel prints them: sl, local, remote, state, ...
        let table = "  sl  local_address rem_address   st tx_queue\n\
   0: 0100007F:1F90 0100007F:C350 06 00000000:00000000\n\
   1: 0100007F:C351 0100007F:1F90 06 00000000:00000000\n\
   2: 0100007F:1F90 0100007F:C352 01 00000000:00000000\n\
   3: 0100007F:0050 0100007F:C353 06 00000000:00000000\n";
        assert_eq!(time_wait_in(table, &either_way(&[(0x1F90, 0xC350)])), 1);
        assert_eq!(
            time_wait_in(table, &either_way(&[(0x1F90, 0xC351), (0xC350, 0x1F90)])),
            2
        );
        assert_eq!(
            time_wait_in(table, &either_way(&[(0x1F90, 0xC352)])),
            0,
            "not in TIME_WAIT"
        );
        assert_eq!(time_wait_in(table, &either_way(&[(0x0050, 0x1F90)])), 0);
        // Every TIME_WAIT row, whoever's (the host's count).
        assert_eq!(time_wait_in(table, &|_| true), 3);
    }

    #[test]
    fn spec_is_parsed_strictly() {
        assert_eq!(parse_spec("8080:00000000000000ff"), Some((8080, 255)));
        for bad in [
            "",
            "8080",
            "0:00000000000000ff",
            "70000:00000000000000ff",
            "1:ff",
            "1:zz00000000000000",
        ] {
            assert_eq!(parse_spec(bad), None, "{bad}");
        }
    }
}
