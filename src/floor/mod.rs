//! The machine's physical floor, measured on the CPUs the run uses: what reading the clock
//! costs, the cross-core cache-line round trip (the lower bound for any notification between
//! two processes), and single-thread memcpy bandwidth at each message size. Results are
//! expressed against it (`x_floor`, `x_copy`) so a reader knows whether 2 µs is fast.

#![forbid(unsafe_code)]

pub mod reference;
pub mod wakeup;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::backends;
use crate::error::Error;
use crate::session::{Session, SessionOptions};
use crate::stats::{median, new_histogram, summarize};

pub use crate::results::Floor;

fn clock_read_ns() -> f64 {
    let n = 200_000u32;
    let t0 = Instant::now();
    for _ in 0..n {
        black_box(Instant::now());
    }
    t0.elapsed().as_nanos() as f64 / f64::from(n)
}

/// Bytes of copy buffers `copy_bandwidth` may hold at once across its placements.
const PLACEMENT_BUDGET: usize = 64 << 20;

/// Single-thread memcpy bandwidth at `size`: the median over fresh buffer pairs (an odd
/// number, up to seven, as many as 64 MiB of buffers allows), each copied repeatedly
/// (cache-resident for small sizes, as messages are) for at least 10 ms.
///
/// One pair is not enough: where source and destination together are about the size of a
/// cache (1 MiB here, with a 2 MiB L2), how their physical pages fall into the cache's sets
/// moves one pair's bandwidth by a quarter (19-26 GB/s in one process here), and every
/// case's `x_copy` would inherit that draw. The pairs are all kept until the end, so each
/// gets pages of its own rather than the previous pair's pages back.
pub fn copy_bandwidth(size: usize) -> f64 {
    let pairs = placements(size);
    let mut held = Vec::with_capacity(pairs);
    let bps: Vec<f64> = (0..pairs)
        .map(|_| {
            let (src, mut dst) = (vec![0x5Au8; size], vec![0u8; size]);
            let r = copy_rate(&src, &mut dst, Duration::from_millis(10));
            held.push((src, dst));
            r
        })
        .collect();
    median(&bps).expect("`placements` is at least one")
}

/// memcpy bandwidth at each size (`copy_bandwidth`), keyed by size.
pub fn copy_rates(sizes: &[usize]) -> BTreeMap<usize, f64> {
    sizes.iter().map(|&s| (s, copy_bandwidth(s))).collect()
}

/// Per size, the median of several measurements of `copy_rates`; a size some measurement
/// lacks keeps those it has.
pub fn median_rates(all: &[BTreeMap<usize, f64>]) -> BTreeMap<usize, f64> {
    let mut by_size: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for (&size, &bps) in all.iter().flatten() {
        by_size.entry(size).or_default().push(bps);
    }
    by_size
        .into_iter()
        .filter_map(|(size, v)| Some((size, median(&v)?)))
        .collect()
}

/// The parts of the floor a run of several repetitions measures again before each one
/// after the first (memcpy and the cache-line round trip, bare and through the harness),
/// so that one slow moment of the host does not set every case's `x_copy` and `x_floor`:
/// the floor then keeps the median of each.
pub struct Again {
    copies: Vec<BTreeMap<usize, f64>>,
    line: Vec<f64>,
    bare: Vec<f64>,
}

impl Again {
    /// Starts from the floor measured before the first repetition.
    pub fn new(first: &Floor) -> Again {
        Again {
            copies: vec![first.copy_bytes_per_sec.clone()],
            line: first.cacheline_rtt_ns.into_iter().collect(),
            bare: first.cacheline_bare_ns.into_iter().collect(),
        }
    }

    /// Measures again what the first floor could measure (a round trip that failed this
    /// time is left out rather than failing the run).
    pub fn measure(&mut self, opts: &SessionOptions, sizes: &[usize]) {
        let _ = opts.placement.apply_parent();
        self.copies.push(copy_rates(sizes));
        if !self.line.is_empty() {
            self.line.extend(cacheline(opts).ok());
        }
        if !self.bare.is_empty() {
            self.bare.extend(bare_line(opts).ok().map(|v| v as f64));
        }
    }

    /// Puts the medians into `floor`.
    pub fn apply(self, floor: &mut Floor) {
        floor.copy_bytes_per_sec = median_rates(&self.copies);
        if let Some(m) = median(&self.line) {
            floor.cacheline_rtt_ns = Some(m);
        }
        if let Some(m) = median(&self.bare) {
            floor.cacheline_bare_ns = Some(m);
        }
    }
}

