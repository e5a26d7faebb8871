//! Latency histograms and their summaries. The timed loop records; everything here runs after.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Round-trip summary in nanoseconds (the JSON `rtt_ns` object).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    pub stddev: f64,
}

/// A histogram covering 1 ns to 100 s at 3 significant digits. Allocated before timing;
/// recording into it never allocates.
pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants known to be valid for hdrhistogram (low >= 1, high >= 2 * low, sigfig <= 5).
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("constant histogram bounds are valid")
}

pub fn summarize(h: &Histogram<u64>) -> LatencySummary {
    LatencySummary {
        min: h.min(),
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        mean: h.mean(),
        stddev: h.stdev(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let s = summarize(&h);
        assert_eq!(s.min, 1000);
        assert!((499_000..=501_000).contains(&s.p50), "{}", s.p50);
        assert!((989_000..=991_000).contains(&s.p99), "{}", s.p99);
        assert!(s.max >= 999_000);
        assert!((s.mean - 500_500.0).abs() < 1000.0);
    }
}
