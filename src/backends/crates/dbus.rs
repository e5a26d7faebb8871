//! `dbus-p2p` and `dbus-bus`: D-Bus method calls on zbus 5 (tokio). The parent calls
//! `org.ipcbench.Echo.Message` with the message as its `ay` argument; the peer answers
//! with a method return carrying its message. A one-way stream (`Traffic::OneWay`) is
//! calls flagged NO_REPLY_EXPECTED, and the peer's acknowledgement a call of its own.
//!
//! - `dbus-p2p`: a peer-to-peer connection over a Unix socket pair (the peer inherits one
//!   end), no daemon; the peer authenticates the parent as a D-Bus server does.
//! - `dbus-bus`: both sides connect to a private `dbus-daemon` that the parent starts for
//!   the channel, with its own configuration and socket in a private directory; the peer
//!   owns the well-known name `org.ipcbench.Peer` and calls go to it through the daemon,
//!   as a desktop or system service is called. The daemon dies with the parent (parent-
//!   death signal), is stopped and its directory removed when the channel is dropped, and
//!   is recorded so `ipcbench clean` can stop and remove what a killed run left.
//!
//! Both sides run zbus's tasks on the thread's current-thread runtime, driven while a
//! send or receive waits. Bodies are serialised as bytes (`serde_bytes`), not element by
//! element. D-Bus arrays are limited to 64 MiB; larger sizes are `unsupported`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_core::Stream;
use tokio::runtime::Runtime;
use zbus::connection::Builder;
use zbus::message::{Flags, Message, Type};
use zbus::MessageStream;

use super::super::{
    Channel, ChannelParams, Family, Leftovers, Mechanism, MechanismInfo, Offer, Traffic,
};
use super::runtime;
use crate::environment::Limits;
use crate::error::BackendError;
use crate::sys::fs::{PrivateDir, PREFIX};
use crate::sys::record::Object;

const PATH: &str = "/org/ipcbench/Echo";
const IFACE: &str = "org.ipcbench.Echo";
const MESSAGE: &str = "Message";
/// The peer's first call on a bus: it owns its name and listens.
const READY: &str = "Ready";
/// The well-known name the peer owns on the private bus.
const NAME: &str = "org.ipcbench.Peer";
/// D-Bus's limit on an array (the `ay` a message travels in), less room for the header.
pub const MAX_MESSAGE: usize = (64 << 20) - 4096;
/// The package that installs the daemon.
const PACKAGE: &str = "dbus-daemon";
/// How long the daemon may take to start listening.
const DAEMON_START: Duration = Duration::from_secs(10);

fn block<T>(rt: &Runtime, f: impl std::future::Future<Output = zbus::Result<T>>) -> io::Result<T> {
    rt.block_on(f).map_err(zbus_error)
}

fn zbus_error(e: zbus::Error) -> io::Error {
    match e {
        zbus::Error::InputOutput(e) => io::Error::new(e.kind(), e.to_string()),
        e => io::Error::other(e),
    }
}

/// The next message on `stream`; its end is the connection gone.
fn next(rt: &Runtime, stream: &mut MessageStream) -> io::Result<Message> {
    rt.block_on(std::future::poll_fn(|cx| {
        Pin::new(&mut *stream).poll_next(cx)
    }))
    .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the connection closed"))?
    .map_err(zbus_error)
}

/// As `next`, giving up at `until` (`None` then).
fn next_until(
    rt: &Runtime,
    stream: &mut MessageStream,
    until: Instant,
) -> io::Result<Option<Message>> {
    let deadline = tokio::time::Instant::from_std(until);
    let next = std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx));
    match rt.block_on(async { tokio::time::timeout_at(deadline, next).await }) {
        Err(_) => Ok(None),
        Ok(None) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed",
        )),
        Ok(Some(m)) => m.map(Some).map_err(zbus_error),
    }
}

/// A call of ours with the message as its argument, to `dest` (none on a peer-to-peer
/// connection), flagged when no reply is expected.
fn call(dest: Option<&str>, member: &str, msg: &[u8], reply: bool) -> zbus::Result<Message> {
    let mut b = Message::method_call(PATH, member)?.interface(IFACE)?;
    if let Some(d) = dest {
        b = b.destination(d.to_string())?;
    }
    if !reply {
        b = b.with_flags(Flags::NoReplyExpected)?;
    }
    b.build(&serde_bytes::Bytes::new(msg))
}

