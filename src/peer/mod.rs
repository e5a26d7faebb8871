//! The peer process: starting it (this executable re-run in a hidden role), talking to it
//! over its stdin/stdout control pipes in the typed protocol (`protocol`), bounding every
//! wait, and reporting how it died. The peer's own side is `role`.

pub mod protocol;
pub mod role;

pub use role::{serve, PeerArgs, MAX_SIZE, ROLE};

use std::io::{self, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::backends::AbortHandle;
pub use crate::error::PeerError;
use crate::message::Verify;
use crate::sys::courier::Courier;
use crate::sys::fd::prepare_child;
use crate::sys::CpuUsage;
use protocol::{Order, Reply};

/// How long the parent waits for a peer that has stopped answering to finish exiting.
const EXIT_GRACE: Duration = Duration::from_secs(2);
const STDERR_KEEP: usize = 4096;

/// "exited with status 3" / "was killed by signal 9 (SIGKILL)".
pub fn describe_status(status: ExitStatus) -> String {
    if let Some(sig) = status.signal() {
        let name = nix::sys::signal::Signal::try_from(sig)
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|_| "unknown".into());
        format!("was killed by signal {sig} ({name})")
    } else {
        format!("exited with status {}", status.code().unwrap_or(-1))
    }
}

/// Kills the peer if a deadline passes, so a blocked data path returns (end-of-file).
struct Watchdog {
    state: Arc<(Mutex<WatchState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct WatchState {
    deadline: Option<Instant>,
    fired: bool,
    stop: bool,
}

impl Watchdog {
    fn start(child: Arc<Mutex<Child>>) -> io::Result<Watchdog> {
        let state = Arc::new((Mutex::new(WatchState::default()), Condvar::new()));
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("ipcbench-watchdog".into())
            .spawn(move || {
                let (lock, cv) = &*shared;
                let Ok(mut st) = lock.lock() else { return };
                loop {
                    if st.stop {
                        return;
                    }
                    st = match st.deadline {
                        None => match cv.wait(st) {
                            Ok(g) => g,
                            Err(_) => return,
                        },
                        Some(d) if Instant::now() >= d => {
                            if let Ok(mut c) = child.lock() {
                                let _ = c.kill();
                            }
                            st.fired = true;
                            st.deadline = None;
                            st
                        }
                        Some(d) => match cv.wait_timeout(st, d - Instant::now()) {
                            Ok((g, _)) => g,
                            Err(_) => return,
                        },
                    };
                }
            })?;
        Ok(Watchdog {
            state,
            thread: Some(thread),
        })
    }

    fn set(&self, deadline: Option<Instant>) {
        if let Ok(mut st) = self.state.0.lock() {
            st.deadline = deadline;
            self.state.1.notify_all();
        }
    }

    fn fired(&self) -> bool {
        self.state.0.lock().map(|s| s.fired).unwrap_or(false)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Ok(mut st) = self.state.0.lock() {
            st.stop = true;
            self.state.1.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the parent tells the peer to start.
pub struct Launch<'a> {
    pub exe: &'a Path,
    pub mechanism: &'static str,
    pub size: usize,
    pub verify: Verify,
    pub cpu: Option<usize>,
    pub spec: String,
    pub inherit: Vec<OwnedFd>,
}

/// Run once when the peer's stdout closes (it exited or was killed).
#[derive(Default)]
struct ExitHook {
    gone: bool,
    hook: Option<AbortHandle>,
}

/// The parent's handle on a running peer. Dropping it kills and reaps the peer.
pub struct Peer {
    child: Arc<Mutex<Child>>,
    exit_hook: Arc<Mutex<ExitHook>>,
    stdin: Option<ChildStdin>,
    /// Every reply the peer sent, decoded (or why a line could not be).
    replies: Receiver<Result<Reply, PeerError>>,
    stderr: Option<JoinHandle<String>>,
    stdout: Option<JoinHandle<()>>,
    watchdog: Watchdog,
    timeout: Duration,
    /// The parent's end of the courier (`sys::courier`), until the session takes it.
    courier: Option<Courier>,
}

impl Peer {
    pub fn spawn(launch: Launch<'_>, timeout: Duration) -> Result<Peer, PeerError> {
        let spawn_err = |source| PeerError::Spawn {
            exe: launch.exe.to_path_buf(),
            source,
        };
        // The courier's far end goes last among the inherited descriptors.
        let (courier, far_end) = Courier::pair().map_err(spawn_err)?;
        let mut inherit = launch.inherit;
        inherit.push(far_end);
        let mut cmd = Command::new(launch.exe);
        cmd.arg(ROLE)
            .arg("--mechanism")
            .arg(launch.mechanism)
            .arg("--size")
            .arg(launch.size.to_string())
            .arg("--verify")
            .arg(launch.verify.as_str())
            .arg("--fds")
            .arg((inherit.len() - 1).to_string())
            .arg("--courier")
            .arg("--spec")
            .arg(&launch.spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cpu) = launch.cpu {
            cmd.arg("--cpu").arg(cpu.to_string());
        }
        let raw: Vec<_> = inherit.iter().map(|f| f.as_raw_fd()).collect();
        prepare_child(&mut cmd, &raw).map_err(spawn_err)?;
        let mut child = cmd.spawn().map_err(spawn_err)?;
        crate::interrupt::register_peer(child.id());
        // Our copies of the peer's ends close now, so the peer's death reads as end-of-file.
        drop(inherit);

        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (tx, replies) = mpsc::channel();
        let exit_hook = Arc::new(Mutex::new(ExitHook::default()));
        let mut stdout_thread = None;
        if let Some(out) = stdout {
            let exit_hook = Arc::clone(&exit_hook);
            stdout_thread = Some(
                std::thread::Builder::new()
                    .name("ipcbench-peer-out".into())
                    .spawn(move || {
                        let mut out = BufReader::new(out);
                        let mut broken = false;
                        loop {
                            let reply = match protocol::read_line(&mut out) {
                                Ok(None) => break,
                                // After one bad line nothing more is believed; the rest is
                                // drained so that end-of-file still means the peer is gone.
                                Ok(Some(_)) if broken => continue,
                                Ok(Some(line)) => protocol::decode::<Reply>(&line, "a reply"),
                                Err(PeerError::Control(_)) => break,
                                Err(e) => Err(e),
                            };
                            broken |= reply.is_err();
                            if tx.send(reply).is_err() {
                                break;
                            }
                        }
                        // End of file: the peer is gone, so unblock whatever waits on it.
                        let hook = exit_hook.lock().ok().and_then(|mut h| {
                            h.gone = true;
                            h.hook.take()
                        });
                        if let Some(abort) = hook {
                            abort();
                        }
                    })
                    .map_err(spawn_err)?,
            );
        }
        let stderr = match stderr {
            Some(mut err) => Some(
                std::thread::Builder::new()
                    .name("ipcbench-peer-err".into())
                    .spawn(move || {
                        let mut all = Vec::new();
                        let _ = err.read_to_end(&mut all);
                        let start = all.len().saturating_sub(STDERR_KEEP);
                        String::from_utf8_lossy(&all[start..]).into_owned()
                    })
                    .map_err(spawn_err)?,
            ),
            None => None,
        };
        let child = Arc::new(Mutex::new(child));
        let watchdog = Watchdog::start(Arc::clone(&child)).map_err(spawn_err)?;
        let mut peer = Peer {
            child,
            exit_hook,
            stdin,
            replies,
            stderr,
            stdout: stdout_thread,
            watchdog,
            timeout,
            courier: Some(courier),
        };
        // Hello each way, before anything else: both sides check the version.
        match peer.next("the peer's hello")? {
            Reply::Hello { version } => protocol::check_version(version)?,
            other => return Err(unexpected("the peer's hello", &other)),
        }
        peer.command(&Order::Hello {
            version: protocol::VERSION,
        })?;
        Ok(peer)
    }

    /// The parent's end of the courier, for the session's channel end (once).
    pub fn take_courier(&mut self) -> Option<Courier> {
        self.courier.take()
    }

    /// The peer's process id (for fault-injection tests and diagnostics).
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().ok().map(|c| c.id())
    }

    /// Runs `abort` as soon as the peer is gone (at once if it already is).
    pub fn on_exit(&self, abort: AbortHandle) {
        let now = match self.exit_hook.lock() {
            Ok(mut h) if !h.gone => {
                h.hook = Some(abort);
                None
            }
            _ => Some(abort),
        };
        if let Some(abort) = now {
            abort();
        }
    }

    /// True once the peer process has exited (it is reaped here).
    pub fn has_exited(&self) -> bool {
        match self.child.lock() {
            Ok(mut c) => !matches!(c.try_wait(), Ok(None)),
            Err(_) => true,
        }
    }

    pub fn command(&mut self, order: &Order) -> Result<(), PeerError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| PeerError::Control(io::ErrorKind::BrokenPipe.into()))?;
        match protocol::send(stdin, order) {
            Ok(()) => Ok(()),
            // A closed control pipe almost always means the peer died: say how.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(self.death()),
            Err(e) => Err(PeerError::Control(e)),
        }
    }

    /// Waits (bounded) for the peer's next reply; its error report becomes `Reported`.
    fn next(&mut self, what: &str) -> Result<Reply, PeerError> {
        match self.replies.recv_timeout(self.timeout) {
            Ok(Ok(Reply::Error { failure: f })) => Err(PeerError::Reported(Box::new(f))),
            Ok(reply) => reply,
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Err(PeerError::Timeout {
                    what: what.to_string(),
                    secs: self.timeout.as_secs(),
                })
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.death()),
        }
    }

