//! The courier: a Unix `SOCK_SEQPACKET` socket pair between the parent and its peer, set up
//! when the peer starts, that carries whole records with descriptors attached
//! (`SCM_RIGHTS`) while the session runs. The `setup` workload hands a fresh channel's
//! description and descriptors over it every iteration, and the peer answers with its
//! timestamps. The control pipes (stdin/stdout) cannot carry descriptors, hence this.
//!
//! Either side's death reads as a hang-up: `recv` returns 0 and `hung_up` is true.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// The most descriptors one record carries (as many as a peer inherits at start).
pub const MAX_FDS: usize = super::fd::MAX_INHERITED_FDS;
/// The largest record (a channel description is at most 4 KiB).
pub const MAX_RECORD: usize = 8192;

#[derive(Debug)]
pub struct Courier(OwnedFd);

impl Courier {
    /// A connected pair: this side's courier and the descriptor the peer inherits.
    pub fn pair() -> io::Result<(Courier, OwnedFd)> {
        let (mine, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((Courier(mine), theirs))
    }

    /// The peer's side, from the descriptor it inherited; refuses anything but a
    /// sequenced-packet socket.
    pub fn from_inherited(fd: OwnedFd) -> io::Result<Courier> {
        let ty = nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::SockType)?;
        if ty != SockType::SeqPacket {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the courier descriptor is not a sequenced-packet socket",
            ));
        }
        Ok(Courier(fd))
    }

    /// Sends one record with `fds` attached (at most `MAX_FDS`).
    pub fn send(&self, record: &[u8], fds: &[impl AsFd]) -> io::Result<()> {
        if fds.len() > MAX_FDS || record.len() > MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a courier record with too many descriptors or bytes",
            ));
        }
        let mut raw = [-1 as RawFd; MAX_FDS];
        for (r, f) in raw.iter_mut().zip(fds) {
            *r = f.as_fd().as_raw_fd();
        }
        let raw = &raw[..fds.len()];
        let cmsgs = [ControlMessage::ScmRights(raw)];
        let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsgs };
        let iov = [IoSlice::new(record)];
        sendmsg::<()>(
            self.0.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        Ok(())
    }

    /// Receives one record into `buf` and the descriptors that came with it into `fds`;
    /// returns the record's length, 0 when the other side is gone.
    pub fn recv(&self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = loop {
            match recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r?,
            }
        };
        let (bytes, flags) = (msg.bytes, msg.flags);
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for fd in raw {
                    fds.push(own(fd));
                }
            }
        }
        if flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC) {
            fds.clear();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a courier record (or its descriptors) did not fit and was cut",
            ));
        }
        Ok(bytes)
    }

    /// Whether the other side has closed its end (it exited or was killed).
    pub fn hung_up(&self) -> bool {
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::empty())];
        matches!(poll(&mut fds, 0u16), Ok(n) if n > 0) && hangup(&fds[0])
    }

    /// Waits until the other side closes its end (true) or `stop` turns readable (false).
    pub fn wait_hung_up_or(&self, stop: BorrowedFd<'_>) -> bool {
        loop {
            let mut fds = [
                PollFd::new(self.0.as_fd(), PollFlags::empty()),
                PollFd::new(stop, PollFlags::POLLIN),
            ];
            match poll(&mut fds, nix::poll::PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return false,
                Ok(_) => {}
            }
            if hangup(&fds[0]) {
                return true;
            }
            if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                return false;
            }
        }
    }
}

/// Whether a polled courier end reported the other side gone.
fn hangup(fd: &PollFd<'_>) -> bool {
    fd.revents()
        .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// Takes ownership of a descriptor the kernel just installed in this process.
fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was created for this process by recvmsg's SCM_RIGHTS (close-on-exec)
    // a moment ago; nothing else refers to it, so this is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_record_and_its_descriptors_arrive_whole_and_a_hang_up_is_seen() {
        let (a, b) = Courier::pair().unwrap();
        let b = Courier::from_inherited(b).unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        a.send(b"spec", &[r.as_fd(), w.as_fd()]).unwrap();
        drop((r, w));
        let mut buf = [0u8; 64];
        let mut fds = Vec::new();
        let n = b.recv(&mut buf, &mut fds).unwrap();
        assert_eq!(&buf[..n], b"spec");
        assert_eq!(fds.len(), 2);
        // The passed pipe still works end to end.
        let mut w = std::fs::File::from(fds.pop().unwrap());
        let mut r = std::fs::File::from(fds.pop().unwrap());
        w.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        r.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
        assert!(!b.hung_up());
        drop(a);
        assert!(b.hung_up());
        assert_eq!(b.recv(&mut buf, &mut fds).unwrap(), 0);
    }

    #[test]
    fn a_record_too_large_for_the_buffer_is_refused() {
        let (a, b) = Courier::pair().unwrap();
        let b = Courier::from_inherited(b).unwrap();
        a.send(&[7u8; 100], &[] as &[OwnedFd]).unwrap();
        let mut small = [0u8; 10];
        let err = b.recv(&mut small, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("did not fit"), "{err}");
    }

    #[test]
    fn only_a_seqpacket_socket_is_taken_as_a_courier() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        assert!(Courier::from_inherited(r).is_err());
    }
}
