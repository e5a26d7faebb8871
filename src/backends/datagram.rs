//! The channel shared by message-preserving sockets (Unix datagram and seqpacket, UDP):
//! one send is one message, and a receive reports the message's true length (`MSG_TRUNC`)
//! so an oversized message is caught, not silently cut.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{getsockopt, recv, send, setsockopt, shutdown, sockopt, MsgFlags, Shutdown};
use nix::sys::time::TimeVal;

use super::{AbortHandle, Channel};
use crate::error::BackendError;

pub struct DatagramChannel {
    sock: OwnedFd,
}

impl DatagramChannel {
    pub fn new(sock: OwnedFd) -> Self {
        DatagramChannel { sock }
    }
}

fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

impl Channel for DatagramChannel {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let fd = self.sock.as_raw_fd();
        let n = retry(|| send(fd, msg, MsgFlags::MSG_NOSIGNAL))?;
        if n != msg.len() {
            return Err(io::Error::other(format!(
                "sent {n} of {} bytes as one datagram",
                msg.len()
            )));
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let fd = self.sock.as_raw_fd();
        match retry(|| recv(fd, buf, MsgFlags::MSG_TRUNC))? {
            // No mechanism sends empty messages: zero bytes means shut down or closed.
            0 => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the other side closed the channel",
            )),
            n => Ok(n),
        }
    }

    /// `shutdown` on our socket wakes a receive blocked on a peer that died.
    fn abort_handle(&self) -> Option<AbortHandle> {
        let dup = self.sock.try_clone().ok()?;
        Some(Box::new(move || {
            let _ = shutdown(dup.as_raw_fd(), Shutdown::Both);
        }))
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.sock.as_fd())
    }

    /// Two duplicates of the socket: one thread sends on one while another receives on the
    /// other (a socket takes both at once).
    fn split(&mut self) -> Option<io::Result<super::Split>> {
        let half = |s: &OwnedFd| -> io::Result<Box<dyn Channel + Send>> {
            Ok(Box::new(DatagramChannel::new(s.try_clone()?)))
        };
        Some((|| {
            Ok(super::Split {
                tx: half(&self.sock)?,
                rx: half(&self.sock)?,
            })
        })())
    }

    fn set_recv_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // Zero means no timeout to the kernel.
        let t = timeout.unwrap_or(Duration::ZERO);
        let tv = TimeVal::new(
            t.as_secs() as _,
            t.subsec_micros()
                .max(u32::from(t > Duration::ZERO && t.as_secs() == 0)) as _,
        );
        setsockopt(&self.sock, sockopt::ReceiveTimeout, &tv).map_err(io::Error::from)
    }
}

/// A fan-in server's way back to one client: datagrams sent to its address from the
/// server's one socket (a duplicate of it).
pub struct SendTo<A> {
    sock: OwnedFd,
    to: A,
}

impl<A: nix::sys::socket::SockaddrLike + Send> SendTo<A> {
    pub fn new(sock: OwnedFd, to: A) -> Self {
        SendTo { sock, to }
    }
}

impl<A: nix::sys::socket::SockaddrLike + Send> Channel for SendTo<A> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let fd = self.sock.as_raw_fd();
        let n = retry(|| nix::sys::socket::sendto(fd, msg, &self.to, MsgFlags::MSG_NOSIGNAL))?;
        if n != msg.len() {
            return Err(io::Error::other(format!(
                "sent {n} of {} bytes as one datagram",
                msg.len()
            )));
        }
        Ok(())
    }

    fn recv(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a reply path does not receive",
        ))
    }
}

/// Fan-in over one server socket: `server` is bound, each of `clients` is bound and
/// connected to it (and inherited by its client); replies go to each client's address.
pub fn shared_socket<A: nix::sys::socket::SockaddrLike + Send + 'static>(
    mechanism: &'static str,
    server: OwnedFd,
    clients: Vec<(OwnedFd, A)>,
) -> Result<super::fanin::FanInOffer, BackendError> {
    use super::fanin::{ClientOffer, FanInOffer, Hub, Inbound, PollHub};
    let mut channels: Vec<Box<dyn Channel>> = Vec::with_capacity(clients.len() + 1);
    let mut offers = Vec::with_capacity(clients.len());
    for (sock, addr) in clients {
        let dup = server
            .try_clone()
            .map_err(|e| BackendError::new(mechanism, "duplicate", "the server socket", e))?;
        channels.push(Box::new(SendTo::new(dup, addr)));
        offers.push(ClientOffer {
            spec: String::new(),
            inherit: vec![sock],
        });
    }
    let n = offers.len();
    channels.push(Box::new(DatagramChannel::new(server)));
    Ok(FanInOffer {
        clients: offers,
        connect: Box::new(move |_| {
            let inbound = vec![Inbound {
                channel: n,
                client: None,
            }];
            Ok(Box::new(PollHub::new(
                mechanism,
                channels,
                inbound,
                (0..n).collect(),
            )?) as Box<dyn Hub>)
        }),
    })
}

/// Sizes socket buffers for messages of `size` bytes. A datagram must fit the sender's
/// buffer (the kernel refuses `size > SO_SNDBUF - 32`), so the send buffer is raised
/// when needed; `rcvbuf` applies the user's receive buffer, if any.
pub fn size_buffers(
    mechanism: &'static str,
    sock: &impl AsFd,
    size: usize,
    rcvbuf: Option<usize>,
) -> Result<(), BackendError> {
    let err = |what: &str, e: Errno| BackendError::new(mechanism, "set", what.to_string(), e);
    let current = getsockopt(sock, sockopt::SndBuf).map_err(|e| err("SO_SNDBUF", e))?;
    if size + 64 > current {
        // The kernel doubles what it is given, for bookkeeping.
        setsockopt(sock, sockopt::SndBuf, &(size + 64)).map_err(|e| err("SO_SNDBUF", e))?;
    }
    if let Some(r) = rcvbuf {
        setsockopt(sock, sockopt::RcvBuf, &r).map_err(|e| err("SO_RCVBUF", e))?;
    }
    Ok(())
}

/// Why `size` cannot be sent as one datagram here, if the send buffer cannot grow enough.
pub fn sndbuf_limit(size: usize, wmem_max: Option<u64>) -> Option<String> {
    let max = wmem_max?;
    (size as u64 + 64 > max).then(|| {
        format!(
            "a datagram must fit the socket send buffer, which net.core.wmem_max = {max} bytes caps; raise it with `sysctl -w net.core.wmem_max={}`",
            size + 64
        )
    })
}
