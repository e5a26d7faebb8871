//! `memfd-pass` and `memfd-fresh`: the message is written into a memfd and only its
//! descriptor crosses a Unix socket (`SCM_RIGHTS`); the receiver maps it read-only, checks
//! the message where it lies (or copies it out), unmaps it and closes the descriptor.
//!
//! - `memfd-pass`: each side keeps a small pool of memfds, mapped once, sized and sealed
//!   against shrinking and growing. A receiver that is done with one sends a release back,
//!   and the sender rewrites it only after that.
//! - `memfd-fresh`: a new memfd per message, written, unmapped and sealed against writes
//!   (`F_SEAL_WRITE`), so the receiver knows nobody can change it; the price is creating,
//!   faulting in (zeroed pages) and sealing a file per message.
//!
//! The receiver checks the seals and the file's size before it maps, as a receiver that
//! does not trust its sender must (a shrunk file would fault on access).
//!
//! Each direction has its own sequenced-packet socket pair: messages travel one way on it
//! and releases the other, so neither side ever has to set aside a record of the wrong kind.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::SealFlag;

use super::lending::{buffers_ahead, closed, protocol, Primed};
use super::{
    expect_fds, expect_no_spec, Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer,
};
use crate::error::BackendError;
use crate::sys::courier::Courier;
use crate::sys::zerocopy::{add_seals, file_len, has_seals, sealable_memfd, View};

pub struct MemfdPass {
    info: &'static MechanismInfo,
    fresh: bool,
}

/// What both variants say of themselves but their id, summary and trade-off.
const fn info(id: &'static str, summary: &'static str, trade_off: &'static str) -> MechanismInfo {
    MechanismInfo {
        boundaries: true,
        kernel_copies: 0,
        fd_passing: true,
        trade_off,
        in_all: true,
        ..MechanismInfo::new(id, Family::SharedMemory, summary)
    }
}

static PASS_INFO: MechanismInfo = info(
    "memfd-pass",
    "the message is written into a pooled memfd whose descriptor crosses a Unix socket (SCM_RIGHTS); the receiver maps and checks it",
    "no copy at any size, and the buffer can be handed on to a third process; each message costs a descriptor's passing, a map and an unmap on the receiver, and a release back",
);
static FRESH_INFO: MechanismInfo = info(
    "memfd-fresh",
    "a new memfd per message, written, sealed against writes (F_SEAL_WRITE) and passed over a Unix socket (SCM_RIGHTS)",
    "the receiver holds an immutable message it can keep as long as it likes; every message pays for a new file, zeroed pages and a full write",
);

pub static MEMFD_PASS: MemfdPass = MemfdPass {
    info: &PASS_INFO,
    fresh: false,
};

pub static MEMFD_FRESH: MemfdPass = MemfdPass {
    info: &FRESH_INFO,
    fresh: true,
};

/// A message record: the pool index (0 for a fresh memfd) and the length.
const RECORD: usize = 16;

struct Pooled {
    fd: OwnedFd,
    view: View,
}

struct MemfdChannel {
    fresh: bool,
    size: usize,
    /// Messages go out here and releases of them come back.
    out: Courier,
    /// Messages come in here and releases go back.
    inbox: Courier,
    pool: Vec<Pooled>,
    primed: Primed,
    sent: u64,
    released: u64,
    /// Received descriptors (one per record), reused so a receive does not allocate.
    fds: Vec<OwnedFd>,
}

