//! `grpc-tcp` and `grpc-unix`: gRPC on tonic 0.14 over the sockets of `tcp` and
//! `unix-stream` (set up exactly as they are). The parent is the gRPC client (tonic's
//! `Channel`, as generated clients use it), the peer the server (tonic's gRPC codec on
//! hyper's HTTP/2 server connection: what tonic's own `Server` runs, without its router).
//! A message is the `bytes` field of a protobuf message (`Payload`, hand-written with
//! prost's derive, so no `.proto` and no protoc are needed).
//!
//! The call pattern follows the workload (`Traffic`): requests answered one at a time are
//! unary calls (`/ipcbench.Echo/Call`); a one-way stream is one bidirectional streaming
//! call (`/ipcbench.Echo/Stream`) whose request messages are the stream and whose response
//! messages are the acknowledgements. The server serves both; the client picks.
//!
//! Both sides run on the thread's current-thread runtime (`driven`). The client's
//! connection and request tasks are tonic's own, spawned on it; the server's connection
//! future is polled inside each send and receive, and a send returns once its answer has
//! left for the kernel. Messages are limited by tonic's default 4 MiB decoding limit,
//! which users of gRPC meet too: larger sizes are `unsupported`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use hyper::body::{Bytes, Incoming};
use hyper::http::uri::PathAndQuery;
use hyper::{Request, Response, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tonic::codec::Streaming;
use tonic::transport::{Channel as TonicChannel, Endpoint};
use tonic::Status;
use tonic_prost::ProstCodec;

use super::super::{Channel, ChannelParams, Mechanism, MechanismInfo, Offer, Traffic};
use super::driven::{drive, take_over, Answer, Conn, Io, Progress, Watched};
use super::runtime;
use super::tokio_sockets::Socket;
use super::Over;
use crate::environment::Limits;
use crate::error::BackendError;
use crate::sys::fs::PrivateDir;

/// tonic's default limit on a decoded message (`max_decoding_message_size`).
pub const MAX_MESSAGE: usize = 4 << 20;
/// What a `Payload` adds around its bytes (field tag and length) and gRPC around a message
/// (compression flag and length), at most.
const FRAMING: usize = 16;

const CALL: &str = "/ipcbench.Echo/Call";
const STREAM: &str = "/ipcbench.Echo/Stream";

/// The one protobuf message: `message Payload { bytes data = 1; }`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
}

fn codec() -> ProstCodec<Payload, Payload> {
    ProstCodec::default()
}

/// A channel receiver as a stream of messages (a streaming call's requests or responses).
struct Outbound<T>(mpsc::Receiver<T>);

impl<T> Stream for Outbound<T> {
    type Item = T;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().0.poll_recv(cx)
    }
}

/// Where a streaming call's responses go.
type Responses = mpsc::Sender<Result<Payload, Status>>;

/// What the server's handlers hand to the channel.
enum Inbound {
    /// A unary call's request and where its answer goes.
    Call(Bytes, oneshot::Sender<Bytes>),
    /// A streaming call: its requests, and where its responses go.
    Stream(Streaming<Payload>, Responses),
}

type Handled<T> = Pin<Box<dyn Future<Output = Result<tonic::Response<T>, Status>> + Send>>;

/// The unary method: hands the request to the channel and answers with what it sends.
struct Unary(mpsc::UnboundedSender<Inbound>);

impl tower_service::Service<tonic::Request<Payload>> for Unary {
    type Response = tonic::Response<Payload>;
    type Error = Status;
    type Future = Handled<Payload>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::Request<Payload>) -> Handled<Payload> {
        let inbox = self.0.clone();
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            inbox
                .send(Inbound::Call(req.into_inner().data, tx))
                .map_err(|_| Status::unavailable("the channel is gone"))?;
            let data = rx
                .await
                .map_err(|_| Status::aborted("the channel dropped the call"))?;
            Ok(tonic::Response::new(Payload { data }))
        })
    }
}

