//! The control protocol, the peer's side: a parent that sends a wrong version, a truncated
//! message, an unknown kind, an oversized message or garbage is refused with a structured
//! error naming what was expected and exit code 2, never a hang or a panic.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::EXE;
use ipcbench::peer::protocol::{FailureKind, Reply, MAX_LINE, VERSION};

/// What the parent might write to the peer, and what the peer must say about it.
fn bad_parents() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    vec![
        (
            "version mismatch",
            b"{\"kind\":\"hello\",\"version\":99}\n".to_vec(),
            "version 99",
        ),
        ("garbage", b"hello world\n".to_vec(), "expected an order"),
        (
            "unknown kind",
            b"{\"kind\":\"teleport\"}\n".to_vec(),
            "expected an order",
        ),
        ("oversized", vec![b'x'; MAX_LINE + 100], "longer than"),
        ("truncated", b"{\"kind\":\"hel".to_vec(), "truncated"),
    ]
}

#[test]
fn the_peer_refuses_a_parent_that_does_not_speak_its_protocol() {
    for (what, input, expect) in bad_parents() {
        let mut child = std::process::Command::new(EXE)
            .args([
                "__peer",
                "--mechanism",
                "pipe",
                "--size",
                "64",
                "--verify",
                "cheap",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&input);
        drop(stdin);
        let t = Instant::now();
        let out = child.wait_with_output().unwrap();
        assert!(t.elapsed() < Duration::from_secs(10), "{what}: too slow");
        assert_eq!(out.status.code(), Some(2), "{what}");
        let text = String::from_utf8_lossy(&out.stdout);
        let replies: Vec<Reply> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: {l:?}: {e}")))
            .collect();
        assert_eq!(
            replies[0],
            Reply::Hello { version: VERSION },
            "{what}: hello first"
        );
        match replies.last() {
            Some(Reply::Error { failure }) => {
                assert_eq!(failure.kind, FailureKind::Protocol, "{what}");
                assert!(
                    failure.message.contains(expect),
                    "{what}: {}",
                    failure.message
                );
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{what}"
        );
    }
}
