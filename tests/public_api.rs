//! An outside crate's view of ipcbench: this file uses only what the crate root exports
//! (`tests/layering.rs` checks that it names no module), as a team benchmarking its own
//! mechanism would. It has its own `main` (no test harness) because the peer processes
//! are this program re-run, and must find the mechanisms defined here.
//!
//! Checked: a user mechanism runs beside built-in ones with every byte verified; one that
//! drops a message fails its case under its own name; an object a user mechanism declares
//! and records is removed by `clean` once the process that made it is gone.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use ipcbench::{
    BackendError, Channel, ChannelParams, Family, Leftovers, Mechanism, MechanismInfo, Offer,
    RunFile, Status,
};

/// A socket pair, optionally dropping every 50th message it is asked to send.
struct Pair {
    info: &'static MechanismInfo,
    drops: bool,
}

struct End {
    sock: UnixStream,
    drops: bool,
    sent: u64,
}

impl Channel for End {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.sent += 1;
        if self.drops && self.sent % 50 == 0 {
            return Ok(());
        }
        self.sock.write_all(msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.read_exact(buf)?;
        Ok(buf.len())
    }
}

impl Mechanism for Pair {
    fn info(&self) -> &'static MechanismInfo {
        self.info
    }

    fn offer(&self, _params: &ChannelParams) -> Result<Offer, BackendError> {
        let id = self.info.id;
        let (mine, theirs) =
            UnixStream::pair().map_err(|e| BackendError::new(id, "create", "a socket pair", e))?;
        let drops = self.drops;
        Ok(Offer {
            spec: String::new(),
            inherit: vec![OwnedFd::from(theirs)],
            connect: Box::new(move |_| {
                Ok(Box::new(End {
                    sock: mine,
                    drops,
                    sent: 0,
                }))
            }),
        })
    }

    fn join(
        &self,
        _spec: &str,
        mut fds: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        let fd = fds
            .pop()
            .ok_or_else(|| BackendError::invalid(self.info.id, "descriptors", "no socket"))?;
        Ok(Box::new(End {
            sock: UnixStream::from(fd),
            drops: self.drops,
            sent: 0,
        }))
    }
}

static GOOD: Pair = Pair {
    info: &MechanismInfo::new("user-pair", Family::Custom, "a plain socket pair"),
    drops: false,
};
static DROPPING: Pair = Pair {
    info: &MechanismInfo::new("user-dropping", Family::Custom, "drops every 50th message"),
    drops: true,
};
/// A mechanism that leaves files of its own in the temporary directory (here only its
/// declaration is used: a child process records a file and dies without removing it).
struct Leaky;

static FILES: Leftovers = Leftovers {
    kind: "user-file",
    exists: |name| std::env::temp_dir().join(name).exists(),
    remove: |name| std::fs::remove_file(std::env::temp_dir().join(name)),
};

impl Mechanism for Leaky {
    fn info(&self) -> &'static MechanismInfo {
        static INFO: MechanismInfo =
            MechanismInfo::new("user-leaky", Family::Custom, "leaves a file per channel");
        &INFO
    }

    fn leftovers(&self) -> Option<&'static Leftovers> {
        Some(&FILES)
    }

    fn offer(&self, params: &ChannelParams) -> Result<Offer, BackendError> {
        GOOD.offer(params)
    }

    fn join(
        &self,
        spec: &str,
        fds: Vec<OwnedFd>,
        params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        GOOD.join(spec, fds, params)
    }
}

static MINE: [&dyn Mechanism; 3] = [&GOOD, &DROPPING, &Leaky];

/// The child's part: make a file, record it, and exit without removing it (as a killed
/// run would); prints the file's name.
const LEAK_ROLE: &str = "IPCBENCH_PUBLIC_API_LEAK";

fn leak_and_die() -> ! {
    let name = format!("ipcbench-user-file-{}", std::process::id());
    std::fs::write(std::env::temp_dir().join(&name), b"left behind").expect("write the file");
    ipcbench::record_object("user-file", &name).expect("record it");
    println!("{name}");
    std::process::exit(0)
}

fn run(
    dir: &std::path::Path,
    name: &str,
    mechanisms: &str,
    workloads: &str,
) -> (ExitCode, RunFile) {
    let json = dir.join(format!("{name}.json"));
    let code = ipcbench::main_with_args(
        &MINE,
        [
            "public_api",
            "run",
            "--mechanisms",
            mechanisms,
            "--sizes",
            "64,4K",
            "--workloads",
            workloads,
            "--messages",
            "400",
            "--verify",
            "full",
            "--pin",
            "none",
            "--timeout",
            "20",
            "--no-report",
            "--json",
            json.to_str().expect("a UTF-8 scratch path"),
        ],
    );
    let text = std::fs::read_to_string(&json).expect("the run wrote its results");
    (code, serde_json::from_str(&text).expect("results parse"))
}

fn main() {
    ipcbench::peer_entry(&MINE);
    if std::env::var_os(LEAK_ROLE).is_some() {
        leak_and_die();
    }
    let dir = std::env::temp_dir().join(format!("ipcbench-public-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");

    // Beside two built-ins, verified byte for byte, configured in code.
    assert!(ipcbench::workloads().any(|(id, _)| id == "throughput"));
    let ok = ipcbench::Run::new(&["user-pair", "unix-stream", "shm-futex"])
        .sizes(&[64, 4096])
        .workloads(&["latency", "throughput"])
        .option("--messages=400")
        .option("--verify=full")
        .option("--pin=none")
        .option("--no-report")
        .json(dir.join("ok.json"))
        .start(&MINE)
        .expect("the run");
    assert_eq!(
        ok.results.len(),
        3 * 2 * 2,
        "every mechanism, size and workload"
    );
    for r in &ok.results {
        assert_eq!(
            r.status,
            Status::Ok,
            "{} {}: {:?}",
            r.mechanism,
            r.workload,
            r.reason
        );
    }
    assert!(ok.results.iter().any(|r| r.mechanism == "user-pair"));
    let bad_option = ipcbench::Run::new(&["user-pair"])
        .option("--verify=sometimes")
        .start(&MINE);
    assert!(
        matches!(bad_option, Err(ipcbench::RunError::Usage(_))),
        "{bad_option:?}"
    );

    // A lost message fails the case under the mechanism's own name.
    let (code, bad) = run(&dir, "bad", "user-dropping", "throughput");
    assert_eq!(code, ExitCode::FAILURE);
    let r = &bad.results[0];
    assert_eq!(
        (r.mechanism.as_str(), r.status),
        ("user-dropping", Status::Error)
    );
    let why = r.reason.as_deref().unwrap_or("");
    assert!(why.contains("lost, duplicated or reordered"), "{why}");

    // What a user mechanism declares, `clean` removes once its maker is gone.
    assert!(
        ipcbench::record_object("user-file", "not-ours").is_err(),
        "names start with ipcbench-"
    );
    let out = std::process::Command::new(std::env::current_exe().expect("this program"))
        .env(LEAK_ROLE, "1")
        .output()
        .expect("the leaking child");
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let left = std::env::temp_dir().join(&name);
    assert!(
        out.status.success() && left.exists(),
        "the child left {left:?}"
    );
    let code = ipcbench::main_with_args(&MINE, ["public_api", "clean"]);
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(!left.exists(), "clean removed {left:?}");

    std::fs::remove_dir_all(&dir).expect("scratch removed");
    println!(
        "public_api: a user mechanism ran beside built-ins, a faulty one failed by name, and clean removed a declared leftover"
    );
}
