//! Synchronisation primitives between two processes: every one completes its hand-off and
//! lock workloads with the counter check passing, a lock that excludes nothing is caught,
//! a dead mutex holder is recovered from (EOWNERDEAD), and nothing is left behind.

mod common;

use std::time::Duration;

use common::{text, Scratch};
use ipcbench::backends::sync;
use ipcbench::message::Verify;
use ipcbench::placement::{Pin, Placement};
use ipcbench::session::{Session, SessionOptions};

#[test]
fn every_primitive_hands_off_and_locks_without_losing_an_update() {
    let s = Scratch::new("sync");
    let json = s.json();
    let out = s.run(&[
        "run",
        "--mechanisms",
        "sync",
        "--workloads",
        "handoff,lock",
        "--messages",
        "150",
        "--repeat",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let v = s.results();
    let results = v["results"].as_array().unwrap();
    for p in sync::REGISTRY.iter().filter(|p| !p.info().hidden) {
        let i = p.info();
        for (w, runs) in [("handoff", i.handoff), ("lock", i.lock)] {
            let r = results
                .iter()
                .find(|r| r["mechanism"] == i.id && r["workload"] == w);
            match (runs, r) {
                (true, Some(r)) => {
                    assert_eq!(r["status"], "ok", "{r}");
                    if w == "lock" {
                        let l = &r["lock"];
                        assert_eq!(l["counter"], l["writes"], "{r}");
                        assert!(l["ops_per_sec"].as_f64().unwrap() > 0.0);
                        assert!(l["uncontended_ns_per_pair"].as_f64().unwrap() > 0.0);
                    } else {
                        assert!(r["rtt_ns"]["p50"].as_u64().unwrap() > 0);
                    }
                }
                (false, None) => {}
                (runs, r) => panic!("{} {w}: expected {runs}, got {r:?}", i.id),
            }
        }
    }
    assert!(text(&out.stdout).contains("Synchronisation between processes"));
    s.audit();
}

#[test]
fn a_lock_that_excludes_nothing_loses_updates_and_fails() {
    let s = Scratch::new("no-lock");
    let json = s.json();
    let out = s.run(&[
        "run",
        "--mechanisms",
        "no-lock",
        "--workloads",
        "lock",
        "--messages",
        "300",
        "--repeat",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let r = &s.results()["results"][0];
    assert_eq!(r["status"], "error", "{r}");
    assert!(
        r["reason"].as_str().unwrap().contains("lost updates"),
        "{r}"
    );
    s.audit();
}

#[test]
fn a_dead_mutex_holder_is_recovered_from_not_waited_for() {
    let opts = SessionOptions::new(
        Verify::Cheap,
        Placement::plan(Pin::None, None).unwrap(),
        env!("CARGO_BIN_EXE_ipcbench").into(),
        Duration::from_secs(10),
    );
    let mut s = Session::start(sync::by_id("pthread-mutex").unwrap(), 0, &opts)
        .unwrap_or_else(|e| panic!("{e}"));
    s.peer_holds_lock().unwrap_or_else(|e| panic!("{e}"));
    let pid = s.peer_pid().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let err = match s.lock_once() {
        Ok(()) => panic!("the holder's death went unnoticed"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("died holding the mutex"), "{err}");
    // Recovered: the mutex was marked consistent and works again.
    s.lock_once()
        .unwrap_or_else(|e| panic!("not recovered: {e}"));
}
