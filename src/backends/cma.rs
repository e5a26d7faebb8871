//! `cma-read` and `cma-write`: cross-memory attach. Only a 16-byte note crosses a pipe; the
//! message itself moves in one copy between the two address spaces.
//!
//! - `cma-read`: the sender produces the message in one of its own buffers and sends its
//!   address; the receiver pulls it with `process_vm_readv(2)` straight into its buffer.
//! - `cma-write`: the receiver announces its buffers once; the sender pushes each message
//!   into the next one with `process_vm_writev(2)` and sends its index; the receiver checks
//!   it where it landed (`--shm-read`-style, in place) or copies it out.
//!
//! Either way the sender must not reuse a buffer the other side may still be copying, so
//! every received message is answered with a one-byte acknowledgement on a pipe of its
//! own, and a sender with all its buffers in flight waits for one. Both need ptrace access
//! to the peer (`PTRACE_MODE_ATTACH_REALCREDS`): under Yama's `ptrace_scope` 1 the parent
//! names its peer as its ptracer (`PR_SET_PTRACER`) for the channel's life; scopes 2 and 3
//! make the mechanism unsupported.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use nix::sys::stat::SFlag;

use super::lending::{buffers_ahead, closed, protocol, Primed};
use super::pipe::pipe_pair;
use super::{
    expect_fds, expect_file_type, expect_no_spec, Channel, ChannelParams, Family, Mechanism,
    MechanismInfo, Offer,
};
use crate::environment::Limits;
use crate::error::BackendError;
use crate::sys::fd::RawFile;
use crate::sys::zerocopy::{allow_ptracer, cma_read, cma_write, PageBuf};

/// Which side copies.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pull {
    /// The receiver reads from the sender (`process_vm_readv`).
    Read,
    /// The sender writes into the receiver (`process_vm_writev`).
    Write,
}

pub struct Cma {
    info: &'static MechanismInfo,
    pull: Pull,
}

const TRADE_OFF: &str = "one copy, from one address space straight into the other, at any size; needs ptrace rights over the peer and a note plus an acknowledgement per message";

/// What both variants say of themselves but their id and summary.
const fn info(id: &'static str, summary: &'static str) -> MechanismInfo {
    MechanismInfo {
        boundaries: true,
        kernel_copies: 1,
        trade_off: TRADE_OFF,
        in_all: true,
        ..MechanismInfo::new(id, Family::MessagePassing, summary)
    }
}

static READ_INFO: MechanismInfo = info(
    "cma-read",
    "cross-memory attach: a 16-byte note on a pipe names the sender's buffer, the receiver copies it with process_vm_readv",
);
static WRITE_INFO: MechanismInfo = info(
    "cma-write",
    "cross-memory attach: the sender copies into the receiver's buffer with process_vm_writev, then a 16-byte note names it",
);

pub static CMA_READ: Cma = Cma {
    info: &READ_INFO,
    pull: Pull::Read,
};

pub static CMA_WRITE: Cma = Cma {
    info: &WRITE_INFO,
    pull: Pull::Write,
};

/// The note announcing a message: a buffer (address for `cma-read`, index for
/// `cma-write`) and the length.
const NOTE: usize = 16;

/// What each side tells the other first: its pid and, for `cma-write`, the addresses of
/// the buffers it receives into.
struct Hello {
    pid: i32,
    addrs: Vec<u64>,
}

struct CmaChannel {
    pull: Pull,
    notes_rx: RawFile,
    notes_tx: RawFile,
    acks_rx: RawFile,
    acks_tx: RawFile,
    /// The other side's hello, read before the first message either way.
    peer: Option<Hello>,
    /// `cma-read`: the buffers messages are sent from; `cma-write`: received into.
    own: Vec<PageBuf>,
    /// `cma-write`'s sender: the buffer messages are produced in before the push (taken
    /// out while a push borrows the channel, and put back).
    staging: Option<PageBuf>,
    /// Which sending buffers hold a whole message (each is primed on first use); the
    /// staging buffer is buffer 0 of its own.
    primed: Primed,
    staging_primed: Primed,
    /// Messages sent, and acknowledgements read for them.
    sent: u64,
    acked: u64,
    /// Messages received (`cma-write`: the next index to expect).
    received: u64,
    /// The parent names its peer as its ptracer (Yama) and undoes it on drop.
    parent: bool,
}

