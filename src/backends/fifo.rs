//! `fifo`: two named pipes in a private directory, removed once both processes opened them.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::sys::stat::{Mode, SFlag};

use super::stream::{dup_raw, StreamChannel};
use super::{expect_file_type, Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer};
use crate::error::BackendError;
use crate::sys::fd::RawFile;
use crate::sys::fs::{check_private_dir, PrivateDir};

pub struct Fifo;

static INFO: MechanismInfo = MechanismInfo {
    id: "fifo",
    family: Family::MessagePassing,
    summary: "named pipes (mkfifo), one per direction, in a private 0700 directory",
    boundaries: false,
    kernel_copies: 2,
    lossy: false,
    named: true,
    cross_host: false,
    built_on: None,
    fan_in: true,
    fd_passing: false,
    portable: true,
    trade_off:
        "a pipe with a filesystem name, so unrelated processes can meet; still a byte stream",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

const TO_PEER: &str = "to-peer";
const FROM_PEER: &str = "from-peer";

fn open_fifo(path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    open(
        path,
        flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
}

fn err(action: &'static str, path: &Path, e: impl Into<std::io::Error>) -> BackendError {
    BackendError::new(INFO.id, action, path.display().to_string(), e)
}

fn set_blocking(fd: &OwnedFd, path: &Path) -> Result<(), BackendError> {
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL).map_err(|e| err("configure", path, e))?;
    let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags)).map_err(|e| err("configure", path, e))?;
    Ok(())
}

/// The server's end of the request FIFO every fan-in client writes.
struct Requests(File);

impl Channel for Requests {
    fn send(&mut self, _msg: &[u8]) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        super::stream::read_message(&mut self.0, buf)
    }

    fn poll_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(self.0.as_fd())
    }
}

/// The server's end of one fan-in client's reply FIFO, with that client's directory
/// (removed once every client has opened its FIFOs).
struct Replies {
    tx: File,
    dir: Option<PrivateDir>,
}

impl Channel for Replies {
    fn send(&mut self, msg: &[u8]) -> std::io::Result<()> {
        std::io::Write::write_all(&mut self.tx, msg)
    }

    fn recv(&mut self, _buf: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    fn peer_attached(&mut self) -> Result<(), BackendError> {
        super::remove_names(INFO.id, &mut self.dir)
    }
}

impl Mechanism for Fifo {
    fn info(&self) -> &'static MechanismInfo {
        &INFO
    }

    fn close_is_seen(&self) -> bool {
        true
    }

    fn duplex(&self) -> bool {
        true
    }

