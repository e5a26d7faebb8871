//! Reports, comparisons and recommendations from committed fixture results: every mechanism
//! and size appears, gaps carry their reasons, charts are well-formed SVG, exit codes are
//! right, and broken files get a clear error instead of a panic.

mod common;

use common::{fixture, text, Scratch, EXE};
use std::process::Command;

/// Whether `compare`'s output has a row for `mechanism` and `metric` ending in `mark`.
fn row_marked(out: &str, mechanism: &str, metric: &str, mark: &str) -> bool {
    out.lines()
        .any(|l| l.starts_with(mechanism) && l.contains(metric) && l.ends_with(mark))
}

/// Whether `recommend` ranked `mechanism` (its name follows a rank on a line).
fn ranked(out: &str, mechanism: &str) -> bool {
    out.lines()
        .any(|l| l.split_whitespace().nth(1) == Some(mechanism))
}

/// The mechanisms `recommend` ranked, in order (lines that start with a rank).
fn ranking(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect()
}

fn ipcbench(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(EXE).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn report_shows_every_mechanism_size_and_reason_with_valid_charts() {
    let s = Scratch::new("report");
    let dir = s.root.join("report");
    let (code, _, err) = ipcbench(&["report", &fixture("base.json"), "-o", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("base.json")).unwrap()).unwrap();
    for r in base["results"].as_array().unwrap() {
        let m = r["mechanism"].as_str().unwrap();
        assert!(
            md.contains(&format!("| {m} |")),
            "{m} missing from the tables"
        );
    }
    for size in ["64 B", "64 KiB"] {
        assert!(md.contains(size), "{size} missing");
    }
    // Gaps are short numbered cells; their reasons are notes under the table.
    let line = md
        .lines()
        .find(|l| l.starts_with("| posix-mq |"))
        .expect("posix-mq row");
    assert!(line.contains("unsupported [1]"), "{line}");
    assert!(line.len() < 120, "no reason inlined in the cells: {line}");
    assert!(
        md.contains("[1] posix-mq latency 64 KiB: a POSIX queue message here holds at most fs.mqueue.msgsize_max"),
        "reasons shown as notes"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("[1] posix-mq latency 64 KiB"),
        "notes in the HTML too"
    );
    assert!(md.contains("## Machine") || md.contains("### Machine"));
    assert!(md.contains("Choosing a mechanism"));
    assert!(
        md.contains("ipc-channel on unix-seqpacket"),
        "crate overhead against its base"
    );
    let charts = [
        "latency-64B.svg",
        "latency-64KiB.svg",
        "throughput-64B.svg",
        "throughput-64KiB.svg",
        "latency.svg",
        "throughput.svg",
        "cpu.svg",
    ];
    for chart in charts {
        assert!(
            md.contains(&format!("]({chart})")),
            "{chart} not referenced"
        );
        let svg = std::fs::read_to_string(dir.join(chart)).unwrap();
        check_chart(chart, &svg);
        assert!(
            svg.contains(">pipe<") && svg.contains(">shm-futex<"),
            "{chart} labels its mechanisms directly"
        );
    }
    // The 64 B latency dot plot is sorted fastest first (base.json: unix-stream leads).
    let dots = std::fs::read_to_string(dir.join("latency-64B.svg")).unwrap();
    assert!(
        dots.find(">unix-stream<").unwrap() < dots.find(">tcp<").unwrap(),
        "sorted by p50"
    );
    let lines = std::fs::read_to_string(dir.join("latency.svg")).unwrap();
    assert!(
        lines.contains("posix-mq (unsupported from 64 KiB)"),
        "a line that stops at a limit says so"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), charts.len(), "charts inline");
    assert!(
        !html.contains("<figcaption"),
        "each title is printed once, in its chart"
    );
    assert!(!html.contains("<script"), "readable without JavaScript");
    for fetch in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(fetch), "self-contained: found {fetch}");
    }
}

