//! The subcommands, at the CLI edge: errors become `anyhow` messages here.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::backends;
use crate::cli::{
    check_unique, resolve_mechanisms, CompareArgs, FloorArgs, RecommendArgs, ReportArgs, RunArgs,
};
use crate::environment::{Environment, Limits};
use crate::placement::{default_pin, Placement};
use crate::report::content::{self, Input};
use crate::report::load;
use crate::report::{size_label, table};
use crate::results::{write_atomically, Status};
use crate::runner::{Event, Plan};
use crate::session::SessionOptions;

/// Checks `run` arguments that clap cannot check alone; `Err` is a usage error (exit 2).
pub fn plan_from_args(args: &RunArgs, peer_exe: std::path::PathBuf) -> Result<Plan, String> {
    let mechanisms = resolve_mechanisms(&args.mechanisms)?;
    check_unique("sizes", &args.sizes)?;
    check_unique("workloads", &args.workloads)?;
    let pin = args.pin.unwrap_or_else(default_pin);
    let placement = Placement::plan(pin, args.cpus)?;
    Ok(Plan {
        mechanisms,
        sizes: args.sizes.clone(),
        workloads: args.workloads.clone(),
        quick: args.quick,
        messages: args.messages,
        repeat: args.repeat.unwrap_or(if args.quick { 1 } else { 3 }),
        matrix: match args.pin_matrix {
            false => None,
            true => Some((
                backends::by_id(&args.matrix_mechanism).ok_or_else(|| {
                    format!("unknown --matrix-mechanism {:?}", args.matrix_mechanism)
                })?,
                Duration::from_secs(args.matrix_budget),
            )),
        },
        session: SessionOptions {
            verify: args.verify,
            placement,
            peer_exe,
            timeout: Duration::from_secs(args.timeout),
            rcvbuf: args.socket_rcvbuf,
            shm_ring: args.shm_ring,
            shm_segment: args.shm_segment,
        },
    })
}

/// `ipcbench run`. Returns whether every case that could run succeeded.
pub fn run(args: &RunArgs, plan: Plan) -> anyhow::Result<bool> {
    let env = Environment::capture();
    let cases = plan.steps() as u64;
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(cases);
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}") {
            b.set_style(style);
        }
        b
    } else {
        ProgressBar::hidden()
    };
    eprintln!(
        "ipcbench: {} cases, {}",
        cases,
        plan.session.placement.describe()
    );
    for w in &env.warnings {
        eprintln!("ipcbench: warning: {w}");
    }
    let run = plan.run(env, |ev| match ev {
        Event::Floor => bar.set_message("measuring the floor"),
        Event::Start(c) => bar.set_message(format!(
            "{} {} {}",
            c.subject.id(),
            c.workload.as_str(),
            size_label(c.size)
        )),
        Event::Done(..) | Event::Skip(_) => bar.inc(1),
    });
    bar.finish_and_clear();
    if let Some(sig) = crate::interrupt::interrupted() {
        // Every case's objects went with its session; an earlier results file stays intact.
        anyhow::bail!("interrupted by signal {sig}: stopped, cleaned up, no results written");
    }
    write_atomically(&args.json, &run)
        .with_context(|| format!("cannot write the results to {}", args.json.display()))?;
    print!("{}", table::render(&run));
    println!("Results written to {}", args.json.display());
    if !args.no_report {
        let inputs = [Input {
            label: label_of(&args.json),
            run: run.clone(),
        }];
        content::write(&inputs, &args.report)?;
        println!(
            "Report written to {}",
            args.report.join("report.md").display()
        );
    }
    let failed = run
        .results
        .iter()
        .filter(|r| r.status == Status::Error)
        .count();
    if failed > 0 {
        eprintln!("ipcbench: {failed} case(s) failed; see the notes above and the \"reason\" fields in the JSON");
    }
    Ok(failed == 0)
}

