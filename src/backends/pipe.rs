//! `pipe`: one anonymous pipe per direction, created by the parent and inherited by the peer.

use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;

use super::stream::{dup_raw, StreamChannel};
use super::{
    expect_fds, expect_file_type, expect_no_spec, Channel, ChannelParams, Family, Mechanism,
    MechanismInfo, Offer,
};
use crate::error::BackendError;
use crate::sys::fd::RawFile;

/// How a new pipe pair comes about, for `list` and the `setup` workload.
pub(crate) const SETUP: &str = "a new pair is pipe2(2) twice plus passing the peer's two ends over a Unix socket (SCM_RIGHTS): an anonymous pipe has no name to open";

pub struct Pipe;

static INFO: MechanismInfo = MechanismInfo {
    id: "pipe",
    family: Family::MessagePassing,
    summary: "anonymous pipes (pipe2), one per direction, inherited by the peer",
    boundaries: false,
    kernel_copies: 2,
    lossy: false,
    named: false,
    cross_host: false,
    built_on: None,
    fan_in: true,
    fd_passing: false,
    portable: true,
    trade_off: "simplest; a byte stream (no boundaries) between related processes; the 64 KiB pipe buffer makes large messages slow",
    verified: true,
    busy_waits: false,
    calibrates: None,
    in_all: true,
};

/// Two pipes: (parent's read end, parent's write end, peer's read end, peer's write end).
pub(super) fn pipe_pair(mechanism: &'static str) -> Result<[OwnedFd; 4], BackendError> {
    let make = || {
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| {
            BackendError::new(mechanism, "create", "a pipe", e)
                .hint("raise the open-file limit with ulimit -n")
        })
    };
    let (to_peer_r, to_peer_w) = make()?;
    let (from_peer_r, from_peer_w) = make()?;
    Ok([from_peer_r, to_peer_w, to_peer_r, from_peer_w])
}

/// The parent's side of [`pipe_pair`]: the peer inherits its two ends, and connecting
/// yields a framed stream over the parent's two.
pub(super) fn offer_pipes(mechanism: &'static str) -> Result<Offer, BackendError> {
    let [rx, tx, peer_rx, peer_tx] = pipe_pair(mechanism)?;
    Ok(Offer {
        spec: String::new(),
        inherit: vec![peer_rx, peer_tx],
        connect: Box::new(move |_| {
            Ok(Box::new(
                StreamChannel::new(mechanism, RawFile(rx), RawFile(tx))
                    .with_dup(dup_raw)
                    .with_poll(std::os::fd::AsFd::as_fd),
            ))
        }),
    })
}

/// The peer's end: descriptors 3 (read) and 4 (write), both checked to be pipes.
pub(super) fn join_pipes(
    mechanism: &'static str,
    spec: &str,
    fds: Vec<OwnedFd>,
) -> Result<Box<dyn Channel>, BackendError> {
    expect_no_spec(mechanism, spec)?;
    let [rx, tx] = expect_fds::<2>(mechanism, fds)?;
    expect_file_type(mechanism, &rx, SFlag::S_IFIFO)?;
    expect_file_type(mechanism, &tx, SFlag::S_IFIFO)?;
    Ok(Box::new(StreamChannel::new(
        mechanism,
        RawFile(rx),
        RawFile(tx),
    )))
}

impl Mechanism for Pipe {
    fn info(&self) -> &'static MechanismInfo {
        &INFO
    }

    fn close_is_seen(&self) -> bool {
        true
    }

    fn setup_note(&self) -> Option<&'static str> {
        Some(SETUP)
    }

    fn duplex(&self) -> bool {
        true
    }

    fn offer(&self, _params: &ChannelParams) -> Result<Offer, BackendError> {
        offer_pipes(INFO.id)
    }

    fn fan_in(&self) -> super::fanin::Form {
        super::fanin::Form::Pairs
    }

    fn join(
        &self,
        spec: &str,
        inherited: Vec<OwnedFd>,
        _params: &ChannelParams,
    ) -> Result<Box<dyn Channel>, BackendError> {
        join_pipes(INFO.id, spec, inherited)
    }
}
