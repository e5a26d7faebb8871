//! The entry points a program calls: ipcbench's own `main`, a program of a user's own that
//! benchmarks its mechanisms beside the built-in ones (`main_with`), and the peer role that
//! every such program must answer (`peer_entry`). Command-line parsing, dispatch and exit
//! codes live here, so that a user's binary behaves exactly like `ipcbench`.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::backends::Mechanism;
use crate::cli::{Cli, CommandKind};
use crate::{commands, peer};

/// Runs ipcbench's command line (`std::env::args`) with `mechanisms` measurable beside
/// the built-in ones: `run --mechanisms my-id,unix-stream` and every other subcommand work
/// as they do in `ipcbench`, and the peer processes it starts (this same program, re-run)
/// find `my-id` too. Call it from `main` and return what it returns.
///
/// ```no_run
/// # use ipcbench::Mechanism;
/// static MINE: [&dyn Mechanism; 0] = [];
/// fn main() -> std::process::ExitCode {
///     ipcbench::main_with(&MINE)
/// }
/// ```
pub fn main_with(mechanisms: &'static [&'static dyn Mechanism]) -> ExitCode {
    main_with_args(mechanisms, std::env::args())
}

/// [`main_with`] over a command line of your own (the program name first): for a program
/// that runs a fixed selection, or a test. Peers are still started as this program.
///
/// ```no_run
/// # use ipcbench::Mechanism;
/// # static MINE: [&dyn Mechanism; 0] = [];
/// ipcbench::peer_entry(&MINE);
/// let code = ipcbench::main_with_args(
///     &MINE,
///     ["me", "run", "--quick", "--mechanisms", "unix-stream", "--json", "/tmp/me.json"],
/// );
/// ```
pub fn main_with_args(
    mechanisms: &'static [&'static dyn Mechanism],
    args: impl IntoIterator<Item = impl Into<String>>,
) -> ExitCode {
    if let Err(e) = crate::backends::register(mechanisms) {
        eprintln!("ipcbench: {e}");
        return ExitCode::from(2);
    }
    main_args(args.into_iter().map(Into::into).collect())
}

/// For a program that drives the measurement itself (a criterion bench, a test with its
/// own `main`): call first thing in `main`. When this process was started as a peer (the
/// program re-run by a session, with `__peer` or `__bare` as its first argument), it
/// serves that role with `mechanisms` registered and exits; otherwise it registers them
/// and returns, and the program goes on. Registering twice, or an id a built-in mechanism
/// already has, is refused with a message and exit status 2.
pub fn peer_entry(mechanisms: &'static [&'static dyn Mechanism]) {
    if let Err(e) = crate::backends::register(mechanisms) {
        eprintln!("ipcbench: {e}");
        std::process::exit(2);
    }
    let args: Vec<String> = std::env::args().collect();
    if !matches!(
        args.get(1).map(String::as_str),
        Some(peer::ROLE | crate::bare::ROLE)
    ) {
        return;
    }
    let code = match Cli::try_parse_from(args) {
        Ok(Cli {
            command: CommandKind::Peer(a),
            ..
        }) => peer::serve(&a),
        Ok(Cli {
            command: CommandKind::Bare(a),
            ..
        }) => crate::bare::serve(&a),
        Ok(_) => 2,
        Err(e) => e.exit(),
    };
    std::process::exit(code)
}

/// Parses `args` (the program name first) as ipcbench's command line and runs it.
pub(crate) fn main_args(args: Vec<String>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if !matches!(cli.command, CommandKind::Peer(_) | CommandKind::Bare(_)) {
        if let Err(e) = crate::interrupt::install() {
            eprintln!("ipcbench: cannot set up signal handling: {e}");
            return ExitCode::FAILURE;
        }
    }
    let code = dispatch(cli);
    // A run stopped by SIGINT/SIGTERM exits 128 + the signal, like a shell expects.
    match crate::interrupt::interrupted() {
        Some(sig) => ExitCode::from((128 + sig) as u8),
        None => code,
    }
}

