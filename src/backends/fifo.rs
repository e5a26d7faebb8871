//! `fifo`: two named pipes in a private directory, removed once both processes opened them.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::sys::stat::{Mode, SFlag};

use super::stream::{dup_files, StreamChannel};
use super::{expect_file_type, Channel, ChannelParams, Family, Mechanism, MechanismInfo, Offer};
use crate::error::BackendError;
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

impl Mechanism for Fifo {
    fn info(&self) -> &'static MechanismInfo {
        &INFO
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
                    StreamChannel::new(INFO.id, File::from(rx), File::from(tx))
                        .with_names(dir)
                        .with_dup(dup_files),
                ))
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
        let rx = open_fifo(&to, OFlag::O_RDONLY).map_err(|e| err("open", &to, e))?;
        expect_file_type(INFO.id, &rx, SFlag::S_IFIFO)?;
        let tx = open_fifo(&from, OFlag::O_WRONLY).map_err(|e| err("open", &from, e))?;
        expect_file_type(INFO.id, &tx, SFlag::S_IFIFO)?;
        Ok(Box::new(StreamChannel::new(
            INFO.id,
            File::from(rx),
            File::from(tx),
        )))
    }
}
