//! The mechanism trait and the registry. A mechanism family is one file in this folder;
//! adding a mechanism means adding its file and one line to `REGISTRY`.

mod calibration;
mod cma;
mod crates;
mod datagram;
pub mod fanin;
mod fault;
mod fifo;
mod lending;
mod memfd_pass;
mod pipe;
mod pipe_splice;
mod posix_mq;
pub mod shm;
mod stream;
pub mod sync;
mod sysv_mq;
mod tcp;
mod udp;
mod unix_packet;
mod unix_stream;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags};
use serde::Serialize;

use crate::environment::Limits;
use crate::error::BackendError;
use crate::placement::Pin;

/// Every mechanism the tool knows, in the order sweeps run and tables list them.
pub static REGISTRY: &[&dyn Mechanism] = &[
    &pipe::Pipe,
    &calibration::PIPE_RAW,
    &pipe_splice::PipeSplice,
    &cma::CMA_READ,
    &cma::CMA_WRITE,
    &fifo::Fifo,
    &posix_mq::PosixMq,
    &sysv_mq::SysvMq,
    &unix_stream::UnixStream,
    &unix_packet::UNIX_DGRAM,
    &unix_packet::UNIX_SEQPACKET,
    &tcp::Tcp,
    &udp::Udp,
    &shm::SHM_SPIN,
    &shm::SHM_FUTEX,
    &shm::SHM_EVENTFD,
    &shm::SHM_POSIX_SEM,
    &shm::SHM_SYSV_SEM,
    &shm::SHM_CONDVAR,
    &shm::SHM_ADAPTIVE,
    &memfd_pass::MEMFD_PASS,
    &memfd_pass::MEMFD_FRESH,
    &crates::ipc_channel::IpcChannel,
    &crates::interprocess::Interprocess,
    &crates::tokio_sockets::TOKIO_UNIX_STREAM,
    &crates::tokio_sockets::TOKIO_TCP,
    #[cfg(feature = "http")]
    &crates::http::HTTP_UNIX,
    #[cfg(feature = "http")]
    &crates::http::HTTP_TCP,
    #[cfg(feature = "grpc")]
    &crates::grpc::GRPC_UNIX,
    #[cfg(feature = "grpc")]
    &crates::grpc::GRPC_TCP,
    #[cfg(feature = "dbus")]
    &crates::dbus::DBUS_P2P,
    #[cfg(feature = "dbus")]
    &crates::dbus::DBUS_BUS,
    #[cfg(feature = "zmq")]
    &crates::zmq::ZMQ_IPC,
    #[cfg(feature = "zmq")]
    &crates::zmq::ZMQ_TCP,
    #[cfg(feature = "shared-memory-crate")]
    &crates::shared_memory::SharedMemoryCrate,
    #[cfg(feature = "iceoryx2")]
    &crates::iceoryx2::Iceoryx2,
    &calibration::CACHELINE,
    &fault::FAULT_DROP,
    &fault::FAULT_CORRUPT,
    &fault::FAULT_CORRUPT_MIDDLE,
    &fault::FAULT_STALL,
];

/// IPC mechanisms of the classic taxonomy that ipcbench does not measure, and why (`list`
/// says so rather than leave them out in silence).
pub static NOT_MEASURED: &[(&str, &str)] = &[
    (
        "Solaris doors",
        "door calls exist only on Solaris and illumos; Linux has no doors",
    ),
    (
        "Sun RPC (ONC RPC)",
        "no maintained Rust implementation we would trust, and it needs rpcbind; gRPC has taken its role",
    ),
];

/// Which part of the IPC landscape a mechanism belongs to (reports group by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    MessagePassing,
    Sockets,
    #[serde(rename = "shm")]
    SharedMemory,
    Crates,
    /// Measuring the measurement: `pipe-raw` (no framing, no checks) and the cache-line
    /// floor. `pipe-raw` is in `all` so reports can set it beside `pipe`.
    Calibration,
    /// Mechanisms that misbehave on purpose to prove the verifier; never in `all`.
    Test,
    /// Synchronisation primitives (`backends::sync`).
    Sync,
    /// A user's own mechanism, registered by a program of theirs (`crate::main_with`).
    Custom,
}

