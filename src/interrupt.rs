//! SIGINT and SIGTERM end a run cleanly: a signal thread kills the peers this process
//! started (their channels then fail, and every object is removed as the stack unwinds),
//! the sweep stops, no results file is written over an earlier one, and the process exits
//! with 128 + the signal number (130, 143).

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};

static INTERRUPTED: AtomicI32 = AtomicI32::new(0);
/// Peers alive right now (process ids of children this process started).
static PEERS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set
}

/// Blocks SIGINT and SIGTERM in this thread (and the threads it starts later) and starts
/// the thread that waits for them. Call first thing in `main`.
pub fn install() -> std::io::Result<()> {
    let set = signals();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    // The `signal` primitive's real-time signal is taken with sigtimedwait by the main
    // thread; blocked in every thread (all start after this), it can never kill the process.
    crate::backends::sync::block_handoff_signal()?;
    std::thread::Builder::new()
        .name("ipcbench-signals".into())
        .spawn(move || loop {
            if let Ok(sig) = set.wait() {
                INTERRUPTED.store(sig as i32, Ordering::SeqCst);
                if let Ok(peers) = PEERS.lock() {
                    for &pid in peers.iter() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            Signal::SIGKILL,
                        );
                    }
                }
            }
        })?;
    Ok(())
}

/// The signal that interrupted the run, if any.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

pub fn register_peer(pid: u32) {
    if let Ok(mut p) = PEERS.lock() {
        p.push(pid);
    }
    // A signal that came in while the peer was starting still reaches it.
    if interrupted().is_some() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}

pub fn unregister_peer(pid: u32) {
    if let Ok(mut p) = PEERS.lock() {
        p.retain(|&x| x != pid);
    }
}
