//! The subcommands, at the CLI edge: errors become `anyhow` messages here.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::backends;
use crate::cli::{
    check_unique, resolve_mechanisms, CompareArgs, FloorArgs, ListArgs, RecommendArgs, ReportArgs,
    RunArgs, DEFAULT_JSON,
};
use crate::environment::{Environment, Limits};
use crate::floor::reference::Selection;
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
    check_unique("clients", &args.clients)?;
    check_unique("workloads", &args.workloads)?;
    let workloads = crate::cli::resolve_workloads(&args.workloads)?;
    let pin = args.pin.unwrap_or_else(default_pin);
    let placement = Placement::plan(pin, args.cpus)?;
    let plan = Plan {
        mechanisms,
        sizes: args.sizes.clone(),
        workloads,
        params: crate::workload::Params {
            quick: args.quick,
            rate: args.rate,
            arrivals: args.arrivals,
            rates: args.rates.clone(),
            slo_ns: args.slo,
        },
        messages: args.messages,
        clients: args.clients.clone(),
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
            // The ring the run really uses, so the results record that, not the request
            // (0: sized by message, `shm::ring_for`).
            shm_ring: args.shm_ring.map_or(0, crate::backends::shm::capacity),
            shm_segment: args.shm_segment,
            shm_huge: args.shm_hugepages,
            shm_read: args.shm_read,
            spin_ns: args.spin_us.map(|us| us * 1_000),
            // Set per case from its workload.
            traffic: crate::backends::Traffic::Exchange,
        },
    };
    if plan.cases().is_empty() {
        return Err(no_case(&plan));
    }
    check_outputs(args)?;
    Ok(plan)
}

/// Why `--mechanisms` and `--workloads` select nothing, and what would.
fn no_case(plan: &Plan) -> String {
    let runnable: Vec<&str> = crate::workload::REGISTRY
        .iter()
        .filter(|w| plan.mechanisms.iter().any(|m| m.runs(**w)))
        .map(|w| w.id())
        .collect();
    let asked: Vec<&str> = plan.workloads.iter().map(|w| w.id()).collect();
    format!(
        "--workloads {} selects no case of the chosen mechanisms: they run {}; add one of those to --workloads or choose other --mechanisms",
        asked.join(","),
        runnable.join(", ")
    )
}

/// Where the report of a run goes: `--report`, else beside the JSON (`results/report` for
/// the default JSON, `<name>-report/` for any other, so runs never overwrite each other's).
pub fn report_dir(args: &RunArgs) -> PathBuf {
    if let Some(dir) = &args.report {
        return dir.clone();
    }
    if args.json == Path::new(DEFAULT_JSON) {
        return PathBuf::from("results/report");
    }
    let stem = args
        .json
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "results".into());
    parent_of(&args.json).join(format!("{stem}-report"))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Checks, before anything is measured, that the results file and the report can be
/// written: a long run must never be lost to a bad path at its end. Only the default
/// `results/` directory is created; any other directory must exist.
fn check_outputs(args: &RunArgs) -> Result<(), String> {
    let json = &args.json;
    let ends_in_slash = json.as_os_str().as_encoded_bytes().ends_with(b"/");
    if ends_in_slash || json.is_dir() {
        return Err(format!(
            "--json {} is a directory: give a file path such as {}",
            json.display(),
            json.join("latest.json").display()
        ));
    }
    let dir = parent_of(json);
    if json == Path::new(DEFAULT_JSON) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {} for the results: {e}", dir.display()))?;
    }
    writable_dir("--json", dir)?;
    if args.no_report {
        return Ok(());
    }
    let report = report_dir(args);
    if report.exists() && !report.is_dir() {
        return Err(format!(
            "--report {} is a file: the report is a directory (report.md, report.html, charts)",
            report.display()
        ));
    }
    if report.is_dir() {
        writable_dir("--report", &report)
    } else {
        writable_dir("--report", parent_of(&report))
    }
}

/// Fails unless `dir` exists and a file can be created in it (tried with a probe file).
fn writable_dir(option: &str, dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!(
            "{option}: the directory {} does not exist: create it or choose another path",
            dir.display()
        ));
    }
    let probe = dir.join(format!(".ipcbench-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("{option}: cannot write in {}: {e}", dir.display())),
    }
}

