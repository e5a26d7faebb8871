//! Faults, done for real: signals to the parent, the parent killed outright, the peer killed
//! mid-run, concurrent runs, and a peer role handed bad arguments. After each, the leak
//! audit finds nothing left.

mod common;

use ipcbench::peer::protocol::{FailureKind, Reply, VERSION};

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{text, Scratch, EXE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Children of `pid` that are peers of a case (not the floor measurement's, nor a child
/// still between fork and exec), from /proc.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("__peer") && !cmd.contains("cacheline")
        })
        .collect()
}

/// Starts a long run of `mechanism` and waits until its peer is up.
fn long_run(s: &Scratch, mechanism: &str) -> (Child, u32) {
    long_run_of(s, &["--mechanisms", mechanism])
}

/// Starts a long run of what `selection` picks and waits until its peer is up.
fn long_run_of(s: &Scratch, selection: &[&str]) -> (Child, u32) {
    let json = s.json();
    let mut args = vec!["run"];
    args.extend_from_slice(selection);
    args.extend_from_slice(&[
        "--sizes",
        "64",
        "--messages",
        "1000000000",
        "--json",
        json.to_str().unwrap(),
    ]);
    let mut child = s
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let peer = first_child(&mut child);
    // Let it get into the timed loop.
    std::thread::sleep(Duration::from_millis(300));
    (child, peer)
}

/// Waits (bounded) for the run's peer to appear; kills and reaps the run if it never does.
fn first_child(child: &mut Child) -> u32 {
    peer_besides(child, None, Duration::from_secs(20))
}

/// Waits (bounded) for a peer other than `first`; kills and reaps the run if none comes.
fn another_child(child: &mut Child, first: u32) -> u32 {
    peer_besides(child, Some(first), Duration::from_secs(60))
}

