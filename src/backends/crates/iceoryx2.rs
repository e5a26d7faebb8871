//! `iceoryx2` (cargo feature `iceoryx2`): iceoryx2 0.10 publish-subscribe, one `[u8]`
//! service per direction, one publisher and one subscriber each, no history, no overflow
//! (the publisher retries until delivered, so nothing is lost). The subscriber polls, so it
//! is set beside `shm-spin`. Data path: the publisher writes into a loaned shared-memory
//! sample (one copy) and the receiver copies the sample into its own buffer (a second copy)
//! before checking it, like every other mechanism here: not zero-copy as measured.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::{BackpressureAction, BackpressureInfo};
use iceoryx2::prelude::*;

use super::super::{
    AbortHandle, Channel, ChannelParams, Family, Leftovers, Mechanism, MechanismInfo, Offer,
};
use crate::environment::Limits;
use crate::error::BackendError;
use crate::placement::Pin;
use crate::sys::fs::PREFIX;
use crate::sys::record::Object;
use std::path::{Path, PathBuf};

pub struct Iceoryx2;

static INFO: MechanismInfo = MechanismInfo {
    id: "iceoryx2",
    family: Family::Crates,
    summary: "iceoryx2 0.10 publish-subscribe over shared memory, polling subscriber; receiver copies the sample out (not zero-copy as measured)",
    boundaries: true,
    kernel_copies: 0,
    lossy: false,
    named: true,
    cross_host: false,
    built_on: Some("shm-spin"),
    fan_in: true,
    fd_passing: false,
    portable: true,
    trade_off: "zero-copy capable publish-subscribe middleware (copied out here); polls; about 70 extra crates",
    verified: true,
    busy_waits: true,
    calibrates: None,
    in_all: true,
};

/// Samples a subscriber may hold queued: enough for streaming, small enough for memory.
const DEPTH: usize = 8;

type Svc = ipc::Service;

struct IoxChannel {
    // Ports before the node: they must go first.
    tx: Publisher<Svc, [u8], ()>,
    rx: Subscriber<Svc, [u8], ()>,
    _node: Node<Svc>,
    spin_yield: bool,
    aborted: Arc<AtomicBool>,
    /// Parent only. The last field, so it is dropped after the ports and the node.
    domain: Option<Domain>,
}

/// The parent's hold on the run's private domain, recorded for `ipcbench clean` while it
/// lasts. Dropped after this side's node and after the peer has gone (sessions drop the peer
/// before the channel), it sweeps the domain (see `sweep`); the record goes once nothing
/// remains.
struct Domain {
    name: String,
    config: Config,
}

impl Drop for Domain {
    fn drop(&mut self) {
        if sweep(&self.name, &self.config).is_ok() {
            crate::sys::record::untrack(&domain_object(&self.name));
        }
    }
}

fn other(e: impl std::fmt::Debug) -> io::Error {
    io::Error::other(format!("{e:?}"))
}

impl Channel for IoxChannel {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let sample = self.tx.loan_slice_uninit(msg.len()).map_err(other)?;
        let delivered = sample.write_from_slice(msg).send().map_err(other)?;
        if delivered == 0 {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "no subscriber received the sample",
            ));
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut spins = 0u32;
        loop {
            if let Some(sample) = self.rx.receive().map_err(other)? {
                let p = sample.payload();
                let n = p.len().min(buf.len());
                buf[..n].copy_from_slice(&p[..n]);
                return Ok(p.len());
            }
            spins = spins.wrapping_add(1);
            if self.spin_yield && spins >= 1000 {
                let _ = nix::sched::sched_yield();
            } else {
                std::hint::spin_loop();
            }
            if spins % 4096 == 0 && self.aborted.load(Ordering::Relaxed) {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the peer is gone",
                ));
            }
        }
    }

    fn abort_handle(&self) -> Option<AbortHandle> {
        let flag = Arc::clone(&self.aborted);
        Some(Box::new(move || flag.store(true, Ordering::Release)))
    }

    fn peer_attached(&mut self) -> Result<(), BackendError> {
        if let Some(d) = &self.domain {
            remove_global_segment(&d.config)
                .map_err(|e| err("remove", "the domain's global management segment", e))?;
        }
        Ok(())
    }
}

