//! Criterion groups over ipcbench's sessions (feature `criterion`): one group per workload
//! and size (`latency/64 B`, `throughput/1 MiB`, and the unsized `handoff`, `lock`), one
//! benchmark per subject that runs it, each keeping one peer process alive across
//! iterations (`iter_custom`) and checking every message like `ipcbench run`. The peers
//! are this program re-run, so its `main` calls [`crate::peer_entry`] first.

#![forbid(unsafe_code)]

use std::time::Duration;

use criterion::{Criterion, Throughput};

use crate::backends::Mechanism;
use crate::environment::Limits;
use crate::message::Verify;
use crate::placement::{default_pin, Placement};
use crate::report::size_label;
use crate::session::{Session, SessionOptions};
use crate::subject::Subject;
use crate::workload::{self, Params, Workload};

/// Registers `latency/<size>` and `throughput/<size>` groups for `mechanisms` (a user's
/// own and built-in ones alike, e.g. `ipcbench::backends` ids looked up by the caller)
/// at each of `sizes`. Pinning: parent and peer on the first two allowed CPUs when there
/// are two, else one; printed once. A lost or corrupted message panics the benchmark.
///
/// ```no_run
/// # use ipcbench::Mechanism;
/// # static MINE: [&dyn Mechanism; 0] = [];
/// fn main() {
///     ipcbench::peer_entry(&MINE);
///     let mut c = criterion::Criterion::default().configure_from_args();
///     ipcbench::bench::mechanisms(&mut c, &MINE, &[64, 64 << 10]);
///     c.final_summary();
/// }
/// ```
pub fn mechanisms(c: &mut Criterion, mechanisms: &[&'static dyn Mechanism], sizes: &[usize]) {
    let subjects: Vec<Subject> = mechanisms.iter().map(|&m| Subject::Channel(m)).collect();
    let workloads = [workload::latency::ID, workload::throughput::ID]
        .into_iter()
        .filter_map(workload::by_id);
    groups(c, &subjects, sizes, workloads);
}

/// Every benchable workload of the registry over `subjects` (the project's own benches).
#[doc(hidden)]
pub fn groups(
    c: &mut Criterion,
    subjects: &[Subject],
    sizes: &[usize],
    workloads: impl Iterator<Item = &'static dyn Workload>,
) {
    let placement = Placement::plan(default_pin(), None).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("ipcbench benches: {}", placement.describe());
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("cannot find this program to start its peers: {e}"));
    let opts = SessionOptions::new(Verify::Cheap, placement, exe, Duration::from_secs(60));
    let limits = Limits::read();
    for w in workloads.filter(|w| w.benchable()) {
        if w.sized() {
            for &size in sizes {
                group(c, w, Some(size), subjects, &opts, &limits);
            }
        } else {
            group(c, w, None, subjects, &opts, &limits);
        }
    }
}

fn group(
    c: &mut Criterion,
    w: &'static dyn Workload,
    size: Option<usize>,
    subjects: &[Subject],
    opts: &SessionOptions,
    limits: &Limits,
) {
    let name = match size {
        Some(s) => format!("{}/{}", w.id(), size_label(s)),
        None => w.id().to_string(),
    };
    let mut group = c.benchmark_group(name.as_str());
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    if let (Some(s), workload::throughput::ID) = (size, w.id()) {
        group.throughput(Throughput::Bytes(s as u64));
    }
    let size = size.unwrap_or(0);
    for &subject in subjects.iter().filter(|s| s.runs(w)) {
        let id = subject.id();
        if let Subject::Channel(m) = subject {
            if let Some(why) = m.unsupported(&opts.params(size), limits) {
                eprintln!("{id} {name}: unsupported: {why}");
                continue;
            }
        }
        let mut session = match Session::start(subject, size, &opts.for_workload(w)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{id} {name}: cannot start: {e}");
                continue;
            }
        };
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                if iters == 0 {
                    return Duration::ZERO;
                }
                // A lost or corrupted message invalidates the benchmark: stop loudly.
                w.bench(&mut session, &Params::default(), iters)
                    .unwrap_or_else(|e| panic!("{e}"))
            })
        });
        if let Err(e) = session.finish() {
            panic!("{e}");
        }
    }
    group.finish();
}