fn body_into(m: &Message, buf: &mut [u8]) -> io::Result<usize> {
    let body = m.body();
    let data: &serde_bytes::Bytes = body.deserialize().map_err(zbus_error)?;
    let n = data.len().min(buf.len());
    buf[..n].copy_from_slice(&data[..n]);
    Ok(data.len())
}

/// What one side of the channel does with messages.
enum Role {
    /// The parent: calls, and takes answers (or, one way, the peer's acknowledgements).
    Caller {
        traffic: Traffic,
        /// The peer's name on a bus (none peer to peer).
        dest: Option<String>,
        /// The serial of the call whose return is awaited.
        awaiting: Option<std::num::NonZeroU32>,
    },
    /// The peer: answers calls that expect it, else calls the parent back.
    Callee {
        /// The parent's unique name on a bus (none peer to peer).
        caller: Option<String>,
        /// The call being answered.
        pending: Option<Message>,
    },
}

/// One side's connection, its incoming messages and, for the parent on a bus, the daemon.
struct End {
    conn: zbus::Connection,
    stream: MessageStream,
    role: Role,
    rt: Rc<Runtime>,
    // Dropped last: the daemon outlives the parent's connection to it.
    _bus: Option<Daemon>,
}

impl End {
    fn send_call(&mut self, msg: &[u8]) -> io::Result<()> {
        let Role::Caller {
            traffic,
            dest,
            awaiting,
        } = &mut self.role
        else {
            unreachable!("only the caller calls")
        };
        let reply = *traffic == Traffic::Exchange;
        let m = call(dest.as_deref(), MESSAGE, msg, reply).map_err(zbus_error)?;
        if reply {
            *awaiting = Some(m.primary_header().serial_num());
        }
        block(&self.rt, self.conn.send(&m))
    }

