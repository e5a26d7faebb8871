//! `lock` (synchronisation): both processes take the lock and increment a shared counter
//! for the same time; acquisitions/s for each, the split between them, and a check that the
//! counter equals the writes (a lost update fails the case). Then the uncontended cost of a
//! lock/unlock pair in one process alone. Runs on primitives that exclude.

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{
    cost, decode_outcome, outcome, per_unit, Capabilities, DataError, End, Params, Workload,
};
use crate::backends::sync::SyncEnd;
use crate::error::Error;
use crate::results::{CaseResult, LockResult};
use crate::session::Session;

pub const ID: &str = "lock";

/// Lock/unlock pairs timed alone for the uncontended cost.
const UNCONTENDED_PAIRS: u64 = 100_000;

pub struct Lock;
pub static LOCK: Lock = Lock;

/// One process's account of a contended phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub acquisitions: u64,
    pub writes: u64,
}

impl Workload for Lock {
    fn id(&self) -> &'static str {
        ID
    }

    fn help(&self) -> &'static str {
        "synchronisation: both processes take the lock and increment a shared counter (count: milliseconds)"
    }

    fn applies(&self, caps: &Capabilities) -> bool {
        caps.lock
    }

    fn sized(&self) -> bool {
        false
    }

    /// Milliseconds of contention.
    fn default_count(&self, _size: usize, p: &Params) -> u64 {
        let quick = p.quick;
        if quick {
            200
        } else {
            2_000
        }
    }

    fn estimate(&self, _size: usize, warmup: u64, n: u64) -> Duration {
        // `n` is milliseconds of contention; the uncontended pass follows.
        cost::of(warmup + n, 1e6, 100e6)
    }

    fn measure(
        &self,
        s: &mut Session,
        _p: &Params,
        warmup: u64,
        n: u64,
        r: &mut CaseResult,
    ) -> Result<(), Error> {
        contend(s, warmup.min(n))?;
        let (ours, theirs, counter, cpu) = contend(s, n)?;
        let uncontended =
            s.local(|end| uncontended(end.sync()?.end.as_mut(), UNCONTENDED_PAIRS))?;
        let secs = Duration::from_millis(n).as_secs_f64();
        let total = ours.acquisitions + theirs.acquisitions;
        r.lock = Some(LockResult {
            duration_ns: n * 1_000_000,
            ops_per_sec: total as f64 / secs,
            parent_ops_per_sec: ours.acquisitions as f64 / secs,
            peer_ops_per_sec: theirs.acquisitions as f64 / secs,
            fairness: ours.acquisitions as f64 / total.max(1) as f64,
            counter,
            writes: ours.writes + theirs.writes,
            uncontended_ns_per_pair: uncontended,
        });
        // Counted per acquisition, the unit of this workload.
        r.messages = total;
        r.warmup = 0;
        r.cpu = Some(per_unit(cpu, total));
        Ok(())
    }

    /// Contention is timed, not counted: 50 ms of it gives the time per acquisition, which
    /// is scaled to `iters`.
    fn bench(&self, s: &mut Session, _p: &Params, iters: u64) -> Result<Duration, Error> {
        const MS: u64 = 50;
        let (ours, theirs, _, _) = contend(s, MS)?;
        let per = Duration::from_millis(MS).as_nanos() as f64
            / (ours.acquisitions + theirs.acquisitions).max(1) as f64;
        Ok(Duration::from_nanos((per * iters as f64) as u64))
    }

    fn serve(&self, end: &mut End, ms: u64) -> Result<serde_json::Value, DataError> {
        let side = end.sync()?;
        let counts = lock_loop(
            side.end.as_mut(),
            Duration::from_millis(ms),
            side.info.write_one_in,
        )?;
        outcome(&counts)
    }
}

/// Both processes contend for `ms` milliseconds; the counter must equal all their writes.
/// Returns (ours, theirs, the counter's advance, CPU of both).
fn contend(s: &mut Session, ms: u64) -> Result<(Counts, Counts, u64, crate::sys::CpuUsage), Error> {
    let id = s.id();
    let counter = |s: &mut Session| {
        s.local(|end| Ok(end.sync()?.end.page().counter().load(Ordering::Acquire)))
    };
    let start = counter(s)?;
    let (ours, cpu, report) = s.phase(ID, ms, |end| {
        let side = end.sync()?;
        lock_loop(
            side.end.as_mut(),
            Duration::from_millis(ms),
            side.info.write_one_in,
        )
    })?;
    let theirs: Counts = decode_outcome(id, report)?;
    let advance = counter(s)? - start;
    if advance != ours.writes + theirs.writes {
        return Err(Error::DataPath {
            mechanism: id,
            op: "lock",
            seq: advance,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "lost updates: the counter reads {advance} after {} writes under the lock",
                    ours.writes + theirs.writes
                ),
            ),
        });
    }
    Ok((ours, theirs, advance, cpu))
}

/// Takes and releases the lock until `duration` has passed; one acquisition in
/// `write_one_in` writes (increments the shared counter with a plain load and store, so
/// a lock that does not exclude loses updates), the rest read.
fn lock_loop(
    end: &mut dyn SyncEnd,
    duration: Duration,
    write_one_in: u32,
) -> Result<Counts, DataError> {
    let deadline = Instant::now() + duration;
    let (mut n, mut writes) = (0u64, 0u64);
    loop {
        for _ in 0..16 {
            let write = n % u64::from(write_one_in.max(1)) == 0;
            end.lock(write).map_err(DataError::io("lock", n))?;
            let c = end.page().counter();
            if write {
                let v = c.load(Ordering::Relaxed);
                c.store(v + 1, Ordering::Relaxed);
                writes += 1;
            } else {
                black_box(c.load(Ordering::Relaxed));
            }
            end.unlock(write).map_err(DataError::io("unlock", n))?;
            n += 1;
        }
        if Instant::now() >= deadline {
            return Ok(Counts {
                acquisitions: n,
                writes,
            });
        }
    }
}

/// One process alone: nanoseconds per lock/unlock pair over `n` pairs (writers).
fn uncontended(end: &mut dyn SyncEnd, n: u64) -> Result<f64, DataError> {
    let t0 = Instant::now();
    for i in 0..n {
        end.lock(true).map_err(DataError::io("lock", i))?;
        end.unlock(true).map_err(DataError::io("unlock", i))?;
    }
    Ok(t0.elapsed().as_nanos() as f64 / n.max(1) as f64)
}
