//! Bare loops: what ipcbench measures itself against. Each kind is the plainest ping-pong
//! its mechanism allows (`loops`), written with none of the harness: no channel trait, no
//! session, no framing, no checks. Both sides are fresh processes (this binary re-run as
//! `__bare`), pinned like a run's, and the ping side times each round trip with one clock
//! read into an array sized before the loop. The orchestrator (this module, in the
//! ipcbench process) only creates the kernel objects, starts the two sides, waits for them
//! with a deadline and removes what it created.
//!
//! `ipcbench floor --reference` runs each kind beside the ipcbench mechanism it stands for,
//! interleaved, and prints the ratios; every run's floor measures the bare line bounce
//! beside `cacheline`.

pub mod loops;

use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use self::loops::Bounce;
use crate::sys::fd::{prepare_child, take_inherited};
use crate::sys::sysv::MsgQueue;

/// The hidden role's name.
pub const ROLE: &str = "__bare";

/// Which bare loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// One 8-byte word bounced through a shared cache line by spinning (for `cacheline`).
    Line,
    Pipe,
    Fifo,
    UnixStream,
    PosixMq,
    SysvMq,
    ShmFutex,
    ShmEventfd,
    ShmPosixSem,
    /// `shm-spin`'s ring, bare: the same slots (a sequence word, then the message, in whole
    /// lines) and the same polling, without the ring's indices, checks or channel.
    Ring,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Line,
        Kind::Pipe,
        Kind::Fifo,
        Kind::UnixStream,
        Kind::PosixMq,
        Kind::SysvMq,
        Kind::ShmFutex,
        Kind::ShmEventfd,
        Kind::ShmPosixSem,
        Kind::Ring,
    ];

    /// The ipcbench mechanism this loop is the bare form of.
    pub fn mechanism(self) -> &'static str {
        match self {
            Kind::Line => "cacheline",
            Kind::Pipe => "pipe",
            Kind::Fifo => "fifo",
            Kind::UnixStream => "unix-stream",
            Kind::PosixMq => "posix-mq",
            Kind::SysvMq => "sysv-mq",
            Kind::ShmFutex => "shm-futex",
            Kind::ShmEventfd => "shm-eventfd",
            Kind::ShmPosixSem => "shm-posix-sem",
            Kind::Ring => "shm-spin",
        }
    }

    /// Spinning needs the two sides on two CPUs.
    pub fn spins(self) -> bool {
        matches!(self, Kind::Line | Kind::Ring)
    }

    /// The message size this kind carries when asked for `size`.
    pub fn size(self, size: usize) -> usize {
        if self == Kind::Line {
            8
        } else {
            size
        }
    }

    fn arg(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Side {
    /// Sends, waits for the answer, times each round trip.
    Ping,
    /// Answers.
    Pong,
}

impl Side {
    /// Its name on the role's command line and in errors.
    fn name(self) -> &'static str {
        match self {
            Side::Ping => "ping",
            Side::Pong => "pong",
        }
    }
}

/// How many round trips a side runs: `warmup` untimed, then `count` (timed on ping).
#[derive(Clone, Copy, Debug)]
pub struct Rounds {
    pub warmup: u64,
    pub count: u64,
}

/// Arguments of the hidden role (started by the orchestrator; not for use by hand).
#[derive(Args, Debug)]
pub struct BareArgs {
    #[arg(long, value_enum)]
    pub kind: Kind,
    #[arg(long, value_enum)]
    pub side: Side,
    #[arg(long)]
    pub size: usize,
    #[arg(long)]
    pub warmup: u64,
    #[arg(long)]
    pub count: u64,
    #[arg(long)]
    pub cpu: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub fds: usize,
    /// System V queue ids, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub ids: Vec<i32>,
    /// Start one idle thread first (the ping side then lives in a multi-threaded process,
    /// as ipcbench's parent does).
    #[arg(long)]
    pub idle_thread: bool,
}

