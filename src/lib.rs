//! ipcbench: measures how fast two Linux processes can talk through each IPC mechanism,
//! with every message verified and the machine's facts recorded beside the numbers.
//!
//! # Your own mechanism, measured like the built-in ones
//!
//! The tool is also a library, so that a team can set its own IPC layer (framing of its
//! own, a ring over a memfd, a vendor library) beside a Unix socket or `shm-futex` on the
//! same machine, measured the same way. Implement [`Mechanism`] (how the parent offers a
//! channel and how the peer process joins it) and [`Channel`] (send and receive one
//! message), and make your program's `main` ipcbench's with [`main_with`]:
//!
//! ```no_run
//! use ipcbench::{BackendError, Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer};
//! # use std::os::fd::OwnedFd;
//!
//! struct Mine;
//! static INFO: MechanismInfo = MechanismInfo::new("mine", Family::Custom, "our own channel");
//!
//! impl Mechanism for Mine {
//!     fn info(&self) -> &'static MechanismInfo {
//!         &INFO
//!     }
//!     fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
//!         // Create the objects; `inherit` descriptors reach the peer as 3, 4, ...
//!         # unimplemented!()
//!     }
//!     fn join(
//!         &self,
//!         spec: &str,
//!         inherited: Vec<OwnedFd>,
//!         params: &ChannelParams,
//!     ) -> Result<Box<dyn Channel>, BackendError> {
//!         // Open what the parent offered.
//!         # unimplemented!()
//!     }
//! }
//!
//! static MINE: [&dyn Mechanism; 1] = [&Mine];
//!
//! fn main() -> std::process::ExitCode {
//!     // `my-program run --mechanisms mine,unix-stream,shm-futex` and every other
//!     // subcommand behave as in `ipcbench`; the peers are this program re-run.
//!     ipcbench::main_with(&MINE)
//! }
//! ```
//!
//! Your channel gets what every built-in one gets: two processes, warm-up, every message
//! checked (a lost or corrupted one fails the case under your mechanism's id), bounded
//! waits, the report and the JSON ([`RunFile`]). `examples/custom_mechanism.rs` is a whole
//! one; with the `criterion` feature, `ipcbench::bench::mechanisms` registers criterion groups for a list of
//! mechanisms, yours and built-in ones. A program that drives the measurement itself calls
//! [`peer_entry`] first thing in `main`.
//!
//! The items exported here are the versioned API (see the README's "Stability" section);
//! the modules are the tool's inside, hidden from this documentation and free to change.
//!
//! `unsafe` lives only where a system call or shared memory needs it (`sys/`, `backends/`,
//! the bare loops' shared page, the peer's descriptor check, the cleanup of kernel
//! objects); every block says why it is sound, and the measuring, running and reporting
//! layers forbid it outright.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[doc(hidden)]
pub mod backends;
#[doc(hidden)]
pub mod bare;
#[cfg(feature = "criterion")]
pub mod bench;
#[doc(hidden)]
pub mod cleanup;
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod commands;
mod entry;
#[doc(hidden)]
pub mod environment;
#[doc(hidden)]
pub mod error;
#[doc(hidden)]
pub mod fanin;
#[doc(hidden)]
pub mod floor;
#[doc(hidden)]
pub mod interrupt;
#[doc(hidden)]
pub mod matrix;
#[doc(hidden)]
pub mod message;
#[doc(hidden)]
pub mod peer;
#[doc(hidden)]
pub mod placement;
#[doc(hidden)]
pub mod report;
#[doc(hidden)]
pub mod results;
#[doc(hidden)]
pub mod runner;
#[doc(hidden)]
pub mod session;
#[doc(hidden)]
pub mod stats;
#[doc(hidden)]
pub mod subject;
#[doc(hidden)]
pub mod sys;
#[doc(hidden)]
pub mod workload;

// The public API (see the crate documentation); everything below the modules' own
// `pub` is the tool's inside, hidden from the documentation and free to change.
pub use backends::{
    forget_object, record_object, AbortHandle, Channel, ChannelParams, Family, Leftovers,
    Mechanism, MechanismInfo, Offer, RecordError, Rendezvous, Split, Traffic,
};
pub use entry::{main_with, main_with_args, peer_entry, workloads, Run, RunError};
pub use environment::Limits;
pub use error::BackendError;
pub use results::{CaseResult, RunFile, Status};
