//! The layering the README states holds in the source: the system call wrappers and the
//! mechanisms never reach up into the layers that drive them, and the schema imports only
//! plain data types.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn sys_and_backends_never_reach_up() {
    let above = [
        "peer",
        "session",
        "runner",
        "cleanup",
        "report",
        "workload",
        "subject",
        "commands",
        "cli",
        "floor",
        "matrix",
        "interrupt",
    ];
    let mut files = Vec::new();
    sources(&src().join("sys"), &mut files);
    sources(&src().join("backends"), &mut files);
    assert!(files.len() > 20, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for m in above {
            for pat in [
                format!("crate::{m}::"),
                format!("crate::{m};"),
                format!("crate::{m}::{{"),
            ] {
                assert!(
                    !text.contains(&pat),
                    "{} reaches up into `{m}`",
                    f.display()
                );
            }
        }
    }
}

#[test]
fn the_schema_imports_only_plain_data() {
    let text = std::fs::read_to_string(src().join("results.rs")).unwrap();
    let uses: Vec<&str> = text.lines().filter(|l| l.contains("crate::")).collect();
    for l in &uses {
        assert!(
            [
                "crate::environment::Environment",
                "crate::placement::",
                "crate::stats::LatencySummary"
            ]
            .iter()
            .any(|ok| l.contains(ok)),
            "results.rs uses {l:?}"
        );
    }
}

/// The public API test and the example use only what the crate root exports, as an
/// outside crate would: no `ipcbench::module::` path, and no module inside a `use
/// ipcbench::{...}` list.
#[test]
fn the_public_api_test_and_example_name_no_module() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for file in ["tests/public_api.rs", "examples/custom_mechanism.rs"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("ipcbench::") {
            rest = &rest[at + "ipcbench::".len()..];
            let item: String = if let Some(list) = rest.strip_prefix('{') {
                list.split('}').next().unwrap_or("").to_string()
            } else {
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect()
            };
            // A module is a lower-case segment with a path after it (`Run::new` is a
            // type's function, `main_with` a function).
            let module = item
                .split(',')
                .map(str::trim)
                .any(|i| i.contains("::") && i.starts_with(|c: char| c.is_ascii_lowercase()));
            assert!(!module, "{file} reaches into a module: ipcbench::{item}");
        }
    }
}