/// The streaming method: hands the request stream and a response stream to the channel.
struct Streams(mpsc::UnboundedSender<Inbound>);

type Replies = Outbound<Result<Payload, Status>>;

impl tower_service::Service<tonic::Request<Streaming<Payload>>> for Streams {
    type Response = tonic::Response<Replies>;
    type Error = Status;
    type Future = Handled<Replies>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::Request<Streaming<Payload>>) -> Handled<Replies> {
        let inbox = self.0.clone();
        Box::pin(async move {
            let (tx, rx) = mpsc::channel(1);
            inbox
                .send(Inbound::Stream(req.into_inner(), tx))
                .map_err(|_| Status::unavailable("the channel is gone"))?;
            Ok(tonic::Response::new(Outbound(rx)))
        })
    }
}

/// The server: routes the two methods to tonic's codec, watching each answer.
#[derive(Clone)]
struct Service {
    inbox: mpsc::UnboundedSender<Inbound>,
    progress: Arc<Progress>,
}

type Reply = Watched<tonic::body::Body>;
type Serving = Pin<Box<dyn Future<Output = Result<Response<Reply>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<Reply>;
    type Error = Infallible;
    type Future = Serving;

    fn call(&self, req: Request<Incoming>) -> Serving {
        let this = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(codec());
            let (resp, answer) = match req.uri().path() {
                CALL => (grpc.unary(Unary(this.inbox), req).await, Answer::Body),
                STREAM => (
                    grpc.streaming(Streams(this.inbox), req).await,
                    Answer::Frame,
                ),
                other => (
                    Status::unimplemented(format!("no method {other}")).into_http(),
                    Answer::Body,
                ),
            };
            Ok(resp.map(|inner| Watched {
                inner,
                progress: this.progress,
                answer,
            }))
        })
    }
}

fn status(s: Status) -> io::Error {
    let kind = match s.code() {
        tonic::Code::Unavailable | tonic::Code::Cancelled => io::ErrorKind::ConnectionReset,
        tonic::Code::ResourceExhausted | tonic::Code::InvalidArgument => io::ErrorKind::InvalidData,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("gRPC status {:?}: {}", s.code(), s.message()))
}

/// The client's bidirectional stream, opened by its first one-way send.
struct Streamed {
    requests: mpsc::Sender<Payload>,
    /// The call until its response headers arrive, then its response messages.
    call: Option<JoinHandle<Result<tonic::Response<Streaming<Payload>>, Status>>>,
    replies: Option<Streaming<Payload>>,
}

/// The parent's end: a tonic client on one HTTP/2 connection.
struct Client {
    /// Taken only when the channel is dropped.
    grpc: Option<tonic::client::Grpc<TonicChannel>>,
    traffic: Traffic,
    /// The last unary call's answer, until `recv` takes it.
    answer: Option<Bytes>,
    stream: Option<Streamed>,
    rt: Rc<Runtime>,
    sock: OwnedFd,
    names: Option<PrivateDir>,
    mechanism: &'static str,
    /// Tasks alive on the runtime before this client's (its own end with it).
    tasks_before: usize,
}

impl Client {
    fn open_stream(&mut self) -> &mut Streamed {
        let (requests, rx) = mpsc::channel(1);
        let mut grpc = self.grpc.clone().expect("present until drop");
        let call = self.rt.spawn(async move {
            grpc.ready()
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            let path = PathAndQuery::from_static(STREAM);
            grpc.streaming(tonic::Request::new(Outbound(rx)), path, codec())
                .await
        });
        self.stream.insert(Streamed {
            requests,
            call: Some(call),
            replies: None,
        })
    }

    /// The stream's response messages, once its call has been answered.
    fn replies(rt: &Runtime, s: &mut Streamed) -> io::Result<()> {
        if let Some(call) = s.call.take() {
            let resp = rt
                .block_on(call)
                .map_err(io::Error::other)?
                .map_err(status)?;
            s.replies = Some(resp.into_inner());
        }
        Ok(())
    }
}

