//! A peer that cannot start, exits early or dies mid-run is reported with its exit status,
//! promptly, and never hangs the parent.

use std::time::{Duration, Instant};

use ipcbench::backends;
use ipcbench::message::Verify;
use ipcbench::placement::{Pin, Placement};
use ipcbench::session::{Session, SessionOptions};
use ipcbench::workload::latency::round_trips;
use ipcbench::workload::throughput::stream;

const EXE: &str = env!("CARGO_BIN_EXE_ipcbench");

fn failure<T>(r: Result<T, ipcbench::error::Error>) -> String {
    match r {
        Ok(_) => panic!("expected a failure"),
        Err(e) => e.to_string(),
    }
}

fn start(exe: &str, mechanism: &str) -> Result<Session, ipcbench::error::Error> {
    let m = backends::by_id(mechanism).unwrap();
    let opts = SessionOptions::new(
        Verify::Cheap,
        Placement::plan(Pin::None, None).unwrap(),
        exe.into(),
        Duration::from_secs(10),
    );
    Session::start(m, 64, &opts)
}

fn kill_later(pid: u32, after: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    })
}

#[test]
fn a_missing_peer_executable_is_named() {
    let err = failure(start("/nonexistent/ipcbench", "pipe"));
    assert!(
        err.contains("cannot start the peer process /nonexistent/ipcbench"),
        "{err}"
    );
}

#[test]
fn a_peer_that_exits_at_once_is_reported_with_its_status() {
    let t = Instant::now();
    let err = failure(start("/bin/false", "unix-stream"));
    assert!(err.contains("exited with status 1"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn a_peer_killed_between_phases_is_reported_with_its_signal() {
    for mechanism in ["pipe", "fifo", "unix-stream", "tcp"] {
        let mut s = start(EXE, mechanism).unwrap();
        round_trips(&mut s, 10, None).unwrap();
        kill_later(s.peer_pid().unwrap(), Duration::ZERO)
            .join()
            .unwrap();
        let err = failure(round_trips(&mut s, 1000, None));
        assert!(
            err.contains("killed by signal 9 (SIGKILL)"),
            "{mechanism}: {err}"
        );
    }
}

#[test]
fn a_peer_killed_during_timing_is_reported_promptly() {
    for mechanism in backends::all().map(|m| m.info().id) {
        let mut s = start(EXE, mechanism).unwrap();
        let killer = kill_later(s.peer_pid().unwrap(), Duration::from_millis(100));
        let t = Instant::now();
        // Far more round trips than fit in 100 ms: the kill lands mid-phase.
        let err = failure(round_trips(&mut s, 100_000_000, None));
        killer.join().unwrap();
        assert!(err.starts_with(mechanism), "{err}");
        assert!(
            err.contains("killed by signal 9 (SIGKILL)"),
            "{mechanism}: {err}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{mechanism} took {:?}",
            t.elapsed()
        );
        assert!(
            !failure(stream(&mut s, 10)).is_empty(),
            "a dead session stays dead"
        );
    }
}
