//! The wake-up floor: how long a thread asleep on a futex takes to run again once a thread
//! on the other CPU wakes it, measured between the run's two CPUs after idle gaps from
//! 10 µs to 1 ms. Every mechanism that sleeps while it waits pays one such wake-up per
//! direction, so a round trip of two is its floor (`x_wake`). On virtual machines the cost
//! depends on whether the sleeping vCPU was still polling or had halted, which the idle
//! gap decides: the distribution is then bimodal, and the machine's idle driver says why.

#![forbid(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::results::Wakeup;
use crate::sys::futex;

/// Idle gaps before each wake-up, cycled: within and beyond the usual idle-poll windows.
pub const IDLE_US: [u64; 5] = [10, 30, 100, 300, 1000];
/// Wake-ups measured after each gap.
const PER_GAP: usize = 200;
/// Wake-ups before the measured ones (both threads settle on their CPUs).
const WARMUP: usize = 20;
/// When p90 is more than this multiple of p10, the wake-ups are called bimodal.
pub const BIMODAL_RATIO: f64 = 3.0;

/// What the two threads share.
struct Shared {
    /// Bumped by each wake-up; the sleeper waits on it.
    word: AtomicU32,
    /// The value the sleeper is about to wait on, plus one (0: not yet waiting).
    waiting: AtomicU32,
    /// When the waker woke it, in ns since `base`.
    woken_at: AtomicU64,
}

/// Measures wake-ups from the calling thread (on `waker_cpu`) to a thread on `sleeper_cpu`.
pub fn measure(waker_cpu: usize, sleeper_cpu: usize) -> io::Result<Wakeup> {
    crate::placement::bind_current_thread(&[waker_cpu])?;
    let total = WARMUP + IDLE_US.len() * PER_GAP;
    let shared = Arc::new(Shared {
        word: AtomicU32::new(0),
        waiting: AtomicU32::new(0),
        woken_at: AtomicU64::new(0),
    });
    let base = Instant::now();
    let sleeper = {
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("wake-up floor".into())
            .spawn(move || sleep_and_stamp(&s, base, sleeper_cpu, total))?
    };
    let woke = wake_after_gaps(&shared, base, total);
    let samples = sleeper
        .join()
        .map_err(|_| io::Error::other("the sleeping thread panicked"))??;
    woke?;
    Ok(summarize(&samples[WARMUP..]))
}

/// The sleeper: announces each wait, sleeps on the word, stamps how late it woke.
fn sleep_and_stamp(s: &Shared, base: Instant, cpu: usize, total: usize) -> io::Result<Vec<u64>> {
    crate::placement::bind_current_thread(&[cpu])?;
    let mut samples = Vec::with_capacity(total);
    let mut seen = s.word.load(Ordering::Acquire);
    let until = Instant::now() + Duration::from_secs(30);
    while samples.len() < total {
        s.waiting.store(seen.wrapping_add(1), Ordering::Release);
        loop {
            futex::wait(&s.word, seen)?;
            let now = s.word.load(Ordering::Acquire);
            if now != seen {
                let woke = base.elapsed().as_nanos() as u64;
                samples.push(woke.saturating_sub(s.woken_at.load(Ordering::Acquire)));
                seen = now;
                break;
            }
            if Instant::now() > until {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no wake-up came"));
            }
        }
    }
    Ok(samples)
}

/// The waker: once the sleeper waits, lets its CPU idle for the next gap, then wakes it.
fn wake_after_gaps(s: &Shared, base: Instant, total: usize) -> io::Result<()> {
    let until = Instant::now() + Duration::from_secs(30);
    for i in 0..total {
        let word = s.word.load(Ordering::Relaxed);
        while s.waiting.load(Ordering::Acquire) != word.wrapping_add(1) {
            if Instant::now() > until {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the sleeper never waited",
                ));
            }
            std::hint::spin_loop();
        }
        let gap = Duration::from_micros(IDLE_US[i % IDLE_US.len()]);
        let t = Instant::now();
        while t.elapsed() < gap {
            std::hint::spin_loop();
        }
        s.woken_at
            .store(base.elapsed().as_nanos() as u64, Ordering::Release);
        s.word.store(word.wrapping_add(1), Ordering::Release);
        futex::wake(&s.word, 1)?;
    }
    Ok(())
}