impl MemfdChannel {
    fn new(fresh: bool, out: Courier, inbox: Courier, size: usize) -> io::Result<MemfdChannel> {
        let n = if fresh { 0 } else { buffers_ahead(size) };
        let pool = (0..n)
            .map(|_| {
                let fd = sealable_memfd(size)?;
                let view = View::map(&fd, size, true)?;
                Ok(Pooled { fd, view })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(MemfdChannel {
            fresh,
            size,
            out,
            inbox,
            pool,
            primed: Primed::default(),
            sent: 0,
            released: 0,
            fds: Vec::with_capacity(crate::sys::courier::MAX_FDS),
        })
    }

    fn record(k: u64, len: usize) -> [u8; RECORD] {
        let mut r = [0u8; RECORD];
        r[..8].copy_from_slice(&k.to_le_bytes());
        r[8..].copy_from_slice(&(len as u64).to_le_bytes());
        r
    }

    /// Reads releases until a pooled memfd is free.
    fn wait_free(&mut self) -> io::Result<()> {
        while self.sent - self.released >= self.pool.len() as u64 {
            let mut r = [0u8; 8];
            match self.out.recv(&mut r, &mut self.fds)? {
                0 => return Err(closed()),
                8 => self.released += 1,
                n => return Err(protocol(format!("a release of {n} bytes"))),
            }
        }
        Ok(())
    }

    fn send_pooled(&mut self, template: &[u8], write: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        self.check_len(template.len())?;
        self.wait_free()?;
        let k = (self.sent % self.pool.len() as u64) as usize;
        let slot = &mut self.pool[k];
        let buf = slot
            .view
            .bytes_mut()
            .ok_or_else(|| protocol("a read-only pool buffer"))?;
        write(self.primed.lend(k, buf, template)?);
        self.out
            .send(&Self::record(k as u64, template.len()), &[slot.fd.as_fd()])?;
        self.sent += 1;
        Ok(())
    }

    fn send_fresh(&mut self, template: &[u8], write: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        self.check_len(template.len())?;
        let fd = sealable_memfd(self.size)?;
        {
            let mut view = View::map(&fd, self.size, true)?;
            let buf = view
                .bytes_mut()
                .ok_or_else(|| protocol("a read-only fresh memfd"))?;
            buf.copy_from_slice(template);
            write(buf);
        }
        // Sealing against writes needs every writable mapping gone (the view is dropped).
        add_seals(&fd, SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_SEAL)?;
        self.out
            .send(&Self::record(0, template.len()), &[fd.as_fd()])?;
        self.sent += 1;
        Ok(())
    }

    fn check_len(&self, len: usize) -> io::Result<()> {
        if len != self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a message of {len} bytes on a channel made for {}",
                    self.size
                ),
            ));
        }
        Ok(())
    }

    /// Receives one record and maps its memfd read-only after checking its seals and size.
    fn take(&mut self) -> io::Result<(View, usize)> {
        let mut r = [0u8; RECORD];
        self.fds.clear();
        let n = self.inbox.recv(&mut r, &mut self.fds)?;
        if n == 0 {
            return Err(closed());
        }
        let fd = match (n, self.fds.pop()) {
            (RECORD, Some(fd)) if self.fds.is_empty() => fd,
            _ => return Err(protocol("a record without exactly one memfd")),
        };
        let len = u64::from_le_bytes(r[8..].try_into().unwrap_or([0; 8])) as usize;
        let mut want = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW;
        if self.fresh {
            want |= SealFlag::F_SEAL_WRITE;
        }
        if !has_seals(&fd, want)? {
            return Err(protocol(format!("a memfd without the seals {want:?}")));
        }
        if file_len(&fd)? < len || len == 0 {
            return Err(protocol(format!(
                "a memfd shorter than the {len} bytes announced"
            )));
        }
        let view = View::map(&fd, len, false)?;
        Ok((view, len))
    }

    /// Done with a received message: unmapped (the view dropped), and a pooled one released.
    fn done(&mut self, view: View) -> io::Result<()> {
        drop(view);
        if !self.fresh {
            self.inbox.send(&[1u8; 8], &[] as &[OwnedFd])?;
        }
        Ok(())
    }

    fn send_with(&mut self, template: &[u8], write: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        match self.fresh {
            true => self.send_fresh(template, write),
            false => self.send_pooled(template, write),
        }
    }
}

impl Channel for MemfdChannel {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.send_with(msg, &mut |b| b.copy_from_slice(msg))
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (view, len) = self.take()?;
        let n = len.min(buf.len());
        buf[..n].copy_from_slice(&view.bytes()[..n]);
        self.done(view)?;
        Ok(len)
    }

    fn recv_in_place(
        &mut self,
        _buf: &mut [u8],
        inspect: &mut dyn FnMut(&[u8]),
    ) -> io::Result<usize> {
        let (view, len) = self.take()?;
        inspect(view.bytes());
        self.done(view)?;
        Ok(len)
    }

    fn lends(&self) -> bool {
        true
    }

    fn send_in_place(
        &mut self,
        template: &[u8],
        write: &mut dyn FnMut(&mut [u8]),
    ) -> io::Result<()> {
        self.send_with(template, write)
    }
}

impl MemfdPass {
    fn channel(
        &self,
        out: Courier,
        inbox: Courier,
        size: usize,
    ) -> Result<Box<dyn Channel>, BackendError> {
        MemfdChannel::new(self.fresh, out, inbox, size)
            .map(|c| Box::new(c) as Box<dyn Channel>)
            .map_err(|e| {
                BackendError::new(self.info.id, "create", "its pool of memfds", e)
                    .hint("raise the open-file limit with ulimit -n")
            })
    }
}