    fn recv_answer(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let m = next(&self.rt, &mut self.stream)?;
            let Role::Caller { awaiting, .. } = &mut self.role else {
                unreachable!("only the caller takes answers")
            };
            let h = m.header();
            match h.message_type() {
                Type::MethodReturn
                    if h.reply_serial().is_some() && h.reply_serial() == *awaiting =>
                {
                    *awaiting = None;
                    return body_into(&m, buf);
                }
                Type::Error if h.reply_serial().is_some() && h.reply_serial() == *awaiting => {
                    let name = h.error_name().map(|n| n.to_string()).unwrap_or_default();
                    let why: String = m.body().deserialize().unwrap_or_default();
                    let kind = match name.as_str() {
                        "org.freedesktop.DBus.Error.NoReply"
                        | "org.freedesktop.DBus.Error.ServiceUnknown" => {
                            io::ErrorKind::ConnectionReset
                        }
                        _ => io::ErrorKind::Other,
                    };
                    return Err(io::Error::new(kind, format!("D-Bus error {name}: {why}")));
                }
                Type::MethodCall if h.member().is_some_and(|n| n.as_str() == MESSAGE) => {
                    return body_into(&m, buf);
                }
                // The bus says the peer's name lost its owner: the peer is gone.
                Type::Signal if h.member().is_some_and(|n| n.as_str() == "NameOwnerChanged") => {
                    if let Ok((name, _, new)) = m.body().deserialize::<(&str, &str, &str)>() {
                        if name == NAME && new.is_empty() {
                            return Err(io::Error::new(
                                io::ErrorKind::ConnectionReset,
                                "the peer left the bus",
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn recv_call(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let m = next(&self.rt, &mut self.stream)?;
            let h = m.header();
            if h.message_type() != Type::MethodCall
                || h.member().is_none_or(|n| n.as_str() != MESSAGE)
            {
                continue;
            }
            let n = body_into(&m, buf)?;
            let Role::Callee { pending, .. } = &mut self.role else {
                unreachable!("only the callee takes calls")
            };
            let wants_reply = !h.primary().flags().contains(Flags::NoReplyExpected);
            drop(h);
            *pending = wants_reply.then_some(m);
            return Ok(n);
        }
    }

    fn send_answer(&mut self, msg: &[u8]) -> io::Result<()> {
        let Role::Callee { caller, pending } = &mut self.role else {
            unreachable!("only the callee answers")
        };
        let body = serde_bytes::Bytes::new(msg);
        match pending.take() {
            Some(c) => block(&self.rt, self.conn.reply(&c.header(), &body)),
            None => {
                let m = call(caller.as_deref(), MESSAGE, msg, false).map_err(zbus_error)?;
                block(&self.rt, self.conn.send(&m))
            }
        }
    }
}

impl Channel for End {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        match self.role {
            Role::Caller { .. } => self.send_call(msg),
            Role::Callee { .. } => self.send_answer(msg),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.role {
            Role::Caller { .. } => self.recv_answer(buf),
            Role::Callee { .. } => self.recv_call(buf),
        }
    }
}

// ---- the private bus daemon ----

/// Leftovers of kind `dbus-daemon`: a private directory (its configuration, socket and
/// log) and the daemon started with that configuration.
pub static DAEMON: Leftovers = Leftovers {
    kind: "dbus-daemon",
    exists: |name| daemon_dir(name).exists() || !daemon_pids(name).is_empty(),
    remove: remove_daemon,
};

fn daemon_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(name)
}

fn config_arg(dir: &Path) -> String {
    format!("--config-file={}", dir.join("bus.conf").display())
}

/// This user's processes started with the configuration in directory `name` (unique: it
/// holds ipcbench's pid and a random suffix), wherever TMPDIR pointed: only the daemons
/// ipcbench started for that directory.
pub fn daemon_pids(name: &str) -> Vec<i32> {
    let suffix = format!("/{name}/bus.conf");
    let uid = nix::unistd::geteuid().as_raw();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let md = std::fs::metadata(e.path()).ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let ours = md.uid() == uid
                && cmdline
                    .split(|b| *b == 0)
                    .any(|a| a.starts_with(b"--config-file=") && a.ends_with(suffix.as_bytes()));
            ours.then_some(pid)
        })
        .collect()
}

fn remove_daemon(name: &str) -> io::Result<()> {
    if !name.starts_with(PREFIX) || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not an ipcbench directory"),
        ));
    }
    for pid in daemon_pids(name) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let dir = daemon_dir(name);
    for f in DAEMON_FILES {
        match std::fs::remove_file(dir.join(f)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    match std::fs::remove_dir(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The files a daemon's directory holds.
pub const DAEMON_FILES: [&str; 3] = ["bus.conf", "bus", "daemon.log"];

/// Escapes `s` for a D-Bus address value (RFC: bytes outside `[-0-9A-Za-z_/.\*]` as %XX).
fn address_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'-' | b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' | b'_' | b'/' | b'.' | b'\\' | b'*' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02x}"),
        })
        .collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A private `dbus-daemon` for one channel: stopped and its directory removed on drop.
struct Daemon {
    child: Child,
    dir: PrivateDir,
    record: Object,
    address: String,
}

impl Daemon {
    fn start(id: &'static str) -> Result<Daemon, BackendError> {
        let dir = PrivateDir::create().map_err(|e| {
            BackendError::new(id, "create", "a private directory", e)
                .hint("set TMPDIR to a writable directory")
        })?;
        let name = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let record = Object::Registered {
            kind: DAEMON.kind.to_string(),
            name,
        };
        crate::sys::record::track(&record);
        let address = format!(
            "unix:path={}",
            address_escape(&dir.path().join("bus").display().to_string())
        );
        let conf = dir.path().join("bus.conf");
        let text = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>ipcbench</type>
  <listen>{}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="max_message_size">134217728</limit>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_replies_per_connection">50000</limit>
</busconfig>
"#,
            xml_escape(&address)
        );
        let write_conf = || -> io::Result<File> {
            File::create(&conf)?.write_all(text.as_bytes())?;
            File::create(dir.path().join("daemon.log"))
        };
        let log = write_conf()
            .map_err(|e| BackendError::new(id, "write", conf.display().to_string(), e))?;
        let mut cmd = Command::new("dbus-daemon");
        cmd.arg(config_arg(dir.path()))
            .args(["--nofork", "--nopidfile", "--print-address"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        // The daemon dies with the thread that started it, like the peer.
        crate::sys::fd::prepare_child(&mut cmd, &[])
            .map_err(|e| BackendError::new(id, "prepare", "dbus-daemon", e))?;
        let child = cmd.spawn().map_err(|e| {
            let hint = match e.kind() {
                io::ErrorKind::NotFound => format!("install Debian's {PACKAGE} package"),
                _ => String::new(),
            };
            let err = BackendError::new(id, "start", "dbus-daemon", e);
            match hint.is_empty() {
                true => err,
                false => err.hint(&hint),
            }
        })?;
        let mut d = Daemon {
            child,
            dir,
            record,
            address,
        };
        d.wait_listening().map_err(|e| {
            let log = std::fs::read_to_string(d.dir.path().join("daemon.log")).unwrap_or_default();
            let e = match log.trim() {
                "" => e,
                log => io::Error::new(e.kind(), format!("{e}; it said: {log}")),
            };
            BackendError::new(id, "start", "dbus-daemon", e)
        })?;
        Ok(d)
    }

    /// Waits until the daemon prints its address (it listens from then on).
    fn wait_listening(&mut self) -> io::Result<()> {
        let out = self
            .child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no pipe from the daemon"))?;
        let until = Instant::now() + DAEMON_START;
        let mut got = Vec::new();
        let mut out = out;
        while !got.contains(&b'\n') {
            let left = until.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [nix::poll::PollFd::new(
                out.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            if ms == 0 || nix::poll::poll(&mut fds, ms)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("it did not listen within {DAEMON_START:?}"),
                ));
            }
            let mut buf = [0u8; 512];
            match out.read(&mut buf)? {
                0 => {
                    let status = self.child.wait()?;
                    return Err(io::Error::other(format!(
                        "it exited ({status}) before listening"
                    )));
                }
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.dir.remove();
        crate::sys::record::untrack(&self.record);
    }
}

// ---- setting up ----

fn fail(id: &'static str, action: &'static str, what: &str, e: io::Error) -> BackendError {
    BackendError::new(id, action, what.to_string(), e)
}

/// A peer-to-peer connection on `sock`: the peer is the D-Bus server (it authenticates the
/// parent), the parent the client.
fn p2p(
    id: &'static str,
    sock: UnixStream,
    server: bool,
    deadline: Instant,
) -> Result<End, BackendError> {
    let what = "a socket pair";
    let rt = runtime().map_err(|e| fail(id, "start a runtime for", what, e))?;
    let sock = {
        let _inside = rt.enter();
        sock.set_nonblocking(true)
            .and_then(|()| tokio::net::UnixStream::from_std(sock))
            .map_err(|e| fail(id, "hand to tokio", what, e))?
    };
    let mut b = Builder::unix_stream(sock).p2p();
    if server {
        b = b
            .server(zbus::Guid::generate())
            .map_err(|e| fail(id, "serve on", what, zbus_error(e)))?;
    }
    let stream = rt
        .block_on(async {
            let deadline = tokio::time::Instant::from_std(deadline);
            tokio::time::timeout_at(deadline, b.build_message_stream()).await
        })
        .map_err(|_| {
            fail(
                id,
                "authenticate on",
                what,
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the other side did not authenticate in time",
                ),
            )
        })?
        .map_err(|e| fail(id, "authenticate on", what, zbus_error(e)))?;
    let conn = zbus::Connection::from(&stream);
    Ok(End {
        conn,
        stream,
        role: match server {
            true => Role::Callee {
                caller: None,
                pending: None,
            },
            false => Role::Caller {
                traffic: Traffic::Exchange,
                dest: None,
                awaiting: None,
            },
        },
        rt,
        _bus: None,
    })
}

/// The spec of a bus channel: the daemon's address and the parent's unique name.
fn bus_spec(address: &str, caller: &str) -> String {
    format!("{address} {caller}")
}

fn parse_bus_spec(spec: &str) -> Option<(&str, &str)> {
    let (a, c) = spec.split_once(' ')?;
    (a.starts_with("unix:path=") && c.starts_with(':')).then_some((a, c))
}

pub struct Dbus {
    info: &'static MechanismInfo,
    bus: bool,
}

static P2P_INFO: MechanismInfo = MechanismInfo {
    id: "dbus-p2p",
    family: Family::Crates,
    summary: "D-Bus method calls on zbus 5, peer to peer over a Unix socket pair (no daemon)",
    boundaries: true,
    kernel_copies: 2,
    lossy: false,
    named: false,
    cross_host: false,
    built_on: Some("unix-stream"),
    fan_in: false,
    fd_passing: true,
    portable: true,
    trade_off:
        "what D-Bus's typed messages and a zbus runtime cost over the raw socket, without a bus",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

static BUS_INFO: MechanismInfo = MechanismInfo {
    id: "dbus-bus",
    family: Family::Crates,
    summary: "D-Bus method calls on zbus 5 to a well-known name through a private dbus-daemon (every message crosses the daemon)",
    boundaries: true,
    kernel_copies: 4,
    lossy: false,
    named: true,
    cross_host: false,
    built_on: Some("unix-stream"),
    fan_in: true,
    fd_passing: true,
    portable: true,
    trade_off: "what calling a service through the D-Bus daemon costs: two socket hops and the daemon's routing per message",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

pub static DBUS_P2P: Dbus = Dbus {
    info: &P2P_INFO,
    bus: false,
};
pub static DBUS_BUS: Dbus = Dbus {
    info: &BUS_INFO,
    bus: true,
};

/// Whether `dbus-daemon` can be run from PATH.
fn daemon_installed() -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            std::fs::metadata(d.join("dbus-daemon"))
                .is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
    })
}

impl Mechanism for Dbus {
    fn info(&self) -> &'static MechanismInfo {
        self.info
    }

    /// Peer to peer the socket's close ends the connection; on a bus the parent's daemon
    /// goes with its channel, which closes the peer's connection too.
    fn close_is_seen(&self) -> bool {
        true
    }

    fn rpc(&self) -> Option<&'static str> {
        Some(match self.bus {
            false => "D-Bus: typed signatures and introspectable interfaces, the native API of systemd and the Linux desktop, here without a bus",
            true => "D-Bus through a bus: well-known names, activation, access policy and broadcast signals, at a daemon hop per message",
        })
    }