impl Family {
    /// Every family, in the order reports list them.
    pub const ALL: [Family; 8] = [
        Family::Custom,
        Family::MessagePassing,
        Family::Sockets,
        Family::SharedMemory,
        Family::Crates,
        Family::Sync,
        Family::Calibration,
        Family::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::MessagePassing => "message-passing",
            Family::Sockets => "sockets",
            Family::SharedMemory => "shm",
            Family::Crates => "crates",
            Family::Calibration => "calibration",
            Family::Test => "test",
            Family::Sync => "sync",
            Family::Custom => "custom",
        }
    }
}

/// What `ipcbench list` says about a mechanism. A mechanism of your own starts from
/// [`MechanismInfo::new`] and overrides what differs, so that fields added later keep it
/// compiling:
///
/// ```
/// use ipcbench::{Family, MechanismInfo};
/// static INFO: MechanismInfo = MechanismInfo {
///     boundaries: true,
///     ..MechanismInfo::new("my-ring", Family::Custom, "our ring over a memfd")
/// };
/// assert_eq!(INFO.id, "my-ring");
/// ```
#[derive(Debug, Serialize)]
pub struct MechanismInfo {
    pub id: &'static str,
    pub family: Family,
    pub summary: &'static str,
    /// Whether one send arrives as one receive (otherwise the bytes form a stream).
    pub boundaries: bool,
    /// Copies of the payload the kernel makes per message, sender to receiver.
    pub kernel_copies: u8,
    /// Whether the kernel may drop messages (datagrams): losses are then counted and
    /// reported instead of failing the run.
    pub lossy: bool,
    /// Whether unrelated processes find the object by a name in the filesystem.
    pub named: bool,
    pub cross_host: bool,
    /// For a crate's mechanism: the raw mechanism it runs on, measured in the same run so
    /// the layer's cost can be read off.
    pub built_on: Option<&'static str>,
    /// Whether many senders can feed one receiver (a queue, a listening socket).
    pub fan_in: bool,
    /// Whether file descriptors can travel with messages.
    pub fd_passing: bool,
    /// Whether it exists beyond Linux (POSIX or the crate's own portability).
    pub portable: bool,
    /// One line on what choosing it costs or gives, for `recommend` and reports.
    pub trade_off: &'static str,
    /// Whether messages are framed and checked (false only for calibration loops).
    pub verified: bool,
    /// Whether a waiting side busy-polls (burning a CPU while idle, which CPU per message
    /// under load does not show).
    pub busy_waits: bool,
    /// For a calibration loop: the mechanism it is the bare version of (`pipe-raw` of
    /// `pipe`); reports set the two side by side as the harness's cost.
    pub calibrates: Option<&'static str>,
    /// Whether `all` includes it.
    pub in_all: bool,
}

impl MechanismInfo {
    /// A verified, reliable, Linux-only mechanism called `id`, measured when named: no
    /// message boundaries, two kernel copies, no name in the filesystem, not in `all`.
    pub const fn new(id: &'static str, family: Family, summary: &'static str) -> MechanismInfo {
        MechanismInfo {
            id,
            family,
            summary,
            boundaries: false,
            kernel_copies: 2,
            lossy: false,
            named: false,
            cross_host: false,
            built_on: None,
            fan_in: false,
            fd_passing: false,
            portable: false,
            trade_off: "",
            verified: true,
            busy_waits: false,
            calibrates: None,
            in_all: false,
        }
    }
}