impl Mechanism for MemfdPass {
    fn info(&self) -> &'static MechanismInfo {
        self.info
    }

    /// None with a pool (the message is produced in the memfd and checked in its mapping);
    /// one for a fresh memfd, whose new pages are written whole.
    fn copies(&self, _params: &ChannelParams) -> u8 {
        u8::from(self.fresh)
    }

    fn close_is_seen(&self) -> bool {
        true
    }

    fn setup_note(&self) -> Option<&'static str> {
        Some(match self.fresh {
            false => "a new channel is two socketpair(2)s, the peer's ends passed over a Unix socket (SCM_RIGHTS), and a pool of sealed memfds on each side",
            true => "a new channel is two socketpair(2)s, the peer's ends passed over a Unix socket (SCM_RIGHTS); memfds are made per message",
        })
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        let id = self.info.id;
        let pair =
            || Courier::pair().map_err(|e| BackendError::new(id, "create", "a socket pair", e));
        // Parent to peer: the parent's `out`, the peer's `inbox`; and the reverse.
        let (out, peer_inbox) = pair()?;
        let (inbox, peer_out) = pair()?;
        let size = params.size;
        let me: &'static MemfdPass = if self.fresh {
            &MEMFD_FRESH
        } else {
            &MEMFD_PASS
        };
        Ok(Offer {
            spec: String::new(),
            inherit: vec![peer_out, peer_inbox],
            connect: Box::new(move |_| me.channel(out, inbox, size)),
        })
    }

    fn join(
        &self,
        spec: &str,
        fds: Vec<OwnedFd>,
        params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        let id = self.info.id;
        expect_no_spec(id, spec)?;
        let [out, inbox] = expect_fds::<2>(id, fds)?;
        let courier = |fd| {
            Courier::from_inherited(fd)
                .map_err(|e| BackendError::new(id, "open", "its inherited socket", e))
        };
        self.channel(courier(out)?, courier(inbox)?, params.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(fresh: bool, size: usize) -> (MemfdChannel, MemfdChannel) {
        let (a_out, b_in) = Courier::pair().expect("socket pair");
        let (b_out, a_in) = Courier::pair().expect("socket pair");
        let b_in = Courier::from_inherited(b_in).expect("courier");
        let a_in = Courier::from_inherited(a_in).expect("courier");
        let a = MemfdChannel::new(fresh, a_out, a_in, size).expect("end a");
        let b = MemfdChannel::new(fresh, b_out, b_in, size).expect("end b");
        (a, b)
    }

    /// Held by every test here that makes message memfds, so that one test's count of
    /// them sees only its own.
    static MEMFDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn lock() -> std::sync::MutexGuard<'static, ()> {
        MEMFDS.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This process's open message memfds (`memfd:ipcbench-msg`).
    fn open_memfds() -> usize {
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return 0;
        };
        dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.to_string_lossy().contains("memfd:ipcbench-msg"))
            .count()
    }

    /// More messages than the pool holds, each checked where it lies; a memfd rewritten
    /// before its release would show as a damaged message.
    fn stream(fresh: bool) {
        let _one = lock();
        let size = 200_000;
        let count = 3 * buffers_ahead(size) as u32 + 5;
        let (mut a, mut b) = pair(fresh, size);
        let reader = std::thread::spawn(move || {
            for i in 0..count {
                let mut ok = None;
                let n = b
                    .recv_in_place(&mut [], &mut |m| ok = Some(m.iter().all(|&x| x == i as u8)))
                    .expect("receive");
                assert_eq!(n, size);
                assert_eq!(ok, Some(true), "message {i} arrived damaged");
            }
            b
        });
        let template = vec![0u8; size];
        for i in 0..count {
            a.send_in_place(&template, &mut |m| m.fill(i as u8))
                .expect("send");
        }
        drop(reader.join().expect("reader"));
    }

    #[test]
    fn pooled_memfds_carry_every_message_intact() {
        stream(false);
    }

    #[test]
    fn fresh_memfds_carry_every_message_intact() {
        stream(true);
    }

    #[test]
    fn a_fresh_memfd_arrives_sealed_against_writes() {
        let _one = lock();
        let (mut a, b) = pair(true, 4096);
        a.send(&[7u8; 4096]).expect("send");
        let mut fds = Vec::new();
        let mut r = [0u8; RECORD];
        assert_eq!(b.inbox.recv(&mut r, &mut fds).expect("record"), RECORD);
        let fd = fds.pop().expect("one memfd");
        assert!(has_seals(&fd, SealFlag::F_SEAL_WRITE).expect("seals"));
        assert!(
            View::map(&fd, 4096, true).is_err(),
            "a writable map of a sealed memfd"
        );
    }

    #[test]
    fn a_memfd_without_its_seals_is_refused() {
        let _one = lock();
        let (a, mut b) = pair(true, 4096);
        // A plain memfd that its sender could still shrink or write.
        let plain = crate::sys::shm::memfd(4096).expect("memfd");
        a.out
            .send(&MemfdChannel::record(0, 4096), &[plain.as_fd()])
            .expect("send");
        let err = b.recv(&mut [0u8; 4096]).expect_err("unsealed");
        assert!(err.to_string().contains("without the seals"), "{err}");
    }

    #[test]
    fn no_memfd_stays_open_once_received_or_both_ends_are_gone() {
        let _one = lock();
        let before = open_memfds();
        {
            let (mut a, mut b) = pair(false, 8192);
            let pools = open_memfds();
            assert_eq!(pools, before + 2 * buffers_ahead(8192), "two pools");
            let template = vec![0u8; 8192];
            for i in 0..40u8 {
                a.send_in_place(&template, &mut |m| m.fill(i))
                    .expect("send");
                b.recv(&mut [0u8; 8192]).expect("receive");
                // The receiver closed the descriptor it was passed.
                assert_eq!(open_memfds(), pools);
            }
            // One in flight: sent, not received, then both ends dropped.
            a.send_in_place(&template, &mut |m| m.fill(1))
                .expect("send");
        }
        assert_eq!(open_memfds(), before);
    }
}
