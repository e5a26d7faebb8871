//! The measurement itself: the floor and the ratios against it, repetitions with intervals,
//! results that do not depend on the order mechanisms run in, and the core-to-core map.

mod common;

use common::{text, Scratch, EXE};
use std::process::Command;

#[test]
fn the_floor_is_plausible_and_every_result_is_set_against_it() {
    let s = Scratch::new("floor");
    let v = s.sweep(&[
        "--mechanisms",
        "pipe,shm-spin",
        "--sizes",
        "64,4K",
        "--messages",
        "50",
        "--no-report",
    ]);
    let f = &v["floor"];
    let clock = f["clock_read_ns"].as_f64().unwrap();
    assert!(clock > 0.0 && clock < 10_000.0, "{f}");
    let line = f["cacheline_rtt_ns"].as_f64().unwrap();
    assert!(line > 1.0 && line < 1_000_000.0, "{f}");
    // The same bounce as a bare loop, beside it in every floor.
    let bare = f["cacheline_bare_ns"].as_f64().unwrap();
    assert!(bare > 1.0 && bare < 1_000_000.0, "{f}");
    for size in ["64", "4096"] {
        let bw = f["copy_bytes_per_sec"][size].as_f64().unwrap();
        assert!(bw > 1e7, "memcpy at {size}: {bw}");
    }
    // The wake-up floor between the two CPUs: a distribution, by idle gap, binned.
    let w = &f["wakeup"];
    let (p10, p50, p99) = (
        w["p10_ns"].as_u64().unwrap(),
        w["p50_ns"].as_u64().unwrap(),
        w["p99_ns"].as_u64().unwrap(),
    );
    assert!(0 < p10 && p10 <= p50 && p50 <= p99, "{w}");
    assert_eq!(w["by_idle_us"].as_array().unwrap().len(), 5, "{w}");
    let binned: u64 = w["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[1].as_u64().unwrap())
        .sum();
    assert_eq!(binned, 1000, "every measured wake-up is in a bin: {w}");
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["status"], "ok", "{r}");
        match r["workload"].as_str().unwrap() {
            "latency" => {
                assert!(r["x_floor"].as_f64().unwrap() > 0.0, "{r}");
                // A pipe sleeps while it waits; shm-spin never does.
                let sleeps = r["mechanism"] == "pipe";
                assert_eq!(r["x_wake"].as_f64().is_some(), sleeps, "{r}");
            }
            _ => assert!(r["x_copy"].as_f64().unwrap() > 0.0, "{r}"),
        }
    }
    s.audit();
}