/// What a run sizes its channel for.
#[derive(Clone, Debug)]
pub struct ChannelParams {
    /// Bytes per message.
    pub size: usize,
    /// `SO_RCVBUF` for the receiving sockets of datagram mechanisms (`--socket-rcvbuf`).
    pub rcvbuf: Option<usize>,
    /// Shared memory: bytes of each ring (`--shm-ring`) and the segment kind (`--shm-segment`).
    pub shm_ring: usize,
    pub shm_segment: shm::Segment,
    /// Shared memory on huge pages (`--shm-hugepages`).
    pub shm_huge: bool,
    /// Shared memory: copy each message out of the ring, or check it there (`--shm-read`).
    pub shm_read: shm::Read,
    /// `shm-adaptive`'s spin budget in ns (`--spin-us`, or the run's default from its
    /// wake-up floor); `None` leaves `shm::DEFAULT_SPIN_NS`.
    pub spin_ns: Option<u64>,
    /// How the two processes are placed (spinning needs two CPUs).
    pub pin: Pin,
    /// What the workload sends; only frameworks with a call per pattern look at it.
    pub traffic: Traffic,
}

/// What a workload sends over a channel: requests each answered before the next
/// (latency, setup) or a stream one way and one answer at the end (throughput).
/// Frameworks whose API differs by pattern (gRPC unary calls or a stream, ZeroMQ REQ/REP or
/// PUSH/PULL, D-Bus calls with or without a reply) choose by it; the rest ignore it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Traffic {
    #[default]
    Exchange,
    OneWay,
}

impl Traffic {
    /// The word a spec carries for a peer that must know (`exchange`, `one-way`).
    pub fn as_str(self) -> &'static str {
        match self {
            Traffic::Exchange => "exchange",
            Traffic::OneWay => "one-way",
        }
    }

    pub fn parse(s: &str) -> Option<Traffic> {
        match s {
            "exchange" => Some(Traffic::Exchange),
            "one-way" => Some(Traffic::OneWay),
            _ => None,
        }
    }
}

impl ChannelParams {
    /// Parameters with every option at its default (the peer learns the rest from the spec).
    pub fn new(size: usize) -> ChannelParams {
        ChannelParams {
            size,
            rcvbuf: None,
            shm_ring: shm::ring_for(0, size),
            shm_segment: shm::Segment::Posix,
            shm_huge: false,
            shm_read: shm::Read::Copy,
            spin_ns: None,
            pin: Pin::Cross,
            traffic: Traffic::Exchange,
        }
    }
}

/// A channel's two directions as two channels that two threads can use at once (for
/// open-loop workloads, where replies are read while requests are still being sent).
pub struct Split {
    pub tx: Box<dyn Channel + Send>,
    pub rx: Box<dyn Channel + Send>,
}

/// Makes a blocked send or receive return once the peer is gone; called from another thread.
pub type AbortHandle = Box<dyn FnOnce() + Send>;

