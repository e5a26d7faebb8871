//! `http-tcp` and `http-unix`: HTTP/1.1 on hyper 1, keep-alive, over the sockets of `tcp`
//! and `unix-stream` (set up exactly as they are). A message from the parent is the body of
//! a `POST /` request; the peer's message is the body of the `200 OK` response, so the
//! parent is the HTTP client and the peer the server (the connection itself is made the
//! other way round, as for every socket mechanism here: HTTP does not care who dialled).
//!
//! Each side drives its hyper connection from its own thread (`driven`): the connection
//! future is polled inside each send and receive, no task is spawned. A send returns once
//! the request's response has arrived (the client) or once the response has left for the
//! kernel (the server: its socket's flush after the body was written), so no reply is left
//! half-written in a buffer.
//! The server takes bodies of at most `MAX_BODY` bytes and answers larger ones with
//! `413 Payload Too Large`, which the client reports; sizes above it are `unsupported`.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::task::Poll;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use super::super::{Channel, ChannelParams, Mechanism, MechanismInfo, Offer};
use super::driven::{drive, take_over, Answer, Conn, Io, Progress, Watched};
use super::tokio_sockets::Socket;
use super::Over;
use crate::environment::Limits;
use crate::error::BackendError;
use crate::sys::fs::PrivateDir;

/// The largest body the server takes (a server's usual request-size cap, here 8 MiB).
pub const MAX_BODY: usize = 8 << 20;

/// A request's body and where its answer goes.
type Inbound = (Bytes, oneshot::Sender<Bytes>);

/// The server's request handler: hands each body to the channel and answers with what the
/// channel sends back; a body over `MAX_BODY` gets 413.
struct Service {
    inbox: mpsc::Sender<Inbound>,
    progress: Arc<Progress>,
}

/// The response body: the answer, watched until hyper has written all of it.
type Reply = Watched<Full<Bytes>>;

type Handling = Pin<Box<dyn Future<Output = Result<Response<Reply>, io::Error>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<Reply>;
    type Error = io::Error;
    type Future = Handling;

    fn call(&self, req: Request<Incoming>) -> Handling {
        let inbox = self.inbox.clone();
        let progress = Arc::clone(&self.progress);
        Box::pin(async move {
            let respond = |status, body: Bytes| {
                let mut r = Response::new(Watched {
                    inner: Full::new(body),
                    progress,
                    answer: Answer::Body,
                });
                *r.status_mut() = status;
                r
            };
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    let why = format!("request body refused: {e} (at most {MAX_BODY} bytes)");
                    return Ok(respond(StatusCode::PAYLOAD_TOO_LARGE, Bytes::from(why)));
                }
            };
            let (tx, rx) = oneshot::channel();
            inbox
                .send((body, tx))
                .map_err(|_| io::Error::other("the channel is gone"))?;
            let reply = rx
                .await
                .map_err(|_| io::Error::other("the channel dropped the request"))?;
            Ok(respond(StatusCode::OK, reply))
        })
    }
}

type ClientConn<S> = hyper::client::conn::http1::Connection<Io<S>, Full<Bytes>>;

/// The parent's end: an HTTP client on one keep-alive connection.
struct Client<S: Socket> {
    conn: Pin<Box<ClientConn<S::Async>>>,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    ended: bool,
    /// The last response's body, until `recv` takes it.
    body: Option<Bytes>,
    rt: Rc<Runtime>,
    sock: OwnedFd,
    names: Option<PrivateDir>,
    mechanism: &'static str,
}

impl<S: Socket> Channel for Client<S> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let req = Request::post("/")
            .header(hyper::header::HOST, "ipcbench")
            .body(Full::new(Bytes::copy_from_slice(msg)))
            .map_err(io::Error::other)?;
        let sender = &mut self.sender;
        let mut exchange = pin!(async move {
            sender.ready().await.map_err(io::Error::other)?;
            let resp = sender.send_request(req).await.map_err(io::Error::other)?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(io::Error::other)?
                .to_bytes();
            if status != StatusCode::OK {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the server answered {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    ),
                ));
            }
            Ok(body)
        });
        let conn: Conn<'_, hyper::Error> = self.conn.as_mut();
        let body = drive(&self.rt, Some(conn), &mut self.ended, |cx| {
            exchange.as_mut().poll(cx)
        })?;
        self.body = Some(body);
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let body = self.body.take().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "an HTTP client receives only the response to its request",
            )
        })?;
        let n = body.len().min(buf.len());
        buf[..n].copy_from_slice(&body[..n]);
        Ok(body.len())
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.sock.as_fd())
    }

    fn peer_attached(&mut self) -> Result<(), BackendError> {
        super::super::remove_names(self.mechanism, &mut self.names)
    }
}

