//! A fan-in session (`--clients N`): this process is the server, N peers (the same re-run
//! executable) are the clients, each joined to the mechanism's hub as a one-to-one peer
//! would be. Like `Session`, it starts them, runs workload phases and ends them; a client
//! that fails, dies or hangs fails the case with that client named.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backends::fanin::{Hub, SharedAbort};
use crate::backends::{Mechanism, Rendezvous};
use crate::error::{Error, PeerError};
use crate::peer::protocol::Order;
use crate::peer::{Launch, Peer};
use crate::session::SessionOptions;
use crate::sys::CpuUsage;
use crate::workload::{Buffers, DataError, Mode};

/// How long a failed server loop waits for the client behind it to be seen exiting.
const EXIT_GRACE: Duration = Duration::from_millis(200);
/// How long before the window opens its order is sent, per client (each must answer `go`).
const LEAD_PER_CLIENT: Duration = Duration::from_millis(5);
const LEAD: Duration = Duration::from_millis(20);

pub struct FanIn {
    mechanism: &'static dyn Mechanism,
    // The clients go first (fields drop in order): the hub's objects are released after
    // every client has exited or been killed.
    clients: Vec<Peer>,
    hub: Box<dyn Hub>,
    bufs: Buffers,
    cpus: Vec<Option<usize>>,
    server_cpu: Option<usize>,
}

/// One phase's accounts: the server loop's value, the server's CPU and each client's
/// CPU and report.
pub struct FanPhase<T> {
    pub served: T,
    pub server_cpu: CpuUsage,
    pub clients: Vec<(CpuUsage, serde_json::Value)>,
}

impl FanIn {
    /// Pins this thread as the server, creates the hub's objects, starts the clients (each
    /// placed as `Placement::clients` says) and waits until all of them hold their objects.
    pub fn start(
        m: &'static dyn Mechanism,
        size: usize,
        clients: usize,
        opts: &SessionOptions,
    ) -> Result<FanIn, Error> {
        let id = m.info().id;
        opts.placement.apply_parent().map_err(|source| Error::Pin {
            cpu: opts.placement.parent_cpu.unwrap_or(0),
            source,
        })?;
        let offer = crate::backends::fanin::offer(m, &opts.params(size), clients)?;
        let cpus = opts.placement.clients(clients);
        let mut peers = Vec::with_capacity(clients);
        for (i, c) in offer.clients.into_iter().enumerate() {
            let launch = Launch {
                exe: &opts.peer_exe,
                mechanism: id,
                size,
                verify: opts.verify,
                cpu: cpus[i],
                spec: c.spec,
                inherit: c.inherit,
            };
            peers.push(
                Peer::spawn(launch, opts.timeout)
                    .map_err(|source| client_error(id, i, clients, None, source))?,
            );
        }
        let connected = {
            let gone = || peers.iter().any(|p| p.has_exited());
            let rv = Rendezvous::new(Instant::now() + opts.timeout, &gone);
            (offer.connect)(&rv)
        };
        let mut hub = match connected {
            Ok(h) => h,
            Err(e) => return Err(first_failure(id, &mut peers).unwrap_or(Error::Backend(e))),
        };
        let abort: SharedAbort = hub.abort_handle();
        for p in &peers {
            let a = Arc::clone(&abort);
            p.on_exit(Box::new(move || a()));
        }
        for (i, p) in peers.iter_mut().enumerate() {
            let pid = p.pid();
            p.expect_ready()
                .map_err(|source| client_error(id, i, clients, pid, source))?;
        }
        hub.clients_attached()?;
        Ok(FanIn {
            mechanism: m,
            clients: peers,
            hub,
            bufs: Buffers::new(size, opts.verify),
            cpus,
            server_cpu: opts.placement.parent_cpu,
        })
    }