/// One direction-agnostic end of an established channel. Used by one thread only (so
/// crates whose ports are not `Send` fit), except for its `abort_handle`.
pub trait Channel {
    /// Sends exactly one message of `msg.len()` bytes, handling partial writes.
    fn send(&mut self, msg: &[u8]) -> io::Result<()>;
    /// Receives one message into `buf` and returns its length. Byte-stream mechanisms
    /// fill `buf` completely, handling short reads.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Receives one message and shows it to `inspect` (the receiver's check); returns its
    /// length. A mechanism that holds messages in memory both processes map may show it
    /// where it lies instead of copying it into `buf` (shared memory with `--shm-read
    /// in-place`); by default it is received into `buf` and shown there.
    fn recv_in_place(
        &mut self,
        buf: &mut [u8],
        inspect: &mut dyn FnMut(&[u8]),
    ) -> io::Result<usize> {
        let n = self.recv(buf)?;
        inspect(&buf[..n.min(buf.len())]);
        Ok(n)
    }
    /// Whether the mechanism sends from memory of its own (pages a pipe takes by
    /// reference, a memfd that travels, a buffer the receiver copies from): then callers
    /// produce each message there with `send_in_place`, and it is never copied on the
    /// way out. Asked once per channel, not per message.
    fn lends(&self) -> bool {
        false
    }
    /// For a mechanism that `lends`: sends one message of `template.len()` bytes produced
    /// in its own memory. `write` gets a buffer that already holds a message of this size
    /// (the mechanism copies `template` into each of its buffers the first time it lends
    /// it) and writes the next message's stamped words into it.
    fn send_in_place(
        &mut self,
        _template: &[u8],
        _write: &mut dyn FnMut(&mut [u8]),
    ) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this mechanism sends from the caller's buffer only",
        ))
    }
    /// For mechanisms whose blocking calls do not return by themselves when the peer dies
    /// (no end-of-file): how to unblock them. Called at most once, possibly after the
    /// channel is dropped, so it must own what it touches.
    fn abort_handle(&self) -> Option<AbortHandle> {
        None
    }

    /// Bounds each `recv` (lossy mechanisms need it; a timeout is `WouldBlock`/`TimedOut`).
    fn set_recv_timeout(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this mechanism has no receive timeout",
        ))
    }

    /// Two independent directions over the same objects (duplicated descriptors), if the
    /// mechanism can have a send and a receive in flight at once (`Mechanism::duplex`).
    fn split(&mut self) -> Option<io::Result<Split>> {
        None
    }

    /// Called once the peer has said it holds every object: names are removed now, so
    /// even a `SIGKILL` of both processes afterwards leaves nothing behind.
    fn peer_attached(&mut self) -> Result<(), BackendError> {
        Ok(())
    }

    /// The descriptor that polls readable when a message waits, so a fan-in server can
    /// wait on many channels at once (`fanin::PollHub`); `None` if there is none.
    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

/// Bounds the parent's wait for its peer while a channel is being established.
pub struct Rendezvous<'a> {
    pub deadline: Instant,
    /// Returns true once the peer process has exited.
    pub peer_gone: &'a dyn Fn() -> bool,
    /// Pauses so far: the first few only yield the CPU.
    pauses: std::cell::Cell<u32>,
}

/// Pauses that only yield before `Rendezvous::pause` starts sleeping: a peer that is
/// already running (the `setup` workload's) usually arrives within them, so the wait is
/// not rounded up to a sleep's millisecond.
const YIELDING_PAUSES: u32 = 256;