impl Channel for Client {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let payload = Payload {
            data: Bytes::copy_from_slice(msg),
        };
        if self.traffic == Traffic::OneWay {
            let rt = Rc::clone(&self.rt);
            let s = match self.stream.as_mut() {
                Some(s) => s,
                None => self.open_stream(),
            };
            if rt.block_on(s.requests.send(payload)).is_err() {
                // The call ended: its outcome says why.
                Client::replies(&rt, s)?;
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "the server ended the stream",
                ));
            }
            return Ok(());
        }
        let grpc = self.grpc.as_mut().expect("present until drop");
        let resp = self.rt.block_on(async move {
            grpc.ready()
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            let path = PathAndQuery::from_static(CALL);
            grpc.unary(tonic::Request::new(payload), path, codec())
                .await
        });
        self.answer = Some(resp.map_err(status)?.into_inner().data);
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let data = match (self.answer.take(), self.stream.as_mut()) {
            (Some(d), _) => d,
            (None, Some(s)) => {
                Client::replies(&self.rt, s)?;
                let replies = s.replies.as_mut().ok_or_else(|| {
                    io::Error::other("the stream's call was answered with no responses")
                })?;
                self.rt
                    .block_on(replies.message())
                    .map_err(status)?
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::UnexpectedEof, "the server ended the stream")
                    })?
                    .data
            }
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a gRPC client receives only answers to its calls",
                ))
            }
        };
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok(data.len())
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.sock.as_fd())
    }

    fn peer_attached(&mut self) -> Result<(), BackendError> {
        super::super::remove_names(self.mechanism, &mut self.names)
    }
}

/// How long a dropped client waits for tonic's connection to close its socket.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

impl Drop for Client {
    /// tonic's connection and buffer tasks live on this thread's runtime, which outlives
    /// the channel. Without its channel they end once the HTTP/2 connection has said
    /// goodbye (a GOAWAY and a PING the server answers): run them until they have, so the
    /// socket closes now, with a reset where SO_LINGER 0 asks for one. Should they not end
    /// in time, the socket is shut down so the server sees the close regardless.
    fn drop(&mut self) {
        self.grpc = None;
        self.stream = None;
        let ended = super::settle(&self.rt, self.tasks_before, CLOSE_WAIT);
        if !ended {
            let fd = self.sock.as_raw_fd();
            let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Both);
        }
    }
}

type ServerConn<S> = hyper::server::conn::http2::Connection<Io<S>, Service, TokioExecutor>;

/// The peer's end: the gRPC server on the connection.
struct Server<S: Socket> {
    conn: Pin<Box<ServerConn<S::Async>>>,
    ended: bool,
    inbox: mpsc::UnboundedReceiver<Inbound>,
    /// The unary call being answered.
    pending: Option<oneshot::Sender<Bytes>>,
    /// A streaming call's requests and where its responses go.
    stream: Option<(Streaming<Payload>, Responses)>,
    progress: Arc<Progress>,
    rt: Rc<Runtime>,
    sock: OwnedFd,
}

/// What the server's receive got.
enum Got {
    Call(Bytes, oneshot::Sender<Bytes>),
    Streamed(Bytes),
}