/// The run's first peer other than `not`, polled for up to `bound`.
fn peer_besides(child: &mut Child, not: Option<u32>, bound: Duration) -> u32 {
    let t = Instant::now();
    loop {
        if let Some(&peer) = children(child.id()).iter().find(|&&p| Some(p) != not) {
            return peer;
        }
        if t.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no peer besides {not:?} within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_bounded(mut child: Child, bound: Duration) -> (Option<i32>, String, String) {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (st.code(), text(&out.stdout), text(&out.stderr));
        }
        if t.elapsed() > bound {
            // What it said until then tells where it hung.
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "did not exit within {bound:?}:\n{}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Kills a run with SIGKILL and waits (bounded) until its peer has died with it.
fn kill_run(child: Child, peer: u32) {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = wait_bounded(child, Duration::from_secs(5));
    let t = Instant::now();
    while !gone(peer) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the peer outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigint_and_sigterm_stop_the_run_clean_up_and_keep_earlier_results() {
    for (sig, code, mechanism) in [
        (Signal::SIGINT, 130, "fifo"),
        (Signal::SIGTERM, 143, "sysv-mq"),
        (Signal::SIGINT, 130, "shm-sysv-sem"),
    ] {
        let s = Scratch::new("signal");
        std::fs::write(s.json(), "earlier results").unwrap();
        let (child, peer) = long_run(&s, mechanism);
        kill(Pid::from_raw(child.id() as i32), sig).unwrap();
        let (status, _, err) = wait_bounded(child, Duration::from_secs(10));
        assert_eq!(status, Some(code), "{mechanism}: {err}");
        assert!(err.contains("interrupted"), "{err}");
        assert!(gone(peer), "the peer outlived the run");
        assert_eq!(
            std::fs::read_to_string(s.json()).unwrap(),
            "earlier results",
            "the earlier file is intact"
        );
        s.audit();
    }
}

#[test]
fn a_killed_peer_fails_the_case_promptly_naming_its_death() {
    for mechanism in [
        "fifo",
        "sysv-mq",
        // Untimed mq_send/mq_receive: the abort handle's wake-ups end the wait.
        "posix-mq",
        "unix-dgram",
        "shm-sysv-sem",
        "ipc-channel",
        "tokio-tcp",
    ] {
        let s = Scratch::new("peer-kill");
        let (child, peer) = long_run(&s, mechanism);
        kill(Pid::from_raw(peer as i32), Signal::SIGKILL).unwrap();
        // The latency case fails; the throughput case then runs its full billion messages,
        // so the run is interrupted once the first result is in.
        let t = Instant::now();
        loop {
            if s.json().exists() || t.elapsed() > Duration::from_secs(5) {
                break;
            }
            let next = children(child.id());
            if next.first().is_some_and(|&p| p != peer) {
                break; // the next case started: the first one has been recorded
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{mechanism}: the death took too long to notice"
        );
        kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
        let (status, _, _) = wait_bounded(child, Duration::from_secs(10));
        assert_eq!(status, Some(130));
        s.audit();
    }
}

#[test]
fn a_killed_peer_is_named_in_the_result() {
    let s = Scratch::new("peer-kill-result");
    let (child, peer) = long_run_of(
        &s,
        &["--mechanisms", "unix-stream", "--workloads", "latency"],
    );
    kill(Pid::from_raw(peer as i32), Signal::SIGKILL).unwrap();
    let (status, out, _) = wait_bounded(child, Duration::from_secs(10));
    assert_eq!(status, Some(1));
    let r = &s.results()["results"][0];
    assert_eq!(r["status"], "error");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("killed by signal 9 (SIGKILL)"),
        "{r}"
    );
    assert!(out.contains("ERROR [1]"));
    s.audit();
}

#[test]
fn a_peer_killed_in_a_setup_loop_fails_the_case_naming_it_and_leaves_nothing() {
    // Named sockets, queues with no end-of-file, segments, FIFOs, a handed-over pipe pair,
    // an HTTP server.
    for mechanism in [
        "unix-stream",
        "posix-mq",
        "sysv-mq",
        "shm-futex",
        "fifo",
        "pipe",
        #[cfg(feature = "http")]
        "http-unix",
        #[cfg(feature = "grpc")]
        "grpc-unix",
        #[cfg(feature = "dbus")]
        "dbus-bus",
        #[cfg(feature = "zmq")]
        "zmq-ipc",
    ] {
        let s = Scratch::new("setup-kill");
        let (child, peer) = long_run_of(&s, &["--mechanisms", mechanism, "--workloads", "setup"]);
        kill(Pid::from_raw(peer as i32), Signal::SIGKILL).unwrap();
        let (status, _, _) = wait_bounded(child, Duration::from_secs(10));
        assert_eq!(status, Some(1), "{mechanism}");
        let r = &s.results()["results"][0];
        assert_eq!(r["status"], "error", "{mechanism}: {r}");
        let reason = r["reason"].as_str().unwrap();
        assert!(
            reason.starts_with(mechanism) && reason.contains("killed by signal 9 (SIGKILL)"),
            "{mechanism}: {reason}"
        );
        s.audit();
    }
}

#[test]
fn killing_one_client_fails_the_fan_in_case_naming_it_and_ends_the_rest() {
    for mechanism in [
        "unix-stream",
        "posix-mq",
        "sysv-mq",
        "fifo",
        "shm-futex",
        "unix-dgram",
        "ipc-channel",
    ] {
        let s = Scratch::new("client-kill");
        let (mut child, _) = long_run_of(
            &s,
            &[
                "--mechanisms",
                mechanism,
                "--workloads",
                "latency",
                "--clients",
                "3",
                "--repeat",
                "1",
            ],
        );
        // Wait for all three clients, then let them get into their window.
        let t = Instant::now();
        let clients = loop {
            let c = children(child.id());
            if c.len() == 3 {
                break c;
            }
            if t.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{mechanism}: the clients never started");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(300));
        let victim = clients[1];
        kill(Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();
        let (status, out, _) = wait_bounded(child, Duration::from_secs(10));
        assert_eq!(status, Some(1), "{mechanism}: {out}");
        let r = &s.results()["results"][0];
        assert_eq!(r["status"], "error", "{mechanism}: {r}");
        let reason = r["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("of 3 (pid {victim})"))
                && reason.contains("killed by signal 9 (SIGKILL)"),
            "{mechanism}: {reason}"
        );
        for c in clients {
            assert!(gone(c), "{mechanism}: client {c} outlived the case");
        }
        s.audit();
    }
}

#[test]
fn a_killed_parent_takes_its_peer_and_clean_removes_only_what_it_left() {
    let s = Scratch::new("parent-kill");
    let (child, peer) = long_run(&s, "sysv-mq");
    kill_run(child, peer);
    // System V queues cannot be unlinked early: they are left, and recorded.
    let trace = std::fs::read_to_string(s.root.join("trace")).unwrap();
    let left: Vec<_> = trace
        .lines()
        .filter_map(ipcbench::cleanup::Object::from_trace)
        .collect();
    assert_eq!(left.len(), 2, "{trace}");
    assert!(left.iter().all(|o| o.exists()));
    // Someone else's queue, and a record of a run that is still alive: clean leaves both.
    let foreign = ipcbench::sys::sysv::MsgQueue::create().unwrap();
    let live_record = s
        .root
        .join("state")
        .join(format!("sysv-msg-{}", foreign.id()));
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let start = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    std::fs::write(
        &live_record,
        format!("pid={}\nstart={start}\nctime=0\n", std::process::id()),
    )
    .unwrap();
    let out = s.run(&["clean"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    for o in &left {
        assert!(said.contains(&format!("removed {o}")), "{said}");
        assert!(!o.exists(), "{o} survived clean");
    }
    assert!(
        !said.contains(&foreign.id().to_string()),
        "clean touched another program's queue: {said}"
    );
    assert!(ipcbench::cleanup::Object::SysvMsg(foreign.id()).exists());
    assert!(live_record.exists(), "a live run's record is kept");
    std::fs::remove_file(&live_record).unwrap();
    drop(foreign);
    s.audit();
}

#[test]
fn two_concurrent_runs_of_everything_both_succeed() {
    let (a, b) = (Scratch::new("concurrent-a"), Scratch::new("concurrent-b"));
    let start = |s: &Scratch| {
        let json = s.json();
        s.command(&[
            "run",
            "--mechanisms",
            "all",
            "--sizes",
            "64,64K",
            "--messages",
            "30",
            "--pin",
            "none",
            "--json",
            json.to_str().unwrap(),
            "--no-report",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (ca, cb) = (start(&a), start(&b));
    for (c, s) in [(ca, &a), (cb, &b)] {
        let (status, out, err) = wait_bounded(c, Duration::from_secs(240));
        assert_eq!(status, Some(0), "{out}\n{err}");
        let v = s.results();
        assert!(
            v["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] != "error"),
            "{v}"
        );
        s.audit();
    }
}

/// Runs the peer role with `args`, feeds it `input` on its control pipe and returns its
/// exit code and every reply it made (each line must be a well-formed reply).
fn peer_answers(args: &[&str], input: &[u8]) -> (Option<i32>, Vec<Reply>) {
    use std::io::Write;
    let mut child = std::process::Command::new(EXE)
        .arg("__peer")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The peer may have stopped reading already; that is its answer, not ours to judge.
    let _ = stdin.write_all(input);
    drop(stdin);
    let (code, out, _) = wait_bounded(child, Duration::from_secs(10));
    let replies = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    (code, replies)
}

#[test]
fn the_peer_role_refuses_bad_arguments_even_from_a_pipe() {
    for args in [
        vec!["--mechanism", "nope", "--size", "64", "--verify", "cheap"],
        vec!["--mechanism", "pipe", "--size", "0", "--verify", "cheap"],
        vec![
            "--mechanism",
            "pipe",
            "--size",
            "64",
            "--verify",
            "cheap",
            "--fds",
            "99",
        ],
        vec![
            "--mechanism",
            "fifo",
            "--size",
            "64",
            "--verify",
            "cheap",
            "--spec",
            "/etc",
        ],
        vec![
            "--mechanism",
            "tcp",
            "--size",
            "64",
            "--verify",
            "cheap",
            "--spec",
            "80:zz",
        ],
    ] {
        // The parent's side of the conversation: its hello, then nothing.
        let hello = format!("{{\"kind\":\"hello\",\"version\":{VERSION}}}\n");
        let (code, replies) = peer_answers(&args, hello.as_bytes());
        assert!(matches!(code, Some(2) | Some(3)), "{args:?}: {code:?}");
        let last = replies
            .last()
            .unwrap_or_else(|| panic!("{args:?}: no reply"));
        assert!(
            matches!(last, Reply::Error { failure: f } if matches!(f.kind, FailureKind::Refused | FailureKind::Backend)),
            "{args:?}: {last:?}"
        );
    }
}

/// The iceoryx2 domains a run recorded in its trace.
/// The bus daemons a scratch run started, from its trace, and whether any still runs.
#[cfg(feature = "dbus")]
fn daemons_running(s: &Scratch) -> Vec<String> {
    let trace = std::fs::read_to_string(s.root.join("trace")).unwrap_or_default();
    let names: Vec<String> = trace
        .lines()
        .filter_map(ipcbench::cleanup::Object::from_trace)
        .filter_map(|o| match o {
            ipcbench::cleanup::Object::Registered { kind, name } if kind == "dbus-daemon" => {
                Some(name)
            }
            _ => None,
        })
        .collect();
    assert!(!names.is_empty(), "no daemon was traced: {trace}");
    names
        .iter()
        .filter(|n| !ipcbench::backends::dbus_daemon_pids(n).is_empty())
        .cloned()
        .collect()
}

#[cfg(feature = "dbus")]
#[test]
fn the_bus_daemon_is_stopped_and_removed_on_every_way_out() {
    let bus = ["--mechanisms", "dbus-bus", "--workloads", "latency"];
    // An interrupt: the run stops, the channel and its daemon go with it.
    let s = Scratch::new("dbus-sigint");
    let (child, peer) = long_run_of(&s, &bus);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let (status, _, err) = wait_bounded(child, Duration::from_secs(10));
    assert_eq!(status, Some(130), "{err}");
    assert!(gone(peer));
    assert_eq!(daemons_running(&s), Vec::<String>::new());
    s.audit();
    // An error: the peer killed mid-run fails the case (the bus reports its name gone).
    let s = Scratch::new("dbus-peer-kill");
    let (child, peer) = long_run_of(&s, &bus);
    kill(Pid::from_raw(peer as i32), Signal::SIGKILL).unwrap();
    let (status, _, _) = wait_bounded(child, Duration::from_secs(10));
    assert_eq!(status, Some(1));
    let r = &s.results()["results"][0];
    assert!(
        r["reason"].as_str().unwrap().contains("killed by signal 9"),
        "{r}"
    );
    assert_eq!(daemons_running(&s), Vec::<String>::new());
    s.audit();
    // The parent killed: the daemon dies with it; its directory and record stay until
    // `ipcbench clean`, which removes them.
    let s = Scratch::new("dbus-parent-kill");
    let (child, peer) = long_run_of(&s, &bus);
    kill_run(child, peer);
    let t = Instant::now();
    while !daemons_running(&s).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the daemon outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !s.leftovers().is_empty(),
        "the daemon's directory is left for clean"
    );
    let out = s.run(&["clean"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("dbus-daemon"),
        "{}",
        text(&out.stdout)
    );
    s.audit();
}

#[cfg(feature = "dbus")]
#[test]
fn without_a_dbus_daemon_the_bus_case_is_unsupported_naming_the_package() {
    let s = Scratch::new("dbus-missing");
    let json = s.json();
    let out = s
        .command(&[
            "run",
            "--mechanisms",
            "dbus-bus,dbus-p2p",
            "--workloads",
            "latency",
            "--sizes",
            "64",
            "--messages",
            "50",
            "--json",
            json.to_str().unwrap(),
        ])
        .env("PATH", s.root.join("no-such-dir"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let results = s.results();
    let by = |m: &str| {
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["mechanism"] == m)
            .cloned()
            .unwrap()
    };
    let bus = by("dbus-bus");
    assert_eq!(bus["status"], "unsupported", "{bus}");
    let why = bus["reason"].as_str().unwrap();
    assert!(why.contains("apt-get install dbus-daemon"), "{why}");
    // Peer to peer needs no daemon.
    assert_eq!(by("dbus-p2p")["status"], "ok");
    s.audit();
}

#[cfg(feature = "iceoryx2")]
fn iox2_domains(s: &Scratch) -> Vec<ipcbench::cleanup::Object> {
    std::fs::read_to_string(s.root.join("trace"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("iox2-domain "))
        .filter_map(ipcbench::cleanup::Object::from_trace)
        .collect()
}

#[cfg(feature = "iceoryx2")]
#[test]
fn an_iceoryx2_peer_killed_mid_run_leaves_nothing() {
    let s = Scratch::new("iox2-peer-kill");
    let (child, peer) = long_run(&s, "iceoryx2");
    kill(Pid::from_raw(peer as i32), Signal::SIGKILL).unwrap();
    // The latency case fails; stop the run before its billion-message throughput case.
    let t = Instant::now();
    while children(child.id()).first() == Some(&peer) || children(child.id()).is_empty() {
        if s.json().exists() || t.elapsed() > Duration::from_secs(5) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let (status, _, err) = wait_bounded(child, Duration::from_secs(10));
    assert_eq!(status, Some(130), "{err}");
    assert!(!iox2_domains(&s).is_empty());
    // The dead peer's node, ports and services and the domain's global segment are gone.
    s.audit();
}

/// Starts an iceoryx2 run, kills it with SIGKILL once its peer is up and waits for the peer
/// to die with it; returns the one domain the run left (recorded, both nodes dead).
#[cfg(feature = "iceoryx2")]
fn killed_iceoryx2_run(s: &Scratch) -> ipcbench::cleanup::Object {
    let (child, peer) = long_run(s, "iceoryx2");
    kill_run(child, peer);
    let mut left: Vec<_> = iox2_domains(s).into_iter().filter(|d| d.exists()).collect();
    assert_eq!(
        left.len(),
        1,
        "the running case's domain is left, and recorded"
    );
    left.remove(0)
}

/// `ipcbench clean` succeeds, names `domain` as removed, and the domain is gone.
#[cfg(feature = "iceoryx2")]
fn clean_removes(s: &Scratch, domain: &ipcbench::cleanup::Object) {
    let out = s.run(&["clean"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains(&format!("removed {domain}")),
        "{}",
        text(&out.stdout)
    );
    assert!(!domain.exists(), "{domain} survived clean");
    s.audit();
}

#[cfg(feature = "iceoryx2")]
#[test]
fn a_killed_iceoryx2_run_is_recorded_and_clean_removes_its_domain() {
    let s = Scratch::new("iox2-parent-kill");
    let domain = killed_iceoryx2_run(&s);
    clean_removes(&s, &domain);
}

/// A process killed partway through creating its node leaves either a node without its
/// monitor (iceoryx2 cannot see it) or one without its details (iceoryx2 cannot clean it);
/// a run interrupted as its peer starts hits this. Both are made here from a real run's
/// nodes, and the domain must still go entirely.
#[cfg(feature = "iceoryx2")]
#[test]
fn a_domain_with_half_made_nodes_is_removed_entirely() {
    let s = Scratch::new("iox2-half-nodes");
    let domain = killed_iceoryx2_run(&s);
    let ipcbench::cleanup::Object::Registered { name, .. } = &domain else {
        panic!("{domain} is not an iceoryx2 domain");
    };
    let files = ipcbench::backends::iox2_domain_files(name);
    let file_name = |p: &std::path::Path| p.file_name().unwrap().to_str().unwrap().to_string();
    // Node details sit in a directory named by the node id.
    let details: Vec<_> = files
        .iter()
        .filter(|p| file_name(p).ends_with("_node.details"))
        .collect();
    assert_eq!(details.len(), 2, "a parent and a peer node: {files:?}");
    let id = file_name(details[0].parent().unwrap());
    let monitor = files
        .iter()
        .filter(|p| file_name(p).starts_with(&format!("iox2_{name}_{id}.node_monitor")))
        .collect::<Vec<_>>();
    assert!(!monitor.is_empty(), "node {id} has a monitor: {files:?}");
    for m in monitor {
        std::fs::remove_file(m).unwrap();
    }
    std::fs::remove_file(details[1]).unwrap();
    clean_removes(&s, &domain);
}

#[test]
fn an_interrupted_run_keeps_its_completed_cases_in_a_partial_file() {
    let s = Scratch::new("partial");
    std::fs::write(s.json(), "earlier results").unwrap();
    let json = s.json();
    // Short sync cases (300 hand-offs, 300 ms of locking), repeated: several complete
    // within the first seconds, and the run is far from over.
    let mut child = s
        .command(&[
            "run",
            "--mechanisms",
            "sync",
            "--workloads",
            "handoff,lock",
            "--messages",
            "300",
            "--repeat",
            "4",
            "--json",
            json.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Each case has a peer of its own: once a second one is up, the first case is over,
    // however long a loaded machine made it take.
    let first = first_child(&mut child);
    another_child(&mut child, first);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    // A bound for a hang, generous for a loaded machine (10 s was once not enough in CI).
    let (status, _, err) = wait_bounded(child, Duration::from_secs(30));
    assert_eq!(status, Some(130), "{err}");
    let partial = s.root.join("out.partial.json");
    assert!(
        err.contains(&partial.display().to_string()),
        "the message names the file: {err}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&partial).unwrap()).unwrap();
    assert_eq!(v["partial"], true);
    let results = v["results"].as_array().unwrap();
    assert!(!results.is_empty(), "{err}");
    for r in results {
        assert_eq!(
            r["status"], "ok",
            "the interrupted case is not a result: {r}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(s.json()).unwrap(),
        "earlier results"
    );
    s.audit();
}

#[test]
fn a_peer_killed_mid_stream_of_a_zero_copy_mechanism_fails_the_case_and_leaves_nothing() {
    for mechanism in [
        "pipe-splice",
        "cma-read",
        "cma-write",
        "memfd-pass",
        "memfd-fresh",
    ] {
        let s = Scratch::new("zero-copy-kill");
        let (child, peer) = long_run_of(
            &s,
            &["--mechanisms", mechanism, "--workloads", "throughput"],
        );
        kill(Pid::from_raw(peer as i32), Signal::SIGKILL).unwrap();
        let (status, out, err) = wait_bounded(child, Duration::from_secs(10));
        assert_eq!(status, Some(1), "{mechanism}: {out}{err}");
        let r = &s.results()["results"][0];
        assert_eq!(r["mechanism"], mechanism);
        assert_eq!(r["status"], "error", "{r}");
        assert!(
            r["reason"]
                .as_str()
                .unwrap()
                .contains("killed by signal 9 (SIGKILL)"),
            "{mechanism}: {r}"
        );
        assert!(gone(peer));
        s.audit();
    }
}