/// `ipcbench run`. Returns whether every case that could run succeeded.
pub fn run(args: &RunArgs, plan: Plan) -> anyhow::Result<bool> {
    let env = Environment::capture();
    let cases = plan.cases().len();
    eprintln!(
        "ipcbench: {} {}{}, about {} on a machine like the reference VM; {}",
        cases,
        plural(cases, "case", "cases"),
        match plan.repeat {
            1 => String::new(),
            k => format!(" x {k} repetitions"),
        },
        duration_label(plan.estimate_total()),
        plan.session.placement.describe()
    );
    for w in &env.warnings {
        eprintln!("ipcbench: warning: {w}");
    }
    if plan.messages.is_some_and(|n| n < 100) {
        eprintln!(
            "ipcbench: warning: --messages {} gives percentiles from so few samples that p99 and p99.9 are the slowest one or two; use 1000 or more for tails",
            plan.messages.unwrap_or(0)
        );
    }
    // The bar counts estimated milliseconds, so its ETA weighs a 1 MiB case above a 64 B one.
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(plan.estimate_total().as_millis() as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:30} {percent:>3}% {elapsed} (ETA {eta}) {msg}")
        {
            b.set_style(style);
        }
        b
    } else {
        ProgressBar::hidden()
    };
    let run = plan.run(env, |ev| match ev {
        Event::Floor => bar.set_message("measuring the floor"),
        Event::Warning(w) => bar.suspend(|| eprintln!("ipcbench: warning: {w}")),
        Event::Start(c) => bar.set_message(format!(
            "{} {} {}",
            c.subject.id(),
            c.workload.id(),
            size_label(c.size)
        )),
        Event::Done(c, _) | Event::Skip(c) => bar.inc(plan.estimate(c).as_millis() as u64),
    });
    bar.finish_and_clear();
    if let Some(sig) = crate::interrupt::interrupted() {
        // Every case's objects went with its session; an earlier results file stays intact.
        if run.results.is_empty() {
            anyhow::bail!(
                "interrupted by signal {sig}: stopped, cleaned up, no case had completed"
            );
        }
        let partial = partial_path(&args.json);
        let saved = save_results(&partial, &run)?;
        anyhow::bail!(
            "interrupted by signal {sig}: stopped and cleaned up; {} in {} (marked \"partial\": true), {} is untouched",
            match run.results.len() {
                1 => "the 1 completed case is".to_string(),
                n => format!("the {n} completed cases are"),
            },
            saved.display(),
            args.json.display()
        );
    }
    // The tables first: whatever happens to the files, the numbers reach the user.
    print!("{}", table::render(&run));
    let saved = save_results(&args.json, &run)?;
    println!("Results written to {}", saved.display());
    if !args.no_report {
        let dir = report_dir(args);
        let inputs = [Input {
            label: label_of(&args.json),
            run: run.clone(),
        }];
        content::write(&inputs, &dir)
            .with_context(|| format!("the results are in {}", saved.display()))?;
        println!("Report written to {}", dir.join("report.md").display());
    }
    let failed = run
        .results
        .iter()
        .filter(|r| r.status == Status::Error)
        .count();
    if failed > 0 {
        eprintln!(
            "ipcbench: {failed} {} failed; see the notes above and the \"reason\" fields in the JSON",
            plural(failed, "case", "cases")
        );
    }
    Ok(failed == 0)
}

/// `N case` or `N cases`.
pub fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `40 s`, `3 min`, `1 h 20 min`.
fn duration_label(d: Duration) -> String {
    let s = d.as_secs_f64().ceil() as u64;
    match s {
        0..=99 => format!("{s} s"),
        100..=5399 => format!("{} min", s.div_ceil(60)),
        _ => format!("{} h {} min", s / 3600, (s % 3600).div_ceil(60)),
    }
}

/// Where an interrupted run keeps what it completed: `<name>.partial.json` beside the JSON.
pub fn partial_path(json: &Path) -> PathBuf {
    let stem = json
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "results".into());
    parent_of(json).join(format!("{stem}.partial.json"))
}

/// Writes the results to `path`; if that fails after all (the paths were checked before the
/// sweep, but a disk can fill or a directory vanish), to a file in the temporary directory,
/// and the error names both. Returns where they are.
pub fn save_results(path: &Path, run: &crate::results::RunFile) -> anyhow::Result<PathBuf> {
    let Err(e) = write_atomically(path, run) else {
        return Ok(path.to_path_buf());
    };
    let fallback =
        std::env::temp_dir().join(format!("ipcbench-results-{}.json", std::process::id()));
    match write_atomically(&fallback, run) {
        Ok(()) => anyhow::bail!(
            "cannot write the results to {}: {e}; they were saved to {} instead",
            path.display(),
            fallback.display()
        ),
        Err(e2) => anyhow::bail!(
            "cannot write the results to {} ({e}) nor to {} ({e2}): they are lost",
            path.display(),
            fallback.display()
        ),
    }
}