/// A chart a person can read: well-formed SVG, labelled ticks whose values span the data it
/// declares, no text under 12 px, and a tooltip with the numbers on every mark.
fn check_chart(name: &str, svg: &str) {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{name} is not XML: {e}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let num = |n: roxmltree::Node, a: &str| -> f64 {
        n.attribute(a)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {a} missing"))
    };
    let (lo, hi) = (num(root, "data-lo"), num(root, "data-hi"));
    let ticks: Vec<f64> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("tick"))
        .map(|n| {
            assert!(
                !n.text().unwrap_or("").trim().is_empty(),
                "{name}: empty tick"
            );
            num(n, "data-v")
        })
        .collect();
    assert!(ticks.len() >= 2, "{name}: {ticks:?}");
    let (tmin, tmax) = ticks
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &t| (a.min(t), b.max(t)));
    assert!(
        tmin <= lo && tmax >= hi,
        "{name}: ticks {tmin}..{tmax} do not span {lo}..{hi}"
    );
    for n in doc.descendants().filter(|n| n.has_attribute("font-size")) {
        assert!(num(n, "font-size") >= 12.0, "{name}: text under 12 px");
    }
    let marks = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "circle")
        .count();
    let titles = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "title")
        .count();
    assert!(
        marks > 0 && titles > marks / 2,
        "{name}: {marks} marks, {titles} tooltips"
    );
}

