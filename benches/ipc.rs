//! Criterion benches over the registries: one group per (workload, size) the workload
//! registry offers (`latency/64 B`, `throughput/1 MiB`, `handoff`, `lock`), one benchmark
//! per subject that runs it, channels and synchronisation primitives alike, through the same
//! sessions and workload halves as `ipcbench run` (`ipcbench::bench`, which a user's own
//! benches call the same way). Each benchmark keeps one peer process alive across
//! iterations; the peers are this bench program re-run (`peer_entry`). Pinning: `cross`
//! when there are two or more CPUs, else `same`; printed at start.
//! `cargo bench -- --quick` runs a short pass; `cargo bench -- --list` lists them all.

use ipcbench::subject::Subject;

/// The default sweep's sizes, identical for every mechanism.
const SIZES: [usize; 4] = [64, 4 << 10, 64 << 10, 1 << 20];

fn main() {
    ipcbench::peer_entry(&[]);
    let mut c = criterion::Criterion::default().configure_from_args();
    let subjects: Vec<Subject> = Subject::all().collect();
    ipcbench::bench::groups(
        &mut c,
        &subjects,
        &SIZES,
        ipcbench::workload::REGISTRY.iter().copied(),
    );
    c.final_summary();
}
