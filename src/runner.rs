//! The sweep: every (mechanism, workload, size) case with a fresh peer, each turned into a
//! result (ok, unsupported or error) so that one failing mechanism never stops the sweep.

#![forbid(unsafe_code)]

use crate::backends::sync::Primitive;
use crate::backends::Mechanism;
use crate::environment::{now_rfc3339, Environment, Limits};
use crate::error::Error;
use crate::results::RepeatSummary;
use crate::results::{
    CaseResult, CpuCost, LockResult, RunConfig, RunFile, Status, Throughput, Workload, SCHEMA,
};
use crate::session::{PhaseCost, Session, SessionOptions, SyncSession};
use crate::stats::median_ci;
use crate::stats::{new_histogram, summarize, LatencySummary};
use crate::sys::CpuUsage;
use crate::workload::{default_count, estimate, warmup_count};

/// What a case measures: a channel mechanism (latency, throughput) or a synchronisation
/// primitive (hand-off, lock).
#[derive(Clone, Copy)]
pub enum Subject {
    Channel(&'static dyn Mechanism),
    Sync(&'static dyn Primitive),
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl Subject {
    pub fn id(&self) -> &'static str {
        match self {
            Subject::Channel(m) => m.info().id,
            Subject::Sync(p) => p.info().id,
        }
    }

    pub fn family(&self) -> &'static str {
        match self {
            Subject::Channel(m) => m.info().family.as_str(),
            Subject::Sync(_) => "sync",
        }
    }

    /// Whether this subject runs this workload at all (sync primitives do not move messages,
    /// channels do not synchronise, a condition variable is not a lock).
    pub fn runs(&self, w: Workload) -> bool {
        match self {
            Subject::Channel(m) => match w {
                Workload::Throughput => m.streams(),
                _ => !w.is_sync(),
            },
            Subject::Sync(p) => match w {
                Workload::Handoff => p.info().handoff,
                Workload::Lock => p.info().lock,
                _ => false,
            },
        }
    }
}

/// Everything a sweep needs to know.
pub struct Plan {
    pub mechanisms: Vec<Subject>,
    pub sizes: Vec<usize>,
    pub workloads: Vec<Workload>,
    pub quick: bool,
    /// Overrides the size-dependent message counts.
    pub messages: Option<u64>,
    /// Repetitions of every case (`--repeat`), each with fresh peers.
    pub repeat: u32,
    /// `--pin-matrix`: the mechanism for the core-to-core map and its time budget.
    pub matrix: Option<(&'static dyn Mechanism, std::time::Duration)>,
    pub session: SessionOptions,
}

#[derive(Clone, Copy)]
pub struct Case {
    pub subject: Subject,
    pub workload: Workload,
    /// Message size; 0 for synchronisation workloads.
    pub size: usize,
}

/// What a sweep reports as it goes.
pub enum Event<'a> {
    /// Measuring the floor, before the first case.
    Floor,
    Start(&'a Case),
    /// A repetition not run because an earlier one of the case failed or was unsupported.
    Skip(&'a Case),
    Done(&'a Case, &'a CaseResult),
}

/// One case's repetitions as one result: the repetition with the median headline metric
/// carries the top-level numbers; every repetition's summary is kept in `repeats`, with the
/// median and a distribution-free interval for it (its level in `ci_level`). Any failed repetition fails the case.
fn combine(mut reps: Vec<CaseResult>) -> CaseResult {
    if reps.len() == 1 {
        return reps.remove(0);
    }
    if let Some(i) = reps.iter().position(|r| r.status != Status::Ok) {
        // Later repetitions of a failed case are skipped, so the failure is the last one.
        let mut r = reps.swap_remove(i);
        r.reason = Some(format!(
            "repetition {}: {}",
            i + 1,
            r.reason.as_deref().unwrap_or("failed")
        ));
        return r;
    }
    let key = |r: &CaseResult| match (&r.rtt_ns, &r.throughput, &r.lock) {
        (Some(s), _, _) => s.p50 as f64,
        (_, Some(t), _) => t.bytes_per_sec,
        (_, _, Some(l)) => l.ops_per_sec,
        _ => 0.0,
    };
    let values: Vec<f64> = reps.iter().map(key).collect();
    let ci = median_ci(&values);
    let summaries: Vec<RepeatSummary> = reps
        .iter()
        .map(|r| RepeatSummary {
            rtt_ns: r.rtt_ns.clone(),
            throughput: r.throughput.clone(),
            cpu: r.cpu.clone(),
            lost: r.lost,
            lock: r.lock.clone(),
        })
        .collect();
    let mut order: Vec<usize> = (0..reps.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut r = reps.swap_remove(order[(order.len() - 1) / 2]);
    let interval = Some([ci.lo, ci.hi]);
    if r.rtt_ns.is_some() {
        r.p50_ci = interval;
    } else if r.throughput.is_some() {
        r.bytes_per_sec_ci = interval;
    } else {
        r.ops_per_sec_ci = interval;
    }
    r.median = Some(ci.median);
    r.ci_level = Some(ci.level);
    r.repeats = summaries;
    r
}

fn nothing_arrived(case: &Case, n: u64) -> Error {
    Error::DataPath {
        mechanism: case.subject.id(),
        op: "delivery",
        seq: 0,
        source: std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("none of {n} round trips of {} bytes completed", case.size),
        ),
    }
}

enum Measured {
    Latency(LatencySummary),
    Throughput(Throughput),
    Lock(LockResult),
}

fn per_msg(cpu: CpuUsage, n: u64) -> CpuCost {
    let n = n.max(1) as f64;
    let (user, sys) = cpu.exact_split();
    CpuCost {
        user_ns_per_msg: user / n,
        sys_ns_per_msg: sys / n,
        ctx_switches_per_msg: (cpu.voluntary + cpu.involuntary) as f64 / n,
        voluntary_ctx_switches_per_msg: cpu.voluntary as f64 / n,
        involuntary_ctx_switches_per_msg: cpu.involuntary as f64 / n,
    }
}

impl Plan {
    /// Cases in the order they run: mechanism by mechanism, so a table fills row by row.
    pub fn cases(&self) -> Vec<Case> {
        let mut out = Vec::new();
        for &subject in &self.mechanisms {
            for &workload in self.workloads.iter().filter(|w| subject.runs(**w)) {
                if workload.is_sync() {
                    out.push(Case {
                        subject,
                        workload,
                        size: 0,
                    });
                    continue;
                }
                for &size in &self.sizes {
                    out.push(Case {
                        subject,
                        workload,
                        size,
                    });
                }
            }
        }
        out
    }

    /// Number of progress events a run makes (cases times repetitions).
    pub fn steps(&self) -> usize {
        self.cases().len() * self.repeat.max(1) as usize
    }

    /// (warm-up, measured) message counts of a case.
    pub fn counts(&self, case: &Case) -> (u64, u64) {
        let n = self
            .messages
            .unwrap_or_else(|| default_count(case.workload, case.size, self.quick));
        (warmup_count(n), n)
    }

    /// A rough guess of a case's duration (for the estimate and the ETA only).
    pub fn estimate(&self, case: &Case) -> std::time::Duration {
        let (warmup, n) = self.counts(case);
        estimate(case.workload, case.size, warmup, n)
    }

    /// The guess for the whole sweep, repetitions included.
    pub fn estimate_total(&self) -> std::time::Duration {
        let one: std::time::Duration = self.cases().iter().map(|c| self.estimate(c)).sum();
        one * self.repeat.max(1)
    }

    pub fn run_case(&self, case: &Case, limits: &Limits) -> CaseResult {
        let (warmup, n) = self.counts(case);
        let channel = match case.subject {
            Subject::Channel(m) => Some(m),
            Subject::Sync(_) => None,
        };
        let mut r = CaseResult {
            mechanism: case.subject.id().to_string(),
            built_on: channel.and_then(|m| m.info().built_on).map(String::from),
            family: Some(case.subject.family().to_string()),
            workload: case.workload,
            size: case.size,
            messages: n,
            warmup,
            status: Status::Ok,
            reason: None,
            rtt_ns: None,
            throughput: None,
            cpu: None,
            lock: None,
            delivered: None,
            lost: None,
            loss: None,
            x_floor: None,
            x_copy: None,
            repeats: Vec::new(),
            median: None,
            p50_ci: None,
            bytes_per_sec_ci: None,
            ops_per_sec_ci: None,
            ci_level: None,
        };
        if let Some(why) =
            channel.and_then(|m| m.unsupported(&self.session.params(case.size), limits))
        {
            r.status = Status::Unsupported;
            r.reason = Some(why);
            return r;
        }
        match self.measure(case, warmup, n) {
            Ok((m, cost)) => {
                let mut per = n;
                match m {
                    Measured::Latency(s) => r.rtt_ns = Some(s),
                    Measured::Throughput(t) => r.throughput = Some(t),
                    Measured::Lock(l) => {
                        per = cost.delivered;
                        r.messages = cost.delivered;
                        r.warmup = 0;
                        r.lock = Some(l);
                    }
                }
                r.cpu = Some(per_msg(cost.cpu, per));
                if channel.is_some_and(|m| m.info().lossy) {
                    r.delivered = Some(cost.delivered);
                    r.lost = Some(cost.lost);
                    r.loss = Some(cost.lost as f64 / n.max(1) as f64);
                }
            }
            Err(e) => {
                r.status = Status::Error;
                r.reason = Some(e.to_string());
            }
        }
        r
    }

    fn measure(&self, case: &Case, warmup: u64, n: u64) -> Result<(Measured, PhaseCost), Error> {
        let mechanism = match case.subject {
            Subject::Channel(m) => m,
            Subject::Sync(p) => return self.measure_sync(p, case.workload, warmup, n),
        };
        let mut s = Session::start(mechanism, case.size, &self.session)?;
        let out = match case.workload {
            Workload::Latency => {
                s.round_trips(warmup, None)?;
                let mut hist = new_histogram();
                let cost = s.round_trips(n, Some(&mut hist))?;
                if cost.delivered == 0 {
                    return Err(nothing_arrived(case, n));
                }
                (Measured::Latency(summarize(&hist)), cost)
            }
            Workload::Throughput => {
                s.stream(warmup)?;
                let cost = s.stream(n)?;
                let secs = cost.elapsed.as_secs_f64().max(1e-9);
                let delivered = cost.delivered as f64;
                let t = Throughput {
                    msgs_per_sec: delivered / secs,
                    bytes_per_sec: delivered * (case.size as f64) / secs,
                    elapsed_ns: cost.elapsed.as_nanos().min(u64::MAX as u128) as u64,
                };
                (Measured::Throughput(t), cost)
            }
            Workload::Handoff | Workload::Lock => {
                unreachable!("channels run no synchronisation workload")
            }
        };
        s.finish()?;
        Ok(out)
    }

    /// Hand-off: like latency, one turn pair per recorded value. Lock: `n` milliseconds of
    /// contention, then the uncontended cost with the peer idle.
    fn measure_sync(
        &self,
        p: &'static dyn Primitive,
        w: Workload,
        warmup: u64,
        n: u64,
    ) -> Result<(Measured, PhaseCost), Error> {
        let mut s = SyncSession::start(p, &self.session)?;
        let out = match w {
            Workload::Handoff => {
                s.handoff(warmup, None)?;
                let mut hist = new_histogram();
                let cost = s.handoff(n, Some(&mut hist))?;
                (Measured::Latency(summarize(&hist)), cost)
            }
            _ => {
                let duration = std::time::Duration::from_millis(n);
                s.lock(std::time::Duration::from_millis(warmup.min(n)))?;
                let (c, cpu) = s.lock(duration)?;
                let uncontended = s.uncontended(100_000)?;
                let secs = duration.as_secs_f64();
                let total = c.ours.0 + c.theirs.0;
                let l = LockResult {
                    duration_ns: duration.as_nanos() as u64,
                    ops_per_sec: total as f64 / secs,
                    parent_ops_per_sec: c.ours.0 as f64 / secs,
                    peer_ops_per_sec: c.theirs.0 as f64 / secs,
                    fairness: c.ours.0 as f64 / total.max(1) as f64,
                    counter: c.counter,
                    writes: c.ours.1 + c.theirs.1,
                    uncontended_ns_per_pair: uncontended,
                };
                let cost = PhaseCost {
                    elapsed: duration,
                    cpu,
                    delivered: total,
                    lost: 0,
                };
                (Measured::Lock(l), cost)
            }
        };
        s.finish()?;
        Ok(out)
    }

    pub fn config(&self) -> RunConfig {
        let p = &self.session.placement;
        RunConfig {
            pin: p.pin,
            cpus: p.parent_cpu.zip(p.peer_cpu).map(|(a, b)| [a, b]),
            placement: match p.pair() {
                Some(pair) => format!("{} ({})", p.describe(), pair.describe()),
                None => p.describe(),
            },
            cpu_pair: p.pair(),
            quick: self.quick,
            verify: self.session.verify.as_str().to_string(),
            mechanisms: self.mechanisms.iter().map(|m| m.id().to_string()).collect(),
            sizes: self.sizes.clone(),
            workloads: self.workloads.clone(),
            messages: self.messages,
            timeout_secs: self.session.timeout.as_secs(),
            repeat: self.repeat.max(1),
            socket_rcvbuf: self.session.rcvbuf,
            shm_ring: self.session.shm_ring,
            shm_segment: self.session.shm_segment.as_str().to_string(),
        }
    }

    /// Runs every case; `progress` hears of each case before and after it (never during
    /// timing).
    pub fn run(&self, environment: Environment, mut progress: impl FnMut(Event<'_>)) -> RunFile {
        let started_at = now_rfc3339();
        progress(Event::Floor);
        let floor = crate::floor::measure(&self.session, &self.sizes);
        // Repetitions interleave (every case once, then every case again) so drift in the
        // machine hits all mechanisms alike; each repetition starts fresh peers.
        let cases = self.cases();
        let mut reps: Vec<Vec<CaseResult>> = vec![Vec::new(); cases.len()];
        'sweep: for _ in 0..self.repeat.max(1) {
            for (i, case) in cases.iter().enumerate() {
                if crate::interrupt::interrupted().is_some() {
                    break 'sweep;
                }
                // A case that failed or cannot run here is not tried again.
                if reps[i].iter().any(|r| r.status != Status::Ok) {
                    progress(Event::Skip(case));
                    continue;
                }
                progress(Event::Start(case));
                let r = self.run_case(case, &environment.limits);
                if crate::interrupt::interrupted().is_some() {
                    // Its peer was killed by the interrupt: not a result of the mechanism.
                    break 'sweep;
                }
                progress(Event::Done(case, &r));
                reps[i].push(r);
            }
        }
        let mut results: Vec<CaseResult> = reps
            .into_iter()
            .filter(|r| !r.is_empty())
            .map(combine)
            .collect();
        for r in &mut results {
            if let (Some(s), Some(f)) = (&r.rtt_ns, floor.cacheline_rtt_ns) {
                r.x_floor = Some(s.p50 as f64 / f.max(1.0));
            }
            if let (Some(t), Some(c)) = (&r.throughput, floor.copy_bytes_per_sec.get(&r.size)) {
                r.x_copy = Some(t.bytes_per_sec / c);
            }
        }
        RunFile {
            schema: SCHEMA,
            partial: crate::interrupt::interrupted().is_some(),
            tool: "ipcbench".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at,
            environment,
            config: self.config(),
            floor: Some(floor),
            matrix: self
                .matrix
                .as_ref()
                .filter(|_| crate::interrupt::interrupted().is_none())
                .map(|(m, budget)| {
                    let cpus = self.session.placement.allowed.clone();
                    crate::matrix::measure(*m, 64, &self.session, &cpus, *budget)
                }),
            results,
        }
    }
}
