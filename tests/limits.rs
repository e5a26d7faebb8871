//! A size over a kernel limit is an `unsupported` result whose reason names the limit, its
//! value here and what raises it; the sweep goes on. Datagram loss is counted, not fatal.

mod common;

use common::{text, Scratch};
use ipcbench::environment::Limits;

/// Runs one mechanism at `size` and returns the reasons of its results.
fn unsupported(mechanism: &str, size: u64) -> Vec<String> {
    let s = Scratch::new(mechanism);
    let json = s.json();
    let out = s.run(&[
        "run",
        "--mechanisms",
        mechanism,
        "--sizes",
        &format!("1,{size}"),
        "--messages",
        "20",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "unsupported sizes are not failures: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("unsupported [1]"),
        "{}",
        text(&out.stdout)
    );
    let v = s.results();
    let mut reasons = Vec::new();
    for r in v["results"].as_array().unwrap() {
        if r["size"] == 1 {
            assert_eq!(r["status"], "ok", "the sweep went on: {r}");
        } else {
            assert_eq!(r["status"], "unsupported", "{r}");
            reasons.push(r["reason"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(reasons.len(), 2);
    reasons
}

#[test]
fn posix_mq_names_msgsize_max() {
    let max = Limits::read().mq_msgsize_max.expect("readable here");
    for why in unsupported("posix-mq", max + 1) {
        assert!(
            why.contains(&format!("fs.mqueue.msgsize_max = {max}")),
            "{why}"
        );
        assert!(why.contains("sysctl -w fs.mqueue.msgsize_max="), "{why}");
    }
}

#[test]
fn sysv_mq_names_msgmax() {
    let max = Limits::read().msgmax.expect("readable here");
    for why in unsupported("sysv-mq", max + 1) {
        assert!(why.contains(&format!("kernel.msgmax = {max}")), "{why}");
        assert!(why.contains("sysctl -w kernel.msgmax="), "{why}");
    }
}

#[test]
fn udp_names_the_protocol_limit() {
    for why in unsupported("udp", 65_508) {
        assert!(why.contains("65507 bytes of payload"), "{why}");
        assert!(why.contains("no sysctl"), "{why}");
    }
}

#[test]
fn unix_dgram_names_wmem_max() {
    let max = Limits::read().wmem_max.expect("readable here");
    if max + 64 > 256 << 20 {
        return; // this machine allows every size the tool accepts
    }
    for why in unsupported("unix-dgram", max) {
        assert!(why.contains(&format!("net.core.wmem_max = {max}")), "{why}");
    }
}

#[test]
fn udp_loss_is_counted_and_the_run_ends() {
    // Both processes on one CPU and a tiny receive buffer: the sender fills the buffer
    // during its time slice and the kernel drops the rest.
    let s = Scratch::new("udp-loss");
    let json = s.json();
    let out = s.run(&[
        "run",
        "--mechanisms",
        "udp",
        "--workloads",
        "throughput",
        "--sizes",
        "1K",
        "--messages",
        "20000",
        "--pin",
        "same",
        "--socket-rcvbuf",
        "4K",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r = s.results()["results"][0].clone();
    assert_eq!(r["status"], "ok", "{r}");
    let (delivered, lost) = (
        r["delivered"].as_u64().unwrap(),
        r["lost"].as_u64().unwrap(),
    );
    assert!(lost > 0, "{r}");
    assert_eq!(delivered + lost, 20_000);
    let loss = r["loss"].as_f64().unwrap();
    assert!((loss - lost as f64 / 20_000.0).abs() < 1e-9);
    assert!(r["throughput"]["bytes_per_sec"].as_f64().unwrap() > 0.0);
    assert!(text(&out.stdout).contains("lost"), "{}", text(&out.stdout));
}
