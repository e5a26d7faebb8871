//! The peer role: this executable re-run by `ipcbench run` as the other process. It says
//! hello, checks the parent's, opens what the parent offered, answers `ready`, then runs
//! each ordered workload phase through the workload registry until `quit`.
//! Exit codes: 0 done, 2 refused (arguments, versions, orders), 3 failed (reported first).

use std::io::{self, BufReader, Write};
use std::os::fd::OwnedFd;

use clap::Args;

use super::protocol::{self, Failure, FailureKind, Order, Reply};
use crate::backends::ChannelParams;
use crate::error::PeerError;
use crate::message::Verify;
use crate::subject::Subject;
use crate::sys::courier::Courier;
use crate::sys::fd::{take_inherited, MAX_INHERITED_FDS};
use crate::sys::CpuUsage;
use crate::workload::{self, Buffers, ChannelEnd, End, SyncSide};

/// Largest message the peer role accepts (the CLI enforces the same bound).
pub const MAX_SIZE: usize = 256 << 20;
/// Name of the hidden subcommand.
pub const ROLE: &str = "__peer";

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
    /// The courier (`sys::courier`) follows the channel's descriptors.
    #[arg(long)]
    pub courier: bool,
    #[arg(long, default_value = "")]
    pub spec: String,
}

/// Why the role stops: refused (exit 2) or failed (exit 3), reported to the parent first.
struct Stop(Failure);

impl Stop {
    fn refused(message: impl Into<String>) -> Stop {
        Stop(Failure::new(FailureKind::Refused, message))
    }

    fn protocol(e: PeerError) -> Stop {
        Stop(Failure::new(FailureKind::Protocol, e.to_string()))
    }

    fn data(e: workload::DataError) -> Stop {
        let (kind, os_error) = match &e {
            // A mechanism's own error keeps its structure (action, hint).
            workload::DataError::Backend(b) => return Stop(Failure::from(b)),
            workload::DataError::Verify(_) => (FailureKind::Verify, None),
            workload::DataError::Io { source, .. } => {
                (FailureKind::DataPath, source.raw_os_error())
            }
        };
        let mut f = Failure::new(kind, e.to_string());
        f.os_error = os_error;
        Stop(f)
    }

    fn code(&self) -> i32 {
        match self.0.kind {
            FailureKind::Refused | FailureKind::Protocol => 2,
            _ => 3,
        }
    }
}

/// The peer's half of the control pipes.
struct Control {
    out: io::StdoutLock<'static>,
    input: BufReader<io::StdinLock<'static>>,
}

impl Control {
    fn say(&mut self, reply: &Reply) -> Result<(), Stop> {
        protocol::send(&mut self.out, reply).map_err(|e| Stop::protocol(PeerError::Control(e)))
    }

    /// The parent's next order; end of input is the parent gone.
    fn order(&mut self) -> Result<Order, Stop> {
        match protocol::read_line(&mut self.input).map_err(Stop::protocol)? {
            Some(line) => protocol::decode(&line, "an order").map_err(Stop::protocol),
            None => Err(Stop::protocol(PeerError::Protocol(
                "the parent closed the control pipe".into(),
            ))),
        }
    }
}

fn is_pipe(fd: i32) -> bool {
    // SAFETY: borrowing a standard descriptor for one fstat; it stays open for the call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    nix::sys::stat::fstat(fd)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO)
        .unwrap_or(false)
}

/// The peer role's main.
pub fn serve(args: &PeerArgs) -> i32 {
    if !is_pipe(0) || !is_pipe(1) {
        eprintln!("ipcbench: {ROLE} is the peer role that `ipcbench run` starts itself; it is not for use by hand");
        return 2;
    }
    let mut control = Control {
        out: io::stdout().lock(),
        input: BufReader::new(io::stdin().lock()),
    };
    match converse(args, &mut control) {
        Ok(()) => 0,
        Err(stop) => {
            // The parent reads this; a broken stdout means it is gone anyway.
            let code = stop.code();
            let _ = control.say(&Reply::Error { failure: stop.0 });
            let _ = control.out.flush();
            code
        }
    }
}

