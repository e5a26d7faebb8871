//! Parses the command line and dispatches; the work lives in the library.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use ipcbench::cli::{Cli, CommandKind};
use ipcbench::{commands, peer};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        CommandKind::List => {
            commands::list();
            ExitCode::SUCCESS
        }
        CommandKind::Peer(args) => ExitCode::from(peer::serve(&args) as u8),
        CommandKind::Run(args) => {
            let exe = match std::env::current_exe() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("ipcbench: cannot find this executable to start the peer: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let plan = match commands::plan_from_args(&args, exe) {
                Ok(p) => p,
                Err(msg) => Cli::command()
                    .error(clap::error::ErrorKind::ValueValidation, msg)
                    .exit(),
            };
            match commands::run(&args, plan) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("ipcbench: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
