//! `zmq-ipc` and `zmq-tcp`: ZeroMQ on the pure-Rust `zeromq` crate (0.5, tokio; no system
//! library), over `ipc://` (a Unix stream socket in a private directory) and `tcp://`
//! (loopback). The socket pattern follows the workload (`Traffic`):
//!
//! - requests answered one at a time: REQ (the parent) and REP (the peer);
//! - a one-way stream: PUSH to a PULL for the stream, and a second PUSH/PULL pair back
//!   for the acknowledgement (ZeroMQ's pipeline pattern has no way back of its own).
//!
//! The parent binds, the peer connects (ZeroMQ does not care which side binds). Every
//! message is one frame. Each side runs the crate's tasks (its accept loops) on the
//! thread's current-thread runtime; a message is written by the send itself. ZeroMQ
//! sockets wait for a lost peer to come back rather than failing, so the parent's
//! receive also ends when the session sees the peer process exit (`abort_handle`), and the
//! peer never sees the parent's close (it closes at once in `setup`).

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::Notify;
use zeromq::{
    PullSocket, PushSocket, RepSocket, ReqSocket, Socket, SocketRecv, SocketSend, ZmqError,
    ZmqMessage,
};

use super::super::{AbortHandle, Channel, ChannelParams, Mechanism, MechanismInfo, Offer, Traffic};
use super::runtime;
use crate::error::BackendError;
use crate::sys::fs::{check_private_dir, PrivateDir};

/// How often the handshake retries a send that found no connected peer yet.
const RETRY: Duration = Duration::from_millis(1);
/// Retries that only yield before the handshake sleeps between them.
const YIELDING_TRIES: u32 = 2048;

fn zmq_error(e: ZmqError) -> io::Error {
    match e {
        ZmqError::Network(e) => e,
        ZmqError::NoMessage => io::Error::new(io::ErrorKind::UnexpectedEof, "the peer is gone"),
        e => io::Error::other(e.to_string()),
    }
}

/// The sockets of one side.
enum Sockets {
    Req(ReqSocket),
    Rep(RepSocket),
    /// A stream one way (`push` on the parent) and acknowledgements back.
    Pipeline {
        push: PushSocket,
        pull: PullSocket,
    },
}

struct End {
    /// Taken only when the channel is dropped.
    sockets: Option<Sockets>,
    rt: Rc<Runtime>,
    /// Notified when the session sees the peer exit: a receive waiting on it ends.
    abort: Arc<Notify>,
    names: Option<PrivateDir>,
    mechanism: &'static str,
    /// Tasks alive on the runtime before this channel's sockets were made.
    tasks_before: usize,
}

/// How long a dropped channel waits for the crate's tasks to stop.
const STOP_WAIT: Duration = Duration::from_millis(200);

impl Drop for End {
    /// The crate's accept loops stop when they next run after their socket is dropped:
    /// run them now, so they do not outlive the thread's state they use.
    fn drop(&mut self) {
        self.sockets = None;
        super::settle(&self.rt, self.tasks_before, STOP_WAIT);
    }
}

impl End {
    fn sockets(&mut self) -> &mut Sockets {
        self.sockets.as_mut().expect("present until drop")
    }
}

fn one_frame(m: ZmqMessage, buf: &mut [u8]) -> io::Result<usize> {
    if m.len() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a message of {} frames arrived; ipcbench sends one",
                m.len()
            ),
        ));
    }
    let data = m.get(0).map(|b| &b[..]).unwrap_or_default();
    let n = data.len().min(buf.len());
    buf[..n].copy_from_slice(&data[..n]);
    Ok(data.len())
}

impl Channel for End {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let m = ZmqMessage::from(msg.to_vec());
        let rt = Rc::clone(&self.rt);
        let sent = match self.sockets() {
            Sockets::Req(s) => rt.block_on(s.send(m)),
            Sockets::Rep(s) => rt.block_on(s.send(m)),
            Sockets::Pipeline { push, .. } => rt.block_on(push.send(m)),
        };
        sent.map_err(zmq_error)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (abort, rt) = (Arc::clone(&self.abort), Rc::clone(&self.rt));
        let got = match self.sockets() {
            Sockets::Req(s) => until_aborted(&rt, &abort, s.recv()),
            Sockets::Rep(s) => until_aborted(&rt, &abort, s.recv()),
            Sockets::Pipeline { pull, .. } => until_aborted(&rt, &abort, pull.recv()),
        }?;
        one_frame(got, buf)
    }

    fn abort_handle(&self) -> Option<AbortHandle> {
        let abort = Arc::clone(&self.abort);
        Some(Box::new(move || abort.notify_one()))
    }

    fn peer_attached(&mut self) -> Result<(), BackendError> {
        super::super::remove_names(self.mechanism, &mut self.names)
    }
}

/// Waits for `recv` unless the session says the peer exited first.
fn until_aborted(
    rt: &Runtime,
    abort: &Notify,
    recv: impl Future<Output = Result<ZmqMessage, ZmqError>>,
) -> io::Result<ZmqMessage> {
    let mut recv = pin!(recv);
    let mut aborted = pin!(abort.notified());
    rt.block_on(std::future::poll_fn(|cx| {
        if aborted.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the peer process exited",
            )));
        }
        recv.as_mut().poll(cx).map(|r| r.map_err(zmq_error))
    }))
}

