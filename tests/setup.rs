//! The `setup` workload: a fresh channel per iteration between two running processes, on
//! every kind of mechanism (named objects, listening sockets, descriptors handed over), each
//! first exchange checked, every object gone afterwards, TCP's TIME_WAIT counted.

mod common;

use common::Scratch;

/// Every kind of setup, and the frameworks whose features are on (CI builds them all).
fn mechanisms() -> String {
    let mut m = vec![
        "tcp",
        "unix-stream",
        "unix-seqpacket",
        "posix-mq",
        "sysv-mq",
        "fifo",
        "shm-futex",
        "shm-eventfd",
        "pipe",
        "udp",
        "ipc-channel",
        "interprocess",
        "tokio-tcp",
    ];
    if cfg!(feature = "http") {
        m.extend(["http-tcp", "http-unix"]);
    }
    if cfg!(feature = "grpc") {
        m.push("grpc-unix");
    }
    if cfg!(feature = "dbus") {
        m.extend(["dbus-p2p", "dbus-bus"]);
    }
    if cfg!(feature = "zmq") {
        m.extend(["zmq-ipc", "zmq-tcp"]);
    }
    m.join(",")
}

#[test]
fn every_kind_of_channel_is_made_used_and_closed_per_iteration_and_nothing_is_left() {
    let s = Scratch::new("setup");
    let mechanisms = mechanisms();
    let v = s.sweep(&[
        "--mechanisms",
        &mechanisms,
        "--sizes",
        "100",
        "--workloads",
        "setup",
        "--verify",
        "full",
        "--messages",
        "40",
    ]);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), mechanisms.split(',').count());
    for r in results {
        let m = r["mechanism"].as_str().unwrap();
        assert_eq!(r["status"], "ok", "{m}: {r}");
        assert_eq!(r["messages"], 40, "{m}");
        let x = &r["setup"];
        for k in ["connect_ns", "accept_ns", "first_rtt_ns", "teardown_ns"] {
            assert!(x[k]["p50"].as_u64().unwrap() > 0, "{m} {k}: {x}");
        }
        assert!(x["per_sec"].as_f64().unwrap() > 0.0, "{m}");
        // Anonymous pairs are handed over as descriptors; named objects are opened.
        let handed = matches!(
            m,
            "pipe" | "unix-seqpacket" | "udp" | "shm-eventfd" | "dbus-p2p"
        );
        assert_eq!(x["passes_descriptors"], handed, "{m}");
        let seen = matches!(
            m,
            "tcp"
                | "unix-stream"
                | "unix-seqpacket"
                | "fifo"
                | "pipe"
                | "interprocess"
                | "tokio-tcp"
                | "http-tcp"
                | "http-unix"
                | "grpc-unix"
                | "dbus-p2p"
                | "dbus-bus"
        );
        assert_eq!(x["close_seen"], seen, "{m}");
        // Only TCP has a TIME_WAIT to count and an abortive variant.
        let tcp = matches!(m, "tcp" | "tokio-tcp" | "http-tcp");
        assert_eq!(x["abortive"].is_object(), tcp, "{m}");
        if tcp {
            assert_eq!(x["connections"], 40, "{m}");
            // The parent closes first, so its end of each connection waits out TIME_WAIT; a
            // reset leaves none (other runs' sockets are not counted: both ports must match).
            assert!(x["time_wait"].as_u64().unwrap() >= 30, "{m}: {x}");
            let rst = &x["abortive"];
            assert!(rst["time_wait"].as_u64().unwrap() <= 4, "{m}: {rst}");
            assert!(rst["connect_ns"]["p50"].as_u64().unwrap() > 0, "{m}");
        }
        // ipcbench's records of named objects are reported apart from the mechanism's cost.
        let kept = matches!(
            m,
            "posix-mq" | "sysv-mq" | "shm-futex" | "shm-eventfd" | "dbus-bus"
        );
        assert_eq!(x["records_ns"].is_object(), kept, "{m}: {x}");
    }
    s.audit();
}

#[test]
fn the_setup_table_explains_its_columns_and_marks_handed_over_pairs() {
    let s = Scratch::new("setup-report");
    let json = s.json();
    let out = s.run(&[
        "run",
        "--mechanisms",
        "pipe,tcp",
        "--sizes",
        "64",
        "--workloads",
        "setup",
        "--messages",
        "20",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = common::text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("Setup at 64 B"), "{stdout}");
    assert!(stdout.contains("pipe †"), "{stdout}");
    assert!(stdout.contains("tcp (SO_LINGER 0)"), "{stdout}");
    assert!(stdout.contains("SCM_RIGHTS"), "{stdout}");
    let report = std::fs::read_to_string(s.root.join("out-report/report.md")).unwrap();
    assert!(report.contains("Setup at 64 B"), "{report}");
}
