//! `posix-mq`: two POSIX message queues (`mq_open`), one per direction, with unique names,
//! created exclusively with mode 0600 and unlinked as soon as both processes hold them.
//! `/dev/mqueue` need not be mounted.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::mqueue::{mq_getattr, mq_open, mq_timedreceive, MQ_OFlag, MqAttr};
use nix::sys::stat::Mode;
use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, ClockId};

use super::fanin::{ClientOffer, FanInOffer, Hub, Inbound, PollHub};
use super::{AbortHandle, Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer};
use crate::environment::Limits;
use crate::error::BackendError;
use crate::sys::fs::PREFIX;
use crate::sys::mq::OwnedMq;

pub struct PosixMq;

static INFO: MechanismInfo = MechanismInfo {
    id: "posix-mq",
    family: Family::MessagePassing,
    summary: "POSIX message queues (mq_open/mq_send/mq_receive), one per direction",
    boundaries: true,
    kernel_copies: 2,
    lossy: false,
    named: true,
    cross_host: false,
    built_on: None,
    fan_in: true,
    fd_passing: false,
    portable: false,
    trade_off: "boundaries and priorities; messages capped by fs.mqueue.msgsize_max (8 KiB by default), 10 per queue; not on macOS",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

/// Queue depth used when `fs.mqueue.msg_max` allows it (kept small: it is charged to
/// RLIMIT_MSGQUEUE at full message size).
const DEPTH: u64 = 10;

fn depth(limits: &Limits) -> u64 {
    limits.mq_msg_max.unwrap_or(DEPTH).clamp(1, DEPTH)
}

/// Bytes the kernel charges to RLIMIT_MSGQUEUE for one queue: the messages plus about
/// 100 bytes of bookkeeping each (struct msg_msg and the priority tree).
fn charge(depth: u64, size: usize) -> u64 {
    depth * (size as u64 + 100)
}

struct MqChannel {
    tx: OwnedMq,
    rx: OwnedMq,
    aborted: Arc<AtomicBool>,
    /// Parent only: the names, unlinked once the peer has opened both queues.
    names: Option<Vec<String>>,
}

/// A deadline already past: a timed call with it never blocks (the abort's wake-ups).
fn now() -> io::Result<TimeSpec> {
    Ok(clock_gettime(ClockId::CLOCK_REALTIME)?)
}

/// `mq_send`, untimed: a blocked send does not notice the peer's death by itself, so the
/// abort handle frees a slot for it (`wake`), and every call first checks the flag.
fn send_on(q: &OwnedMq, aborted: &AtomicBool, msg: &[u8]) -> io::Result<()> {
    loop {
        if aborted.load(Ordering::Acquire) {
            return Err(gone());
        }
        match crate::sys::mq::send(q.get(), msg, 0) {
            Err(Errno::EINTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// `mq_receive`, untimed, likewise: the abort handle puts an empty message in the queue
/// (no message of a run is empty), which ends a blocked receive.
fn recv_on(q: &OwnedMq, aborted: &AtomicBool, buf: &mut [u8]) -> io::Result<usize> {
    let mut prio = 0;
    loop {
        if aborted.load(Ordering::Acquire) {
            return Err(gone());
        }
        match crate::sys::mq::receive(q.get(), buf, &mut prio) {
            Ok(0) if aborted.load(Ordering::Acquire) => return Err(gone()),
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => continue,
            Err(Errno::EMSGSIZE) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the queue's message size does not match the run's",
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Ends the parent's blocked calls once the peer is gone (after the flag is set): an empty
/// message into the queue it receives from, and a slot freed in the queue it sends to.
/// Neither call blocks (their deadline has passed); a full or empty queue needs neither.
fn wake(rx: &OwnedMq, tx: &OwnedMq) {
    let Ok(past) = now() else { return };
    let _ = crate::sys::mq::timed_send(rx.get(), &[], &past);
    // The receive buffer must hold the queue's largest message (else EMSGSIZE).
    if let Ok(attr) = mq_getattr(tx.get()) {
        let mut buf = vec![0u8; attr.msgsize().max(1) as usize];
        let _ = mq_timedreceive(tx.get(), &mut buf, &mut 0, &past);
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the peer is gone")
}

/// One direction of a split queue pair.
struct MqHalf {
    q: OwnedMq,
    aborted: Arc<AtomicBool>,
}

impl Channel for MqHalf {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        send_on(&self.q, &self.aborted, msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_on(&self.q, &self.aborted, buf)
    }
}

impl Channel for MqChannel {
    // Untimed calls, as a program would make them; the abort handle ends a blocked one.
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        send_on(&self.tx, &self.aborted, msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_on(&self.rx, &self.aborted, buf)
    }

    fn split(&mut self) -> Option<io::Result<crate::backends::Split>> {
        let half = |q: &OwnedMq| -> io::Result<MqHalf> {
            Ok(MqHalf {
                q: q.try_clone()?,
                aborted: Arc::clone(&self.aborted),
            })
        };
        Some((|| {
            Ok(crate::backends::Split {
                tx: Box::new(half(&self.tx)?),
                rx: Box::new(half(&self.rx)?),
            })
        })())
    }

    fn poll_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(self.rx.get().as_fd())
    }

    fn abort_handle(&self) -> Option<AbortHandle> {
        let flag = Arc::clone(&self.aborted);
        // Descriptors of its own: it may run after the channel is dropped.
        let queues = self
            .rx
            .try_clone()
            .and_then(|rx| Ok((rx, self.tx.try_clone()?)));
        Some(Box::new(move || {
            flag.store(true, Ordering::Release);
            if let Ok((rx, tx)) = queues {
                wake(&rx, &tx);
            }
        }))
    }

    fn peer_attached(&mut self) -> Result<(), BackendError> {
        for name in self.names.take().into_iter().flatten() {
            mq_unlink(name.as_str())
                .map_err(|e| BackendError::new(INFO.id, "unlink", name.clone(), e))?;
        }
        Ok(())
    }
}

impl Drop for MqChannel {
    fn drop(&mut self) {
        // Error paths before the peer attached: the names must not outlive the run.
        for name in self.names.take().into_iter().flatten() {
            let _ = mq_unlink(name.as_str());
        }
    }
}

impl MqChannel {
    fn new(tx: OwnedMq, rx: OwnedMq, names: Vec<String>) -> MqChannel {
        MqChannel {
            tx,
            rx,
            aborted: Arc::new(AtomicBool::new(false)),
            names: Some(names),
        }
    }
}

/// `/ipcbench-<pid>-<16 hex digits>`, the stem of a run's queue names.
fn unique_base() -> Result<String, BackendError> {
    let tag = crate::sys::random_u64()
        .map_err(|e| BackendError::new(INFO.id, "read", "/dev/urandom", e))?;
    Ok(format!("/{PREFIX}{}-{tag:016x}", std::process::id()))
}

/// Queues being created for one channel or hub: on an error, those already made are
/// unlinked (when this is dropped) unless `keep` took their names.
struct Queues {
    attr: MqAttr,
    names: Vec<String>,
}

impl Queues {
    fn new(size: usize) -> Queues {
        let limits = Limits::read();
        Queues {
            attr: MqAttr::new(0, depth(&limits) as _, size as _, 0),
            names: Vec::new(),
        }
    }

    /// Creates queue `name` (private, exclusive), open in direction `dir`.
    fn create(&mut self, name: String, dir: MQ_OFlag) -> Result<OwnedMq, BackendError> {
        let q = mq_open(
            name.as_str(),
            dir | MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_CLOEXEC,
            Mode::S_IRUSR | Mode::S_IWUSR,
            Some(&self.attr),
        )
        .map_err(|e| {
            BackendError::new(INFO.id, "create", name.clone(), e).hint(
                "see fs.mqueue.queues_max, fs.mqueue.msg_max, fs.mqueue.msgsize_max and `ulimit -q`",
            )
        })?;
        crate::sys::record::track(&crate::sys::record::Object::PosixMq(name.clone()));
        self.names.push(name);
        Ok(OwnedMq::new(q))
    }

    /// The names, now owned by the channels that remove them.
    fn keep(mut self) -> Vec<String> {
        std::mem::take(&mut self.names)
    }
}

impl Drop for Queues {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = mq_unlink(name);
        }
    }
}

/// Unlinks a queue name and forgets its record.
fn mq_unlink(name: &str) -> nix::Result<()> {
    nix::mqueue::mq_unlink(name)?;
    crate::sys::record::untrack(&crate::sys::record::Object::PosixMq(name.to_string()));
    Ok(())
}

/// Queue names this tool creates: `/ipcbench-<pid>-<16 hex digits>-<to|from|req|repN>`.
fn valid_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('/').and_then(|n| n.strip_prefix(PREFIX)) else {
        return false;
    };
    name.len() < 200
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-')
}

impl Mechanism for PosixMq {
    fn duplex(&self) -> bool {
        true
    }

    fn info(&self) -> &'static MechanismInfo {
        &INFO
    }

    fn unsupported(&self, params: &ChannelParams, limits: &Limits) -> Option<String> {
        let size = params.size;
        if let Some(max) = limits.mq_msgsize_max.filter(|&m| size as u64 > m) {
            return Some(format!(
                "a POSIX queue message here holds at most fs.mqueue.msgsize_max = {max} bytes; raise it with `sysctl -w fs.mqueue.msgsize_max={size}` (ipcbench keeps to the limit an unprivileged process gets)"
            ));
        }
        let need = 2 * charge(depth(limits), size);
        if let Some(soft) = limits.rlimit_msgqueue {
            if need > soft {
                return Some(format!(
                    "two queues of {} messages of {size} bytes need about {need} bytes of RLIMIT_MSGQUEUE, which is {soft} here; raise it with `ulimit -q {need}`",
                    depth(limits)
                ));
            }
        }
        None
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        let base = unique_base()?;
        let mut qs = Queues::new(params.size);
        // Both read-write: the abort handle writes to the queue the parent reads and reads
        // from the one it writes, to end a blocked call.
        let tx = qs.create(format!("{base}-to"), MQ_OFlag::O_RDWR)?;
        let rx = qs.create(format!("{base}-from"), MQ_OFlag::O_RDWR)?;
        let chan = MqChannel::new(tx, rx, qs.keep());
        Ok(Offer {
            spec: base,
            inherit: Vec::new(),
            connect: Box::new(move |_| Ok(Box::new(chan))),
        })
    }

    fn fan_in(&self) -> super::fanin::Form {
        super::fanin::Form::Own
    }

    fn fan_in_limit(&self, params: &ChannelParams, clients: usize) -> Option<String> {
        let limits = Limits::read();
        let need = (clients as u64 + 1) * charge(depth(&limits), params.size);
        let soft = limits.rlimit_msgqueue?;
        (need > soft).then(|| {
            format!(
                "{} queues of {} messages of {} bytes need about {need} bytes of RLIMIT_MSGQUEUE, which is {soft} here; raise it with `ulimit -q {need}`",
                clients + 1,
                depth(&limits),
                params.size
            )
        })
    }

    /// One request queue that every client sends to, and a reply queue per client; the
    /// server polls the request queue (a queue descriptor is pollable on Linux).
    fn offer_fan_in(
        &self,
        params: &ChannelParams,
        clients: usize,
    ) -> Result<FanInOffer, BackendError> {
        let base = unique_base()?;
        let mut qs = Queues::new(params.size);
        let requests_name = format!("{base}-req");
        let requests = qs.create(requests_name.clone(), MQ_OFlag::O_RDONLY)?;
        let mut replies = Vec::with_capacity(clients);
        let mut offers = Vec::with_capacity(clients);
        for i in 0..clients {
            let name = format!("{base}-rep{i}");
            replies.push(qs.create(name.clone(), MQ_OFlag::O_WRONLY)?);
            offers.push(ClientOffer {
                spec: format!("{name},{requests_name}"),
                inherit: Vec::new(),
            });
        }
        // Each channel removes its own queue's name once the clients hold them. The
        // reply channels' receiving side (a duplicate of the request queue) is never used.
        let mut names = qs.keep().into_iter();
        let mut name = || names.next().into_iter().collect::<Vec<_>>();
        let dup = |q: &OwnedMq| {
            q.try_clone()
                .map_err(|e| BackendError::new(INFO.id, "duplicate", "a queue descriptor", e))
        };
        let mut channels: Vec<Box<dyn Channel>> = Vec::with_capacity(clients + 1);
        let first_reply = dup(&replies[0])?;
        let request_dups = replies
            .iter()
            .map(|_| dup(&requests))
            .collect::<Result<Vec<_>, _>>()?;
        channels.push(Box::new(MqChannel::new(first_reply, requests, name())));
        for (q, rx) in replies.into_iter().zip(request_dups) {
            channels.push(Box::new(MqChannel::new(q, rx, name())));
        }
        Ok(FanInOffer {
            clients: offers,
            connect: Box::new(move |_| {
                let inbound = vec![Inbound {
                    channel: 0,
                    client: None,
                }];
                let outbound = (1..=clients).collect();
                Ok(Box::new(PollHub::new(INFO.id, channels, inbound, outbound)?) as Box<dyn Hub>)
            }),
        })
    }

    fn join(
        &self,
        spec: &str,
        _inherited: Vec<OwnedFd>,
        params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        // `STEM` (one-to-one: STEM-to and STEM-from) or `RECEIVE,SEND` (a fan-in client:
        // its reply queue and the shared request queue).
        let (to, from) = match spec.split_once(',') {
            Some((to, from)) => (to.to_string(), from.to_string()),
            None => (format!("{spec}-to"), format!("{spec}-from")),
        };
        for name in [&to, &from] {
            if !valid_name(name) {
                return Err(BackendError::invalid(
                    INFO.id,
                    spec,
                    "not a queue name this tool creates",
                ));
            }
        }
        let open = |name: &str, dir: MQ_OFlag| -> Result<OwnedMq, BackendError> {
            let name = name.to_string();
            let mq = mq_open(
                name.as_str(),
                dir | MQ_OFlag::O_CLOEXEC,
                Mode::empty(),
                None,
            )
            .map(OwnedMq::new)
            .map_err(|e| BackendError::new(INFO.id, "open", name.clone(), e))?;
            // The queue must be the parent's: ours, private, sized for this run.
            let st = nix::sys::stat::fstat(mq.get().as_fd())
                .map_err(|e| BackendError::new(INFO.id, "inspect", name.clone(), e))?;
            let attr = mq_getattr(mq.get())
                .map_err(|e| BackendError::new(INFO.id, "inspect", name.clone(), e))?;
            if st.st_uid != nix::unistd::geteuid().as_raw()
                || st.st_mode & 0o777 != 0o600
                || attr.msgsize() as usize != params.size
            {
                return Err(BackendError::invalid(
                    INFO.id,
                    name,
                    "not a private queue of this run",
                ));
            }
            Ok(mq)
        };
        Ok(Box::new(MqChannel {
            // Read-write, as the parent's: the abort handle works from either side.
            rx: open(&to, MQ_OFlag::O_RDWR)?,
            tx: open(&from, MQ_OFlag::O_RDWR)?,
            aborted: Arc::new(AtomicBool::new(false)),
            names: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("/ipcbench-12-00ff00ff00ff00ff"));
        for bad in [
            "ipcbench-1",
            "/other-1",
            "/ipcbench-",
            "/ipcbench-../x",
            "/ipcbench-A",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
