//! The large-messages view: for runs with messages of 64 KiB and more, each mechanism's
//! one-way throughput against size as a fraction of single-thread memcpy at that size, with
//! the copies of the payload its path makes (as `ipcbench list` states them).

use super::chart;
use super::document::Block;
use super::model::{find, line_across, mechanisms, sizes};
use super::recommend::channel_params;
use super::{size_label, THROUGHPUT};
use crate::results::{RunFile, Status};

/// The smallest size the view starts at: below it, per-message costs dominate.
pub const FROM: usize = 64 << 10;

/// Mechanisms the view leaves out: calibration loops and deliberate faults.
fn shown(family: &str) -> bool {
    !matches!(family, "calibration" | "test" | "sync")
}

/// The view's blocks: a table of throughput and memcpy fractions by size, and its chart
/// (`large-messages{suffix}.svg`); nothing when the run has no large throughput results.
pub fn blocks(run: &RunFile, suffix: &str, out: &mut Vec<Block>) {
    let big: Vec<usize> = sizes(run).into_iter().filter(|&s| s >= FROM).collect();
    if big.is_empty() {
        return;
    }
    let mut rows: Vec<(f64, Vec<String>)> = Vec::new();
    let mut lines = Vec::new();
    for (m, family) in mechanisms(run).into_iter().filter(|(_, f)| shown(f)) {
        let copies = crate::backends::by_id(&m)
            .map(|b| b.copies(&channel_params(run, FROM)).to_string())
            .unwrap_or_else(|| "?".into());
        let mut cells = vec![m.clone(), copies];
        let line = line_across(
            run,
            &m,
            THROUGHPUT,
            &big,
            |r| r.throughput.as_ref().and(r.x_copy),
            |r| {
                let gbs = r.throughput.as_ref().map_or(0.0, |t| t.bytes_per_sec / 1e9);
                let x = r.x_copy.unwrap_or(0.0);
                format!(
                    "{m} at {}: {gbs:.2} GB/s, x{x:.2} memcpy",
                    size_label(r.size)
                )
            },
        );
        let (mut last, mut any) = (0.0, false);
        for &s in &big {
            let cell = match find(run, &m, THROUGHPUT, s) {
                Some(r) if r.status == Status::Ok => match (r.throughput.as_ref(), r.x_copy) {
                    (Some(t), Some(x)) => {
                        any = true;
                        last = x;
                        format!("{:.2} GB/s x{x:.2}", t.bytes_per_sec / 1e9)
                    }
                    (Some(t), None) => {
                        any = true;
                        format!("{:.2} GB/s", t.bytes_per_sec / 1e9)
                    }
                    _ => "-".into(),
                },
                Some(r) if r.status == Status::Unsupported => "unsupported".into(),
                Some(_) => "ERROR".into(),
                None => "-".into(),
            };
            cells.push(cell);
        }
        if !any {
            continue;
        }
        rows.push((last, cells));
        if !line.points.is_empty() {
            lines.push((family, line));
        }
    }
    if rows.is_empty() {
        return;
    }
    // Fastest at the largest size first.
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    out.push(Block::Heading(3, "Large messages".into()));
    out.push(Block::Para(format!(
        "One-way throughput from {} up, and its fraction of single-thread memcpy at the same size (xN; memcpy measured in this run's floor; past the last-level cache both fall). copies: the payload's copies per message from the sender's message to the receiver's check, kernel and user space, with this run's settings (`ipcbench list` states them). A receiver that checks in place (memfd-pass, cma-write, shm with --shm-read in-place) reads only the words --verify cheap compares, so its throughput can pass memcpy's.",
        size_label(FROM)
    )));
    let mut header = vec!["mechanism".to_string(), "copies".to_string()];
    header.extend(big.iter().map(|&s| size_label(s)));
    out.push(Block::Table {
        header,
        rows: rows.into_iter().map(|(_, r)| r).collect(),
    });
    let panel = chart::Panel {
        family: "fraction of memcpy".into(),
        lines: lines.into_iter().map(|(_, l)| l).collect(),
    };
    let c = chart::SmallMultiples {
        title: "Large messages: throughput as a fraction of memcpy".into(),
        unit: chart::Unit::Ratio,
        sizes: big,
        panels: vec![panel],
    };
    if let Some(svg) = chart::small_multiples(&c) {
        out.push(Block::Chart {
            file: format!("large-messages{suffix}.svg"),
            title: c.title.clone(),
            svg,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::document::to_markdown;

    fn run() -> RunFile {
        let mut run: RunFile = serde_json::from_str(include_str!("../../tests/fixtures/base.json"))
            .expect("fixture parses");
        for r in &mut run.results {
            if r.workload == THROUGHPUT && r.size == FROM {
                r.x_copy = r.throughput.as_ref().map(|t| t.bytes_per_sec / 20e9);
            }
        }
        run
    }

    #[test]
    fn large_messages_are_ranked_by_their_memcpy_fraction_with_their_copies() {
        let mut out = Vec::new();
        blocks(&run(), "", &mut out);
        let (md, _) = to_markdown(&out);
        assert!(md.contains("### Large messages"), "{md}");
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ")).skip(1).collect();
        let fractions: Vec<f64> = rows
            .iter()
            .filter_map(|l| l.rsplit_once(" x")?.1.trim_end_matches(" |").parse().ok())
            .collect();
        assert!(fractions.len() >= 5, "{md}");
        assert!(
            fractions.windows(2).all(|w| w[0] >= w[1]),
            "fastest first: {fractions:?}"
        );
        assert!(
            md.contains("| shm-futex | 2 |"),
            "shm copies in and out: {md}"
        );
        // posix-mq could not carry 64 KiB: no number at any large size, no row.
        assert!(!md.contains("| posix-mq |"), "{md}");
        let svg = out
            .iter()
            .find_map(|b| match b {
                Block::Chart { file, svg, .. } if file == "large-messages.svg" => Some(svg),
                _ => None,
            })
            .expect("the chart");
        assert!(
            svg.contains(">shm-futex<") && svg.contains(">x0.0"),
            "{svg}"
        );
    }

    #[test]
    fn a_run_of_small_messages_has_no_large_view() {
        let mut run = run();
        run.results.retain(|r| r.size < FROM);
        let mut out = Vec::new();
        blocks(&run, "", &mut out);
        assert!(out.is_empty());
    }
}