/// Removes the global management segment of the run's private domain. iceoryx2 keeps it
/// (it is persistent by design) and reads it only to number new nodes, so once both
/// processes' nodes exist nothing needs it; in the shared default domain it could not be
/// removed, which is why each run has a domain of its own.
fn remove_global_segment(config: &Config) -> Result<bool, impl std::fmt::Debug> {
    // SAFETY: iceoryx2 requires that no other process uses the domain. The domain's prefix
    // is unique to this run (pid and random tag), and its only users, this process and its
    // peer, have both created their nodes (the one step that opens the segment) or are gone.
    unsafe { iceoryx2::testing::remove_global_mgmt_segment::<Svc>(config) }
}

fn err(action: &'static str, what: &str, e: impl std::fmt::Debug) -> BackendError {
    BackendError::new(INFO.id, action, what.to_string(), other(e))
}

/// iceoryx2's own cleanup of the stale resources of a domain's dead nodes; returns how many
/// of its nodes are alive.
fn remove_dead_nodes(config: &Config) -> io::Result<usize> {
    let mut alive = 0;
    Node::<Svc>::list(config, |state| {
        match state {
            NodeState::<Svc>::Dead(view) => {
                let _ = view.try_remove_stale_resources();
            }
            NodeState::<Svc>::Alive(_) => alive += 1,
            _ => {}
        }
        CallbackProgression::Continue
    })
    .map_err(other)?;
    Ok(alive)
}

/// Removes everything of a domain whose processes are gone, on every exit path (a run's
/// end, a failed case, `ipcbench clean` after a killed run): iceoryx2's own cleanup of its
/// dead nodes (their records, services and shared memory), the global management segment,
/// then every file still carrying the domain's prefix. The last step is what a process
/// killed partway through creating its node or a service needs: iceoryx2 cannot see a node
/// without its monitor, nor clean one whose details are gone. Refused while a node of the
/// domain is alive; an error names what remains.
fn sweep(name: &str, config: &Config) -> io::Result<()> {
    let alive = remove_dead_nodes(config)?;
    if alive > 0 {
        return Err(io::Error::other(format!(
            "{alive} node(s) of the domain are still alive"
        )));
    }
    remove_global_segment(config).map_err(other)?;
    remove_domain_files(name)
}

/// A run's domain as `clean` and leak audits know it.
pub static DOMAIN: Leftovers = Leftovers {
    kind: "iox2-domain",
    exists: |name| !domain_files(name).is_empty(),
    remove: remove_domain,
};

fn domain_object(name: &str) -> Object {
    Object::Registered {
        kind: DOMAIN.kind.to_string(),
        name: name.to_string(),
    }
}

/// Where iceoryx2 keeps its files by default (its `global.root-path`).
const IOX2_ROOT: &str = "/tmp/iceoryx2";

/// The files of the iceoryx2 domain `name`: shared memory and the node and service records.
pub fn domain_files(name: &str) -> Vec<PathBuf> {
    let prefix = format!("iox2_{name}_");
    let mut dirs = vec![
        PathBuf::from("/dev/shm"),
        Path::new(IOX2_ROOT).join("services"),
        Path::new(IOX2_ROOT).join("nodes"),
    ];
    // Node records sit in one directory per node id, named without the prefix.
    if let Ok(rd) = std::fs::read_dir(Path::new(IOX2_ROOT).join("nodes")) {
        dirs.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect()
}

/// Removes the files of the iceoryx2 domain `name` (see `domain_files`) and the node
/// directories that leaves empty. For a domain no live process uses: the caller checks.
/// An error names a file that could not be removed.
fn remove_domain_files(name: &str) -> io::Result<()> {
    let nodes = Path::new(IOX2_ROOT).join("nodes");
    for path in domain_files(name) {
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != io::ErrorKind::NotFound {
                return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())));
            }
        }
        // A node's directory is named by its id alone (ids hold a pid and a time, so no
        // other domain shares it); removing it succeeds only once it is empty.
        if let Some(dir) = path
            .parent()
            .filter(|d| d.parent() == Some(nodes.as_path()))
        {
            let _ = std::fs::remove_dir(dir);
        }
    }
    Ok(())
}

/// Removes a dead run's domain (see `sweep`).
pub fn remove_domain(name: &str) -> io::Result<()> {
    set_log_level(LogLevel::Error);
    let config = domain(name).map_err(|e| io::Error::other(e.to_string()))?;
    sweep(name, &config)
}

/// The run's private iceoryx2 domain: the default configuration with a file prefix of its
/// own, so every object iceoryx2 creates for the run (its global management segment too)
/// is the run's and can be removed without touching other iceoryx2 programs.
fn domain(base: &str) -> Result<Config, BackendError> {
    let mut config = Config::global_config().clone();
    let prefix = format!("iox2_{base}_");
    config.global.prefix = FileName::new(prefix.as_bytes()).map_err(|e| err("name", &prefix, e))?;
    Ok(config)
}