fn converse(args: &PeerArgs, control: &mut Control) -> Result<(), Stop> {
    control.say(&Reply::Hello {
        version: protocol::VERSION,
    })?;
    match control.order()? {
        Order::Hello { version } => protocol::check_version(version).map_err(Stop::protocol)?,
        other => {
            return Err(Stop::protocol(PeerError::Protocol(format!(
                "expected the parent's hello, got {other:?}"
            ))))
        }
    }
    let subject = validate(args).map_err(Stop::refused)?;
    let mut end = join(subject, args)?;
    control.say(&Reply::Ready)?;
    let caps = subject.capabilities();
    loop {
        match control.order()? {
            Order::Quit => return Ok(()),
            Order::Run { workload, count } => {
                let w = workload::by_id(&workload)
                    .filter(|w| w.applies(&caps))
                    .ok_or_else(|| {
                        Stop::refused(format!(
                            "{} does not run a workload called {workload:?}",
                            subject.id()
                        ))
                    })?;
                let cpu = |()| CpuUsage::thread().map_err(|e| Stop::refused(e.to_string()));
                control.say(&Reply::Go)?;
                let before = cpu(())?;
                let outcome = w.serve(&mut end, count).map_err(Stop::data)?;
                let cpu = cpu(())?.since(before);
                control.say(&Reply::Done { cpu, outcome })?;
            }
            Order::Client {
                workload,
                index,
                clients,
                start_ns,
                end_ns,
                rate,
                arrivals,
            } => {
                let w = workload::by_id(&workload)
                    .filter(|w| w.applies(&caps) && w.fans_in())
                    .ok_or_else(|| {
                        Stop::refused(format!(
                            "{} has no fan-in workload called {workload:?}",
                            subject.id()
                        ))
                    })?;
                if index >= clients || clients as usize > workload::clients::MAX_CLIENTS {
                    return Err(Stop::refused(format!("client {index} of {clients}")));
                }
                let order = workload::clients::ClientOrder {
                    index: index as usize,
                    clients: clients as usize,
                    start_ns,
                    end_ns,
                    rate,
                    arrivals,
                };
                let End::Channel(c) = &mut end else {
                    return Err(Stop::refused("only a channel has clients"));
                };
                let cpu = |()| CpuUsage::thread().map_err(|e| Stop::refused(e.to_string()));
                control.say(&Reply::Go)?;
                let before = cpu(())?;
                let report = w.client(c, &order).map_err(Stop::data)?;
                let cpu = cpu(())?.since(before);
                let outcome = workload::outcome(&report).map_err(Stop::data)?;
                control.say(&Reply::Done { cpu, outcome })?;
            }
            Order::Hold => {
                let End::Sync(s) = &mut end else {
                    return Err(Stop::refused("only a synchronisation primitive can hold"));
                };
                s.end
                    .lock(true)
                    .map_err(|e| Stop::data(workload::DataError::io("lock", 0)(e)))?;
                control.say(&Reply::Holding)?;
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
            Order::Hello { .. } => {
                return Err(Stop::protocol(PeerError::Protocol("a second hello".into())))
            }
        }
    }
}

fn validate(args: &PeerArgs) -> Result<Subject, String> {
    let s = Subject::by_id(&args.mechanism)
        .ok_or_else(|| format!("unknown mechanism {:?}", args.mechanism))?;
    if args.size == 0 || args.size > MAX_SIZE {
        return Err(format!("size {} is outside 1..={MAX_SIZE}", args.size));
    }
    if args.fds + usize::from(args.courier) > MAX_INHERITED_FDS {
        return Err(format!(
            "{} descriptors is more than {MAX_INHERITED_FDS}",
            args.fds
        ));
    }
    if args.spec.len() > 4096 || args.spec.contains('\0') {
        return Err("the channel description is malformed".into());
    }
    Ok(s)
}

/// Pins the peer where the parent asked, takes over its inherited descriptors and opens
/// what the parent offered.
fn join(subject: Subject, args: &PeerArgs) -> Result<End, Stop> {
    if let Some(cpu) = args.cpu {
        crate::placement::bind_current_thread(&[cpu])
            .map_err(|e| Stop::refused(format!("cannot pin the peer to CPU {cpu}: {e}")))?;
    }
    let refused = |e: io::Error| Stop::refused(format!("{}: {e}", subject.id()));
    let mut fds: Vec<OwnedFd> =
        take_inherited(args.fds + usize::from(args.courier)).map_err(refused)?;
    let courier = match args.courier {
        true => fds
            .pop()
            .map(Courier::from_inherited)
            .transpose()
            .map_err(refused)?,
        false => None,
    };
    let backend = |e: crate::error::BackendError| Stop(Failure::from(&e));
    Ok(match subject {
        Subject::Channel(m) => {
            let params = ChannelParams::new(args.size);
            let chan = m.join(&args.spec, fds, &params).map_err(backend)?;
            let bufs = Buffers::for_channel(args.size, args.verify, &*chan);
            End::Channel(ChannelEnd {
                info: m.info(),
                chan,
                bufs,
                seq: 0,
                params,
                courier,
            })
        }
        Subject::Sync(p) => End::Sync(SyncSide {
            info: p.info(),
            end: crate::backends::sync::join(p, &args.spec, fds).map_err(backend)?,
        }),
    })
}
