//! Helpers for integration tests that run the real binary: a private scratch directory per
//! test (also used as the run's TMPDIR, so leak checks see only this test's objects).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub const EXE: &str = env!("CARGO_BIN_EXE_ipcbench");

/// The path of committed fixture results `tests/fixtures/NAME`.
pub fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

pub struct Scratch {
    pub root: PathBuf,
    pub tmp: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "ipcbench-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).expect("create scratch directory");
        Scratch { root, tmp }
    }

    pub fn json(&self) -> PathBuf {
        self.root.join("out.json")
    }

    /// `ipcbench ARGS` with this scratch directory as working directory (so default output
    /// paths land here, never in the source tree), TMPDIR, state directory and trace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(EXE);
        c.args(args)
            .current_dir(&self.root)
            .env("TMPDIR", &self.tmp)
            .env("IPCBENCH_STATE_DIR", self.root.join("state"))
            .env("IPCBENCH_TRACE", self.root.join("trace"));
        c
    }

    /// Runs `ipcbench ARGS` (see `command`) and waits for it.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run ipcbench")
    }

    /// Runs `ipcbench run ARGS --json <this scratch's results file>`, requires it to succeed
    /// (showing its output if not) and returns the results.
    pub fn sweep(&self, args: &[&str]) -> serde_json::Value {
        let json = self.json();
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--json", json.to_str().expect("UTF-8 scratch path")]);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        self.results()
    }

    /// The leak audit: nothing this test's runs created is left, as the kernel sees it
    /// (every traced queue, segment, semaphore set and name is gone), no private directory
    /// remains in TMPDIR and no record is left in the state directory.
    pub fn audit(&self) {
        assert_eq!(
            self.leftovers(),
            Vec::<String>::new(),
            "private directories left in TMPDIR"
        );
        let trace = std::fs::read_to_string(self.root.join("trace")).unwrap_or_default();
        for line in trace.lines() {
            let obj = ipcbench::cleanup::Object::from_trace(line)
                .unwrap_or_else(|| panic!("bad trace line {line:?}"));
            assert!(!obj.exists(), "{obj} left behind");
        }
        assert_eq!(
            list(&self.root.join("state")),
            Vec::<String>::new(),
            "records left in the state directory"
        );
    }

    /// Entries left in the run's TMPDIR (FIFOs, socket paths, private directories).
    pub fn leftovers(&self) -> Vec<String> {
        list(&self.tmp)
    }

    pub fn results(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.json()).expect("results file written");
        serde_json::from_str(&text).expect("results file is JSON")
    }
}

fn list(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
