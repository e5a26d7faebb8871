//! `handoff` (synchronisation): two processes take turns through a primitive (A wakes B,
//! B wakes A); each turn pair is timed like a round trip. Runs on primitives that can hand
//! a turn over; mutexes and file locks poll a turn word under the lock to do so.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{cost, outcome, per_unit, record, Capabilities, DataError, End, Params, Workload};
use crate::backends::sync::SyncEnd;
use crate::error::Error;
use crate::results::CaseResult;
use crate::session::Session;
use crate::stats::{new_histogram, summarize};

pub const ID: &str = "handoff";

pub struct Handoff;
pub static HANDOFF: Handoff = Handoff;

impl Workload for Handoff {
    fn id(&self) -> &'static str {
        ID
    }

    fn help(&self) -> &'static str {
        "synchronisation: two processes take turns through a primitive (a turn pair per value)"
    }

    fn applies(&self, caps: &Capabilities) -> bool {
        caps.handoff
    }

    fn sized(&self) -> bool {
        false
    }

    fn default_count(&self, _size: usize, p: &Params) -> u64 {
        let quick = p.quick;
        if quick {
            5_000
        } else {
            100_000
        }
    }

    fn estimate(&self, _size: usize, warmup: u64, n: u64) -> Duration {
        cost::of(warmup + n, cost::WAKE_NS, 0.0)
    }

    fn measure(
        &self,
        s: &mut Session,
        _p: &Params,
        warmup: u64,
        n: u64,
        r: &mut CaseResult,
    ) -> Result<(), Error> {
        turns(s, warmup, None)?;
        let mut hist = new_histogram();
        let (_, cpu) = turns(s, n, Some(&mut hist))?;
        r.rtt_ns = Some(summarize(&hist));
        r.cpu = Some(per_unit(cpu, n));
        Ok(())
    }

    fn bench(&self, s: &mut Session, _p: &Params, iters: u64) -> Result<Duration, Error> {
        Ok(turns(s, iters, None)?.0)
    }

    fn serve(&self, end: &mut End, n: u64) -> Result<serde_json::Value, DataError> {
        let e = end.sync()?.end.as_mut();
        for i in 0..n {
            e.take().map_err(DataError::io("hand-off", i))?;
            e.give().map_err(DataError::io("hand-off", i))?;
        }
        outcome(&n)
    }
}

/// `n` turn pairs over a session, each timed into `hist` when given; the whole loop's
/// duration and both processes' CPU.
fn turns(
    s: &mut Session,
    n: u64,
    hist: Option<&mut Histogram<u64>>,
) -> Result<(Duration, crate::sys::CpuUsage), Error> {
    let (elapsed, cpu, _) = s.phase(ID, n, |end| {
        give_and_take(end.sync()?.end.as_mut(), n, hist)
    })?;
    Ok((elapsed, cpu))
}

/// Parent: `n` turn pairs (give the turn, wait for it back), each timed when `hist` is given.
fn give_and_take(
    end: &mut dyn SyncEnd,
    n: u64,
    mut hist: Option<&mut Histogram<u64>>,
) -> Result<Duration, DataError> {
    let start = Instant::now();
    for i in 0..n {
        let t0 = Instant::now();
        end.give().map_err(DataError::io("hand-off", i))?;
        end.take().map_err(DataError::io("hand-off", i))?;
        record(&mut hist, t0.elapsed());
    }
    Ok(start.elapsed())
}
