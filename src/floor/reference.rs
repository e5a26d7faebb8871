//! `ipcbench floor --reference`: each bare loop (`crate::bare`) beside the ipcbench
//! mechanism it stands for, on the same CPUs with the same message and counts, repeated
//! and interleaved (the order of the two flips every repeat, so drift in the machine lands
//! on both), and the ratio of their medians. With two CPUs it also sets `shm-spin`
//! against `cacheline` from the same repeat (beside `shm-spin` against its bare ring, which
//! tells what the ring's layout costs from what ipcbench adds to it).

use crate::backends;
use crate::bare::{self, Kind, Rounds};
use crate::error::Error;
use crate::session::{Session, SessionOptions};
use crate::stats::{new_histogram, summarize};

/// What to compare and how often.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub size: usize,
    pub rounds: Rounds,
    pub repeat: u32,
}

/// Which comparisons to run: bare loops by kind, and whether `shm-spin` is set against
/// `cacheline` (which then runs too: the pair is measured in the same repeat; so does the
/// bare ring).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub kinds: Vec<Kind>,
    pub spin: bool,
}

impl Selection {
    pub fn all() -> Selection {
        Selection {
            kinds: Kind::ALL.to_vec(),
            spin: true,
        }
    }

    /// The comparisons named by mechanism id (`cacheline`, `pipe`, ..., `shm-spin`); none
    /// named means all. `Err` names the ids that can be compared.
    pub fn of(names: &[String]) -> Result<Selection, String> {
        if names.is_empty() {
            return Ok(Selection::all());
        }
        let mut sel = Selection {
            kinds: Vec::new(),
            spin: false,
        };
        for name in names {
            if name == "shm-spin" {
                sel.spin = true;
            } else if let Some(k) = Kind::ALL.into_iter().find(|k| k.mechanism() == name) {
                sel.kinds.push(k);
            } else {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.mechanism()).collect();
                return Err(format!(
                    "no bare loop stands for `{name}`: --reference compares {}",
                    known.join(", ")
                ));
            }
        }
        if sel.spin {
            sel.kinds.extend([Kind::Line, Kind::Ring]);
        }
        // In the order of `Kind::ALL`, each once.
        sel.kinds = Kind::ALL
            .into_iter()
            .filter(|k| sel.kinds.contains(k))
            .collect();
        Ok(sel)
    }
}

/// One line of the comparison: p50 per repeat of each side (ns), or why it is missing.
#[derive(Debug)]
pub struct Row {
    /// The ipcbench mechanism.
    pub mechanism: &'static str,
    /// What it is set against: a bare loop, or another mechanism (`shm-spin` vs `cacheline`).
    pub against: String,
    pub reference: Vec<u64>,
    /// The bare loop again with its ping side in a multi-threaded process (bare rows only).
    pub threaded: Vec<u64>,
    pub ours: Vec<u64>,
    pub failure: Option<String>,
}

impl Row {
    fn new(mechanism: &'static str, against: String) -> Row {
        Row {
            mechanism,
            against,
            reference: Vec::new(),
            threaded: Vec::new(),
            ours: Vec::new(),
            failure: None,
        }
    }

    /// The ratio of the medians over the repeats: each measurement is a fresh pair of
    /// processes, and a pair's round trip can settle in one of two modes for its whole life
    /// (seen on one CPU here: the pipe at ~3 or ~4.5 µs, bare or not), so the medians of
    /// many pairs are compared rather than one pair against its neighbour.
    pub fn ratio(&self) -> Option<f64> {
        let (o, b) = (median_u(&self.ours)?, median_u(&self.reference)?);
        (b > 0).then(|| o as f64 / b as f64)
    }

    /// The same against the bare loop whose ping side is multi-threaded.
    pub fn threaded_ratio(&self) -> Option<f64> {
        let (o, b) = (median_u(&self.ours)?, median_u(&self.threaded)?);
        (b > 0).then(|| o as f64 / b as f64)
    }

