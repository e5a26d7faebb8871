//! The verifier can fail: mechanisms that lose or damage one message on purpose are
//! reported as errors naming the mechanism and the message, never as fast results.

mod common;

use common::{text, Scratch};

/// Runs one faulty case and returns its result object; the run must exit 1.
fn faulty(mechanism: &str, workload: &str, size: &str, verify: &str) -> serde_json::Value {
    let s = Scratch::new(mechanism);
    let json = s.json();
    let out = s.run(&[
        "run",
        "--mechanisms",
        mechanism,
        "--workloads",
        workload,
        "--sizes",
        size,
        "--messages",
        "30",
        "--verify",
        verify,
        "--timeout",
        "20",
        "--json",
        json.to_str().unwrap(),
    ]);
    let v = s.results();
    let r = v["results"][0].clone();
    if r["status"] == "error" {
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("ERROR [1]"),
            "{}",
            text(&out.stdout)
        );
    }
    s.audit();
    r
}

fn reason(r: &serde_json::Value) -> String {
    assert_eq!(r["status"], "error", "{r}");
    assert!(
        r.get("rtt_ns").is_none() && r.get("throughput").is_none(),
        "no numbers for a failed run: {r}"
    );
    r["reason"].as_str().unwrap().to_string()
}

#[test]
fn a_lost_message_in_a_stream_is_caught_by_the_receiver() {
    let why = reason(&faulty("fault-drop", "throughput", "64", "cheap"));
    assert!(why.starts_with("fault-drop:"), "{why}");
    assert!(why.contains("expected message #5, received #6"), "{why}");
}

#[test]
fn a_lost_one_byte_message_is_caught_too() {
    let why = reason(&faulty("fault-drop", "throughput", "1", "cheap"));
    assert!(why.contains("expected message #5"), "{why}");
}

#[test]
fn a_corrupted_request_is_caught_by_the_peer() {
    let why = reason(&faulty("fault-corrupt", "latency", "4K", "cheap"));
    assert!(why.contains("the peer reported"), "{why}");
    assert!(
        why.contains("message #5 corrupted at byte offset 4095"),
        "{why}"
    );
}

#[test]
fn a_corrupted_middle_byte_needs_full_verification() {
    // The cheap check reads the head and tail words only: documented, and shown here.
    let r = faulty("fault-corrupt-middle", "throughput", "64K", "cheap");
    assert_eq!(r["status"], "ok", "{r}");
    let why = reason(&faulty("fault-corrupt-middle", "throughput", "64K", "full"));
    assert!(
        why.contains("message #5 corrupted at byte offset 32768"),
        "{why}"
    );
}
