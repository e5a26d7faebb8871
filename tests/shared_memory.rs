//! Shared memory: every wake-up strategy over every segment kind carries messages intact;
//! the rings survive millions of messages under full verification; spinning on one CPU is
//! refused, not hung; and no segment, name or semaphore set outlives a run.

mod common;

use std::time::Duration;

use common::{text, Scratch};
use ipcbench::backends;
use ipcbench::backends::shm::Segment;
use ipcbench::message::Verify;
use ipcbench::placement::{Pin, Placement};
use ipcbench::session::{Session, SessionOptions};
use ipcbench::workload::latency::round_trips;
use ipcbench::workload::throughput::stream;

/// `SHM_DEST` from <linux/shm.h>: the segment is marked for removal (libc lacks it).
const SHM_DEST: i32 = 0o1000;

const STRATEGIES: [&str; 7] = [
    "shm-spin",
    "shm-futex",
    "shm-eventfd",
    "shm-posix-sem",
    "shm-sysv-sem",
    "shm-condvar",
    "shm-adaptive",
];

fn run_ok(s: &Scratch, args: &[&str]) -> serde_json::Value {
    let v = s.sweep(args);
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["status"], "ok", "{r}");
    }
    v
}

fn every_strategy_over(segment: &str) {
    let s = Scratch::new(segment);
    // The ring strategies by name: the shm family also holds memfd-pass and memfd-fresh,
    // which have no segment to choose.
    let strategies = STRATEGIES.join(",");
    // --pin none: spinning backs off to sched_yield, so a busy test machine cannot stall it.
    let v = run_ok(
        &s,
        &[
            "--mechanisms",
            &strategies,
            "--shm-segment",
            segment,
            "--sizes",
            "1,4K,1M",
            "--messages",
            "40",
            "--verify",
            "full",
            "--pin",
            "none",
        ],
    );
    assert_eq!(
        v["results"].as_array().unwrap().len(),
        STRATEGIES.len() * 3 * 2
    );
    assert_eq!(v["config"]["shm_segment"], segment);
    s.audit();
}

#[test]
fn every_strategy_over_posix_segments() {
    every_strategy_over("posix");
}

#[test]
fn every_strategy_over_sysv_segments() {
    every_strategy_over("sysv");
}

#[test]
fn every_strategy_over_memfd_segments() {
    every_strategy_over("memfd");
}

#[test]
fn rings_stay_correct_over_millions_of_wrapping_messages() {
    // 100-byte messages in a one-page ring wrap at every offset; every byte is checked.
    let s = Scratch::new("stress");
    let v = run_ok(
        &s,
        &[
            "--mechanisms",
            "shm-futex",
            "--workloads",
            "throughput",
            "--sizes",
            "100",
            "--shm-ring",
            "4K",
            "--messages",
            "2000000",
            "--verify",
            "full",
        ],
    );
    assert_eq!(v["results"][0]["messages"], 2_000_000);
    let v = run_ok(
        &s,
        &[
            "--mechanisms",
            "shm-spin",
            "--workloads",
            "throughput,latency",
            "--sizes",
            "100",
            "--shm-ring",
            "4K",
            "--messages",
            "300000",
            "--verify",
            "full",
            "--pin",
            "none",
        ],
    );
    assert_eq!(v["results"][0]["messages"], 300_000);
}

#[test]
fn in_place_reads_check_every_byte_where_it_lies() {
    // Messages checked in their slots, wrapping a one-page ring at 100 bytes, and 1 MiB
    // messages two to a ring; a full check of every byte either way.
    let s = Scratch::new("in-place");
    for (sizes, ring) in [("100", "4K"), ("1M", "2M")] {
        let v = run_ok(
            &s,
            &[
                "--mechanisms",
                "shm-futex,shm-adaptive",
                "--workloads",
                "throughput,latency",
                "--sizes",
                sizes,
                "--shm-ring",
                ring,
                "--shm-read",
                "in-place",
                "--messages",
                "3000",
                "--verify",
                "full",
                "--pin",
                "none",
            ],
        );
        assert_eq!(v["config"]["shm_read"], "in-place");
        assert_eq!(v["results"].as_array().unwrap().len(), 4);
        assert_eq!(
            v["config"]["spin_source"],
            "the built-in default (no wake-up floor was measured)"
        );
    }
    s.audit();
}