/// The timing loop, generic over the kind. Ping: `warmup` round trips, then `count` timed
/// ones, each lap from the previous answer's arrival to this one's; returns the median.
fn run<B: Bounce>(side: Side, rounds: Rounds, mut b: B) -> io::Result<Option<u64>> {
    if side == Side::Pong {
        for _ in 0..rounds.warmup + rounds.count {
            b.pong()?;
        }
        return Ok(None);
    }
    for _ in 0..rounds.warmup {
        b.ping()?;
    }
    let mut laps = vec![0u64; rounds.count as usize];
    let mut last = Instant::now();
    for lap in laps.iter_mut() {
        b.ping()?;
        let now = Instant::now();
        *lap = (now - last).as_nanos() as u64;
        last = now;
    }
    Ok(median(&mut laps))
}

fn median(v: &mut [u64]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    Some(*v.select_nth_unstable(mid).1)
}

/// The hidden role's main: pin, take the descriptors, run the loop, print the median
/// (ping) as one line. Exit 0, or 3 with the reason on stderr.
pub fn serve(args: &BareArgs) -> i32 {
    let go = || -> io::Result<Option<u64>> {
        if let Some(cpu) = args.cpu {
            crate::placement::bind_current_thread(&[cpu])?;
        }
        let fds = take_inherited(args.fds)?;
        if args.idle_thread {
            // Parked for the process's life: it never runs, it only exists.
            std::thread::Builder::new()
                .name("idle".into())
                .spawn(std::thread::park)?;
        }
        let rounds = Rounds {
            warmup: args.warmup,
            count: args.count,
        };
        loops::run(args.kind, args.side, args.size, fds, &args.ids, rounds)
    };
    match go() {
        Ok(Some(p50)) => {
            println!("{p50}");
            0
        }
        Ok(None) => 0,
        Err(e) => {
            eprintln!("{e}");
            3
        }
    }
}