impl<'a> Rendezvous<'a> {
    pub fn new(deadline: Instant, peer_gone: &'a dyn Fn() -> bool) -> Rendezvous<'a> {
        Rendezvous {
            deadline,
            peer_gone,
            pauses: std::cell::Cell::new(0),
        }
    }

    /// Waits until `fd` is readable (e.g. a listening socket has a connection).
    pub fn wait_readable(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        loop {
            self.check()?;
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            if poll(&mut fds, 20u16)? > 0 {
                return Ok(());
            }
        }
    }

    /// Fails if the deadline passed or the peer is gone; otherwise returns at once.
    pub fn check(&self) -> io::Result<()> {
        if (self.peer_gone)() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the peer process exited before connecting",
            ));
        }
        if Instant::now() >= self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer did not connect in time",
            ));
        }
        Ok(())
    }

    /// A short pause between polls of something that cannot be waited on: a yield of the
    /// CPU at first, then a millisecond's sleep.
    pub fn pause(&self) -> io::Result<()> {
        self.check()?;
        let n = self.pauses.get();
        if n < YIELDING_PAUSES {
            self.pauses.set(n + 1);
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

/// Finishes the parent's side once the peer runs.
pub type Connect = Box<dyn FnOnce(&Rendezvous<'_>) -> Result<Box<dyn Channel>, BackendError>>;

/// The parent's half-open channel: what to tell the peer, what to hand it, how to finish.
pub struct Offer {
    /// Passed to the peer's `join` (a path, a port, ...); validated there.
    pub spec: String,
    /// Descriptors the peer inherits as 3, 4, ...
    pub inherit: Vec<OwnedFd>,
    pub connect: Connect,
}

/// One IPC mechanism: how the parent offers a channel and how the peer joins it.
pub trait Mechanism: Send + Sync {
    fn info(&self) -> &'static MechanismInfo;

    /// Whether its channel can `split` into a sending and a receiving half used by two
    /// threads at once (open-loop workloads need it).
    fn duplex(&self) -> bool {
        false
    }

    /// Whether it can stream messages one way (the throughput workload); the cache-line
    /// bounce cannot: a second write before the first is read overwrites it.
    fn streams(&self) -> bool {
        true
    }

    /// Copies of the payload per streamed message, from the sender's message to the
    /// receiver's check, in the kernel and in user space, with these parameters (a
    /// receiver that checks in place saves one). By default the kernel's
    /// (`MechanismInfo::kernel_copies`): a send and a receive that are one system call each.
    fn copies(&self, _params: &ChannelParams) -> u8 {
        self.info().kernel_copies
    }

    /// Why this message size cannot run here (naming the limit and how to raise it), if so.
    fn unsupported(&self, _params: &ChannelParams, _limits: &Limits) -> Option<String> {
        None
    }

    /// Parent side, before the peer starts: create the objects.
    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError>;

    /// Peer side: open what the parent offered. Must validate `spec` and `inherited`.
    fn join(
        &self,
        spec: &str,
        inherited: Vec<OwnedFd>,
        params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError>;

    /// Whether closing one end reads as end-of-file (or a reset) on the other: a stream,
    /// a pipe, a connected socket. The `setup` workload then times a teardown until the
    /// other side has seen it; without one, each side's close on its own.
    fn close_is_seen(&self) -> bool {
        false
    }

    /// How a fresh channel comes about when it is not by a name the peer opens (anonymous
    /// pipes, socket pairs: made by one process and handed over as descriptors), for
    /// `list` and the `setup` workload's report.
    fn setup_note(&self) -> Option<&'static str> {
        None
    }

    /// For a call framework (calls with a schema or an interface description, generated or
    /// typed clients): what it gives a service for its cost, for `recommend --need rpc`.
    fn rpc(&self) -> Option<&'static str> {
        None
    }

    /// How one server thread serves many clients of it (`--clients`), or why it cannot.
    fn fan_in(&self) -> fanin::Form {
        fanin::Form::Unsupported("ipcbench has no many-to-one form of this mechanism")
    }

    /// Why `clients` clients with messages of this size cannot fan in here (a limit, and
    /// how to raise it where one can), if so.
    fn fan_in_limit(&self, _params: &ChannelParams, _clients: usize) -> Option<String> {
        None
    }

    /// The kind of object this mechanism leaves that the kernel's kinds do not cover (files,
    /// daemons, directories of its own), with how to see and remove one; it records each
    /// one it creates with [`record_object`].
    fn leftovers(&self) -> Option<&'static Leftovers> {
        None
    }

    /// Fan-in with `fanin::Form::Own`, parent (server) side: the objects for `clients`
    /// clients, each of which joins with `join` (`fanin::offer` calls it).
    fn offer_fan_in(
        &self,
        _params: &ChannelParams,
        _clients: usize,
    ) -> Result<fanin::FanInOffer, BackendError> {
        Err(BackendError::invalid(
            self.info().id,
            "--clients",
            "no hub of its own",
        ))
    }
}

/// A kind of object a mechanism leaves that is not a plain kernel object: how to tell that
/// one still exists and how to remove it. The mechanism records each object it creates
/// under `kind` with [`record_object`] (and forgets it with [`forget_object`] once it is
/// removed), and returns this from [`Mechanism::leftovers`] (built-in ones also list it in
/// `LEFTOVERS`): `clean` then removes the objects of runs that were killed, and leak audits
/// see them.
pub struct Leftovers {
    pub kind: &'static str,
    pub exists: fn(&str) -> bool,
    pub remove: fn(&str) -> io::Result<()>,
}

pub use tcp::channel_ports as tcp_ports;
/// TCP details the `setup` workload reports (TIME_WAIT left, an abortive close).
pub use tcp::{
    abortive_close as tcp_abortive_close, time_wait as tcp_time_wait,
    time_wait_all as tcp_time_wait_all,
};

/// Every registered kind of leftover (one line per mechanism that has one).
pub static LEFTOVERS: &[&Leftovers] = &[
    #[cfg(feature = "iceoryx2")]
    &crates::iceoryx2::DOMAIN,
    #[cfg(feature = "dbus")]
    &crates::dbus::DAEMON,
];

pub fn leftovers(kind: &str) -> Option<&'static Leftovers> {
    let declared = REGISTRY
        .iter()
        .chain(EXTRA.get().copied().unwrap_or_default())
        .filter_map(|m| m.leftovers());
    LEFTOVERS
        .iter()
        .copied()
        .chain(declared)
        .find(|l| l.kind == kind)
}