/// `ipcbench list`.
pub fn list() {
    println!(
        "{:<14} {:<16} {:<10} {:>6} {:<6} {:<10} description",
        "mechanism", "family", "boundaries", "copies", "named", "cross-host"
    );
    let yes = |b: bool| if b { "yes" } else { "no" };
    for m in backends::all() {
        let i = m.info();
        println!(
            "{:<14} {:<16} {:<10} {:>6} {:<6} {:<10} {}",
            i.id,
            i.family.as_str(),
            yes(i.boundaries),
            i.kernel_copies,
            yes(i.named),
            yes(i.cross_host),
            i.summary
        );
        if let Some(base) = i.built_on {
            println!(
                "{:<14} built on {base}: compare the two in the same run",
                ""
            );
        }
    }
    println!();
    for p in backends::sync::REGISTRY.iter().filter(|p| !p.info().hidden) {
        let i = p.info();
        let runs = match (i.handoff, i.lock) {
            (true, true) => "handoff, lock",
            (true, false) => "handoff",
            (false, true) => "lock",
            (false, false) => "-",
        };
        println!("{:<22} {:<5} {:<14} {}", i.id, "sync", runs, i.summary);
        if i.handoff {
            println!("{:<22} hand-off: {}", "", i.handoff_by);
        }
    }
    println!("\nboundaries: one send arrives as one receive; copies: payload copies the kernel makes per message;");
    println!("named: unrelated processes can find it by a filesystem name; cross-host: works between machines.\n");
    let l = Limits::read();
    let show = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "unknown".into());
    println!("IPC limits on this machine:");
    println!("  fs.pipe-max-size        {}", show(l.pipe_max_size));
    println!("  fs.mqueue.msgsize_max   {}", show(l.mq_msgsize_max));
    println!("  fs.mqueue.msg_max       {}", show(l.mq_msg_max));
    println!("  kernel.msgmax           {}", show(l.msgmax));
    println!("  kernel.msgmnb           {}", show(l.msgmnb));
    println!("  net.core.wmem_max       {}", show(l.wmem_max));
    println!("  net.core.rmem_max       {}", show(l.rmem_max));
    println!("  net.core.wmem_default   {}", show(l.wmem_default));
    println!("  net.core.rmem_default   {}", show(l.rmem_default));
    println!("  RLIMIT_MSGQUEUE (soft)  {}", show(l.rlimit_msgqueue));
    println!("  udp payload (protocol)  65507");
}

fn label_of(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// `ipcbench report`.
pub fn report(args: &ReportArgs) -> anyhow::Result<()> {
    let mut inputs = Vec::new();
    for (i, f) in args.files.iter().enumerate() {
        let run = load(f)?;
        let mut label = label_of(f);
        if inputs.iter().any(|x: &Input| x.label == label) {
            label = format!("{label} ({})", i + 1);
        }
        inputs.push(Input { label, run });
    }
    let written = content::write(&inputs, &args.output)?;
    for p in written {
        println!("{}", p.display());
    }
    Ok(())
}

/// `ipcbench compare`. Returns false when `--fail-on-regression` should fail the command.
pub fn compare(args: &CompareArgs) -> anyhow::Result<bool> {
    let old = load(&args.old)?;
    let new = load(&args.new)?;
    let c = crate::report::compare::compare(&old, &new, args.threshold);
    print!("{}", crate::report::compare::render(&c));
    Ok(!(args.fail_on_regression && c.regressions() > 0))
}

/// `ipcbench recommend`.
pub fn recommend(args: &RecommendArgs) -> anyhow::Result<()> {
    let run = load(&args.results)?;
    let advice = crate::report::recommend::advise(&run, args.size, args.pattern, &args.need)
        .map_err(anyhow::Error::msg)?;
    print!(
        "{}",
        crate::report::recommend::render(&advice, args.pattern, &args.need)
    );
    Ok(())
}

/// `ipcbench clean`. Fails (exit 1) if something it found could not be removed.
pub fn clean() -> anyhow::Result<bool> {
    let dir = crate::cleanup::state_dir().context("cannot open the state directory")?;
    let done = crate::cleanup::clean().with_context(|| format!("cannot read {}", dir.display()))?;
    if done.removed.is_empty() && done.failed.is_empty() {
        println!("nothing to clean (records in {})", dir.display());
    }
    for r in &done.removed {
        println!("removed {r}");
    }
    for f in &done.failed {
        eprintln!("ipcbench: could not remove {f}");
    }
    Ok(done.failed.is_empty())
}

/// `ipcbench floor`.
pub fn floor(args: &FloorArgs, peer_exe: std::path::PathBuf) -> anyhow::Result<()> {
    let pin = args.pin.unwrap_or_else(default_pin);
    let placement = Placement::plan(pin, args.cpus).map_err(anyhow::Error::msg)?;
    println!("{}", placement.describe());
    if let Some(p) = placement.pair() {
        println!("{}", p.describe());
    }
    let opts = SessionOptions::new(
        crate::message::Verify::Cheap,
        placement,
        peer_exe,
        Duration::from_secs(60),
    );
    print!("{}", crate::floor::measure(&opts, &args.sizes).render());
    Ok(())
}