    /// Ratios ours / reference per repeat, sorted.
    pub fn ratios(&self) -> Vec<f64> {
        let mut r: Vec<f64> = self
            .ours
            .iter()
            .zip(&self.reference)
            .filter(|(_, &b)| b > 0)
            .map(|(&o, &b)| o as f64 / b as f64)
            .collect();
        r.sort_by(f64::total_cmp);
        r
    }
}

fn median_u(v: &[u64]) -> Option<u64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    (!v.is_empty()).then(|| v[v.len() / 2])
}

/// The p50 round trip of `mechanism` through the harness, as `run`'s latency measures it.
fn ours(
    mechanism: &str,
    size: usize,
    rounds: Rounds,
    opts: &SessionOptions,
) -> Result<u64, String> {
    let m = backends::by_id(mechanism).ok_or_else(|| format!("no mechanism {mechanism}"))?;
    measure_ours(m, size, rounds, opts).map_err(|e| e.to_string())
}

fn measure_ours(
    m: &'static dyn backends::Mechanism,
    size: usize,
    rounds: Rounds,
    opts: &SessionOptions,
) -> Result<u64, Error> {
    let mut s = Session::start(m, size, opts)?;
    crate::workload::latency::round_trips(&mut s, rounds.warmup, None)?;
    let mut h = new_histogram();
    crate::workload::latency::round_trips(&mut s, rounds.count, Some(&mut h))?;
    s.finish()?;
    Ok(summarize(&h).p50)
}

/// Why `mechanism` cannot run here at `size`, if it cannot.
fn refusal(mechanism: &str, size: usize, opts: &SessionOptions) -> Option<String> {
    let limits = crate::environment::Limits::read();
    backends::by_id(mechanism)?.unsupported(&opts.params(size), &limits)
}

/// Runs the comparison on the CPUs `opts` places the processes on; `progress` hears
/// each measurement as it starts.
pub fn compare(
    opts: &SessionOptions,
    plan: Plan,
    only: &Selection,
    mut progress: impl FnMut(&str),
) -> Vec<Row> {
    let two_cpus = opts.placement.two_cpus().is_some();
    let kinds: Vec<Kind> = only
        .kinds
        .iter()
        .copied()
        .filter(|k| two_cpus || !k.spins())
        .collect();
    let mut rows: Vec<Row> = kinds
        .iter()
        .map(|k| Row::new(k.mechanism(), format!("bare {}", k.mechanism())))
        .collect();
    let mut spin = (two_cpus && only.spin).then(|| Row::new("shm-spin", "cacheline".into()));
    for (k, row) in kinds.iter().zip(rows.iter_mut()) {
        row.failure = refusal(k.mechanism(), k.size(plan.size), opts);
    }
    if let Some(row) = spin.as_mut() {
        row.failure = refusal("shm-spin", plan.size, opts);
    }
    let cpus = (opts.placement.parent_cpu, opts.placement.peer_cpu);
    for rep in 0..plan.repeat {
        let flip = rep % 2 == 1;
        for (k, row) in kinds.iter().zip(rows.iter_mut()) {
            if row.failure.is_some() || crate::interrupt::interrupted().is_some() {
                continue;
            }
            let size = k.size(plan.size);
            progress(&format!(
                "repeat {}/{}: {}",
                rep + 1,
                plan.repeat,
                k.mechanism()
            ));
            // 0: bare, 1: bare with a multi-threaded ping side, 2: ipcbench.
            let one = |which: usize| -> Result<u64, String> {
                match which {
                    2 => ours(k.mechanism(), size, plan.rounds, opts),
                    w => bare::measure(&opts.peer_exe, *k, size, plan.rounds, cpus, w == 1)
                        .map_err(|e| e.to_string()),
                }
            };
            let order: [usize; 3] = if flip { [2, 1, 0] } else { [0, 1, 2] };
            let all = order.into_iter().try_fold([0u64; 3], |mut got, w| {
                got[w] = one(w)?;
                Ok::<_, String>(got)
            });
            match all {
                Ok([bare, threaded, ours]) => {
                    row.reference.push(bare);
                    row.threaded.push(threaded);
                    row.ours.push(ours);
                }
                Err(e) => row.failure = Some(e),
            }
            // shm-spin right after this repeat's cacheline, against its ipcbench number.
            if *k == Kind::Line {
                if let (Some(srow), Some(&line)) = (spin.as_mut(), row.ours.last()) {
                    if srow.failure.is_none() {
                        progress(&format!("repeat {}/{}: shm-spin", rep + 1, plan.repeat));
                        match ours("shm-spin", plan.size, plan.rounds, opts) {
                            Ok(o) => {
                                srow.reference.push(line);
                                srow.ours.push(o);
                            }
                            Err(e) => srow.failure = Some(e),
                        }
                    }
                }
            }
        }
    }
    rows.extend(spin);
    rows
}

