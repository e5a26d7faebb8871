//! Turning results into something a person reads: the terminal table, the markdown and HTML
//! report with SVG charts, run-to-run comparison, and the guide for choosing a mechanism.

#![forbid(unsafe_code)]

pub mod chart;
pub mod compare;
pub mod content;
pub mod document;
pub mod large;
pub mod model;
pub mod recommend;
pub mod table;

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::results::{RunFile, READABLE_SCHEMAS, SCHEMA};

/// The workloads the report's views are written for; results of any other workload are
/// kept in the JSON and compared by `compare`.
pub(crate) use crate::workload::{
    handoff::ID as HANDOFF, latency::ID as LATENCY, load::ID as LOAD, lock::ID as LOCK,
    rate::ID as RATE, setup::ID as SETUP, throughput::ID as THROUGHPUT,
};

/// Results files larger than this are refused rather than read into memory.
pub const MAX_RESULTS_BYTES: u64 = 64 << 20;

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {bytes} bytes, more than the {MAX_RESULTS_BYTES} a results file can be")]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("{path} is empty: no results were written to it")]
    Empty { path: PathBuf },
    #[error("{path} is not a valid ipcbench results file: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} has schema {found}, but this ipcbench reads schemas 1 to {SCHEMA}")]
    Schema { path: PathBuf, found: String },
    #[error("{path} is not an ipcbench results file: {why}")]
    NotResults { path: PathBuf, why: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads a results file, refusing with a clear reason anything that is not one.
pub fn load(path: &Path) -> Result<RunFile, ReportError> {
    let p = || path.to_path_buf();
    let md = std::fs::metadata(path).map_err(|source| ReportError::Read { path: p(), source })?;
    if md.len() > MAX_RESULTS_BYTES {
        return Err(ReportError::TooLarge {
            path: p(),
            bytes: md.len(),
        });
    }
    let text =
        std::fs::read_to_string(path).map_err(|source| ReportError::Read { path: p(), source })?;
    if text.trim().is_empty() {
        return Err(ReportError::Empty { path: p() });
    }
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ReportError::Parse { path: p(), source })?;
    let kind = match &value {
        serde_json::Value::Object(_) => None,
        serde_json::Value::Array(_) => Some("an array"),
        serde_json::Value::String(_) => Some("a string"),
        serde_json::Value::Number(_) => Some("a number"),
        serde_json::Value::Bool(_) => Some("a boolean"),
        serde_json::Value::Null => Some("null"),
    };
    if let Some(kind) = kind {
        return Err(ReportError::NotResults {
            path: p(),
            why: format!("it holds {kind}, where a results file holds one object"),
        });
    }
    match value.get("schema") {
        Some(serde_json::Value::Number(n))
            if n.as_u64()
                .is_some_and(|v| READABLE_SCHEMAS.iter().any(|s| u64::from(*s) == v)) => {}
        Some(other) => {
            return Err(ReportError::Schema {
                path: p(),
                found: other.to_string(),
            })
        }
        None => {
            return Err(ReportError::NotResults {
                path: p(),
                why: "it has no \"schema\" field (written by `ipcbench run --json`?)".into(),
            })
        }
    }
    serde_json::from_value(value).map_err(|source| ReportError::Parse { path: p(), source })
}

/// `64 B`, `4 KiB`, `1 MiB`; sizes that are not a whole unit stay in bytes.
pub fn size_label(size: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if size >= unit && size % unit == 0 {
            return format!("{} {name}", size / unit);
        }
    }
    format!("{size} B")
}

/// Nanoseconds as microseconds with precision that suits the magnitude.
pub fn micros(ns: f64) -> String {
    let us = ns / 1000.0;
    if us < 10.0 {
        format!("{us:.2}")
    } else if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

pub use model::family_of;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(size_label(64), "64 B");
        assert_eq!(size_label(4096), "4 KiB");
        assert_eq!(size_label(1 << 20), "1 MiB");
        assert_eq!(size_label(1500), "1500 B");
        assert_eq!(micros(1234.0), "1.23");
        assert_eq!(micros(123_456.0), "123");
    }
}
