//! A mechanism of your own, measured beside built-in ones exactly as `ipcbench run`
//! measures them: two processes, every message checked, the same report and JSON.
//!
//! `framed-socketpair` is a small stand-in for a team's own IPC layer: a Unix socket pair
//! whose messages carry a 4-byte length prefix. The parent makes the pair and the peer
//! process inherits one end.
//!
//! ```sh
//! cargo run --release --example custom_mechanism            # beside unix-stream and shm-futex
//! cargo run --release --example custom_mechanism -- run --mechanisms framed-socketpair,pipe
//! ```
//!
//! With no arguments it runs a quick comparison at 64 B and 64 KiB with every byte checked
//! and writes `results/custom.json` and `results/custom-report/`.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use ipcbench::{BackendError, Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer};

struct FramedSocketPair;

static INFO: MechanismInfo = MechanismInfo {
    boundaries: true,
    trade_off: "our framing over a socket pair: what does the length prefix cost?",
    ..MechanismInfo::new(
        "framed-socketpair",
        Family::Custom,
        "a Unix socket pair with a 4-byte length before every message",
    )
};

/// One end: the socket, and a scratch buffer for the length prefix.
struct Framed(UnixStream);

impl Channel for Framed {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let len = u32::try_from(msg.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message over 4 GiB"))?;
        self.0.write_all(&len.to_le_bytes())?;
        self.0.write_all(msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut len = [0u8; 4];
        self.0.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a frame of {len} bytes for a buffer of {}", buf.len()),
            ));
        }
        self.0.read_exact(&mut buf[..len])?;
        Ok(len)
    }
}

impl Mechanism for FramedSocketPair {
    fn info(&self) -> &'static MechanismInfo {
        &INFO
    }

    fn offer(&self, _params: &ChannelParams) -> Result<Offer, BackendError> {
        let (mine, theirs) = UnixStream::pair()
            .map_err(|e| BackendError::new(INFO.id, "create", "a socket pair", e))?;
        Ok(Offer {
            spec: String::new(),
            inherit: vec![OwnedFd::from(theirs)],
            connect: Box::new(move |_| Ok(Box::new(Framed(mine)))),
        })
    }

    fn join(
        &self,
        _spec: &str,
        mut inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        let fd = inherited
            .pop()
            .ok_or_else(|| BackendError::invalid(INFO.id, "inherited descriptors", "no socket"))?;
        Ok(Box::new(Framed(UnixStream::from(fd))))
    }
}

static MINE: [&dyn Mechanism; 1] = [&FramedSocketPair];

fn main() -> ExitCode {
    if std::env::args().len() > 1 {
        return ipcbench::main_with(&MINE);
    }
    ipcbench::main_with_args(
        &MINE,
        [
            "custom_mechanism",
            "run",
            "--quick",
            "--mechanisms",
            "framed-socketpair,unix-stream,shm-futex",
            "--sizes",
            "64,64K",
            "--workloads",
            "latency,throughput",
            "--verify",
            "full",
            "--json",
            "results/custom.json",
        ],
    )
}
