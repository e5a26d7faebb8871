//! The README cannot drift: its example output is what this build prints for the committed
//! reference results, its usage block names exactly the options the CLI has, and every
//! field its results-file sketch shows is one the schema writes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use ipcbench::results::RunFile;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("README.md")
}

/// The text between `<!-- NAME:start -->` and `<!-- NAME:end -->`, without the code fence.
fn section(text: &str, name: &str) -> String {
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let a = text
        .find(&start)
        .unwrap_or_else(|| panic!("README has no {start}"));
    let b = text
        .find(&end)
        .unwrap_or_else(|| panic!("README has no {end}"));
    text[a + start.len()..b]
        .lines()
        .filter(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// The mechanisms and sizes the README's example shows.
const EXAMPLE_MECHANISMS: [&str; 7] = [
    "pipe",
    "posix-mq",
    "unix-stream",
    "tcp",
    "shm-spin",
    "shm-futex",
    "ipc-channel",
];
const EXAMPLE_SIZES: [usize; 2] = [64, 65536];

/// The latency and throughput tables of the reference run, for the example's mechanisms
/// and sizes, exactly as `ipcbench run` prints them.
fn example() -> String {
    let mut run: RunFile = ipcbench::report::load(&root().join("results/reference/results.json"))
        .expect("the reference results load");
    run.results.retain(|r| {
        EXAMPLE_MECHANISMS.contains(&r.mechanism.as_str()) && EXAMPLE_SIZES.contains(&r.size)
    });
    run.config.sizes = EXAMPLE_SIZES.to_vec();
    let text = ipcbench::report::table::render(&run);
    let end = text.find("CPU per message").unwrap_or(text.len());
    text[..end].trim().to_string()
}

#[test]
fn the_example_output_is_what_this_build_prints_for_the_reference_run() {
    let want = example();
    let have = section(&readme(), "example");
    assert!(
        have == want,
        "README's example is out of date; replace the block between the example markers with:\n\n{want}\n"
    );
}

/// `--long` options in a piece of text.
fn flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("--") {
        let name: String = text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '-')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

#[test]
fn the_usage_block_names_exactly_the_options_of_each_subcommand() {
    let usage = section(&readme(), "usage");
    let cli = ipcbench::cli::Cli::command();
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        if name == "help" {
            continue;
        }
        let lines: Vec<&str> = usage
            .lines()
            .skip_while(|l| !l.starts_with(&format!("ipcbench {name}")))
            .enumerate()
            .take_while(|(i, l)| *i == 0 || l.starts_with(' '))
            .map(|(_, l)| l)
            .collect();
        assert!(
            !lines.is_empty(),
            "README's usage block has no `ipcbench {name}`"
        );
        let documented = flags(&lines.join("\n"));
        let actual: BTreeSet<String> = sub
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long().map(String::from))
            .filter(|l| l != "help")
            .collect();
        assert_eq!(documented, actual, "README's usage of `ipcbench {name}`");
    }
}

/// Every key of a JSON value, recursively.
fn keys(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                out.insert(k.clone());
                keys(v, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

#[test]
fn every_field_of_the_schema_sketch_is_written_by_this_build() {
    let sketch = section(&readme(), "schema");
    let shown: BTreeSet<String> = sketch
        .split('"')
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[1].trim_start().starts_with(':'))
        .map(|w| w[0].to_string())
        .collect();
    // The reference run as this build writes it (schema-1 names are read and rewritten).
    let run = ipcbench::report::load(Path::new(&root().join("results/reference/results.json")))
        .expect("the reference results load");
    let mut written = BTreeSet::new();
    keys(&serde_json::to_value(&run).unwrap(), &mut written);
    // Fields the reference run has no occasion to write.
    for conditional in [
        "partial",
        "rate",
        "offered_per_sec",
        "achieved_per_sec",
        "send_lag_ns",
        "saturated",
        "load",
        "closed_loop_max_per_sec",
        "slo_ns",
        "knee_per_sec",
        "points",
        "label",
        "send_lag_p99_ns",
        "one_way_ns",
        "delivered",
        "lost",
        "loss",
        "lock",
        "ops_per_sec",
        "parent_ops_per_sec",
        "peer_ops_per_sec",
        "fairness",
        "counter",
        "writes",
        "uncontended_ns_per_pair",
        "clients",
        "fan_in",
        "server_cpu",
        "client_cpus",
        "msgs_per_sec",
        "window_ns",
        "per_client",
        "messages",
        "p50_ns",
        "p99_ns",
    ] {
        written.insert(conditional.to_string());
    }
    let unknown: Vec<&String> = shown.difference(&written).collect();
    assert!(
        unknown.is_empty(),
        "README shows fields nothing writes: {unknown:?}"
    );
    assert!(sketch.contains(&format!("\"schema\": {}", ipcbench::results::SCHEMA)));
}

/// The README's list of the public API is exactly what the crate root exports.
#[test]
fn the_stability_section_lists_exactly_the_crate_roots_exports() {
    let text = section(&readme(), "api");
    let listed: BTreeSet<String> = text
        .split("exported at the crate root (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("the list of exported items")
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).expect("src/lib.rs");
    let mut exported = BTreeSet::new();
    for block in lib.split("pub use ").skip(1) {
        let items = block.split(';').next().unwrap_or("");
        let items = items.split_once('{').map_or(items, |(_, list)| list);
        for item in items.split([',', '}']) {
            let name = item.trim().rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() {
                exported.insert(name.to_string());
            }
        }
    }
    assert_eq!(
        listed, exported,
        "README's Stability section against src/lib.rs"
    );
}
