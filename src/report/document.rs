//! A report as a list of blocks, rendered to plain text for the terminal, to
//! GitHub-flavoured markdown (charts as SVG files beside it) or to one self-contained HTML
//! file (charts inline, no scripts, no network). The content is built once; each renderer
//! supplies only syntax.

use std::fmt::Write;

pub enum Block {
    Heading(u8, String),
    Para(String),
    List(Vec<String>),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// Numbered notes that the cells above refer to as `[n]`.
    Notes(Vec<String>),
    /// `file` is the SVG's name beside report.md.
    Chart {
        file: String,
        title: String,
        svg: String,
    },
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The markdown text and the chart files it refers to.
pub fn to_markdown(blocks: &[Block]) -> (String, Vec<(String, String)>) {
    let mut out = String::new();
    let mut files = Vec::new();
    for b in blocks {
        match b {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "{} {text}\n", "#".repeat(*level as usize));
            }
            Block::Para(text) => {
                let _ = writeln!(out, "{text}\n");
            }
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(out, "- {i}");
                }
                out.push('\n');
            }
            Block::Table { header, rows } => {
                let _ = writeln!(
                    out,
                    "| {} |",
                    header
                        .iter()
                        .map(|h| md_cell(h))
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
                let _ = writeln!(out, "|{}", " --- |".repeat(header.len()));
                for r in rows {
                    let _ = writeln!(
                        out,
                        "| {} |",
                        r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | ")
                    );
                }
                out.push('\n');
            }
            Block::Notes(notes) => {
                for (i, n) in notes.iter().enumerate() {
                    let _ = writeln!(out, "[{}] {}  ", i + 1, md_cell(n));
                }
                out.push('\n');
            }
            Block::Chart { file, title, svg } => {
                let _ = writeln!(out, "![{title}]({file})\n");
                files.push((file.clone(), svg.clone()));
            }
        }
    }
    (out, files)
}

/// Markdown's `code` and **bold** marks dropped, for the terminal.
fn plain(s: &str) -> String {
    s.replace("**", "").replace('`', "")
}

/// Plain text for the terminal: aligned tables (first column left, the rest right), notes
/// under them; charts are left to the report.
pub fn to_text(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Heading(_, text) => {
                let _ = writeln!(out, "{}", plain(text));
            }
            Block::Para(text) => {
                let _ = writeln!(out, "{}", plain(text));
            }
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(out, "- {}", plain(i));
                }
                out.push('\n');
            }
            Block::Table { header, rows } => {
                let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
                // A row with only its first cell filled is a divider: it does not widen column 1.
                let divider = |r: &[String]| r.iter().skip(1).all(|c| c.is_empty());
                for r in rows.iter().filter(|r| !divider(r)) {
                    for (i, c) in r.iter().enumerate() {
                        widths[i] = widths[i].max(c.chars().count());
                    }
                }
                let line = |cells: &[String]| {
                    let mut l = String::new();
                    for (i, c) in cells.iter().enumerate() {
                        if i == 0 {
                            l.push_str(&format!("{c:<w$}", w = widths[0]));
                        } else {
                            l.push_str(&format!("  {c:>w$}", w = widths[i]));
                        }
                    }
                    l.trim_end().to_string()
                };
                let head = line(header);
                let _ = writeln!(out, "{head}\n{}", "-".repeat(head.chars().count()));
                for r in rows {
                    if divider(r) {
                        let _ = writeln!(out, "{}", r[0]);
                    } else {
                        let _ = writeln!(out, "{}", line(r));
                    }
                }
                out.push('\n');
            }
            Block::Notes(notes) => {
                let _ = writeln!(out, "Notes:");
                for (i, n) in notes.iter().enumerate() {
                    let _ = writeln!(out, "  [{}] {}", i + 1, plain(n));
                }
                out.push('\n');
            }
            Block::Chart { .. } => {}
        }
    }
    out
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Markdown-style `code` and **bold** spans become `<code>` and `<strong>` in HTML;
/// everything else is escaped.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", escape(part));
            continue;
        }
        for (j, piece) in escape(part).split("**").enumerate() {
            if j % 2 == 1 {
                let _ = write!(out, "<strong>{piece}</strong>");
            } else {
                out.push_str(piece);
            }
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:90%}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
td:first-child,th:first-child{text-align:left}th{background:#f0f0f0}figure{margin:1.5em 0}\
figcaption{font-weight:bold;margin-bottom:.5em}code{background:#f4f4f4;padding:0 3px}";

pub fn to_html(title: &str, blocks: &[Block]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(title)
    );
    for b in blocks {
        match b {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "<h{level}>{}</h{level}>", inline(text));
            }
            Block::Para(text) => {
                let _ = writeln!(out, "<p>{}</p>", inline(text));
            }
            Block::List(items) => {
                out.push_str("<ul>");
                for i in items {
                    let _ = write!(out, "<li>{}</li>", inline(i));
                }
                out.push_str("</ul>\n");
            }
            Block::Table { header, rows } => {
                out.push_str("<table><tr>");
                for h in header {
                    let _ = write!(out, "<th>{}</th>", inline(h));
                }
                out.push_str("</tr>\n");
                for r in rows {
                    out.push_str("<tr>");
                    for c in r {
                        let _ = write!(out, "<td>{}</td>", inline(c));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table>\n");
            }
            Block::Notes(notes) => {
                out.push_str("<p class=\"notes\">");
                for (i, n) in notes.iter().enumerate() {
                    let _ = write!(out, "[{}] {}<br>", i + 1, inline(n));
                }
                out.push_str("</p>\n");
            }
            // The chart carries its own title (and a <title> for screen readers).
            Block::Chart { svg, .. } => {
                let _ = writeln!(out, "<figure>{svg}</figure>");
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}
