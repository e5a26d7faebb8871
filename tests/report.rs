//! Reports, comparisons and recommendations from committed fixture results: every mechanism
//! and size appears, gaps carry their reasons, charts are well-formed SVG, exit codes are
//! right, and broken files get a clear error instead of a panic.

mod common;

use common::{text, Scratch, EXE};
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
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
    assert!(
        md.contains("unsupported: a POSIX queue message here holds at most fs.mqueue.msgsize_max"),
        "reasons shown in cells"
    );
    assert!(md.contains("## Machine") || md.contains("### Machine"));
    assert!(md.contains("Choosing a mechanism"));
    assert!(
        md.contains("ipc-channel on unix-seqpacket"),
        "crate overhead against its base"
    );
    for chart in ["latency.svg", "throughput.svg", "cpu.svg"] {
        assert!(
            md.contains(&format!("]({chart})")),
            "{chart} not referenced"
        );
        let svg = std::fs::read_to_string(dir.join(chart)).unwrap();
        let doc =
            roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{chart} is not XML: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(
            svg.contains("pipe") && svg.contains("shm-futex"),
            "{chart} has a legend"
        );
    }
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 3, "charts inline");
    assert!(!html.contains("<script"), "readable without JavaScript");
    for fetch in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(fetch), "self-contained: found {fetch}");
    }
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
    assert!(
        out.lines()
            .any(|l| l.starts_with("tcp") && l.ends_with("WORSE")),
        "{out}"
    );
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
        assert!(
            !out.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(stream)),
            "{stream} has no boundaries:\n{out}"
        );
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
    let order: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
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
