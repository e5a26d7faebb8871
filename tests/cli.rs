//! Bad input exits 2 with a message saying what is allowed; the JSON file has the
//! documented shape; the peer role refuses to be run by hand.

mod common;

use common::{fixture, text, Scratch, EXE};
use std::process::{Command, Stdio};

fn usage_error(args: &[&str], expect: &str) {
    let s = Scratch::new("cli");
    let out = s.run(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(expect),
        "{args:?}: expected {expect:?} in {err}"
    );
    assert!(!s.json().exists());
}

#[test]
fn unknown_mechanism_lists_the_known_ones() {
    usage_error(
        &["run", "--mechanisms", "carrier-pigeon"],
        "choose from: all",
    );
    usage_error(&["run", "--mechanisms", "carrier-pigeon"], "unix-stream");
}

#[test]
fn repeated_mechanism_is_refused() {
    usage_error(&["run", "--mechanisms", "pipe,tcp,pipe"], "listed twice");
}

#[test]
fn bad_sizes_are_refused() {
    usage_error(&["run", "--sizes", "0"], "at least 1 byte");
    usage_error(
        &["run", "--sizes", "64,abc"],
        "use a number with optional K or M",
    );
    usage_error(&["run", "--sizes", "4Q"], "unknown unit");
    usage_error(&["run", "--sizes", "2G"], "unknown unit");
    usage_error(&["run", "--sizes", "64,64"], "listed twice");
}

#[test]
fn bad_client_counts_are_refused_before_anything_starts() {
    usage_error(&["run", "--clients", "0"], "0 clients: give at least 1");
    usage_error(
        &["run", "--clients", "100000"],
        "100000 clients is more than this machine allows: at most",
    );
    usage_error(&["run", "--clients", "many"], "not a number of clients");
    usage_error(&["run", "--clients", "2,2"], "listed twice");
    // The bound follows the descriptor limit: 100 descriptors leave room for 4 clients.
    let s = Scratch::new("cli-clients-nofile");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 100 && exec {} run --clients 8 --json {}",
            EXE,
            s.json().display()
        ))
        .current_dir(&s.root)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("at most 4 (RLIMIT_NOFILE is 100"), "{err}");
    assert!(err.contains("ulimit -n"), "{err}");
    assert!(!s.json().exists());
}

#[test]
fn zero_messages_and_bad_options_are_refused() {
    usage_error(&["run", "--messages", "0"], "--messages");
    usage_error(
        &["run", "--pin", "sideways"],
        "possible values: cross, same, none",
    );
    usage_error(
        &["run", "--workloads", "gossip"],
        "possible values: latency, throughput",
    );
    usage_error(&["run", "--timeout", "0"], "--timeout");
    usage_error(&["run", "--rate", "0"], "between 1 and 10000000");
    usage_error(&["run", "--rate=-5"], "between 1 and 10000000");
    usage_error(&["run", "--rate", "fast"], "is not a rate");
    usage_error(
        &["run", "--arrivals", "bursty"],
        "possible values: even, poisson",
    );
    usage_error(&["run", "--rates", "0"], "between 1 and 10000000");
    usage_error(&["run", "--rates=-5"], "between 1 and 10000000");
    usage_error(&["run", "--rates", "200%x"], "is not a rate");
    usage_error(&["run", "--rates", "0%"], "above 0");
    usage_error(&["run", "--slo", "5"], "has no unit");
    usage_error(&["run", "--slo", "5h"], "unknown unit");
    usage_error(
        &["run", "--pin", "cross", "--cpus", "0,0"],
        "two different CPUs",
    );
    usage_error(
        &["floor", "--pin", "cross", "--cpus", "0,0"],
        "Usage: ipcbench floor",
    );
}

