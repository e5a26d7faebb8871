//! Connections driven from the caller's own thread (on its `runtime`): a connection future polled inside each send and receive, and a record of
//! when a server's answer has really left for the kernel. Used by the HTTP and gRPC
//! mechanisms, whose servers must not return from a send with the reply still buffered
//! (the peer's next wait may be on something else).

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Runtime;

use super::runtime;

use super::tokio_sockets::Socket;

/// Where a server's latest answer is. `marked`: the framework has taken all of it out of
/// its body (so every frame of it is queued in the connection). Then it has left for the
/// kernel once a poll of the connection made no write: hyper writes whatever is queued on
/// every poll, and a write the socket refused (`blocked`) counts as not done. (A flush is
/// no such sign: HTTP/2 flushes whenever its frame buffer fills, mid-answer.)
#[derive(Default)]
pub(super) struct Progress {
    marked: AtomicBool,
    /// Writes the socket took.
    writes: AtomicU64,
    /// Whether the last write found the socket full.
    blocked: AtomicBool,
}

impl Progress {
    /// Forgets the last answer, before handing over the next.
    pub(super) fn reset(&self) {
        self.marked.store(false, Ordering::Release);
    }

    fn mark(&self) {
        self.marked.store(true, Ordering::Release);
    }

    fn wrote(&self, r: &Poll<io::Result<usize>>) {
        match r {
            Poll::Ready(Ok(_)) => {
                self.writes.fetch_add(1, Ordering::AcqRel);
                self.blocked.store(false, Ordering::Release);
            }
            Poll::Pending => self.blocked.store(true, Ordering::Release),
            Poll::Ready(Err(_)) => {}
        }
    }

    /// Writes so far: the start for `out`.
    pub(super) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    /// For a `drive` step, right after a poll of the connection: whether the answer handed
    /// over since `reset` is all in the kernel. `last` is the write count at the previous
    /// step; while writes still happen, the step asks to be polled again at once.
    pub(super) fn out(&self, last: &mut u64, cx: &mut Context<'_>) -> bool {
        let (w, blocked) = (self.writes(), self.blocked.load(Ordering::Acquire));
        let wrote = w != *last;
        *last = w;
        if !self.marked.load(Ordering::Acquire) || blocked {
            // Woken when the framework queues it, or when the socket has room.
            return false;
        }
        if wrote {
            // The socket took writes: see whether the next poll has more.
            cx.waker().wake_by_ref();
            return false;
        }
        true
    }
}

/// The socket under hyper; notes each write for `Progress`.
pub(super) struct Io<S> {
    inner: TokioIo<S>,
    progress: Arc<Progress>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> hyper::rt::Read for Io<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> hyper::rt::Write for Io<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress.wrote(&r);
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress.wrote(&r);
        r
    }
}

/// When an answer counts as written out of a watched body.
#[derive(Clone, Copy)]
pub(super) enum Answer {
    /// When hyper is done with the body (it drops it once written): a whole response.
    Body,
    /// At each data frame it takes: one message of a stream that stays open (gRPC's).
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    Frame,
}

/// A response body that tells `Progress` when its answer was taken.
pub(super) struct Watched<B> {
    pub(super) inner: B,
    pub(super) progress: Arc<Progress>,
    pub(super) answer: Answer,
}

impl<B: Body + Unpin> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let (Answer::Frame, Poll::Ready(Some(Ok(f)))) = (this.answer, &r) {
            if f.is_data() {
                this.progress.mark();
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Watched<B> {
    fn drop(&mut self) {
        self.progress.mark();
    }
}

/// A connection future as `drive` takes it.
pub(super) type Conn<'a, E> = Pin<&'a mut dyn Future<Output = Result<(), E>>>;

/// Polls `conn` (unless it already ended) and then `step` until `step` is ready; a
/// connection that ends first is the other side gone.
pub(super) fn drive<T, E: std::error::Error + Send + Sync + 'static>(
    rt: &Runtime,
    conn: Option<Conn<'_, E>>,
    ended: &mut bool,
    mut step: impl FnMut(&mut Context<'_>) -> Poll<io::Result<T>>,
) -> io::Result<T> {
    let mut conn = conn;
    rt.block_on(std::future::poll_fn(|cx| {
        let mut failed = None;
        if let (false, Some(c)) = (*ended, conn.as_mut()) {
            if let Poll::Ready(r) = c.as_mut().poll(cx) {
                *ended = true;
                failed = r.err();
            }
        }
        if let Poll::Ready(r) = step(cx) {
            return Poll::Ready(r);
        }
        if *ended {
            return Poll::Ready(Err(match failed {
                // A connection that fails (a reset, a broken pipe, a protocol error on a
                // half-closed socket) is the other side gone too.
                Some(e) => io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!("the connection ended: {e}"),
                ),
                None => io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the other side closed the connection",
                ),
            }));
        }
        Poll::Pending
    }))
}

/// The socket handed to this thread's runtime, its descriptor kept (for socket options
/// and ports), wrapped to report flushes to `progress`.
pub(super) fn take_over<S: Socket>(
    sock: S,
    progress: &Arc<Progress>,
) -> io::Result<(Rc<Runtime>, Io<S::Async>, OwnedFd)> {
    let rt = runtime()?;
    let sock = {
        let _inside = rt.enter();
        sock.into_async()?
    };
    let fd = sock.as_fd().try_clone_to_owned()?;
    let io = Io {
        inner: TokioIo::new(sock),
        progress: Arc::clone(progress),
    };
    Ok((rt, io, fd))
}
