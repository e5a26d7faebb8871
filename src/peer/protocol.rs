//! The conversation between the parent and its peer: one JSON object per line over the
//! peer's stdin (orders) and stdout (replies), opened by a hello each way that carries the
//! protocol version. JSON lines because the messages are few (a handful per case, never in a
//! timed loop), readable in a failure's transcript, and serde already knows them; every line
//! is bounded (`MAX_LINE`), so a runaway or hostile peer cannot make the parent allocate
//! without limit. Errors cross the boundary with their structure (what failed, on which
//! mechanism, the OS error number, the fix) and are shown exactly as the peer built them.

#![forbid(unsafe_code)]

use std::io::{self, BufRead, Read, Write};

use serde::{Deserialize, Serialize};

use crate::error::PeerError;
use crate::sys::CpuUsage;

/// Bumped whenever a message changes shape; both sides refuse any other version.
pub const VERSION: u32 = 2;

/// No line of the protocol is longer (the largest real one is a fan-in client's latency
/// histogram, a few tens of kilobytes).
pub const MAX_LINE: usize = 1 << 20;

/// What the parent tells the peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Order {
    Hello {
        version: u32,
    },
    /// One phase of a workload (by its id): the peer answers `Go`, runs its half, `Done`.
    Run {
        workload: String,
        count: u64,
    },
    /// One phase of a workload as fan-in client `index` of `clients` (`--clients`): from
    /// `start_ns` to `end_ns` on `CLOCK_MONOTONIC` (one clock for every process of a host),
    /// then a goodbye; answered like `Run`.
    Client {
        workload: String,
        index: u32,
        clients: u32,
        start_ns: u64,
        end_ns: u64,
        /// The total requests per second offered, for open-loop workloads, and their
        /// spacing.
        #[serde(default)]
        rate: f64,
        #[serde(default = "even")]
        arrivals: crate::results::Arrivals,
    },
    /// Test hook for synchronisation primitives: take the lock and keep it until killed.
    Hold,
    Quit,
}

fn even() -> crate::results::Arrivals {
    crate::results::Arrivals::Even
}

/// What the peer answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    Hello {
        version: u32,
    },
    /// The peer holds the channel (or primitive): names can be removed.
    Ready,
    /// About to start the timed part of a phase.
    Go,
    /// A phase ended: the peer's CPU during it and its workload's own account.
    Done {
        cpu: CpuUsage,
        outcome: serde_json::Value,
    },
    Holding,
    Error {
        failure: Failure,
    },
}

/// What went wrong on the peer's side, kept in pieces so the parent can show it, test it
/// and act on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    pub kind: FailureKind,
    /// The whole message, as the peer would print it.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<String>,
    /// What it was doing (`open`, `receive`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_error: Option<i32>,
    /// How to fix it, where there is a fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The peer refused its arguments or an order (exit 2).
    Refused,
    /// Opening or using the mechanism's objects failed.
    Backend,
    /// A message arrived wrong.
    Verify,
    /// A send or receive failed.
    DataPath,
    /// The conversation itself went wrong.
    Protocol,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            mechanism: None,
            action: None,
            os_error: None,
            hint: None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<&crate::error::BackendError> for Failure {
    fn from(e: &crate::error::BackendError) -> Failure {
        Failure {
            kind: FailureKind::Backend,
            message: e.to_string(),
            mechanism: Some(e.mechanism.to_string()),
            action: Some(e.action.to_string()),
            os_error: e.source.raw_os_error(),
            hint: e.hint.clone(),
        }
    }
}

/// Writes one message as one line.
pub fn send<T: Serialize>(out: &mut impl Write, msg: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// Reads one line of at most `MAX_LINE` bytes; `Ok(None)` at a clean end of input.
pub fn read_line(input: &mut impl BufRead) -> Result<Option<String>, PeerError> {
    let mut buf = Vec::new();
    let n = Read::take(&mut *input, MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)
        .map_err(PeerError::Control)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if buf.len() > MAX_LINE {
            PeerError::Protocol(format!(
                "a control message longer than {MAX_LINE} bytes (it began {:?})",
                preview(&buf)
            ))
        } else {
            PeerError::Protocol(format!(
                "a truncated control message {:?} (the other side stopped mid-line)",
                preview(&buf)
            ))
        });
    }
    buf.pop();
    String::from_utf8(buf)
        .map(Some)
        .map_err(|e| PeerError::Protocol(format!("a control message that is not UTF-8: {e}")))
}

/// The start of a bad line, for the error that names it.
fn preview(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned()
}

/// Decodes one line as `T`, naming what was expected when it is something else.
pub fn decode<T: for<'de> Deserialize<'de>>(line: &str, expected: &str) -> Result<T, PeerError> {
    serde_json::from_str(line).map_err(|e| {
        PeerError::Protocol(format!(
            "expected {expected}, got {:?} ({e})",
            &line[..line.len().min(200)]
        ))
    })
}

/// Checks the other side's hello.
pub fn check_version(theirs: u32) -> Result<(), PeerError> {
    if theirs == VERSION {
        Ok(())
    } else {
        Err(PeerError::Protocol(format!(
            "the other side speaks protocol version {theirs}, this ipcbench speaks {VERSION}: parent and peer must be the same build"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_strangers_are_refused() {
        let orders = [
            Order::Hello { version: VERSION },
            Order::Run {
                workload: "latency".into(),
                count: 5,
            },
            Order::Hold,
            Order::Quit,
        ];
        for o in orders {
            let mut out = Vec::new();
            send(&mut out, &o).unwrap();
            let line = read_line(&mut out.as_slice()).unwrap().unwrap();
            assert_eq!(decode::<Order>(&line, "an order").unwrap(), o);
        }
        let done = Reply::Done {
            cpu: CpuUsage::default(),
            outcome: serde_json::json!({"delivered": 3}),
        };
        let mut out = Vec::new();
        send(&mut out, &done).unwrap();
        let line = read_line(&mut out.as_slice()).unwrap().unwrap();
        assert_eq!(decode::<Reply>(&line, "a reply").unwrap(), done);
        for bad in [
            "garbage",
            "{\"kind\":\"teleport\"}",
            "{\"kind\":\"run\",\"workload\":\"latency\"}",
            "{\"kind\":\"run\",\"workload\":\"latency\",\"count\":\"x\"}",
        ] {
            let e = decode::<Order>(bad, "an order").unwrap_err().to_string();
            assert!(e.contains("expected an order"), "{e}");
        }
    }

    #[test]
    fn lines_are_bounded_and_truncation_is_named() {
        let long = vec![b'x'; MAX_LINE + 10];
        let e = read_line(&mut long.as_slice()).unwrap_err().to_string();
        assert!(e.contains("longer than"), "{e}");
        let e = read_line(&mut &b"{\"kind\":\"he"[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        assert!(read_line(&mut &b""[..]).unwrap().is_none());
        assert!(check_version(VERSION).is_ok());
        let e = check_version(99).unwrap_err().to_string();
        assert!(
            e.contains("version 99") && e.contains(&format!("speaks {VERSION}")),
            "{e}"
        );
    }
}