/// Retries `send` of a handshake message until a peer is connected to take it.
/// The first retries only yield (the crate's accept task and the other process run), so
/// a peer that is already connecting is met within microseconds, not a sleep's millisecond.
/// `alive` ends the retries (the peer gone, the deadline passed).
async fn send_when_connected<S: SocketSend>(
    s: &mut S,
    alive: &dyn Fn() -> io::Result<()>,
) -> io::Result<()> {
    for tries in 0u32.. {
        match s.send(ZmqMessage::from(b"hello".to_vec())).await {
            Ok(()) => return Ok(()),
            Err(ZmqError::ReturnToSender { .. }) => {
                alive()?;
                if tries < YIELDING_TRIES {
                    tokio::task::yield_now().await;
                    std::thread::yield_now();
                } else {
                    tokio::time::sleep(RETRY).await;
                }
            }
            Err(e) => return Err(zmq_error(e)),
        }
    }
    unreachable!("the loop returns")
}

/// Receives the handshake message in short slices, asking `alive` between them (a PULL
/// socket waits for a lost peer forever; its receive can be dropped and begun again).
async fn recv_hello_while<S: SocketRecv>(
    s: &mut S,
    alive: &dyn Fn() -> io::Result<()>,
) -> io::Result<()> {
    loop {
        alive()?;
        let slice = Instant::now() + Duration::from_millis(20);
        match recv_hello(s, slice).await {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
            other => return other,
        }
    }
}

/// Alive until `until`.
fn until(until: Instant) -> impl Fn() -> io::Result<()> {
    move || match Instant::now() < until {
        true => Ok(()),
        false => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the other side did not connect in time",
        )),
    }
}

/// Receives the handshake message, giving up at `until`.
async fn recv_hello<S: SocketRecv>(s: &mut S, until: Instant) -> io::Result<()> {
    let deadline = tokio::time::Instant::from_std(until);
    match tokio::time::timeout_at(deadline, s.recv()).await {
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the other side did not say hello in time",
        )),
        Ok(r) => r.map(drop).map_err(zmq_error),
    }
}