/// Opens this side's node and ports in the domain `config`: publish on `out`, subscribe
/// to `inp` (services named after the domain's `base`).
fn open(
    config: &Config,
    base: &str,
    out: &str,
    inp: &str,
    size: usize,
    spin_yield: bool,
) -> Result<IoxChannel, BackendError> {
    set_log_level(LogLevel::Error);
    let node = NodeBuilder::new()
        .config(config)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<Svc>()
        .map_err(|e| err("create", "a node", e))?;
    let service = |suffix: &str| {
        let name = format!("{base}-{suffix}");
        let sn: ServiceName = name
            .as_str()
            .try_into()
            .map_err(|e| err("name", &name, e))?;
        node.service_builder(&sn)
            .publish_subscribe::<[u8]>()
            .max_publishers(1)
            .max_subscribers(1)
            .history_size(0)
            .subscriber_max_buffer_size(DEPTH)
            .enable_safe_overflow(false)
            .open_or_create()
            .map_err(|e| err("open", &name, e))
    };
    let out_svc = service(out)?;
    let in_svc = service(inp)?;
    let aborted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&aborted);
    // A full subscriber buffer makes the publisher retry; a dead subscriber would make it
    // retry forever, so the handler gives up once the peer is known to be gone.
    let tx = out_svc
        .publisher_builder()
        .initial_max_slice_len(size)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .set_backpressure_handler(move |_: &BackpressureInfo| {
            if flag.load(Ordering::Relaxed) {
                BackpressureAction::DiscardData
            } else {
                if spin_yield {
                    let _ = nix::sched::sched_yield();
                }
                BackpressureAction::Retry
            }
        })
        .create()
        .map_err(|e| err("create", "a publisher", e))?;
    let rx = in_svc
        .subscriber_builder()
        .create()
        .map_err(|e| err("create", "a subscriber", e))?;
    Ok(IoxChannel {
        tx,
        rx,
        _node: node,
        spin_yield,
        aborted,
        domain: None,
    })
}

impl Mechanism for Iceoryx2 {
    fn info(&self) -> &'static MechanismInfo {
        &INFO
    }

    /// One copy into the loaned sample and one out of the received one.
    fn copies(&self, _params: &ChannelParams) -> u8 {
        2
    }

    fn unsupported(&self, params: &ChannelParams, _limits: &Limits) -> Option<String> {
        (params.pin == Pin::Same).then(|| {
            "the subscriber polls, which needs two CPUs: with --pin same it holds the CPU the publisher needs (use --pin cross or --pin none)".into()
        })
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        // What killed earlier runs left (their domains are recorded; live runs' are kept).
        for r in crate::sys::record::records().unwrap_or_default() {
            if let Object::Registered { kind, name } = &r.object {
                if kind == DOMAIN.kind && !r.maker_alive() && remove_domain(name).is_ok() {
                    r.forget();
                }
            }
        }
        let tag = crate::sys::random_u64().map_err(|e| err("read", "/dev/urandom", e))?;
        let base = format!("{PREFIX}{}-{tag:016x}", std::process::id());
        crate::sys::record::track(&domain_object(&base));
        // Held from the start, so even a failed open leaves nothing (and no record) behind.
        let guard = Domain {
            name: base.clone(),
            config: domain(&base)?,
        };
        let spin_yield = params.pin == Pin::None;
        let mut chan = open(&guard.config, &base, "to", "from", params.size, spin_yield)?;
        chan.domain = Some(guard);
        Ok(Offer {
            spec: format!("{base};yield={}", u8::from(spin_yield)),
            inherit: Vec::new(),
            connect: Box::new(move |_| Ok(Box::new(chan))),
        })
    }

    fn join(
        &self,
        spec: &str,
        _inherited: Vec<OwnedFd>,
        params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        let (base, y) = spec
            .split_once(";yield=")
            .ok_or_else(|| BackendError::invalid(INFO.id, spec, "malformed description"))?;
        let valid = base.starts_with(PREFIX)
            && base.len() < 100
            && base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid || !(y == "0" || y == "1") {
            return Err(BackendError::invalid(
                INFO.id,
                spec,
                "not a service this tool creates",
            ));
        }
        let config = domain(base)?;
        Ok(Box::new(open(
            &config,
            base,
            "from",
            "to",
            params.size,
            y == "1",
        )?))
    }
}
