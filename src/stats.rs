//! Latency histograms and their summaries. The timed loop records; everything here runs after.

#![forbid(unsafe_code)]

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

/// A median with a distribution-free confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MedianCi {
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
    /// The interval's actual coverage.
    pub level: f64,
}

/// The median of `values` (the mean of the middle two of an even number); `None` when
/// there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (n > 0).then(|| (v[(n - 1) / 2] + v[n / 2]) / 2.0)
}

/// Median of `values` and the order-statistic interval around it: the narrowest
/// [x(j), x(n+1-j)] whose coverage, from the binomial distribution, is at least 95%; with
/// fewer than 6 values no such pair exists and the interval is [min, max] with its lower
/// coverage (1 - 2 * 0.5^n).
pub fn median_ci(values: &[f64]) -> MedianCi {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return MedianCi {
            median: f64::NAN,
            lo: f64::NAN,
            hi: f64::NAN,
            level: 0.0,
        };
    }
    let mid = median(&v).unwrap_or(f64::NAN);
    // P(X <= k) for X ~ Binomial(n, 1/2).
    let cdf = |k: usize| -> f64 {
        let mut c = 1.0f64; // C(n, 0)
        let mut sum = 0.0;
        for i in 0..=k {
            if i > 0 {
                c = c * (n - i + 1) as f64 / i as f64;
            }
            sum += c;
        }
        sum / 2f64.powi(n as i32)
    };
    // Largest j (1-based) with coverage 1 - 2 P(X <= j-1) >= 0.95.
    let mut best = (1usize, 1.0 - 2.0 * cdf(0));
    for j in 1..=n / 2 {
        let level = 1.0 - 2.0 * cdf(j - 1);
        if level >= 0.95 {
            best = (j, level);
        }
    }
    let (j, level) = best;
    MedianCi {
        median: mid,
        lo: v[j - 1],
        hi: v[n - j],
        level,
    }
}

/// The coverage `median_ci` gives with `n` repetitions (it depends on `n` alone).
pub fn ci_level_for(n: usize) -> f64 {
    let v: Vec<f64> = (0..n).map(|i| i as f64).collect();
    median_ci(&v).level
}

/// How a report names the intervals of a run with `repeat` repetitions, e.g. `93.75%
/// interval of the median over 5 repetitions`, with a hint when it is below 95%.
pub fn interval_label(repeat: u32) -> String {
    let hint = if ci_level_for(repeat as usize) < 0.95 {
        " (--repeat 6 or more gives at least 95%)"
    } else {
        ""
    };
    format!("{}{hint}", interval_name(repeat))
}

/// `93.75% interval of the median over 5 repetitions`, without the hint.
pub fn interval_name(repeat: u32) -> String {
    let level = ci_level_for(repeat as usize) * 100.0;
    let shown = format!("{level:.2}");
    let shown = shown.trim_end_matches('0').trim_end_matches('.');
    format!("{shown}% interval of the median over {repeat} repetitions")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_intervals_follow_the_binomial() {
        let c = median_ci(&[5.0, 1.0, 3.0]);
        assert_eq!((c.median, c.lo, c.hi), (3.0, 1.0, 5.0));
        assert!((c.level - 0.75).abs() < 1e-12);
        let c = median_ci(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((c.level - 0.9375).abs() < 1e-12);
        // n = 10: [x(2), x(9)] covers 97.9%; [x(3), x(8)] only 89%.
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let c = median_ci(&v);
        assert_eq!((c.lo, c.hi, c.median), (2.0, 9.0, 5.5));
        assert!(c.level >= 0.95);
    }

    #[test]
    fn interval_labels_state_the_real_level() {
        assert_eq!(
            interval_label(3),
            "75% interval of the median over 3 repetitions (--repeat 6 or more gives at least 95%)"
        );
        assert!(interval_label(5).starts_with("93.75% interval"));
        assert_eq!(
            interval_label(6),
            "96.88% interval of the median over 6 repetitions"
        );
    }

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
