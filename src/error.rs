//! The library's error types. Every error names the mechanism, the resource involved and,
//! where one exists, the fix.

use std::io;

use thiserror::Error;

use crate::message::VerifyError;
use crate::peer::PeerError;

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
    #[error("cannot pin to CPU {cpu}: {source} (choose CPUs from the affinity mask with --cpus, or use --pin none)")]
    Pin {
        cpu: usize,
        #[source]
        source: io::Error,
    },
}