/// `ipcbench list`.
pub fn list(args: &ListArgs) -> anyhow::Result<()> {
    if args.json {
        let doc = serde_json::json!({
            "mechanisms": backends::all()
                .map(|m| {
                    let mut v = serde_json::to_value(m.info())?;
                    v["clients_unsupported"] = serde_json::json!(m.fan_in().unsupported());
                    v["setup"] = serde_json::json!(m.setup_note());
                    Ok(v)
                })
                .collect::<Result<Vec<_>, serde_json::Error>>()?,
            "primitives": backends::sync::REGISTRY
                .iter()
                .map(|p| p.info())
                .filter(|i| !i.hidden)
                .collect::<Vec<_>>(),
            "limits": Limits::read(),
            "not_measured": backends::NOT_MEASURED
                .iter()
                .map(|(name, why)| serde_json::json!({ "name": name, "why": why }))
                .collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "{:<14} {:<16} {:<10} {:>6} {:<6} {:<10} description",
        "mechanism", "family", "boundaries", "copies", "named", "cross-host"
    );
    let yes = |b: bool| if b { "yes" } else { "no" };
    let params = backends::ChannelParams::new(64);
    for m in backends::all() {
        let i = m.info();
        println!(
            "{:<14} {:<16} {:<10} {:>6} {:<6} {:<10} {}",
            i.id,
            i.family.as_str(),
            yes(i.boundaries),
            m.copies(&params),
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
        if let Some(how) = m.setup_note() {
            println!("{:<14} setup: {how}", "");
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
    let fan_in: Vec<&str> = backends::all()
        .filter(|m| m.fan_in().unsupported().is_none())
        .map(|m| m.info().id)
        .collect();
    println!(
        "\n--clients (N clients, one server thread) runs on: {}",
        fan_in.join(", ")
    );
    println!("\nnot measured:");
    for (name, why) in backends::NOT_MEASURED {
        println!("  {name}: {why}");
    }
    println!("\nboundaries: one send arrives as one receive; copies: the payload's copies per message from the sender's");
    println!("message to the receiver's check, in the kernel and in user space (shm-*: 1 with --shm-read in-place);");
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
    Ok(())
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
    print!("{}", crate::report::compare::render(&c, args.allow_missing));
    Ok(!(args.fail_on_regression && c.regressions(args.allow_missing) > 0))
}

/// `ipcbench recommend`.
pub fn recommend(args: &RecommendArgs) -> anyhow::Result<()> {
    let full = load(&args.results)?;
    let run = crate::report::model::one_to_one(&full);
    let advice = match (args.clients, args.rate) {
        (Some(n), rate) => crate::report::recommend::advise_with_clients(
            &full, args.size, n as usize, rate, &args.need,
        ),
        (None, Some(rate)) => {
            crate::report::recommend::advise_at_rate(&run, args.size, rate, &args.need)
        }
        (None, None) => crate::report::recommend::advise(&run, args.size, args.pattern, &args.need),
    }
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

/// Where `ipcbench floor` runs and which bare loops `--reference` compares; `Err` is a
/// usage error (exit 2).
pub fn floor_plan(args: &FloorArgs) -> Result<(Placement, Selection), String> {
    let only = Selection::of(&args.mechanisms).map_err(|e| format!("--mechanisms: {e}"))?;
    Ok((
        Placement::plan(args.pin.unwrap_or_else(default_pin), args.cpus)?,
        only,
    ))
}

/// `ipcbench floor`.
pub fn floor(
    args: &FloorArgs,
    (placement, only): (Placement, Selection),
    peer_exe: std::path::PathBuf,
) -> anyhow::Result<()> {
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
    let floor = crate::floor::measure(&opts, &args.sizes);
    print!("{}", floor.render());
    if let Some(w) = crate::floor::wakeup_warning(&floor, opts.placement.peer_cpu) {
        eprintln!("ipcbench: warning: {w}");
    }
    if args.reference {
        use crate::floor::reference;
        let plan = reference::Plan {
            size: args.size,
            rounds: crate::bare::Rounds {
                warmup: (args.count / 10).max(1),
                count: args.count,
            },
            repeat: args.repeat,
        };
        println!(
            "\nbare loops beside ipcbench (verify {}):",
            opts.verify.as_str()
        );
        let rows = reference::compare(&opts, plan, &only, |what| eprintln!("  {what}"));
        print!("{}", reference::render(&rows, plan));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_that_cannot_be_written_are_saved_to_a_named_fallback() {
        let run: crate::results::RunFile =
            serde_json::from_str(include_str!("../tests/fixtures/base.json"))
                .expect("fixture parses");
        let bad = Path::new("/nonexistent-ipcbench-dir/results.json");
        let err = save_results(bad, &run)
            .expect_err("no such directory")
            .to_string();
        let fallback =
            std::env::temp_dir().join(format!("ipcbench-results-{}.json", std::process::id()));
        assert!(err.contains(&fallback.display().to_string()), "{err}");
        assert!(
            err.contains("/nonexistent-ipcbench-dir/results.json"),
            "{err}"
        );
        let saved = crate::report::load(&fallback).expect("the fallback is a results file");
        assert_eq!(saved.results.len(), run.results.len());
        let _ = std::fs::remove_file(&fallback);
    }

    #[test]
    fn durations_and_partial_paths_read_naturally() {
        assert_eq!(duration_label(Duration::from_secs(25)), "25 s");
        assert_eq!(duration_label(Duration::from_secs(1500)), "25 min");
        assert_eq!(duration_label(Duration::from_secs(7300)), "2 h 2 min");
        assert_eq!(
            partial_path(Path::new("results/latest.json")),
            Path::new("results/latest.partial.json")
        );
        assert_eq!(plural(1, "case", "cases"), "case");
    }
}