type ServerConn<S> = hyper::server::conn::http1::Connection<Io<S>, Service>;

/// The peer's end: an HTTP server on the connection.
struct Server<S: Socket> {
    conn: Pin<Box<ServerConn<S::Async>>>,
    ended: bool,
    inbox: mpsc::Receiver<Inbound>,
    /// The request being answered.
    pending: Option<oneshot::Sender<Bytes>>,
    progress: Arc<Progress>,
    rt: Rc<Runtime>,
    sock: OwnedFd,
}

impl<S: Socket> Channel for Server<S> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let answer = self.pending.take().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "an HTTP server sends only a response to a request",
            )
        })?;
        self.progress.reset();
        answer
            .send(Bytes::copy_from_slice(msg))
            .map_err(|_| io::Error::other("the request was abandoned"))?;
        let progress = &self.progress;
        let mut last = progress.writes();
        let conn: Conn<'_, hyper::Error> = self.conn.as_mut();
        drive(&self.rt, Some(conn), &mut self.ended, |cx| {
            match progress.out(&mut last, cx) {
                true => Poll::Ready(Ok(())),
                false => Poll::Pending,
            }
        })
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let inbox = &self.inbox;
        let conn: Conn<'_, hyper::Error> = self.conn.as_mut();
        let (body, answer) = drive(&self.rt, Some(conn), &mut self.ended, |_| {
            match inbox.try_recv() {
                Ok(r) => Poll::Ready(Ok(r)),
                Err(_) => Poll::Pending,
            }
        })?;
        self.pending = Some(answer);
        let n = body.len().min(buf.len());
        buf[..n].copy_from_slice(&body[..n]);
        Ok(body.len())
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.sock.as_fd())
    }
}

fn client<S: Socket>(
    id: &'static str,
    sock: S,
    what: &str,
    names: Option<PrivateDir>,
) -> Result<Box<dyn Channel>, BackendError> {
    let fail = |e: io::Error| BackendError::new(id, "start an HTTP client on", what, e);
    let (rt, io, fd) = take_over(sock, &Arc::default()).map_err(fail)?;
    let (sender, conn) = rt
        .block_on(hyper::client::conn::http1::handshake(io))
        .map_err(|e| fail(io::Error::other(e)))?;
    Ok(Box::new(Client::<S> {
        conn: Box::pin(conn),
        sender,
        ended: false,
        body: None,
        rt,
        sock: fd,
        names,
        mechanism: id,
    }))
}

fn server<S: Socket>(
    id: &'static str,
    sock: S,
    what: &str,
) -> Result<Box<dyn Channel>, BackendError> {
    let progress = Arc::new(Progress::default());
    let (rt, io, fd) = take_over(sock, &progress)
        .map_err(|e| BackendError::new(id, "start an HTTP server on", what, e))?;
    let (tx, inbox) = mpsc::channel();
    let service = Service {
        inbox: tx,
        progress: Arc::clone(&progress),
    };
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    Ok(Box::new(Server::<S> {
        conn: Box::pin(conn),
        ended: false,
        inbox,
        pending: None,
        progress,
        rt,
        sock: fd,
    }))
}

fn client_unix(
    id: &'static str,
    sock: std::os::unix::net::UnixStream,
    path: &Path,
    names: Option<PrivateDir>,
) -> Result<Box<dyn Channel>, BackendError> {
    client(id, sock, &path.display().to_string(), names)
}

fn server_unix(
    id: &'static str,
    sock: std::os::unix::net::UnixStream,
    path: &Path,
    _names: Option<PrivateDir>,
) -> Result<Box<dyn Channel>, BackendError> {
    server(id, sock, &path.display().to_string())
}

fn client_tcp(
    id: &'static str,
    sock: std::net::TcpStream,
    what: &str,
) -> Result<Box<dyn Channel>, BackendError> {
    client(id, sock, what, None)
}