impl<S: Socket> Channel for Server<S> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let data = Bytes::copy_from_slice(msg);
        self.progress.reset();
        let progress = &self.progress;
        let mut last = progress.writes();
        let conn: Conn<'_, hyper::Error> = self.conn.as_mut();
        if let Some(answer) = self.pending.take() {
            answer
                .send(data)
                .map_err(|_| io::Error::other("the call was abandoned"))?;
            return drive(&self.rt, Some(conn), &mut self.ended, |cx| {
                match progress.out(&mut last, cx) {
                    true => Poll::Ready(Ok(())),
                    false => Poll::Pending,
                }
            });
        }
        let (_, replies) = self.stream.as_ref().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a gRPC server sends only answers to calls",
            )
        })?;
        let mut sending = pin!(replies.send(Ok(Payload { data })));
        let mut queued = false;
        drive(&self.rt, Some(conn), &mut self.ended, |cx| {
            if !queued {
                match sending.as_mut().poll(cx) {
                    Poll::Ready(Ok(())) => queued = true,
                    Poll::Ready(Err(_)) => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::ConnectionReset,
                            "the client ended the stream",
                        )))
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            match progress.out(&mut last, cx) {
                true => Poll::Ready(Ok(())),
                false => Poll::Pending,
            }
        })
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (inbox, stream) = (&mut self.inbox, &mut self.stream);
        let conn: Conn<'_, hyper::Error> = self.conn.as_mut();
        let got = drive(&self.rt, Some(conn), &mut self.ended, |cx| loop {
            if let Some((requests, _)) = stream.as_mut() {
                return match Pin::new(requests).poll_next(cx) {
                    Poll::Ready(Some(Ok(p))) => Poll::Ready(Ok(Got::Streamed(p.data))),
                    Poll::Ready(Some(Err(s))) => Poll::Ready(Err(status(s))),
                    Poll::Ready(None) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client ended its stream",
                    ))),
                    Poll::Pending => Poll::Pending,
                };
            }
            return match inbox.poll_recv(cx) {
                Poll::Ready(Some(Inbound::Call(data, answer))) => {
                    Poll::Ready(Ok(Got::Call(data, answer)))
                }
                Poll::Ready(Some(Inbound::Stream(requests, replies))) => {
                    *stream = Some((requests, replies));
                    continue;
                }
                Poll::Ready(None) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection's server is gone",
                ))),
                Poll::Pending => Poll::Pending,
            };
        })?;
        let data = match got {
            Got::Call(data, answer) => {
                self.pending = Some(answer);
                data
            }
            Got::Streamed(data) => data,
        };
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok(data.len())
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.sock.as_fd())
    }
}

/// Hands tonic's channel the one connection it may make (a reconnection is refused, so a
/// lost peer fails the next call rather than waiting for a new one).
struct Once<T>(Option<T>);

impl<T: Send + 'static> tower_service::Service<Uri> for Once<T> {
    type Response = T;
    type Error = io::Error;
    type Future = std::future::Ready<io::Result<T>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        std::future::ready(self.0.take().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the connection to the peer was lost; ipcbench does not reconnect",
            )
        }))
    }
}

fn client<S: Socket>(
    id: &'static str,
    sock: S,
    what: &str,
    names: Option<PrivateDir>,
    traffic: Traffic,
) -> Result<Box<dyn Channel>, BackendError> {
    let fail = |e: io::Error| BackendError::new(id, "start a gRPC client on", what, e);
    let rt = runtime().map_err(fail)?;
    let tasks_before = rt.metrics().num_alive_tasks();
    let sock = {
        let _inside = rt.enter();
        sock.into_async().map_err(fail)?
    };
    let fd = sock.as_fd().try_clone_to_owned().map_err(fail)?;
    let channel = rt
        .block_on(
            Endpoint::from_static("http://ipcbench")
                .connect_with_connector(Once(Some(TokioIo::new(sock)))),
        )
        .map_err(|e| fail(io::Error::other(e)))?;
    Ok(Box::new(Client {
        grpc: Some(tonic::client::Grpc::new(channel)),
        traffic,
        answer: None,
        stream: None,
        rt,
        sock: fd,
        names,
        mechanism: id,
        tasks_before,
    }))
}

fn server<S: Socket>(
    id: &'static str,
    sock: S,
    what: &str,
) -> Result<Box<dyn Channel>, BackendError> {
    let progress = Arc::new(Progress::default());
    let (rt, io, fd) = take_over(sock, &progress)
        .map_err(|e| BackendError::new(id, "start a gRPC server on", what, e))?;
    let (tx, inbox) = mpsc::unbounded_channel();
    let service = Service {
        inbox: tx,
        progress: Arc::clone(&progress),
    };
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(io, service);
    Ok(Box::new(Server::<S> {
        conn: Box::pin(conn),
        ended: false,
        inbox,
        pending: None,
        stream: None,
        progress,
        rt,
        sock: fd,
    }))
}