    pub fn id(&self) -> &'static str {
        self.mechanism.info().id
    }

    /// Where the server and each client ran, when pinned.
    pub fn placement(&self) -> (Option<usize>, Vec<Option<usize>>) {
        (self.server_cpu, self.cpus.clone())
    }

    /// How the clients' channels run (datagrams: bounded waits, losses counted).
    pub fn mode(&self) -> Mode {
        if self.mechanism.info().lossy {
            Mode::Lossy
        } else {
            Mode::Reliable
        }
    }

    /// One phase of `workload` over a window of `window` (plus a lead so every client
    /// starts together): the order to every client, their `go`, `serve` over the hub under
    /// the watchdogs with this thread's CPU measured around it, then every client's `done`.
    pub fn phase<T>(
        &mut self,
        workload: &str,
        window: Duration,
        p: &crate::workload::Params,
        serve: impl FnOnce(&mut dyn Hub, &mut Buffers, usize) -> Result<T, DataError>,
    ) -> Result<FanPhase<T>, Error> {
        let id = self.id();
        let n = self.clients.len();
        let lead = LEAD + LEAD_PER_CLIENT * n as u32;
        let start_ns = crate::workload::lossy::monotonic_ns() + lead.as_nanos() as u64;
        let end_ns = start_ns + window.as_nanos() as u64;
        for (i, c) in self.clients.iter_mut().enumerate() {
            let o = Order::Client {
                workload: workload.to_string(),
                index: i as u32,
                clients: n as u32,
                start_ns,
                end_ns,
                rate: p.rate,
                arrivals: p.arrivals,
            };
            let pid = c.pid();
            c.command(&o)
                .map_err(|source| client_error(id, i, n, pid, source))?;
        }
        for (i, p) in self.clients.iter_mut().enumerate() {
            let pid = p.pid();
            p.expect_go()
                .map_err(|source| client_error(id, i, n, pid, source))?;
            p.arm_for(window + lead);
        }
        let before = CpuUsage::thread();
        let result = serve(self.hub.as_mut(), &mut self.bufs, n);
        let after = CpuUsage::thread();
        for p in &self.clients {
            p.disarm();
        }
        let served = match result {
            Ok(v) => v,
            Err(e) => return Err(self.explain(e)),
        };
        let mut reports = Vec::with_capacity(n);
        for (i, p) in self.clients.iter_mut().enumerate() {
            let pid = p.pid();
            reports.push(
                p.expect_done()
                    .map_err(|source| client_error(id, i, n, pid, source))?,
            );
        }
        let server_cpu = match (before, after) {
            (Ok(b), Ok(a)) => a.since(b),
            _ => CpuUsage::default(),
        };
        Ok(FanPhase {
            served,
            server_cpu,
            clients: reports,
        })
    }

    /// A failed server loop: a client that died, hung or reported explains it best.
    fn explain(&mut self, e: DataError) -> Error {
        let id = self.id();
        if let Some(err) = first_failure(id, &mut self.clients) {
            return err;
        }
        match e {
            DataError::Verify(source) => Error::Verify {
                mechanism: id,
                side: "server",
                source,
            },
            DataError::Io { op, seq, source } => Error::DataPath {
                mechanism: id,
                op,
                seq,
                source,
            },
            DataError::Backend(e) => Error::Backend(e),
        }
    }

    /// Tells every client to exit and checks that each did so cleanly.
    pub fn finish(self) -> Result<(), Error> {
        let id = self.id();
        let n = self.clients.len();
        let mut first = Ok(());
        for (i, p) in self.clients.into_iter().enumerate() {
            let pid = p.pid();
            let r = p
                .quit()
                .map_err(|source| client_error(id, i, n, pid, source));
            if first.is_ok() {
                first = r;
            }
        }
        drop(self.hub);
        first
    }
}

/// The client that is gone, as the case's error. A client that reported a failure (a bad
/// reply) exits right after; a short grace lets its exit be seen. When several are gone, one
/// that died (a signal, a crash) is the cause: the others' failures follow from it (a
/// queue removed to unblock the server ends their waits too).
fn first_failure(id: &'static str, peers: &mut [Peer]) -> Option<Error> {
    let n = peers.len();
    let deadline = Instant::now() + EXIT_GRACE;
    let gone = loop {
        let gone: Vec<usize> = (0..n).filter(|&i| peers[i].has_exited()).collect();
        if !gone.is_empty() {
            break gone;
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut why: Vec<(usize, PeerError)> = gone
        .into_iter()
        .map(|i| {
            let e = peers[i]
                .diagnose()
                .unwrap_or_else(|| PeerError::Protocol("the client exited".into()));
            (i, e)
        })
        .collect();
    let cause = why
        .iter()
        .position(|(_, e)| matches!(e, PeerError::Died { .. }))
        .unwrap_or(0);
    let (i, source) = why.swap_remove(cause);
    Some(client_error(id, i, n, peers[i].pid(), source))
}

fn client_error(
    mechanism: &'static str,
    index: usize,
    clients: usize,
    pid: Option<u32>,
    source: PeerError,
) -> Error {
    Error::Client {
        mechanism,
        index,
        clients,
        pid: pid.unwrap_or(0),
        source,
    }
}
