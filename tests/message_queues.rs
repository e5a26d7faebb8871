//! POSIX and System V queues are gone after a run, whether it ends normally or its peer
//! dies, as the kernel sees it: `mq_open` of the name fails, `IPC_STAT` of the id fails.

use std::time::{Duration, Instant};

use ipcbench::backends;
use ipcbench::message::Verify;
use ipcbench::placement::{Pin, Placement};
use ipcbench::session::{Session, SessionOptions};
use ipcbench::workload::latency::round_trips;
use ipcbench::workload::throughput::stream;
use nix::mqueue::{mq_open, MQ_OFlag};
use nix::sys::stat::Mode;

fn start(mechanism: &str, size: usize) -> Session {
    let opts = SessionOptions::new(
        Verify::Full,
        Placement::plan(Pin::None, None).unwrap(),
        env!("CARGO_BIN_EXE_ipcbench").into(),
        Duration::from_secs(10),
    );
    match Session::start(backends::by_id(mechanism).unwrap(), size, &opts) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn posix_queue_exists(name: &str) -> bool {
    mq_open(name, MQ_OFlag::O_RDONLY, Mode::empty(), None).is_ok()
}

fn sysv_queue_exists(id: &str) -> bool {
    let id: i32 = id.parse().unwrap();
    // SAFETY: msqid_ds is plain old data and IPC_STAT writes at most one of it.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is valid and writable for the call.
    unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) == 0 }
}

fn kill(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[test]
fn posix_queue_names_are_unlinked_once_both_sides_hold_them() {
    let mut s = start("posix-mq", 4096);
    let base = s.peer_spec().to_string();
    assert!(base.starts_with("/ipcbench-"), "{base}");
    // Unlinked already, while the run goes on.
    assert!(!posix_queue_exists(&format!("{base}-to")));
    assert!(!posix_queue_exists(&format!("{base}-from")));
    round_trips(&mut s, 100, None).unwrap();
    stream(&mut s, 100).unwrap();
    s.finish().unwrap();
}

#[test]
fn sysv_queues_are_removed_after_a_run() {
    let mut s = start("sysv-mq", 4096);
    let ids: Vec<String> = s.peer_spec().split(',').map(String::from).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|id| sysv_queue_exists(id)));
    round_trips(&mut s, 100, None).unwrap();
    stream(&mut s, 100).unwrap();
    s.finish().unwrap();
    assert!(
        ids.iter().all(|id| !sysv_queue_exists(id)),
        "{ids:?} left behind"
    );
}

#[test]
fn queues_are_removed_and_the_parent_unblocked_when_the_peer_dies() {
    for mechanism in ["posix-mq", "sysv-mq"] {
        let mut s = start(mechanism, 64);
        let spec = s.peer_spec().to_string();
        let pid = s.peer_pid().unwrap();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            kill(pid);
        });
        let t = Instant::now();
        let err = match round_trips(&mut s, 100_000_000, None) {
            Ok(_) => panic!("{mechanism}: the run survived its peer"),
            Err(e) => e.to_string(),
        };
        killer.join().unwrap();
        assert!(err.contains("killed by signal 9"), "{mechanism}: {err}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{mechanism}: {:?}",
            t.elapsed()
        );
        drop(s);
        if mechanism == "sysv-mq" {
            assert!(spec.split(',').all(|id| !sysv_queue_exists(id)), "{spec}");
        } else {
            assert!(!posix_queue_exists(&format!("{spec}-to")));
        }
    }
}

#[test]
fn posix_queue_descriptors_are_closed_so_many_runs_fit_the_rlimit() {
    // Each run charges two 10 x 8 KiB queues to RLIMIT_MSGQUEUE (800 KiB by default) until
    // every descriptor is closed: ten runs in one process only fit if nothing leaks.
    for _ in 0..10 {
        let mut s = start("posix-mq", 8192);
        round_trips(&mut s, 10, None).unwrap();
        s.finish().unwrap();
    }
}