impl CmaChannel {
    fn new(pull: Pull, fds: [OwnedFd; 4], size: usize, parent: bool) -> io::Result<CmaChannel> {
        let [notes_rx, notes_tx, acks_rx, acks_tx] = fds;
        let n = buffers_ahead(size);
        let own: Vec<PageBuf> = (0..n).map(|_| PageBuf::new(size)).collect();
        let mut hello = Vec::with_capacity(16 + 8 * n);
        hello.extend_from_slice(&u64::from(std::process::id()).to_le_bytes());
        let addrs: Vec<u64> = match pull {
            Pull::Write => own.iter().map(|b| b.addr() as u64).collect(),
            Pull::Read => Vec::new(),
        };
        hello.extend_from_slice(&(addrs.len() as u64).to_le_bytes());
        for a in &addrs {
            hello.extend_from_slice(&a.to_le_bytes());
        }
        let mut notes_tx = RawFile(notes_tx);
        // At most 16 + 8 * 16 bytes: the pipe takes it without a reader.
        notes_tx.write_all(&hello)?;
        Ok(CmaChannel {
            pull,
            notes_rx: RawFile(notes_rx),
            notes_tx,
            acks_rx: RawFile(acks_rx),
            acks_tx: RawFile(acks_tx),
            peer: None,
            staging: (pull == Pull::Write).then(|| PageBuf::new(size)),
            own,
            primed: Primed::default(),
            staging_primed: Primed::default(),
            sent: 0,
            acked: 0,
            received: 0,
            parent,
        })
    }

    /// Reads the other side's hello (once) and, on the parent, lets the peer attach.
    fn handshake(&mut self) -> io::Result<&Hello> {
        if self.peer.is_none() {
            let mut head = [0u8; 16];
            read_exact(&mut self.notes_rx, &mut head)?;
            let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
            let pid = i32::try_from(word(&head[..8]))
                .map_err(|_| protocol("the peer's hello names no valid pid"))?;
            let n = word(&head[8..]) as usize;
            if n > 64 || (self.pull == Pull::Write && n < 2) {
                return Err(protocol(
                    "the peer's hello announces an impossible buffer count",
                ));
            }
            let mut raw = vec![0u8; 8 * n];
            read_exact(&mut self.notes_rx, &mut raw)?;
            let addrs = raw.chunks_exact(8).map(word).collect();
            if self.parent {
                allow_ptracer(pid)?;
            }
            self.peer = Some(Hello { pid, addrs });
        }
        Ok(self.peer.as_ref().expect("set just above"))
    }

    /// Waits until one of the `count` buffers is free (acknowledged).
    fn wait_free(&mut self, count: usize) -> io::Result<()> {
        while self.sent - self.acked >= count as u64 {
            let mut acks = [0u8; 64];
            let n = self.acks_rx.read(&mut acks)?;
            if n == 0 {
                return Err(closed());
            }
            self.acked += n as u64;
        }
        Ok(())
    }

    fn note(&mut self, what: u64, len: usize) -> io::Result<()> {
        let mut note = [0u8; NOTE];
        note[..8].copy_from_slice(&what.to_le_bytes());
        note[8..].copy_from_slice(&(len as u64).to_le_bytes());
        self.notes_tx.write_all(&note)?;
        self.sent += 1;
        Ok(())
    }

    /// `cma-read`'s send: the next own buffer, produced by `fill`, then its address.
    fn send_read(&mut self, template: &[u8], fill: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        self.handshake()?;
        let count = self.own.len();
        self.wait_free(count)?;
        let k = (self.sent % count as u64) as usize;
        let buf = self.primed.lend(k, self.own[k].bytes_mut(), template)?;
        fill(buf);
        let addr = self.own[k].addr() as u64;
        self.note(addr, template.len())
    }

    /// `cma-write`'s send of `msg`: pushed into the receiver's next buffer, then its index.
    fn push(&mut self, msg: &[u8]) -> io::Result<()> {
        let hello = self.handshake()?;
        let (pid, count) = (hello.pid, hello.addrs.len());
        self.wait_free(count)?;
        let k = (self.sent % count as u64) as usize;
        let addr = self.peer.as_ref().map_or(0, |h| h.addrs[k]) as usize;
        cma_write(pid, msg, addr).map_err(|e| self.denied(e))?;
        self.note(k as u64, msg.len())
    }

    /// Reads the next note: (what, len).
    fn next_note(&mut self) -> io::Result<(u64, usize)> {
        self.handshake()?;
        let mut note = [0u8; NOTE];
        read_exact(&mut self.notes_rx, &mut note)?;
        let what = u64::from_le_bytes(note[..8].try_into().unwrap_or([0; 8]));
        let len = u64::from_le_bytes(note[8..].try_into().unwrap_or([0; 8])) as usize;
        Ok((what, len))
    }