    fn offer(&self, _params: &ChannelParams) -> Result<Offer, BackendError> {
        let dir = PrivateDir::create().map_err(|e| {
            BackendError::new(INFO.id, "create", "a private directory", e)
                .hint("set TMPDIR to a writable directory")
        })?;
        for name in [TO_PEER, FROM_PEER] {
            let path = dir.path().join(name);
            nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR)
                .map_err(|e| err("create", &path, e))?;
        }
        Ok(Offer {
            spec: dir.path().display().to_string(),
            inherit: Vec::new(),
            connect: Box::new(move |rv| {
                let from = dir.path().join(FROM_PEER);
                let to = dir.path().join(TO_PEER);
                // Opening a FIFO blocks until the other side opens it; non-blocking opens
                // keep the wait bounded and let a dead peer be noticed.
                let rx = open_fifo(&from, OFlag::O_RDONLY | OFlag::O_NONBLOCK)
                    .map_err(|e| err("open", &from, e))?;
                let tx = loop {
                    match open_fifo(&to, OFlag::O_WRONLY | OFlag::O_NONBLOCK) {
                        Ok(fd) => break fd,
                        Err(Errno::ENXIO) => rv.pause().map_err(|e| err("open", &to, e))?,
                        Err(e) => return Err(err("open", &to, e)),
                    }
                };
                set_blocking(&rx, &from)?;
                set_blocking(&tx, &to)?;
                Ok(Box::new(
                    StreamChannel::new(INFO.id, RawFile(rx), RawFile(tx))
                        .with_names(dir)
                        .with_dup(dup_raw),
                ))
            }),
        })
    }

    fn fan_in(&self) -> super::fanin::Form {
        super::fanin::Form::Own
    }

    fn fan_in_limit(&self, params: &ChannelParams, _clients: usize) -> Option<String> {
        (params.size > libc::PIPE_BUF).then(|| {
            format!(
                "clients share one request FIFO, and only writes of at most PIPE_BUF ({} bytes) are atomic: larger messages from several clients would interleave",
                libc::PIPE_BUF
            )
        })
    }

    /// One request FIFO that every client writes (messages of at most PIPE_BUF bytes, so
    /// writes never interleave) and a reply FIFO per client. Each client gets a private
    /// directory of the one-to-one layout, its `from-peer` a hard link to the shared FIFO,
    /// so it joins exactly as a one-to-one peer does.
    fn offer_fan_in(
        &self,
        params: &ChannelParams,
        clients: usize,
    ) -> Result<super::fanin::FanInOffer, BackendError> {
        if let Some(why) = self.fan_in_limit(params, clients) {
            return Err(BackendError::invalid(INFO.id, "--clients", &why));
        }
        let mut dirs = Vec::with_capacity(clients);
        for _ in 0..clients {
            let dir = PrivateDir::create().map_err(|e| {
                BackendError::new(INFO.id, "create", "a private directory", e)
                    .hint("set TMPDIR to a writable directory")
            })?;
            let to = dir.path().join(TO_PEER);
            nix::unistd::mkfifo(&to, Mode::S_IRUSR | Mode::S_IWUSR)
                .map_err(|e| err("create", &to, e))?;
            let from = dir.path().join(FROM_PEER);
            match dirs.first() {
                None => nix::unistd::mkfifo(&from, Mode::S_IRUSR | Mode::S_IWUSR)
                    .map_err(|e| err("create", &from, e))?,
                Some(first) => {
                    let shared = PrivateDir::path(first).join(FROM_PEER);
                    std::fs::hard_link(&shared, &from).map_err(|e| err("link", &from, e))?
                }
            }
            dirs.push(dir);
        }
        let offers = dirs
            .iter()
            .map(|d| super::fanin::ClientOffer {
                spec: d.path().display().to_string(),
                inherit: Vec::new(),
            })
            .collect();
        Ok(super::fanin::FanInOffer {
            clients: offers,
            connect: Box::new(move |rv| {
                let shared = dirs[0].path().join(FROM_PEER);
                let rx = open_fifo(&shared, OFlag::O_RDONLY | OFlag::O_NONBLOCK)
                    .map_err(|e| err("open", &shared, e))?;
                set_blocking(&rx, &shared)?;
                let mut channels: Vec<Box<dyn Channel>> = Vec::with_capacity(dirs.len() + 1);
                channels.push(Box::new(Requests(File::from(rx))));
                for dir in dirs {
                    let to = dir.path().join(TO_PEER);
                    let tx = loop {
                        match open_fifo(&to, OFlag::O_WRONLY | OFlag::O_NONBLOCK) {
                            Ok(fd) => break fd,
                            Err(Errno::ENXIO) => rv.pause().map_err(|e| err("open", &to, e))?,
                            Err(e) => return Err(err("open", &to, e)),
                        }
                    };
                    set_blocking(&tx, &to)?;
                    channels.push(Box::new(Replies {
                        tx: File::from(tx),
                        dir: Some(dir),
                    }));
                }
                let n = channels.len() - 1;
                let inbound = vec![super::fanin::Inbound {
                    channel: 0,
                    client: None,
                }];
                Ok(Box::new(super::fanin::PollHub::new(
                    INFO.id,
                    channels,
                    inbound,
                    (1..=n).collect(),
                )?) as Box<dyn super::fanin::Hub>)
            }),
        })
    }

    fn join(
        &self,
        spec: &str,
        _inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        let dir = Path::new(spec);
        check_private_dir(dir).map_err(|why| BackendError::invalid(INFO.id, spec, &why))?;
        let to = dir.join(TO_PEER);
        let from = dir.join(FROM_PEER);
        // Writing end first: the parent holds its reading end before it waits for ours,
        // and once its wait ends (we opened `to`) our writer exists, so its first read
        // cannot see a FIFO without writers (end-of-file).
        let tx = open_fifo(&from, OFlag::O_WRONLY).map_err(|e| err("open", &from, e))?;
        expect_file_type(INFO.id, &tx, SFlag::S_IFIFO)?;
        let rx = open_fifo(&to, OFlag::O_RDONLY).map_err(|e| err("open", &to, e))?;
        expect_file_type(INFO.id, &rx, SFlag::S_IFIFO)?;
        Ok(Box::new(StreamChannel::new(
            INFO.id,
            RawFile(rx),
            RawFile(tx),
        )))
    }
}
