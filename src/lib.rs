//! ipcbench: measures how fast two Linux processes can talk through each IPC mechanism,
//! with every message verified and the machine's facts recorded beside the numbers.
//!
//! `unsafe` lives only where a system call or shared memory needs it (`sys/`, `backends/`,
//! the bare loops' shared page, the peer's descriptor check, the cleanup of kernel
//! objects); every block says why it is sound, and the measuring, running and reporting
//! layers forbid it outright.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod backends;
pub mod bare;
pub mod cleanup;
pub mod cli;
pub mod commands;
mod entry;
pub mod environment;
pub mod error;
pub mod fanin;
pub mod floor;
pub mod interrupt;
pub mod matrix;
pub mod message;
pub mod peer;
pub mod placement;
pub mod report;
pub mod results;
pub mod runner;
pub mod session;
pub mod stats;
pub mod subject;
pub mod sys;
pub mod workload;

// The public API (see the crate documentation); everything below the modules' own
// `pub` is the tool's inside, hidden from the documentation and free to change.
pub use backends::{
    AbortHandle, Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer, Rendezvous,
    Split, Traffic,
};
pub use entry::{main_with, main_with_args, peer_entry};
pub use environment::Limits;
pub use error::BackendError;
pub use results::{CaseResult, RunFile, Status};