    /// The peer holds the subject.
    pub fn expect_ready(&mut self) -> Result<(), PeerError> {
        match self.next("the peer's \"ready\"")? {
            Reply::Ready => Ok(()),
            other => Err(unexpected("ready", &other)),
        }
    }

    /// The peer starts the timed part of a phase.
    pub fn expect_go(&mut self) -> Result<(), PeerError> {
        match self.next("the peer's \"go\"")? {
            Reply::Go => Ok(()),
            other => Err(unexpected("go", &other)),
        }
    }

    /// A phase's end: the peer's CPU and its workload's account.
    pub fn expect_done(&mut self) -> Result<(CpuUsage, serde_json::Value), PeerError> {
        match self.next("the peer's \"done\"")? {
            Reply::Done { cpu, outcome } => Ok((cpu, outcome)),
            other => Err(unexpected("done", &other)),
        }
    }

    /// The peer holds the lock (a test hook).
    pub fn expect_holding(&mut self) -> Result<(), PeerError> {
        match self.next("the peer's \"holding\"")? {
            Reply::Holding => Ok(()),
            other => Err(unexpected("holding", &other)),
        }
    }

    /// Arms the watchdog for one timed phase; `disarm` ends it.
    pub fn arm(&self) {
        self.watchdog.set(Some(Instant::now() + self.timeout));
    }

