//! Criterion benches over the same mechanisms and sessions as `ipcbench run`: one group per
//! workload and size, one benchmark per mechanism, so criterion's report compares them.
//! Each benchmark keeps one peer process alive across iterations (`iter_custom`).
//! Pinning: `cross` (parent and peer on the first two allowed CPUs) when there are two or
//! more CPUs, else `same`; printed at start. `cargo bench -- --quick` runs a short pass.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipcbench::backends;
use ipcbench::environment::Limits;
use ipcbench::message::Verify;
use ipcbench::placement::{default_pin, Placement};
use ipcbench::report::size_label;
use ipcbench::session::{Session, SessionOptions};

/// The default sweep's sizes, identical for every mechanism.
const SIZES: [usize; 4] = [64, 4 << 10, 64 << 10, 1 << 20];
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
enum Kind {
    Latency,
    Throughput,
}

fn bench_group(c: &mut Criterion, kind: Kind, size: usize, opts: &SessionOptions, limits: &Limits) {
    let name = match kind {
        Kind::Latency => format!("latency/{}", size_label(size)),
        Kind::Throughput => format!("throughput/{}", size_label(size)),
    };
    let mut group = c.benchmark_group(name);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    if let Kind::Throughput = kind {
        group.throughput(Throughput::Bytes(size as u64));
    }
    for mechanism in backends::all() {
        let id = mechanism.info().id;
        if let Some(why) = mechanism.unsupported(&opts.params(size), limits) {
            eprintln!("{id} {}: unsupported: {why}", size_label(size));
            continue;
        }
        let mut session = match Session::start(mechanism, size, opts) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{id} {}: cannot start: {e}", size_label(size));
                continue;
            }
        };
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                if iters == 0 {
                    return Duration::ZERO;
                }
                let cost = match kind {
                    Kind::Latency => session.round_trips(iters, None),
                    Kind::Throughput => session.stream(iters),
                };
                // A lost or corrupted message invalidates the benchmark: stop loudly.
                cost.unwrap_or_else(|e| panic!("{e}")).elapsed
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
    for size in SIZES {
        bench_group(c, Kind::Latency, size, &opts, &limits);
    }
    for size in SIZES {
        bench_group(c, Kind::Throughput, size, &opts, &limits);
    }
}

criterion_group!(benches, ipc);
criterion_main!(benches);