/// Why a bare loop gave no number.
#[derive(Debug, thiserror::Error)]
pub enum BareError {
    #[error("the bare {kind} loop could not {action}: {source}")]
    Io {
        kind: &'static str,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the bare {kind} loop's {side} side failed ({status}){detail}")]
    Side {
        kind: &'static str,
        side: &'static str,
        status: String,
        detail: String,
    },
    #[error("the bare {kind} loop did not finish within {secs} s (both sides were killed)")]
    Timeout { kind: &'static str, secs: u64 },
    #[error("the bare {kind} loop was stopped by an interrupt")]
    Interrupted { kind: &'static str },
}

/// The kernel objects of one bare run, created before either side starts and removed (or
/// closed) when this drops.
struct Objects {
    fds: Vec<OwnedFd>,
    ids: Vec<i32>,
    _queues: Vec<MsgQueue>,
}

fn create(kind: Kind, size: usize) -> io::Result<Objects> {
    let mut out = Objects {
        fds: Vec::new(),
        ids: Vec::new(),
        _queues: Vec::new(),
    };
    match kind {
        Kind::Pipe => {
            for _ in 0..2 {
                let (r, w) = nix::unistd::pipe()?;
                out.fds.extend([r, w]);
            }
        }
        Kind::Fifo => {
            let mut dir = crate::sys::fs::PrivateDir::create()?;
            for name in ["to-pong", "to-ping"] {
                let p = dir.path().join(name);
                let mode = nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR;
                nix::unistd::mkfifo(&p, mode)?;
                // Read-write: opening does not wait for the other end, and the descriptor
                // reads and writes the FIFO like the named ends the `fifo` mechanism opens.
                out.fds.push(
                    std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&p)?
                        .into(),
                );
            }
            // The directory and names go now; the open FIFOs stay.
            dir.remove()?;
        }
        Kind::UnixStream => {
            use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
            let (a, b) = socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )?;
            out.fds.extend([a, b]);
        }
        Kind::PosixMq => {
            use nix::mqueue::{mq_open, mq_unlink, MQ_OFlag, MqAttr};
            use nix::sys::stat::Mode;
            let tag = crate::sys::random_u64()?;
            for i in 0..2 {
                let name = std::ffi::CString::new(format!(
                    "/{}bare-{}-{tag:016x}-{i}",
                    crate::sys::fs::PREFIX,
                    std::process::id()
                ))
                .map_err(io::Error::other)?;
                let attr = MqAttr::new(0, 1, size as _, 0);
                let q = mq_open(
                    name.as_c_str(),
                    MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDWR | MQ_OFlag::O_CLOEXEC,
                    Mode::S_IRUSR | Mode::S_IWUSR,
                    Some(&attr),
                );
                // The name goes at once: the descriptors keep the queue.
                let _ = mq_unlink(name.as_c_str());
                let q = q?;
                out.fds
                    .push(std::os::fd::AsFd::as_fd(&q).try_clone_to_owned()?);
            }
        }
        Kind::SysvMq => {
            for _ in 0..2 {
                let q = MsgQueue::create()?;
                out.ids.push(q.id());
                out._queues.push(q);
            }
        }
        Kind::Line | Kind::ShmFutex | Kind::ShmEventfd | Kind::ShmPosixSem | Kind::Ring => {
            let fd = crate::sys::shm::memfd(loops::segment_len(loops::area_for(kind, size)))?;
            if kind == Kind::ShmPosixSem {
                loops::Shared::map(&fd, size)?.init_sems()?;
            }
            out.fds.push(fd);
            if kind == Kind::ShmEventfd {
                for _ in 0..2 {
                    out.fds.push(rustix::event::eventfd(
                        0,
                        rustix::event::EventfdFlags::CLOEXEC,
                    )?);
                }
            }
        }
    }
    Ok(out)
}

/// How the watchdog of one bare run ended.
enum Ended {
    Normally,
    TimedOut,
    Interrupted,
}

/// How long one bare run may take before both sides are killed.
const DEADLINE: Duration = Duration::from_secs(60);

/// Runs the bare `kind` loop with messages of `size` bytes: `rounds` between a ping side
/// on `cpus.0` and a pong side on `cpus.1`; returns the ping side's median round trip (ns).
/// With `threaded`, the ping side's process has one more (idle) thread, like ipcbench's
/// parent: on Linux a multi-threaded process pays more per context switch.
pub fn measure(
    exe: &Path,
    kind: Kind,
    size: usize,
    rounds: Rounds,
    cpus: (Option<usize>, Option<usize>),
    threaded: bool,
) -> Result<u64, BareError> {
    let name = kind.mechanism();
    let io_err = |action| {
        move |source| BareError::Io {
            kind: name,
            action,
            source,
        }
    };
    let objects = create(kind, size).map_err(io_err("create its kernel objects"))?;
    let raw: Vec<_> = objects.fds.iter().map(|f| f.as_raw_fd()).collect();
    let spawn = |side: Side, cpu: Option<usize>| -> io::Result<Child> {
        let mut cmd = Command::new(exe);
        cmd.arg(ROLE)
            .arg("--kind")
            .arg(kind.arg())
            .arg("--side")
            .arg(side.name())
            .arg("--size")
            .arg(kind.size(size).to_string())
            .arg("--warmup")
            .arg(rounds.warmup.to_string())
            .arg("--count")
            .arg(rounds.count.to_string())
            .arg("--fds")
            .arg(raw.len().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(c) = cpu {
            cmd.arg("--cpu").arg(c.to_string());
        }
        if threaded && side == Side::Ping {
            cmd.arg("--idle-thread");
        }
        if !objects.ids.is_empty() {
            let ids: Vec<String> = objects.ids.iter().map(i32::to_string).collect();
            cmd.arg("--ids").arg(ids.join(","));
        }
        prepare_child(&mut cmd, &raw)?;
        cmd.spawn()
    };
    let mut sides = Vec::with_capacity(2);
    for (side, cpu) in [(Side::Pong, cpus.1), (Side::Ping, cpus.0)] {
        match spawn(side, cpu) {
            Ok(c) => sides.push((side, c)),
            Err(e) => {
                for (_, mut c) in sides {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(io_err("start a side")(e));
            }
        }
    }
    let result = wait_all(name, &mut sides);
    drop(objects);
    let outputs = result?;
    let ping = outputs
        .into_iter()
        .find(|(side, _)| *side == Side::Ping)
        .map(|(_, out)| out)
        .unwrap_or_default();
    ping.trim().parse().map_err(|_| BareError::Side {
        kind: name,
        side: "ping",
        status: "exit 0".into(),
        detail: format!(": printed {:?}, not a median", ping.trim()),
    })
}

/// Waits for both sides (blocking: nothing of the orchestrator wakes on their CPUs while
/// they run), with a watchdog that kills both at the deadline or when one fails; returns
/// each side's stdout, or the failure with the failing side's stderr.
fn wait_all(
    name: &'static str,
    sides: &mut [(Side, Child)],
) -> Result<Vec<(Side, String)>, BareError> {
    use std::sync::mpsc;
    let pids: Vec<nix::unistd::Pid> = sides
        .iter()
        .map(|(_, c)| nix::unistd::Pid::from_raw(c.id() as i32))
        .collect();
    let (stop, stopped) = mpsc::channel::<bool>();
    // Our own children, not yet reaped (so their pids cannot have been reused).
    let kill_all = move || {
        for &p in &pids {
            let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
        }
    };
    // Looks every 50 ms for the deadline and for SIGINT/SIGTERM (the run is stopping, and
    // the spinning kinds can take long on a busy machine): both end the two sides.
    let watchdog = std::thread::spawn(move || {
        let start = Instant::now();
        loop {
            match stopped.recv_timeout(Duration::from_millis(50)) {
                Ok(false) | Err(mpsc::RecvTimeoutError::Disconnected) => return Ended::Normally,
                Ok(true) => {
                    kill_all();
                    return Ended::Normally;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if crate::interrupt::interrupted().is_some() {
                        kill_all();
                        return Ended::Interrupted;
                    }
                    if start.elapsed() > DEADLINE {
                        kill_all();
                        return Ended::TimedOut;
                    }
                }
            }
        }
    });
    // One waiting thread per side: a side that fails leaves the other waiting forever,
    // so whichever ends badly first stops both.
    let done: Vec<Option<std::process::ExitStatus>> = std::thread::scope(|scope| {
        let waits: Vec<_> = sides
            .iter_mut()
            .map(|(_, c)| {
                let stop = stop.clone();
                scope.spawn(move || {
                    let st = c.wait().ok();
                    if !st.is_some_and(|s| s.success()) {
                        let _ = stop.send(true);
                    }
                    st
                })
            })
            .collect();
        waits.into_iter().map(|w| w.join().ok().flatten()).collect()
    });
    let _ = stop.send(false);
    match watchdog.join().unwrap_or(Ended::Normally) {
        Ended::Normally => {}
        Ended::TimedOut => {
            return Err(BareError::Timeout {
                kind: name,
                secs: DEADLINE.as_secs(),
            })
        }
        Ended::Interrupted => return Err(BareError::Interrupted { kind: name }),
    }
    // The side that failed by itself explains more than the one killed after it.
    use std::os::unix::process::ExitStatusExt;
    let mut order: Vec<usize> = (0..sides.len()).collect();
    order.sort_by_key(|&i| done[i].is_none_or(|st| st.signal().is_some()));
    let mut outs = Vec::with_capacity(sides.len());
    for i in order {
        let (side, c) = &mut sides[i];
        let mut out = String::new();
        let mut err = String::new();
        if let Some(o) = c.stdout.as_mut() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(e) = c.stderr.as_mut() {
            let _ = e.read_to_string(&mut err);
        }
        match done[i] {
            Some(st) if st.success() => outs.push((*side, out)),
            st => {
                return Err(BareError::Side {
                    kind: name,
                    side: side.name(),
                    status: st
                        .map(crate::peer::describe_status)
                        .unwrap_or_else(|| "not waited for".into()),
                    detail: match err.trim() {
                        "" => String::new(),
                        e => format!(": {e}"),
                    },
                })
            }
        }
    }
    Ok(outs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_sample() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [5, 1, 9]), Some(5));
        assert_eq!(median(&mut [4, 1, 3, 2]), Some(3));
    }

    #[test]
    fn every_kind_names_a_registered_mechanism() {
        for k in Kind::ALL {
            assert!(
                crate::backends::by_id(k.mechanism()).is_some(),
                "{k:?} -> {}",
                k.mechanism()
            );
        }
    }
}
