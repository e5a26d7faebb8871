//! Fan-in (`--clients N`): N client processes against one server thread, on every kind of
//! many-to-one channel (accepted connections, one shared queue, one datagram socket, ring
//! pairs under one futex wait). Each client's messages are checked by the server; each
//! client's share and tail are reported; nothing is left afterwards.

mod common;

use common::{text, Scratch};

#[test]
fn every_client_is_served_counted_and_placed_and_nothing_is_left() {
    let s = Scratch::new("fan-in");
    let json = s.json();
    let out = s.run(&[
        "run",
        "--quick",
        "--mechanisms",
        "unix-stream,tcp,unix-dgram,udp,posix-mq,sysv-mq,fifo,shm-futex,shm-eventfd,ipc-channel,shm-posix-sem",
        "--sizes",
        "64",
        "--workloads",
        "latency,throughput",
        "--clients",
        "3",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let v = s.results();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 22);
    for r in results {
        let (m, w) = (
            r["mechanism"].as_str().unwrap(),
            r["workload"].as_str().unwrap(),
        );
        assert_eq!(r["clients"], 3, "{r}");
        let reason = r["reason"].as_str().unwrap_or_default();
        match (m, w) {
            ("shm-posix-sem", _) => {
                assert_eq!(r["status"], "unsupported", "{r}");
                assert!(reason.contains("--clients: a server waits"), "{reason}");
                continue;
            }
            _ => assert_eq!(r["status"], "ok", "{m} {w}: {reason}"),
        }
        let f = &r["fan_in"];
        assert_eq!(f["clients"], 3, "{r}");
        let per = f["per_client"].as_array().unwrap();
        assert_eq!(per.len(), 3, "{r}");
        let total: u64 = per.iter().map(|c| c["messages"].as_u64().unwrap()).sum();
        // Only datagrams may lose messages, and then they are counted.
        if !m.ends_with("dgram") && m != "udp" {
            assert!(r.get("lost").is_none(), "{r}");
        }
        assert!(
            per.iter().all(|c| c["messages"].as_u64().unwrap() > 0),
            "{r}"
        );
        assert_eq!(r["messages"].as_u64().unwrap(), total, "{r}");
        let fair = f["fairness"].as_f64().unwrap();
        assert!(fair > 0.0 && fair <= 1.0, "{r}");
        assert!(f["msgs_per_sec"].as_f64().unwrap() > 0.0, "{r}");
        // Placement is stated: pinned runs name the server's CPU and every client's.
        if v["config"]["pin"] != "none" {
            assert!(f["server_cpu"].is_u64(), "{r}");
            assert_eq!(f["client_cpus"].as_array().unwrap().len(), 3, "{r}");
        }
        match w {
            "latency" => {
                assert!(r["rtt_ns"]["p99"].as_u64().unwrap() > 0, "{r}");
                assert!(per.iter().all(|c| c["p99_ns"].as_u64().unwrap() > 0), "{r}");
            }
            _ => assert!(
                r["throughput"]["msgs_per_sec"].as_f64().unwrap() > 0.0,
                "{r}"
            ),
        }
    }
    // The fan-in cases have their own tables; the one-to-one tables do not show them.
    assert!(stdout.contains("Fan-in, latency at 64 B"), "{stdout}");
    assert!(stdout.contains("Fan-in, throughput at 64 B"), "{stdout}");
    assert!(
        !stdout.contains("Round-trip latency, p50 / p99"),
        "{stdout}"
    );
    s.audit();
}

#[test]
fn messages_too_small_to_carry_their_client_are_refused_by_name() {
    let s = Scratch::new("fan-in-small");
    let v = s.sweep(&[
        "--quick",
        "--mechanisms",
        "unix-stream",
        "--sizes",
        "4",
        "--workloads",
        "latency",
        "--clients",
        "2",
        "--no-report",
    ]);
    let r = &v["results"][0];
    assert_eq!(r["status"], "unsupported", "{r}");
    assert!(
        r["reason"].as_str().unwrap().contains("at least 8 bytes"),
        "{r}"
    );
    s.audit();
}

#[test]
fn every_byte_is_checked_and_stamped_requests_give_one_way_times() {
    // Open-loop and streaming clients stamp each request with its send time; the server
    // checks every other byte of it under --verify full and records the one-way time.
    let s = Scratch::new("fan-in-full");
    let v = s.sweep(&[
        "--quick",
        "--verify",
        "full",
        "--mechanisms",
        "unix-stream,shm-futex",
        "--sizes",
        "64,4K",
        "--workloads",
        "throughput,rate",
        "--rate",
        "5000",
        "--clients",
        "2",
        "--no-report",
    ]);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 8);
    for r in results {
        assert_eq!(r["status"], "ok", "{r}");
        assert!(r["one_way_ns"]["p50"].as_u64().unwrap() > 0, "{r}");
        if r["workload"] == "rate" {
            assert_eq!(r["rate"]["offered_per_sec"], 5000.0, "{r}");
            assert_eq!(r["fan_in"]["per_client"].as_array().unwrap().len(), 2);
        }
    }
    s.audit();
}
