//! Every mechanism carries its messages both ways with every byte checked, between two real
//! processes, and leaves no name behind: 1 B, 4 KiB and 1 MiB where the kernel allows, and
//! 1 B and the largest size this machine's limits allow for message queues and UDP.

mod common;

use common::Scratch;

use ipcbench::environment::Limits;

fn sweep(mechanism: &str) -> Scratch {
    sweep_sizes(mechanism, "1,4K,1M")
}

/// Runs and checks one mechanism; returns the scratch (its trace) after the leak audit.
fn sweep_sizes(mechanism: &str, sizes: &str) -> Scratch {
    let s = Scratch::new(mechanism);
    let v = s.sweep(&[
        "--mechanisms",
        mechanism,
        "--sizes",
        sizes,
        "--messages",
        "40",
        "--verify",
        "full",
    ]);
    let results = v["results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        2 * sizes.split(',').count(),
        "sizes x 2 workloads"
    );
    for r in results {
        assert_eq!(r["mechanism"], mechanism);
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["messages"], 40);
        match r["workload"].as_str().unwrap() {
            "latency" => {
                let p50 = r["rtt_ns"]["p50"].as_u64().unwrap();
                assert!(p50 > 0 && p50 <= r["rtt_ns"]["max"].as_u64().unwrap());
            }
            "throughput" => {
                let bps = r["throughput"]["bytes_per_sec"].as_f64().unwrap();
                let mps = r["throughput"]["msgs_per_sec"].as_f64().unwrap();
                let size = r["size"].as_f64().unwrap();
                assert!(bps > 0.0 && (bps - mps * size).abs() <= bps * 1e-9);
            }
            other => panic!("unexpected workload {other}"),
        }
        assert!(r["cpu"]["user_ns_per_msg"].as_f64().is_some());
        let built_on = ipcbench::backends::by_id(mechanism)
            .unwrap()
            .info()
            .built_on;
        assert_eq!(
            r["built_on"].as_str(),
            built_on,
            "crates name their raw mechanism"
        );
    }
    s.audit();
    s
}

#[test]
fn pipe_carries_every_size_intact() {
    sweep("pipe");
}

#[test]
fn fifo_carries_every_size_intact_and_removes_its_fifos() {
    sweep("fifo");
}

#[test]
fn unix_stream_carries_every_size_intact_and_removes_its_socket() {
    sweep("unix-stream");
}

#[test]
fn tcp_carries_every_size_intact() {
    sweep("tcp");
}

#[test]
fn unix_seqpacket_carries_every_size_intact() {
    sweep("unix-seqpacket");
}

#[test]
fn unix_dgram_carries_every_size_intact() {
    sweep("unix-dgram");
}

#[test]
fn udp_carries_1_byte_and_its_largest_datagram() {
    sweep_sizes("udp", "1,65507");
}

#[test]
fn posix_mq_carries_1_byte_and_its_largest_message() {
    let max = Limits::read().mq_msgsize_max.unwrap_or(8192);
    sweep_sizes("posix-mq", &format!("1,{max}"));
}

#[test]
fn sysv_mq_carries_1_byte_and_its_largest_message() {
    let l = Limits::read();
    let max = l.msgmax.unwrap_or(8192).min(l.msgmnb.unwrap_or(16384));
    sweep_sizes("sysv-mq", &format!("1,{max}"));
}

#[test]
fn ipc_channel_carries_every_size_intact_and_leaves_nothing() {
    sweep("ipc-channel");
}

#[test]
fn interprocess_carries_every_size_intact_and_leaves_nothing() {
    sweep("interprocess");
}

#[test]
fn tokio_sockets_carry_every_size_intact_and_leave_nothing() {
    // The private directory of tokio-unix-stream's socket is gone after the audit.
    sweep("tokio-unix-stream");
    sweep("tokio-tcp");
}

#[test]
fn tokio_sockets_run_open_loop_and_fan_in() {
    // Open loop: the one-thread poll loop at 64 B, the split into two runtimes at 64 KiB;
    // fan-in: a connection per client in the server's epoll set.
    let s = Scratch::new("tokio-more");
    let v = s.sweep(&[
        "--mechanisms",
        "tokio-unix-stream,tokio-tcp",
        "--sizes",
        "64,64K",
        "--workloads",
        "rate",
        "--rate",
        "2000",
        "--messages",
        "200",
        "--verify",
        "full",
        "--no-report",
    ]);
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["status"], "ok", "{r}");
        assert!(r["rtt_ns"]["p50"].as_u64().unwrap() > 0, "{r}");
    }
    let v = s.sweep(&[
        "--quick",
        "--mechanisms",
        "tokio-unix-stream,tokio-tcp",
        "--sizes",
        "64",
        "--workloads",
        "latency",
        "--clients",
        "2",
        "--verify",
        "full",
        "--no-report",
    ]);
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(
            r["fan_in"]["per_client"].as_array().unwrap().len(),
            2,
            "{r}"
        );
    }
    s.audit();
}

#[cfg(feature = "grpc")]
#[test]
fn grpc_carries_every_size_intact_as_unary_calls_and_as_a_stream() {
    // Latency runs unary calls, throughput a bidirectional stream (the workload says which).
    sweep("grpc-unix");
    sweep("grpc-tcp");
}

#[cfg(feature = "dbus")]
#[test]
fn dbus_carries_every_size_intact_peer_to_peer_and_through_its_own_daemon() {
    sweep("dbus-p2p");
    // The audit covers the daemon: its directory (configuration, socket, log) and any
    // process started with that configuration.
    let s = sweep("dbus-bus");
    let trace = std::fs::read_to_string(s.root.join("trace")).unwrap();
    assert!(
        trace.contains("dbus-daemon"),
        "the daemon was recorded: {trace}"
    );
}

#[cfg(feature = "zmq")]
#[test]
fn zeromq_carries_every_size_intact_as_req_rep_and_push_pull() {
    sweep("zmq-ipc");
    sweep("zmq-tcp");
}

#[cfg(feature = "shared-memory-crate")]
#[test]
fn shared_memory_crate_carries_every_size_intact_and_leaves_nothing() {
    sweep("shared-memory");
    // The crate's segment is named under /dev/shm: gone as soon as both sides mapped it.
    let ours = format!("ipcbench-{}", std::process::id());
    let left: Vec<_> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with("-crate") && n.contains(&ours))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[cfg(feature = "iceoryx2")]
#[test]
fn iceoryx2_carries_every_size_intact_and_leaves_nothing_not_even_its_global_segment() {
    // Each run gets a private iceoryx2 domain; the audit checks every file of each traced
    // domain is gone, the global management segment included (iceoryx2 keeps that one by
    // design, so in the shared default domain it used to outlive every run).
    let shm = || -> Vec<String> {
        std::fs::read_dir("/dev/shm")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("iox2_"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = shm();
    let s = sweep("iceoryx2");
    let trace = std::fs::read_to_string(s.root.join("trace")).unwrap();
    let domains = trace
        .lines()
        .filter(|l| l.starts_with("iox2-domain "))
        .count();
    assert!(
        domains >= 6,
        "a domain per case and repetition (3 sizes x 2 workloads): {trace}"
    );
    let new: Vec<String> = shm().into_iter().filter(|n| !before.contains(n)).collect();
    assert!(new.is_empty(), "left in /dev/shm: {new:?}");
}