/// How many buffer pairs `copy_bandwidth` measures at `size`: odd (so the median is one
/// of them), one to seven, and together within `PLACEMENT_BUDGET`.
fn placements(size: usize) -> usize {
    let pairs = (PLACEMENT_BUDGET / size.max(1).saturating_mul(2)).clamp(1, 7);
    pairs - (1 - pairs % 2)
}

/// Bytes per second copying `src` into `dst` repeatedly for at least `min`.
fn copy_rate(src: &[u8], dst: &mut [u8], min: Duration) -> f64 {
    // One untimed copy first: it faults in the destination's pages, which for the larger
    // sizes would otherwise be a good share of the time.
    dst.copy_from_slice(black_box(src));
    let mut copied = 0u64;
    let t0 = Instant::now();
    let mut reps = 1u64;
    loop {
        for _ in 0..reps {
            dst.copy_from_slice(black_box(src));
            black_box(&mut *dst);
        }
        copied += reps * src.len() as u64;
        if t0.elapsed() >= min {
            break;
        }
        reps = (reps * 2).min(1 << 20);
    }
    copied as f64 / t0.elapsed().as_secs_f64()
}

/// The round trip of one 8-byte word between the run's CPUs (p50 of 20,000, after 2,000).
fn cacheline(opts: &SessionOptions) -> Result<f64, Error> {
    let m =
        backends::by_id("cacheline").expect("the cacheline calibration mechanism is registered");
    let mut s = Session::start(m, 8, opts)?;
    crate::workload::latency::round_trips(&mut s, 2_000, None)?;
    let mut h = new_histogram();
    crate::workload::latency::round_trips(&mut s, 20_000, Some(&mut h))?;
    s.finish()?;
    Ok(summarize(&h).p50 as f64)
}

/// The bare loop of the same bounce (same counts, same CPUs): what `cacheline` would be
/// with no harness at all.
fn bare_line(opts: &SessionOptions) -> Result<u64, crate::bare::BareError> {
    let p = &opts.placement;
    crate::bare::measure(
        &opts.peer_exe,
        crate::bare::Kind::Line,
        8,
        crate::bare::Rounds {
            warmup: 2_000,
            count: 20_000,
        },
        (p.parent_cpu, p.peer_cpu),
        false,
    )
}

