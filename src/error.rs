//! The library's error types. Every error names the mechanism, the resource involved and,
//! where one exists, the fix.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::message::VerifyError;
use crate::peer::protocol::Failure;

/// What went wrong with the peer process or the conversation with it.
#[derive(Debug, Error)]
pub enum PeerError {
    #[error("cannot start the peer process {exe}: {source}")]
    Spawn {
        exe: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the peer process {status}{}", stderr_suffix(.stderr))]
    Died { status: String, stderr: String },
    #[error("timed out after {secs} s waiting for {what}; the peer was killed (raise --timeout if the workload is merely slow)")]
    Timeout { what: String, secs: u64 },
    /// The peer's own account of a failure, with its structure.
    #[error("the peer reported: {0}")]
    Reported(Box<Failure>),
    #[error("the control conversation with the peer broke: {0}")]
    Protocol(String),
    #[error("lost the control pipe to the peer: {0}")]
    Control(#[source] io::Error),
}

fn stderr_suffix(s: &str) -> String {
    if s.trim().is_empty() {
        String::new()
    } else {
        format!("; its stderr: {}", s.trim())
    }
}

/// A mechanism could not create, open or connect one of its objects.
#[derive(Debug, Error)]
#[error("{mechanism}: cannot {action} {resource}: {source}{}", .hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
pub struct BackendError {
    pub mechanism: &'static str,
    pub action: &'static str,
    pub resource: String,
    #[source]
    pub source: io::Error,
    pub hint: Option<String>,
}

impl BackendError {
    pub fn new(
        mechanism: &'static str,
        action: &'static str,
        resource: impl Into<String>,
        source: impl Into<io::Error>,
    ) -> Self {
        BackendError {
            mechanism,
            action,
            resource: resource.into(),
            source: source.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// An argument handed to the peer role that does not describe a valid object.
    pub fn invalid(mechanism: &'static str, resource: impl Into<String>, why: &str) -> Self {
        BackendError::new(
            mechanism,
            "use",
            resource,
            io::Error::new(io::ErrorKind::InvalidInput, why.to_string()),
        )
    }
}

/// Why a measurement failed.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{mechanism}: the {side} received a bad message: {source}")]
    Verify {
        mechanism: &'static str,
        side: &'static str,
        #[source]
        source: VerifyError,
    },
    #[error("{mechanism}: {op} of message #{seq} failed: {source}")]
    DataPath {
        mechanism: &'static str,
        op: &'static str,
        seq: u64,
        #[source]
        source: io::Error,
    },
    #[error("{mechanism}: {source}")]
    Peer {
        mechanism: &'static str,
        #[source]
        source: PeerError,
    },
    /// A fan-in client (`--clients`) failed, died or hung.
    #[error("{mechanism}: client {index} of {clients} (pid {pid}): {source}")]
    Client {
        mechanism: &'static str,
        index: usize,
        clients: usize,
        pid: u32,
        #[source]
        source: PeerError,
    },
    #[error("cannot pin to CPU {cpu}: {source} (choose CPUs from the affinity mask with --cpus, or use --pin none)")]
    Pin {
        cpu: usize,
        #[source]
        source: io::Error,
    },
}
