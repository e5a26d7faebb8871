//! The peer process: starting it (this executable re-run in a hidden role), talking to it
//! over its stdin/stdout control pipes, bounding every wait, and reporting how it died.
//! The peer's side of the protocol (`serve`) lives here too, so both halves read together.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Args;
use thiserror::Error;

use crate::backends::{self, AbortHandle, ChannelParams};
use crate::message::Verify;
use crate::sys::fd::{prepare_child, take_inherited, MAX_INHERITED_FDS};
use crate::sys::CpuUsage;
use crate::workload::lossy::{self, Delivery};
use crate::workload::{self, Buffers};

/// Largest message the peer role accepts (the CLI enforces the same bound).
pub const MAX_SIZE: usize = 256 << 20;
/// Name of the hidden subcommand.
pub const ROLE: &str = "__peer";
/// How long the parent waits for a peer that has stopped answering to finish exiting.
const EXIT_GRACE: Duration = Duration::from_secs(2);
const STDERR_KEEP: usize = 4096;

#[derive(Debug, Error)]
pub enum PeerError {
    #[error("cannot start the peer process {exe}: {source}")]
    Spawn {
        exe: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the peer process {status}{}", stderr_suffix(.stderr))]
    Died { status: String, stderr: String },
    #[error("timed out after {secs} s waiting for {what}; the peer was killed (raise --timeout if the workload is merely slow)")]
    Timeout { what: String, secs: u64 },
    #[error("the peer reported: {0}")]
    Reported(String),
    #[error("unexpected line from the peer: {0:?}")]
    Protocol(String),
    #[error("lost the control pipe to the peer: {0}")]
    Control(#[source] io::Error),
}

fn stderr_suffix(s: &str) -> String {
    if s.trim().is_empty() {
        String::new()
    } else {
        format!("; its stderr: {}", s.trim())
    }
}

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
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    stdout: Option<JoinHandle<()>>,
    watchdog: Watchdog,
    timeout: Duration,
}

impl Peer {
    pub fn spawn(launch: Launch<'_>, timeout: Duration) -> Result<Peer, PeerError> {
        let spawn_err = |source| PeerError::Spawn {
            exe: launch.exe.to_path_buf(),
            source,
        };
        let mut cmd = Command::new(launch.exe);
        cmd.arg(ROLE)
            .arg("--mechanism")
            .arg(launch.mechanism)
            .arg("--size")
            .arg(launch.size.to_string())
            .arg("--verify")
            .arg(launch.verify.as_str())
            .arg("--fds")
            .arg(launch.inherit.len().to_string())
            .arg("--spec")
            .arg(&launch.spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cpu) = launch.cpu {
            cmd.arg("--cpu").arg(cpu.to_string());
        }
        let raw: Vec<_> = launch.inherit.iter().map(|f| f.as_raw_fd()).collect();
        prepare_child(&mut cmd, &raw).map_err(spawn_err)?;
        let mut child = cmd.spawn().map_err(spawn_err)?;
        crate::interrupt::register_peer(child.id());
        // Our copies of the peer's ends close now, so the peer's death reads as end-of-file.
        drop(launch.inherit);

        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (tx, lines) = mpsc::channel();
        let exit_hook = Arc::new(Mutex::new(ExitHook::default()));
        let mut stdout_thread = None;
        if let Some(out) = stdout {
            let exit_hook = Arc::clone(&exit_hook);
            stdout_thread = Some(
                std::thread::Builder::new()
                    .name("ipcbench-peer-out".into())
                    .spawn(move || {
                        for line in BufReader::new(out).lines().map_while(Result::ok) {
                            if tx.send(line).is_err() {
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
        Ok(Peer {
            child,
            exit_hook,
            stdin,
            lines,
            stderr,
            stdout: stdout_thread,
            watchdog,
            timeout,
        })
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

    pub fn command(&mut self, line: &str) -> Result<(), PeerError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| PeerError::Control(io::ErrorKind::BrokenPipe.into()))?;
        let written = stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush());
        match written {
            Ok(()) => Ok(()),
            // A closed control pipe almost always means the peer died: say how.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(self.death()),
            Err(e) => Err(PeerError::Control(e)),
        }
    }

    /// Waits (bounded) for a line starting with `word`; returns the rest of it.
    pub fn expect(&mut self, word: &str) -> Result<String, PeerError> {
        let deadline = Instant::now() + self.timeout;
        match self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(line) => parse_reply(&line, word),
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Err(PeerError::Timeout {
                    what: format!("the peer's {word:?}"),
                    secs: self.timeout.as_secs(),
                })
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.death()),
        }
    }

    /// Arms the watchdog for one timed phase; `disarm` ends it.
    pub fn arm(&self) {
        self.watchdog.set(Some(Instant::now() + self.timeout));
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
        match self.lines.recv_timeout(EXIT_GRACE) {
            Ok(line) => Some(match parse_reply(&line, "error") {
                Ok(msg) => PeerError::Reported(msg),
                Err(e) => e,
            }),
            Err(RecvTimeoutError::Disconnected) => Some(self.death()),
            Err(RecvTimeoutError::Timeout) => None,
        }
    }

    /// Tells the peer to exit and waits (bounded) for a clean exit.
    pub fn quit(mut self) -> Result<(), PeerError> {
        self.command("quit")?;
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
        if let Ok(line) = self.lines.try_recv() {
            if let Ok(msg) = parse_reply(&line, "error") {
                return PeerError::Reported(msg);
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

fn parse_reply(line: &str, word: &str) -> Result<String, PeerError> {
    let (head, rest) = line.split_once(' ').unwrap_or((line, ""));
    if head == word {
        Ok(rest.to_string())
    } else if head == "error" {
        Err(PeerError::Reported(rest.to_string()))
    } else {
        Err(PeerError::Protocol(line.to_string()))
    }
}

/// What the peer tells the parent after a phase, on its `done` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseReport {
    pub cpu: CpuUsage,
    pub delivery: Delivery,
}

impl PhaseReport {
    pub fn encode(&self) -> String {
        let (c, d) = (self.cpu, self.delivery);
        format!(
            "{} {} {} {} {} {} {} {}",
            c.total_ns,
            c.user_ns,
            c.sys_ns,
            c.voluntary,
            c.involuntary,
            d.delivered,
            u8::from(d.final_seen),
            d.last_arrival_ns
        )
    }

    pub fn decode(s: &str) -> Result<PhaseReport, PeerError> {
        let bad = || PeerError::Protocol(format!("done {s}"));
        let v: Vec<u64> = s
            .split(' ')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        match v.as_slice() {
            [t, u, s, vo, inv, del, fin @ (0 | 1), last] => Ok(PhaseReport {
                cpu: CpuUsage {
                    total_ns: *t,
                    user_ns: *u,
                    sys_ns: *s,
                    voluntary: *vo,
                    involuntary: *inv,
                },
                delivery: Delivery {
                    delivered: *del,
                    final_seen: *fin == 1,
                    last_arrival_ns: *last,
                },
            }),
            _ => Err(bad()),
        }
    }
}

/// Arguments of the hidden peer role. Everything is validated before use.
#[derive(Args, Debug)]
pub struct PeerArgs {
    #[arg(long)]
    pub mechanism: String,
    #[arg(long)]
    pub size: usize,
    #[arg(long, value_enum)]
    pub verify: Verify,
    #[arg(long)]
    pub cpu: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub fds: usize,
    #[arg(long, default_value = "")]
    pub spec: String,
}

/// The peer side of a synchronisation primitive: hand-off and lock phases on order.
fn serve_sync(
    primitive: &'static dyn backends::sync::Primitive,
    args: &PeerArgs,
) -> Result<(), String> {
    let fds = settle(args, primitive.info().id)?;
    let mut end = backends::sync::join(primitive, &args.spec, fds).map_err(|e| e.to_string())?;
    let write_one_in = primitive.info().write_one_in;
    obey(|order, control| match order {
        Order::Handoff(n) => {
            control.say("go")?;
            workload::sync::handoff_peer(end.as_mut(), n).map_err(|e| e.to_string())?;
            Ok(Delivery {
                delivered: n,
                final_seen: true,
                last_arrival_ns: 0,
            })
        }
        Order::Lock(ms) => {
            control.say("go")?;
            let (n, writes) = workload::sync::lock_loop(
                end.as_mut(),
                std::time::Duration::from_millis(ms),
                write_one_in,
            )
            .map_err(|e| e.to_string())?;
            // For the lock phase the delivery fields carry (acquisitions, writes).
            Ok(Delivery {
                delivered: n,
                final_seen: true,
                last_arrival_ns: writes,
            })
        }
        Order::Hold => {
            end.lock(true).map_err(|e| e.to_string())?;
            control.say("holding")?;
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        other => Err(format!(
            "{other:?} is not an order for a synchronisation primitive"
        )),
    })
}

/// Pins the peer where the parent asked and takes over its inherited descriptors.
fn settle(args: &PeerArgs, id: &str) -> Result<Vec<OwnedFd>, String> {
    if let Some(cpu) = args.cpu {
        crate::placement::bind_current_thread(&[cpu])
            .map_err(|e| format!("cannot pin the peer to CPU {cpu}: {e}"))?;
    }
    take_inherited(args.fds).map_err(|e| format!("{id}: {e}"))
}

/// The peer's half of the control pipe: one line per reply.
struct Control(io::StdoutLock<'static>);

impl Control {
    fn say(&mut self, s: &str) -> Result<(), String> {
        writeln!(self.0, "{s}")
            .and_then(|()| self.0.flush())
            .map_err(|e| format!("control pipe: {e}"))
    }
}

/// The protocol loop both peer roles share: `ready`, then for each order the phase (which
/// answers `go` before its timed part) and `done` with its CPU, until `quit`.
fn obey(
    mut phase: impl FnMut(Order, &mut Control) -> Result<Delivery, String>,
) -> Result<(), String> {
    let mut control = Control(io::stdout().lock());
    control.say("ready")?;
    for line in io::stdin().lock().lines() {
        let order = parse_order(&line.map_err(|e| format!("control pipe: {e}"))?)?;
        if let Order::Quit = order {
            return Ok(());
        }
        let before = CpuUsage::thread().map_err(|e| e.to_string())?;
        let delivery = phase(order, &mut control)?;
        let cpu = CpuUsage::thread().map_err(|e| e.to_string())?.since(before);
        control.say(&format!("done {}", PhaseReport { cpu, delivery }.encode()))?;
    }
    Err("the parent closed the control pipe".into())
}

/// A command from the parent.
#[derive(Debug)]
enum Order {
    /// Channels: answer `n` pings; receive `n` streamed messages.
    Echo(u64),
    Sink(u64),
    /// Synchronisation: `n` turn pairs; contend for the lock for `ms` milliseconds; take
    /// the lock and keep it (a test hook for a holder that dies).
    Handoff(u64),
    Lock(u64),
    Hold,
    Quit,
}

fn parse_order(line: &str) -> Result<Order, String> {
    let mut it = line.split(' ');
    let verb = it.next().unwrap_or("");
    let count = it.next().map(str::parse::<u64>);
    match (verb, count, it.next()) {
        ("quit", None, None) => Ok(Order::Quit),
        ("hold", None, None) => Ok(Order::Hold),
        ("echo", Some(Ok(n)), None) => Ok(Order::Echo(n)),
        ("sink", Some(Ok(n)), None) if n > 0 => Ok(Order::Sink(n)),
        ("handoff", Some(Ok(n)), None) => Ok(Order::Handoff(n)),
        ("lock", Some(Ok(ms)), None) if ms <= 3_600_000 => Ok(Order::Lock(ms)),
        _ => Err(format!("unknown command {line:?}")),
    }
}

fn is_pipe(fd: i32) -> bool {
    // SAFETY: borrowing a standard descriptor for one fstat; it stays open for the call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    nix::sys::stat::fstat(fd)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO)
        .unwrap_or(false)
}

/// The peer role's main: join the channel, then obey the parent's commands.
/// Exit codes: 0 done, 2 refused its arguments, 3 failed (reported on stdout as `error ...`).
pub fn serve(args: &PeerArgs) -> i32 {
    if !is_pipe(0) || !is_pipe(1) {
        eprintln!("ipcbench: {ROLE} is the peer role that `ipcbench run` starts itself; it is not for use by hand");
        return 2;
    }
    let subject = match validate(args) {
        Ok(m) => m,
        Err(e) => {
            println!("error refused: {e}");
            return 2;
        }
    };
    let served = match subject {
        Subject::Channel(m) => serve_orders(m, args),
        Subject::Sync(p) => serve_sync(p, args),
    };
    match served {
        Ok(()) => 0,
        Err(e) => {
            // The parent reads this line; a broken stdout means it is gone anyway.
            let line = e.replace('\n', " ");
            println!("error {line}");
            3
        }
    }
}

/// What the peer was asked to serve.
enum Subject {
    Channel(&'static dyn backends::Mechanism),
    Sync(&'static dyn backends::sync::Primitive),
}

fn validate(args: &PeerArgs) -> Result<Subject, String> {
    let m = match (
        backends::by_id(&args.mechanism),
        backends::sync::by_id(&args.mechanism),
    ) {
        (Some(m), _) => Subject::Channel(m),
        (None, Some(p)) => Subject::Sync(p),
        _ => return Err(format!("unknown mechanism {:?}", args.mechanism)),
    };
    if args.size == 0 || args.size > MAX_SIZE {
        return Err(format!("size {} is outside 1..={MAX_SIZE}", args.size));
    }
    if args.fds > MAX_INHERITED_FDS {
        return Err(format!(
            "{} descriptors is more than {MAX_INHERITED_FDS}",
            args.fds
        ));
    }
    if args.spec.len() > 4096 || args.spec.contains('\0') {
        return Err("the channel description is malformed".into());
    }
    Ok(m)
}

fn serve_orders(
    mechanism: &'static dyn backends::Mechanism,
    args: &PeerArgs,
) -> Result<(), String> {
    let info = mechanism.info();
    let fds = settle(args, info.id)?;
    let params = ChannelParams::new(args.size);
    let mut chan = mechanism
        .join(&args.spec, fds, &params)
        .map_err(|e| e.to_string())?;
    let mut bufs = Buffers::new(args.size, args.verify);
    let mut seq = 0u64;
    let all = |n| Delivery {
        delivered: n,
        final_seen: true,
        last_arrival_ns: 0,
    };
    obey(|order, control| {
        let chan = chan.as_mut();
        let result = match order {
            Order::Echo(n) => {
                control.say("go")?;
                if !info.verified {
                    workload::pong_raw(chan, &mut bufs, n).map(|()| all(n))
                } else if info.lossy {
                    lossy::pong(chan, &mut bufs, &mut seq, n)
                } else {
                    workload::pong(chan, &mut bufs, &mut seq, n).map(|()| all(n))
                }
            }
            Order::Sink(n) => {
                control.say("go")?;
                if !info.verified {
                    workload::sink_raw(chan, &mut bufs, n).map(|()| all(n))
                } else if info.lossy {
                    lossy::sink(chan, &mut bufs, &mut seq, n)
                } else {
                    workload::sink(chan, &mut bufs, &mut seq, n).map(|()| all(n))
                }
            }
            other => return Err(format!("{other:?} is not an order for a channel")),
        };
        result.map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_parsed_strictly() {
        assert!(matches!(parse_order("echo 5"), Ok(Order::Echo(5))));
        assert!(matches!(parse_order("sink 1"), Ok(Order::Sink(1))));
        assert!(matches!(parse_order("quit"), Ok(Order::Quit)));
        assert!(matches!(parse_order("lock 200"), Ok(Order::Lock(200))));
        assert!(matches!(parse_order("hold"), Ok(Order::Hold)));
        for bad in [
            "",
            "echo",
            "echo -1",
            "sink 0",
            "quit now",
            "rm -rf /",
            "lock 99999999",
            "handoff",
        ] {
            assert!(parse_order(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reports_round_trip() {
        let r = PhaseReport {
            cpu: CpuUsage {
                total_ns: 9,
                user_ns: 1,
                sys_ns: 2,
                voluntary: 3,
                involuntary: 4,
            },
            delivery: Delivery {
                delivered: 5,
                final_seen: true,
                last_arrival_ns: 7,
            },
        };
        assert_eq!(PhaseReport::decode(&r.encode()).unwrap(), r);
        for bad in ["9 1 2 x 4 5 1 7", "9 1 2 3 4 5 2 7", "1 2 3 4 5 1 7", ""] {
            assert!(PhaseReport::decode(bad).is_err(), "{bad}");
        }
    }
}