/// Why an object cannot be recorded under a kind and a name.
#[derive(Debug, thiserror::Error)]
#[error("cannot record object `{name}` of kind `{kind}`: {why}")]
pub struct RecordError {
    kind: String,
    name: String,
    why: &'static str,
}

fn record_checked(kind: &str, name: &str) -> Result<crate::sys::record::Object, RecordError> {
    let err = |why| RecordError {
        kind: kind.into(),
        name: name.into(),
        why,
    };
    if !crate::sys::record::plain_kind(kind) {
        return Err(err("a kind is lowercase words joined by '-'"));
    }
    match name.strip_prefix(crate::sys::fs::PREFIX) {
        Some(rest) if !rest.is_empty() && !name.contains('/') => {}
        _ => return Err(err("a name starts with `ipcbench-` and has no '/'")),
    }
    Ok(crate::sys::record::Object::Registered {
        kind: kind.into(),
        name: name.into(),
    })
}

/// Records that this process created object `name` (which starts with `ipcbench-`) of a
/// kind a mechanism declares ([`Mechanism::leftovers`]), so that `clean` can remove it
/// if the run is killed before it does.
pub fn record_object(kind: &str, name: &str) -> Result<(), RecordError> {
    crate::sys::record::track(&record_checked(kind, name)?);
    Ok(())
}

/// Forgets an object recorded with [`record_object`] once it has been removed.
pub fn forget_object(kind: &str, name: &str) -> Result<(), RecordError> {
    crate::sys::record::untrack(&record_checked(kind, name)?);
    Ok(())
}

/// The processes running a private bus daemon of directory `name` (for leak audits).
#[cfg(feature = "dbus")]
pub use crates::dbus::daemon_pids as dbus_daemon_pids;

/// The files of an iceoryx2 domain (for tests that damage one on purpose).
#[cfg(feature = "iceoryx2")]
pub use crates::iceoryx2::domain_files as iox2_domain_files;

impl std::fmt::Debug for dyn Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.info().id)
    }
}

/// Mechanisms a program of a user's own registered (`crate::main_with`,
/// `crate::peer_entry`): found by id like the built-in ones, never in `all`.
static EXTRA: std::sync::OnceLock<&'static [&'static dyn Mechanism]> = std::sync::OnceLock::new();

/// Why a set of user mechanisms cannot be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("mechanism `{0}` is registered twice, or has the id of a built-in mechanism: give it an id of its own")]
    Duplicate(&'static str),
    #[error("user mechanisms are registered once per process, and a different set already was")]
    Again,
}