fn server_unix(
    id: &'static str,
    sock: std::os::unix::net::UnixStream,
    path: &Path,
    _names: Option<PrivateDir>,
) -> Result<Box<dyn Channel>, BackendError> {
    server(id, sock, &path.display().to_string())
}

fn server_tcp(
    id: &'static str,
    sock: std::net::TcpStream,
    what: &str,
) -> Result<Box<dyn Channel>, BackendError> {
    server(id, sock, what)
}

pub struct Grpc {
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
        "what a gRPC service pays over the raw socket: HTTP/2 framing, protobuf, a runtime, for a schema and generated clients",
    )
}

static TCP_INFO: MechanismInfo = info(
    "grpc-tcp",
    "gRPC on tonic 0.14 over loopback TCP: unary calls, a bidirectional stream for throughput",
    "tcp",
    true,
    false,
);

static UNIX_INFO: MechanismInfo = info(
    "grpc-unix",
    "gRPC on tonic 0.14 over a Unix stream socket: unary calls, a bidirectional stream for throughput",
    "unix-stream",
    false,
    true,
);

pub static GRPC_TCP: Grpc = Grpc {
    info: &TCP_INFO,
    over: Over::Tcp,
};
pub static GRPC_UNIX: Grpc = Grpc {
    info: &UNIX_INFO,
    over: Over::UnixStream,
};