/// Where the sockets are: one endpoint per direction used.
fn endpoints(over: Over, dir: Option<&Path>) -> [String; 2] {
    match (over, dir) {
        (Over::Ipc, Some(d)) => [
            format!("ipc://{}", d.join("to-peer").display()),
            format!("ipc://{}", d.join("from-peer").display()),
        ],
        _ => [
            "tcp://127.0.0.1:0".to_string(),
            "tcp://127.0.0.1:0".to_string(),
        ],
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Over {
    Ipc,
    Tcp,
}

pub struct Zmq {
    info: &'static MechanismInfo,
    over: Over,
}

const fn info(
    id: &'static str,
    summary: &'static str,
    built_on: &'static str,
    cross_host: bool,
    named: bool,
) -> MechanismInfo {
    super::framework_info(
        id,
        summary,
        built_on,
        cross_host,
        named,
        "what ZeroMQ's framing, patterns and runtime cost over the raw socket, for reconnection and routing",
    )
}

static IPC_INFO: MechanismInfo = info(
    "zmq-ipc",
    "ZeroMQ on the pure-Rust zeromq 0.5 over ipc:// (a Unix socket): REQ/REP, PUSH/PULL for throughput",
    "unix-stream",
    false,
    true,
);

static TCP_INFO: MechanismInfo = info(
    "zmq-tcp",
    "ZeroMQ on the pure-Rust zeromq 0.5 over tcp:// loopback: REQ/REP, PUSH/PULL for throughput",
    "tcp",
    true,
    false,
);

pub static ZMQ_IPC: Zmq = Zmq {
    info: &IPC_INFO,
    over: Over::Ipc,
};
pub static ZMQ_TCP: Zmq = Zmq {
    info: &TCP_INFO,
    over: Over::Tcp,
};

fn fail(id: &'static str, action: &'static str, what: &str, e: io::Error) -> BackendError {
    BackendError::new(id, action, what.to_string(), e)
}

impl Mechanism for Zmq {
    fn info(&self) -> &'static MechanismInfo {
        self.info
    }

    fn setup_note(&self) -> Option<&'static str> {
        Some("the peer never sees the close (ZeroMQ waits for a lost peer to reconnect), so both closes are added")
    }

    fn fan_in(&self) -> super::super::fanin::Form {
        super::super::fanin::Form::Unsupported(
            "ZeroMQ would fan in with one ROUTER or PULL socket, not a channel per client: not built",
        )
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        let id = self.info.id;
        let traffic = params.traffic;
        let rt = runtime().map_err(|e| fail(id, "start a runtime for", "ZeroMQ", e))?;
        let tasks_before = rt.metrics().num_alive_tasks();
        let dir = match self.over {
            Over::Ipc => Some(PrivateDir::create().map_err(|e| {
                BackendError::new(id, "create", "a private directory", e)
                    .hint("set TMPDIR to a writable directory")
            })?),
            Over::Tcp => None,
        };
        let [to_peer, from_peer] = endpoints(self.over, dir.as_ref().map(|d| d.path()));
        let bind = |what: &str, e: ZmqError| fail(id, "bind", what, zmq_error(e));
        let (sockets, spec) = match traffic {
            Traffic::Exchange => {
                let mut req = ReqSocket::new();
                let at = rt
                    .block_on(req.bind(&to_peer))
                    .map_err(|e| bind(&to_peer, e))?;
                (Sockets::Req(req), format!("{}\n{at}", traffic.as_str()))
            }
            Traffic::OneWay => {
                let (mut push, mut pull) = (PushSocket::new(), PullSocket::new());
                let out = rt
                    .block_on(push.bind(&to_peer))
                    .map_err(|e| bind(&to_peer, e))?;
                let back = rt
                    .block_on(pull.bind(&from_peer))
                    .map_err(|e| bind(&from_peer, e))?;
                (
                    Sockets::Pipeline { push, pull },
                    format!("{}\n{out}\n{back}", traffic.as_str()),
                )
            }
        };
        let what = spec.replace('\n', " ");
        Ok(Offer {
            spec,
            inherit: Vec::new(),
            connect: Box::new(move |rv| {
                let mut sockets = sockets;
                // The peer gone or the deadline passed ends the handshake.
                let alive = || rv.check();
                let hello = rt.block_on(async {
                    match &mut sockets {
                        Sockets::Req(s) => {
                            send_when_connected(s, &alive).await?;
                            // Connected: a peer that dies now closes the connection.
                            recv_hello(s, rv.deadline).await
                        }
                        Sockets::Pipeline { push, pull } => {
                            recv_hello_while(pull, &alive).await?;
                            send_when_connected(push, &alive).await
                        }
                        Sockets::Rep(_) => unreachable!("the parent never answers"),
                    }
                });
                hello.map_err(|e| fail(id, "meet the peer on", &what, e))?;
                Ok(Box::new(End {
                    sockets: Some(sockets),
                    rt,
                    abort: Arc::new(Notify::new()),
                    names: dir,
                    mechanism: id,
                    tasks_before,
                }) as Box<dyn Channel>)
            }),
        })
    }

    fn join(
        &self,
        spec: &str,
        _inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        let id = self.info.id;
        let mut parts = spec.split('\n');
        let traffic = parts.next().and_then(Traffic::parse);
        let ends: Vec<&str> = parts.collect();
        let scheme = match self.over {
            Over::Ipc => "ipc://",
            Over::Tcp => "tcp://127.0.0.1:",
        };
        let shape_ok = match traffic {
            Some(Traffic::Exchange) => ends.len() == 1,
            Some(Traffic::OneWay) => ends.len() == 2,
            None => false,
        };
        if !shape_ok || !ends.iter().all(|e| e.starts_with(scheme)) {
            return Err(BackendError::invalid(
                id,
                spec,
                &format!("expected exchange or one-way, then one or two {scheme} endpoints"),
            ));
        }
        if self.over == Over::Ipc {
            for e in &ends {
                let dir = Path::new(&e[scheme.len()..])
                    .parent()
                    .unwrap_or(Path::new(""));
                check_private_dir(dir).map_err(|why| BackendError::invalid(id, spec, &why))?;
            }
        }
        let rt = runtime().map_err(|e| fail(id, "start a runtime for", "ZeroMQ", e))?;
        let tasks_before = rt.metrics().num_alive_tasks();
        let until = Instant::now() + Duration::from_secs(30);
        let connect = |e: ZmqError| fail(id, "connect to", &spec.replace('\n', " "), zmq_error(e));
        let sockets = match traffic {
            Some(Traffic::OneWay) => {
                let (mut pull, mut push) = (PullSocket::new(), PushSocket::new());
                rt.block_on(pull.connect(ends[0])).map_err(connect)?;
                rt.block_on(push.connect(ends[1])).map_err(connect)?;
                let alive = self::until(until);
                rt.block_on(async {
                    send_when_connected(&mut push, &alive).await?;
                    recv_hello(&mut pull, until).await
                })
                .map_err(|e| fail(id, "meet the parent on", ends[0], e))?;
                Sockets::Pipeline { push, pull }
            }
            _ => {
                let mut rep = RepSocket::new();
                rt.block_on(rep.connect(ends[0])).map_err(connect)?;
                rt.block_on(async {
                    recv_hello(&mut rep, until).await?;
                    rep.send(ZmqMessage::from(b"hello".to_vec()))
                        .await
                        .map_err(zmq_error)
                })
                .map_err(|e| fail(id, "meet the parent on", ends[0], e))?;
                Sockets::Rep(rep)
            }
        };
        Ok(Box::new(End {
            sockets: Some(sockets),
            rt,
            abort: Arc::new(Notify::new()),
            names: None,
            mechanism: id,
            tasks_before,
        }))
    }
}