    fn ack(&mut self) -> io::Result<()> {
        self.received += 1;
        self.acks_tx.write_all(&[1])
    }

    /// An error from cross-memory attach, with the setting that decides it when denied.
    fn denied(&self, e: io::Error) -> io::Error {
        if e.raw_os_error() == Some(libc::EPERM) {
            io::Error::new(
                e.kind(),
                format!(
                    "{e}; ptrace access to the peer is needed (see kernel.yama.ptrace_scope, or CAP_SYS_PTRACE)"
                ),
            )
        } else {
            e
        }
    }

    /// `cma-write`'s receive: the index of the buffer the message landed in.
    fn landed(&mut self, want: usize) -> io::Result<usize> {
        let (k, len) = self.next_note()?;
        if len != want {
            return Err(protocol("a note for a message of the wrong length"));
        }
        let k = k as usize;
        if k != (self.received % self.own.len() as u64) as usize {
            return Err(protocol("a note for a buffer out of turn"));
        }
        Ok(k)
    }
}

impl Drop for CmaChannel {
    fn drop(&mut self) {
        if self.parent && self.peer.is_some() {
            let _ = allow_ptracer(0);
        }
    }
}

fn read_exact(f: &mut RawFile, buf: &mut [u8]) -> io::Result<()> {
    f.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => closed(),
        _ => e,
    })
}

impl Channel for CmaChannel {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        match self.pull {
            Pull::Read => self.send_read(msg, &mut |b| b.copy_from_slice(msg)),
            Pull::Write => self.push(msg),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.pull {
            Pull::Read => {
                let (addr, len) = self.next_note()?;
                let pid = self.peer.as_ref().map_or(0, |h| h.pid);
                let n = len.min(buf.len());
                cma_read(pid, &mut buf[..n], addr as usize).map_err(|e| self.denied(e))?;
                self.ack()?;
                Ok(len)
            }
            Pull::Write => {
                let k = self.landed(buf.len())?;
                buf.copy_from_slice(self.own[k].bytes());
                self.ack()?;
                Ok(buf.len())
            }
        }
    }

    /// `cma-write` shows the message in the buffer it was pushed into; `cma-read` has
    /// nothing to show before its copy.
    fn recv_in_place(
        &mut self,
        buf: &mut [u8],
        inspect: &mut dyn FnMut(&[u8]),
    ) -> io::Result<usize> {
        if self.pull == Pull::Read {
            let n = self.recv(buf)?;
            inspect(&buf[..n.min(buf.len())]);
            return Ok(n);
        }
        let k = self.landed(buf.len())?;
        inspect(self.own[k].bytes());
        self.ack()?;
        Ok(buf.len())
    }

    fn lends(&self) -> bool {
        true
    }

    fn send_in_place(
        &mut self,
        template: &[u8],
        write: &mut dyn FnMut(&mut [u8]),
    ) -> io::Result<()> {
        match self.pull {
            Pull::Read => self.send_read(template, write),
            Pull::Write => {
                let mut staging = self
                    .staging
                    .take()
                    .ok_or_else(|| io::Error::other("cma-write's staging buffer is in use"))?;
                let r = self
                    .staging_primed
                    .lend(0, staging.bytes_mut(), template)
                    .and_then(|buf| {
                        write(buf);
                        self.push(buf)
                    });
                self.staging = Some(staging);
                r
            }
        }
    }
}