impl Mechanism for Grpc {
    fn info(&self) -> &'static MechanismInfo {
        self.info
    }

    /// The server's connection ends when the client closes.
    fn close_is_seen(&self) -> bool {
        true
    }

    fn rpc(&self) -> Option<&'static str> {
        Some("gRPC: a .proto contract with generated clients and servers in a dozen languages, deadlines, status codes and streaming calls")
    }

    fn unsupported(&self, params: &ChannelParams, _limits: &Limits) -> Option<String> {
        (params.size + FRAMING > MAX_MESSAGE).then(|| {
            format!(
                "{} bytes is over gRPC's default {MAX_MESSAGE}-byte message limit (tonic's max_decoding_message_size, which services usually keep)",
                params.size
            )
        })
    }

    fn fan_in(&self) -> super::super::fanin::Form {
        super::super::fanin::Form::Unsupported(
            "the parent is the gRPC client here (the peer serves), so many clients would be many servers: not built",
        )
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        let traffic = params.traffic;
        self.over.offer(
            self.info.id,
            move |id, sock, path, names| {
                client(id, sock, &path.display().to_string(), names, traffic)
            },
            move |id, sock, what| client(id, sock, what, None, traffic),
        )
    }

    fn join(
        &self,
        spec: &str,
        _inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        self.over.join(self.info.id, spec, server_unix, server_tcp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    /// A client, and a server serving in a thread with `serve`.
    fn pair<T: Send + 'static>(
        traffic: Traffic,
        serve: impl FnOnce(Box<dyn Channel>) -> T + Send + 'static,
    ) -> (Box<dyn Channel>, std::thread::JoinHandle<T>) {
        let (a, b) = UnixStream::pair().unwrap();
        let peer =
            std::thread::spawn(move || serve(server("grpc-unix", b, "a socket pair").unwrap()));
        let c = client("grpc-unix", a, "a socket pair", None, traffic).unwrap();
        (c, peer)
    }

    #[test]
    fn unary_calls_carry_each_request_and_its_answer_intact() {
        let (a, b) = UnixStream::pair().unwrap();
        let peer = std::thread::spawn(move || {
            let mut s = server("grpc-unix", b, "a socket pair").unwrap();
            let mut buf = vec![0u8; 5];
            for i in 0..3u8 {
                assert_eq!(s.recv(&mut buf).unwrap(), 5);
                assert_eq!(&buf, &[b'h', b'e', b'l', b'l', i]);
                s.send(&[b'w', b'o', b'r', b'l', i]).unwrap();
            }
            // The client's close ends the connection: the server's next wait says so.
            s.recv(&mut buf).unwrap_err().kind()
        });
        let mut c = client("grpc-unix", a, "a socket pair", None, Traffic::Exchange).unwrap();
        let mut buf = vec![0u8; 5];
        for i in 0..3u8 {
            c.send(&[b'h', b'e', b'l', b'l', i]).unwrap();
            assert_eq!(c.recv(&mut buf).unwrap(), 5);
            assert_eq!(&buf, &[b'w', b'o', b'r', b'l', i]);
        }
        drop(c);
        // The close is seen as an orderly end, or as a failed connection when tonic's
        // goodbye did not finish and the socket was shut down: both are what `setup`
        // counts as the close seen, nothing else is.
        let closed = peer.join().unwrap();
        assert!(
            matches!(
                closed,
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ),
            "{closed:?}"
        );
    }

    #[test]
    fn a_call_larger_than_the_flow_control_windows_completes_intact() {
        const MIB: usize = 1 << 20;
        // The server stays until the client has read its last reply, as a session's peer
        // does (it waits for its next order): dropping its connection earlier could cut
        // the last reply's body short, which is not what this test is about.
        let (read_all, wait_for_client) = std::sync::mpsc::channel::<()>();
        let (mut c, peer) = pair(Traffic::Exchange, move |mut s| {
            let mut buf = vec![0u8; MIB];
            for i in 0..2u8 {
                assert_eq!(s.recv(&mut buf).unwrap(), MIB);
                assert!(buf.iter().all(|b| *b == i));
                s.send(&vec![i + 1; MIB]).unwrap();
            }
            let _ = wait_for_client.recv();
        });
        let mut buf = vec![0u8; MIB];
        for i in 0..2u8 {
            c.send(&vec![i; MIB]).unwrap();
            assert_eq!(c.recv(&mut buf).unwrap(), MIB);
            assert!(buf.iter().all(|b| *b == i + 1));
        }
        read_all.send(()).unwrap();
        peer.join().unwrap();
    }

    #[test]
    fn a_one_way_stream_arrives_in_order_and_its_acknowledgement_returns() {
        let (mut c, echo) = pair(Traffic::OneWay, |mut s| {
            let mut buf = vec![0u8; 4096];
            for round in 0..2u32 {
                for i in 0..100u32 {
                    assert_eq!(s.recv(&mut buf).unwrap(), 4096);
                    assert_eq!(buf[..4], (round * 100 + i).to_le_bytes());
                }
                s.send(b"ack").unwrap();
            }
        });
        let mut msg = vec![7u8; 4096];
        let mut ack = [0u8; 8];
        for round in 0..2u32 {
            for i in 0..100u32 {
                msg[..4].copy_from_slice(&(round * 100 + i).to_le_bytes());
                c.send(&msg).unwrap();
            }
            assert_eq!(c.recv(&mut ack).unwrap(), 3);
            assert_eq!(&ack[..3], b"ack");
        }
        echo.join().unwrap();
    }

    #[test]
    fn a_server_gone_fails_the_next_call_with_a_status_never_a_hang() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b); // the server's end closes before or during the handshake
        match client("grpc-unix", a, "a socket pair", None, Traffic::Exchange) {
            Ok(mut c) => {
                let err = c.send(b"one").unwrap_err();
                assert!(err.to_string().contains("gRPC status"), "{err}");
            }
            Err(e) => assert!(e.to_string().contains("start a gRPC client"), "{e}"),
        }
    }

    #[test]
    fn sizes_over_the_message_limit_are_unsupported_with_the_reason() {
        let limits = crate::environment::Limits::read();
        let why = GRPC_UNIX
            .unsupported(&ChannelParams::new(MAX_MESSAGE), &limits)
            .unwrap();
        assert!(why.contains("message limit"), "{why}");
        assert!(GRPC_TCP
            .unsupported(&ChannelParams::new(1 << 20), &limits)
            .is_none());
    }
}