    fn setup_note(&self) -> Option<&'static str> {
        Some(match self.bus {
            false => "a socket pair made by the parent, one end passed to the peer, then D-Bus authentication",
            true => "a private dbus-daemon started per channel (setup times include its start), both sides connect, the peer owns its name",
        })
    }

    fn unsupported(&self, params: &ChannelParams, _limits: &Limits) -> Option<String> {
        if params.size > MAX_MESSAGE {
            return Some(format!(
                "{} bytes is over D-Bus's 64 MiB array limit (the message travels as an `ay`)",
                params.size
            ));
        }
        (self.bus && !daemon_installed()).then(|| {
            format!("no dbus-daemon on PATH: install Debian's {PACKAGE} package (apt-get install {PACKAGE})")
        })
    }

    fn fan_in(&self) -> super::super::fanin::Form {
        super::super::fanin::Form::Unsupported(
            "the parent is the D-Bus caller here (the peer serves), so many clients would be many services: not built",
        )
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        let id = self.info.id;
        let traffic = params.traffic;
        if !self.bus {
            let (mine, theirs) =
                UnixStream::pair().map_err(|e| fail(id, "create", "a socket pair", e))?;
            return Ok(Offer {
                spec: "p2p".to_string(),
                inherit: vec![OwnedFd::from(theirs)],
                connect: Box::new(move |rv| {
                    let mut end = p2p(id, mine, false, rv.deadline)?;
                    if let Role::Caller { traffic: t, .. } = &mut end.role {
                        *t = traffic;
                    }
                    Ok(Box::new(end) as Box<dyn Channel>)
                }),
            });
        }
        let daemon = Daemon::start(id)?;
        let what = daemon.address.clone();
        let rt = runtime().map_err(|e| fail(id, "start a runtime for", &what, e))?;
        let stream = rt
            .block_on(async {
                Builder::address(daemon.address.as_str())?
                    .build_message_stream()
                    .await
            })
            .map_err(|e| fail(id, "connect to", &what, zbus_error(e)))?;
        let conn = zbus::Connection::from(&stream);
        // Told when the peer's name loses its owner: a peer gone fails the wait at once.
        let rule = format!(
            "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{NAME}'"
        );
        rt.block_on(conn.call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            "AddMatch",
            &(rule.as_str(),),
        ))
        .map_err(|e| fail(id, "watch the peer's name on", &what, zbus_error(e)))?;
        let me = conn.unique_name().map(|n| n.to_string()).ok_or_else(|| {
            fail(
                id,
                "get a name on",
                &what,
                io::Error::other("the bus gave none"),
            )
        })?;
        let spec = bus_spec(&daemon.address, &me);
        Ok(Offer {
            spec,
            inherit: Vec::new(),
            connect: Box::new(move |rv| {
                // The peer's Ready: it owns its name and listens.
                let mut stream = stream;
                loop {
                    rv.check()
                        .map_err(|e| fail(id, "wait for the peer on", &what, e))?;
                    let until = (Instant::now() + Duration::from_millis(20)).min(rv.deadline);
                    let m = next_until(&rt, &mut stream, until)
                        .map_err(|e| fail(id, "wait for the peer on", &what, e))?;
                    if m.is_some_and(|m| {
                        let h = m.header();
                        h.message_type() == Type::MethodCall
                            && h.member().is_some_and(|n| n.as_str() == READY)
                    }) {
                        break;
                    }
                }
                Ok(Box::new(End {
                    conn,
                    stream,
                    role: Role::Caller {
                        traffic,
                        dest: Some(NAME.to_string()),
                        awaiting: None,
                    },
                    rt,
                    _bus: Some(daemon),
                }) as Box<dyn Channel>)
            }),
        })
    }

    fn join(
        &self,
        spec: &str,
        inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        let id = self.info.id;
        if !self.bus {
            if spec != "p2p" {
                return Err(BackendError::invalid(id, spec, "expected p2p"));
            }
            let fd = inherited
                .into_iter()
                .next()
                .ok_or_else(|| BackendError::invalid(id, spec, "no socket was inherited"))?;
            let deadline = Instant::now() + Duration::from_secs(30);
            return Ok(Box::new(p2p(id, UnixStream::from(fd), true, deadline)?));
        }
        let (address, caller) = parse_bus_spec(spec).ok_or_else(|| {
            BackendError::invalid(id, spec, "expected `unix:path=ADDRESS :UNIQUE-NAME`")
        })?;
        let rt = runtime().map_err(|e| fail(id, "start a runtime for", address, e))?;
        let stream = rt
            .block_on(async {
                Builder::address(address)?
                    .name(NAME)?
                    .build_message_stream()
                    .await
            })
            .map_err(|e| fail(id, "connect to and own a name on", address, zbus_error(e)))?;
        let conn = zbus::Connection::from(&stream);
        let ready = call(Some(caller), READY, &[], false)
            .map_err(|e| fail(id, "build a call on", address, zbus_error(e)))?;
        block(&rt, conn.send(&ready)).map_err(|e| fail(id, "call the parent on", address, e))?;
        Ok(Box::new(End {
            conn,
            stream,
            role: Role::Callee {
                caller: Some(caller.to_string()),
                pending: None,
            },
            rt,
            _bus: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_escape_what_d_bus_reserves() {
        assert_eq!(address_escape("/tmp/a b,c=d"), "/tmp/a%20b%2cc%3dd");
        assert_eq!(
            parse_bus_spec("unix:path=/tmp/x/bus :1.0"),
            Some(("unix:path=/tmp/x/bus", ":1.0"))
        );
        assert_eq!(parse_bus_spec("tcp:host=x :1.0"), None);
    }

    #[test]
    fn calls_and_returns_carry_messages_intact_peer_to_peer() {
        let (a, b) = UnixStream::pair().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let peer = std::thread::spawn(move || {
            let mut s = p2p("dbus-p2p", b, true, deadline).unwrap();
            let mut buf = vec![0u8; 70_000];
            for i in 0..3u8 {
                assert_eq!(s.recv(&mut buf).unwrap(), 70_000);
                assert!(buf.iter().all(|b| *b == i));
                s.send(&vec![i + 100; 70_000]).unwrap();
            }
            s.recv(&mut buf).unwrap_err().kind()
        });
        let mut c = p2p("dbus-p2p", a, false, deadline).unwrap();
        let mut buf = vec![0u8; 70_000];
        for i in 0..3u8 {
            c.send(&vec![i; 70_000]).unwrap();
            assert_eq!(c.recv(&mut buf).unwrap(), 70_000);
            assert!(buf.iter().all(|b| *b == i + 100));
        }
        drop(c);
        let closed = peer.join().unwrap();
        assert!(
            matches!(
                closed,
                io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe
            ),
            "{closed:?}"
        );
    }
}