fn dispatch(cli: Cli) -> ExitCode {
    // Commands that only read and print: `ipcbench compare a b | head` ends quietly.
    if matches!(
        cli.command,
        CommandKind::List(_)
            | CommandKind::Report(_)
            | CommandKind::Compare(_)
            | CommandKind::Recommend(_)
    ) {
        crate::sys::default_sigpipe();
    }
    match cli.command {
        CommandKind::Clean => finish(commands::clean()),
        CommandKind::Floor(args) => {
            let plan = match commands::floor_plan(&args) {
                Ok(p) => p,
                Err(msg) => usage_error("floor", msg),
            };
            match std::env::current_exe() {
                Ok(exe) => finish(commands::floor(&args, plan, exe).map(|()| true)),
                Err(e) => finish(Err(e.into())),
            }
        }
        CommandKind::List(args) => finish(commands::list(&args).map(|()| true)),
        CommandKind::Peer(args) => ExitCode::from(peer::serve(&args) as u8),
        CommandKind::Bare(args) => ExitCode::from(crate::bare::serve(&args) as u8),
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

/// Why a [`Run`] produced no results.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is not one `ipcbench run` accepts (the message says which option).
    #[error("{0}")]
    Usage(String),
    /// The run stopped before writing its results (a bad output path, an interruption).
    #[error("{0}")]
    Stopped(String),
    /// The results file could not be read back (`why` names the file).
    #[error("{why}")]
    Read {
        path: std::path::PathBuf,
        why: String,
    },
}

/// A run configured in code: exactly what `ipcbench run` does with the same options
/// (printing its tables, writing the JSON and the report), returning the results. Cases
/// that fail (a lost message, a dead peer) are results with [`crate::Status::Error`], not
/// errors of the run.
///
/// ```no_run
/// # use ipcbench::Mechanism;
/// # static MINE: [&dyn Mechanism; 0] = [];
/// ipcbench::peer_entry(&MINE);
/// let results = ipcbench::Run::new(&["unix-stream", "shm-futex"])
///     .sizes(&[64, 64 << 10])
///     .workloads(&["latency", "throughput"])
///     .option("--verify=full")
///     .json("/tmp/mine.json")
///     .start(&MINE)?;
/// for r in &results.results {
///     println!("{} {} {}: {:?}", r.mechanism, r.workload, r.size, r.status);
/// }
/// # Ok::<(), ipcbench::RunError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Run {
    args: Vec<String>,
    json: std::path::PathBuf,
}

impl Run {
    /// A quick run (`--quick`) of these mechanisms (ids, family names or `all`), with
    /// `run`'s defaults for everything else.
    pub fn new(mechanisms: &[&str]) -> Run {
        Run {
            args: vec![
                "--quick".into(),
                "--mechanisms".into(),
                mechanisms.join(","),
            ],
            json: crate::cli::DEFAULT_JSON.into(),
        }
    }

    /// Message sizes in bytes.
    pub fn sizes(mut self, sizes: &[usize]) -> Run {
        let list: Vec<String> = sizes.iter().map(usize::to_string).collect();
        self.args.push(format!("--sizes={}", list.join(",")));
        self
    }

    /// Workloads by id ([`workloads`] lists them).
    pub fn workloads(mut self, ids: &[&str]) -> Run {
        self.args.push(format!("--workloads={}", ids.join(",")));
        self
    }

    /// The full counts instead of `--quick`'s.
    pub fn full(mut self) -> Run {
        self.args.retain(|a| a != "--quick");
        self
    }

    /// Any other option of `ipcbench run`, as on its command line (`--pin=same`).
    pub fn option(mut self, arg: &str) -> Run {
        self.args.push(arg.into());
        self
    }

    /// Where the JSON goes (its report beside it, as `run --json` does).
    pub fn json(mut self, path: impl Into<std::path::PathBuf>) -> Run {
        self.json = path.into();
        self
    }

    /// Runs it, with `mechanisms` (a program's own) registered beside the built-in ones;
    /// the peers are this program re-run, so `main` must call [`peer_entry`] first.
    pub fn start(
        self,
        mechanisms: &'static [&'static dyn Mechanism],
    ) -> Result<crate::RunFile, RunError> {
        crate::backends::register(mechanisms).map_err(|e| RunError::Usage(e.to_string()))?;
        let json = self.json.clone();
        let mut argv = vec!["ipcbench".to_string(), "run".to_string()];
        argv.extend(self.args);
        argv.push(format!("--json={}", json.display()));
        let args = match Cli::try_parse_from(argv) {
            Ok(Cli {
                command: CommandKind::Run(a),
                ..
            }) => a,
            Ok(_) => return Err(RunError::Usage("not a run".into())),
            Err(e) => return Err(RunError::Usage(e.to_string())),
        };
        let exe = std::env::current_exe().map_err(|e| {
            RunError::Usage(format!("cannot find this program to start its peers: {e}"))
        })?;
        let plan = commands::plan_from_args(&args, exe).map_err(RunError::Usage)?;
        commands::run(&args, plan).map_err(|e| RunError::Stopped(describe(&e)))?;
        // Read back as `ipcbench report` reads a results file (its checks, its messages).
        crate::report::load(&json).map_err(|e| RunError::Read {
            why: e.to_string(),
            path: json,
        })
    }
}

/// The workloads a [`Run`] can name: (id, what it measures).
pub fn workloads() -> impl Iterator<Item = (&'static str, &'static str)> {
    crate::workload::REGISTRY.iter().map(|w| (w.id(), w.help()))
}