impl Mechanism for Cma {
    fn info(&self) -> &'static MechanismInfo {
        self.info
    }

    fn close_is_seen(&self) -> bool {
        true
    }

    fn setup_note(&self) -> Option<&'static str> {
        Some("a new channel is four pipe2(2) pipes (notes and acknowledgements, each way), the peer's ends passed over a Unix socket (SCM_RIGHTS), and each side's buffers with their addresses exchanged")
    }

    fn unsupported(&self, _params: &ChannelParams, _limits: &Limits) -> Option<String> {
        ptrace_refusal(read_ptrace_scope(), has_cap_sys_ptrace())
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        let id = self.info.id;
        let [notes_rx, notes_tx, peer_notes_rx, peer_notes_tx] = pipe_pair(id)?;
        let [acks_rx, acks_tx, peer_acks_rx, peer_acks_tx] = pipe_pair(id)?;
        let (pull, size) = (self.pull, params.size);
        Ok(Offer {
            spec: String::new(),
            inherit: vec![peer_notes_rx, peer_notes_tx, peer_acks_rx, peer_acks_tx],
            connect: Box::new(move |_| {
                channel(id, pull, [notes_rx, notes_tx, acks_rx, acks_tx], size, true)
            }),
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
        let fds = expect_fds::<4>(id, fds)?;
        for fd in &fds {
            expect_file_type(id, fd, SFlag::S_IFIFO)?;
        }
        channel(id, self.pull, fds, params.size, false)
    }
}

fn channel(
    id: &'static str,
    pull: Pull,
    fds: [OwnedFd; 4],
    size: usize,
    parent: bool,
) -> Result<Box<dyn Channel>, BackendError> {
    CmaChannel::new(pull, fds, size, parent)
        .map(|c| Box::new(c) as Box<dyn Channel>)
        .map_err(|e| BackendError::new(id, "announce", "its buffers to the peer", e))
}

/// Yama's `kernel.yama.ptrace_scope`, if Yama is in the kernel.
fn read_ptrace_scope() -> Option<u8> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether this process holds `CAP_SYS_PTRACE` (bit 19 of its effective capabilities).
fn has_cap_sys_ptrace() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 19) != 0)
}

/// Why cross-memory attach cannot work here, from Yama's scope and the capability.
fn ptrace_refusal(scope: Option<u8>, cap_sys_ptrace: bool) -> Option<String> {
    match scope {
        None | Some(0) | Some(1) => None,
        Some(2) if cap_sys_ptrace => None,
        Some(2) => Some(
            "kernel.yama.ptrace_scope is 2 (only CAP_SYS_PTRACE may attach): run as root, or `sysctl kernel.yama.ptrace_scope=1`".into(),
        ),
        Some(s) => Some(format!(
            "kernel.yama.ptrace_scope is {s} (no process may attach to another until reboot): cross-memory attach is refused"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two ends of one channel in this process (cross-memory attach to one's own pid is
    /// allowed), as the parent and its peer would hold them.
    fn pair(pull: Pull, size: usize) -> (CmaChannel, CmaChannel) {
        let [n_rx, n_tx, pn_rx, pn_tx] = pipe_pair("cma-test").expect("pipes");
        let [a_rx, a_tx, pa_rx, pa_tx] = pipe_pair("cma-test").expect("pipes");
        let a = CmaChannel::new(pull, [n_rx, n_tx, a_rx, a_tx], size, false);
        let b = CmaChannel::new(pull, [pn_rx, pn_tx, pa_rx, pa_tx], size, false);
        (a.expect("end a"), b.expect("end b"))
    }

    /// Streams more messages than either side has buffers, each produced in place, and
    /// checks every one where it arrives: a buffer reused before its acknowledgement
    /// would show up as a message with the wrong contents.
    fn stream(pull: Pull) {
        let size = 300_000;
        let count = 3 * buffers_ahead(size) as u32 + 5;
        let (mut a, mut b) = pair(pull, size);
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; size];
            for i in 0..count {
                let mut seen = None;
                let n = b
                    .recv_in_place(&mut buf, &mut |m| {
                        seen = Some(m.iter().all(|&x| x == i as u8))
                    })
                    .expect("receive");
                assert_eq!(n, size);
                assert_eq!(seen, Some(true), "message {i} arrived damaged");
            }
        });
        let template = vec![0u8; size];
        for i in 0..count {
            a.send_in_place(&template, &mut |m| m.fill(i as u8))
                .expect("send");
        }
        reader.join().expect("reader");
    }

    #[test]
    fn read_variant_delivers_every_message_intact() {
        stream(Pull::Read);
    }

    #[test]
    fn write_variant_delivers_every_message_intact() {
        stream(Pull::Write);
    }

    #[test]
    fn a_closed_peer_is_an_error_not_a_hang() {
        let (mut a, b) = pair(Pull::Read, 64);
        drop(b);
        let err = a.recv(&mut [0u8; 64]).expect_err("the peer is gone");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn yama_scopes_that_forbid_attaching_are_refused_by_name() {
        assert_eq!(ptrace_refusal(None, false), None);
        assert_eq!(ptrace_refusal(Some(1), false), None);
        assert_eq!(ptrace_refusal(Some(2), true), None);
        let two = ptrace_refusal(Some(2), false).expect("scope 2 refuses");
        assert!(two.contains("kernel.yama.ptrace_scope"), "{two}");
        let three = ptrace_refusal(Some(3), true).expect("scope 3 refuses");
        assert!(three.contains("kernel.yama.ptrace_scope is 3"), "{three}");
    }
}