#[test]
fn repetitions_keep_every_summary_and_an_interval() {
    let s = Scratch::new("repeat");
    let v = s.sweep(&[
        "--mechanisms",
        "pipe",
        "--sizes",
        "64",
        "--messages",
        "50",
        "--repeat",
        "3",
        "--no-report",
    ]);
    assert_eq!(v["config"]["repeat"], 3);
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["repeats"].as_array().unwrap().len(), 3, "{r}");
        let key = if r["workload"] == "latency" {
            "p50_ci"
        } else {
            "bytes_per_sec_ci"
        };
        // Three repetitions give a 75% interval: nothing may call it 95%.
        assert!(r.get("p50_ci95").is_none() && r.get("bytes_per_sec_ci95").is_none());
        let ci = r[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} missing: {r}"));
        let (lo, hi, mid) = (
            ci[0].as_f64().unwrap(),
            ci[1].as_f64().unwrap(),
            r["median"].as_f64().unwrap(),
        );
        assert!(lo <= mid && mid <= hi, "{r}");
        assert!(
            (r["ci_level"].as_f64().unwrap() - 0.75).abs() < 1e-9,
            "three values: min..max covers 75%"
        );
    }
    let out = s.run(&[
        "report",
        s.json().to_str().unwrap(),
        "-o",
        s.root.join("rep").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let md = std::fs::read_to_string(s.root.join("rep/report.md")).unwrap();
    assert!(
        md.contains("75% interval of the median over 3 repetitions"),
        "{md}"
    );
    assert!(!md.contains("95% interval"), "{md}");
    s.audit();
}

/// What a run's results say, without the timings: which cases, their status and counts.
fn shape(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {} {}",
                r["mechanism"],
                r["workload"],
                r["size"],
                r["status"],
                r["messages"],
                r["warmup"],
                r["reason"]
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn results_do_not_depend_on_the_order_mechanisms_run_in() {
    // fault-corrupt fails deterministically at message #5; pipe-raw never checks: both
    // orders must give the same cases, statuses, counts and reasons.
    let (a, b) = (Scratch::new("order-a"), Scratch::new("order-b"));
    let args = |m: &'static str| {
        vec![
            "--mechanisms",
            m,
            "--sizes",
            "64,4K",
            "--messages",
            "40",
            "--no-report",
        ]
    };
    let one = a.run(
        &[
            &["run", "--json", a.json().to_str().unwrap()][..],
            &args("fault-corrupt,pipe-raw")[..],
        ]
        .concat(),
    );
    let two = b.run(
        &[
            &["run", "--json", b.json().to_str().unwrap()][..],
            &args("pipe-raw,fault-corrupt")[..],
        ]
        .concat(),
    );
    assert_eq!(one.status.code(), Some(1));
    assert_eq!(two.status.code(), Some(1));
    assert_eq!(shape(&a.results()), shape(&b.results()));
    a.audit();
    b.audit();
}

#[test]
fn the_floor_command_prints_the_floor() {
    let out = Command::new(EXE)
        .args(["floor", "--sizes", "64"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    for line in [
        "clock read:",
        "cache-line round trip",
        "memcpy     64 B:",
        "cross-CPU wake-up: p50",
        "after 1000 µs idle: p50",
    ] {
        assert!(t.contains(line), "{line} missing:\n{t}");
    }
}

/// The table's row for `mechanism`, split into words.
fn row<'a>(table: &'a str, mechanism: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(mechanism))
        .unwrap_or_else(|| panic!("no row for {mechanism}:\n{table}"))
        .split_whitespace()
        .collect()
}

#[test]
fn every_bare_loop_runs_beside_its_mechanism_and_leaves_nothing() {
    let s = Scratch::new("bare");
    for (pin, kernel_only) in [("same", true), ("cross", false)] {
        let out = s
            .command(&[
                "floor",
                "--sizes",
                "64",
                "--pin",
                pin,
                "--reference",
                "--repeat",
                "2",
                "--count",
                "300",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let t = text(&out.stdout);
        for m in [
            "pipe",
            "fifo",
            "unix-stream",
            "posix-mq",
            "sysv-mq",
            "shm-futex",
            "shm-eventfd",
            "shm-posix-sem",
        ] {
            let r = row(&t, m);
            // mechanism, "bare", m, p50, "µs", p50, "µs", ratio, [min, max]
            assert_eq!(r[1..3], ["bare", m], "{t}");
            let ratio: f64 = r[7]
                .trim_end_matches('x')
                .parse()
                .unwrap_or_else(|_| panic!("{t}"));
            assert!(ratio > 0.0, "{t}");
        }
        // shm-spin against the cache line of the same repeat, and against its bare ring.
        let spin: Vec<Vec<&str>> = t
            .lines()
            .filter(|l| l.starts_with("shm-spin "))
            .map(|l| l.split_whitespace().collect())
            .collect();
        if kernel_only {
            // Spinning needs two CPUs: neither the line bounce nor shm-spin is compared.
            assert!(!t.lines().any(|l| l.starts_with("cacheline ")), "{t}");
            assert!(spin.is_empty(), "{t}");
        } else {
            assert!(row(&t, "cacheline")[7].ends_with('x'), "{t}");
            let against: Vec<&str> = spin.iter().map(|r| r[1]).collect();
            assert_eq!(against, ["bare", "cacheline"], "{t}");
            assert_eq!(spin[0][2], "shm-spin", "{t}");
            // shm-spin, bare, shm-spin, p50, unit, p50, unit, ratio; then without "bare".
            assert!(
                spin[0][7].ends_with('x') && spin[1][6].ends_with('x'),
                "{t}"
            );
        }
    }
    s.audit();
}

#[test]
fn the_reference_runs_only_the_mechanisms_asked_for() {
    let s = Scratch::new("bare-only");
    let floor = |only: &str| {
        s.command(&[
            "floor",
            "--sizes",
            "64",
            "--pin",
            "cross",
            "--reference",
            "--repeat",
            "1",
            "--count",
            "200",
            "--mechanisms",
            only,
        ])
        .output()
        .unwrap()
    };
    let out = floor("posix-mq,shm-spin");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    let table = &t[t
        .find("mechanism ")
        .unwrap_or_else(|| panic!("no table:\n{t}"))..];
    let names: Vec<(&str, &str)> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?, w.next()?))
        })
        .take(4)
        .collect();
    // shm-spin is set against the cacheline of the same repeat, so that runs too, and
    // against its bare ring.
    assert_eq!(
        names,
        [
            ("cacheline", "bare"),
            ("posix-mq", "bare"),
            ("shm-spin", "bare"),
            ("shm-spin", "cacheline")
        ],
        "{t}"
    );
    let bad = floor("posix-mq,tcp");
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    let e = text(&bad.stderr);
    assert!(e.contains("`tcp`") && e.contains("shm-posix-sem"), "{e}");
    s.audit();
}