/// Registers a user's mechanisms so that sessions and peers find them by id. Registering
/// the same set again is harmless; a second, different set or a clashing id is refused.
pub fn register(extra: &'static [&'static dyn Mechanism]) -> Result<(), RegisterError> {
    for (i, m) in extra.iter().enumerate() {
        let id = m.info().id;
        let clash = REGISTRY.iter().any(|b| b.info().id == id)
            || extra[..i].iter().any(|e| e.info().id == id);
        if clash {
            return Err(RegisterError::Duplicate(id));
        }
    }
    let set = EXTRA.get_or_init(|| extra);
    if std::ptr::eq(*set, extra) || (set.is_empty() && extra.is_empty()) {
        Ok(())
    } else {
        Err(RegisterError::Again)
    }
}

pub fn by_id(id: &str) -> Option<&'static dyn Mechanism> {
    REGISTRY
        .iter()
        .chain(EXTRA.get().copied().unwrap_or_default())
        .copied()
        .find(|m| m.info().id == id)
}

/// The mechanisms `all` stands for: everything but the deliberately faulty ones.
pub fn all() -> impl Iterator<Item = &'static dyn Mechanism> {
    REGISTRY.iter().copied().filter(|m| m.info().in_all)
}

/// Removes a parent's private directory (and the socket or FIFOs in it) once the peer
/// holds what is in it; nothing if it is already gone.
pub(crate) fn remove_names(
    mechanism: &'static str,
    dir: &mut Option<crate::sys::fs::PrivateDir>,
) -> Result<(), BackendError> {
    if let Some(mut dir) = dir.take() {
        let shown = dir.path().display().to_string();
        dir.remove()
            .map_err(|e| BackendError::new(mechanism, "remove", shown, e))?;
    }
    Ok(())
}

/// Checks that the peer was handed no argument, for mechanisms whose parent passes none.
pub(crate) fn expect_no_spec(mechanism: &'static str, spec: &str) -> Result<(), BackendError> {
    if spec.is_empty() {
        Ok(())
    } else {
        Err(BackendError::invalid(
            mechanism,
            spec,
            &format!("{mechanism} takes no argument"),
        ))
    }
}

/// Checks that the peer received exactly `n` descriptors and returns them.
pub(crate) fn expect_fds<const N: usize>(
    mechanism: &'static str,
    fds: Vec<OwnedFd>,
) -> Result<[OwnedFd; N], BackendError> {
    let got = fds.len();
    fds.try_into().map_err(|_| {
        BackendError::invalid(
            mechanism,
            "inherited descriptors",
            &format!("expected {N}, got {got}"),
        )
    })
}

/// Checks that a descriptor is the kind of file this mechanism expects (a pipe, a socket).
pub(crate) fn expect_file_type(
    mechanism: &'static str,
    fd: &impl AsFd,
    want: nix::sys::stat::SFlag,
) -> Result<(), BackendError> {
    let st = nix::sys::stat::fstat(fd.as_fd())
        .map_err(|e| BackendError::new(mechanism, "inspect", "an inherited descriptor", e))?;
    if nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT != want
    {
        return Err(BackendError::invalid(
            mechanism,
            "an inherited descriptor",
            "it is not the kind of file this mechanism uses",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms_without_an_argument_refuse_one_by_name() {
        let params = ChannelParams::new(64);
        for id in ["pipe", "pipe-raw", "cacheline", "udp", "unix-dgram"] {
            let m = by_id(id).unwrap_or_else(|| panic!("{id} registered"));
            let err = match m.join("/tmp/not-mine", Vec::new(), &params) {
                Ok(_) => panic!("{id} accepted an argument"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(&format!("{id} takes no argument")), "{err}");
            assert!(err.contains("/tmp/not-mine"), "{err}");
        }
    }

    #[test]
    fn a_wrong_number_of_descriptors_is_refused() {
        let params = ChannelParams::new(64);
        let err = match by_id("pipe").map(|m| m.join("", Vec::new(), &params)) {
            Some(Err(e)) => e.to_string(),
            _ => panic!("pipe joined without its descriptors"),
        };
        assert!(err.contains("expected 2, got 0"), "{err}");
    }
}
