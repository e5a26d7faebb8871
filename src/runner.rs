//! The sweep: every (mechanism, workload, size) case with a fresh peer, each turned into a
//! result (ok, unsupported or error) so that one failing mechanism never stops the sweep.

#![forbid(unsafe_code)]

use crate::backends::Mechanism;
use crate::environment::{now_rfc3339, Environment, Limits};
use crate::fanin::FanIn;
use crate::results::RepeatSummary;
use crate::results::{CaseResult, RunConfig, RunFile, Status, SCHEMA};
use crate::session::{Session, SessionOptions};
use crate::stats::median_ci;
pub use crate::subject::Subject;
use crate::workload::{Params, Workload};

/// Everything a sweep needs to know.
pub struct Plan {
    pub mechanisms: Vec<Subject>,
    pub sizes: Vec<usize>,
    pub workloads: Vec<&'static dyn Workload>,
    /// `--quick`, the open-loop rate and arrivals: what the workloads are given.
    pub params: Params,
    /// Overrides the size-dependent message counts.
    pub messages: Option<u64>,
    /// Repetitions of every case (`--repeat`), each with fresh peers.
    pub repeat: u32,
    /// `--clients`: fan-in client counts; each workload that fans in runs once per count
    /// (and not one-to-one). Empty: every case is one-to-one.
    pub clients: Vec<usize>,
    /// `--pin-matrix`: the mechanism for the core-to-core map and its time budget.
    pub matrix: Option<(&'static dyn Mechanism, std::time::Duration)>,
    pub session: SessionOptions,
}

#[derive(Clone, Copy)]
pub struct Case {
    pub subject: Subject,
    pub workload: &'static dyn Workload,
    /// Message size; 0 for workloads that move no messages.
    pub size: usize,
    /// Fan-in: the number of clients (`--clients`); `None` for a one-to-one case.
    pub clients: Option<usize>,
}

/// What a sweep reports as it goes.
pub enum Event<'a> {
    /// Measuring the floor, before the first case.
    Floor,
    /// Something the floor showed that makes the run's numbers harder to read (also kept
    /// in the results' environment warnings).
    Warning(&'a str),
    Start(&'a Case),
    /// A repetition not run because an earlier one of the case failed or was unsupported.
    Skip(&'a Case),
    Done(&'a Case, &'a CaseResult),
}

/// One case's repetitions as one result: the repetition with the median headline metric
/// carries the top-level numbers; every repetition's summary is kept in `repeats`, with the
/// median and a distribution-free interval for it (its level in `ci_level`). Any failed
/// repetition fails the case.
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
    let key = |r: &CaseResult| match (&r.rtt_ns, &r.throughput, &r.lock, &r.setup) {
        (Some(s), _, _, _) => s.p50 as f64,
        (_, Some(t), _, _) => t.bytes_per_sec,
        (_, _, Some(l), _) => l.ops_per_sec,
        (_, _, _, Some(s)) => s.per_sec,
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
    } else if r.lock.is_some() {
        r.ops_per_sec_ci = interval;
    }
    r.median = Some(ci.median);
    r.ci_level = Some(ci.level);
    r.repeats = summaries;
    r
}

/// Why a fan-in case cannot run (checked before anything starts), if so.
fn fan_in_unsupported(
    m: &dyn Mechanism,
    params: &crate::backends::ChannelParams,
    case: &Case,
    clients: usize,
) -> Option<String> {
    if let Some(why) = m.fan_in().unsupported() {
        return Some(format!("--clients: {why}"));
    }
    if let Some(why) = case.workload.no_fan_in(&case.subject.capabilities()) {
        return Some(format!("--clients: {why}"));
    }
    if let Some(why) = m.fan_in_limit(params, clients) {
        return Some(format!("--clients {clients}: {why}"));
    }
    let min = crate::workload::clients::MIN_SIZE;
    (case.size < min).then(|| {
        format!("--clients needs messages of at least {min} bytes: each carries its client's number in its first word ({clients} clients here)")
    })
}

impl Plan {
    /// Cases in the order they run: mechanism by mechanism, so a table fills row by row.
    pub fn cases(&self) -> Vec<Case> {
        let mut out = Vec::new();
        for &subject in &self.mechanisms {
            for &workload in self.workloads.iter().filter(|w| subject.runs(**w)) {
                let counts: Vec<Option<usize>> = if self.clients.is_empty() || !workload.fans_in() {
                    vec![None]
                } else {
                    self.clients.iter().map(|&n| Some(n)).collect()
                };
                if !workload.sized() {
                    out.push(Case {
                        subject,
                        workload,
                        size: 0,
                        clients: None,
                    });
                    continue;
                }
                for &size in &self.sizes {
                    for &clients in &counts {
                        out.push(Case {
                            subject,
                            workload,
                            size,
                            clients,
                        });
                    }
                }
            }
        }
        out
    }

    /// (warm-up, measured) message counts of a case.
    pub fn counts(&self, case: &Case) -> (u64, u64) {
        let n = self
            .messages
            .unwrap_or_else(|| case.workload.default_count(case.size, &self.params));
        (case.workload.warmup(n), n)
    }

    /// A rough guess of a case's duration (for the estimate and the ETA only).
    pub fn estimate(&self, case: &Case) -> std::time::Duration {
        if let Some(n) = case.clients {
            let (warm, window) = crate::workload::clients::windows(self.params.quick);
            let start = std::time::Duration::from_nanos(crate::workload::cost::START_NS as u64);
            return start * n as u32 + (warm + window) * 11 / 10;
        }
        let (warmup, n) = self.counts(case);
        case.workload.estimate(case.size, warmup, n)
    }

    /// The guess for the whole sweep, repetitions included.
    pub fn estimate_total(&self) -> std::time::Duration {
        let one: std::time::Duration = self.cases().iter().map(|c| self.estimate(c)).sum();
        one * self.repeat.max(1)
    }

    pub fn run_case(&self, case: &Case, limits: &Limits) -> CaseResult {
        self.run_case_in(&self.session, case, limits)
    }

    /// `shm-adaptive`'s spin budget for this run and where it came from: `--spin-us`; none
    /// when both sides share a CPU; else the floor's cross-CPU wake-up p50 (spinning as
    /// long as one sleep and wake-up costs is never worse than twice the better choice).
    pub fn spin_budget(&self, floor: &crate::results::Floor) -> (u64, &'static str) {
        if let Some(ns) = self.session.spin_ns {
            return (ns, "--spin-us");
        }
        if self.session.placement.pin == crate::placement::Pin::Same {
            return (0, "none: both processes share one CPU (--pin same)");
        }
        match &floor.wakeup {
            Some(w) => (w.p50_ns, "the floor's cross-CPU wake-up p50"),
            None => (
                crate::backends::shm::DEFAULT_SPIN_NS,
                "the built-in default (no wake-up floor was measured)",
            ),
        }
    }

    fn run_case_in(&self, session: &SessionOptions, case: &Case, limits: &Limits) -> CaseResult {
        let (warmup, n) = self.counts(case);
        let channel = match case.subject {
            Subject::Channel(m) => Some(m),
            Subject::Sync(_) => None,
        };
        let mut r = CaseResult {
            mechanism: case.subject.id().to_string(),
            built_on: channel.and_then(|m| m.info().built_on).map(String::from),
            family: Some(case.subject.family().as_str().to_string()),
            workload: case.workload.id().to_string(),
            clients: case.clients,
            size: case.size,
            messages: n,
            warmup,
            status: Status::Ok,
            reason: None,
            rtt_ns: None,
            throughput: None,
            cpu: None,
            lock: None,
            rate: None,
            load: None,
            setup: None,
            one_way_ns: None,
            fan_in: None,
            delivered: None,
            lost: None,
            loss: None,
            x_floor: None,
            x_copy: None,
            x_wake: None,
            repeats: Vec::new(),
            median: None,
            p50_ci: None,
            bytes_per_sec_ci: None,
            ops_per_sec_ci: None,
            ci_level: None,
        };
        if let Some(why) = case
            .workload
            .unsupported(&case.subject.capabilities())
            .or_else(|| channel.and_then(|m| m.unsupported(&session.params(case.size), limits)))
        {
            r.status = Status::Unsupported;
            r.reason = Some(why);
            return r;
        }
        let measured = match (case.clients, channel) {
            (Some(clients), Some(m)) => {
                if let Some(why) = fan_in_unsupported(m, &session.params(case.size), case, clients)
                {
                    r.status = Status::Unsupported;
                    r.reason = Some(why);
                    r.fan_in = None;
                    return r;
                }
                FanIn::start(m, case.size, clients, session).and_then(|mut fan| {
                    let f = case
                        .workload
                        .measure_fan_in(&mut fan, &self.params, &mut r)?;
                    r.fan_in = Some(f);
                    fan.finish()
                })
            }
            _ => Session::start(
                case.subject,
                case.size,
                &session.for_workload(case.workload),
            )
            .and_then(|mut s| {
                case.workload
                    .measure(&mut s, &self.params, warmup, n, &mut r)?;
                s.finish()
            }),
        };
        if let Err(e) = measured {
            r.status = Status::Error;
            r.reason = Some(e.to_string());
            // Nothing half-measured stays in a failed result.
            (r.rtt_ns, r.throughput, r.lock, r.cpu, r.rate) = (None, None, None, None, None);
            (r.load, r.setup) = (None, None);
            r.one_way_ns = None;
            r.fan_in = None;
            (r.delivered, r.lost, r.loss) = (None, None, None);
            (r.messages, r.warmup) = (n, warmup);
        }
        r
    }

    pub fn config(&self) -> RunConfig {
        let p = &self.session.placement;
        let runs = |id: &str| self.workloads.iter().any(|w| w.id() == id);
        let (rate, load) = (
            runs(crate::workload::rate::ID),
            runs(crate::workload::load::ID),
        );
        RunConfig {
            pin: p.pin,
            cpus: p.parent_cpu.zip(p.peer_cpu).map(|(a, b)| [a, b]),
            placement: match p.pair() {
                Some(pair) => format!("{} ({})", p.describe(), pair.describe()),
                None => p.describe(),
            },
            cpu_pair: p.pair(),
            quick: self.params.quick,
            rate: rate.then_some(self.params.rate),
            arrivals: (rate || load).then_some(self.params.arrivals),
            rates: load.then(|| self.params.rates.iter().map(|r| r.label()).collect()),
            slo_ns: load.then_some(self.params.slo_ns),
            verify: self.session.verify.as_str().to_string(),
            mechanisms: self.mechanisms.iter().map(|m| m.id().to_string()).collect(),
            sizes: self.sizes.clone(),
            workloads: self.workloads.iter().map(|w| w.id().to_string()).collect(),
            messages: self.messages,
            timeout_secs: self.session.timeout.as_secs(),
            repeat: self.repeat.max(1),
            socket_rcvbuf: self.session.rcvbuf,
            shm_ring: self.session.shm_ring,
            shm_segment: self.session.shm_segment.as_str().to_string(),
            shm_hugepages: self.session.shm_huge,
            shm_read: self.session.shm_read.as_str().to_string(),
            spin_ns: None,
            spin_source: String::new(),
        }
    }

    /// Runs every case; `progress` hears of each case before and after it (never during
    /// timing).
    pub fn run(
        &self,
        mut environment: Environment,
        mut progress: impl FnMut(Event<'_>),
    ) -> RunFile {
        let started_at = now_rfc3339();
        progress(Event::Floor);
        let mut floor = crate::floor::measure(&self.session, &self.sizes);
        if let Some(w) = crate::floor::wakeup_warning(&floor, self.session.placement.peer_cpu) {
            progress(Event::Warning(&w));
            environment.warnings.push(w);
        }
        let (spin_ns, spin_source) = self.spin_budget(&floor);
        let session = SessionOptions {
            spin_ns: Some(spin_ns),
            ..self.session.clone()
        };
        // Repetitions interleave (every case once, then every case again) so drift in the
        // machine hits all mechanisms alike; each repetition starts fresh peers.
        let cases = self.cases();
        let mut reps: Vec<Vec<CaseResult>> = vec![Vec::new(); cases.len()];
        // memcpy and the cache line are measured again before every repetition after the
        // first and the floor keeps the medians (`floor::Again`).
        let mut again = crate::floor::Again::new(&floor);
        'sweep: for rep in 0..self.repeat.max(1) {
            if rep > 0 && crate::interrupt::interrupted().is_none() {
                again.measure(&self.session, &self.sizes);
            }
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
                let r = self.run_case_in(&session, case, &environment.limits);
                if crate::interrupt::interrupted().is_some() {
                    // Its peer was killed by the interrupt: not a result of the mechanism.
                    break 'sweep;
                }
                progress(Event::Done(case, &r));
                reps[i].push(r);
            }
        }
        again.apply(&mut floor);
        let mut results: Vec<CaseResult> = reps
            .into_iter()
            .filter(|r| !r.is_empty())
            .map(combine)
            .collect();
        for r in &mut results {
            if let (Some(s), Some(f)) = (&r.rtt_ns, floor.cacheline_rtt_ns) {
                r.x_floor = Some(s.p50 as f64 / f.max(1.0));
            }
            let sleeps = crate::backends::by_id(&r.mechanism).is_some_and(|m| !m.info().busy_waits);
            if let (Some(s), Some(w), true) = (&r.rtt_ns, &floor.wakeup, sleeps) {
                r.x_wake = Some(s.p50 as f64 / (2.0 * w.p50_ns.max(1) as f64));
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
            config: {
                let mut c = self.config();
                if self.mechanisms.iter().any(|m| m.id() == "shm-adaptive") {
                    c.spin_ns = Some(spin_ns);
                    c.spin_source = spin_source.into();
                }
                c
            },
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