/// The comparison as a table: medians over the repeats and the ratio's median and range.
pub fn render(rows: &[Row], plan: Plan) -> String {
    let us = |ns: Option<u64>| match ns {
        Some(v) if v < 1_000 => format!("{v} ns"),
        Some(v) => format!("{} µs", crate::report::micros(v as f64)),
        None => "-".into(),
    };
    let mut out = format!(
        "{:<14} {:<18} {:>12} {:>12}  {:<22} {:>12}  {}\n",
        "mechanism",
        "against",
        "against p50",
        "ipcbench p50",
        "ratio [min, max]",
        "threaded p50",
        "ratio"
    );
    for r in rows {
        if let Some(f) = &r.failure {
            out.push_str(&format!(
                "{:<14} {:<18} not measured: {f}\n",
                r.mechanism, r.against
            ));
            continue;
        }
        let ratios = r.ratios();
        let ratio = match (r.ratio(), ratios.first(), ratios.last()) {
            (Some(m), Some(lo), Some(hi)) => format!("{m:.2}x [{lo:.2}, {hi:.2}]"),
            _ => "-".into(),
        };
        let threaded = match r.threaded_ratio() {
            Some(t) => format!("{:>12}  {t:.2}x", us(median_u(&r.threaded))),
            None => format!("{:>12}  -", "-"),
        };
        out.push_str(&format!(
            "{:<14} {:<18} {:>12} {:>12}  {ratio:<22} {threaded}\n",
            r.mechanism,
            r.against,
            us(median_u(&r.reference)),
            us(median_u(&r.ours)),
        ));
    }
    out.push_str(&format!(
        "{} B messages ({} for cacheline), {} round trips after {} per measurement, {} interleaved repeat{}; each column is the median of the repeats' p50s, each ratio the ratio of two medians [and its range over the repeats]. \"threaded\": the same bare loop with one idle thread in its sending process, as ipcbench's parent has (its peer has none): on Linux a multi-threaded process pays more per context switch.\n",
        plan.size,
        8,
        plan.rounds.count,
        plan.rounds.warmup,
        plan.repeat,
        if plan.repeat == 1 { "" } else { "s" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_names_mechanisms_and_shm_spin_brings_its_cacheline() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Selection::of(&[]), Ok(Selection::all()));
        let sel = Selection::of(&names(&["shm-posix-sem", "posix-mq", "posix-mq"])).unwrap();
        assert_eq!(sel.kinds, [Kind::PosixMq, Kind::ShmPosixSem]);
        assert!(!sel.spin);
        let sel = Selection::of(&names(&["shm-spin"])).unwrap();
        assert_eq!((sel.kinds, sel.spin), (vec![Kind::Line, Kind::Ring], true));
        let e = Selection::of(&names(&["tcp"])).unwrap_err();
        assert!(
            e.contains("`tcp`") && e.contains("shm-posix-sem, shm-spin"),
            "{e}"
        );
    }

    #[test]
    fn ratios_pair_repeats_and_sort() {
        let mut r = Row::new("pipe", "bare pipe".into());
        r.reference = vec![100, 200, 100];
        r.ours = vec![110, 200, 130];
        assert_eq!(r.ratios(), vec![1.0, 1.1, 1.3]);
        assert_eq!(
            r.ratio(),
            Some(1.3),
            "130 over 100: the medians of each side"
        );
        assert_eq!(median_u(&r.reference), Some(100));
    }
}
