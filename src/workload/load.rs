//! `load`: the sweep. For one mechanism and size, the closed-loop maximum first (one request
//! in flight: 1 / mean round trip), then the open-loop `rate` phase at each point of
//! `--rates` (absolute, or percentages of that maximum), each `--messages` milliseconds long;
//! and the knee: the highest achieved rate whose p99 stays under `--slo` without saturating.
//! Its phases are the `latency` and `rate` workloads' own, so the peer serves them as those.

use std::time::Duration;

use super::rate::{open_loop, RATE};
use super::{cost, per_unit, Capabilities, DataError, End, Params, Workload};
use crate::error::Error;
use crate::results::{CaseResult, LoadPoint, LoadResult};
use crate::session::Session;
use crate::stats::{new_histogram, summarize};

pub const ID: &str = "load";

/// Round trips that measure the closed-loop maximum.
const PROBE: u64 = 2_000;
/// The fewest requests a point may have.
const MIN_REQUESTS: u64 = 50;

pub struct Load;
pub static LOAD: Load = Load;

impl Workload for Load {
    fn id(&self) -> &'static str {
        ID
    }

    fn help(&self) -> &'static str {
        "open-loop sweep over --rates with each mechanism's knee under --slo (count: ms per point)"
    }

    fn applies(&self, caps: &Capabilities) -> bool {
        RATE.applies(caps)
    }

    fn unsupported(&self, caps: &Capabilities) -> Option<String> {
        RATE.unsupported(caps)
    }

    /// Milliseconds per point.
    fn default_count(&self, _size: usize, p: &Params) -> u64 {
        if p.quick {
            300
        } else {
            2_000
        }
    }

    /// Milliseconds before the sweep, at the first point's rate.
    fn warmup(&self, n: u64) -> u64 {
        (n / 10).clamp(20, 200)
    }

    fn estimate(&self, _size: usize, warmup: u64, n: u64) -> Duration {
        // Seven points by default, each `n` ms, plus the probe.
        cost::of(
            0,
            0.0,
            (warmup + 7 * n) as f64 * 1e6 + PROBE as f64 * cost::WAKE_NS,
        )
    }

    fn measure(
        &self,
        s: &mut Session,
        p: &Params,
        warmup: u64,
        ms: u64,
        r: &mut CaseResult,
    ) -> Result<(), Error> {
        let mut probe = new_histogram();
        super::latency::round_trips(s, PROBE / 10, None)?;
        super::latency::round_trips(s, PROBE, Some(&mut probe))?;
        let closed_max = 1e9 / probe.mean().max(1.0);
        let requests = |rate: f64, ms: u64| ((rate * ms as f64 / 1e3) as u64).max(MIN_REQUESTS);
        let mut points = Vec::new();
        let mut cpu = crate::sys::CpuUsage::default();
        let mut total = 0;
        for (i, spec) in p.rates.iter().enumerate() {
            let rate = spec.per_sec(closed_max).max(1.0);
            let at = Params { rate, ..p.clone() };
            if i == 0 {
                open_loop(s, &at, requests(rate, warmup))?;
            }
            let n = requests(rate, ms);
            let run = open_loop(s, &at, n)?;
            cpu = cpu.plus(run.cpu);
            total += n;
            points.push(LoadPoint {
                label: spec.label(),
                offered_per_sec: rate,
                achieved_per_sec: run.achieved(n),
                rtt_ns: summarize(&run.latency),
                send_lag_p99_ns: run.lag.value_at_quantile(0.99),
                saturated: run.saturated(rate, n),
            });
        }
        let knee = points
            .iter()
            .filter(|pt| !pt.saturated && pt.rtt_ns.p99 <= p.slo_ns)
            .map(|pt| pt.achieved_per_sec)
            .reduce(f64::max);
        r.load = Some(LoadResult {
            closed_loop_max_per_sec: closed_max,
            slo_ns: p.slo_ns,
            points,
            knee_per_sec: knee,
        });
        r.messages = total;
        r.cpu = Some(per_unit(cpu, total));
        Ok(())
    }

    /// Not an open loop criterion could time as a speed.
    fn benchable(&self) -> bool {
        false
    }

    fn bench(&self, s: &mut Session, p: &Params, iters: u64) -> Result<Duration, Error> {
        RATE.bench(s, p, iters)
    }

    /// The sweep's phases are ordered as `latency` and `rate`; this serves a stray order
    /// the same way.
    fn serve(&self, end: &mut End, n: u64) -> Result<serde_json::Value, DataError> {
        RATE.serve(end, n)
    }
}
