//! Criterion benches over the registries: one group per (workload, size) the workload
//! registry offers (`latency/64 B`, `throughput/1 MiB`, `handoff`, `lock`), one benchmark
//! per subject that runs it, channels and synchronisation primitives alike, through the same
//! sessions and workload halves as `ipcbench run`. Each benchmark keeps one peer process
//! alive across iterations (`iter_custom`). Pinning: `cross` (parent and peer on the first
//! two allowed CPUs) when there are two or more CPUs, else `same`; printed at start.
//! `cargo bench -- --quick` runs a short pass; `cargo bench -- --list` lists them all.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipcbench::environment::Limits;
use ipcbench::message::Verify;
use ipcbench::placement::{default_pin, Placement};
use ipcbench::report::size_label;
use ipcbench::session::{Session, SessionOptions};
use ipcbench::subject::Subject;
use ipcbench::workload::{self, Params, Workload};

/// The default sweep's sizes, identical for every mechanism.
const SIZES: [usize; 4] = [64, 4 << 10, 64 << 10, 1 << 20];
const TIMEOUT: Duration = Duration::from_secs(60);

fn bench_group(
    c: &mut Criterion,
    w: &'static dyn Workload,
    size: Option<usize>,
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
    if let (Some(s), "throughput") = (size, w.id()) {
        group.throughput(Throughput::Bytes(s as u64));
    }
    let size = size.unwrap_or(0);
    for subject in Subject::all().filter(|s| s.runs(w)) {
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

fn ipc(c: &mut Criterion) {
    let placement = Placement::plan(default_pin(), None).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("ipcbench benches: {}", placement.describe());
    let opts = SessionOptions::new(
        Verify::Cheap,
        placement,
        env!("CARGO_BIN_EXE_ipcbench").into(),
        TIMEOUT,
    );
    let limits = Limits::read();
    for &w in workload::REGISTRY.iter().filter(|w| w.benchable()) {
        if w.sized() {
            for size in SIZES {
                bench_group(c, w, Some(size), &opts, &limits);
            }
        } else {
            bench_group(c, w, None, &opts, &limits);
        }
    }
}

criterion_group!(benches, ipc);
criterion_main!(benches);