/// Measures the floor on the CPUs `opts` places the processes on.
pub fn measure(opts: &SessionOptions, sizes: &[usize]) -> Floor {
    let _ = opts.placement.apply_parent();
    let clock = clock_read_ns();
    let copy = copy_rates(sizes);
    let limits = crate::environment::Limits::read();
    let stopping = || crate::interrupt::interrupted().is_some();
    let why = backends::by_id("cacheline")
        .and_then(|m| m.unsupported(&opts.params(8), &limits))
        .or_else(|| stopping().then(|| "the run was interrupted".to_string()));
    let (rtt, reason) = match &why {
        Some(w) => (None, Some(w.clone())),
        None => match cacheline(opts) {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    let (bare, bare_reason) = match why {
        Some(w) => (None, Some(w)),
        None => match bare_line(opts) {
            Ok(v) => (Some(v as f64), None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    let (wakeup, wakeup_reason) = match opts.placement.two_cpus() {
        _ if stopping() => (None, Some("the run was interrupted".into())),
        Some((a, b)) => match wakeup::measure(a, b) {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(format!("the wake-up measurement failed: {e}"))),
        },
        _ => (
            None,
            Some(
                "the processes share a CPU or are not pinned: no cross-CPU wake-up to measure"
                    .into(),
            ),
        ),
    };
    // The wake-up threads re-pinned this one: back to the parent's CPU.
    let _ = opts.placement.apply_parent();
    Floor {
        clock_read_ns: clock,
        cacheline_rtt_ns: rtt,
        cacheline_reason: reason,
        cacheline_bare_ns: bare,
        cacheline_bare_reason: bare_reason,
        copy_bytes_per_sec: copy,
        wakeup,
        wakeup_reason,
    }
}

impl Floor {
    pub fn render(&self) -> String {
        let mut out = format!("clock read: {:.1} ns\n", self.clock_read_ns);
        match (self.cacheline_rtt_ns, &self.cacheline_reason) {
            (Some(v), _) => {
                out.push_str(&format!("cache-line round trip: {v:.0} ns"));
                match (self.cacheline_bare_ns, &self.cacheline_bare_reason) {
                    (Some(b), _) => out.push_str(&format!(
                        " (a bare loop: {b:.0} ns, so the harness adds {:.2}x)\n",
                        v / b
                    )),
                    (None, Some(r)) => out.push_str(&format!(" (no bare loop: {r})\n")),
                    _ => out.push('\n'),
                }
            }
            (None, Some(r)) => {
                out.push_str(&format!("cache-line round trip: not measured ({r})\n"))
            }
            _ => {}
        }
        for (size, bps) in &self.copy_bytes_per_sec {
            out.push_str(&format!(
                "memcpy {:>8}: {:.1} GB/s\n",
                crate::report::size_label(*size),
                bps / 1e9
            ));
        }
        match (&self.wakeup, &self.wakeup_reason) {
            (Some(w), _) => out.push_str(&render_wakeup(w)),
            (None, Some(r)) => out.push_str(&format!("cross-CPU wake-up: not measured ({r})\n")),
            _ => {}
        }
        out
    }
}

/// The wake-up floor as text: percentiles, p50 by idle gap, and the histogram.
fn render_wakeup(w: &crate::results::Wakeup) -> String {
    let us = |ns: u64| crate::report::micros(ns as f64);
    let mut out = format!(
        "cross-CPU wake-up: p50 {} µs, p10 {}, p90 {}, p99 {} µs\n",
        us(w.p50_ns),
        us(w.p10_ns),
        us(w.p90_ns),
        us(w.p99_ns)
    );
    for (gap, ns) in &w.by_idle_us {
        out.push_str(&format!("  after {gap:>4} µs idle: p50 {} µs\n", us(*ns)));
    }
    for (from, n, bar) in w.bars() {
        out.push_str(&format!(
            "  {:>7}-{:<7} µs {:>5} {bar}\n",
            us(from),
            us(from * 2),
            n
        ));
    }
    out
}

/// The warning for this floor's wake-ups when they are bimodal, with the likely cause read
/// from the machine's idle settings for the sleeping CPU.
pub fn wakeup_warning(f: &Floor, sleeper_cpu: Option<usize>) -> Option<String> {
    let facts = wakeup::idle_facts(std::path::Path::new("/"), sleeper_cpu?);
    wakeup::bimodal_warning(f.wakeup.as_ref()?, &facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcpy_is_measured_over_an_odd_number_of_placements_within_the_budget() {
        for size in [
            1,
            64,
            4 << 10,
            1 << 20,
            5 << 20,
            8 << 20,
            16 << 20,
            256 << 20,
        ] {
            let n = placements(size);
            assert!(n % 2 == 1 && (1..=7).contains(&n), "{n} pairs at {size} B");
            assert!(
                n == 1 || n * 2 * size <= PLACEMENT_BUDGET,
                "{n} pairs at {size} B"
            );
        }
        assert_eq!(
            placements(1 << 20),
            7,
            "1 MiB, where placement matters, gets seven"
        );
        assert_eq!(placements(8 << 20), 3);
        assert_eq!(placements(64 << 20), 1);
        assert!(copy_bandwidth(4096) > 0.0);
    }

    #[test]
    fn the_copy_floor_of_several_sweeps_is_their_median_per_size() {
        let m = |v: &[(usize, f64)]| v.iter().copied().collect::<BTreeMap<_, _>>();
        let all = [
            m(&[(64, 30.0), (1 << 20, 19.0)]),
            m(&[(64, 10.0), (1 << 20, 26.0)]),
            m(&[(64, 20.0), (1 << 20, 25.0)]),
        ];
        assert_eq!(median_rates(&all), m(&[(64, 20.0), (1 << 20, 25.0)]));
        assert_eq!(median_rates(&all[..2]), m(&[(64, 20.0), (1 << 20, 22.5)]));
        assert_eq!(median_rates(&all[..1]), all[0]);
    }

    #[test]
    fn a_floor_measured_again_keeps_the_median_of_what_the_first_could_measure() {
        // One CPU: no cache line at the start, so none is looked for later either.
        let first = Floor {
            copy_bytes_per_sec: [(64, 20.0)].into(),
            ..Floor::default()
        };
        let again = Again::new(&first);
        assert!(again.line.is_empty() && again.bare.is_empty());
        let mut floor = first.clone();
        again.apply(&mut floor);
        assert_eq!(
            floor, first,
            "nothing measured again: the first floor stands"
        );
        // Two CPUs, three sweeps (one bare measurement failed and is left out).
        let again = Again {
            copies: vec![
                [(64, 20.0)].into(),
                [(64, 30.0)].into(),
                [(64, 10.0)].into(),
            ],
            line: vec![300.0, 200.0, 250.0],
            bare: vec![240.0, 220.0],
        };
        let mut floor = first.clone();
        again.apply(&mut floor);
        assert_eq!(floor.copy_bytes_per_sec, [(64, 20.0)].into());
        assert_eq!(floor.cacheline_rtt_ns, Some(250.0));
        assert_eq!(floor.cacheline_bare_ns, Some(230.0));
    }
}
