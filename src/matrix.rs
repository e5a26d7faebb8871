//! A core-to-core map: one mechanism's round-trip p50 for every ordered pair of CPUs this
//! process may use, within a time budget (pairs not reached are left out and said so).

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use crate::backends::Mechanism;
use crate::placement::{Pin, Placement};
use crate::session::{Session, SessionOptions};
use crate::stats::{new_histogram, summarize};

pub use crate::results::Matrix;

/// Measures every pair in `cpus`, spending at most `budget` in total.
pub fn measure(
    mechanism: &'static dyn Mechanism,
    size: usize,
    base: &SessionOptions,
    cpus: &[usize],
    budget: Duration,
) -> Matrix {
    let start = Instant::now();
    let n = cpus.len();
    let mut p50 = vec![vec![None; n]; n];
    let mut notes = Vec::new();
    let limits = crate::environment::Limits::read();
    'pairs: for i in 0..n {
        for j in 0..n {
            if start.elapsed() >= budget {
                notes.push(format!(
                    "time budget of {} s spent; remaining pairs not measured",
                    budget.as_secs()
                ));
                break 'pairs;
            }
            let pin = if i == j { Pin::Same } else { Pin::Cross };
            let placement = match Placement::plan_within(
                pin,
                Some((cpus[i], cpus[j])),
                base.placement.allowed.clone(),
            ) {
                Ok(p) => p,
                Err(e) => {
                    notes.push(e);
                    continue;
                }
            };
            let opts = SessionOptions {
                placement,
                ..base.clone()
            };
            if let Some(why) = mechanism.unsupported(&opts.params(size), &limits) {
                notes.push(format!("CPU {} to {}: {why}", cpus[i], cpus[j]));
                continue;
            }
            let measured = (|| -> Result<u64, crate::error::Error> {
                let mut s = Session::start(mechanism, size, &opts)?;
                crate::workload::latency::round_trips(&mut s, 200, None)?;
                let mut h = new_histogram();
                crate::workload::latency::round_trips(&mut s, 2_000, Some(&mut h))?;
                s.finish()?;
                Ok(summarize(&h).p50)
            })();
            match measured {
                Ok(v) => p50[i][j] = Some(v),
                Err(e) => notes.push(format!("CPU {} to {}: {e}", cpus[i], cpus[j])),
            }
        }
    }
    let _ = base.placement.apply_parent();
    Matrix {
        mechanism: mechanism.info().id.to_string(),
        size,
        cpus: cpus.to_vec(),
        p50_ns: p50,
        notes,
    }
}
