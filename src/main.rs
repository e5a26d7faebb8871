//! Parses the command line and dispatches; the work lives in the library.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use ipcbench::cli::{Cli, CommandKind};
use ipcbench::{commands, peer};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, CommandKind::Peer(_) | CommandKind::Bare(_)) {
        if let Err(e) = ipcbench::interrupt::install() {
            eprintln!("ipcbench: cannot set up signal handling: {e}");
            return ExitCode::FAILURE;
        }
    }
    let code = dispatch(cli);
    // A run stopped by SIGINT/SIGTERM exits 128 + the signal, like a shell expects.
    match ipcbench::interrupt::interrupted() {
        Some(sig) => ExitCode::from((128 + sig) as u8),
        None => code,
    }
}

fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        CommandKind::Clean => finish(commands::clean()),
        CommandKind::Floor(args) => {
            let placement = match commands::floor_placement(&args) {
                Ok(p) => p,
                Err(msg) => usage_error("floor", msg),
            };
            match std::env::current_exe() {
                Ok(exe) => finish(commands::floor(&args, placement, exe).map(|()| true)),
                Err(e) => finish(Err(e.into())),
            }
        }
        CommandKind::List(args) => finish(commands::list(&args).map(|()| true)),
        CommandKind::Peer(args) => ExitCode::from(peer::serve(&args) as u8),
        CommandKind::Bare(args) => ExitCode::from(ipcbench::bare::serve(&args) as u8),
        CommandKind::Report(args) => finish(commands::report(&args).map(|()| true)),
        CommandKind::Compare(args) => finish(commands::compare(&args)),
        CommandKind::Recommend(args) => finish(commands::recommend(&args).map(|()| true)),
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
                Err(msg) => usage_error("run", msg),
            };
            finish(commands::run(&args, plan))
        }
    }
}

/// Exits 2 with `msg` and the usage of subcommand `sub` (not the top-level one).
fn usage_error(sub: &str, msg: String) -> ! {
    let mut cli = Cli::command();
    cli.build();
    let found = cli.find_subcommand_mut(sub).cloned();
    found
        .unwrap_or(cli)
        .error(clap::error::ErrorKind::ValueValidation, msg)
        .exit()
}

/// The error and its causes, each said once: many messages already include their cause's
/// text (`cannot read x: No such file`), which `{:#}` would print a second time.
fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

/// Exit 0 on success, 1 on a failed check (a failed case, a regression) or an error.
fn finish(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ipcbench: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}
