//! ipcbench: measures how fast two Linux processes can talk through each IPC mechanism,
//! with every message verified and the machine's facts recorded beside the numbers.

pub mod backends;
pub mod cleanup;
pub mod cli;
pub mod commands;
pub mod environment;
pub mod error;
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
pub mod sys;
pub mod workload;