#[test]
fn the_pin_matrix_covers_every_cpu_pair_and_is_drawn() {
    let s = Scratch::new("matrix");
    let report = s.root.join("report");
    let v = s.sweep(&[
        "--mechanisms",
        "pipe",
        "--workloads",
        "latency",
        "--sizes",
        "64",
        "--messages",
        "20",
        "--pin-matrix",
        "--matrix-budget",
        "60",
        "--report",
        report.to_str().unwrap(),
    ]);
    let m = &v["matrix"];
    let n = m["cpus"].as_array().unwrap().len();
    assert!(n >= 1);
    let rows = m["p50_ns"].as_array().unwrap();
    assert_eq!(rows.len(), n);
    for row in rows {
        assert_eq!(row.as_array().unwrap().len(), n);
        assert!(
            row.as_array()
                .unwrap()
                .iter()
                .all(|c| c.as_u64().is_some_and(|v| v > 0)),
            "{m}"
        );
    }
    let svg = std::fs::read_to_string(report.join("matrix.svg")).unwrap();
    assert!(
        svg.contains("(fastest)") && svg.contains("(slowest)") && svg.contains("p50, log scale"),
        "the heatmap has its colour scale and unit"
    );
    s.audit();
}

#[test]
fn the_cacheline_floor_runs_latency_only_and_without_errors() {
    let s = Scratch::new("cacheline");
    let v = s.sweep(&[
        "--mechanisms",
        "cacheline",
        "--sizes",
        "8",
        "--messages",
        "200",
        "--no-report",
    ]);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["workload"], "latency");
    assert_eq!(results[0]["status"], "ok");
    s.audit();
}

#[test]
fn coordinated_omission_is_visible_in_the_open_loop_only() {
    // fault-stall's peer stops for 50 ms once a second. A closed-loop case is over before
    // the first stall; 3 s of open-loop requests at 1000/s queue behind two or three stalls.
    let s = Scratch::new("stall");
    let v = s.sweep(&[
        "--mechanisms",
        "fault-stall",
        "--workloads",
        "latency,rate",
        "--sizes",
        "64",
        "--messages",
        "3000",
        "--rate",
        "1000",
        "--repeat",
        "1",
        "--no-report",
    ]);
    let get = |w: &str| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["workload"] == w)
            .unwrap_or_else(|| panic!("no {w} result"))
            .clone()
    };
    let closed = get("latency");
    let open = get("rate");
    assert_eq!(open["status"], "ok", "{open}");
    let ms = |r: &serde_json::Value, k: &str| r["rtt_ns"][k].as_f64().unwrap() / 1e6;
    assert!(
        ms(&closed, "p999") < 25.0,
        "the closed loop waits a stall out once at most: {closed}"
    );
    assert!(
        ms(&open, "p999") >= 30.0 && ms(&open, "max") >= 40.0,
        "every request queued behind a stall is charged for it: {open}"
    );
    let rate = &open["rate"];
    assert_eq!(rate["offered_per_sec"], 1000.0);
    assert!(rate["achieved_per_sec"].as_f64().unwrap() > 0.0);
    assert!(rate["send_lag_ns"]["p99"].is_u64() && rate["saturated"].is_boolean());
    assert_eq!(v["config"]["rate"], 1000.0);
    assert_eq!(v["config"]["arrivals"], "even");
    s.audit();
}

#[test]
fn the_open_loop_is_offered_where_a_channel_can_split_and_refused_elsewhere() {
    let s = Scratch::new("rate-where");
    let v = s.sweep(&[
        "--mechanisms",
        "pipe,posix-mq,shm-futex,shm-spin",
        "--workloads",
        "rate",
        "--sizes",
        "64",
        "--messages",
        "500",
        "--rate",
        "5000",
        "--arrivals",
        "poisson",
        "--no-report",
    ]);
    for r in v["results"].as_array().unwrap() {
        match r["mechanism"].as_str().unwrap() {
            "shm-spin" => {
                assert_eq!(r["status"], "unsupported", "{r}");
                assert!(r["reason"].as_str().unwrap().contains("split"), "{r}");
            }
            _ => {
                assert_eq!(r["status"], "ok", "{r}");
                assert!(r["rtt_ns"]["p50"].as_u64().unwrap() > 0);
            }
        }
    }
    assert_eq!(v["config"]["arrivals"], "poisson");
    s.audit();
}

