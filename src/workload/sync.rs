//! The synchronisation workloads' timed loops: hand-off (turns) and lock (contended and
//! uncontended), over any primitive's `SyncEnd`.

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::DataError;
use crate::backends::sync::SyncEnd;

/// Parent: `n` turn pairs (give the turn, wait for it back), each timed when `hist` is given.
pub fn handoff_parent(
    end: &mut dyn SyncEnd,
    n: u64,
    mut hist: Option<&mut Histogram<u64>>,
) -> Result<Duration, DataError> {
    let start = Instant::now();
    for i in 0..n {
        let t0 = Instant::now();
        end.give().map_err(DataError::io("hand-off", i))?;
        end.take().map_err(DataError::io("hand-off", i))?;
        super::record(&mut hist, t0.elapsed());
    }
    Ok(start.elapsed())
}

/// Peer: wait for the turn, give it back, `n` times.
pub fn handoff_peer(end: &mut dyn SyncEnd, n: u64) -> Result<(), DataError> {
    for i in 0..n {
        end.take().map_err(DataError::io("hand-off", i))?;
        end.give().map_err(DataError::io("hand-off", i))?;
    }
    Ok(())
}

/// Takes and releases the lock until `duration` has passed; one acquisition in
/// `write_one_in` writes (increments the shared counter with a plain load and store, so
/// a lock that does not exclude loses updates), the rest read. Returns (acquisitions, writes).
pub fn lock_loop(
    end: &mut dyn SyncEnd,
    duration: Duration,
    write_one_in: u32,
) -> Result<(u64, u64), DataError> {
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
            return Ok((n, writes));
        }
    }
}

/// One process alone: nanoseconds per lock/unlock pair over `n` pairs (writers).
pub fn uncontended(end: &mut dyn SyncEnd, n: u64) -> Result<f64, DataError> {
    let t0 = Instant::now();
    for i in 0..n {
        end.lock(true).map_err(DataError::io("lock", i))?;
        end.unlock(true).map_err(DataError::io("unlock", i))?;
    }
    Ok(t0.elapsed().as_nanos() as f64 / n.max(1) as f64)
}