#[test]
fn every_option_rejects_nonsense() {
    usage_error(&["run", "--cpus", "a,b"], "not a CPU number");
    usage_error(&["run", "--cpus", "1"], "PARENT,PEER");
    usage_error(&["run", "--timeout", "99999999"], "--timeout");
    usage_error(
        &["run", "--shm-ring", "0"],
        "a buffer size must be at least 1 byte",
    );
    usage_error(
        &["run", "--socket-rcvbuf", "0"],
        "a buffer size must be at least 1 byte",
    );
    usage_error(
        &["run", "--shm-segment", "floppy"],
        "possible values: posix, sysv, memfd",
    );
    usage_error(&["run", "--socket-rcvbuf", "-1"], "unexpected argument");
    usage_error(&["run", "--socket-rcvbuf", "1X"], "unknown unit");
    usage_error(&["run", "--verify", "some"], "possible values: cheap, full");
    usage_error(&["run", "--workloads", "latency,latency"], "listed twice");
    usage_error(&["run", "--mechanisms", ""], "unknown mechanism");
    usage_error(
        &["compare", "a.json", "b.json", "--threshold=-5"],
        "between 0 and 1000",
    );
    usage_error(&["recommend", "--need", "telepathy"], "possible values");
    usage_error(&["recommend", "--size", "0"], "at least 1 byte");
}