fn at(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Percentiles, p50 per idle gap, a log2 histogram and, when bimodal, the two modes.
/// `samples[i]` followed gap `IDLE_US[i % IDLE_US.len()]` (after the warm-up).
pub fn summarize(samples: &[u64]) -> Wakeup {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let (p10, p50, p90, p99) = (
        at(&sorted, 0.10),
        at(&sorted, 0.50),
        at(&sorted, 0.90),
        at(&sorted, 0.99),
    );
    let by_idle_us = IDLE_US
        .iter()
        .enumerate()
        .map(|(k, &gap)| {
            let mut these: Vec<u64> = samples
                .iter()
                .skip((IDLE_US.len() - WARMUP % IDLE_US.len() + k) % IDLE_US.len())
                .step_by(IDLE_US.len())
                .copied()
                .collect();
            these.sort_unstable();
            (gap, if these.is_empty() { 0 } else { at(&these, 0.5) })
        })
        .collect();
    // Bins by powers of two: [2^k, 2^(k+1)) ns, from the smallest to the largest sample.
    let bin = |v: u64| 63 - v.max(1).leading_zeros();
    let (lo, hi) = (bin(sorted[0]), bin(sorted[sorted.len() - 1]));
    let histogram = (lo..=hi)
        .map(|k| {
            let n = sorted.iter().filter(|&&v| bin(v) == k).count() as u64;
            (1u64 << k, n)
        })
        .collect();
    let modes_ns = (p90 as f64 > BIMODAL_RATIO * p10.max(1) as f64).then(|| {
        let split = ((p10 as f64) * (p90 as f64)).sqrt() as u64;
        let (low, high): (Vec<u64>, Vec<u64>) = sorted.iter().partition(|&&v| v < split);
        [at(&low, 0.5), at(&high, 0.5)]
    });
    Wakeup {
        p10_ns: p10,
        p50_ns: p50,
        p90_ns: p90,
        p99_ns: p99,
        by_idle_us,
        histogram,
        modes_ns,
    }
}

/// What the machine says about waking an idle CPU: the cpuidle driver and governor, the
/// idle states of `cpu`, and haltpoll's polling window where that driver runs.
pub fn idle_facts(root: &std::path::Path, cpu: usize) -> String {
    let read = |p: &str| {
        std::fs::read_to_string(root.join(p.trim_start_matches('/')))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let driver = read("/sys/devices/system/cpu/cpuidle/current_driver");
    let governor = read("/sys/devices/system/cpu/cpuidle/current_governor_ro")
        .or_else(|| read("/sys/devices/system/cpu/cpuidle/current_governor"));
    let states: Vec<String> = (0..16)
        .map_while(|k| {
            let dir = format!("/sys/devices/system/cpu/cpu{cpu}/cpuidle/state{k}");
            let name = read(&format!("{dir}/name"))?;
            Some(match read(&format!("{dir}/latency")) {
                Some(l) => format!("{name} (exit {l} µs)"),
                None => name,
            })
        })
        .collect();
    let driver = driver.filter(|d| d != "none");
    let mut out = match (&driver, &governor) {
        (Some(d), Some(g)) => format!("cpuidle driver {d}, governor {g}"),
        (Some(d), None) => format!("cpuidle driver {d}"),
        (None, _) => "no cpuidle driver (the kernel's default idle: an idle CPU halts at once; on a virtual machine the halt exits to the host, which must resume the vCPU before it can run the woken thread, later the longer it slept)".to_string(),
    };
    if !states.is_empty() {
        out.push_str(&format!(
            "; idle states of CPU {cpu}: {}",
            states.join(", ")
        ));
    }
    if driver.as_deref() == Some("haltpoll") {
        match read("/sys/module/haltpoll/parameters/guest_halt_poll_ns") {
            Some(ns) => out.push_str(&format!(
                "; haltpoll polls for up to {ns} ns (guest_halt_poll_ns, adapted by its grow and shrink parameters) before it halts the vCPU: a wake-up while it polls is a memory write, one after it halted waits for the host to deliver an interrupt and resume the vCPU"
            )),
            None => out.push_str("; haltpoll polls for a while before it halts the vCPU: a wake-up after the halt waits for the host to resume it"),
        }
    } else if driver.is_some() {
        out.push_str("; a CPU in a deeper idle state takes longer to wake");
    }
    out
}

/// The environment warning for bimodal wake-ups, if they are.
pub fn bimodal_warning(w: &Wakeup, facts: &str) -> Option<String> {
    let [low, high] = w.modes_ns?;
    Some(format!(
        "cross-CPU wake-ups here are bimodal or spread: p90 {:.1} µs is over 3x p10 {:.1} µs (clusters about {:.1} and {:.1} µs); p50 by how long the CPU idled first: {}. Likely cause: {facts}. Every mechanism that sleeps while waiting inherits this: expect its latency to spread the same way, and read its x_wake",
        w.p90_ns as f64 / 1e3,
        w.p10_ns as f64 / 1e3,
        low as f64 / 1e3,
        high as f64 / 1e3,
        w.by_idle_us
            .iter()
            .map(|(gap, ns)| format!("{:.1} µs after {gap} µs", *ns as f64 / 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_clusters_are_called_bimodal_with_both_modes_and_one_is_not() {
        // After the warm-up, gaps cycle; the long gaps (300 µs, 1 ms) wake slowly.
        let samples: Vec<u64> = (0..1000)
            .map(|i| match IDLE_US[(i + WARMUP) % IDLE_US.len()] {
                g if g >= 300 => 20_000 + (i as u64 % 7) * 100,
                _ => 3_000 + (i as u64 % 5) * 50,
            })
            .collect();
        let w = summarize(&samples);
        let [low, high] = w.modes_ns.expect("bimodal");
        assert!(
            (3_000..3_300).contains(&low) && (20_000..20_700).contains(&high),
            "{w:?}"
        );
        assert_eq!(w.by_idle_us.len(), IDLE_US.len());
        assert!(
            w.by_idle_us[0].1 < 4_000 && w.by_idle_us[4].1 >= 20_000,
            "{w:?}"
        );
        assert_eq!(w.histogram.iter().map(|(_, n)| n).sum::<u64>(), 1000);
        let warning = bimodal_warning(&w, "cpuidle driver haltpoll").unwrap();
        assert!(
            warning.contains("bimodal")
                && warning.contains("Likely cause: cpuidle driver haltpoll"),
            "{warning}"
        );
        let one = summarize(&vec![5_000; 100]);
        assert!(one.modes_ns.is_none() && bimodal_warning(&one, "").is_none());
    }

    #[test]
    fn the_idle_facts_name_the_driver_its_states_and_haltpolls_window() {
        let root = std::env::temp_dir().join(format!("ipcbench-idle-test-{}", std::process::id()));
        let sys = root.join("sys/devices/system/cpu");
        std::fs::create_dir_all(sys.join("cpuidle")).unwrap();
        std::fs::create_dir_all(sys.join("cpu1/cpuidle/state0")).unwrap();
        std::fs::create_dir_all(sys.join("cpu1/cpuidle/state1")).unwrap();
        std::fs::create_dir_all(root.join("sys/module/haltpoll/parameters")).unwrap();
        std::fs::write(sys.join("cpuidle/current_driver"), "haltpoll\n").unwrap();
        std::fs::write(sys.join("cpuidle/current_governor_ro"), "haltpoll\n").unwrap();
        std::fs::write(sys.join("cpu1/cpuidle/state0/name"), "POLL\n").unwrap();
        std::fs::write(sys.join("cpu1/cpuidle/state1/name"), "haltpoll\n").unwrap();
        std::fs::write(sys.join("cpu1/cpuidle/state1/latency"), "1\n").unwrap();
        std::fs::write(
            root.join("sys/module/haltpoll/parameters/guest_halt_poll_ns"),
            "200000\n",
        )
        .unwrap();
        let facts = idle_facts(&root, 1);
        // With no driver (`none`), the default idle halts at once: said so, no states.
        std::fs::write(sys.join("cpuidle/current_driver"), "none\n").unwrap();
        let plain = idle_facts(&root, 7);
        std::fs::remove_dir_all(&root).unwrap();
        assert!(
            plain.starts_with("no cpuidle driver (the kernel's default idle"),
            "{plain}"
        );
        assert!(
            facts.starts_with("cpuidle driver haltpoll, governor haltpoll"),
            "{facts}"
        );
        assert!(facts.contains("POLL, haltpoll (exit 1 µs)"), "{facts}");
        assert!(facts.contains("up to 200000 ns"), "{facts}");
    }

    #[test]
    fn a_real_wake_up_is_measured_between_two_threads() {
        let cpus = crate::placement::allowed_cpus().unwrap();
        let (a, b) = (cpus[0], *cpus.last().unwrap());
        let w = measure(a, b).unwrap();
        assert!(
            w.p10_ns > 0 && w.p10_ns <= w.p50_ns && w.p50_ns <= w.p99_ns,
            "{w:?}"
        );
        // Restore this test thread's CPUs for the tests that follow on it.
        crate::placement::bind_current_thread(&cpus).unwrap();
    }
}
