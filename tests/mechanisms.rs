//! Every mechanism carries 1 B, 4 KiB and 1 MiB messages both ways with every byte checked,
//! between two real processes, and leaves no name behind.

mod common;

use common::{text, Scratch};

fn sweep(mechanism: &str) {
    let s = Scratch::new(mechanism);
    let json = s.json();
    let out = s.run(&[
        "run",
        "--mechanisms",
        mechanism,
        "--sizes",
        "1,4K,1M",
        "--messages",
        "40",
        "--verify",
        "full",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{mechanism}: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let v = s.results();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 6, "3 sizes x 2 workloads");
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
    }
    assert_eq!(
        s.leftovers(),
        Vec::<String>::new(),
        "{mechanism} left names behind"
    );
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