#[test]
fn the_results_file_has_the_documented_shape() {
    let s = Scratch::new("shape");
    let json = s.json();
    let out = s.run(&[
        "run",
        "--mechanisms",
        "pipe",
        "--sizes",
        "64",
        "--messages",
        "20",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = s.results();
    assert_eq!(v["schema"], 2);
    assert_eq!(v["tool"], "ipcbench");
    assert!(v["version"].is_string());
    let started = v["started_at"].as_str().unwrap();
    assert!(
        started.len() == 20 && started.ends_with('Z') && started.as_bytes()[10] == b'T',
        "{started}"
    );
    for key in ["kernel", "cpu_model", "logical_cpus", "hostname"] {
        assert!(v["environment"].get(key).is_some(), "environment.{key}");
    }
    assert!(v["config"]["pin"].is_string());
    assert_eq!(v["config"]["quick"], false);
    let lat = &v["results"][0];
    assert_eq!(lat["workload"], "latency");
    for key in ["min", "p50", "p90", "p99", "p999", "max", "mean", "stddev"] {
        assert!(lat["rtt_ns"][key].is_number(), "rtt_ns.{key}");
    }
    let tp = &v["results"][1];
    assert_eq!(tp["workload"], "throughput");
    assert!(tp["throughput"]["msgs_per_sec"].is_number());
    assert!(tp["throughput"]["bytes_per_sec"].is_number());
    // The table names what ran.
    let table = text(&out.stdout);
    assert!(
        table.contains("Round-trip latency") && table.contains("pipe"),
        "{table}"
    );
}

#[test]
fn the_peer_role_refuses_to_run_by_hand() {
    let out = Command::new(EXE)
        .args([
            "__peer",
            "--mechanism",
            "pipe",
            "--size",
            "64",
            "--verify",
            "cheap",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not for use by hand"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn list_shows_every_mechanism_and_the_limits() {
    let out = Command::new(EXE).arg("list").output().unwrap();
    assert!(out.status.success());
    let t = text(&out.stdout);
    for id in [
        "pipe",
        "fifo",
        "unix-stream",
        "tcp",
        "kernel.msgmnb",
        "pipe-raw",
        "pthread-mutex",
        "signal",
        // What is not measured is said, with why.
        "Solaris doors: door calls exist only on Solaris",
        "Sun RPC (ONC RPC): no maintained Rust implementation",
    ] {
        assert!(t.contains(id), "{id} missing from:\n{t}");
    }
    assert!(!t.contains("fault-"), "test mechanisms are not listed");
}

#[test]
fn a_run_writes_its_report_beside_its_json_never_into_the_default_folder() {
    let s = Scratch::new("report-beside");
    let json = s.root.join("mine.json");
    let out = s.run(&[
        "run",
        "--mechanisms",
        "pipe",
        "--sizes",
        "64",
        "--messages",
        "20",
        "--workloads",
        "latency",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(s.root.join("mine-report/report.md").exists());
    assert!(s.root.join("mine-report/report.html").exists());
    assert!(
        !s.root.join("results").exists(),
        "nothing goes to the default results/ folder of the working directory"
    );
    assert!(text(&out.stdout).contains("mine-report/report.md"));
    let err = text(&out.stderr);
    assert!(
        err.contains("ipcbench: 1 case x 3 repetitions, about"),
        "count and estimate: {err}"
    );
    assert!(
        err.contains("percentiles from so few samples"),
        "20 samples make no p99: {err}"
    );
    s.audit();
}

#[test]
fn a_selection_with_no_case_exits_2_and_writes_nothing() {
    let s = Scratch::new("no-case");
    let out = s.run(&[
        "run",
        "--mechanisms",
        "sync",
        "--workloads",
        "latency,throughput",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("selects no case") && err.contains("handoff, lock"),
        "{err}"
    );
    assert!(
        err.contains("Usage: ipcbench run"),
        "the subcommand's usage: {err}"
    );
    assert!(!s.root.join("results").exists(), "nothing written");
}

#[test]
fn output_paths_are_checked_before_anything_is_measured() {
    let s = Scratch::new("paths");
    let dir = s.root.to_str().unwrap().to_string();
    let file = s.root.join("a-file");
    std::fs::write(&file, "x").unwrap();
    for (args, expect) in [
        (vec!["--json", dir.as_str()], "is a directory"),
        (
            vec!["--json", "/nonexistent-ipcbench-dir/x.json"],
            "does not exist",
        ),
        (
            vec!["--json", "ok.json", "--report", file.to_str().unwrap()],
            "is a file",
        ),
    ] {
        let mut all = vec!["run", "--mechanisms", "pipe", "--sizes", "64"];
        all.extend(args.iter());
        let t = std::time::Instant::now();
        let out = s.run(&all);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(
            !err.contains("cases,"),
            "refused before the sweep started: {err}"
        );
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }
    assert!(
        !std::path::Path::new("/nonexistent-ipcbench-dir").exists(),
        "no directory created"
    );
    assert!(!s.root.join("ok.json").exists());
}

#[test]
fn errors_say_the_os_error_once() {
    let s = Scratch::new("os-error");
    let out = s.run(&["report", "/nonexistent-ipcbench.json"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn list_json_is_for_scripts() {
    let out = Command::new(EXE).args(["list", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list --json is JSON");
    let ids: Vec<&str> = v["mechanisms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"pipe") && ids.contains(&"shm-futex"),
        "{ids:?}"
    );
    assert!(!ids.iter().any(|i| i.starts_with("fault-")));
    assert!(v["mechanisms"][0]["boundaries"].is_boolean());
    assert!(v["primitives"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == "futex"));
    assert!(v["limits"].is_object());
    assert!(v["not_measured"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "Solaris doors" && m["why"].as_str().unwrap().contains("Linux")));
}

#[test]
fn help_texts_name_every_workload_and_both_compare_files() {
    let help = |args: &[&str]| text(&Command::new(EXE).args(args).output().unwrap().stdout);
    let top = help(&["--help"]);
    for w in ["latency", "throughput", "handoff", "lock", "rate", "load"] {
        assert!(top.contains(w), "{w} missing from --help:\n{top}");
    }
    let compare = help(&["compare", "--help"]);
    assert!(
        compare.contains("The earlier results file") && compare.contains("judged against OLD"),
        "{compare}"
    );
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    // `ipcbench list | head -1`: the reader is gone before the writer is done. The same
    // for every command that only reads results and prints.
    let s = Scratch::new("closed-pipe");
    let (base, improved) = (fixture("base.json"), fixture("improved.json"));
    let out_dir = s.root.join("report");
    let out_dir = out_dir.to_str().unwrap();
    let commands: [&[&str]; 4] = [
        &["list"],
        &["report", &base, "-o", out_dir],
        &["compare", &base, &improved],
        &["recommend", "--results", &base],
    ];
    for args in commands {
        let mut child = Command::new(EXE)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: nothing on stderr: {err}");
    }
}