    /// Arms the watchdog for a phase known to last `length`, plus the usual timeout.
    pub fn arm_for(&self, length: Duration) {
        self.watchdog
            .set(Some(Instant::now() + length + self.timeout));
    }

    pub fn disarm(&self) {
        self.watchdog.set(None);
    }

    /// After the data path failed: the most precise explanation the peer side can give
    /// (its own report, its death, or the watchdog), or `None` if it is alive and silent.
    pub fn diagnose(&mut self) -> Option<PeerError> {
        if self.watchdog.fired() {
            return Some(PeerError::Timeout {
                what: "the data path".into(),
                secs: self.timeout.as_secs(),
            });
        }
        match self.replies.recv_timeout(EXIT_GRACE) {
            Ok(Ok(Reply::Error { failure: f })) => Some(PeerError::Reported(Box::new(f))),
            Ok(Ok(other)) => Some(unexpected("an error report", &other)),
            Ok(Err(e)) => Some(e),
            Err(RecvTimeoutError::Disconnected) => Some(self.death()),
            Err(RecvTimeoutError::Timeout) => None,
        }
    }

    /// Tells the peer to exit and waits (bounded) for a clean exit.
    pub fn quit(mut self) -> Result<(), PeerError> {
        self.command(&Order::Quit)?;
        self.stdin = None;
        let deadline = Instant::now() + EXIT_GRACE.max(self.timeout.min(Duration::from_secs(10)));
        loop {
            let status = self
                .child
                .lock()
                .ok()
                .and_then(|mut c| c.try_wait().ok().flatten());
            if let Some(st) = status {
                return if st.success() {
                    Ok(())
                } else {
                    Err(self.death())
                };
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(PeerError::Timeout {
                    what: "the peer to exit".into(),
                    secs: deadline.elapsed().as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn kill(&self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
        }
    }

    /// The peer is gone or going: wait for it (bounded) and describe how it ended.
    fn death(&mut self) -> PeerError {
        let deadline = Instant::now() + EXIT_GRACE;
        let status = loop {
            let st = self
                .child
                .lock()
                .ok()
                .and_then(|mut c| c.try_wait().ok().flatten());
            if st.is_some() || Instant::now() >= deadline {
                break st;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let Some(status) = status else {
            self.kill();
            return PeerError::Protocol("the peer closed its control pipe but did not exit".into());
        };
        // A report the peer made just before dying explains more than its exit code.
        while let Ok(reply) = self.replies.try_recv() {
            match reply {
                Ok(Reply::Error { failure: f }) => return PeerError::Reported(Box::new(f)),
                Err(e @ PeerError::Protocol(_)) => return e,
                _ => {}
            }
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        PeerError::Died {
            status: describe_status(status),
            stderr,
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stdin = None;
        if let Ok(mut c) = self.child.lock() {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
            crate::interrupt::unregister_peer(c.id());
        }
        // The peer is reaped, so its pipes are at end-of-file and these threads end now;
        // joining them means the exit hook has run before the caller goes on.
        if let Some(t) = self.stdout.take() {
            let _ = t.join();
        }
        if let Some(t) = self.stderr.take() {
            let _ = t.join();
        }
    }
}

/// A reply other than the one the protocol calls for at this point.
fn unexpected(expected: &str, got: &Reply) -> PeerError {
    PeerError::Protocol(format!("expected {expected}, got {got:?}"))
}