fn server_tcp(
    id: &'static str,
    sock: std::net::TcpStream,
    what: &str,
) -> Result<Box<dyn Channel>, BackendError> {
    server(id, sock, what)
}

pub struct Http {
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
        "what a service speaking HTTP/1.1 pays over the raw socket: headers, parsing, a runtime",
    )
}

static TCP_INFO: MechanismInfo = info(
    "http-tcp",
    "HTTP/1.1 on hyper 1 over loopback TCP, keep-alive: a POST body and its 200 response body",
    "tcp",
    true,
    false,
);

static UNIX_INFO: MechanismInfo = info(
    "http-unix",
    "HTTP/1.1 on hyper 1 over a Unix stream socket, keep-alive: a POST body and its 200 response body",
    "unix-stream",
    false,
    true,
);

pub static HTTP_TCP: Http = Http {
    info: &TCP_INFO,
    over: Over::Tcp,
};
pub static HTTP_UNIX: Http = Http {
    info: &UNIX_INFO,
    over: Over::UnixStream,
};

impl Mechanism for Http {
    fn info(&self) -> &'static MechanismInfo {
        self.info
    }

    /// The server's connection ends when the client closes.
    fn close_is_seen(&self) -> bool {
        true
    }

    fn rpc(&self) -> Option<&'static str> {
        Some("HTTP/1.1: methods, paths, status codes and headers that every language, proxy and tool speaks; a schema only by convention (OpenAPI)")
    }

    /// Requests and responses alternate: one message cannot follow another one way.
    fn streams(&self) -> bool {
        false
    }

    fn unsupported(&self, params: &ChannelParams, _limits: &Limits) -> Option<String> {
        (params.size > MAX_BODY).then(|| {
            format!(
                "{} bytes is over the {MAX_BODY}-byte body limit of ipcbench's HTTP server (a server's usual request cap; larger bodies get 413 Payload Too Large)",
                params.size
            )
        })
    }

    fn fan_in(&self) -> super::super::fanin::Form {
        super::super::fanin::Form::Unsupported(
            "the parent is the HTTP client here (the peer answers), so many clients would be many servers: not built",
        )
    }

    fn offer(&self, _params: &ChannelParams) -> Result<Offer, BackendError> {
        self.over.offer(self.info.id, client_unix, client_tcp)
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

    #[test]
    fn a_request_body_and_its_response_body_arrive_intact_over_keep_alive() {
        let (a, b) = UnixStream::pair().unwrap();
        let peer = std::thread::spawn(move || {
            let mut s = server("http-unix", b, "a socket pair").unwrap();
            let mut buf = vec![0u8; 5];
            for _ in 0..3 {
                assert_eq!(s.recv(&mut buf).unwrap(), 5);
                assert_eq!(&buf, b"hello");
                s.send(b"world").unwrap();
            }
            // The client's close ends the connection: the server's next wait says so.
            s.recv(&mut buf).unwrap_err().kind()
        });
        let mut c = client("http-unix", a, "a socket pair", None).unwrap();
        let mut buf = vec![0u8; 5];
        for _ in 0..3 {
            c.send(b"hello").unwrap();
            assert_eq!(c.recv(&mut buf).unwrap(), 5);
            assert_eq!(&buf, b"world");
        }
        drop(c);
        assert_eq!(peer.join().unwrap(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_body_over_the_limit_gets_413_and_a_clear_error_never_a_hang() {
        let (a, b) = UnixStream::pair().unwrap();
        let peer = std::thread::spawn(move || {
            let mut s = server("http-unix", b, "a socket pair").unwrap();
            s.recv(&mut [0u8; 16]).is_err()
        });
        let mut c = client("http-unix", a, "a socket pair", None).unwrap();
        let err = c.send(&vec![7u8; MAX_BODY + 1]).unwrap_err();
        assert!(err.to_string().contains("413 Payload Too Large"), "{err}");
        drop(c);
        assert!(
            peer.join().unwrap(),
            "the refused body never reached the channel"
        );
        let limits = crate::environment::Limits::read();
        let why = HTTP_UNIX
            .unsupported(&ChannelParams::new(MAX_BODY + 1), &limits)
            .unwrap();
        assert!(why.contains("body limit"), "{why}");
        assert!(HTTP_TCP
            .unsupported(&ChannelParams::new(MAX_BODY), &limits)
            .is_none());
    }
}
