//! The control protocol, the parent's side: a peer that answers with a wrong version, a
//! truncated message, an unknown kind, an oversized message or garbage gives a clear error
//! naming what was expected, promptly, and the parent leaves nothing behind.
//! (One test in this binary: it sets the process's TMPDIR and trace for the leak audit.)

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::Scratch;
use ipcbench::message::Verify;
use ipcbench::placement::{Pin, Placement};
use ipcbench::session::{Session, SessionOptions};

/// A stand-in peer executable that writes `reply` on its control pipe and then waits for
/// the parent to close it.
fn fake_peer(s: &Scratch, name: &str, reply: &str) -> std::path::PathBuf {
    let path = s.root.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{reply}\ncat >/dev/null\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn the_parent_refuses_a_peer_that_does_not_speak_its_protocol() {
    let s = Scratch::new("protocol");
    // The only test in its binary: the process environment is its own.
    std::env::set_var("TMPDIR", &s.tmp);
    std::env::set_var("IPCBENCH_STATE_DIR", s.root.join("state"));
    std::env::set_var("IPCBENCH_TRACE", s.root.join("trace"));
    let cases = [
        (
            "version mismatch",
            "echo '{\"kind\":\"hello\",\"version\":99}'",
            "version 99",
        ),
        ("garbage", "echo 'hello world'", "expected a reply"),
        (
            "unknown kind",
            "echo '{\"kind\":\"teleport\"}'",
            "expected a reply",
        ),
        (
            "oversized",
            "head -c 2000000 /dev/zero | tr '\\000' x; echo",
            "longer than",
        ),
        ("truncated", "printf '{\"kind\":\"hel'; exit 0", "truncated"),
    ];
    for (i, (what, script, expect)) in cases.into_iter().enumerate() {
        let exe = fake_peer(&s, &format!("peer-{i}"), script);
        let opts = SessionOptions::new(
            Verify::Cheap,
            Placement::plan(Pin::None, None).unwrap(),
            exe,
            Duration::from_secs(10),
        );
        // fifo: the parent creates a named object first, which must be gone afterwards.
        let m = ipcbench::backends::by_id("fifo").unwrap();
        let t = Instant::now();
        let err = match Session::start(m, 64, &opts) {
            Ok(_) => panic!("{what}: the parent accepted it"),
            Err(e) => e.to_string(),
        };
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "{what}: took {:?}",
            t.elapsed()
        );
        assert!(err.contains("fifo"), "{what}: names the mechanism: {err}");
        assert!(err.contains(expect), "{what}: {err}");
    }
    s.audit();
}