#[test]
fn recommend_sets_shm_adaptive_against_spin_and_futex_with_its_budget() {
    let s = Scratch::new("adaptive");
    run_ok(
        &s,
        &[
            "--mechanisms",
            "shm-spin,shm-futex,shm-adaptive",
            "--workloads",
            "latency",
            "--sizes",
            "64",
            "--messages",
            "300",
            "--pin",
            "none",
            "--spin-us",
            "7",
            "--no-report",
        ],
    );
    let json = s.json();
    let out = s.run(&[
        "recommend",
        "--results",
        json.to_str().unwrap(),
        "--size",
        "64",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    let line = t
        .lines()
        .skip_while(|l| !l.contains("shm-adaptive"))
        .nth(1)
        .unwrap_or_else(|| panic!("no shm-adaptive pick:\n{t}"));
    for part in [
        "x shm-spin's",
        "x shm-futex's",
        "spin budget 7.00 µs: --spin-us",
    ] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    s.audit();
}

#[test]
fn spinning_on_one_cpu_is_refused() {
    let s = Scratch::new("spin-same");
    let json = s.json();
    let out = s.run(&[
        "run",
        "--mechanisms",
        "shm-spin",
        "--pin",
        "same",
        "--sizes",
        "64",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for r in s.results()["results"].as_array().unwrap() {
        assert_eq!(r["status"], "unsupported");
        assert!(
            r["reason"]
                .as_str()
                .unwrap()
                .contains("spinning needs two CPUs"),
            "{r}"
        );
    }
}

#[test]
fn oversized_messages_name_the_ring_option() {
    let s = Scratch::new("ring-small");
    let json = s.json();
    let out = s.run(&[
        "run",
        "--mechanisms",
        "shm-futex",
        "--shm-ring",
        "100",
        "--sizes",
        "8K",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(
        s.results()["config"]["shm_ring"],
        4096,
        "the ring used (a page), not the 100 bytes asked for"
    );
    let r = &s.results()["results"][0];
    assert_eq!(r["status"], "unsupported");
    assert!(r["reason"].as_str().unwrap().contains("--shm-ring"), "{r}");
}

fn opts(segment: Segment) -> SessionOptions {
    let mut o = SessionOptions::new(
        Verify::Full,
        Placement::plan(Pin::None, None).unwrap(),
        env!("CARGO_BIN_EXE_ipcbench").into(),
        Duration::from_secs(10),
    );
    o.shm_segment = segment;
    o.shm_ring = 64 << 10;
    o
}

/// (segment name or id, semaphore set id) from the spec the peer was given.
fn objects(spec: &str) -> (String, Option<i32>) {
    let mut seg = String::new();
    let mut sem = None;
    for part in spec.split(';') {
        match part.split_once('=') {
            Some(("seg", v)) => seg = v.to_string(),
            Some(("sem", v)) => sem = v.parse().ok(),
            _ => {}
        }
    }
    (seg, sem)
}

/// Whether anyone could still attach the segment by its name or id: a System V segment
/// marked for removal (SHM_DEST) lingers only until both processes detach.
fn segment_exists(seg: &str) -> bool {
    match seg.split_once(':') {
        Some(("posix", name)) => nix::sys::mman::shm_open(
            name,
            nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        )
        .is_ok(),
        Some(("sysv", id)) => {
            // SAFETY: shmid_ds is plain old data and IPC_STAT writes at most one of it.
            let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
            // SAFETY: `ds` is valid and writable for the call.
            let found = unsafe { libc::shmctl(id.parse().unwrap(), libc::IPC_STAT, &mut ds) == 0 };
            found && ds.shm_perm.mode as i32 & SHM_DEST == 0
        }
        _ => false,
    }
}

/// Whether the segment still exists at all (marked for removal or not).
fn segment_remains(seg: &str) -> bool {
    match seg.split_once(':') {
        Some(("sysv", id)) => {
            // SAFETY: as in `segment_exists`.
            let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
            // SAFETY: `ds` is valid and writable for the call.
            unsafe { libc::shmctl(id.parse().unwrap(), libc::IPC_STAT, &mut ds) == 0 }
        }
        _ => false,
    }
}

fn sem_set_exists(id: i32) -> bool {
    // SAFETY: semid_ds is plain old data; IPC_STAT writes at most one of it.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT takes a pointer to a semid_ds.
    unsafe { libc::semctl(id, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) == 0 }
}

#[test]
fn named_objects_go_once_attached_and_semaphores_after_the_run() {
    for segment in [Segment::Posix, Segment::Sysv] {
        for id in STRATEGIES {
            let m = backends::by_id(id).unwrap();
            let mut s = Session::start(m, 4096, &opts(segment)).unwrap_or_else(|e| panic!("{e}"));
            let (seg, sem) = objects(s.peer_spec());
            // Both sides hold the segment: its name (or id) is already gone.
            assert!(!segment_exists(&seg), "{id}: {seg} still visible");
            round_trips(&mut s, 50, None).unwrap_or_else(|e| panic!("{e}"));
            stream(&mut s, 50).unwrap_or_else(|e| panic!("{e}"));
            s.finish().unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !segment_exists(&seg) && !segment_remains(&seg),
                "{id}: {seg} left behind"
            );
            if let Some(sem) = sem {
                assert!(
                    !sem_set_exists(sem),
                    "{id}: semaphore set {sem} left behind"
                );
            }
        }
    }
}

#[test]
fn a_dead_peer_leaves_no_semaphore_set_and_unblocks_every_strategy() {
    for id in STRATEGIES {
        let m = backends::by_id(id).unwrap();
        let mut s = Session::start(m, 64, &opts(Segment::Sysv)).unwrap_or_else(|e| panic!("{e}"));
        let (seg, sem) = objects(s.peer_spec());
        let pid = s.peer_pid().unwrap() as i32;
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        });
        let err = match round_trips(&mut s, 100_000_000, None) {
            Ok(_) => panic!("{id}: survived its peer"),
            Err(e) => e.to_string(),
        };
        killer.join().unwrap();
        assert!(err.contains("killed by signal 9"), "{id}: {err}");
        drop(s);
        assert!(!segment_remains(&seg), "{id}: {seg} left behind");
        if let Some(sem) = sem {
            assert!(
                !sem_set_exists(sem),
                "{id}: semaphore set {sem} left behind"
            );
        }
    }
}

/// `HugePages_Free` from /proc/meminfo (0 when the line is missing).
fn huge_pages_free() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn huge_pages_are_used_when_reserved_and_refused_by_name_when_not() {
    let s = Scratch::new("hugepages");
    let args = |segment: &'static str| {
        [
            "--mechanisms",
            "shm-futex",
            "--sizes",
            "4K",
            "--workloads",
            "latency",
            "--messages",
            "50",
            "--verify",
            "full",
            "--pin",
            "none",
            "--shm-hugepages",
            "--shm-segment",
            segment,
        ]
    };
    let v = s.sweep(&args("posix"));
    let r = &v["results"][0];
    assert_eq!(r["status"], "unsupported", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("--shm-segment memfd or sysv"),
        "{r}"
    );
    // A 4 KiB case's segment fits one 2 MiB page: it runs where one is free, and is
    // refused naming the setting where none is.
    let free = huge_pages_free();
    let v = s.sweep(&args("memfd"));
    let r = &v["results"][0];
    if free >= 1 {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(v["config"]["shm_hugepages"], true);
    } else {
        assert_eq!(r["status"], "unsupported", "{r}");
        let why = r["reason"].as_str().unwrap();
        assert!(
            why.contains("vm.nr_hugepages") && why.contains("0 are free"),
            "{why}"
        );
    }
    s.audit();
}