#[test]
fn a_load_sweep_has_a_point_per_rate_and_a_knee_under_the_budget() {
    let s = Scratch::new("load");
    let v = s.sweep(&[
        "--mechanisms",
        "pipe,shm-spin",
        "--workloads",
        "load",
        "--sizes",
        "64",
        "--rates",
        "25%,50%,3k",
        "--slo",
        "1s",
        "--messages",
        "100",
        "--no-report",
    ]);
    assert_eq!(
        v["config"]["rates"],
        serde_json::json!(["25%", "50%", "3000/s"])
    );
    assert_eq!(v["config"]["slo_ns"], 1_000_000_000u64);
    for r in v["results"].as_array().unwrap() {
        if r["mechanism"] == "shm-spin" {
            assert_eq!(r["status"], "unsupported", "{r}");
            continue;
        }
        assert_eq!(r["status"], "ok", "{r}");
        let l = &r["load"];
        let max = l["closed_loop_max_per_sec"].as_f64().unwrap();
        assert!(max > 0.0, "{l}");
        let points = l["points"].as_array().unwrap();
        assert_eq!(points.len(), 3, "{l}");
        let offered: Vec<f64> = points
            .iter()
            .map(|p| p["offered_per_sec"].as_f64().unwrap())
            .collect();
        assert!(
            (offered[0] - 0.25 * max).abs() < 1.0,
            "{offered:?} of {max}"
        );
        assert!((offered[1] - 0.5 * max).abs() < 1.0, "{offered:?} of {max}");
        assert_eq!(offered[2], 3000.0);
        // A one-second budget holds at these rates unless a point saturated.
        let knee = l["knee_per_sec"].as_f64();
        let unsaturated: Vec<f64> = points
            .iter()
            .filter(|p| p["saturated"] == false)
            .map(|p| p["achieved_per_sec"].as_f64().unwrap())
            .collect();
        assert_eq!(
            knee,
            unsaturated.iter().cloned().reduce(f64::max),
            "the knee is the best unsaturated point: {l}"
        );
    }
    let dir = s.root.join("rep");
    let out = s.run(&[
        "report",
        s.json().to_str().unwrap(),
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let svg = std::fs::read_to_string(dir.join("load-64B.svg")).expect("a load chart");
    assert!(
        svg.contains(">pipe<") && svg.contains("budget 1 s"),
        "{svg}"
    );
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("Load sweep at 64 B") && md.contains("| knee |"),
        "{md}"
    );
    // A knee at the sweep's highest achieved rate is marked as a lower bound.
    let pipe = &v["results"][0]["load"];
    let top = pipe["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["achieved_per_sec"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let row = md
        .lines()
        .skip_while(|l| !l.contains("Load sweep at 64 B"))
        .find(|l| l.starts_with("| pipe |"))
        .unwrap();
    assert_eq!(
        pipe["knee_per_sec"].as_f64() == Some(top),
        row.contains("| ≥ "),
        "{row}"
    );
    s.audit();
}

#[test]
fn messages_that_carry_their_send_time_give_one_way_latency() {
    let s = Scratch::new("one-way");
    let v = s.sweep(&[
        "--mechanisms",
        "pipe",
        "--workloads",
        "throughput,rate",
        "--sizes",
        "16,64",
        "--messages",
        "500",
        "--rate",
        "5000",
        "--verify",
        "full",
        "--no-report",
    ]);
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["status"], "ok", "{r}");
        if r["size"] == 16 {
            assert!(r.get("one_way_ns").is_none(), "16 bytes carry no time: {r}");
            continue;
        }
        let ow = r["one_way_ns"]["p50"]
            .as_u64()
            .unwrap_or_else(|| panic!("{r}"));
        assert!(ow > 0, "{r}");
        if r["workload"] == "rate" {
            // Each request's way to the peer is part of its latency from the schedule.
            assert!(ow <= r["rtt_ns"]["p50"].as_u64().unwrap(), "{r}");
        }
    }
    s.audit();
}

#[test]
fn an_open_loop_far_beyond_capacity_saturates_and_ends() {
    // One thread sends and reads: over a 10-message queue and a pipe, a client that is
    // always behind must still read replies between sends, or both sides block for good.
    let s = Scratch::new("open-loop-overload");
    let v = s.sweep(&[
        "--mechanisms",
        "posix-mq,pipe,unix-stream,unix-seqpacket",
        "--workloads",
        "rate",
        "--sizes",
        "64,4K",
        "--rate",
        "1000000",
        "--messages",
        "20000",
        "--timeout",
        "20",
        "--no-report",
    ]);
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["rate"]["saturated"], true, "{r}");
    }
    // Sharing one CPU with the peer, the client yields its spins: still no deadlock.
    let v = s.sweep(&[
        "--pin",
        "same",
        "--mechanisms",
        "pipe",
        "--workloads",
        "rate",
        "--sizes",
        "64",
        "--rate",
        "1000000",
        "--messages",
        "20000",
        "--timeout",
        "20",
        "--no-report",
    ]);
    assert_eq!(v["results"][0]["status"], "ok", "{v}");
    s.audit();
}