#[test]
fn two_runs_are_merged_with_their_differences() {
    let s = Scratch::new("report2");
    let dir = s.root.join("r");
    let (code, _, err) = ipcbench(&[
        "report",
        &fixture("base.json"),
        &fixture("improved.json"),
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("Differences between the runs"));
    assert!(
        md.contains("(0.50x)") || md.contains("(0.49x)") || md.contains("(0.51x)"),
        "pipe's halved latency shows"
    );
    assert!(dir.join("latency-2.svg").exists());
}

#[test]
fn compare_reports_improvements_and_passes() {
    let (code, out, _) = ipcbench(&[
        "compare",
        &fixture("base.json"),
        &fixture("improved.json"),
        "--fail-on-regression",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("better") && !out.contains("WORSE"), "{out}");
    assert!(!out.contains("WARNING"));
}

#[test]
fn compare_fails_on_regression_only_when_asked() {
    let (code, out, _) = ipcbench(&["compare", &fixture("base.json"), &fixture("regressed.json")]);
    assert_eq!(code, 0);
    assert!(row_marked(&out, "tcp", "", "WORSE"), "{out}");
    let (code, _, _) = ipcbench(&[
        "compare",
        &fixture("base.json"),
        &fixture("regressed.json"),
        "--fail-on-regression",
    ]);
    assert_eq!(code, 1);
    let (code, _, _) = ipcbench(&[
        "compare",
        &fixture("base.json"),
        &fixture("regressed.json"),
        "--fail-on-regression",
        "--threshold",
        "150",
    ]);
    assert_eq!(code, 0, "a doubling is within a 150% threshold");
}

#[test]
fn compare_warns_about_different_machines() {
    let (code, out, _) = ipcbench(&[
        "compare",
        &fixture("base.json"),
        &fixture("other-machine.json"),
    ]);
    assert_eq!(code, 0);
    let first = out.lines().next().unwrap_or("");
    assert!(first.starts_with("WARNING: different"), "{out}");
    assert!(out.contains("another-machine") && out.contains("Linux 5.10.0"));
}

#[test]
fn recommend_filters_by_needs_and_ranks_by_the_numbers() {
    let (code, out, err) = ipcbench(&[
        "recommend",
        "--results",
        &fixture("base.json"),
        "--need",
        "boundaries",
    ]);
    assert_eq!(code, 0, "{err}");
    for stream in ["pipe", "fifo", "tcp", "unix-stream"] {
        assert!(!ranked(&out, stream), "{stream} has no boundaries:\n{out}");
    }
    assert!(out.contains("unix-seqpacket"));
    // Ranked by p50, ascending, as in the file.
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("base.json")).unwrap()).unwrap();
    let p50 = |m: &str| {
        base["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["mechanism"] == m && r["workload"] == "latency" && r["size"] == 64)
            .and_then(|r| r["rtt_ns"]["p50"].as_u64())
            .unwrap()
    };
    let order = ranking(&out);
    assert!(order.len() >= 3, "{out}");
    assert!(
        order.windows(2).all(|w| p50(w[0]) <= p50(w[1])),
        "{order:?}"
    );
    let (code, out, _) = ipcbench(&[
        "recommend",
        "--results",
        &fixture("base.json"),
        "--pattern",
        "streaming",
        "--size",
        "60K",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("at 64 KiB (nearest measured size)"), "{out}");
    assert!(
        !out.contains("posix-mq"),
        "posix-mq did not run at 64 KiB:\n{out}"
    );
}

#[test]
fn broken_files_get_clear_errors() {
    for (file, expect) in [
        ("truncated.json", "is not a valid ipcbench results file"),
        ("wrong-schema.json", "has schema 99"),
        ("empty.json", "is empty"),
        ("missing.json", "cannot read"),
    ] {
        let path = fixture(file);
        for args in [
            vec![
                "report",
                path.as_str(),
                "-o",
                "/nonexistent-dir-never-created",
            ],
            vec!["compare", path.as_str(), path.as_str()],
            vec!["recommend", "--results", path.as_str()],
        ] {
            let (code, _, err) = ipcbench(&args);
            assert_eq!(code, 1, "{args:?}: {err}");
            assert!(
                err.contains(expect) && err.contains(file),
                "{args:?}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

/// base.json changed by `edit` and written into the scratch directory as `name`.
fn variant(s: &Scratch, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("base.json")).unwrap()).unwrap();
    edit(&mut v);
    let p = s.root.join(name);
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
    p.display().to_string()
}

fn case<'a>(
    v: &'a mut serde_json::Value,
    mech: &str,
    workload: &str,
    size: u64,
) -> &'a mut serde_json::Value {
    v["results"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["mechanism"] == mech && r["workload"] == workload && r["size"] == size)
        .unwrap_or_else(|| panic!("{mech} {workload} {size} in base.json"))
}

#[test]
fn compare_counts_a_case_that_failed_or_vanished_as_a_regression() {
    let s = Scratch::new("compare-lost");
    let broken = variant(&s, "broken.json", |v| {
        let r = case(v, "pipe", "latency", 64);
        r["status"] = "error".into();
        r["reason"] = "pipe: the peer died".into();
        r.as_object_mut().unwrap().remove("rtt_ns");
    });
    let (code, out, _) = ipcbench(&[
        "compare",
        &fixture("base.json"),
        &broken,
        "--fail-on-regression",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("REGRESSION: pipe latency 64 B: failed: pipe: the peer died"),
        "{out}"
    );
    let missing = variant(&s, "missing.json", |v| {
        v["results"]
            .as_array_mut()
            .unwrap()
            .retain(|r| !(r["mechanism"] == "tcp" && r["workload"] == "throughput"));
    });
    let (code, out, _) = ipcbench(&[
        "compare",
        &fixture("base.json"),
        &missing,
        "--fail-on-regression",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("REGRESSION: tcp throughput 64 B: missing"),
        "{out}"
    );
    let (code, out, _) = ipcbench(&[
        "compare",
        &fixture("base.json"),
        &missing,
        "--fail-on-regression",
        "--allow-missing",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("missing (allowed): tcp throughput 64 B"),
        "{out}"
    );
}

#[test]
fn compare_judges_by_intervals_when_both_runs_have_repetitions() {
    let s = Scratch::new("compare-ci");
    // OLD: pipe p50 30.8 µs in [28, 34]; NEW: p50 doubled.
    let with = |ci: [f64; 2], p50: u64| {
        move |v: &mut serde_json::Value| {
            v["config"]["repeat"] = 5.into();
            let r = case(v, "pipe", "latency", 64);
            r["rtt_ns"]["p50"] = p50.into();
            r["p50_ci"] = serde_json::json!(ci);
            r["ci_level"] = 0.9375.into();
        }
    };
    let old = variant(&s, "old.json", with([28_000.0, 34_000.0], 30_831));
    let noisy = variant(&s, "noisy.json", with([30_000.0, 90_000.0], 61_662));
    let (code, out, _) = ipcbench(&["compare", &old, &noisy, "--fail-on-regression"]);
    assert_eq!(code, 0, "overlapping intervals are noise:\n{out}");
    assert!(out.contains("intervals overlap"), "{out}");
    let worse = variant(&s, "worse.json", with([58_000.0, 66_000.0], 61_662));
    let (code, out, _) = ipcbench(&["compare", &old, &worse, "--fail-on-regression"]);
    assert_eq!(code, 1, "{out}");
    assert!(row_marked(&out, "pipe", "p50", "WORSE"), "{out}");
}

#[test]
fn compare_judges_lock_rates_and_leaves_single_run_p99_unjudged() {
    let s = Scratch::new("compare-lock");
    let lock = |ops: f64, slow_tail: bool| {
        move |v: &mut serde_json::Value| {
            v["results"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                "mechanism": "futex", "family": "sync", "workload": "lock", "size": 0,
                "messages": 1000, "warmup": 0, "status": "ok",
                "lock": { "duration_ns": 200000000u64, "ops_per_sec": ops,
                          "parent_ops_per_sec": ops / 2.0, "peer_ops_per_sec": ops / 2.0,
                          "fairness": 0.5, "counter": 10, "writes": 10,
                          "uncontended_ns_per_pair": 4.0 } }));
            // A tail that tripled in one run: shown, not judged.
            let r = case(v, "tcp", "latency", 64);
            if slow_tail {
                let p99 = r["rtt_ns"]["p99"].as_u64().unwrap();
                r["rtt_ns"]["p99"] = (p99 * 3).into();
            }
        }
    };
    let old = variant(&s, "old.json", lock(20e6, false));
    let new = variant(&s, "new.json", lock(5e6, true));
    let (code, out, _) = ipcbench(&["compare", &old, &new, "--fail-on-regression"]);
    assert_eq!(code, 1, "{out}");
    assert!(row_marked(&out, "futex", "locks/s", "WORSE"), "{out}");
    assert!(row_marked(&out, "tcp", "p99", "not judged)"), "{out}");
    assert!(out.contains("Verdicts rest on single runs"), "{out}");
}

#[test]
fn a_json_value_that_is_not_a_results_object_is_named_for_what_it_is() {
    let s = Scratch::new("array");
    let p = s.root.join("array.json");
    std::fs::write(&p, "[1, 2]").unwrap();
    let (code, _, err) = ipcbench(&["compare", p.to_str().unwrap(), p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("it holds an array"), "{err}");
    assert!(!err.contains("schema missing"), "{err}");
}

#[test]
fn recommend_names_needs_as_typed_and_admits_ties() {
    let (code, out, err) = ipcbench(&[
        "recommend",
        "--results",
        &fixture("base.json"),
        "--need",
        "cross-host,pass-fds",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("needing cross-host, pass-fds"), "{out}");
    assert!(!out.contains("CrossHost"), "{out}");
    // base.json's 64 B round trips lie within 20% of one another for the top five.
    let (_, out, _) = ipcbench(&["recommend", "--results", &fixture("base.json")]);
    assert!(out.contains("  1= unix-stream"), "{out}");
    assert!(out.contains("  1= pipe"), "{out}");
    assert!(out.contains("share a rank"), "{out}");
    assert!(
        out.contains("µs per round trip"),
        "CPU is per round trip: {out}"
    );
}

#[test]
fn recommend_says_when_the_asked_size_was_not_measured_and_drops_what_cannot_carry_it() {
    let (code, out, err) = ipcbench(&[
        "recommend",
        "--results",
        &fixture("base.json"),
        "--pattern",
        "streaming",
        "--size",
        "3M",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("nothing was measured near 3 MiB"), "{out}");
    assert!(out.contains("ipcbench run --sizes 3MiB"), "{out}");
    assert!(
        !ranked(&out, "shm-futex"),
        "a 2 MiB ring cannot hold 3 MiB:\n{out}"
    );
    assert!(
        out.contains("shm-futex: a message of 3145728 bytes does not fit"),
        "{out}"
    );
}

#[test]
fn recommend_lowest_cpu_leaves_out_what_busy_waits() {
    let s = Scratch::new("lowest-cpu");
    let with_spin = variant(&s, "spin.json", |v| {
        let mut spin = case(v, "shm-futex", "throughput", 65536).clone();
        spin["mechanism"] = "shm-spin".into();
        spin["cpu"]["user_ns_per_msg"] = 1.0.into();
        spin["cpu"]["sys_ns_per_msg"] = 0.0.into();
        v["results"].as_array_mut().unwrap().push(spin);
    });
    let (code, out, err) = ipcbench(&[
        "recommend",
        "--results",
        &with_spin,
        "--pattern",
        "streaming",
        "--size",
        "64K",
        "--need",
        "lowest-cpu",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!ranked(&out, "shm-spin"), "{out}");
    assert!(out.contains("shm-spin: busy-waits"), "{out}");
}

#[test]
fn a_calibration_loop_is_set_beside_the_mechanism_it_calibrates() {
    let s = Scratch::new("calibrates");
    let with_raw = variant(&s, "raw.json", |v| {
        let mut raw = case(v, "pipe", "latency", 64).clone();
        raw["mechanism"] = "pipe-raw".into();
        raw["family"] = "calibration".into();
        raw["rtt_ns"]["p50"] = 30_000.into();
        v["results"].as_array_mut().unwrap().push(raw);
    });
    let dir = s.root.join("r");
    let (code, _, err) = ipcbench(&["report", &with_raw, "-o", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("harness cost at 64 B: `pipe` p50 30.8 µs against `pipe-raw`"),
        "{md}"
    );
}

#[test]
fn compare_judges_a_load_sweep_by_its_knee() {
    let s = Scratch::new("compare-load");
    let with_knee = |knee: f64| {
        move |v: &mut serde_json::Value| {
            v["results"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                "mechanism": "pipe", "family": "message-passing", "workload": "load", "size": 64,
                "messages": 1000, "warmup": 100, "status": "ok",
                "load": { "closed_loop_max_per_sec": 90000.0, "slo_ns": 1000000u64,
                          "knee_per_sec": knee, "points": [] } }));
        }
    };
    let old = variant(&s, "old.json", with_knee(80_000.0));
    let new = variant(&s, "new.json", with_knee(20_000.0));
    let (code, out, _) = ipcbench(&["compare", &old, &new, "--fail-on-regression"]);
    assert_eq!(code, 1, "{out}");
    assert!(row_marked(&out, "pipe", "knee/s", "WORSE"), "{out}");
}

#[test]
fn compare_judges_a_setup_case_by_its_fresh_channels_per_second() {
    let s = Scratch::new("compare-setup");
    let with_rate = |per_sec: f64| {
        move |v: &mut serde_json::Value| {
            let l = serde_json::json!({ "min": 1, "p50": 10000, "p90": 10000, "p99": 10000,
                "p999": 10000, "max": 10000, "mean": 1.0, "stddev": 1.0 });
            v["results"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                "mechanism": "tcp", "family": "sockets", "workload": "setup", "size": 64,
                "messages": 200, "warmup": 20, "status": "ok",
                "setup": { "connect_ns": l, "accept_ns": l, "first_rtt_ns": l,
                           "teardown_ns": l, "close_seen": true, "per_sec": per_sec,
                           "passes_descriptors": false } }));
        }
    };
    let old = variant(&s, "old.json", with_rate(8_000.0));
    let new = variant(&s, "new.json", with_rate(2_000.0));
    let (code, out, _) = ipcbench(&["compare", &old, &new, "--fail-on-regression"]);
    assert_eq!(code, 1, "{out}");
    assert!(row_marked(&out, "tcp", "setups/s", "WORSE"), "{out}");
}

#[test]
fn recommend_at_a_rate_ranks_by_p99_at_that_load_and_says_what_it_cannot_answer() {
    let s = Scratch::new("recommend-rate");
    let point = |label: &str, achieved: f64, p99: u64, saturated: bool| {
        serde_json::json!({ "label": label, "offered_per_sec": achieved, "achieved_per_sec": achieved,
            "rtt_ns": { "min": 1, "p50": p99 / 2, "p90": p99, "p99": p99, "p999": p99, "max": p99,
                        "mean": 1.0, "stddev": 1.0 },
            "send_lag_p99_ns": 100, "saturated": saturated })
    };
    let sweeps = variant(&s, "sweeps.json", |v| {
        for (m, points) in [
            ("pipe", vec![point("50%", 50_000.0, 400_000, false)]),
            ("unix-stream", vec![point("50%", 48_000.0, 30_000, false)]),
            ("tcp", vec![point("50%", 51_000.0, 90_000, true)]),
            ("fifo", vec![point("50%", 5_000.0, 20_000, false)]),
        ] {
            v["results"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                "mechanism": m, "workload": "load", "size": 64, "messages": 100, "warmup": 10,
                "status": "ok", "load": { "closed_loop_max_per_sec": 100000.0, "slo_ns": 1000000u64,
                "knee_per_sec": null, "points": points } }));
        }
    });
    let (code, out, err) = ipcbench(&["recommend", "--results", &sweeps, "--rate", "50k"]);
    assert_eq!(code, 0, "{err}");
    let order = ranking(&out);
    assert_eq!(order, ["unix-stream", "pipe"], "{out}");
    assert!(out.contains("tcp: saturated"), "{out}");
    assert!(
        out.contains("fifo: no measured point near 50000/s"),
        "{out}"
    );
    let (code, _, err) = ipcbench(&[
        "recommend",
        "--results",
        &fixture("base.json"),
        "--rate",
        "50k",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no load sweep"), "{err}");
}

/// A fan-in latency case of `clients` clients whose worst client has `p99` ns.
fn fan_in_case(mech: &str, clients: usize, p99: u64, per_sec: f64) -> serde_json::Value {
    let each = serde_json::json!({ "messages": 1000, "msgs_per_sec": per_sec / clients as f64,
        "p50_ns": p99 / 2, "p99_ns": p99 });
    serde_json::json!({
        "mechanism": mech, "workload": "latency", "size": 64, "clients": clients,
        "messages": 1000 * clients, "warmup": 0, "status": "ok",
        "rtt_ns": { "min": 1, "p50": p99 / 2, "p90": p99, "p99": p99, "p999": p99, "max": p99,
                    "mean": 1.0, "stddev": 1.0 },
        "fan_in": { "clients": clients, "msgs_per_sec": per_sec, "fairness": 0.9,
                    "window_ns": 300000000u64, "per_client": vec![each; clients] } })
}

#[test]
fn fan_in_cases_are_ranked_compared_and_kept_apart_from_one_to_one_cases() {
    let s = Scratch::new("fan-in-report");
    let with = |unix_p99: u64, unix_rate: f64| {
        move |v: &mut serde_json::Value| {
            let results = v["results"].as_array_mut().unwrap();
            results.push(fan_in_case("unix-stream", 8, unix_p99, unix_rate));
            results.push(fan_in_case("tcp", 8, 150_000, 100_000.0));
            results.push(fan_in_case("posix-mq", 2, 10_000, 100_000.0));
        }
    };
    let old = variant(&s, "old.json", with(60_000, 200_000.0));
    let new = variant(&s, "new.json", with(60_000, 50_000.0));
    // The report has the fan-in table and chart; the one-to-one tables keep their rows.
    let dir = s.root.join("report");
    let (code, _, err) = ipcbench(&["report", &old, "-o", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("### Fan-in, latency at 64 B"), "{md}");
    assert!(
        md.contains("| unix-stream | - | 200,000 / 60.0 / 0.90 |"),
        "{md}"
    );
    let svg = std::fs::read_to_string(dir.join("fan-in-64B.svg")).unwrap();
    check_chart("fan-in-64B.svg", &svg);
    assert!(svg.contains("unix-stream with 8 clients"), "{svg}");
    let (code, out, err) = ipcbench(&["recommend", "--results", &old, "--clients", "8"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ranking(&out), ["unix-stream", "tcp"], "{out}");
    assert!(out.contains("worst client's p99 60.0 µs"), "{out}");
    let (code, _, err) = ipcbench(&["recommend", "--results", &old, "--clients", "4"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no fan-in latency run with 4 clients in the results (measured: 2, 8)"),
        "{err}"
    );
    // One-to-one rankings ignore the fan-in cases (posix-mq's 10 µs with 2 clients).
    let (_, plain, _) = ipcbench(&["recommend", "--results", &old]);
    let (_, base, _) = ipcbench(&["recommend", "--results", &fixture("base.json")]);
    assert_eq!(plain, base);
    // compare matches fan-in cases by their client count and judges the aggregate.
    let (code, out, _) = ipcbench(&["compare", &old, &new, "--fail-on-regression"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("unix-stream")
            && l.contains("latency/8c")
            && l.contains("trips/s")
            && l.ends_with("WORSE")),
        "{out}"
    );
}

#[cfg(feature = "grpc")]
#[test]
fn recommend_need_rpc_ranks_only_call_frameworks_and_prices_each_against_its_socket() {
    let s = Scratch::new("recommend-rpc");
    s.sweep(&[
        "--mechanisms",
        "unix-stream,grpc-unix",
        "--workloads",
        "latency",
        "--sizes",
        "64",
        "--messages",
        "200",
    ]);
    let json = s.json();
    let (code, out, err) = ipcbench(&[
        "recommend",
        "--results",
        json.to_str().unwrap(),
        "--need",
        "rpc",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ranking(&out), vec!["grpc-unix"], "{out}");
    assert!(out.contains(".proto contract"), "what gRPC gives: {out}");
    assert!(
        out.contains("x the p50 of unix-stream beneath it in this run"),
        "what it costs: {out}"
    );
}
